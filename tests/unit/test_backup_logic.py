"""The host-side backup wrapper and drill: configuration, restic output, manifests, metrics, reports."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from portalops import drill_report
from portalops_host import closed, database, drill, physical
from portalops_host.backup import main
from portalops_host.closed import reopen
from portalops_host.config import load_config
from portalops_host.database import LOGICAL, MANIFEST_MARK, compare_database, manifest_from_dump
from portalops_host.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNKNOWN,
    ConfigError,
    DeadlinePassed,
    JobError,
    LockError,
    Terminated,
    Untouched,
)
from portalops_host.files import (
    compare_files,
    files_diff,
    files_manifest,
    keep_evidence,
    live_files_manifest,
    put_in_place,
    quarantine,
    restic_include,
    sha256_file,
    unique_directory,
)
from portalops_host.files_restore import files_job
from portalops_host.health import (
    changes_since,
    core_tables,
    health_problems,
    loss_thresholds,
    manifest_problems,
    mass_loss,
)
from portalops_host.jobs import JOBS, command_run, keep_manifest
from portalops_host.log import Log
from portalops_host.logical import (
    check_room,
    command_discard_evidence,
    fetch_dump,
    logical_needs,
    restore_id,
    restore_line,
    restore_logical,
    side_database,
    space_refusal,
    swap_statement,
)
from portalops_host.maintenance import command_check, command_copy, future_snapshots
from portalops_host.physical import aside_path, put_back, restore_physical, room_aside
from portalops_host.pins import command_release, command_status, loss_against, pinned_in, same_snapshot
from portalops_host.pitr import (
    binlog_files,
    destructive,
    files_from,
    parse_binlog,
    parse_position,
    pitr_rpo_line,
    pitr_rpo_seconds,
    point_in_time,
    scan_binlog,
)
from portalops_host.restic import (
    diagnose,
    explain,
    parse_sftp_df,
    repository_error,
    rolling_subset,
    sftp_free_bytes,
    summary_of,
)
from portalops_host.restore import (
    changed_so_far,
    command_check_database,
    command_restore_database,
    restore_candidates,
    rpo_line,
    rpo_seconds,
    snapshot_manifest,
)
from portalops_host.retention import forget_args, keep_policy
from portalops_host.snapshots import pick_snapshot
from portalops_host.status import metrics
from portalops_host.streams import Deadline
from portalops_host.times import now, parse_time, stamp, until_time
from tests.unit.hostscripts import replace

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
        ({"jobs": [{"name": "etc", "type": "files", "paths": ["/etc"]}], "keep": {}}, "keeps nothing"),
        ({"jobs": [{"name": "etc", "type": "files", "paths": ["/etc"]}], "keep": {"daily": 0}}, "keep.daily 0"),
        ({"copies": [{"name": "web1"}], "keep": {"within": "0h", "daily": 7}}, "keep.within '0h'"),
    ],
)
def test_a_bad_configuration_is_refused_naming_the_problem(
    tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write_config(tmp_path, **changes))


def test_the_wrapper_exits_2_on_a_bad_configuration(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(write_config(tmp_path, host="")), "run"]) == EXIT_BAD_INPUT
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
    assert expected in explain(stderr, "sftp:r:/repo")


# What OpenSSH's sftp-server answers to any errno it has no code for, ENOSPC included.
SFTP_FAILURE = (
    'Save(<data/5ab1c2d3e4>) returned error, retrying after 552.330144ms: sftp: "Failure" (SSH_FX_FAILURE)\n'
    'Fatal: unable to save snapshot: sftp: "Failure" (SSH_FX_FAILURE)\n'
)
SFTP_DF = (
    "sftp> df /repo\n"
    "        Size         Used        Avail       (root)    %Capacity\n"
    "       13312        13216           96           96          99%\n"
)


def test_the_free_space_of_an_sftp_repository_is_read_from_sftp_df() -> None:
    assert parse_sftp_df(SFTP_DF) == 96 * 1024
    assert parse_sftp_df("sftp> df /repo\nCouldn't statvfs: Operation unsupported\n") is None


def test_a_generic_sftp_failure_on_a_full_repository_says_repository_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in for the sftp client: answers `df` only when reached through the configured command.
    sftp = tmp_path / "sftp"
    sftp.write_text(
        "#!/bin/sh\n"
        '[ "$*" = "-q -b - -D ssh -F /c repo -s sftp" ] || exit 9\n'
        'read -r command path; [ "$command $path" = "df /repo" ] || exit 8\n'
        f"printf %s '{SFTP_DF}'\n"
    )
    sftp.chmod(0o755)
    config = {**BASE, "sftp_command": "ssh -F /c repo -s sftp", "sftp": str(sftp)}
    assert sftp_free_bytes(config, "sftp:r:/repo") == 96 * 1024
    full = diagnose(config, SFTP_FAILURE, "sftp:r:/repo")
    assert full == "repository full: no space left on the backup host (sftp:r:/repo, 96 KiB free)"
    # Room enough: the failure is something else, said as restic said it.
    replace(monkeypatch, "sftp_free_bytes", lambda config, repository: 10 << 30)
    assert diagnose(config, SFTP_FAILURE, "sftp:r:/repo").startswith("restic failed (sftp:r:/repo): Fatal: unable")
    # A known error is never second-guessed, and a local repository is never asked over SFTP.
    replace(monkeypatch, "sftp_free_bytes", lambda config, repository: 0)
    assert "wrong repository password" in diagnose(config, "Fatal: wrong password or no key found", "sftp:r:/repo")
    local = {**BASE, "sftp_command": ""}
    monkeypatch.undo()
    assert sftp_free_bytes(local, "/srv/c") is None
    assert diagnose(local, "write /srv/c/data/1: no space left on device", "/srv/c").startswith("repository full")


def test_a_failed_check_names_the_client_and_its_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # restic 0.14 over SFTP, as seen on the lab (ids shortened here; the banner is the backup host's).
    blob = "7d43735d3f45799813c1cc85774451b57a613c8de328c16aa8e1aad2dd359c7f"
    stderr = (
        "subprocess ssh: This is a private county government system.\n"
        "error for tree 7d43735d:\n"
        f"  decrypting blob {blob} failed: ciphertext verification failed\n"
        "Pack ID does not match, want f963b74755, got 27e209f15d\n"
        "Fatal: repository contains errors\n"
    )
    restic = f"[ \"$1\" = check ] || exit 0; printf %s '{stderr}' >&2; exit 1"
    replace(monkeypatch, "restic_argv", lambda config, *args: ["sh", "-c", restic, "restic", *args])
    config = {**BASE, "status_dir": str(tmp_path)}
    assert command_check(config, "100%", Log(None), prune=False) == EXIT_FAILED
    said = (
        "db1's repository sftp:r:/repo contains errors: "
        "error for tree 7d43735d: decrypting blob 7d43735d3f failed: ciphertext verification failed (and 1 more)"
    )
    assert f"check FAILED: {said}\n" in capsys.readouterr().out
    assert json.loads((tmp_path / "check.json").read_text())["errors"] == [said]


@pytest.mark.parametrize(
    ("stderr", "kind"),
    [
        ("Fatal: wrong password or no key found\n", "RepositoryUnusable"),
        ("ssh: connect to host 10.0.0.1 port 22: Connection refused", "RepositoryUnusable"),
        ("Connection timed out during banner exchange", "RepositoryUnusable"),
        ("Host key verification failed.", "RepositoryUnusable"),
        ("Fatal: unable to open config file: Stat: file does not exist", "RepositoryUnusable"),
        ("unable to create lock in backend: repository is already locked by PID 1 on web1", "RepositoryLocked"),
        ("write /repo/data/12: no space left on device", "JobError"),
        ("open /repo/locks/abc: permission denied", "JobError"),
        ("Fatal: something new", "JobError"),
    ],
)
def test_a_restic_failure_says_whether_the_other_jobs_can_still_run(stderr: str, kind: str) -> None:
    assert type(repository_error(explain(stderr, "sftp:r:/repo"))).__name__ == kind


# A stand-in restic for the run's lock and repository handling: every call is written to
# calls.log; flag files in the same directory make the repository locked (stale: `unlock`
# removes it; live: it stays) or its host refuse the connection.
FAKE_RESTIC = """d={state}; echo "$1" >> $d/calls.log
case "$1" in
unlock) rm -f $d/stale ;;
backup) [ -e $d/down ] && {{ echo 'ssh: connect to host 10.0.0.1 port 22: Connection refused' >&2; exit 1; }}
  echo '{{"message_type":"summary","snapshot_id":"0123456789abcdef","total_files_processed":1}}' ;;
forget) [ -e $d/stale ] || [ -e $d/live ] && {{ echo 'unable to create lock in backend: repository is already \
locked by PID 4242 on web1 by root (UID 0, GID 0)' >&2; exit 1; }}; echo '[]' ;;
esac"""


def run_with_fake_restic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *flags: str) -> tuple[int, list[str]]:
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    (state / "calls.log").write_text("")
    for flag in flags:
        (state / flag).touch()
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "a.txt").write_text("a")
    script = FAKE_RESTIC.format(state=state)
    replace(monkeypatch, "restic_argv", lambda config, *args: ["sh", "-c", script, "restic", *args])
    jobs = [{"name": name, "type": "files", "paths": [str(tmp_path / "data")]} for name in ("etc", "www")]
    config = {**BASE, "status_dir": str(tmp_path / "status"), "keep": {"daily": 7}, "jobs": jobs}
    code = command_run(config, [], Log(None))
    return code, (state / "calls.log").read_text().split()


def test_a_run_unlocks_only_when_a_stale_lock_is_in_its_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No lock: no `restic unlock` (each restic command derives the key, ~0.5 s).
    assert run_with_fake_restic(tmp_path, monkeypatch) == (EXIT_OK, ["backup", "forget"] * 2)
    # A crashed run's lock stops the first forget: unlock, forget again, and the run passes.
    code, calls = run_with_fake_restic(tmp_path, monkeypatch, "stale")
    assert (code, calls) == (EXIT_OK, ["backup", "forget", "unlock", "forget", "backup", "forget"])


def test_a_live_lock_fails_the_job_after_one_unlock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, calls = run_with_fake_restic(tmp_path, monkeypatch, "live")
    assert code == EXIT_FAILED
    assert calls == ["backup", "forget", "unlock", "forget"] * 2
    errors = json.loads((tmp_path / "status" / "run.json").read_text())["errors"]
    assert errors == [f"{job}: repository is locked by another process (sftp:r:/repo)" for job in ("etc", "www")]


def test_an_unusable_repository_fails_every_job_on_one_attempt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, calls = run_with_fake_restic(tmp_path, monkeypatch, "down")
    assert (code, calls) == (EXIT_FAILED, ["backup"])
    status = json.loads((tmp_path / "status" / "run.json").read_text())
    refused = "backup host refused the connection (sftp:r:/repo)"
    assert status["errors"] == [f"etc: {refused}", f"www: not run: {refused}"]
    assert [job["ok"] for job in status["jobs"]] == [False, False]


def test_retention_is_per_job_tag_and_refuses_to_keep_nothing() -> None:
    args = forget_args("db-dump", {"daily": 7, "weekly": 5, "monthly": 12})
    assert args[:6] == ["forget", "--json", "--tag", "job:db-dump", "--group-by", "host,tags"]
    assert args[6:-2] == ["--keep-daily", "7", "--keep-weekly", "5", "--keep-monthly", "12"]
    # A snapshot pinned after a mass loss (its successor's manifest showed it) is never forgotten.
    assert args[-2:] == ["--keep-tag", "portalops-pinned"]
    with pytest.raises(ConfigError, match="keeps nothing"):
        forget_args("db-dump", {})


def test_retention_keeps_every_snapshot_of_the_last_hours_and_the_last_few() -> None:
    # A second backup the same day must not prune the day's earlier, good one (one per day would).
    keep = {"monthly": 12, "within": "48h", "daily": 7, "last": 3, "weekly": 5}
    assert keep_policy(keep) == [
        "--keep-within",
        "48h",
        "--keep-last",
        "3",
        "--keep-daily",
        "7",
        "--keep-weekly",
        "5",
        "--keep-monthly",
        "12",
    ]
    for duration in ("7d", "1y6m", "2d12h", "30d"):
        assert keep_policy({"within": duration}) == ["--keep-within", duration]


@pytest.mark.parametrize(
    ("keep", "message"),
    [
        ({"within": "0h", "daily": 7}, "keep.within '0h' is not a duration such as 48h"),
        ({"within": "0d0h", "daily": 7}, "keep.within '0d0h'"),
        ({"within": "48 hours", "daily": 7}, "keep.within '48 hours'"),
        ({"within": "90min", "daily": 7}, "keep.within '90min'"),  # restic's m is months: refused, not guessed
        ({"within": "-48h", "daily": 7}, "keep.within '-48h'"),
        ({"within": "", "daily": 7}, "keep.within ''"),
        ({"within": 48, "daily": 7}, "keep.within 48 is not a duration"),
        ({"within": "48h", "last": 0}, "keep.last 0 must be a whole number of snapshots, 1 or more"),
        ({"within": "48h", "last": -1}, "keep.last -1"),
        ({"within": "48h", "last": "3"}, "keep.last '3'"),
        ({"within": "48h", "last": True}, "keep.last True"),
        ({"within": "48h", "daily": None}, "keep.daily None"),
        ({"within": "48h", "daily": 2.5}, "keep.daily 2.5"),
        ({"within": "48h", "dayly": 7}, "unknown keep.dayly"),
    ],
)
def test_a_zero_or_nonsense_retention_is_refused_naming_it(keep: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        keep_policy(keep)


def test_a_bad_retention_stops_the_run_before_any_backup_or_forget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = tmp_path / "calls.log"
    restic = tmp_path / "restic"
    restic.write_text(f'#!/bin/sh\necho "$1" >> {calls}\n')
    restic.chmod(0o755)
    job = {"name": "etc", "type": "files", "paths": [str(tmp_path)], "keep": {"last": 0}}
    config = write_config(
        tmp_path, restic=str(restic), lock_file=str(tmp_path / "lock"), keep={"within": "48h"}, jobs=[job]
    )
    assert main(["--config", str(config), "run"]) == EXIT_BAD_INPUT
    assert "keep.last 0 must be" in capsys.readouterr().err
    assert not calls.exists(), "restic ran despite a refused retention"


def test_future_dated_snapshots_are_named_and_clock_skew_is_not() -> None:
    moment = dt.datetime(2026, 12, 3, 5, 0, tzinfo=dt.UTC)
    listed = [
        {"id": "a" * 64, "short_id": "aaaaaaaa", "time": "2026-12-03T01:30:00.123456789Z", "hostname": "db1"},
        {"id": "b" * 64, "short_id": "bbbbbbbb", "time": "2026-12-03T05:40:00Z", "hostname": "db1"},  # skew
        {"id": "c" * 64, "short_id": "cccccccc", "time": "2099-01-01T00:00:00+00:00", "hostname": "db1"},
        {"id": "d" * 64, "short_id": "dddddddd", "time": "2026-12-03T06:30:00Z", "hostname": "web1"},
    ]
    assert future_snapshots(listed, moment) == [
        "dddddddd 2026-12-03T06:30:00Z web1",
        "cccccccc 2099-01-01T00:00:00Z db1",
    ]
    assert future_snapshots(listed[:2], moment) == []


# The backup host's restic: `snapshots` lists the second copy (SNAPSHOTS), every call is logged.
FAKE_COPY_RESTIC = """echo "$1" >> {state}/calls.log
case "$1" in snapshots) cat {state}/snapshots.json ;; forget) echo '[]' ;; esac"""


def run_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, snapshots: list[dict[str, Any]]) -> list[str]:
    (tmp_path / "snapshots.json").write_text(json.dumps(snapshots))
    script = FAKE_COPY_RESTIC.format(state=tmp_path)
    replace(monkeypatch, "restic_argv", lambda config, *args: ["sh", "-c", script, "restic", *args])
    copies = [{"name": "web1", "from_repo": "/f", "from_password_file": "/p", "to_repo": "/t", "password_file": "/q"}]
    config = {**BASE, "status_dir": str(tmp_path / "status"), "keep": {"within": "48h", "daily": 7}, "copies": copies}
    code = command_copy(config, Log(None))
    calls = (tmp_path / "calls.log").read_text().split()
    (tmp_path / "calls.log").unlink()
    return [str(code), *calls]


def test_the_second_copy_is_never_pruned_while_a_snapshot_is_dated_in_the_future(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    moment = now()
    real = {"id": "a" * 64, "short_id": "aaaaaaaa", "time": stamp(moment - dt.timedelta(hours=3)), "hostname": "web1"}
    assert run_copy(tmp_path, monkeypatch, [real]) == ["0", "copy", "snapshots", "forget"]
    forged = {"id": "f" * 64, "short_id": "ffffffff", "time": "2099-01-01T00:00:00Z", "hostname": "web1"}
    assert run_copy(tmp_path, monkeypatch, [real, forged]) == ["1", "copy", "snapshots"]
    status = json.loads((tmp_path / "status" / "copy.json").read_text())
    assert status["errors"] == [
        "web1: 1 snapshots dated in the future (ffffffff 2099-01-01T00:00:00Z web1): the second copy is not "
        "pruned until a person checks them (restic forget ID on this host)"
    ]


# restic that never finishes its dump (a frozen SFTP session): the stream's deadline ends it.
HANGING_RESTIC = "printf 'CREATE DATABASE wp;\\n'; exec sleep 60"


def test_a_dump_stream_that_hangs_ends_at_its_deadline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    replace(monkeypatch, "restic_argv", lambda config, *args: ["sh", "-c", HANGING_RESTIC])
    config = {**BASE, "stream_timeout_s": 1}
    dump = snap("cccc", "db-dump", "2026-11-27T01:29:00Z")
    begin = dt.datetime.now()
    with pytest.raises(JobError, match="restic dump of snapshot cccc timed out after 1 s"):
        fetch_dump(config, dump, tmp_path / "dump.sql")
    with pytest.raises(JobError, match="restic dump of snapshot cccc timed out after 1 s"):
        snapshot_manifest(config, LOGICAL, dump)
    assert (dt.datetime.now() - begin).total_seconds() < 20


def test_a_deadline_interrupts_first_and_kills_after_its_grace() -> None:
    import signal
    import subprocess

    # Ignores SIGINT, as a restic stuck in I/O may: SIGKILL after the grace ends it.
    stubborn = subprocess.Popen(["sh", "-c", "trap '' INT; exec sleep 60"])
    quick = subprocess.Popen(["sleep", "60"])
    with Deadline(0.5, grace=1) as deadline:
        deadline.watch(stubborn, signal.SIGINT)
        deadline.watch(quick, signal.SIGINT)
        assert quick.wait(timeout=10) == -signal.SIGINT
        assert stubborn.wait(timeout=10) == -signal.SIGKILL
    assert deadline.expired
    with Deadline(5) as unused:
        done = subprocess.Popen(["true"])
        unused.watch(done)
        done.wait(timeout=10)
    assert not unused.expired


def test_the_drills_dump_load_ends_at_its_deadline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mariadb").write_text("#!/bin/sh\nexec cat >/dev/null\n")
    (tmp_path / "mariadb").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    replace(monkeypatch, "restic_argv", lambda config, *args: ["sh", "-c", HANGING_RESTIC])
    config = {**BASE, "sources": {"db1": "sftp:r:/repo"}, "stream_timeout_s": 1}
    with pytest.raises(drill.DrillError, match="did not finish within 1 s"):
        drill.Drill(config, {}).load_dump("db1", "cccc" * 8, "db-dump.sql")


def test_the_rolling_check_reads_every_part_over_n_weeks() -> None:
    start = dt.date(2026, 12, 28)  # across a year boundary
    parts = {rolling_subset(start + dt.timedelta(weeks=w), 4) for w in range(4)}
    assert parts == {"1/4", "2/4", "3/4", "4/4"}


def test_restic_summary_is_found_among_status_lines() -> None:
    out = '{"message_type":"status","percent_done":0.5}\n{"message_type":"summary","snapshot_id":"abc"}\n'
    assert summary_of(out)["snapshot_id"] == "abc"
    with pytest.raises(JobError, match="no summary"):
        summary_of('{"message_type":"status"}\n')


def test_restic_times_with_nanoseconds_parse() -> None:
    moment = parse_time("2026-11-27T14:35:23.123456789+08:00")
    assert moment == dt.datetime(2026, 11, 27, 6, 35, 23, 123456, tzinfo=dt.UTC)


def status(ok: bool) -> dict[str, Any]:
    job = {"name": "db-dump", "ok": ok, "duration_s": 2.5, "bytes_added": 10, "files": 1, "last_success_ts": 100.0}
    if ok:
        job["snapshot_id"] = "0bd9a2d9"
    return {"command": "run", "host": "db1", "ok": ok, "exit_code": 0 if ok else 1, "finished_ts": 200.0, "jobs": [job]}


def samples(text: str) -> dict[str, str]:
    return dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))


def test_metrics_show_success_and_the_snapshot() -> None:
    found = samples(metrics(status(True)))
    assert found['portalops_backup_last_run_success{host="db1",command="run"}'] == "1"
    assert found['portalops_backup_job_duration_seconds{host="db1",job="db-dump"}'] == "2.500"
    assert found['portalops_backup_job_snapshot_info{host="db1",job="db-dump",snapshot_id="0bd9a2d9"}'] == "1"


def test_metrics_of_a_failed_run_leave_no_stale_success() -> None:
    found = samples(metrics(status(False)))
    assert found['portalops_backup_last_run_success{host="db1",command="run"}'] == "0"
    assert found['portalops_backup_job_success{host="db1",job="db-dump"}'] == "0"
    assert found['portalops_backup_exit_code{host="db1",command="run"}'] == "1"
    # The time of the last good run stays what it was; no snapshot is claimed.
    assert found['portalops_backup_job_last_success_timestamp_seconds{host="db1",job="db-dump"}'] == "100"
    assert not any(key.startswith("portalops_backup_job_snapshot_info") for key in found)


def manifest(rows: int, checksum: str = "111") -> dict[str, Any]:
    return {"databases": {"wp": {"tables": {"wp_posts": {"rows": rows, "checksum": checksum}}}}}


def test_a_restored_database_is_compared_table_by_table() -> None:
    assert compare_database(manifest(5), manifest(5)) == []
    assert compare_database(manifest(5), manifest(4)) == ["wp.wp_posts: 4 rows, manifest 5"]
    assert compare_database(manifest(5), manifest(5, "222")) == ["wp.wp_posts: checksum 222, manifest 111"]
    assert compare_database(manifest(5), {"databases": {}}) == ["wp: missing"]


def wordpress(posts: int, options: int, checksum: str, binlog: list[str | None]) -> dict[str, Any]:
    tables = {"wp_options": {"rows": options, "checksum": checksum}, "wp_posts": {"rows": posts, "checksum": "111"}}
    return {"databases": {"wp": {"tables": tables}}, "binlog": binlog}


def test_a_table_written_during_a_backup_must_be_there_not_at_a_count_no_manifest_saw() -> None:
    # CI, a physical restore: wp_options had 134 rows before and after the backup, 132 at its moment (WordPress
    # deleted two transient rows and set them again); "outside 134..134" failed a sound restore.
    before = wordpress(5, 134, "aaa", ["bin.000016 100", "bin.000016 100"])
    busy = {**before, "consistent": False, "after": wordpress(5, 134, "bbb", ["bin.000016 900", "bin.000016 950"])}
    assert manifest_problems(busy, wordpress(5, 132, "ccc", [None, None])) == []
    # The binary log moved: any table may have been written and written back; each must still be there and
    # a core table not emptied.
    assert manifest_problems(busy, wordpress(9, 134, "ccc", [None, None])) == []
    assert manifest_problems(busy, wordpress(5, 0, "ccc", [None, None])) == [
        "wp.wp_options: empty, the backup had 134 rows"
    ]
    assert manifest_problems(busy, {"databases": {"wp": {"tables": {}}}}) == [
        "wp.wp_options: missing",
        "wp.wp_posts: missing",
    ]
    assert manifest_problems(busy, {"databases": {}}) == ["wp: missing"]


def test_with_no_binary_log_a_table_the_same_before_and_after_a_backup_is_held_to_its_count() -> None:
    before = wordpress(5, 134, "aaa", [None, None])
    busy = {**before, "consistent": False, "after": wordpress(5, 136, "bbb", [None, None])}
    assert manifest_problems(busy, wordpress(5, 131, "ccc", [None, None])) == []  # written: options
    assert manifest_problems(busy, wordpress(6, 131, "ccc", [None, None])) == [
        "wp.wp_posts: 6 rows, 5 before and after the backup"
    ]
    # Older manifests have no 'binlog' at all.
    old = {"databases": before["databases"], "consistent": False, "after": {"databases": busy["after"]["databases"]}}
    assert manifest_problems(old, wordpress(6, 131, "ccc", [None, None])) == [
        "wp.wp_posts: 6 rows, 5 before and after the backup"
    ]


def test_a_backup_is_consistent_only_when_the_tables_and_the_binary_log_stayed_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    after: dict[str, Any] = {}
    monkeypatch.setattr(database, "database_manifest", lambda *_, **__: after)
    before = wordpress(5, 134, "aaa", ["bin.1 100", "bin.1 100"])
    after.update(wordpress(5, 134, "aaa", ["bin.1 100", "bin.1 100"]))
    assert database.stable_database_manifest(["wp"], 10, before)["consistent"] is True
    # Written and written back during the backup (a transient set and deleted): the same tables, not the same log.
    after.update(binlog=["bin.1 100", "bin.1 420"])
    assert database.stable_database_manifest(["wp"], 10, before) == {**before, "consistent": False, "after": after}
    after.update(binlog=[None, None])  # no binary log: the tables say
    assert database.stable_database_manifest(["wp"], 10, before)["consistent"] is True
    after.update(wordpress(5, 135, "bbb", [None, None]))
    assert database.stable_database_manifest(["wp"], 10, before)["consistent"] is False


def test_files_manifest_catches_a_changed_a_missing_file_and_a_wrong_link(tmp_path: Path) -> None:
    source = tmp_path / "site"
    (source / "uploads").mkdir(parents=True)
    (source / "uploads" / "a.jpg").write_bytes(b"image")
    (source / "uploads" / "b.txt").write_text("text")
    (source / "themes").symlink_to("/usr/share/wordpress/wp-content/themes")
    (source / "cache.tmp").write_text("skip me")
    taken = files_manifest([str(source)], exclude=["*.tmp"])
    assert taken["count"] == 2
    assert str(source / "themes") in taken["links"]

    restored = tmp_path / "restored"
    copy = restored / str(source).lstrip("/")
    (copy / "uploads").mkdir(parents=True)
    (copy / "uploads" / "a.jpg").write_bytes(b"IMAGE")
    (copy / "themes").symlink_to("/elsewhere")
    problems = compare_files(taken, restored)
    assert f"{source}/uploads/a.jpg: sha256 differs from the manifest" in problems
    assert f"{source}/uploads/b.txt: not restored" in problems
    assert any("symlink" in p for p in problems)


def test_unchanged_files_are_not_read_again_but_changed_ones_are(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("one")
    cache: dict[str, list[Any]] = {}
    first = files_manifest([str(tmp_path)], cache=cache)
    # A poisoned cache entry with the file's real size and mtime is trusted: the file was not read.
    info = (tmp_path / "a").stat()
    cache[str(tmp_path / "a")] = [info.st_size, info.st_mtime_ns, "cached"]
    assert files_manifest([str(tmp_path)], cache=cache)["files"][str(tmp_path / "a")]["sha256"] == "cached"
    (tmp_path / "a").write_text("two!")
    again = files_manifest([str(tmp_path)], cache=cache)["files"][str(tmp_path / "a")]["sha256"]
    assert again not in {"cached", first["files"][str(tmp_path / "a")]["sha256"]}


def test_a_missing_path_fails_the_files_job(tmp_path: Path) -> None:
    with pytest.raises(JobError, match="does not exist"):
        files_manifest([str(tmp_path / "nope")])


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
    result["started_ts"] = started + 40  # the drill host prepared itself for 40 s first
    result["site_verified_ts"] = started + 95
    summary = drill_report.summarise(result, started)
    assert summary["ok"] is True
    assert summary["rto_s"] == 55.0  # from the restore's start, on the drill host's clock
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


# --------------------------------------------------------------------------- files: verify-files, restore-files


def site_tree(root: Path) -> Path:
    uploads = root / "sites/portal/wp-content/uploads/2026/11"
    uploads.mkdir(parents=True)
    (uploads / "logo.png").write_bytes(b"\x89PNG logo")
    (uploads / "photo.jpg").write_bytes(b"jpeg photo")
    (root / "sites/portal/wp-content/themes").symlink_to("/usr/share/wordpress/wp-content/themes")
    return root / "sites"


def test_verify_files_names_changed_missing_and_added_files_and_links(tmp_path: Path) -> None:
    tree = site_tree(tmp_path)
    manifest = files_manifest([str(tree)])
    assert files_diff(manifest, live_files_manifest([str(tree)], None)) == {
        "changed": [],
        "missing": [],
        "added": [],
    }
    uploads = tree / "portal/wp-content/uploads"
    (uploads / "2026/11/logo.png").write_bytes(b"defaced")
    (uploads / "2026/11/photo.jpg").unlink()
    (uploads / "x.php").write_text("<?php system($_GET['c']);")
    links = tree / "portal/wp-content/themes"
    links.unlink()
    links.symlink_to("/tmp/evil-themes")
    diff = files_diff(manifest, live_files_manifest([str(tree)], None))
    assert diff == {
        "changed": sorted([str(uploads / "2026/11/logo.png"), str(links)]),
        "missing": [str(uploads / "2026/11/photo.jpg")],
        "added": [str(uploads / "x.php")],
    }


def test_verify_files_reads_every_file_again_even_with_size_and_mtime_kept(tmp_path: Path) -> None:
    tree = site_tree(tmp_path)
    logo = tree / "portal/wp-content/uploads/2026/11/logo.png"
    manifest = files_manifest([str(tree)], cache={})
    info = logo.stat()
    logo.write_bytes(b"\x89PNG lOgo")  # same size
    os.utime(logo, ns=(info.st_atime_ns, info.st_mtime_ns))  # same mtime: a hash cache would miss it
    assert files_diff(manifest, live_files_manifest([str(tree)], None))["changed"] == [str(logo)]


def test_a_top_path_gone_entirely_is_all_missing_not_an_error(tmp_path: Path) -> None:
    tree = site_tree(tmp_path)
    config = tmp_path / "etc-wordpress"
    config.mkdir()
    (config / "config-portal.php").write_text("<?php")
    manifest = files_manifest([str(tree), str(config)])
    (config / "config-portal.php").unlink()
    config.rmdir()
    diff = files_diff(manifest, live_files_manifest([str(tree), str(config)], None))
    assert diff["missing"] == [str(config / "config-portal.php")] and not diff["changed"]


def test_excluded_files_are_not_reported_as_added(tmp_path: Path) -> None:
    tree = site_tree(tmp_path)
    manifest = files_manifest([str(tree)], ["*.tmp"])
    (tree / "portal/wp-content/uploads/upload.tmp").write_text("partial")
    assert files_diff(manifest, live_files_manifest([str(tree)], ["*.tmp"]))["added"] == []


def test_the_newest_or_the_named_files_snapshot_is_chosen() -> None:
    listed = [
        {"id": "aaaa1111", "short_id": "aaaa1111", "time": "2026-11-26T02:00:00.123456789Z"},
        {"id": "bbbb2222", "short_id": "bbbb2222", "time": "2026-11-27T02:00:00.5Z"},
    ]
    assert pick_snapshot(listed, "cms-files", None, "the repository")["id"] == "bbbb2222"
    assert pick_snapshot(listed, "cms-files", "aaaa", "the repository")["id"] == "aaaa1111"
    with pytest.raises(JobError, match="snapshot cccc of job cms-files not found"):
        pick_snapshot(listed, "cms-files", "cccc", "the repository")
    with pytest.raises(JobError, match="no snapshot of job cms-files"):
        pick_snapshot([], "cms-files", None, "the repository")


def test_a_restic_include_pattern_matches_only_its_own_path() -> None:
    assert restic_include("/u/2026/a[1]*?.png") == r"/u/2026/a\[1\]\*\?.png"
    assert restic_include("/var/lib/wordpress/sites/portal/x.php") == "/var/lib/wordpress/sites/portal/x.php"


def test_evidence_keeps_the_files_as_found_with_their_sha256_root_only(tmp_path: Path) -> None:
    tree = site_tree(tmp_path)
    shell = tree / "portal/wp-content/uploads/x.php"
    shell.write_text("<?php eval($_POST['c']);")
    link = tree / "portal/wp-content/themes"
    evidence = tmp_path / "evidence/20261127T180000Z"
    sums = keep_evidence([str(shell), str(link), str(tree / "gone.php")], evidence, {"job": "cms-files"})
    assert sums[str(shell)] == sha256_file(shell) and str(link) not in sums
    assert evidence.stat().st_mode & 0o777 == 0o700
    with tarfile.open(evidence / "evidence.tar") as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert members[str(shell).lstrip("/")].isfile() and members[str(link).lstrip("/")].issym()
        extracted = tar.extractfile(members[str(shell).lstrip("/")])
        assert extracted is not None and extracted.read() == shell.read_bytes()
    listed = (evidence / "SHA256SUMS").read_text()
    assert f"{sums[str(shell)]}  {shell}\n" in listed
    assert f"{sha256_file(evidence / 'evidence.tar')}  evidence.tar\n" in listed
    assert json.loads((evidence / "details.json").read_text()) == {"job": "cms-files"}


def test_a_restored_file_replaces_the_live_one_with_the_snapshots_mode_and_parents(tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    live = tmp_path / "live/uploads/2026/11/photo.jpg"
    source = staging / str(live).lstrip("/")
    source.parent.mkdir(parents=True)
    source.parent.chmod(0o750)
    source.write_bytes(b"the photo")
    source.chmod(0o640)
    put_in_place(source, live, staging)
    assert live.read_bytes() == b"the photo" and live.stat().st_mode & 0o777 == 0o640
    assert live.parent.stat().st_mode & 0o777 == 0o750
    source.write_bytes(b"the photo again")
    live.write_bytes(b"defaced")
    put_in_place(source, live, staging)
    assert live.read_bytes() == b"the photo again"
    assert [p.name for p in live.parent.iterdir()] == ["photo.jpg"], "no temporary file left behind"


def test_a_restored_link_replaces_a_changed_link(tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    live = tmp_path / "live/themes"
    live.parent.mkdir()
    live.symlink_to("/tmp/evil")
    source = staging / str(live).lstrip("/")
    source.parent.mkdir(parents=True)
    source.symlink_to("/usr/share/wordpress/wp-content/themes")
    put_in_place(source, live, staging)
    assert os.readlink(live) == "/usr/share/wordpress/wp-content/themes"


def test_added_files_are_moved_into_the_evidence_never_deleted(tmp_path: Path) -> None:
    tree = site_tree(tmp_path)
    shell = tree / "portal/wp-content/uploads/x.php"
    shell.write_text("<?php")
    moved = quarantine([str(shell), str(tree / "already-gone.php")], tmp_path / "evidence")
    assert moved == [str(shell)] and not shell.exists()
    assert (tmp_path / "evidence/quarantine" / str(shell).lstrip("/")).read_text() == "<?php"


def test_evidence_directories_never_collide(tmp_path: Path) -> None:
    moment = dt.datetime(2026, 11, 27, 18, 0, tzinfo=dt.UTC)
    first = unique_directory(tmp_path, moment)
    first.mkdir()
    assert first.name == "20261127T180000Z"
    assert unique_directory(tmp_path, moment).name == "20261127T180000Z-2"


def test_files_commands_refuse_a_database_or_unknown_job() -> None:
    config = {"jobs": [{"name": "db-dump", "type": "mariadb-dump"}, {"name": "cms-files", "type": "files"}]}
    assert files_job(config, "cms-files")["name"] == "cms-files"
    with pytest.raises(ConfigError, match="not a files job"):
        files_job(config, "db-dump")
    with pytest.raises(ConfigError, match="no such job: www"):
        files_job(config, "www")


# --------------------------------------------------------------------------- database restore (l1_database_lost)

DB_JOBS = [
    {"name": "db-dump", "type": "mariadb-dump", "databases": ["wp"]},
    {"name": "db-physical", "type": "mariadb-backup", "databases": ["wp"]},
]


def snap(short: str, job: str, time: str) -> dict[str, Any]:
    return {"id": short * 8, "short_id": short, "time": time, "tags": ["portalops", f"job:{job}"], "paths": ["/x"]}


def test_the_restore_takes_the_newest_physical_backup_then_the_newest_dump() -> None:
    listed = [
        snap("aaaa", "db-physical", "2026-11-26T01:30:00.123456789Z"),
        snap("bbbb", "db-physical", "2026-11-27T01:30:00Z"),
        snap("cccc", "db-dump", "2026-11-27T01:29:00Z"),
        snap("dddd", "db-dump", "2026-11-25T01:29:00Z"),
        snap("eeee", "etc", "2026-11-27T09:00:00Z"),
    ]
    order = restore_candidates(listed, DB_JOBS)
    assert [(kind, s["short_id"]) for kind, s in order] == [("mariadb-backup", "bbbb"), ("mariadb-dump", "cccc")]
    # A chosen snapshot is restored alone: no fallback to one the person did not choose.
    assert [s["short_id"] for _, s in restore_candidates(listed, DB_JOBS, "dddd")] == ["dddd"]
    with pytest.raises(JobError, match="no snapshot eeee of a database job"):
        restore_candidates(listed, DB_JOBS, "eeee")
    with pytest.raises(JobError, match="no snapshot of a database job"):
        restore_candidates(listed[-1:], DB_JOBS)


def test_only_the_dump_is_restored_when_there_is_no_physical_backup() -> None:
    order = restore_candidates([snap("cccc", "db-dump", "2026-11-27T01:29:00Z")], DB_JOBS)
    assert [(kind, s["short_id"]) for kind, s in order] == [("mariadb-dump", "cccc")]


def test_a_restore_is_verified_exactly_against_the_manifest_of_a_quiet_backup() -> None:
    assert manifest_problems(manifest(5), manifest(5)) == []
    assert manifest_problems(manifest(5), manifest(5, "999")) == ["wp.wp_posts: checksum 999, manifest 111"]
    assert manifest_problems(manifest(5), manifest(4)) == ["wp.wp_posts: 4 rows, manifest 5"]
    busy = {**manifest(5), "consistent": False, "after": manifest(7)}  # written during the backup: must be there
    assert manifest_problems(busy, manifest(6, "999")) == []
    assert manifest_problems(busy, {"databases": {"wp": {"tables": {}}}}) == ["wp.wp_posts: missing"]


def test_lost_or_corrupted_is_told_apart_from_changed_since_the_backup() -> None:
    backup = {
        "databases": {
            "wp": {
                "tables": {
                    "wp_posts": {"rows": 40, "checksum": "1"},
                    "wp_options": {"rows": 150, "checksum": "2"},
                    "wp_links": {"rows": 0, "checksum": "3"},
                    "wp_comments": {"rows": 1, "checksum": "4"},
                }
            }
        }
    }

    def live(**rows: int) -> dict[str, Any]:
        return {"databases": {"wp": {"tables": {t: {"rows": n, "checksum": None} for t, n in rows.items()}}}}

    # New posts, changed options, the only comment deleted, an extra plugin table: the site's normal work.
    normal = live(wp_posts=45, wp_options=140, wp_links=0, wp_comments=0, wp_plugin=3)
    assert health_problems(backup, normal) == []
    assert changes_since(backup, live(wp_posts=45, wp_options=150, wp_links=0, wp_comments=1)) == [
        "wp.wp_posts 40 -> 45 rows"
    ]
    assert health_problems(backup, live(wp_options=150, wp_links=0, wp_comments=1)) == ["wp.wp_posts: missing"]
    assert health_problems(backup, live(wp_posts=0, wp_options=150, wp_links=0, wp_comments=1)) == [
        "wp.wp_posts: empty, the backup had 40 rows"
    ]
    # Fewer rows is a change, not a loss (the core tables' emptied rule is for posts, options and users).
    assert health_problems(backup, live(wp_posts=19, wp_options=150, wp_links=0, wp_comments=1)) == []
    assert health_problems(backup, {"databases": {}}) == ["wp: missing"]
    unreadable = {"databases": {}, "errors": ["wp: unreadable: mariadb query failed: Table 'wp.wp_posts' is marked"]}
    assert health_problems(backup, unreadable) == unreadable["errors"]


def test_only_wordpress_core_tables_can_be_lost_a_plugin_table_or_a_spam_purge_is_a_change() -> None:
    tables = {
        "wp_posts": 400,
        "wp_options": 150,
        "wp_users": 3,
        "wp_comments": 5000,
        "wp_commentmeta": 9000,
        "wp_2_posts": 10,
        "wp_yoast_indexable": 800,
        "wp_wc_sessions": 50,
    }
    backup = {"databases": {"wp": {"tables": {t: {"rows": n, "checksum": "1"} for t, n in tables.items()}}}}

    def live(**rows: int) -> dict[str, Any]:
        return {"databases": {"wp": {"tables": {t: {"rows": n, "checksum": None} for t, n in rows.items()}}}}

    # A plugin dropped its own tables, spam comments purged (even all of them), a multisite blog gone.
    site_work = live(wp_posts=401, wp_options=140, wp_users=3, wp_comments=0, wp_commentmeta=12, wp_new=1)
    assert health_problems(backup, site_work) == []
    assert "wp.wp_yoast_indexable gone (800 rows at the backup)" in changes_since(backup, site_work)
    assert "wp.wp_comments 5000 -> 0 rows" in changes_since(backup, site_work)
    # A core table missing, or posts, options or users emptied, is lost.
    lost = live(wp_posts=400, wp_options=0, wp_users=3, wp_comments=5000)
    assert health_problems(backup, lost) == [
        "wp.wp_options: empty, the backup had 150 rows",
        "wp.wp_commentmeta: missing",
    ]
    assert core_tables(["wp_posts", "wp_2_posts", "wp_term_taxonomy", "wp_wc_sessions"]) == {
        "wp_posts": "posts",
        "wp_term_taxonomy": "term_taxonomy",
    }
    assert core_tables(["site7_options", "site7_links", "wp_links"]) == {
        "site7_options": "options",
        "site7_links": "links",
    }


def test_the_dump_stream_carries_its_manifest_on_the_last_line() -> None:
    line = MANIFEST_MARK + json.dumps(manifest(5)) + "\n"
    assert manifest_from_dump(b"INSERT ...;\n-- Dump completed\n" + line.encode()) == manifest(5)
    with pytest.raises(JobError, match="no manifest line"):
        manifest_from_dump(b"-- Dump completed\n")


def test_the_rpo_is_the_time_since_the_restored_snapshot_and_the_datadir_is_kept_aside() -> None:
    moment = dt.datetime(2026, 11, 27, 2, 0, 30, tzinfo=dt.UTC)
    taken = snap("bbbb", "db-physical", "2026-11-27T01:30:00.987654321Z")
    assert rpo_seconds(taken["time"], moment) == 1829.0
    assert rpo_line(taken, moment).startswith("RPO (data-loss window): 1829 s = 30.5 min; writes after ")
    assert "2026-11-27T01:30:00Z (snapshot bbbb)" in rpo_line(taken, moment)
    assert aside_path(Path("/var/lib/mysql"), moment) == Path("/var/lib/mysql.before-restore-20261127T020030Z")


def test_restore_database_is_refused_without_yes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, restic="true", lock_file=str(tmp_path / "lock"), jobs=DB_JOBS, keep={"daily": 7})
    assert main(["--config", str(config), "restore-database"]) == EXIT_BAD_INPUT
    assert "repeat with --yes" in capsys.readouterr().err


def test_check_database_passes_a_written_database_and_fails_a_lost_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The runbook's guard: a database that only changed since the backup is never restored."""
    config = {**BASE, "status_dir": str(tmp_path), "jobs": DB_JOBS}
    kept = {**manifest(5), "kind": "mariadb", "job": "db-physical", "taken": "2026-11-27T01:30:00Z"}
    keep_manifest(config, "db-physical", kept, {"snapshot_id": "bbbb" * 8})
    tables: dict[str, dict[str, Any]] = {"wp_posts": {"rows": 6, "checksum": None}}
    replace(monkeypatch, "database_manifest", lambda dbs, *a, **k: {"databases": {"wp": {"tables": dict(tables)}}})
    log = Log(None)
    assert command_check_database(config, log) == EXIT_OK
    out = capsys.readouterr().out
    assert "snapshot bbbbbbbb of db-physical" in out and "changed since the backup: wp.wp_posts 5 -> 6 rows" in out
    tables.clear()
    tables["wp_options"] = {"rows": 3, "checksum": None}
    assert command_check_database(config, log) == EXIT_FAILED
    assert "LOST OR CORRUPTED: wp.wp_posts: missing" in capsys.readouterr().out
    # A restore that did not verify, with no backup since, is not a healthy database either.
    tables.clear()
    tables["wp_posts"] = {"rows": 5, "checksum": None}
    failed = {"command": "restore-database", "finished": "2026-11-27T03:00:00Z", "ok": False, "errors": ["x: missing"]}
    (tmp_path / "restore-database.json").write_text(json.dumps(failed))
    assert command_check_database(config, log) == EXIT_FAILED
    assert "did not verify: x: missing" in capsys.readouterr().out


@pytest.mark.parametrize(
    "error",
    [
        "ERROR 2002 (HY000): Can't connect to local server through socket '/run/mysqld/mysqld.sock' (2)",
        "ERROR 2002 (HY000): Can't connect to local server through socket '/run/mysqld/mysqld.sock' (111)",
        "ERROR 1040 (HY000): Too many connections",
        "ERROR 1053 (08S01): Server shutdown in progress",
        "ERROR 1205 (HY000): Lock wait timeout exceeded; try restarting transaction",
        "ERROR 2013 (HY000): Lost connection to server during query",
        "Command '['mariadb']' timed out after 3600 seconds",
    ],
)
def test_check_database_that_cannot_read_the_server_is_unknown_never_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], error: str
) -> None:
    """A server starting after a crash, refusing, out of connections or in a lock wait: exit 75, not 'lost'."""
    config = {**BASE, "status_dir": str(tmp_path), "jobs": DB_JOBS}
    kept = {**manifest(5), "kind": "mariadb", "job": "db-physical", "taken": "2026-11-27T01:30:00Z"}
    keep_manifest(config, "db-physical", kept, {"snapshot_id": "bbbb" * 8})

    def unreadable(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise JobError(f"mariadb query failed: {error}")

    replace(monkeypatch, "database_manifest", unreadable)
    assert command_check_database(config, Log(None)) == EXIT_UNKNOWN == 75
    out = capsys.readouterr().out
    assert "LOST" not in out
    assert out.splitlines()[-1] == (
        f"check-database: unknown, the server cannot be read right now (not lost): wp: unreadable: "
        f"mariadb query failed: {error}"
    )


def test_check_database_with_a_table_the_server_says_is_not_there_is_still_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = {**BASE, "status_dir": str(tmp_path), "jobs": DB_JOBS}
    kept = {**manifest(5), "kind": "mariadb", "job": "db-physical", "taken": "2026-11-27T01:30:00Z"}
    keep_manifest(config, "db-physical", kept, {"snapshot_id": "bbbb" * 8})

    def missing(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise JobError("mariadb query failed: ERROR 1146 (42S02): Table 'wp.wp_posts' doesn't exist")

    replace(monkeypatch, "database_manifest", missing)
    assert command_check_database(config, Log(None)) == EXIT_FAILED


def test_a_failed_physical_restore_falls_back_to_the_dump_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = {**BASE, "status_dir": str(tmp_path), "jobs": DB_JOBS, "mariadb_datadir": str(tmp_path / "mysql")}
    listed = [snap("bbbb", "db-physical", "2026-11-27T01:30:00Z"), snap("cccc", "db-dump", "2026-11-27T01:29:00Z")]
    done: list[str] = []

    def physical(*args: Any) -> dict[str, Any]:
        done.append("physical")
        raise JobError("mariadb-backup --move-back failed: disk full")

    def logical(config: dict[str, Any], snapshot: dict[str, Any], databases: list[str], *args: Any) -> dict[str, Any]:
        done.append(f"logical {snapshot['short_id']} {databases}")
        return manifest(5)

    replace(monkeypatch, "run_restic", lambda *a, **k: None)
    replace(monkeypatch, "database_snapshots", lambda config: listed)
    replace(monkeypatch, "restore_physical", physical)
    replace(monkeypatch, "restore_logical", logical)
    replace(monkeypatch, "live_manifest", lambda dbs, newest, checksums=True: {**manifest(5), "errors": []})
    assert command_restore_database(config, None, True, Log(None)) == EXIT_OK
    assert done == ["physical", "logical cccc ['wp']"]
    out = capsys.readouterr().out
    result = json.loads(out.splitlines()[-1])
    assert result["path"] == "logical" and result["problems"] == [] and result["snapshot"] == "cccc" * 8
    assert result["fallback_from"] == ["physical restore of bbbb: mariadb-backup --move-back failed: disk full"]
    assert "RPO (data-loss window): " in out
    assert json.loads((tmp_path / "restore-database.json").read_text())["ok"] is True


def test_a_half_done_physical_restore_puts_the_old_data_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, ...]] = []
    replace(monkeypatch, "systemctl", lambda *args: calls.append(args))
    datadir, aside = tmp_path / "mysql", tmp_path / "mysql.before-restore-x"
    (datadir / "half").mkdir(parents=True)
    (aside / "wp").mkdir(parents=True)
    moment = dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC)
    put_back(datadir, aside, moment, Log(None))
    assert (datadir / "wp").is_dir() and not aside.exists()
    assert (tmp_path / "mysql.failed-restore-20261127T020000Z" / "half").is_dir()
    assert calls == [("stop", "mariadb"), ("start", "mariadb")]


class FakeServer:
    """The SQL restore_logical sends, answered from a dict of databases -> tables -> rows; the dump the
    fake mariadb client received (``loaded``) creates the databases and tables it names."""

    def __init__(self, loaded: Path, live: dict[str, dict[str, int]]) -> None:
        self.loaded = loaded
        self.databases = {name: dict(tables) for name, tables in live.items()}
        self.sql: list[str] = []
        self.seen = 0

    def sync(self) -> None:
        if not self.loaded.exists() or self.loaded.stat().st_size == self.seen:
            return
        text = self.loaded.read_text()
        self.seen = len(text.encode())
        current = None
        for line in text.splitlines():
            if found := re.match(r"CREATE DATABASE `([^`]+)`", line):
                self.databases.setdefault(found[1], {})
            elif found := re.match(r"USE `([^`]+)`;", line):
                current = found[1]
            elif (found := re.match(r"CREATE TABLE `([^`]+)`", line)) and current:
                self.databases[current][found[1]] = 5
            elif (found := re.match(r"INSERT INTO `([^`]+)` VALUES", line)) and current:
                self.databases[current][found[1]] = line.count("),(") + 1

    def __call__(self, statement: str, *args: Any, **kwargs: Any) -> list[list[str]]:
        self.sync()
        self.sql.append(statement)
        quoted = re.findall(r"'([^']*)'", statement)
        if statement == "SHOW DATABASES":
            return [[name] for name in self.databases]
        if statement.startswith("SELECT 'view'"):
            return []
        if "SUM(data_length" in statement:
            return [["1000"]]
        if "information_schema.schemata" in statement:
            return [["utf8mb4", "utf8mb4_unicode_ci"]]
        if "table_type <> 'VIEW'" in statement:
            return [[t] for t in sorted(self.databases.get(quoted[0], {}))]
        if found := re.match(r"CREATE DATABASE `([^`]+)`", statement):
            assert found[1] not in self.databases
            self.databases[found[1]] = {}
        elif found := re.match(r"DROP DATABASE (?:IF EXISTS )?`([^`]+)`", statement):
            self.databases.pop(found[1], None)
        elif "RENAME TABLE" in statement:
            assert statement.count("RENAME TABLE") == 1  # one statement: all or nothing
            for source, table, target in re.findall(r"`([^`]+)`\.`([^`]+)` TO `([^`]+)`\.`[^`]+`", statement):
                self.databases[target][table] = self.databases[source].pop(table)
        else:
            raise AssertionError(f"unexpected SQL: {statement}")
        return []

    def manifest(self, databases: list[str], newest: int, checksums: bool = True) -> dict[str, Any]:
        self.sync()
        found = {
            d: {"tables": {t: {"rows": n, "checksum": None} for t, n in self.databases[d].items()}}
            for d in databases
            if d in self.databases
        }
        return {"kind": "mariadb", "databases": found, "errors": []}

    def changes(self) -> list[str]:
        return [s.split()[0] for s in self.sql if not s.startswith(("SELECT", "SHOW"))]


DUMP_MANIFEST = {"databases": {"wp": {"tables": {"wp_posts": {"rows": 2, "checksum": None}}}}}
DUMP = (
    b"-- Current Database: `wp`\n"
    b"CREATE DATABASE /*!32312 IF NOT EXISTS*/ `wp` /*!40100 DEFAULT CHARACTER SET utf8mb4 */;\n"
    b"USE `wp`;\nDROP TABLE IF EXISTS `wp_posts`;\nCREATE TABLE `wp_posts` (\n  `ID` int\n);\n"
    b"INSERT INTO `wp_posts` VALUES (1),(2);\n-- Dump completed on 2026-11-27  1:29:00\n"
    + (MANIFEST_MARK + json.dumps(DUMP_MANIFEST) + "\n").encode()
)
LIVE = {"wp": {"wp_posts": 0, "wp_options": 7}, "mysql": {"user": 3}}
MOMENT = dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC)
NEW, BEFORE = "wp__portalops_restore_20261127T020000Z", "wp__portalops_before_20261127T020000Z"


def fake_dump_restore(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dump: bytes, code: int = 0, client: str = ""
) -> tuple[dict[str, Any], FakeServer]:
    """restore_logical with restic dump printing ``dump`` (exit ``code``), a mariadb client on PATH that keeps
    what it reads (then runs ``client``), and the server a FakeServer holding LIVE."""
    (tmp_path / "dump").write_bytes(dump)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    loaded = tmp_path / "loaded.sql"
    (bin_dir / "mariadb").write_text(f"#!/bin/sh\ncat > {loaded}\n{client}\n")
    (bin_dir / "mariadb").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    replace(monkeypatch, "restic_argv", lambda config, *args: ["sh", "-c", f"cat {tmp_path / 'dump'}; exit {code}"])
    replace(monkeypatch, "restic_env", lambda config: dict(os.environ))
    replace(monkeypatch, "server_answers", lambda: True)
    replace(monkeypatch, "check_room", lambda *args: "")
    server = FakeServer(loaded, LIVE)
    replace(monkeypatch, "mariadb", server)
    replace(monkeypatch, "live_manifest", server.manifest)
    config = {**BASE, "status_dir": str(tmp_path), "restore_dir": str(tmp_path / "restore")}
    return config, server


def restore(config: dict[str, Any], tmp_path: Path, **kwargs: Any) -> dict[str, Any]:
    found: dict[str, Any] = restore_logical(
        config, snap("cccc", "db-dump", "2026-11-27T01:29:00Z"), ["wp"], tmp_path / "no", MOMENT, Log(None), **kwargs
    )
    return found


def test_the_dump_touches_nothing_until_the_whole_dump_is_read_and_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    line = (MANIFEST_MARK + json.dumps(DUMP_MANIFEST) + "\n").encode()
    for dump, code, message in [
        (DUMP, 1, "restic"),  # restic dump failed half-way
        (b"CREATE DATABASE wp;\nINSERT INTO", 0, "incomplete"),  # cut: no 'Dump completed', no manifest
        (b"CREATE DATABASE wp;\n" + line, 0, "incomplete"),  # mariadb-dump did not finish
    ]:
        case = tmp_path / str(len(dump) + code)
        case.mkdir()
        config, server = fake_dump_restore(case, monkeypatch, dump, code)
        with pytest.raises(Untouched, match=message):
            restore(config, case)
        assert server.changes() == [] and not server.loaded.exists()
        assert server.databases == LIVE
        assert list((case / "restore").iterdir()) == []


def test_a_logical_restore_loads_new_databases_and_swaps_every_table_in_one_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, server = fake_dump_restore(tmp_path, monkeypatch, DUMP)
    phases: list[tuple[str, bool | None]] = []
    found = restore(config, tmp_path, progress=lambda phase, changed, **extra: phases.append((phase, changed)))
    assert found["evidence"] == {"id": "20261127T020000Z", "databases": {"wp": BEFORE}}
    # The live name holds the dump's tables only; what was live (a table the dump lacks too) is the evidence.
    assert server.databases == {"wp": {"wp_posts": 2}, "mysql": {"user": 3}, BEFORE: {"wp_posts": 0, "wp_options": 7}}
    assert server.changes() == ["CREATE", "SET", "DROP"]
    assert server.sql[-2] == (
        "SET SESSION lock_wait_timeout = 60;\nRENAME TABLE `wp`.`wp_options` TO `" + BEFORE + "`.`wp_options`, "
        f"`wp`.`wp_posts` TO `{BEFORE}`.`wp_posts`, `{NEW}`.`wp_posts` TO `wp`.`wp_posts`"
    )
    assert server.loaded.read_bytes().startswith(
        b"-- Current Database: `wp`\nCREATE DATABASE `"
        + NEW.encode()
        + b"` /*!40100 DEFAULT CHARACTER SET utf8mb4 */;\n"
        b"USE `" + NEW.encode() + b"`;\n"
    )
    assert phases == [("loading", False), ("verifying", False), ("swapping", None), ("swapped", True)]
    assert list((tmp_path / "restore").iterdir()) == []


def test_a_lost_live_database_is_created_again_and_keeps_no_empty_evidence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, server = fake_dump_restore(tmp_path, monkeypatch, DUMP)
    del server.databases["wp"]
    found = restore(config, tmp_path)
    assert found["evidence"]["databases"] == {}
    assert server.databases == {"wp": {"wp_posts": 2}, "mysql": {"user": 3}}


@pytest.mark.parametrize(
    ("client", "dump", "message"),
    [
        ("echo 'ERROR 1114 (HY000) at line 9: The table is full' >&2; exit 1", DUMP, "The table is full"),
        ("", DUMP.replace(b"(1),(2)", b"(1)"), r"wp.wp_posts: 1 rows, manifest 2"),
        ("", DUMP.replace(b"USE `wp`;", b"/*!50003 ALTER DATABASE `wp` CHARACTER SET latin1 */ ;"), "ALTER DATABASE"),
        ("", DUMP.replace(b"USE `wp`;", b"USE `mysql`;"), "does not carry out: USE `mysql`"),
    ],
)
def test_a_logical_restore_that_fails_before_its_swap_drops_its_new_databases_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, client: str, dump: bytes, message: str
) -> None:
    config, server = fake_dump_restore(tmp_path, monkeypatch, dump, client=client)
    with pytest.raises(Untouched, match=message):
        restore(config, tmp_path)
    assert server.databases == LIVE
    assert "RENAME" not in " ".join(server.sql)


def test_a_restore_stopped_by_its_deadline_mid_load_leaves_the_live_databases_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, server = fake_dump_restore(tmp_path, monkeypatch, DUMP, client="exec sleep 30")
    config |= {"jobs": DB_JOBS, "mariadb_datadir": str(tmp_path / "mysql")}
    replace(monkeypatch, "run_restic", lambda *a, **k: None)
    replace(monkeypatch, "database_snapshots", lambda config: [snap("cccc", "db-dump", "2026-11-27T01:29:00Z")])
    # The deadline is wall time (SIGALRM) and must fall in the load (the client sleeps 30 s): 1.5 s once passed
    # before the load began on CI's loaded machine, during "starting".
    with pytest.raises(DeadlinePassed):
        command_restore_database(config, None, True, Log(None), logical=True, deadline=5)
    assert server.databases == LIVE  # the new database dropped, the live one never touched
    status = json.loads((tmp_path / "restore-database.json").read_text())
    assert status["ok"] is False and status["restore"]["phase"] == "loading"
    assert status["restore"]["live_changed"] is False and status["restore"]["leftovers"] == []
    assert status["errors"] == ["stopped during loading: the restore's deadline of 5 s passed"]
    # check-database does not count a restore that never touched the live databases against them.
    kept = {**DUMP_MANIFEST, "kind": "mariadb", "job": "db-dump", "taken": "2026-11-27T01:29:00Z"}
    keep_manifest(config, "db-dump", kept, {"snapshot_id": "cccc" * 8})
    assert command_check_database(config, Log(None)) == EXIT_FAILED  # wp.wp_posts is empty...
    server.databases["wp"]["wp_posts"] = 2
    assert command_check_database(config, Log(None)) == EXIT_OK  # ...and fine once it is not


def test_dump_lines_are_renamed_only_where_they_name_a_database() -> None:
    names = {"wp": "wp__new", "we`ird": "w2"}
    assert restore_line(b"USE `wp`;\n", names) == b"USE `wp__new`;\n"
    assert restore_line(b"USE `we``ird`;\n", names) == b"USE `w2`;\n"
    create = b"CREATE DATABASE /*!32312 IF NOT EXISTS*/ `wp` /*!40100 DEFAULT CHARACTER SET utf8mb4 */;\n"
    assert restore_line(create, names) == b"CREATE DATABASE `wp__new` /*!40100 DEFAULT CHARACTER SET utf8mb4 */;\n"
    for line in (
        b"INSERT INTO `wp_posts` VALUES (1,'USE `wp`;\\nDROP DATABASE wp');\n",
        b"  `use` int,\n",
        b"-- Current Database: `wp`\n",
        b"DROP TABLE IF EXISTS `wp_posts`;\n",
    ):
        assert restore_line(line, names) == line
    for line in (
        b"USE `other`;\n",
        b"use wp;\n",
        b"DROP DATABASE `wp`;\n",
        b"/*!50003 ALTER DATABASE `wp` CHARACTER SET latin1 */ ;;\n",
        b"CREATE SCHEMA `x`;\n",
    ):
        with pytest.raises(Untouched, match="does not carry out"):
            restore_line(line, names)


def test_new_and_evidence_database_names_fit_mariadb_and_never_equal_a_live_one() -> None:
    assert restore_id(MOMENT) == "20261127T020000Z"
    assert side_database("wp", "before", "20261127T020000Z") == "wp__portalops_before_20261127T020000Z"
    long = "a_county_portal_database_with_a_long_name"
    names = {side_database(long, role, "20261127T020000Z") for role in ("before", "restore")}
    assert all(len(n) <= 64 and n.endswith("_20261127T020000Z") and n != long for n in names) and len(names) == 2
    assert side_database(long + "x", "before", "20261127T020000Z") not in names


def test_the_swap_moves_every_live_table_out_before_any_new_one_in() -> None:
    statement = swap_statement(
        {"b": (["t"], ["t", "u"]), "a": ([], ["t"])}, {"a": ("a_new", "a_old"), "b": ("b_new", "b_old")}
    )
    assert statement == (
        "RENAME TABLE `b`.`t` TO `b_old`.`t`, `a_new`.`t` TO `a`.`t`, `b_new`.`t` TO `b`.`t`, `b_new`.`u` TO `b`.`u`"
    )
    assert swap_statement({"a": ([], [])}, {"a": ("n", "o")}) == ""


def test_a_logical_restore_needs_room_for_the_dump_the_load_and_its_binary_log() -> None:
    mib = 1 << 20
    needs = logical_needs(100 * mib, 300 * mib)
    assert needs == {"dump file": 100 * mib, "new databases": 450 * mib, "binary log": 100 * mib}
    one = {what: (1, "/var/lib") for what in needs}
    assert space_refusal(needs, one, {1: 906 * mib}) == ""
    refused = space_refusal(needs, one, {1: 905 * mib})
    assert refused.startswith("not enough room for a logical restore, nothing changed: 906 MiB needed (dump file")
    assert refused.endswith("905 MiB free")
    apart = {"dump file": (1, "/var/lib"), "new databases": (1, "/var/lib"), "binary log": (2, "/var/log/mysql")}
    assert space_refusal(needs, apart, {1: 806 * mib, 2: 356 * mib}) == ""
    assert "binary log 100 MiB in /var/log/mysql" in space_refusal(needs, apart, {1: 806 * mib, 2: 355 * mib})


def test_a_logical_restore_refused_for_room_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config, server = fake_dump_restore(tmp_path, monkeypatch, DUMP)
    replace(monkeypatch, "check_room", lambda *args: "not enough room for a logical restore, nothing changed: x")
    with pytest.raises(Untouched, match="not enough room"):
        restore(config, tmp_path)
    assert server.sql == [] and not (tmp_path / "restore").exists()


def test_discarding_evidence_takes_a_restore_id_and_drops_only_its_databases(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    server = FakeServer(tmp_path / "none", {"wp": {"t": 1}, BEFORE: {"t": 1}, NEW: {}, "wp__portalops_before_x": {}})
    replace(monkeypatch, "mariadb", server)
    config = {**BASE, "status_dir": str(tmp_path), "jobs": DB_JOBS}
    for bad in ("wp", "", "20261127T020000Z; DROP DATABASE wp", "x", "2026-11-27T02:00:00Z"):
        assert command_discard_evidence(config, bad, Log(None)) == EXIT_BAD_INPUT
    assert command_discard_evidence(config, "20261127T020000Z", Log(None)) == EXIT_OK
    assert set(server.databases) == {"wp", "wp__portalops_before_x"}
    assert command_discard_evidence(config, "20261127T020000Z", Log(None)) == EXIT_FAILED
    assert "no evidence of restore 20261127T020000Z" in capsys.readouterr().out


def test_whether_a_restore_changed_the_live_databases_only_ever_grows() -> None:
    assert changed_so_far(False, False) is False
    assert changed_so_far(False, None) is None and changed_so_far(None, False) is None
    assert changed_so_far(None, True) is True and changed_so_far(True, False) is True


def mount_point(monkeypatch: pytest.MonkeyPatch, datadir: Path) -> None:
    """``datadir`` behaves as a mount point: never renamed, on a filesystem of its own."""
    replace(monkeypatch, "is_mount", lambda path: path == datadir)
    replace(monkeypatch, "same_filesystem", lambda path, other: datadir not in (path, other))
    real_rename = Path.rename

    def rename(self: Path, target: Any) -> Any:
        if self == datadir:
            raise OSError(16, "Device or resource busy")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)


def physical_restore_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any], Path, list[Any]]:
    config = {**BASE, "status_dir": str(tmp_path), "restore_dir": str(tmp_path / "restore")}
    datadir = tmp_path / "mysql"
    for name in ("ibdata1", "mysql", "wp"):
        (datadir / name).mkdir(parents=True)
        (datadir / name / "data").write_text(name)

    def restic(config: dict[str, Any], *args: str, **kwargs: Any) -> None:
        if "--target" not in args:
            return
        prepared = Path(args[args.index("--target") + 1]) / "x"
        prepared.mkdir(parents=True)
        (prepared / "portalops-manifest.json").write_text(json.dumps(manifest(5)))

    calls: list[Any] = []
    replace(monkeypatch, "run_restic", restic)
    replace(monkeypatch, "systemctl", lambda *args: calls.append(args))
    return config, datadir, calls


def test_a_move_aside_that_fails_half_way_on_a_mount_point_is_undone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, datadir, calls = physical_restore_setup(tmp_path, monkeypatch)
    mount_point(monkeypatch, datadir)
    real_move, moves = shutil.move, []

    def move(source: str, target: str) -> Any:
        moves.append(source)
        if len(moves) == 2:
            raise OSError(28, "No space left on device")
        return real_move(source, target)

    monkeypatch.setattr(shutil, "move", move)
    moment = dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC)
    with pytest.raises(OSError, match="No space"):
        restore_physical(config, snap("bbbb", "db-physical", "2026-11-27T01:30:00Z"), datadir, moment, Log(None))
    assert sorted(p.name for p in datadir.iterdir()) == ["ibdata1", "mysql", "wp"]
    assert all((datadir / name / "data").read_text() == name for name in ("ibdata1", "mysql", "wp"))
    assert not aside_path(datadir, moment).exists()
    # Closed (its drop-in loaded) before the stop; put_back removes it (loaded) before its start on the network.
    assert calls == [
        ("daemon-reload",),
        ("stop", "mariadb"),
        ("stop", "mariadb"),
        ("daemon-reload",),
        ("start", "mariadb"),
    ]


def test_a_mount_point_gets_its_entries_back_one_by_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, ...]] = []
    replace(monkeypatch, "systemctl", lambda *args: calls.append(args))
    datadir, aside = tmp_path / "mysql", tmp_path / "mysql.before-restore-x"
    (datadir / "half").mkdir(parents=True)
    (aside / "wp").mkdir(parents=True)
    inode = datadir.stat().st_ino
    mount_point(monkeypatch, datadir)
    moment = dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC)
    put_back(datadir, aside, moment, Log(None))
    assert datadir.stat().st_ino == inode and [p.name for p in datadir.iterdir()] == ["wp"] and not aside.exists()
    assert (tmp_path / "mysql.failed-restore-20261127T020000Z" / "half").is_dir()


def test_the_physical_path_is_refused_without_room_to_keep_a_mount_point_aside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, datadir, calls = physical_restore_setup(tmp_path, monkeypatch)
    mount_point(monkeypatch, datadir)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: type("usage", (), {"free": 4})())
    moment = dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC)
    with pytest.raises(JobError, match=r"not enough room .* physical path refused"):
        restore_physical(config, snap("bbbb", "db-physical", "2026-11-27T01:30:00Z"), datadir, moment, Log(None))
    assert calls == [] and sorted(p.name for p in datadir.iterdir()) == ["ibdata1", "mysql", "wp"]
    # Moved within one filesystem (a rename), no room is needed.
    replace(monkeypatch, "same_filesystem", lambda path, other: True)
    assert room_aside(datadir, aside_path(datadir, moment)) == ""


class FakeMariadbUnit:
    """mariadb.service as systemd runs it: a drop-in counts from the daemon-reload after it is written or
    removed; a (re)start listens on the network unless the loaded drop-in sets --skip-networking."""

    def __init__(self, dropin: Path) -> None:
        self.dropin, self.loaded, self.running, self.closed = dropin, False, True, False
        self.calls: list[tuple[str, ...]] = []
        self.fail: set[str] = set()

    def systemctl(self, *args: str) -> None:
        self.calls.append(args)
        if args[0] in self.fail:
            self.fail.discard(args[0])
            raise JobError(f"systemctl {' '.join(args)} failed: Job for mariadb.service failed")
        if args[0] == "daemon-reload":
            self.loaded = self.dropin.is_file() and "MYSQLD_OPTS=--skip-networking" in self.dropin.read_text()
        elif args[0] == "stop":
            self.running = False
        elif args[0] in ("start", "restart"):
            self.running, self.closed = True, self.loaded

    def mariadb(self, sql: str, *args: Any, **kwargs: Any) -> list[list[str]]:
        assert self.running and sql == "SELECT @@skip_networking", sql
        return [["1" if self.closed else "0"]]

    @property
    def open(self) -> bool:
        return self.running and not self.closed and not self.dropin.exists()


def closed_restore_setup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, closed_dropin: Path
) -> tuple[dict[str, Any], FakeMariadbUnit, list[str]]:
    """A physical restore of snapshot bbbb whose move-back, MariaDB and binary log replay are fakes; the
    list says, for each check, whether MariaDB was closed to the network while it ran."""
    config, datadir, _ = physical_restore_setup(tmp_path, monkeypatch)
    config = {**config, "jobs": DB_JOBS, "mariadb_datadir": str(datadir), "binlog_index": str(tmp_path / "none")}
    unit, seen = FakeMariadbUnit(closed_dropin), []
    replace(monkeypatch, "systemctl", unit.systemctl)
    replace(monkeypatch, "mariadb", unit.mariadb)
    replace(monkeypatch, "move_back", lambda prepared, datadir: (datadir / "wp").mkdir())
    replace(monkeypatch, "database_snapshots", lambda config: [snap("bbbb", "db-physical", "2026-11-27T01:30:00Z")])

    def live(databases: list[str], newest: int, checksums: bool = True) -> dict[str, Any]:
        seen.append(f"{'exact' if checksums else 'sound'} check, {'closed' if unit.closed else 'open'}")
        return {**manifest(5), "errors": []}

    def replay(*args: Any) -> dict[str, Any]:
        seen.append(f"replay, {'closed' if unit.closed else 'open'}")
        return {"replayed": True, "from": "mariadb-bin.000001:4", "to": "end", "how": "found in the binary log"}

    replace(monkeypatch, "live_manifest", live)
    replace(monkeypatch, "point_in_time", replay)
    return config, unit, seen


def test_a_physical_restore_is_checked_and_replayed_closed_to_the_network_then_reopened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], closed_dropin: Path
) -> None:
    config, unit, seen = closed_restore_setup(tmp_path, monkeypatch, closed_dropin)
    assert command_restore_database(config, None, True, Log(None)) == EXIT_OK
    # The site cannot write between the start and the checksums; the replay too runs before it can.
    assert seen == ["exact check, closed", "replay, closed", "sound check, open"]
    assert not closed_dropin.parent.exists()  # no empty drop-in directory left under /run
    assert unit.open and unit.calls == [
        ("daemon-reload",),  # closed before the stop: see test_the_dropin_names_the_restore_before_mariadb_stops
        ("stop", "mariadb"),
        ("start", "mariadb"),
        ("daemon-reload",),
        ("restart", "mariadb"),
    ]
    out = capsys.readouterr().out
    closed = out.index("physical: MariaDB started with networking off for the exact check")
    assert closed < out.index("verify: ok") < out.index("physical: MariaDB reopened to the network")
    result = json.loads(out.splitlines()[-1])
    assert result["problems"] == [] and result["path"] == "physical" and result["live_changed"] is True


def dropin_as_seen(unit: FakeMariadbUnit) -> str:
    """MariaDB's state and the drop-in as a runbook's `portalops-host check restore-closed` (another process) judges
    it: 'stopped, busy <pid>', 'running, none', ..."""
    text = unit.dropin.read_text() if unit.dropin.exists() else None
    found, owner = closed.judge(text, closed.boot_id(), closed.process_start, 0)
    return f"{'running' if unit.running else 'stopped'}, {found.value}" + (f" {owner.pid}" if owner else "")


def watched(unit: FakeMariadbUnit, seen: list[str]) -> Any:
    """``unit.systemctl`` noting, before each call, the call and what a runbook would find then."""
    real = unit.systemctl

    def systemctl(*args: str) -> None:
        seen.append(f"{' '.join(args)}: {dropin_as_seen(unit)}")
        real(*args)

    return systemctl


def test_the_dropin_names_the_restore_before_mariadb_stops_and_through_the_stopped_phase(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], closed_dropin: Path
) -> None:
    # The drop-in was written after the move-back: between the stop and it a runbook's MARIADB_UP (`check
    # restore-closed && systemctl is-active mariadb`) found no drop-in and a stopped server, broken, and its
    # start_mariadb started MariaDB on a half-moved data directory, open to the network. Busy throughout now.
    config, unit, _ = closed_restore_setup(tmp_path, monkeypatch, closed_dropin)
    seen: list[str] = []
    replace(monkeypatch, "systemctl", watched(unit, seen))

    def move_back(prepared: Path, datadir: Path) -> None:
        seen.append(f"move-back: {dropin_as_seen(unit)}, check restore-closed {closed.command_restore_closed()}")
        (datadir / "wp").mkdir()

    replace(monkeypatch, "move_back", move_back)
    assert command_restore_database(config, None, True, Log(None)) == EXIT_OK
    me = os.getpid()
    assert seen == [
        f"daemon-reload: running, busy {me}",  # written, then loaded, while the server runs as it was
        f"stop mariadb: running, busy {me}",
        f"move-back: stopped, busy {me}, check restore-closed {EXIT_UNKNOWN}",
        f"start mariadb: stopped, busy {me}",
        "daemon-reload: running, none",  # reopen: removed, loaded, restarted on the network
        "restart mariadb: running, none",
    ]
    out = capsys.readouterr().out
    closing = out.index(f"physical: closing MariaDB to the network for the restore (drop-in {closed_dropin}, owner "
                        f"pid {me}) before stopping it")  # fmt: skip
    assert closing < out.index("physical: stopping MariaDB") < out.index("physical: MariaDB reopened to the network")
    assert unit.open and not closed_dropin.exists()


@pytest.mark.parametrize(
    "failure", [JobError("mariadb-backup --move-back failed: disk full"), Terminated("stopped by signal 15")]
)
def test_a_restore_that_fails_after_the_stop_leaves_no_dropin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, closed_dropin: Path, failure: BaseException
) -> None:
    # The drop-in now exists from before the stop: a failure (or SIGTERM) in the stopped phase must not leave it.
    config, unit, _ = closed_restore_setup(tmp_path, monkeypatch, closed_dropin)
    datadir = Path(config["mariadb_datadir"])

    def move_back(prepared: Path, datadir: Path) -> None:
        assert closed_dropin.exists() and not unit.running
        (datadir / "half").mkdir()
        raise failure

    replace(monkeypatch, "move_back", move_back)
    if isinstance(failure, JobError):
        assert command_restore_database(config, None, True, Log(None)) == EXIT_FAILED
    else:
        with pytest.raises(Terminated):
            command_restore_database(config, None, True, Log(None))
    assert not closed_dropin.exists() and not closed_dropin.parent.exists()
    assert unit.open  # put_back started the old data on the network; nothing was left for reopen
    assert sorted(p.name for p in datadir.iterdir()) == ["ibdata1", "mysql", "wp"]
    status = json.loads((tmp_path / "restore-database.json").read_text())
    assert status["ok"] is False


def test_a_failed_restore_keeps_its_dropin_while_it_puts_the_old_data_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, closed_dropin: Path
) -> None:
    # put_back removed the drop-in right after its stop, before moving the half-restored data out and the old
    # data back: the same window, a stopped server and no drop-in, for a runbook to start it under the move.
    config, unit, _ = closed_restore_setup(tmp_path, monkeypatch, closed_dropin)
    seen: list[str] = []
    replace(monkeypatch, "systemctl", watched(unit, seen))
    real_move_aside = physical.move_aside

    def move_aside(datadir: Path, aside: Path) -> None:
        seen.append(f"move {aside.name.split('-')[0]}-{aside.name.split('-')[1]}: {dropin_as_seen(unit)}")
        real_move_aside(datadir, aside)

    replace(monkeypatch, "move_aside", move_aside)

    def move_back(prepared: Path, datadir: Path) -> None:
        raise JobError("mariadb-backup --move-back failed: disk full")

    replace(monkeypatch, "move_back", move_back)
    moment = dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC)
    datadir = Path(config["mariadb_datadir"])
    real_rename = Path.rename

    def rename(path: Path, target: Any) -> Path:
        if Path(target) == datadir:
            seen.append(f"put back {path.name.split('-')[0]}-{path.name.split('-')[1]}: {dropin_as_seen(unit)}")
        return real_rename(path, target)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(JobError, match="disk full"):
        restore_physical(config, snap("bbbb", "db-physical", "2026-11-27T01:30:00Z"), datadir, moment, Log(None))
    me = os.getpid()
    assert seen == [
        f"daemon-reload: running, busy {me}",
        f"stop mariadb: running, busy {me}",
        f"move mysql.before-restore: stopped, busy {me}",
        f"stop mariadb: stopped, busy {me}",  # put_back
        f"move mysql.failed-restore: stopped, busy {me}",  # the half-restored data out, still busy
        f"put back mysql.before-restore: stopped, busy {me}",  # the old data in, still busy
        "daemon-reload: stopped, none",  # then removed, loaded, and the start on the network
        "start mariadb: stopped, none",
    ]
    assert unit.open and sorted(p.name for p in datadir.iterdir()) == ["ibdata1", "mysql", "wp"]


def test_a_put_back_that_fails_still_leaves_no_dropin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, closed_dropin: Path
) -> None:
    # A put-back whose move fails ends as it did before the drop-in came first: MariaDB stopped (never started
    # on a half-put-back data directory) and no drop-in left to keep its next start closed.
    unit = FakeMariadbUnit(closed_dropin)
    replace(monkeypatch, "systemctl", unit.systemctl)
    closed.close_network()
    datadir, aside = tmp_path / "mysql", tmp_path / "mysql.before-restore-x"
    (aside / "wp").mkdir(parents=True)

    def rename(path: Path, target: Any) -> Path:
        raise OSError(5, "I/O error")

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(OSError, match="I/O error"):
        put_back(datadir, aside, dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC), Log(None), restored=False)
    assert not closed_dropin.exists() and not unit.running
    assert unit.calls == [("daemon-reload",), ("stop", "mariadb"), ("daemon-reload",)]


def test_a_restore_that_cannot_close_mariadb_never_stops_it_and_leaves_no_dropin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, closed_dropin: Path
) -> None:
    config, unit, _ = closed_restore_setup(tmp_path, monkeypatch, closed_dropin)
    unit.fail.add("daemon-reload")
    datadir = Path(config["mariadb_datadir"])
    moment = dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC)
    with pytest.raises(JobError, match="systemctl daemon-reload failed"):
        restore_physical(config, snap("bbbb", "db-physical", "2026-11-27T01:30:00Z"), datadir, moment, Log(None))
    # Written, not loaded: removed again, the server never stopped, its data where it was.
    assert unit.calls == [("daemon-reload",), ("daemon-reload",)] and unit.open and not closed_dropin.exists()
    assert sorted(p.name for p in datadir.iterdir()) == ["ibdata1", "mysql", "wp"]


def test_a_physical_restore_that_fails_its_exact_check_is_reopened_and_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], closed_dropin: Path
) -> None:
    config, unit, _ = closed_restore_setup(tmp_path, monkeypatch, closed_dropin)
    replace(monkeypatch, "live_manifest", lambda *a, **k: {**manifest(5, "222"), "errors": []})
    assert command_restore_database(config, None, True, Log(None)) == EXIT_FAILED
    assert unit.open and unit.calls[-2:] == [("daemon-reload",), ("restart", "mariadb")]
    out = capsys.readouterr().out
    assert "verify: DIFFERS: wp.wp_posts: checksum 222, manifest 111" in out
    assert "physical: MariaDB reopened to the network" in out
    assert "point-in-time" not in out and json.loads(out.splitlines()[-1])["problems"] == [
        "wp.wp_posts: checksum 222, manifest 111"
    ]


@pytest.mark.parametrize("stop", [DeadlinePassed("the restore's deadline of 60 s passed"), Terminated("signal 15")])
def test_a_restore_stopped_during_its_closed_check_still_reopens_mariadb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, closed_dropin: Path, stop: BaseException
) -> None:
    config, unit, _ = closed_restore_setup(tmp_path, monkeypatch, closed_dropin)

    def stopped(*args: Any, **kwargs: Any) -> dict[str, Any]:
        assert unit.closed
        raise stop

    replace(monkeypatch, "live_manifest", stopped)
    with pytest.raises(type(stop)):
        command_restore_database(config, None, True, Log(None))
    assert unit.open and unit.calls[-2:] == [("daemon-reload",), ("restart", "mariadb")]
    status = json.loads((tmp_path / "restore-database.json").read_text())
    assert status["ok"] is False and "stopped during verifying the restored databases, closed" in status["errors"][0]


def test_a_restore_whose_reopen_fails_is_not_verified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], closed_dropin: Path
) -> None:
    config, unit, _ = closed_restore_setup(tmp_path, monkeypatch, closed_dropin)
    unit.fail.add("restart")
    assert command_restore_database(config, None, True, Log(None)) == EXIT_FAILED
    problems = json.loads(capsys.readouterr().out.splitlines()[-1])["problems"]
    assert problems == ["MariaDB could not be reopened to the network: systemctl restart mariadb failed: "
                        "Job for mariadb.service failed"]  # fmt: skip


class StuckDropin(type(Path())):  # type: ignore[misc]
    """A drop-in that cannot be removed (a read-only /run, a permission): both reopen attempts fail."""

    def unlink(self, missing_ok: bool = False) -> None:
        raise PermissionError(13, "Permission denied", str(self))


def test_a_reopen_that_fails_in_both_attempts_is_named_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], closed_dropin: Path
) -> None:
    # The reopen after the check and the one in finally each failed: the restore's problems named it twice.
    config = closed_restore_setup(tmp_path, monkeypatch, closed_dropin)[0]
    monkeypatch.setattr(closed, "CLOSED_DROPIN", StuckDropin(closed_dropin))
    assert command_restore_database(config, None, True, Log(None)) == EXIT_FAILED
    out = capsys.readouterr().out
    assert out.count("physical: MariaDB could NOT be reopened to the network") == 2  # tried twice, said twice
    assert json.loads(out.splitlines()[-1])["problems"] == [
        f"MariaDB could not be reopened to the network: [Errno 13] Permission denied: '{closed_dropin}'"
    ]
    status = json.loads((tmp_path / "restore-database.json").read_text())
    assert status["errors"] == [f"MariaDB could not be reopened to the network: [Errno 13] Permission denied: "
                                f"'{closed_dropin}'"]  # fmt: skip


def test_a_restore_refuses_to_start_while_a_running_restore_holds_mariadb_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, closed_dropin: Path
) -> None:
    # Its finally would have removed the other restore's drop-in and restarted MariaDB under its exact check.
    config, unit, _ = closed_restore_setup(tmp_path, monkeypatch, closed_dropin)
    other = subprocess.Popen(["sleep", "60"])
    try:
        closed_dropin.parent.mkdir(parents=True)
        owner = closed.Owner(closed.boot_id(), other.pid, closed.process_start(other.pid) or 0, "2026-12-05T14:00:00Z")
        closed_dropin.write_text(closed.dropin_text(owner))
        before = closed_dropin.read_text()
        with pytest.raises(
            LockError, match=rf"refused: busy, not broken: a running restore \(restore-database pid {other.pid}"
        ):
            command_restore_database(config, None, True, Log(None))
    finally:
        other.kill()
        other.wait()
    assert closed_dropin.read_text() == before and unit.calls == []
    assert not (tmp_path / "restore-database.json").exists()  # the running restore's status is its own


@pytest.mark.parametrize("owned", [True, False], ids=["stale", "no-owner"])
def test_a_restore_removes_a_stale_dropin_before_it_starts(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    closed_dropin: Path,
    owned: bool,
) -> None:
    # A SIGKILLed restore's drop-in (its pid gone), or an older portalops-backup's without an owner: under the
    # run lock no other restore runs, so it goes and MariaDB is reopened before anything else.
    config, unit, seen = closed_restore_setup(tmp_path, monkeypatch, closed_dropin)
    closed_dropin.parent.mkdir(parents=True)
    owner = closed.Owner(closed.boot_id(), os.getpid(), 1, "2026-12-05T03:00:00Z")  # this pid, another process
    dropin = closed.dropin_text(owner) if owned else "[Service]\nEnvironment=MYSQLD_OPTS=--skip-networking\n"
    closed_dropin.write_text(dropin)
    unit.systemctl("daemon-reload")
    unit.systemctl("restart", "mariadb")
    assert unit.closed
    unit.calls.clear()
    assert command_restore_database(config, None, True, Log(None)) == EXIT_OK
    assert unit.calls[:2] == [("daemon-reload",), ("restart", "mariadb")]  # before the restore's own stop
    assert unit.calls[2:4] == [("daemon-reload",), ("stop", "mariadb")]  # its own drop-in, then its stop
    out = capsys.readouterr().out
    found = "stale" if owned else "unowned"
    assert out.index(f"restore-database: removing the {found} drop-in a previous restore left") < out.index(
        "physical: stopping MariaDB"
    )
    assert seen == ["exact check, closed", "replay, closed", "sound check, open"] and unit.open


def test_a_physical_restore_whose_closed_start_fails_puts_the_old_data_back_on_the_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, closed_dropin: Path
) -> None:
    config, unit, _ = closed_restore_setup(tmp_path, monkeypatch, closed_dropin)
    unit.fail.add("start")
    moment = dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC)
    datadir = Path(config["mariadb_datadir"])
    with pytest.raises(JobError, match="systemctl start mariadb failed"):
        restore_physical(config, snap("bbbb", "db-physical", "2026-11-27T01:30:00Z"), datadir, moment, Log(None))
    assert sorted(p.name for p in datadir.iterdir()) == ["ibdata1", "mysql", "wp"]
    assert (datadir / "wp" / "data").read_text() == "wp"
    # put_back removed the drop-in before its start: its own data, on the network as before.
    assert unit.open and unit.calls[-3:] == [("stop", "mariadb"), ("daemon-reload",), ("start", "mariadb")]
    assert not reopen(Log(None)) and unit.calls[-1] == ("start", "mariadb")  # nothing left to reopen


def test_sigterm_puts_the_old_data_directory_back_and_ends_the_wrapper(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config, datadir, calls = physical_restore_setup(tmp_path, monkeypatch)
    real_run = subprocess.run

    def run(argv: list[str], *args: Any, **kwargs: Any) -> Any:
        if argv[0] == "mariadb-backup":
            (datadir / "half").mkdir()
            os.kill(os.getpid(), signal.SIGTERM)  # the runbook step's timeout
        return real_run(argv, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", run)
    restore = snap("bbbb", "db-physical", "2026-11-27T01:30:00Z")
    replace(monkeypatch, "database_snapshots", lambda config: [restore])
    path = write_config(tmp_path, **{**config, "restic": "true", "lock_file": str(tmp_path / "lock")})
    path.write_text(json.dumps({**json.loads(path.read_text()), "jobs": DB_JOBS, "keep": {"daily": 7}}))
    path.write_text(json.dumps({**json.loads(path.read_text()), "mariadb_datadir": str(datadir)}))

    def unhandled(signum: int, frame: object) -> None:
        raise RuntimeError("SIGTERM not handled by the wrapper")  # without it, pytest itself would end

    before = signal.signal(signal.SIGTERM, unhandled)
    try:
        assert main(["--config", str(path), "restore-database", "--yes"]) == 128 + signal.SIGTERM
        assert signal.getsignal(signal.SIGTERM) == unhandled  # main puts the previous handler back
    finally:
        signal.signal(signal.SIGTERM, before)
    assert "stopped by signal" in capsys.readouterr().err
    assert sorted(p.name for p in datadir.iterdir()) == ["ibdata1", "mysql", "wp"]
    assert calls[-1] == ("start", "mariadb")


# --------------------------------------------------------------------------- mass loss and point-in-time recovery

BINLOG = Path(__file__).parent / "data" / "binlog"
THRESHOLDS = loss_thresholds({})


def site(posts: int = 40, pages: int = 5, users: int = 4, options: int = 150) -> dict[str, Any]:
    """A WordPress database as a manifest records it: table rows and published posts and pages."""
    tables = {"wp_posts": posts * 3 + 50, "wp_options": options, "wp_users": users, "wp_postmeta": 99}
    return {
        "databases": {
            "wp": {
                "tables": {t: {"rows": n, "checksum": None} for t, n in tables.items()},
                "published": {"post": posts, "page": pages},
            }
        }
    }


def test_a_mass_deletion_of_published_content_is_lost_naming_table_and_counts() -> None:
    backup = site()
    # All published posts deleted: pages, revisions and attachments keep wp_posts far from empty.
    assert health_problems(backup, site(posts=0)) == []
    assert mass_loss(backup, site(posts=0), THRESHOLDS) == [
        "wp.wp_posts: 40 of 40 published posts gone since the backup (40 -> 0)"
    ]
    assert mass_loss(backup, site(posts=31), THRESHOLDS) == [
        "wp.wp_posts: 9 of 40 published posts gone since the backup (40 -> 31)"
    ]
    assert mass_loss(backup, site(pages=1, users=1, options=60), THRESHOLDS) == [
        "wp.wp_posts: 4 of 5 published pages gone since the backup (5 -> 1)",
        "wp.wp_users: 3 of 4 rows gone since the backup (4 -> 1)",
        "wp.wp_options: 90 of 150 rows gone since the backup (150 -> 60)",
    ]


def test_editing_since_the_backup_is_not_lost() -> None:
    backup = site()
    # A few posts deleted (20 % is the line, not crossed), new ones written, options churned, a user gone.
    for edited in (site(posts=32), site(posts=45), site(posts=3 + 30), site(users=3, options=120), site(pages=3)):
        assert mass_loss(backup, edited, THRESHOLDS) == [], edited
    # Below min_count nothing is mass: a small site's editor deletes 2 of its 3 posts.
    assert mass_loss(site(posts=3), site(posts=1), THRESHOLDS) == []
    # The thresholds are the configuration's, over the defaults.
    assert loss_thresholds({"loss_thresholds": {"published_percent": 5}})["published_percent"] == 5
    assert mass_loss(backup, site(posts=37), loss_thresholds({"loss_thresholds": {"published_percent": 5}}))


def test_an_older_manifest_without_published_counts_still_works() -> None:
    old = site()
    del old["databases"]["wp"]["published"]
    assert mass_loss(old, site(posts=0), THRESHOLDS) == []
    assert mass_loss(old, site(users=1), THRESHOLDS) == ["wp.wp_users: 3 of 4 rows gone since the backup (4 -> 1)"]


def test_check_database_calls_a_mass_deletion_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = {**BASE, "status_dir": str(tmp_path), "jobs": DB_JOBS}
    keep_manifest(config, "db-physical", {**site(), "job": "db-physical", "taken": "x"}, {"snapshot_id": "b" * 32})
    live = site()
    replace(monkeypatch, "database_manifest", lambda dbs, *a, **k: live)
    assert command_check_database(config, Log(None)) == EXIT_OK
    live = site(posts=2)
    assert command_check_database(config, Log(None)) == EXIT_FAILED
    assert "lost or corrupted: wp.wp_posts: 38 of 40 published posts gone" in capsys.readouterr().out.splitlines()[-1]


def transactions(name: str) -> list[dict[str, Any]]:
    return list(parse_binlog(iter((BINLOG / name).read_text().splitlines()), "mariadb-bin.000001"))


def test_the_binary_log_is_read_into_transactions_with_rows_and_published_posts_per_table() -> None:
    """Real mariadb-binlog 10.11 -vv output: three posts written, one unpublished, an option changed,
    every post deleted, an option added, wp_users dropped."""
    found = transactions("mass-delete.txt")
    assert [t["start"] for t in found] == [9837, 10427, 11017, 11607, 12169, 12471, 14378, 14674]
    assert found[0]["tables"]["wp_news.wp_posts"]["published"] == {"post": 1}
    assert found[3]["tables"]["wp_news.wp_posts"] == {
        "insert": 0,
        "update": 1,
        "delete": 0,
        "published": {"post": -1},
        "changed": {},
    }
    assert found[5]["tables"]["wp_news.wp_posts"]["delete"] == 13
    assert found[5]["tables"]["wp_news.wp_posts"]["published"] == {"post": -12}
    assert found[5]["time"] == dt.datetime(2026, 12, 3, 1, 27, 45).astimezone()
    assert found[7]["dropped"] == ["wp_news.wp_users"]


def news(posts: int = 10) -> dict[str, Any]:
    manifest = site(posts=posts, pages=1, users=2, options=6)
    return {"databases": {"wp_news": manifest["databases"]["wp"]}}


def first_accident(name: str, manifest: dict[str, Any]) -> tuple[int, str]:
    running: dict[str, int] = {}
    for txn in transactions(name):
        why = destructive(txn, manifest, running, THRESHOLDS)
        if why:
            return txn["start"], why
    return 0, ""


def test_the_replay_stops_before_the_mass_deletion_not_before_the_editing_ahead_of_it() -> None:
    assert first_accident("mass-delete.txt", news()) == (
        12471,
        "deleted or unpublished 12 of 12 published posts of wp_news.wp_posts",
    )
    # Without the deletion, the dropped core table is the accident.
    running: dict[str, int] = {}
    drop = transactions("mass-delete.txt")[7]
    assert destructive(drop, news(), running, THRESHOLDS) == "dropped wp_news.wp_users"
    # A table or database the backup does not hold is not the site's: no stop.
    assert destructive(drop, {"databases": {}}, running, THRESHOLDS) == ""


def test_a_mass_change_of_published_content_and_a_truncate_are_accidents_a_publish_is_not() -> None:
    found = transactions("mass-change.txt")
    running: dict[str, int] = {}
    assert found[0]["tables"]["wp_news.wp_posts"]["published"] == {"post": 1}  # a draft published
    assert destructive(found[0], news(), running, THRESHOLDS) == ""
    assert destructive(found[1], news(), running, THRESHOLDS) == (
        "changed the title or content of 13 of 11 published posts of wp_news.wp_posts"
    )
    assert found[2]["dropped"] == ["wp_news.wp_options"]


def test_many_small_deletions_stop_where_they_cross_the_threshold() -> None:
    one: dict[str, Any] = {"start": 1, "time": None, "dropped": [], "tables": {}}
    running: dict[str, int] = {}
    stops = []
    for number in range(12):
        txn = {
            **one,
            "start": number,
            "tables": {
                "wp_news.wp_posts": {"insert": 0, "update": 0, "delete": 1, "published": {"post": -1}, "changed": {}}
            },
        }
        stops.append(destructive(txn, news(posts=20), running, THRESHOLDS))
    assert stops[:4] == ["", "", "", ""]  # 4 of 20 is 20 %: not more
    assert stops[4] == "took the published posts of wp_news.wp_posts 5 below the backup's 20"


def test_binary_log_positions_and_files_from_the_backup_on() -> None:
    assert parse_position("mariadb-bin.000002\t4567\t0-1-33") == ("mariadb-bin.000002", 4567)
    assert parse_position("/var/log/mysql/mariadb-bin.000002:4567") == ("mariadb-bin.000002", 4567)
    with pytest.raises(ValueError, match="not a binary log position"):
        parse_position("yesterday")
    logs = [Path(f"/var/log/mysql/mariadb-bin.00000{n}") for n in (3, 4, 5, 6)]
    assert [p.name for p in files_from(logs, "mariadb-bin.000004")] == [
        "mariadb-bin.000004",
        "mariadb-bin.000005",
        "mariadb-bin.000006",
    ]
    assert [p.name for p in files_from(logs, "mariadb-bin.000004", "mariadb-bin.000005")] == [
        "mariadb-bin.000004",
        "mariadb-bin.000005",
    ]
    with pytest.raises(JobError, match="purged or lost"):
        files_from(logs, "mariadb-bin.000002")


def test_the_index_lists_the_binary_logs_oldest_first(tmp_path: Path) -> None:
    (tmp_path / "mariadb-bin.index").write_text("/var/log/mysql/mariadb-bin.000007\n./mariadb-bin.000008\n")
    assert binlog_files(tmp_path / "mariadb-bin.index") == [
        Path("/var/log/mysql/mariadb-bin.000007"),
        tmp_path / "mariadb-bin.000008",
    ]


def test_the_rpo_of_a_point_in_time_recovery_is_the_time_since_the_accident() -> None:
    moment = dt.datetime(2026, 11, 27, 9, 0, 42, tzinfo=dt.UTC)
    taken = snap("bbbb", "db-physical", "2026-11-27T01:30:00Z")
    replay = {
        "replayed": True,
        "from": "mariadb-bin.000004:330",
        "to": "mariadb-bin.000005:9000",
        "stopped_before": "deleted or unpublished 12 of 12 published posts of wp.wp_posts",
        "how": "found in the binary log",
        "accident_time": "2026-11-27T09:00:00Z",
    }
    assert pitr_rpo_seconds(replay, moment) == 42.0
    line = pitr_rpo_line(taken, replay, moment)
    assert line.startswith("RPO (data-loss window): 42 s = 0.7 min; snapshot bbbb of 2026-11-27T01:30:00Z restored")
    assert "stopping before the transaction of 2026-11-27T09:00:00Z (found in the binary log: deleted" in line
    assert pitr_rpo_seconds({**replay, "to": "end"}, moment) == 0.0
    assert pitr_rpo_seconds({**replay, "accident_time": ""}, moment) is None
    assert until_time("2026-11-27T09:00:00Z") == dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.UTC)


def fake_binlog_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, code: int = 0) -> list[Path]:
    """A mariadb-binlog on PATH that prints a recorded -vv output (and exits ``code``)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    reader = bin_dir / "mariadb-binlog"
    reader.write_text(
        f"#!/bin/sh\ncat {BINLOG / name}\necho 'ERROR: Error in Log_event::read_log_event()' >&2\nexit {code}\n"
    )
    reader.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return [tmp_path / "mariadb-bin.000001"]


def test_the_scan_finds_the_accident_or_stops_where_a_person_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = fake_binlog_reader(tmp_path, monkeypatch, "mass-delete.txt")
    found = scan_binlog(files, 9837, news(), THRESHOLDS, None)
    assert found["stop"] == ("mariadb-bin.000001", 12471) and found["transactions"] == 5
    assert found["reason"].startswith("deleted or unpublished 12 of 12 published posts")
    # --until: exactly there, even past the accident.
    until = dt.datetime(2026, 12, 3, 1, 27, 45).astimezone()
    assert scan_binlog(files, 9837, news(), THRESHOLDS, until)["stop"] == ("mariadb-bin.000001", 12471)
    late = dt.datetime(2026, 12, 3, 1, 28).astimezone()
    assert scan_binlog(files, 9837, news(), THRESHOLDS, late)["stop"] is None


def test_an_unreadable_binary_log_means_no_replay_said_loudly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    files = fake_binlog_reader(tmp_path, monkeypatch, "mass-change.txt", code=1)
    with pytest.raises(JobError, match=r"cannot read .*read_log_event"):
        scan_binlog(files, 4, {"databases": {}}, THRESHOLDS, None)
    manifest = {"databases": {}, "binlog_position": "mariadb-bin.000001\t4\t0-1-1"}
    replay = point_in_time({}, manifest, files, None, None, Log(None))
    assert replay["replayed"] is False and "cannot read" in replay["error"]
    # Purged since the backup, or the backup recorded no position: the same, named.
    assert "purged or lost" in point_in_time({}, manifest, [], None, None, Log(None))["error"]
    assert "no binary log position" in point_in_time({}, news(), files, None, None, Log(None))["error"]
    assert capsys.readouterr().out.count("point-in-time: NOT DONE, the database is the backup alone") == 3


def test_the_room_check_reads_this_hosts_filesystems_and_the_dumps_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = {**BASE, "restore_dir": str(tmp_path / "not" / "yet"), "binlog_index": str(tmp_path / "none" / "x.index")}
    free = shutil.disk_usage(tmp_path).free
    replace(monkeypatch, "schema_bytes", lambda databases: 0)
    replace(monkeypatch, "snapshot_size", lambda config, snapshot: 1 << 20)
    assert check_room(config, snap("cccc", "db-dump", "2026-11-27T01:29:00Z"), ["wp"], tmp_path) == ""
    replace(monkeypatch, "snapshot_size", lambda config, snapshot: free)
    refused = check_room(config, snap("cccc", "db-dump", "2026-11-27T01:29:00Z"), ["wp"], tmp_path)
    assert refused.startswith("not enough room") and f"in {tmp_path}" in refused and "binary log" not in refused


# --------------------------------------------------------------------------- pins after a mass loss


def test_a_snapshot_with_mass_loss_against_its_predecessor_is_flagged_and_editing_is_not() -> None:
    good = {**site(), "snapshot_id": "aaaa1111"}
    assert loss_against(good, {**site(posts=0), "snapshot_id": "bbbb2222"}, THRESHOLDS) == [
        "wp.wp_posts: 40 of 40 published posts gone since the backup (40 -> 0)"
    ]
    assert loss_against(good, {**site(posts=36), "snapshot_id": "bbbb2222"}, THRESHOLDS) == []
    # Nothing to compare with (a first backup, an unreadable kept manifest) or the same snapshot: no flag.
    assert loss_against(None, {**site(posts=0), "snapshot_id": "bbbb2222"}, THRESHOLDS) == []
    assert loss_against(good, {**site(posts=0), "snapshot_id": "aaaa1111"}, THRESHOLDS) == []
    assert loss_against({"snapshot_id": "aaaa1111"}, site(posts=0), THRESHOLDS) == []


def test_a_pinned_snapshot_is_known_by_its_new_id_and_the_id_it_had_before_restic_tag() -> None:
    pinned = {"id": "c" * 64, "short_id": "cccccccc", "original": "a" * 64, "time": "2026-12-03T01:00:00Z"}
    assert same_snapshot(pinned, "cccc") and same_snapshot(pinned, "aaaaaaaa")
    assert not same_snapshot(pinned, "bbbb") and not same_snapshot(pinned, "")
    forgotten = [
        {"keep": [{"id": "c" * 64, "tags": ["portalops", "job:db-dump", "portalops-pinned"]}, {"id": "d" * 64}]},
        {"keep": [{"id": "e" * 64, "tags": ["portalops", "job:db-dump"]}], "remove": [{"id": "f" * 64}]},
    ]
    assert pinned_in(json.dumps(forgotten)) == {"c" * 64}
    assert pinned_in("null") == set()
    assert pinned_in("not json") is None


# restic for the pin flow: `tag --add` pins (the snapshot gets a new id), `tag --remove` unpins;
# `snapshots --tag portalops-pinned` and `forget` show the pinned snapshot while it is pinned.
FAKE_PIN_RESTIC = """d={state}; echo "$*" >> $d/calls.log
case "$1" in
tag) [ -e $d/tagfails ] && {{ echo 'Fatal: unable to tag' >&2; exit 1; }}
  case "$2" in --add) touch $d/tagged ;; --remove) rm -f $d/tagged ;; esac ;;
snapshots) if [ -e $d/tagged ]; then cat $d/pinned.json; else echo '[]'; fi ;;
forget) if [ -e $d/tagged ]; then echo '[{{"keep": '; cat $d/pinned.json; echo '}}]'; else echo '[]'; fi ;;
esac"""
PINNED = {
    "id": "c" * 64,
    "short_id": "cccccccc",
    "original": "a" * 64,
    "time": "2026-12-03T01:00:00.123456789Z",
    "tags": ["portalops", "job:db-dump", "portalops-pinned"],
}


def pin_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *flags: str) -> tuple[dict[str, Any], Path]:
    state = tmp_path / "state"
    state.mkdir()
    (state / "calls.log").write_text("")
    (state / "pinned.json").write_text(json.dumps([PINNED]))
    for flag in flags:
        (state / flag).touch()
    script = FAKE_PIN_RESTIC.format(state=state)
    replace(monkeypatch, "restic_argv", lambda config, *args: ["sh", "-c", script, "restic", *args])
    jobs = [{"name": "db-dump", "type": "mariadb-dump", "databases": ["wp"]}]
    config = {**BASE, "status_dir": str(tmp_path / "status"), "keep": {"last": 1}, "jobs": jobs}
    return config, state


def backups_of(config: dict[str, Any], monkeypatch: pytest.MonkeyPatch, *manifests: tuple[str, dict[str, Any]]) -> None:
    """Each (snapshot id, manifest) as one `run` whose dump job saved that snapshot (no database here)."""
    queue = list(manifests)

    def job(config: dict[str, Any], job: dict[str, Any], run_id: str, log: Any) -> dict[str, Any]:
        snapshot_id, manifest = queue.pop(0)
        keep_manifest(config, job["name"], {**manifest, "job": job["name"]}, {"snapshot_id": snapshot_id})
        return {"snapshot_id": snapshot_id}

    monkeypatch.setitem(JOBS, "mariadb-dump", job)
    while queue:
        command_run(config, [], Log(None))


def run_status(config: dict[str, Any]) -> dict[str, Any]:
    status: dict[str, Any] = json.loads((Path(config["status_dir"]) / "run.json").read_text())
    return status


def test_mass_loss_pins_the_predecessor_flags_the_job_and_forget_keeps_the_pin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, state = pin_setup(tmp_path, monkeypatch)
    backups_of(config, monkeypatch, ("a" * 64, site()))
    assert not any(call.startswith("tag") for call in (state / "calls.log").read_text().splitlines())
    backups_of(config, monkeypatch, ("b" * 64, site(posts=0)))
    calls = (state / "calls.log").read_text().splitlines()
    assert calls[-3:] == [
        f"tag --add portalops-pinned {'a' * 64}",
        "snapshots --json --tag portalops-pinned --host db1",
        "forget --json --tag job:db-dump --group-by host,tags --keep-last 1 --keep-tag portalops-pinned",
    ]
    job = run_status(config)["jobs"][0]
    assert job["ok"] is True
    assert job["mass_loss"] == [
        {
            "snapshot": "bbbbbbbb",
            "problems": ["wp.wp_posts: 40 of 40 published posts gone since the backup (40 -> 0)"],
            "pinned_snapshot": "cccccccc",
            "pinned_snapshot_id": "c" * 64,
            "pinned": job["mass_loss"][0]["pinned"],
            "release": "portalops-backup release cccccccc",
        }
    ]
    found = samples(metrics(run_status(config)))
    assert found['portalops_backup_mass_loss{host="db1",job="db-dump"}'] == "1"
    # Later runs (no new loss) keep the flag while the pin exists...
    backups_of(config, monkeypatch, ("d" * 64, site(posts=0)), ("e" * 64, site(posts=1)))
    assert run_status(config)["jobs"][0]["mass_loss"][0]["pinned_snapshot"] == "cccccccc"
    # ... and drop it once the pin is gone (here: removed by other means than release).
    (state / "tagged").unlink()
    backups_of(config, monkeypatch, ("f" * 64, site(posts=1)))
    assert "mass_loss" not in run_status(config)["jobs"][0]
    assert samples(metrics(run_status(config)))['portalops_backup_mass_loss{host="db1",job="db-dump"}'] == "0"
    assert json.loads((tmp_path / "status" / "pins.json").read_text()) == []


def test_a_pin_that_fails_fails_the_job_before_its_forget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config, state = pin_setup(tmp_path, monkeypatch, "tagfails")
    backups_of(config, monkeypatch, ("a" * 64, site()), ("b" * 64, site(posts=0)))
    calls = (state / "calls.log").read_text().splitlines()
    assert calls[-1] == f"tag --add portalops-pinned {'a' * 64}", "forget ran although the good snapshot is not pinned"
    job = run_status(config)["jobs"][0]
    assert job["ok"] is False
    assert job["error"].startswith("mass loss against snapshot aaaaaaaa (wp.wp_posts: 40 of 40 published posts gone")
    assert job["error"].endswith("forget skipped")
    assert job["mass_loss"][0]["pinned_snapshot"] is None
    assert samples(metrics(run_status(config)))['portalops_backup_mass_loss{host="db1",job="db-dump"}'] == "1"


def test_release_says_what_it_releases_refuses_an_unknown_id_and_clears_the_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config, state = pin_setup(tmp_path, monkeypatch)
    backups_of(config, monkeypatch, ("a" * 64, site()), ("b" * 64, site(posts=0)))
    capsys.readouterr()
    assert command_status(config) == EXIT_OK
    shown = capsys.readouterr().out
    assert "MASS LOSS in snapshot bbbbbbbb: wp.wp_posts: 40 of 40 published posts gone" in shown
    assert "pinned snapshots: 1 (release with: portalops-backup release ID)" in shown
    assert "cccccccc db-dump taken 2026-12-03T01:00:00Z: pinned " in shown
    # An id that names no pinned snapshot: refused, nothing untagged.
    assert command_release(config, "bbbb", Log(None)) == EXIT_BAD_INPUT
    assert "no pinned snapshot bbbb (pinned: cccccccc); nothing released" in capsys.readouterr().err
    assert "tag --remove" not in (state / "calls.log").read_text()
    # The id it had before the pin works too (it is what last night's log named).
    assert command_release(config, "aaaaaaaa", Log(None)) == EXIT_OK
    said = capsys.readouterr().out
    assert said.startswith("releasing snapshot cccccccc of db-dump taken 2026-12-03T01:00:00Z (pinned ")
    assert "snapshot bbbbbbbb showed wp.wp_posts: 40 of 40 published posts gone" in said
    assert (state / "calls.log").read_text().splitlines()[-1] == f"tag --remove portalops-pinned {'c' * 64}"
    assert "mass_loss" not in run_status(config)["jobs"][0]
    assert json.loads((tmp_path / "status" / "pins.json").read_text()) == []


def test_metrics_carry_the_mass_loss_flag_of_a_job_not_run_this_time() -> None:
    flagged = {"name": "db-physical", "ok": True, "duration_s": 1, "mass_loss": [{"pinned_snapshot": "cccccccc"}]}
    found = samples(metrics({**status(True), "not_run": [flagged]}))
    assert found['portalops_backup_mass_loss{host="db1",job="db-dump"}'] == "0"
    assert found['portalops_backup_mass_loss{host="db1",job="db-physical"}'] == "1"


def test_the_second_copy_keeps_pinned_snapshots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, ...]] = []

    def restic_argv(config: Any, *args: str) -> list[str]:
        seen.append(args)
        return ["sh", "-c", "echo '[]'"]

    replace(monkeypatch, "restic_argv", restic_argv)
    copies = [{"name": "web1", "from_repo": "/f", "from_password_file": "/p", "to_repo": "/t", "password_file": "/q"}]
    config = {**BASE, "status_dir": str(tmp_path), "keep": {"within": "48h", "daily": 7}, "copies": copies}
    assert command_copy(config, Log(None)) == EXIT_OK
    forget = next(args for args in seen if args[0] == "forget")
    assert forget[-2:] == ("--keep-tag", "portalops-pinned")
