"""The lab's package cache: apt uses it only while it answers, the lab points
at the lab machine, real deployments point nowhere."""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from portalops.inventory import REPO_ROOT, load_inventory

DETECT = REPO_ROOT / "roles" / "base" / "files" / "portalops-apt-proxy-detect"


def detect(tmp_path: Path, proxy: str | None) -> str:
    """What apt would be told for an http source, with Portalops::Apt-Proxy set to proxy."""
    conf = tmp_path / "apt.conf"
    conf.write_text("" if proxy is None else f'Portalops::Apt-Proxy "{proxy}";\n')
    env = {**os.environ, "APT_CONFIG": str(conf)}
    result = subprocess.run(
        [str(DETECT), "http://deb.debian.org/debian/"], env=env, capture_output=True, text=True, check=True, timeout=30
    )
    return result.stdout.strip()


@pytest.fixture
def listening() -> Iterator[int]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_cache_that_answers_is_used(tmp_path: Path, listening: int) -> None:
    assert detect(tmp_path, f"http://127.0.0.1:{listening}") == f"http://127.0.0.1:{listening}"
    assert detect(tmp_path, f"http://localhost:{listening}/") == f"http://localhost:{listening}/"


def test_a_cache_that_is_down_means_direct(tmp_path: Path) -> None:
    assert detect(tmp_path, f"http://127.0.0.1:{closed_port()}") == "DIRECT"


@pytest.mark.parametrize("proxy", [None, "", "https://127.0.0.1:3142", "ftp://cache"])
def test_no_usable_cache_means_direct(tmp_path: Path, proxy: str | None) -> None:
    assert detect(tmp_path, proxy) == "DIRECT"


def test_lab_hosts_use_the_cache_at_the_lab_gateway() -> None:
    inv = load_inventory(REPO_ROOT / "inventory" / "lab")
    for host, hostvars in inv.hostvars.items():
        url = urlsplit(hostvars["base_apt_proxy"])
        gateway = ipaddress.ip_network(hostvars["lab_subnet"]).network_address + 1
        assert (url.scheme, url.hostname, url.port) == ("http", str(gateway), 3142), host


def test_real_deployments_use_no_cache() -> None:
    inv = load_inventory(REPO_ROOT / "inventory" / "example")
    assert all(not hostvars.get("base_apt_proxy") for hostvars in inv.hostvars.values())
    defaults = (REPO_ROOT / "roles" / "base" / "defaults" / "main.yml").read_text()
    assert 'base_apt_proxy: ""' in defaults
