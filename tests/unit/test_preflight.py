"""Not root, or podman missing: one clear line saying what to do."""

from __future__ import annotations

import io

import pytest

from portalops.cli import main
from portalops.errors import EnvironmentProblem, ExitCode
from portalops.lab.podman import Podman


def test_not_root_is_refused_with_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    err = io.StringIO()
    assert main(["lab", "up"], out=io.StringIO(), err=err) == ExitCode.ENVIRONMENT
    assert err.getvalue() == (
        "portalops: the lab needs root (rootful podman with systemd containers); "
        "run it as root, e.g. `sudo make lab-up`\n"
    )


def test_missing_podman_names_every_missing_tool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(EnvironmentProblem) as exc_info:
        Podman.preflight()
    assert exc_info.value.message == (
        "missing on this machine: podman, runc, iptables; run `make setup` to install podman, runc and iptables"
    )
