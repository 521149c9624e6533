"""The runbooks' shell checks, run for real through the controller runner on made-up state."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from portalops.runbook.checks import BACKUP_CONFIG, backups_younger_than, certificates_valid_for, disk_below
from portalops.runbook.hosts import LocalHost
from tests.unit.test_probe import make_cert


def run(command: str, tmp_path: Path, path: str = "") -> tuple[int, str]:
    env = {"PATH": f"{path}:{os.environ['PATH']}"} if path else {}
    result = LocalHost(tmp_path, env).run(command, timeout=30)
    return result.rc, result.stdout + result.stderr


def with_config(tmp_path: Path) -> str:
    """The check, reading a wrapper configuration whose status directory is ``tmp_path/status``."""
    config = tmp_path / "backup.json"
    config.write_text(json.dumps({"status_dir": str(tmp_path / "status")}))
    (tmp_path / "status").mkdir(exist_ok=True)
    return backups_younger_than(26).replace(BACKUP_CONFIG, str(config))


def status(tmp_path: Path, jobs: list[dict[str, object]]) -> str:
    command = with_config(tmp_path)
    (tmp_path / "status" / "run.json").write_text(json.dumps({"command": "run", "jobs": jobs}))
    return command


def test_fresh_backups_pass(tmp_path: Path) -> None:
    jobs: list[dict[str, object]] = [{"name": "db-dump", "ok": True, "last_success_ts": time.time() - 3600}]
    rc, out = run(status(tmp_path, jobs), tmp_path)
    assert rc == 0, out
    assert "db-dump ok last success 1.0 h ago" in out


@pytest.mark.parametrize(
    "job",
    [
        {"name": "files", "ok": True, "last_success_ts": time.time() - 27 * 3600},
        {"name": "files", "ok": False, "last_success_ts": time.time() - 3600},
        {"name": "files", "ok": False, "last_success_ts": None},
    ],
    ids=["older than 26 h", "last run failed", "never succeeded"],
)
def test_stale_or_failing_backups_fail(tmp_path: Path, job: dict[str, object]) -> None:
    rc, out = run(status(tmp_path, [job]), tmp_path)
    assert rc == 1
    assert "STALE" in out


def test_missing_status_fails_with_a_reason(tmp_path: Path) -> None:
    rc, out = run(with_config(tmp_path), tmp_path)
    assert rc == 1
    assert "no backup status" in out


def test_disk_threshold(tmp_path: Path) -> None:
    assert run(disk_below(101), tmp_path)[0] == 0
    rc, out = run(disk_below(0), tmp_path)
    assert rc == 1
    assert "is at or above 0%" in out


def test_certificate_check_reads_what_nginx_serves(tmp_path: Path) -> None:
    _, cert, _ = make_cert(tmp_path, days=20)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    nginx = bin_dir / "nginx"
    nginx.write_text(f"#!/bin/sh\necho 'server {{'\necho '    ssl_certificate {cert};'\necho '}}'\n")
    nginx.chmod(0o755)
    (bin_dir / "python3").symlink_to(sys.executable)  # the hosts' python3 has cryptography, as ours does
    rc, out = run(certificates_valid_for(7), tmp_path, str(bin_dir))
    assert rc == 0, out
    assert f"{cert} expires" in out
    rc, out = run(certificates_valid_for(30), tmp_path, str(bin_dir))
    assert rc == 1
    assert "UNDER 30" in out
