"""The host-side backup wrapper and drill: configuration, restic output, manifests, metrics, reports."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from portalops import drill_report
from portalops.inventory import REPO_ROOT


def load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


pb = load("portalops_backup", REPO_ROOT / "roles/restic_backup/files/portalops_backup.py")
drill = load("portalops_drill", REPO_ROOT / "roles/restore_drill/files/portalops_drill.py")

BASE = {"host": "db1", "repository": "sftp:r:/repo", "password_file": "/p", "status_dir": "/s"}


def write_config(tmp_path: Path, **changes: Any) -> Path:
    path = tmp_path / "backup.json"
    path.write_text(json.dumps({**BASE, **changes}))
    return path


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"repository": ""}, "'repository' is missing"),
        ({"jobs": [{"name": "x", "type": "tar"}]}, "has type 'tar'"),
        ({"jobs": [{"name": "Bad_Name", "type": "files", "paths": ["/etc"]}]}, "lowercase"),
        ({"jobs": [{"name": "etc", "type": "files", "paths": ["/etc"]}] * 2}, "appears twice"),
        ({"jobs": [{"name": "etc", "type": "files"}]}, "has no paths"),
        ({"jobs": [{"name": "db", "type": "mariadb-dump"}], "keep": {"daily": 7}}, "has no databases"),
        ({"jobs": [{"name": "db", "type": "mariadb-dump", "databases": ["wp; drop"]}]}, "not a plain database name"),
        ({"jobs": [{"name": "etc", "type": "files", "paths": ["/etc"]}]}, "'keep' .* is missing"),
        ({"jobs": [{"name": "etc", "type": "files", "paths": ["/etc"]}], "keep": {"daily": 0}}, "keeps nothing"),
    ],
)
def test_a_bad_configuration_is_refused_naming_the_problem(
    tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(pb.ConfigError, match=message):
        pb.load_config(write_config(tmp_path, **changes))


def test_the_wrapper_exits_2_on_a_bad_configuration(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert pb.main(["--config", str(write_config(tmp_path, host="")), "run"]) == pb.EXIT_BAD_INPUT
    assert "'host' is missing" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("stderr", "expected"),
    [
        ("Fatal: wrong password or no key found\n", "wrong repository password"),
        ("subprocess ssh: ssh: connect to host 10.0.0.1 port 22: Connection refused", "refused the connection"),
        ("ssh: connect to host 10.0.0.1 port 22: No route to host", "unreachable"),
        ("Save(<data/1234>) returned error: write /repo/data/12: no space left on device", "repository full"),
        ("open /repo/locks/abc: permission denied", "not writable"),
        ("Host key verification failed.", "host key does not match"),
        ("Connection timed out during banner exchange", "backup host unreachable"),
        ("Connection to 10.0.0.1 port 22 timed out", "backup host unreachable"),
        (
            "Fatal: unable to open repository at sftp:r:/repo: unable to start the sftp session, error: EOF",
            "backup host unreachable: no SSH/SFTP session",
        ),
        (
            "Permission denied (publickey).\nFatal: unable to start the sftp session, error: EOF",
            "rejected this host's SSH key",
        ),
        ("Fatal: something new", "restic failed (sftp:r:/repo): Fatal: something new"),
    ],
)
def test_restic_errors_become_one_line_a_person_can_act_on(stderr: str, expected: str) -> None:
    assert expected in pb.explain(stderr, "sftp:r:/repo")


def test_retention_is_per_job_tag_and_refuses_to_keep_nothing() -> None:
    args = pb.forget_args("db-dump", {"daily": 7, "weekly": 5, "monthly": 12})
    assert args[:6] == ["forget", "--json", "--tag", "job:db-dump", "--group-by", "host,tags"]
    assert args[6:] == ["--keep-daily", "7", "--keep-weekly", "5", "--keep-monthly", "12"]
    with pytest.raises(pb.ConfigError, match="keeps nothing"):
        pb.forget_args("db-dump", {"daily": 0})


def test_the_rolling_check_reads_every_part_over_n_weeks() -> None:
    start = dt.date(2026, 12, 28)  # across a year boundary
    parts = {pb.rolling_subset(start + dt.timedelta(weeks=w), 4) for w in range(4)}
    assert parts == {"1/4", "2/4", "3/4", "4/4"}


def test_restic_summary_is_found_among_status_lines() -> None:
    out = '{"message_type":"status","percent_done":0.5}\n{"message_type":"summary","snapshot_id":"abc"}\n'
    assert pb.summary_of(out)["snapshot_id"] == "abc"
    with pytest.raises(pb.JobError, match="no summary"):
        pb.summary_of('{"message_type":"status"}\n')


def test_restic_times_with_nanoseconds_parse() -> None:
    moment = pb.parse_time("2026-11-27T14:35:23.123456789+08:00")
    assert moment == dt.datetime(2026, 11, 27, 6, 35, 23, 123456, tzinfo=dt.UTC)


def status(ok: bool) -> dict[str, Any]:
    job = {"name": "db-dump", "ok": ok, "duration_s": 2.5, "bytes_added": 10, "files": 1, "last_success_ts": 100.0}
    if ok:
        job["snapshot_id"] = "0bd9a2d9"
    return {"command": "run", "host": "db1", "ok": ok, "exit_code": 0 if ok else 1, "finished_ts": 200.0, "jobs": [job]}


def samples(text: str) -> dict[str, str]:
    return dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))


def test_metrics_show_success_and_the_snapshot() -> None:
    found = samples(pb.metrics(status(True)))
    assert found['portalops_backup_last_run_success{host="db1",command="run"}'] == "1"
    assert found['portalops_backup_job_duration_seconds{host="db1",job="db-dump"}'] == "2.500"
    assert found['portalops_backup_job_snapshot_info{host="db1",job="db-dump",snapshot_id="0bd9a2d9"}'] == "1"


def test_metrics_of_a_failed_run_leave_no_stale_success() -> None:
    found = samples(pb.metrics(status(False)))
    assert found['portalops_backup_last_run_success{host="db1",command="run"}'] == "0"
    assert found['portalops_backup_job_success{host="db1",job="db-dump"}'] == "0"
    assert found['portalops_backup_exit_code{host="db1",command="run"}'] == "1"
    # The time of the last good run stays what it was; no snapshot is claimed.
    assert found['portalops_backup_job_last_success_timestamp_seconds{host="db1",job="db-dump"}'] == "100"
    assert not any(key.startswith("portalops_backup_job_snapshot_info") for key in found)


def manifest(rows: int, checksum: str = "111") -> dict[str, Any]:
    return {"databases": {"wp": {"tables": {"wp_posts": {"rows": rows, "checksum": checksum}}}}}


def test_a_restored_database_is_compared_table_by_table() -> None:
    assert pb.compare_database(manifest(5), manifest(5)) == []
    assert pb.compare_database(manifest(5), manifest(4)) == ["wp.wp_posts: 4 rows, manifest 5"]
    assert pb.compare_database(manifest(5), manifest(5, "222")) == ["wp.wp_posts: checksum 222, manifest 111"]
    assert pb.compare_database(manifest(5), {"databases": {}}) == ["wp: missing"]


def test_writes_during_a_backup_allow_counts_between_the_two_manifests() -> None:
    assert drill.between(manifest(5), manifest(7), manifest(6)) == []
    assert drill.between(manifest(5), manifest(7), manifest(8)) == [
        "wp.wp_posts: 8 rows, outside 5..7 seen during the backup"
    ]


def test_files_manifest_catches_a_changed_a_missing_file_and_a_wrong_link(tmp_path: Path) -> None:
    source = tmp_path / "site"
    (source / "uploads").mkdir(parents=True)
    (source / "uploads" / "a.jpg").write_bytes(b"image")
    (source / "uploads" / "b.txt").write_text("text")
    (source / "themes").symlink_to("/usr/share/wordpress/wp-content/themes")
    (source / "cache.tmp").write_text("skip me")
    taken = pb.files_manifest([str(source)], exclude=["*.tmp"])
    assert taken["count"] == 2
    assert str(source / "themes") in taken["links"]

    restored = tmp_path / "restored"
    copy = restored / str(source).lstrip("/")
    (copy / "uploads").mkdir(parents=True)
    (copy / "uploads" / "a.jpg").write_bytes(b"IMAGE")
    (copy / "themes").symlink_to("/elsewhere")
    problems = pb.compare_files(taken, restored)
    assert f"{source}/uploads/a.jpg: sha256 differs from the manifest" in problems
    assert f"{source}/uploads/b.txt: not restored" in problems
    assert any("symlink" in p for p in problems)


def test_unchanged_files_are_not_read_again_but_changed_ones_are(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("one")
    cache: dict[str, list[Any]] = {}
    first = pb.files_manifest([str(tmp_path)], cache=cache)
    # A poisoned cache entry with the file's real size and mtime is trusted: the file was not read.
    info = (tmp_path / "a").stat()
    cache[str(tmp_path / "a")] = [info.st_size, info.st_mtime_ns, "cached"]
    assert pb.files_manifest([str(tmp_path)], cache=cache)["files"][str(tmp_path / "a")]["sha256"] == "cached"
    (tmp_path / "a").write_text("two!")
    again = pb.files_manifest([str(tmp_path)], cache=cache)["files"][str(tmp_path / "a")]["sha256"]
    assert again not in {"cached", first["files"][str(tmp_path / "a")]["sha256"]}


def test_a_missing_path_fails_the_files_job(tmp_path: Path) -> None:
    with pytest.raises(pb.JobError, match="does not exist"):
        pb.files_manifest([str(tmp_path / "nope")])


def drill_result(ok: bool = True) -> dict[str, Any]:
    return {
        "started_ts": 1000.0,
        "finished_ts": 1030.0,
        "site_verified_ts": 1060.0,
        "snapshots": {
            "db1:db-physical": {
                "id": "d36c4ea5aa",
                "time": "2026-11-27T14:35:23.5+00:00",
                "host": "db1",
                "job": "db-physical",
            }
        },
        "checks": [{"name": "database (physical backup)", "ok": ok, "problems": [] if ok else ["wp: missing"]}],
        "phases_s": {"physical_restore": 4.0},
        "bytes": {"physical": 8 * 2**20},
        "error": "",
    }


def test_the_drill_summary_measures_rto_rpo_and_throughput() -> None:
    started = dt.datetime(2026, 11, 27, 15, 35, 23, tzinfo=dt.UTC).timestamp()
    result = drill_result()
    result["started_ts"] = started + 1
    result["site_verified_ts"] = started + 95
    summary = drill_report.summarise(result, started)
    assert summary["ok"] is True
    assert summary["rto_s"] == 95.0
    assert summary["rpo_s"] == pytest.approx(3599.5)
    assert summary["throughput_mib_s"] == 2.0


def test_the_drill_report_fails_on_a_failed_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result_file = tmp_path / "result.json"
    result_file.write_text(json.dumps(drill_result(ok=False)))
    code = drill_report.main(["--result", str(result_file), "--started", "1000", "--out-dir", str(tmp_path / "out")])
    assert code == 1
    assert "FAIL database (physical backup): wp: missing" in capsys.readouterr().out
    report = next((tmp_path / "out").glob("*.md")).read_text()
    assert "Verdict: **FAIL**" in report
    assert "| database (physical backup) | FAIL | wp: missing |" in report


def test_a_stale_or_unfinished_result_never_passes() -> None:
    stale = drill_report.summarise(drill_result(), started=50_000.0)
    assert not stale["ok"]
    assert any(c["name"] == "result belongs to this drill" for c in stale["failed_checks"])
    unchecked = drill_result()
    del unchecked["site_verified_ts"]
    summary = drill_report.summarise(unchecked, started=1000.0)
    assert not summary["ok"] and summary["failed_checks"][0]["name"] == "site verified"


def test_a_missing_drill_result_fails_the_report(tmp_path: Path) -> None:
    code = drill_report.main(["--result", str(tmp_path / "none"), "--started", "1", "--out-dir", str(tmp_path)])
    assert code == 1
