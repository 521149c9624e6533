#!/usr/bin/python3
"""portalops-backup: the host-side backup wrapper (Python standard library only).

Runs the jobs in /etc/portalops/backup.json through restic (Debian 12: 0.14) with
``--json``; every snapshot carries a manifest (database row counts and CHECKSUM TABLE
values, or the sha256 of every file) that a restore drill verifies against.

    portalops-backup run [--job NAME]    back up (all jobs or the named ones), then forget
    portalops-backup maintain            prune, then check a rolling subset of the data
    portalops-backup check [--subset S]  restic check (--read-data-subset S)
    portalops-backup copy                (backup host) copy every source repository into its second copy
    portalops-backup snapshots           the repository's snapshots as JSON

Every run writes a JSON status file and Prometheus textfile metrics, success or not.
Exit codes: 0 success, 1 a job failed, 2 bad configuration or arguments, 3 environment
(restic missing, another run holds the lock).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

CONFIG = Path("/etc/portalops/backup.json")
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_ENVIRONMENT = 0, 1, 2, 3
DUMP_DONE = b"-- Dump completed"
MANIFEST_MARK = "-- portalops-manifest: "
CHUNK = 1 << 20
JOB_TYPES = ("files", "mariadb-dump", "mariadb-backup")


class JobError(Exception):
    """A job failed; the message says why in one line."""


class ConfigError(Exception):
    """The configuration is unusable."""


class LockError(Exception):
    """Another run holds the lock."""


# --------------------------------------------------------------------------- config


def load_config(path: Path) -> dict[str, Any]:
    try:
        config: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist (is the restic_backup role applied?)") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from None
    for key in ("host", "repository", "password_file", "status_dir"):
        if not config.get(key):
            raise ConfigError(f"{path}: '{key}' is missing")
    names = set()
    for job in config.get("jobs", []):
        if job.get("type") not in JOB_TYPES:
            raise ConfigError(
                f"{path}: job {job.get('name')!r} has type {job.get('type')!r}, expected one of {JOB_TYPES}"
            )
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", str(job.get("name", ""))):
            raise ConfigError(f"{path}: job name {job.get('name')!r} must be lowercase letters, digits and '-'")
        if job["name"] in names:
            raise ConfigError(f"{path}: job {job['name']!r} appears twice")
        names.add(job["name"])
        if job["type"] == "files" and not job.get("paths"):
            raise ConfigError(f"{path}: files job {job['name']!r} has no paths")
        if job["type"] != "files" and not job.get("databases"):
            raise ConfigError(f"{path}: {job['type']} job {job['name']!r} has no databases")
        for database in job.get("databases", []):
            if not re.fullmatch(r"[A-Za-z0-9_$]+", database):
                raise ConfigError(f"{path}: job {job['name']!r}: {database!r} is not a plain database name")
    if config.get("jobs") and "keep" not in config:
        raise ConfigError(f"{path}: 'keep' (the retention policy) is missing")
    for job in config.get("jobs", []):
        # Checked before any backup: a policy that keeps nothing is refused, not discovered after a snapshot.
        keep_policy({**config.get("keep", {}), **job.get("keep", {})})
    return config


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def stamp(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- logging


class Log:
    """One line per event to stdout (journald under systemd) and to the log file."""

    def __init__(self, path: str | None) -> None:
        self.file: IO[str] | None = None
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the run

    def __call__(self, message: str) -> None:
        print(message, flush=True)
        if self.file:
            self.file.write(f"{stamp(now())} {message}\n")
            self.file.flush()


# --------------------------------------------------------------------------- restic


def restic_env(
    config: dict[str, Any], repository: str | None = None, password_file: str | None = None
) -> dict[str, str]:
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": os.environ.get("HOME", "/root"),
        "RESTIC_REPOSITORY": repository or config["repository"],
        "RESTIC_PASSWORD_FILE": password_file or config["password_file"],
        "RESTIC_CACHE_DIR": config.get("cache_dir", "/var/cache/portalops-restic"),
        "LC_ALL": "C",
    }
    return env


def restic_argv(config: dict[str, Any], *args: str) -> list[str]:
    argv = [config.get("restic", "restic")]
    if config.get("sftp_command"):
        argv += ["-o", f"sftp.command={config['sftp_command']}"]
    return argv + list(args)


def explain(stderr: str, repository: str) -> str:
    """restic's error output → one line a person can act on."""
    text = stderr.strip()
    low = text.lower()
    rules = [
        ("wrong password", f"wrong repository password for {repository}"),
        ("no key found", f"wrong repository password for {repository}"),
        ("connection refused", f"backup host refused the connection ({repository})"),
        ("no route to host", f"backup host unreachable ({repository})"),
        ("connection timed out", f"backup host unreachable ({repository})"),
        ("could not resolve", f"backup host name does not resolve ({repository})"),
        ("host key verification failed", f"backup host key does not match known_hosts ({repository})"),
        ("permission denied (publickey", f"backup host rejected this host's SSH key ({repository})"),
        ("no space left on device", f"repository full: no space left on the backup host ({repository})"),
        ("disk quota exceeded", f"repository full: quota exceeded ({repository})"),
        ("read-only file system", f"repository is read-only ({repository})"),
        ("permission denied", f"repository is not writable (permission denied) ({repository})"),
        ("unable to open config file", f"no repository at {repository} (not initialised?)"),
        ("repository is already locked", f"repository is locked by another process ({repository})"),
        # ssh died before the SFTP session began and restic 0.14 exited before it relayed ssh's
        # own message (it copies ssh's stderr in a goroutine): a frozen or down backup host.
        ("timed out", f"backup host unreachable ({repository})"),
        ("unable to start the sftp session", f"backup host unreachable: no SSH/SFTP session ({repository})"),
    ]
    for needle, message in rules:
        if needle in low:
            return message
    last = [line for line in text.splitlines() if line.strip()]
    return f"restic failed ({repository}): {last[-1] if last else 'no output'}"


def run_restic(
    config: dict[str, Any],
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 6 * 3600,
    incomplete_ok: bool = False,
) -> subprocess.CompletedProcess[str]:
    """restic; a non-zero exit raises JobError. ``incomplete_ok``: a backup's exit 3 (snapshot saved,
    some source files unreadable) is returned to the caller, who records it as a warning."""
    environment = env or restic_env(config)
    result = subprocess.run(
        restic_argv(config, *args), env=environment, capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode == 3 and incomplete_ok:
        return result
    if result.returncode != 0:
        raise JobError(explain(result.stderr, environment["RESTIC_REPOSITORY"]))
    return result


def json_messages(stdout: str) -> list[dict[str, Any]]:
    """restic --json prints one JSON object per line (status, errors, summary)."""
    messages = []
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):
                messages.append(json.loads(line))
    return messages


def incomplete(summary: dict[str, Any], result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """Mark a snapshot restic saved without some source files (exit 3), naming them."""
    if result.returncode == 3:
        lines = [line for line in result.stderr.splitlines() if line.strip()][:5]
        summary["warning"] = "incomplete snapshot, some source files could not be read: " + "; ".join(lines)
    return summary


def summary_of(stdout: str) -> dict[str, Any]:
    for message in reversed(json_messages(stdout)):
        if message.get("message_type") == "summary":
            return message
    raise JobError("restic printed no summary (snapshot not saved)")


def backup_args(config: dict[str, Any], job: dict[str, Any]) -> list[str]:
    args = ["backup", "--json", "--host", config["host"], "--tag", f"portalops,job:{job['name']}"]
    for pattern in job.get("exclude", []):
        args += ["--exclude", pattern]
    return args


def keep_policy(keep: dict[str, int]) -> list[str]:
    policy = []
    for unit in ("last", "hourly", "daily", "weekly", "monthly", "yearly"):
        if keep.get(unit):
            policy += [f"--keep-{unit}", str(int(keep[unit]))]
    if not policy:
        # restic forget without a policy keeps everything; a policy of zeros would delete everything.
        raise ConfigError("retention keeps nothing: set at least one of keep.daily/weekly/monthly")
    return policy


def forget_args(job_name: str, keep: dict[str, int]) -> list[str]:
    return ["forget", "--json", "--tag", f"job:{job_name}", "--group-by", "host,tags", *keep_policy(keep)]


def rolling_subset(day: dt.date, parts: int) -> str:
    """The part of the data a weekly check reads: all of it over ``parts`` weeks."""
    week = day.isocalendar().week + 53 * day.isocalendar().year
    return f"{week % parts + 1}/{parts}"


# --------------------------------------------------------------------------- manifests


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def files_manifest(
    paths: list[str], exclude: list[str] | None = None, cache: dict[str, list[Any]] | None = None
) -> dict[str, Any]:
    """sha256 and size of every regular file under ``paths`` (symlinks recorded by target).

    ``cache`` maps a path to [size, mtime_ns, sha256] from the previous run: an unchanged file
    (same size and modification time) is not read again. It is updated in place.
    """
    import fnmatch

    known = cache if cache is not None else {}

    files: dict[str, dict[str, Any]] = {}
    links: dict[str, str] = {}
    for top in paths:
        root = Path(top)
        if not root.exists():
            raise JobError(f"path to back up does not exist: {top}")
        walker = [(str(root.parent), [], [root.name])] if root.is_file() else os.walk(root)
        for directory, dirnames, filenames in walker:
            dirnames[:] = [d for d in dirnames if not any(fnmatch.fnmatch(d, p) for p in exclude or [])]
            for name in filenames:
                if any(fnmatch.fnmatch(name, p) for p in exclude or []):
                    continue
                full = Path(directory) / name
                if full.is_symlink():
                    links[str(full)] = os.readlink(full)
                elif full.is_file():
                    info = full.stat()
                    seen = known.get(str(full))
                    if seen and seen[0] == info.st_size and seen[1] == info.st_mtime_ns:
                        digest = str(seen[2])
                    else:
                        digest = sha256_file(full)
                        known[str(full)] = [info.st_size, info.st_mtime_ns, digest]
                    files[str(full)] = {"sha256": digest, "size": info.st_size}
            for name in dirnames:
                if (Path(directory) / name).is_symlink():
                    links[str(Path(directory) / name)] = os.readlink(Path(directory) / name)
    return {
        "kind": "files",
        "paths": paths,
        "files": files,
        "links": links,
        "count": len(files),
        "bytes": sum(f["size"] for f in files.values()),
    }


def mariadb(sql: str, database: str | None = None, socket: str | None = None) -> list[list[str]]:
    argv = ["mariadb", "--batch", "--skip-column-names", "--raw"]
    if socket:
        argv.append(f"--socket={socket}")
    if database:
        argv.append(f"--database={database}")
    # On stdin, not -e: a statement may carry a password, which must not show in ps.
    result = subprocess.run(argv, input=sql, capture_output=True, text=True, timeout=3600, check=False)
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        raise JobError(f"mariadb query failed: {lines[-1] if lines else 'no message'}")
    return [line.split("\t") for line in result.stdout.splitlines() if line]


def quote_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def sql_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def database_manifest(databases: list[str], newest: int = 10, socket: str | None = None) -> dict[str, Any]:
    """Per table: row count and CHECKSUM TABLE; per WordPress database: the newest published titles."""
    found: dict[str, Any] = {}
    for database in databases:
        tables = [
            row[0]
            for row in mariadb(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = "  # noqa: S608 - quoted
                f"{sql_string(database)} AND table_type = 'BASE TABLE' ORDER BY table_name",
                socket=socket,
            )
        ]
        if not tables:
            exists = mariadb(f"SHOW DATABASES LIKE {sql_string(database)}", socket=socket)
            if not exists:
                raise JobError(f"database {database} does not exist")
        entry: dict[str, Any] = {"tables": {}}
        if tables:
            counts = " UNION ALL ".join(
                f"SELECT {sql_string(t)}, COUNT(*) FROM {quote_ident(database)}.{quote_ident(t)}"  # noqa: S608 - quoted
                for t in tables
            )
            rows = {name: int(count) for name, count in mariadb(counts, socket=socket)}
            listed = ", ".join(f"{quote_ident(database)}.{quote_ident(t)}" for t in tables)
            sums = {name.split(".", 1)[1]: value for name, value in mariadb(f"CHECKSUM TABLE {listed}", socket=socket)}
            entry["tables"] = {t: {"rows": rows[t], "checksum": sums.get(t)} for t in tables}
        # The site's own posts table (wp_posts), not a multisite wp_2_posts or a plugin's *_posts.
        candidates = [t for t in tables if t.endswith("_posts")]
        posts = min(candidates, key=len) if candidates else None
        if posts and newest:
            entry["newest_titles"] = [
                row[0] if row else ""
                for row in mariadb(
                    f"SELECT post_title FROM {quote_ident(database)}.{quote_ident(posts)} "  # noqa: S608 - quoted
                    "WHERE post_type = 'post' "
                    f"AND post_status = 'publish' ORDER BY post_date DESC, ID DESC LIMIT {int(newest)}",
                    socket=socket,
                )
            ]
        found[database] = entry
    return {"kind": "mariadb", "databases": found}


def compare_database(
    expected: dict[str, Any], actual: dict[str, Any], rename: dict[str, str] | None = None
) -> list[str]:
    """What differs between a manifest and a restored database ('' list: identical)."""
    problems = []
    for database, want in expected["databases"].items():
        have = actual["databases"].get((rename or {}).get(database, database))
        if have is None:
            problems.append(f"{database}: missing")
            continue
        for table, spec in want["tables"].items():
            got = have["tables"].get(table)
            if got is None:
                problems.append(f"{database}.{table}: missing")
            elif got["rows"] != spec["rows"]:
                problems.append(f"{database}.{table}: {got['rows']} rows, manifest {spec['rows']}")
            elif spec.get("checksum") is not None and got.get("checksum") != spec["checksum"]:
                problems.append(f"{database}.{table}: checksum {got.get('checksum')}, manifest {spec['checksum']}")
        extra = set(have["tables"]) - set(want["tables"])
        if extra:
            problems.append(f"{database}: tables not in the manifest: {', '.join(sorted(extra))}")
    return problems


def compare_files(expected: dict[str, Any], root: Path) -> list[str]:
    """Restored files under ``root`` against a files manifest (paths as they were on the host)."""
    problems = []
    for path, spec in expected["files"].items():
        restored = root / path.lstrip("/")
        if not restored.is_file():
            problems.append(f"{path}: not restored")
        elif sha256_file(restored) != spec["sha256"]:
            problems.append(f"{path}: sha256 differs from the manifest")
    for path, target in expected.get("links", {}).items():
        restored = root / path.lstrip("/")
        if not restored.is_symlink() or os.readlink(restored) != target:
            problems.append(f"{path}: symlink to {target} not restored")
    return problems


def stable_database_manifest(databases: list[str], newest: int, before: dict[str, Any]) -> dict[str, Any]:
    """The manifest taken after the backup; 'consistent' when nothing changed during it."""
    after = database_manifest(databases, newest)
    if after["databases"] == before["databases"]:
        return {**before, "consistent": True}
    # Writes during the backup: keep both; a drill checks the restored counts lie between them.
    return {**before, "consistent": False, "after": after}


# --------------------------------------------------------------------------- jobs


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
    before = database_manifest(databases, newest)
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
    ):
        log(f"{job['name']}: streaming mariadb-dump into the repository")
        saver = subprocess.Popen(
            restic, stdin=subprocess.PIPE, stdout=restic_out, stderr=restic_err, env=restic_env(config)
        )
        dumper: subprocess.Popen[bytes] | None = None

        def abort(failure: str) -> JobError:
            """Interrupt restic before its input ends (it would save a snapshot), drop anything it saved."""
            if dumper is not None and dumper.poll() is None:
                dumper.kill()
            saver.send_signal(signal.SIGINT)
            with contextlib.suppress(OSError):
                if saver.stdin is not None:
                    saver.stdin.close()
            try:
                saver.wait(timeout=300)
            except subprocess.TimeoutExpired:
                saver.kill()
                saver.wait()
            forget_run_snapshots(config, job, since=run_id)
            return JobError(f"{job['name']}: {failure}; no snapshot kept")

        try:
            dumper = subprocess.Popen(dump_argv, stdout=subprocess.PIPE, stderr=dump_err)
            if saver.stdin is None or dumper.stdout is None:
                raise abort("could not connect mariadb-dump to restic")
            tail = b""
            try:
                for block in iter(lambda: dumper.stdout.read(CHUNK), b""):  # type: ignore[union-attr]
                    saver.stdin.write(block)
                    tail = (tail + block)[-4096:]
            except BrokenPipeError:
                raise abort("restic stopped reading the dump") from None
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
                raise abort("restic stopped reading the dump") from None
        except JobError:
            raise
        except BaseException as exc:
            # Anything else (mariadb-dump missing, the manifest query failing, Ctrl-C): no snapshot either.
            raise abort(f"stopped: {exc}") from exc
        code = saver.wait()
        restic_out.seek(0)
        restic_err.seek(0)
        out, err = restic_out.read().decode(errors="replace"), restic_err.read().decode(errors="replace")
    if code != 0:
        raise JobError(explain(err, config["repository"]))
    return summary_of(out)


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


def parse_time(text: str) -> dt.datetime:
    """restic's RFC 3339 times carry nanoseconds, which datetime does not parse."""
    text = re.sub(r"\.(\d{6})\d*", r".\1", text)
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


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
        before = database_manifest(databases, newest)
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
        return incomplete(summary_of(result2.stdout), result2)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


JOBS = {"files": job_files, "mariadb-dump": job_mariadb_dump, "mariadb-backup": job_mariadb_backup}


# --------------------------------------------------------------------------- status and metrics


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, prefix=f".{path.name}.") as handle:
        handle.write(text)
    os.chmod(handle.name, mode)
    os.replace(handle.name, path)


def previous_status(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        return data
    except (OSError, json.JSONDecodeError):
        return {}


def number(value: float) -> str:
    """A sample value as Prometheus text: integers without a fraction, others to the millisecond."""
    value = float(value)
    return str(int(value)) if value.is_integer() else f"{value:.3f}"


def metrics(status: dict[str, Any]) -> str:
    """Prometheus text exposition of a run's status (node_exporter's textfile collector)."""
    host = status["host"]
    command = status["command"]
    lines = [
        "# HELP portalops_backup_last_run_timestamp_seconds When the last run of this command ended.",
        "# TYPE portalops_backup_last_run_timestamp_seconds gauge",
        f'portalops_backup_last_run_timestamp_seconds{{host="{host}",command="{command}"}} {status["finished_ts"]:.0f}',
        "# HELP portalops_backup_last_run_success 1 when every job of the last run succeeded.",
        "# TYPE portalops_backup_last_run_success gauge",
        f'portalops_backup_last_run_success{{host="{host}",command="{command}"}} {1 if status["ok"] else 0}',
        "# HELP portalops_backup_exit_code Exit code of the last run.",
        "# TYPE portalops_backup_exit_code gauge",
        f'portalops_backup_exit_code{{host="{host}",command="{command}"}} {status["exit_code"]}',
    ]
    series = {
        "portalops_backup_job_success": ("1 when the job succeeded in the last run.", lambda j: 1 if j["ok"] else 0),
        "portalops_backup_job_last_success_timestamp_seconds": (
            "When the job last succeeded.",
            lambda j: j.get("last_success_ts") or 0,
        ),
        "portalops_backup_job_duration_seconds": ("Duration of the job in the last run.", lambda j: j["duration_s"]),
        "portalops_backup_job_bytes_added": (
            "Bytes the job added to the repository.",
            lambda j: j.get("bytes_added", 0),
        ),
        "portalops_backup_job_files": ("Files in the job's snapshot.", lambda j: j.get("files", 0)),
    }
    for name, (help_text, value) in series.items():
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
        jobs = status["jobs"] + (status.get("not_run", []) if name.endswith("last_success_timestamp_seconds") else [])
        for job in jobs:
            lines.append(f'{name}{{host="{host}",job="{job["name"]}"}} {number(value(job))}')
    lines += [
        "# HELP portalops_backup_job_snapshot_info The job's newest snapshot.",
        "# TYPE portalops_backup_job_snapshot_info gauge",
    ]
    for job in status["jobs"]:
        if job.get("snapshot_id"):
            labels = f'host="{host}",job="{job["name"]}",snapshot_id="{job["snapshot_id"]}"'
            lines.append(f"portalops_backup_job_snapshot_info{{{labels}}} 1")
    return "\n".join(lines) + "\n"


def record(config: dict[str, Any], status: dict[str, Any]) -> None:
    status_dir = Path(config["status_dir"])
    name = status["command"]
    write_atomic(status_dir / f"{name}.json", json.dumps(status, indent=2, sort_keys=True) + "\n")
    if config.get("metrics_dir"):
        write_atomic(Path(config["metrics_dir"]) / f"portalops_backup_{name}.prom", metrics(status))


@contextlib.contextmanager
def run_lock(config: dict[str, Any]) -> Iterator[None]:
    path = Path(config.get("lock_file", "/run/lock/portalops-backup.lock"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockError(f"another portalops-backup run holds {path}") from None
        yield


# --------------------------------------------------------------------------- commands


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
    try:
        # Stale locks of a crashed earlier run (restic removes only locks whose process is gone).
        run_restic(config, "unlock", timeout=600)
    except (JobError, subprocess.TimeoutExpired) as exc:
        error = str(exc)
        results = [
            {
                "name": j["name"],
                "ok": False,
                "error": error,
                "duration_s": 0.0,
                "last_success_ts": before.get(j["name"], {}).get("last_success_ts"),
            }
            for j in jobs
        ]
        log(f"FAILED before any job: {error}")
    else:
        for job in jobs:
            begin = time.monotonic()
            entry: dict[str, Any] = {"name": job["name"], "type": job["type"]}
            try:
                summary = JOBS[job["type"]](config, job, run_id, log)
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
                keep = {**config.get("keep", {}), **job.get("keep", {})}
                run_restic(config, *forget_args(job["name"], keep))
            except Exception as exc:  # any failure of one job is that job's failure, recorded
                entry.update(
                    ok=False,
                    error=str(exc) or type(exc).__name__,
                    last_success_ts=before.get(job["name"], {}).get("last_success_ts"),
                )
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


def simple_status(config: dict[str, Any], command: str, started: dt.datetime, error: str, extra: dict[str, Any]) -> int:
    finished = now()
    status = {
        "command": command,
        "host": config["host"],
        "repository": config["repository"],
        "started": stamp(started),
        "finished": stamp(finished),
        "finished_ts": finished.timestamp(),
        "duration_s": round((finished - started).total_seconds(), 3),
        "ok": not error,
        "exit_code": EXIT_FAILED if error else EXIT_OK,
        "jobs": [],
        "errors": [error] if error else [],
        **extra,
    }
    record(config, status)
    return int(status["exit_code"])


def command_check(config: dict[str, Any], subset: str | None, log: Log, prune: bool) -> int:
    started = now()
    error = ""
    subset = subset or rolling_subset(started.date(), int(config.get("check_subsets", 7)))
    try:
        run_restic(config, "unlock")
        if prune:
            log("prune: removing data no snapshot needs any more")
            run_restic(config, "prune")
        log(f"check: repository structure and data subset {subset}")
        run_restic(config, "check", "--read-data-subset", subset)
    except (JobError, subprocess.TimeoutExpired) as exc:
        error = str(exc)
        log(f"check FAILED: {error}")
    else:
        log("check: no errors were found")
    return simple_status(config, "maintain" if prune else "check", started, error, {"subset": subset})


def command_copy(config: dict[str, Any], log: Log) -> int:
    """Backup host: copy each source repository's snapshots into its second copy, then forget there."""
    started = now()
    results = []
    keep = config.get("keep", {})
    for copy in config.get("copies", []):
        begin = time.monotonic()
        env = restic_env(config, copy["to_repo"], copy["password_file"])
        env["RESTIC_FROM_REPOSITORY"] = copy["from_repo"]
        env["RESTIC_FROM_PASSWORD_FILE"] = copy["from_password_file"]
        entry: dict[str, Any] = {"name": copy["name"]}
        try:
            log(f"copy {copy['name']}: {copy['from_repo']} -> {copy['to_repo']}")
            run_restic({**config, "sftp_command": ""}, "copy", env=env)
            forget = ["forget", "--prune", "--json", "--group-by", "host,tags", *keep_policy(keep)]
            run_restic({**config, "sftp_command": ""}, *forget, env=env)
            entry.update(ok=True, last_success_ts=time.time())
        except (JobError, ConfigError, subprocess.TimeoutExpired) as exc:
            entry.update(ok=False, error=str(exc))
            log(f"copy {copy['name']}: FAILED: {exc}")
        entry["duration_s"] = round(time.monotonic() - begin, 3)
        results.append(entry)
    error = "; ".join(f"{r['name']}: {r['error']}" for r in results if not r["ok"])
    return simple_status(config, "copy", started, error, {"jobs": results})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="portalops-backup", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(CONFIG), help="configuration file (default %(default)s)")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="back up, then apply the retention policy")
    run.add_argument("--job", action="append", default=[], help="only this job (repeatable)")
    sub.add_parser("maintain", help="prune, then check a rolling subset of the data")
    check = sub.add_parser("check", help="restic check")
    check.add_argument("--subset", help="--read-data-subset value (default: this week's rolling part)")
    sub.add_parser("copy", help="copy the source repositories into their second copies (backup host)")
    sub.add_parser("snapshots", help="list snapshots as JSON")
    args = parser.parse_args(argv)
    try:
        config = load_config(Path(args.config))
    except ConfigError as exc:
        print(f"portalops-backup: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if shutil.which(config.get("restic", "restic")) is None:
        print("portalops-backup: restic is not installed", file=sys.stderr)
        return EXIT_ENVIRONMENT
    os.umask(0o077)
    log = Log(config.get("log_file"))
    try:
        with run_lock(config):
            if args.command == "run":
                return command_run(config, args.job, log)
            if args.command == "maintain":
                return command_check(config, None, log, prune=True)
            if args.command == "check":
                return command_check(config, args.subset, log, prune=False)
            if args.command == "copy":
                return command_copy(config, log)
            print(run_restic(config, "snapshots", "--json").stdout)
            return EXIT_OK
    except LockError as exc:
        print(f"portalops-backup: {exc}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    except ConfigError as exc:
        print(f"portalops-backup: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except JobError as exc:
        print(f"portalops-backup: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
