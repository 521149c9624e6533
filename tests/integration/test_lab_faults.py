"""Bad input and faults: one clear line, the right exit code, nothing half-built."""

from __future__ import annotations

import functools
import http.server
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from portalops.lab.config import LabConfig
from tests.integration.helpers import one_host_lab, podman, portalops


def build_from(mirror: str, tag: str, state_dir: Path) -> subprocess.CompletedProcess[str]:
    """`portalops lab image --rebuild` from ``mirror`` into ``tag``, with its own state directory."""
    return portalops(
        "lab",
        "image",
        "--rebuild",
        "--tag",
        tag,
        env={"PORTALOPS_MIRROR": mirror, "PORTALOPS_LAB_DIR": str(state_dir)},
    )


def test_unreachable_mirror_is_one_clear_line_and_tags_nothing(lab: LabConfig, tmp_path: Path) -> None:
    tag = "localhost/portalops-lab:test-unreachable"
    result = build_from("http://127.0.0.1:9/debian", tag, tmp_path)
    assert result.returncode == 3
    assert result.stderr.startswith(
        "portalops: Debian mirror unreachable: http://127.0.0.1:9/debian/dists/bookworm/Release"
    )
    assert len(result.stderr.strip().splitlines()) == 1
    assert podman("image", "exists", tag, check=False).returncode == 1


@pytest.fixture
def broken_mirror(tmp_path: Path) -> Iterator[str]:
    """A loopback 'mirror' whose Release file is garbage: debootstrap starts, then fails."""
    root = tmp_path / "mirror"
    (root / "dists/bookworm").mkdir(parents=True)
    (root / "dists/bookworm/Release").write_text("this is not a Release file\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_failed_build_leaves_no_image_tagged(lab: LabConfig, tmp_path: Path, broken_mirror: str) -> None:
    tag = "localhost/portalops-lab:test-broken"
    (tmp_path / "state").mkdir()
    result = build_from(broken_mirror, tag, tmp_path / "state")
    assert result.returncode == 1, result.stderr
    assert "image: debootstrap failed" in result.stderr
    assert podman("image", "exists", tag, check=False).returncode == 1
    assert not (tmp_path / "state/image-build").exists()
    assert (tmp_path / "state/logs/image-build.log").exists()


def test_a_host_that_fails_to_boot_is_named_with_its_last_lines(lab: LabConfig, tmp_path: Path) -> None:
    init = ["/bin/sh", "-c", "echo init: cannot mount /proc >&2; exit 1"]
    inventory = one_host_lab(tmp_path, {"lab_command": init})
    env = {"PORTALOPS_LAB_DIR": str(tmp_path / "state")}
    try:
        up = portalops("lab", "up", "-i", str(inventory), env=env)
        assert up.returncode == 1
        assert re.search(
            r"^portalops: broken1: lab host broken1 failed to boot \(container (exited|stopped)\)", up.stderr
        )
        assert "init: cannot mount /proc" in up.stderr
    finally:
        down = portalops("lab", "down", "-i", str(inventory), env=env)
    assert down.returncode == 0, down.stderr
    assert "portalops-t-broken1" in down.stderr
    assert podman("network", "exists", "portalops-t", check=False).returncode == 1
    # The main lab was not touched.
    assert podman("container", "exists", "portalops-web1", check=False).returncode == 0
