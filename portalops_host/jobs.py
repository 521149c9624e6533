"""The backup jobs (files, mariadb-dump, mariadb-backup) and `portalops-backup run`."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO, Any

from portalops_host.database import DUMP_DONE, MANIFEST_MARK, database_manifest, stable_database_manifest
from portalops_host.errors import EXIT_FAILED, EXIT_OK, ConfigError, JobError, RepositoryUnusable
from portalops_host.files import files_manifest
from portalops_host.health import loss_thresholds
from portalops_host.log import Log
from portalops_host.pins import (
    kept_manifest,
    loss_against,
    mass_loss_entry,
    pin_snapshot,
    pinned_in,
    read_pins,
    write_pins,
)
from portalops_host.restic import (
    backup_args,
    diagnose,
    incomplete,
    repository_error,
    restic_argv,
    restic_env,
    run_restic,
    summary_of,
    unlocking,
)
from portalops_host.retention import forget_args
from portalops_host.status import previous_status, record, write_atomic
from portalops_host.streams import CHUNK, Deadline, stream_timeout
from portalops_host.times import now, parse_time, stamp


def job_files(config: dict[str, Any], job: dict[str, Any], run_id: str, log: Log) -> dict[str, Any]:
    state = Path(config["status_dir"]) / "manifests"
    state.mkdir(parents=True, exist_ok=True)
    log(f"{job['name']}: hashing {', '.join(job['paths'])}")
    cache_path = state / f"{job['name']}.hashes.json"
    try:
        cache: dict[str, list[Any]] = json.loads(cache_path.read_text())
    except (OSError, json.JSONDecodeError):
        cache = {}
    manifest = files_manifest(job["paths"], job.get("exclude"), cache)
    # Forget files that are gone, so the cache does not grow for ever.
    cache = {name: entry for name, entry in cache.items() if name in manifest["files"]}
    write_atomic(cache_path, json.dumps(cache), mode=0o600)
    manifest.update(job=job["name"], run_id=run_id, host=config["host"], taken=stamp(now()))
    path = state / f"{job['name']}.json"
    path.write_text(json.dumps(manifest, sort_keys=True))
    path.chmod(0o600)
    log(f"{job['name']}: {manifest['count']} files, {manifest['bytes']} bytes; sending to the repository")
    result = run_restic(config, *backup_args(config, job), *job["paths"], str(path), incomplete_ok=True)
    return incomplete(summary_of(result.stdout), result)


def _drain(stream: IO[bytes], sink: IO[bytes]) -> None:
    for block in iter(lambda: stream.read(CHUNK), b""):
        sink.write(block)


def job_mariadb_dump(config: dict[str, Any], job: dict[str, Any], run_id: str, log: Log) -> dict[str, Any]:
    """mariadb-dump streamed into restic --stdin; a failed or truncated dump never becomes a snapshot."""
    databases = job["databases"]
    newest = int(job.get("newest_titles", 10))
    log(f"{job['name']}: manifest of {', '.join(databases)}")
    before = database_manifest(databases, newest, binlog=True)
    dump_argv = [
        "mariadb-dump",
        "--single-transaction",
        "--routines",
        "--events",
        "--triggers",
        "--hex-blob",
        "--default-character-set=utf8mb4",
        "--databases",
        *databases,
    ]
    restic = restic_argv(config, *backup_args(config, job), "--stdin", "--stdin-filename", f"{job['name']}.sql")
    with (
        tempfile.TemporaryFile() as dump_err,
        tempfile.TemporaryFile() as restic_out,
        tempfile.TemporaryFile() as restic_err,
        Deadline(stream_timeout(config)) as deadline,
    ):
        log(f"{job['name']}: streaming mariadb-dump into the repository")
        saver = subprocess.Popen(
            restic, stdin=subprocess.PIPE, stdout=restic_out, stderr=restic_err, env=restic_env(config)
        )
        deadline.watch(saver, signal.SIGINT)
        dumper: subprocess.Popen[bytes] | None = None

        def abort(failure: str | None) -> JobError:
            """Interrupt restic before its input ends (it would save a snapshot), drop anything it
            saved. ``failure`` None: restic stopped reading by itself, and its stderr says why."""
            if deadline.expired:
                failure = f"the stream did not end within {deadline.seconds:.0f} s (timed out)"
            if dumper is not None and dumper.poll() is None:
                dumper.kill()
            if saver.poll() is None:
                saver.send_signal(signal.SIGINT)
            with contextlib.suppress(OSError):
                if saver.stdin is not None:
                    saver.stdin.close()
            try:
                saver.wait(timeout=300)
            except subprocess.TimeoutExpired:
                saver.kill()
                saver.wait()
            if failure is None:
                restic_err.seek(0)
                said = restic_err.read().decode(errors="replace")
                why = (
                    diagnose(config, said, config["repository"]) if said.strip() else "restic stopped reading the dump"
                )
                error = repository_error(f"{job['name']}: {why}; no snapshot kept")
            else:
                error = JobError(f"{job['name']}: {failure}; no snapshot kept")
            if type(error) is JobError:  # locked or unusable: restic saved nothing, and could not list
                forget_run_snapshots(config, job, since=run_id)
            return error

        try:
            dumper = deadline.watch(subprocess.Popen(dump_argv, stdout=subprocess.PIPE, stderr=dump_err))
            if saver.stdin is None or dumper.stdout is None:
                raise abort("could not connect mariadb-dump to restic")
            tail = b""
            try:
                for block in iter(lambda: dumper.stdout.read(CHUNK), b""):  # type: ignore[union-attr]
                    saver.stdin.write(block)
                    tail = (tail + block)[-4096:]
            except BrokenPipeError:
                raise abort(None) from None
            dump_code = dumper.wait()
            if dump_code != 0:
                dump_err.seek(0)
                lines = dump_err.read().decode(errors="replace").strip().splitlines()
                raise abort(f"mariadb-dump failed (exit {dump_code}): {lines[-1] if lines else 'no message'}")
            if DUMP_DONE not in tail:
                raise abort("mariadb-dump output is truncated (no 'Dump completed' line)")
            manifest = stable_database_manifest(databases, newest, before)
            manifest.update(job=job["name"], run_id=run_id, host=config["host"], taken=stamp(now()))
            line = MANIFEST_MARK + json.dumps(manifest, sort_keys=True, ensure_ascii=True) + "\n"
            try:
                saver.stdin.write(line.encode())
                saver.stdin.close()
            except BrokenPipeError:
                raise abort(None) from None
        except JobError:
            raise
        except BaseException as exc:
            # Anything else (mariadb-dump missing, the manifest query failing, Ctrl-C): no snapshot either.
            raise abort(f"stopped: {exc}") from exc
        code = saver.wait()
        restic_out.seek(0)
        restic_err.seek(0)
        out, err = restic_out.read().decode(errors="replace"), restic_err.read().decode(errors="replace")
    if code != 0 and deadline.expired:
        raise JobError(
            f"{job['name']}: restic did not finish within {deadline.seconds:.0f} s (timed out); no snapshot kept"
        )
    if code != 0:
        raise repository_error(diagnose(config, err, config["repository"]))
    summary = summary_of(out)
    keep_manifest(config, job["name"], manifest, summary)
    return summary


def forget_run_snapshots(config: dict[str, Any], job: dict[str, Any], since: str) -> None:
    """Belt and braces after an aborted stream: drop any snapshot of this job made during this run."""
    try:
        listed = run_restic(config, "snapshots", "--json", "--tag", f"job:{job['name']}", "--host", config["host"])
    except JobError:
        return
    started = dt.datetime.strptime(since, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    for snapshot in json.loads(listed.stdout or "[]"):
        if parse_time(snapshot["time"]) >= started:
            with contextlib.suppress(JobError):
                run_restic(config, "forget", snapshot["id"])


def keep_manifest(config: dict[str, Any], job_name: str, manifest: dict[str, Any], summary: dict[str, Any]) -> None:
    """A local copy of a saved database snapshot's manifest: check-database reads it without the backup host."""
    kept = {**manifest, "snapshot_id": summary.get("snapshot_id")}
    write_atomic(Path(config["status_dir"]) / "manifests" / f"{job_name}.json", json.dumps(kept), mode=0o600)


def job_mariadb_backup(config: dict[str, Any], job: dict[str, Any], run_id: str, log: Log) -> dict[str, Any]:
    """mariadb-backup --backup then --prepare into a staging directory; the snapshot restores by copy."""
    staging = Path(config.get("staging_dir", "/var/backups/portalops")) / job["name"]
    databases = job["databases"]
    newest = int(job.get("newest_titles", 10))
    if staging.exists():
        shutil.rmtree(staging)
    staging.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        log(f"{job['name']}: manifest of {', '.join(databases)}")
        before = database_manifest(databases, newest, binlog=True)
        log(f"{job['name']}: mariadb-backup --backup into {staging}")
        for step in ("--backup", "--prepare"):
            result = subprocess.run(
                ["mariadb-backup", step, f"--target-dir={staging}"],
                capture_output=True,
                text=True,
                timeout=6 * 3600,
                check=False,
            )
            if result.returncode != 0:
                lines = result.stderr.strip().splitlines()
                raise JobError(f"{job['name']}: mariadb-backup {step} failed: {lines[-1] if lines else 'no message'}")
        manifest = stable_database_manifest(databases, newest, before)
        manifest.update(job=job["name"], run_id=run_id, host=config["host"], taken=stamp(now()))
        (staging / "portalops-manifest.json").write_text(json.dumps(manifest, sort_keys=True))
        log(f"{job['name']}: sending the prepared backup to the repository")
        result2 = run_restic(config, *backup_args(config, job), str(staging), incomplete_ok=True)
        summary = incomplete(summary_of(result2.stdout), result2)
        keep_manifest(config, job["name"], manifest, summary)
        return summary
    finally:
        shutil.rmtree(staging, ignore_errors=True)


JOBS = {"files": job_files, "mariadb-dump": job_mariadb_dump, "mariadb-backup": job_mariadb_backup}


def command_run(config: dict[str, Any], only: list[str], log: Log) -> int:
    jobs = [j for j in config.get("jobs", []) if not only or j["name"] in only]
    unknown = set(only) - {j["name"] for j in config.get("jobs", [])}
    if unknown:
        raise ConfigError(f"no such job: {', '.join(sorted(unknown))}")
    started = now()
    run_id = started.strftime("%Y%m%dT%H%M%SZ")
    status_path = Path(config["status_dir"]) / "run.json"
    previous = previous_status(status_path)
    before = {j["name"]: j for j in previous.get("not_run", []) + previous.get("jobs", [])}
    results = []
    # No `restic unlock` up front: a stale lock (a crashed run's) is removed when a command meets
    # it (unlocking()), and a repository that cannot be opened fails the first job, which then
    # stands for the rest, so a down backup host costs one SSH timeout, not one per job.
    unusable = ""
    for job in jobs:
        begin = time.monotonic()
        entry: dict[str, Any] = {"name": job["name"], "type": job["type"]}
        # The predecessor's manifest, before the job's new snapshot replaces it (database jobs).
        predecessor = kept_manifest(config, job["name"]) if job["type"] != "files" else None
        try:
            if unusable:
                raise JobError(f"not run: {unusable}")
            summary = unlocking(
                config, log, job["name"], functools.partial(JOBS[job["type"]], config, job, run_id, log)
            )
            entry.update(
                ok=True,
                snapshot_id=summary.get("snapshot_id"),
                bytes_added=summary.get("data_added", 0),
                files=summary.get("total_files_processed", 0),
                files_new=summary.get("files_new", 0),
                files_changed=summary.get("files_changed", 0),
                bytes_processed=summary.get("total_bytes_processed", 0),
                last_success_ts=time.time(),
            )
            if summary.get("warning"):
                entry["warning"] = summary["warning"]
                log(f"{job['name']}: WARNING: {summary['warning']}")
            log(
                f"{job['name']}: snapshot {str(entry['snapshot_id'])[:8]}, {entry['files']} files, "
                f"{entry['bytes_added']} bytes added"
            )
            check_predecessor(config, job, predecessor, entry, log)
            keep = {**config.get("keep", {}), **job.get("keep", {})}
            forget = functools.partial(run_restic, config, *forget_args(job["name"], keep))
            forgotten = unlocking(config, log, f"{job['name']}: forget", forget)
            still_pinned(config, job["name"], pinned_in(forgotten.stdout), entry)
        except Exception as exc:  # any failure of one job is that job's failure, recorded
            if isinstance(exc, RepositoryUnusable):
                unusable = str(exc)
            entry.update(
                ok=False,
                error=str(exc) or type(exc).__name__,
                last_success_ts=before.get(job["name"], {}).get("last_success_ts"),
            )
            still_pinned(config, job["name"], None, entry)
            log(f"{job['name']}: FAILED: {exc}")
        entry["duration_s"] = round(time.monotonic() - begin, 3)
        results.append(entry)
    finished = now()
    ok = bool(results) and all(r["ok"] for r in results)
    status = {
        "command": "run",
        "host": config["host"],
        "repository": config["repository"],
        "run_id": run_id,
        "started": stamp(started),
        "finished": stamp(finished),
        "finished_ts": finished.timestamp(),
        "duration_s": round((finished - started).total_seconds(), 3),
        "ok": ok,
        "exit_code": EXIT_OK if ok else EXIT_FAILED,
        "jobs": results,
        "errors": [f"{r['name']}: {r['error']}" for r in results if not r["ok"]],
        # Jobs not run this time (run --job): their last result, so their history and metrics stay.
        "not_run": [job for name, job in before.items() if name not in {r["name"] for r in results}],
    }
    record(config, status)
    log(f"run {run_id}: {'ok' if ok else 'FAILED'} in {status['duration_s']:.1f} s")
    return int(status["exit_code"])


def check_predecessor(
    config: dict[str, Any], job: dict[str, Any], predecessor: dict[str, Any] | None, entry: dict[str, Any], log: Log
) -> None:
    """After a database job's backup: its manifest against its predecessor's; mass loss pins the
    predecessor. A pin that fails stops the job before its forget (which could prune the good one)."""
    if job["type"] == "files":
        return
    current = kept_manifest(config, job["name"])
    problems = loss_against(predecessor, current, loss_thresholds(config))
    if not problems or predecessor is None or current is None:
        return
    flagged = str(current.get("snapshot_id"))[:8]
    try:
        pin = pin_snapshot(config, job["name"], predecessor, flagged, problems, log)
    except (JobError, OSError, json.JSONDecodeError, subprocess.TimeoutExpired) as exc:
        entry["mass_loss"] = [
            {"snapshot": flagged, "problems": problems, "pinned_snapshot": None, "pin_error": str(exc)}
        ]
        raise JobError(
            f"mass loss against snapshot {str(predecessor['snapshot_id'])[:8]} ({'; '.join(problems)}), "
            f"which could not be pinned ({exc}); forget skipped"
        ) from exc
    entry["mass_loss"] = [mass_loss_entry(pin)]


def still_pinned(config: dict[str, Any], job_name: str, pinned: set[str] | None, entry: dict[str, Any]) -> None:
    """The job's pins that still exist go into its status (the flag stays until a person releases them).
    ``pinned``: the ids forget kept for their tag; None (unknown) keeps every recorded pin."""
    pins = read_pins(config)
    ours = [p for p in pins if p["job"] == job_name and (pinned is None or p["id"] in pinned)]
    if pinned is not None and len(ours) != sum(p["job"] == job_name for p in pins):
        write_pins(config, [p for p in pins if p["job"] != job_name] + ours)  # released by other means
    flags = [mass_loss_entry(p) for p in ours]
    flags += [f for f in entry.get("mass_loss", []) if not f.get("pinned_snapshot")]  # a pin that failed
    if flags:
        entry["mass_loss"] = flags
    else:
        entry.pop("mass_loss", None)
