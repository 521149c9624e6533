"""patch.yml's run report (pending upgrades from apt's simulation: test_patch_run.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from portalops import patch_report


def write_host(run_dir: Path, host: str, gate: list[str], mtime: int) -> None:
    path = run_dir / f"{host}.json"
    path.write_text(
        json.dumps(
            {
                "host": host,
                "tier": "db",
                "started": 100,
                "finished": 112.5,
                "pending": [{"name": "portalops-canary", "old": "1.0", "new": "1.1", "origin": "x"}],
                "installed": ["portalops-canary 1.1"],
                "restarted": [],
                "reboot": "not required",
                "gate": gate,
            }
        )
    )
    os.utime(path, (mtime, mtime))


def test_the_report_lists_hosts_in_rollout_order_with_old_and_new_versions(tmp_path: Path) -> None:
    run = tmp_path / ".run-x"
    run.mkdir()
    write_host(run, "web1", [], 2000)
    write_host(run, "db1", [], 1000)
    report = patch_report.build(run, started=50.0)
    assert report["ok"] and [h["host"] for h in report["hosts"]] == ["db1", "web1"]
    assert report["hosts"][0]["packages"] == [{"name": "portalops-canary", "old": "1.0", "new": "1.1"}]
    assert "portalops-canary 1.0 -> 1.1" in patch_report.markdown(report)


def test_a_stopped_run_says_where_and_why_and_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / ".run-y"
    run.mkdir()
    write_host(run, "cms1", ["service php8.2-fpm is not active"], 1000)
    code = patch_report.main(
        ["report", "--run-dir", str(run), "--started", "50", "--stopped-at", "cms1", "--why", "gate failed"]
    )
    assert code == 1
    out = capsys.readouterr().out
    assert "stopped at cms1: gate failed" in out
    markdown = next(tmp_path.glob("*.md")).read_text()
    assert "The rollout stopped at **cms1**" in markdown
    assert "FAIL: service php8.2-fpm is not active" in markdown
