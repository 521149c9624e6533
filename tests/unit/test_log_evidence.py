"""portalops_log_evidence.py (the logrotate role's host script): how far back each log goes, as textfile metrics."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

from tests.unit.hostscripts import load

evidence = load("portalops_log_evidence", "roles/logrotate/files/portalops_log_evidence.py")


def touch(path: Path, mtime: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x\n")
    os.utime(path, (mtime, mtime))


def test_the_oldest_kept_file_counts_rotations_and_compressed_ones(tmp_path: Path) -> None:
    logs = tmp_path / "nginx"
    touch(logs / "access.log", 3_000)
    touch(logs / "access.log-20261101-000000.gz", 1_000)  # logrotate_dateformat, compressed
    touch(logs / "error.log.1", 2_000)
    touch(logs / "other.txt", 10)  # not a log of the policy
    assert evidence.oldest_file([str(logs / "*.log")]) == 1_000
    assert evidence.oldest_file([str(tmp_path / "none" / "*.log")]) is None


def test_the_journals_first_entry_from_journalctl_json(tmp_path: Path) -> None:
    fake = tmp_path / "journalctl"
    lines = [{"__REALTIME_TIMESTAMP": "1764806400123456"}, {"__REALTIME_TIMESTAMP": "1764806500000000"}]
    fake.write_text(f"#!{sys.executable}\nprint({json.dumps(chr(10).join(json.dumps(x) for x in lines))})\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    assert evidence.first_journal_entry([str(fake)]) == 1764806400.123456
    fake.write_text("#!/bin/sh\nexit 1\n")  # no journal: nothing printed
    assert evidence.first_journal_entry([str(fake)]) is None
    assert evidence.first_journal_entry([str(tmp_path / "missing")]) is None


def test_the_metrics_leave_out_a_log_with_no_file_yet_and_escape_labels() -> None:
    text = evidence.render(180, {"nginx": 1_000.0, "empty": None, 'a"b': 5.0}, 9_999.5)
    assert 'portalops_log_oldest_timestamp_seconds{log="nginx"} 1000.000' in text
    assert 'log="empty"' not in text and 'log="a\\"b"' in text
    assert "portalops_log_retention_days 180\n" in text
    assert "portalops_log_evidence_timestamp_seconds 9999.500" in text


def test_main_writes_the_file_atomically_and_refuses_a_bad_configuration(tmp_path: Path) -> None:
    touch(tmp_path / "logs" / "sudo.log", 1_234)
    config = tmp_path / "evidence.json"
    policies = [{"name": "sudo", "paths": [str(tmp_path / "logs" / "sudo.log")]}]
    config.write_text(json.dumps({"retention_days": 180, "journal": False, "policies": policies}))
    out = tmp_path / "textfile"
    assert evidence.main(["--config", str(config), "--out", str(out)]) == 0
    written = (out / evidence.FILE).read_text()
    assert 'portalops_log_oldest_timestamp_seconds{log="sudo"} 1234.000' in written
    assert 'log="journal"' not in written
    assert [p.name for p in out.iterdir()] == [evidence.FILE]  # no temporary file left
    assert oct((out / evidence.FILE).stat().st_mode & 0o777) == "0o644"
    config.write_text(json.dumps({"policies": policies}))
    assert evidence.main(["--config", str(config), "--out", str(out)]) == 2
    assert (out / evidence.FILE).read_text() == written  # the last good evidence stays
