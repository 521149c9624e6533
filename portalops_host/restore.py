"""`portalops-backup restore-database`, `verify-database` and `check-database`: which snapshot, which path,
verification, the RPO."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from portalops_host.closed import before_restore, reopen
from portalops_host.database import (
    LOGICAL,
    PHYSICAL,
    database_jobs,
    live_manifest,
    manifest_from_dump,
    manifest_size,
    newest_titles_count,
)
from portalops_host.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, EXIT_UNKNOWN, DeadlinePassed, JobError
from portalops_host.health import (
    changes_since,
    health_problems,
    loss_thresholds,
    manifest_problems,
    mass_loss,
    unavailable,
)
from portalops_host.log import Log
from portalops_host.logical import (
    existing_databases,
    restore_id,
    restore_logical,
)
from portalops_host.physical import aside_path, restore_physical
from portalops_host.pitr import BINLOG_INDEX, NO_PITR, binlog_files, pitr_rpo_line, pitr_rpo_seconds, point_in_time
from portalops_host.restic import explain, restic_argv, restic_env, run_restic
from portalops_host.snapshots import job_of, named, newest
from portalops_host.status import previous_status, simple_status
from portalops_host.streams import CHUNK, Deadline, stream_timeout
from portalops_host.times import now, parse_time, stamp


def restore_candidates(
    snapshots: list[dict[str, Any]], jobs: list[dict[str, Any]], wanted: str | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """What to restore, in order: the newest physical snapshot, then the newest dump (the fallback).

    ``wanted`` (an id or its prefix) names one snapshot of a database job: that one only, no fallback.
    """
    kinds = {j["name"]: j["type"] for j in jobs}
    ours = [(kinds[job_of(s)], s) for s in snapshots if job_of(s) in kinds]
    if wanted:
        chosen = [(k, s) for k, s in ours if named(s, wanted)]
        if not chosen:
            raise JobError(f"no snapshot {wanted} of a database job ({', '.join(sorted(kinds))})")
        return chosen[:1]
    order = []
    for kind in (PHYSICAL, LOGICAL):
        found = [s for k, s in ours if k == kind]
        if found:
            order.append((kind, newest(found)))
    if not order:
        raise JobError(f"no snapshot of a database job ({', '.join(sorted(kinds)) or 'none configured'})")
    return order


def rpo_seconds(snapshot_time: str, moment: dt.datetime) -> float:
    """The data-loss window: everything written after the restored snapshot was taken is gone."""
    return round((moment - parse_time(snapshot_time)).total_seconds(), 1)


def rpo_line(snapshot: dict[str, Any], moment: dt.datetime) -> str:
    seconds = rpo_seconds(snapshot["time"], moment)
    taken = stamp(parse_time(snapshot["time"]))
    return (
        f"RPO (data-loss window): {seconds:.0f} s = {seconds / 60:.1f} min; writes after {taken} "
        f"(snapshot {snapshot.get('short_id', snapshot['id'][:8])}) are not in the restored database"
    )


def database_snapshots(config: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for job in database_jobs(config):
        listed = run_restic(config, "snapshots", "--json", "--tag", f"job:{job['name']}", "--host", config["host"])
        found += json.loads(listed.stdout or "[]")
    return found


def snapshot_manifest(config: dict[str, Any], kind: str, snapshot: dict[str, Any]) -> dict[str, Any]:
    """A snapshot's manifest, read from the repository."""
    path = snapshot["paths"][0]
    if kind == PHYSICAL:
        found: dict[str, Any] = json.loads(
            run_restic(config, "dump", snapshot["id"], f"{path}/portalops-manifest.json").stdout
        )
        return found
    with tempfile.TemporaryFile() as err, Deadline(stream_timeout(config)) as deadline:
        dump = subprocess.Popen(
            restic_argv(config, "dump", snapshot["id"], path),
            stdout=subprocess.PIPE,
            stderr=err,
            env=restic_env(config),
        )
        deadline.watch(dump)
        tail = b""
        for block in iter(lambda: dump.stdout.read(CHUNK), b""):  # type: ignore[union-attr]
            tail = (tail + block)[-(4 << 20) :]
        if dump.wait() != 0:
            if deadline.expired:
                raise JobError(
                    f"restic dump of snapshot {snapshot['short_id']} timed out after {deadline.seconds:.0f} s"
                )
            err.seek(0)
            raise JobError(explain(err.read().decode(errors="replace"), config["repository"]))
    return manifest_from_dump(tail)


def newest_local_manifest(config: dict[str, Any]) -> dict[str, Any] | None:
    """The newest manifest kept by a database job of this host (keep_manifest), if any."""
    kept = []
    for job in database_jobs(config):
        with contextlib.suppress(OSError, json.JSONDecodeError):
            kept.append(json.loads((Path(config["status_dir"]) / "manifests" / f"{job['name']}.json").read_text()))
    return max(kept, key=lambda m: str(m.get("taken", "")), default=None)


def reference_manifest(config: dict[str, Any], wanted: str | None) -> tuple[dict[str, Any], str]:
    """The manifest to compare with and where it came from: a named snapshot's, else the newest kept."""
    if not wanted:
        kept = newest_local_manifest(config)
        if kept is not None:
            return kept, f"snapshot {str(kept.get('snapshot_id'))[:8]} of {kept.get('job')} taken {kept.get('taken')}"
    kind, snapshot = restore_candidates(database_snapshots(config), database_jobs(config), wanted)[0]
    where = f"snapshot {snapshot['short_id']} of {job_of(snapshot)} taken {stamp(parse_time(snapshot['time']))}"
    return snapshot_manifest(config, kind, snapshot), where


# The whole of restore-database (restic, the load, the verification, the binary log replay) ends by then,
# cleanly (the old data put back or kept), before the runbook step's own 7 h timeout would kill it.
RESTORE_TIMEOUT = 6.5 * 3600


def changed_so_far(before: bool | None, now_: bool | None) -> bool | None:
    """Whether the live databases were changed, over a restore's steps: True once any step changed them,
    None (unknown: a physical attempt, a swap under way) unless one did, False only while none could have."""
    if before is True or now_ is True:
        return True
    if before is None or now_ is None:
        return None
    return False


def command_restore_database(
    config: dict[str, Any],
    wanted: str | None,
    yes: bool,
    log: Log,
    until: dt.datetime | None = None,
    until_position: str | None = None,
    logical: bool = False,
    deadline: float | None = None,
) -> int:
    """Physical path first, the dump if that fails; verified against the restored snapshot's manifest.
    After a verified physical restore the binary log is replayed up to just before the accident
    (point_in_time); without a usable binary log the backup alone stays, said loudly.

    ``logical``: the newest dump only. The whole run ends by its deadline (``deadline`` s, else
    'restore_timeout_s', else RESTORE_TIMEOUT), unwinding like SIGTERM. The status file is written as the
    restore starts and goes (a SIGKILLed one still says where it stopped) and in ``finally``; it says whether
    the live databases were changed ('live_changed': False, True, or None for cannot tell)."""
    if not yes:
        print(
            "portalops-backup: restore-database replaces this host's MariaDB data with a backup "
            "(the current data directory is kept aside); repeat with --yes",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    # A running restore's drop-in refuses this one here, before any status is written; a stale one goes.
    before_restore(log)
    started = now()
    rid = restore_id(started)
    seconds = float(deadline or config.get("restore_timeout_s", RESTORE_TIMEOUT))
    datadir = Path(config.get("mariadb_datadir", "/var/lib/mysql"))
    jobs = {j["name"]: j for j in database_jobs(config)}
    failures: list[str] = []
    problems: list[str] = []
    used: tuple[str, dict[str, Any], dict[str, Any]] | None = None
    replay: dict[str, Any] = {}
    reopen_failed = ""  # a failed reopen, whichever attempt: one problem
    state: dict[str, Any] = {"id": rid, "phase": "starting", "live_changed": False}

    def progress(phase: str, live_changed: bool | None, **extra: Any) -> None:
        state.update(extra, phase=phase, live_changed=changed_so_far(state["live_changed"], live_changed))
        error = f"restore {rid} did not finish: it stopped during {phase} (or is still running)"
        simple_status(config, "restore-database", started, error, {"restore": {**state, "running": True}})

    def expire(signum: int, frame: object) -> None:
        raise DeadlinePassed(f"the restore's deadline of {seconds:.0f} s passed")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    finished = started
    result: dict[str, Any] = {}
    try:
        progress("starting", False)
        # The binary logs as they are before the restore (the restarted server starts a new file).
        binlogs: list[Path] = []
        with contextlib.suppress(OSError):
            binlogs = binlog_files(Path(config.get("binlog_index", BINLOG_INDEX)))
        try:
            run_restic(config, "unlock", timeout=600)
            candidates = restore_candidates(database_snapshots(config), list(jobs.values()), wanted)
            if logical and not wanted:
                candidates = [(k, s) for k, s in candidates if k == LOGICAL]
                if not candidates:
                    raise JobError("no snapshot of a mariadb-dump job")
        except (JobError, subprocess.TimeoutExpired) as exc:
            candidates = []
            failures.append(str(exc))
            log(f"restore-database: FAILED before any restore: {exc}")
        for kind, snapshot in candidates:
            path = "physical" if kind == PHYSICAL else "logical"
            taken = stamp(parse_time(snapshot["time"]))
            log(f"restore-database: {path} path, snapshot {snapshot['short_id']} of {job_of(snapshot)} taken {taken}")
            try:
                if kind == PHYSICAL:
                    progress("physical restore", None)
                    manifest = restore_physical(config, snapshot, datadir, started, log)
                else:
                    databases = jobs[job_of(snapshot)]["databases"]
                    manifest = restore_logical(config, snapshot, databases, datadir, started, log, progress)
            except (JobError, OSError, subprocess.SubprocessError, ValueError) as exc:
                failures.append(f"{path} restore of {snapshot['short_id']}: {exc}")
                log(f"restore-database: {path} path FAILED: {exc}")
                continue
            used = (path, snapshot, manifest)
            break
        physical = used is not None and used[0] == "physical"
        verifying = "verifying the restored databases" + (", closed to the network" if physical else "")
        progress(verifying if used else "giving up", False)
        if used is None:
            problems = failures or ["nothing was restored"]
        else:
            path, snapshot, manifest = used
            if path == "logical":
                # restore_logical compared the loaded tables with the manifest exactly, before the swap, in
                # databases nobody writes. Once swapped in, the live site writes them (wp-cron and transients
                # on any page view: on the lab the probes' requests changed wp_options between the swap and
                # a second exact check): sound, and nothing lost against the backup.
                log(f"verify: the swapped-in databases are sound, nothing lost against the snapshot's manifest "
                    f"({manifest_size(manifest)}, checked exactly before the swap)")  # fmt: skip
                restored = live_manifest(list(manifest["databases"]), newest_titles_count(manifest), checksums=False)
                problems = health_problems(manifest, restored) + mass_loss(manifest, restored, loss_thresholds(config))
            else:
                # restore_physical started MariaDB with networking off: nobody but us writes it until reopen.
                log(f"verify: the restored databases against the snapshot's manifest ({manifest_size(manifest)}, "
                    "MariaDB closed to the network)")  # fmt: skip
                if not manifest.get("consistent", True):
                    log("verify: the site wrote during the backup: a table it wrote is held to being there (a core "
                        "table not emptied), not to a count neither manifest saw")  # fmt: skip
                restored = live_manifest(list(manifest["databases"]), newest_titles_count(manifest))
                problems = restored["errors"] + manifest_problems(manifest, restored)
            for problem in problems[:50]:
                log(f"verify: DIFFERS: {problem}")
            if not problems:
                said = "are sound" if path == "logical" else "match the manifest"
                log(f"verify: ok, {manifest_size(manifest)} {said}")
            if not problems and path == "physical":
                # Still closed: the replay applies the work since the backup before the site writes again.
                progress("replaying the binary log, closed to the network", False)
                replay = point_in_time(config, manifest, binlogs, until, until_position, log)
            elif not problems:
                replay = {"replayed": False, "error": "a dump records no binary log position"}
                log(f"{NO_PITR}: {replay['error']}")
            if path == "physical":
                progress("reopening MariaDB to the network", False)
                reopen_failed = reopen(log) or reopen_failed
            if replay.get("replayed"):
                progress("verifying after the binary log replay", False)
                # Now the backup plus the work since: sound, and no mass loss against the backup.
                replayed = live_manifest(list(manifest["databases"]), newest_titles_count(manifest), checksums=False)
                after = health_problems(manifest, replayed) + mass_loss(manifest, replayed, loss_thresholds(config))
                problems += [f"after the binary log replay: {problem}" for problem in after]
                for problem in after:
                    log(f"verify: after the binary log replay: LOST: {problem}")
                if not after:
                    log("verify: ok after the binary log replay (nothing lost against the backup)")
        state["phase"] = "finished"
    except BaseException as exc:
        # SIGTERM, the deadline, Ctrl-C, a bug: the clean-up of the path has run; the status says so.
        problems = [*failures, f"stopped during {state['phase']}: {exc or type(exc).__name__}"]
        log(f"restore-database: STOPPED during {state['phase']}: {exc or type(exc).__name__}")
        raise
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        # However the run ends (a failed check, an exception, SIGTERM, the deadline): never left closed. A
        # reopen that failed is one problem, named once here, whichever attempt failed (the latest says why).
        reopen_failed = reopen(log) or reopen_failed
        if reopen_failed:
            problems.append(reopen_failed)
        finished = now()
        result = restore_result(config, state, used, replay, failures, problems, datadir, started, finished)
        simple_status(config, "restore-database", started, "; ".join(problems), {"restore": result})
    if used and replay.get("replayed"):
        log(pitr_rpo_line(used[1], replay, finished))
    elif used:
        log(rpo_line(used[1], finished))
    evidence = result.get("evidence") or {}
    if evidence.get("databases"):
        log(
            f"restore-database: the databases as they were are kept in {', '.join(evidence['databases'].values())}; "
            f"once no longer needed: {evidence['discard']}"
        )
    log(f"restore-database: {'verified' if not problems else 'FAILED'} in {result['duration_s']:.1f} s")
    print(json.dumps(result, sort_keys=True), flush=True)
    return EXIT_OK if not problems else EXIT_FAILED


def restore_result(
    config: dict[str, Any],
    state: dict[str, Any],
    used: tuple[str, dict[str, Any], dict[str, Any]] | None,
    replay: dict[str, Any],
    failures: list[str],
    problems: list[str],
    datadir: Path,
    started: dt.datetime,
    finished: dt.datetime,
) -> dict[str, Any]:
    """restore-database's outcome, for its status file and its last line of output."""
    leftovers: list[str] = []
    if state.get("leftovers") and state["phase"] != "finished":
        with contextlib.suppress(JobError, OSError, subprocess.SubprocessError):
            leftovers = sorted(set(state["leftovers"]) & existing_databases())
    kept = used[2].get("evidence", {}).get("databases", {}) if used else state.get("evidence", {})
    return {
        "id": state["id"],
        "phase": state["phase"],
        "live_changed": state["live_changed"] if not used else True,
        "path": used[0] if used else "",
        "snapshot": used[1]["id"] if used else "",
        "snapshot_time": stamp(parse_time(used[1]["time"])) if used else "",
        "rpo_s": (
            pitr_rpo_seconds(replay, finished)
            if replay.get("replayed")
            else (rpo_seconds(used[1]["time"], finished) if used else None)
        ),
        "replay": replay,
        "duration_s": round((finished - started).total_seconds(), 1),
        "datadir_before": str(aside_path(datadir, started)) if aside_path(datadir, started).exists() else "",
        "evidence": {
            "databases": kept,
            "discard": f"portalops-backup restore-database --discard-evidence {state['id']}" if kept else "",
        },
        # New databases of a logical restore that stopped and could not drop them (drop them by hand).
        "leftovers": leftovers,
        "binlog_position": used[2].get("binlog_position", "") if used else "",
        "fallback_from": failures if used else [],
        "problems": problems,
    }


def command_verify_database(config: dict[str, Any], wanted: str | None, log: Log) -> int:
    """The live databases exactly as a snapshot's manifest recorded them (right after a restore)."""
    manifest, where = reference_manifest(config, wanted)
    log(f"verify-database: live databases against the manifest of {where} ({manifest_size(manifest)})")
    live = live_manifest(list(manifest["databases"]), newest_titles_count(manifest))
    problems = live["errors"] + manifest_problems(manifest, live)
    for problem in problems[:100]:
        log(f"DIFFERS: {problem}")
    log(
        "verify-database: identical to the manifest"
        if not problems
        else f"verify-database: {len(problems)} differ: {'; '.join(problems[:3])}"
    )
    return EXIT_OK if not problems else EXIT_FAILED


def command_check_database(config: dict[str, Any], log: Log) -> int:
    """Lost or corrupted? Every database and WordPress core table of the newest manifest there and
    readable, posts, options and users not emptied, published posts and pages, users and options not
    gone in bulk (mass_loss).

    Other tables and changes since the backup are the site's normal work and are listed, not counted: a healthy
    database is never a reason to restore.
    """
    databases = sorted({d for j in database_jobs(config) for d in j["databases"]})
    try:
        manifest, where = reference_manifest(config, None)
    except (JobError, subprocess.TimeoutExpired) as exc:
        log(f"check-database: no manifest to compare with ({exc}); checking that each database has tables")
        manifest, where = {"databases": {d: {"tables": {}} for d in databases}}, "no manifest"
    live = live_manifest(list(manifest["databases"]), newest_titles_count(manifest), checksums=False)
    cannot_tell = unavailable(live["errors"])
    if cannot_tell:
        # Not lost: a server in crash recovery, out of connections or in a lock wait is waited for, never restored.
        for reason in cannot_tell[:20]:
            log(f"CANNOT TELL: {reason}")
        log(f"check-database: unknown, the server cannot be read right now (not lost): {cannot_tell[0]}")
        return EXIT_UNKNOWN
    problems = health_problems(manifest, live)
    problems += [f"{d}: no tables" for d, entry in live["databases"].items() if not entry["tables"]]
    problems += mass_loss(manifest, live, loss_thresholds(config))
    # A restore that did not verify, with no backup since: what the server holds is not known good.
    last = previous_status(Path(config["status_dir"]) / "restore-database.json")
    # ... unless it says it never changed the live databases (a logical restore stopped before its swap).
    untouched = (last.get("restore") or {}).get("live_changed") is False if last else False
    if last and not last.get("ok") and not untouched and str(last.get("finished", "")) > str(manifest.get("taken", "")):
        problems.append(f"the restore of {last['finished']} did not verify: {'; '.join(last.get('errors', []))[:300]}")
    log(f"check-database: live databases against the manifest of {where}")
    for database, entry in live["databases"].items():
        log(f"{database}: {len(entry['tables'])} tables, {sum(t['rows'] for t in entry['tables'].values())} rows")
    for change in changes_since(manifest, live)[:20]:
        log(f"changed since the backup: {change}")
    for problem in problems[:100]:
        log(f"LOST OR CORRUPTED: {problem}")
    # The last line is what a runbook records as the finding: it names the problems.
    log(
        "check-database: healthy (nothing lost)"
        if not problems
        else f"check-database: {len(problems)} lost or corrupted: {'; '.join(problems[:3])}"
    )
    return EXIT_OK if not problems else EXIT_FAILED
