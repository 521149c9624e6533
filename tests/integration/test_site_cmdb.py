"""`portalops cmdb` on the converged lab: the CMDB says what the hosts themselves say.

Every inventory host answers; the versions, listening ports and certificate expiry in the document are
compared with what dpkg-query, the sockets and openssl report on the hosts (through podman, not through
the collector), and a `--diff` against the snapshot just written finds no change.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from portalops.lab.config import LabConfig
from tests.integration.helpers import on, portalops

WEB_CERT = "/etc/nginx/tls/portal.crt"  # nginx_portal_tls_dir / <site>.crt, selfsigned_ca mode on the lab


@pytest.fixture(scope="module")
def cmdb(converged: LabConfig, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("cmdb")
    result = portalops("cmdb", "--json", "--out", str(out), timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    document: dict[str, Any] = json.loads(result.stdout)
    return document, out


def test_every_inventory_host_answers(converged: LabConfig, cmdb: tuple[dict[str, Any], Path]) -> None:
    document, out = cmdb
    assert set(document["hosts"]) == {h.name for h in converged.hosts}
    silent = {name: host["error"] for name, host in document["hosts"].items() if not host["reachable"]}
    assert not silent
    assert all(host["os"]["id"] == "debian" and host["os"]["kernel"] for host in document["hosts"].values())
    assert (out / f"{document['date']}.json").is_file() and (out / f"{document['date']}.md").is_file()


def test_nginx_version_is_the_one_dpkg_reports_on_web1(cmdb: tuple[dict[str, Any], Path]) -> None:
    document, _ = cmdb
    installed = on("web1", "dpkg-query -W -f '${Version}' nginx").stdout.strip()
    assert installed
    assert document["hosts"]["web1"]["packages"]["nginx"] == installed


def test_web1_listens_on_443_and_db1_on_3306(cmdb: tuple[dict[str, Any], Path]) -> None:
    document, _ = cmdb
    web = {(s["port"], s["process"]) for s in document["hosts"]["web1"]["listening"]}
    db = {(s["port"], s["process"]) for s in document["hosts"]["db1"]["listening"]}
    assert (443, "nginx") in web, web
    assert 3306 in {port for port, _ in db}, db


def test_the_web_certificate_expiry_is_the_files(cmdb: tuple[dict[str, Any], Path]) -> None:
    document, _ = cmdb
    certs = {c["path"]: c for c in document["hosts"]["web1"]["certificates"]}
    line = on("web1", f"openssl x509 -noout -enddate -dateopt iso_8601 -in {WEB_CERT}").stdout.strip()
    assert line.startswith("notAfter=")
    assert certs[WEB_CERT]["not_after"] == line.removeprefix("notAfter=")


def test_a_diff_against_the_snapshot_just_taken_finds_no_change(cmdb: tuple[dict[str, Any], Path]) -> None:
    document, out = cmdb
    result = portalops("cmdb", "--diff", document["date"], "--json", "--out", str(out), timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    changes = json.loads(result.stdout)
    assert changes["hosts_added"] == changes["hosts_removed"] == []
    assert not any("versions_changed" in found for found in changes["hosts"].values()), changes["hosts"]
