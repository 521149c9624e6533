"""`portalops nightly`: the job lines from the clients' run status as the JSON callback carries it, the drill's
verdict from its own report, and the shim that any Python may start."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from portalops import nightly
from portalops.inventory import REPO_ROOT

JOB_OK = {
    "name": "etc",
    "ok": True,
    "snapshot_id": "0123456789abcdef",
    "files": 12,
    "bytes_added": 345,
    "duration_s": 1.5,
}
JOB_FAILED = {"name": "db", "ok": False, "error": "restic: repository is locked", "duration_s": 0.4}


def status_result(*jobs: dict[str, Any]) -> dict[str, Any]:
    return {"content": base64.b64encode(json.dumps({"jobs": list(jobs)}).encode()).decode(), "encoding": "base64"}


def document(*tasks: tuple[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    return {"plays": [{"tasks": [{"task": {"name": name}, "hosts": hosts} for name, hosts in tasks]}]}


def test_each_clients_jobs_come_from_its_run_status_and_failures_are_named() -> None:
    played = nightly.Played(
        2,
        document(
            ("Run portalops-backup", {"web1": {"rc": 0}, "db1": {"rc": 1}}),
            (nightly.STATUS_TASK, {"web1": status_result(JOB_OK), "db1": status_result(JOB_FAILED)}),
            ("Fail the host when a job failed", {"db1": {"failed": True, "msg": "portalops-backup exited 1"}}),
            ("Run portalops-backup", {"cms1": {"unreachable": True, "msg": "ssh: connect timed out"}}),
        ),
    )
    assert nightly.backup_lines(played) == [
        "web1: etc: ok, snapshot 01234567, 12 files, 345 bytes added (1.5 s)",
        "db1: db: FAILED: restic: repository is locked (0.4 s)",
        "FAILED db1: Fail the host when a job failed: portalops-backup exited 1",
        "FAILED cms1: Run portalops-backup: ssh: connect timed out",
    ]
    # A status not read (the wrapper exited 2 or 3: the file is an earlier run's) gives no job line.
    skipped = document((nightly.STATUS_TASK, {"web1": {"skipped": True}}))
    assert nightly.backup_lines(nightly.Played(0, skipped)) == []
    assert nightly.backup_lines(nightly.Played(4)) == ["FAILED: backup.yml printed no result (exit 4)"]


def test_the_drill_verdict_is_this_runs_report_not_an_older_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drills = tmp_path / "drills"
    drills.mkdir()
    monkeypatch.setattr(nightly, "REPORTS", tmp_path)
    summary = {"ok": True, "rto_s": 14.5, "rpo_s": 20.9, "checks_passed": 5, "checks_total": 5}
    old = drills / "20261101T000000Z.json"
    old.write_text(json.dumps({"summary": {**summary, "ok": False}}))
    os.utime(old, (1_000, 1_000))
    log = tmp_path / "run.log"
    line, report = nightly.drill_verdict(2_000, nightly.Played(2), log)
    assert (line, report) == (f"FAIL: the drill did not finish (exit 2); see {log}", None)
    new = drills / "20261204T031500Z.json"
    new.write_text(json.dumps({"summary": {**summary, "restored_bytes": 3 * 2**20, "throughput_mib_s": 1.0}}))
    line, report = nightly.drill_verdict(2_000, nightly.Played(0), log)
    assert line == "PASS: RTO 14.5 s, RPO 20.9 s, 5/5 checks passed, 3.0 MiB restored at 1.0 MiB/s"
    assert report == new.with_suffix(".md")


def test_the_shim_goes_on_under_the_virtualenv_from_another_python() -> None:
    """`python3 scripts/nightly --help` from the system's Python lands in portalops nightly's own help."""
    system = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
    shown = subprocess.run(
        [system, str(REPO_ROOT / "scripts/nightly"), "--help"], capture_output=True, text=True, check=False, timeout=60
    )
    assert shown.returncode == 0, shown.stderr
    assert "usage: portalops nightly" in shown.stdout and "--vault-id" in shown.stdout
