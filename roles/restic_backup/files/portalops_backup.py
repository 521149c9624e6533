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
    portalops-backup status              the last run, mass-loss flags and pinned snapshots
    portalops-backup release SNAPSHOT    unpin a snapshot kept after a mass loss (a person's act)
    portalops-backup restore-database [--snapshot ID | --logical] [--until TIME | --until-position FILE:POS]
                                      [--deadline S] --yes
                                         MariaDB from the newest physical backup (the dump if that
                                         fails), verified against its manifest, then the binary log
                                         replayed up to just before the accident; prints the RPO. The
                                         dump loads into new databases, swapped in once verified; the
                                         old tables stay in evidence databases
    portalops-backup restore-database --discard-evidence ID
                                         drop the evidence databases of logical restore ID
    portalops-backup verify-database [--snapshot ID]   live databases identical to a manifest?
    portalops-backup check-database      lost or corrupted? (changes since the backup are fine, mass
                                         loss of published content, users or options is not)
    portalops-backup verify-files JOB [--snapshot ID] [--json]
                                         a files job's live tree against a snapshot's manifest:
                                         changed, missing and added files (exit 0: none)
    portalops-backup restore-files JOB [--snapshot ID] [--evidence DIR] --yes
                                         keep evidence, put changed and missing files back from the
                                         snapshot, move added ones into the evidence, verify again

Every run writes a JSON status file and Prometheus textfile metrics, success or not.
Exit codes: 0 success, 1 a job failed, 2 bad configuration or arguments, 3 environment
(restic missing, another run holds the lock), 75 unknown (check-database: the server cannot be
read right now, so whether anything is lost cannot be told).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

CONFIG = Path("/etc/portalops/backup.json")
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_ENVIRONMENT = 0, 1, 2, 3
EXIT_UNKNOWN = 75  # EX_TEMPFAIL: a check that cannot tell right now (never a reason to restore)
DUMP_DONE = b"-- Dump completed"
MANIFEST_MARK = "-- portalops-manifest: "
CHUNK = 1 << 20
JOB_TYPES = ("files", "mariadb-dump", "mariadb-backup")
T = TypeVar("T")


class JobError(Exception):
    """A job failed; the message says why in one line."""


class RepositoryLocked(JobError):
    """restic met another process's lock (a live run's, or a stale one a crashed run left)."""


class RepositoryUnusable(JobError):
    """The repository cannot be opened from this host at all (backup host down, SSH key or
    password refused, no repository): every other job of the run would fail alike."""


class ConfigError(Exception):
    """The configuration is unusable."""


class LockError(Exception):
    """Another run holds the lock."""


class Terminated(BaseException):
    """SIGTERM (a runbook step's timeout, systemd stopping the unit): unwinds like Ctrl-C, so the
    clean-up paths run (a half-done physical restore puts the old data directory back)."""


def terminate(signum: int, frame: object) -> None:
    raise Terminated(f"stopped by signal {signum}")


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
    if config.get("copies"):
        # The backup host's second copies: refused before anything is copied or forgotten.
        keep_policy(config.get("keep", {}))
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


def check_problems(stderr: str) -> list[str]:
    """restic check's problems, one line each ("error for tree X:" joined with its indented detail;
    ssh's own lines such as the login banner and restic's closing "Fatal:" left out; ids shortened)."""
    problems: list[str] = []
    for line in stderr.splitlines():
        if not line.strip() or line.startswith(("Fatal:", "subprocess ssh:")):
            continue
        if line[0].isspace() and problems:
            problems[-1] = f"{problems[-1].rstrip(':')}: {line.strip()}"
        else:
            problems.append(line.strip())
    return [re.sub(r"\b([0-9a-f]{10})[0-9a-f]{54}\b", r"\1", problem) for problem in problems]


# restic's error output (a needle, lowercase; the first that matches wins) → one line a person can
# act on, and its class: RepositoryUnusable when this host cannot open the repository at all (the
# run's other jobs would fail alike), RepositoryLocked for a lock, JobError when each job fails on
# its own (a full or read-only repository fails fast).
RESTIC_ERRORS: tuple[tuple[str, str, type[JobError]], ...] = (
    ("wrong password", "wrong repository password for {repository}", RepositoryUnusable),
    ("no key found", "wrong repository password for {repository}", RepositoryUnusable),
    ("connection refused", "backup host refused the connection ({repository})", RepositoryUnusable),
    ("no route to host", "backup host unreachable ({repository})", RepositoryUnusable),
    ("connection timed out", "backup host unreachable ({repository})", RepositoryUnusable),
    ("could not resolve", "backup host name does not resolve ({repository})", RepositoryUnusable),
    ("host key verification failed", "backup host key does not match known_hosts ({repository})", RepositoryUnusable),
    ("permission denied (publickey", "backup host rejected this host's SSH key ({repository})", RepositoryUnusable),
    ("no space left on device", "repository full: no space left on the backup host ({repository})", JobError),
    ("disk quota exceeded", "repository full: quota exceeded ({repository})", JobError),
    ("read-only file system", "repository is read-only ({repository})", JobError),
    ("permission denied", "repository is not writable (permission denied) ({repository})", JobError),
    ("unable to open config file", "no repository at {repository} (not initialised?)", RepositoryUnusable),
    ("repository is already locked", "repository is locked by another process ({repository})", RepositoryLocked),
    # ssh died before the SFTP session began and restic 0.14 exited before it relayed ssh's
    # own message (it copies ssh's stderr in a goroutine): a frozen or down backup host.
    ("timed out", "backup host unreachable ({repository})", RepositoryUnusable),
    (
        "unable to start the sftp session",
        "backup host unreachable: no SSH/SFTP session ({repository})",
        RepositoryUnusable,
    ),
)


def explain(stderr: str, repository: str) -> str:
    """restic's error output → one line a person can act on."""
    text = stderr.strip()
    low = text.lower()
    if "repository contains errors" in low:
        problems = check_problems(text)
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return f"{repository} contains errors: {problems[0] if problems else 'see restic check'}{more}"
    for needle, template, _ in RESTIC_ERRORS:
        if needle in low:
            return template.format(repository=repository)
    last = [line for line in text.splitlines() if line.strip()]
    return f"restic failed ({repository}): {last[-1] if last else 'no output'}"


def repository_error(message: str) -> JobError:
    """The JobError for one of explain()'s messages: its class (from RESTIC_ERRORS) tells the run
    what to do next."""
    for _, template, kind in RESTIC_ERRORS:
        if template.split("{repository}")[0] in message:
            return kind(message)
    return JobError(message)


# An SFTP repository with less room than this cannot take another pack (restic 0.14 writes packs
# of 4 MiB and more, a few at a time).
FULL_BELOW = 64 << 20


def parse_sftp_df(text: str) -> int | None:
    """Free bytes from the sftp client's ``df`` (columns in KiB: size, used, avail, (root), %capacity)."""
    for line in reversed(text.splitlines()):
        fields = line.split()
        if len(fields) == 5 and all(f.isdigit() for f in fields[:4]) and fields[4].endswith("%"):
            return int(fields[2]) * 1024
    return None


def sftp_free_bytes(config: dict[str, Any], repository: str) -> int | None:
    """Free space where an SFTP repository lives, asked over this host's own SFTP account
    (statvfs@openssh.com). None: not an SFTP repository, or the server did not say."""
    command = config.get("sftp_command") or ""
    if not command or not repository.startswith("sftp:") or repository.count(":") < 2:
        return None
    path = repository.split(":", 2)[2]
    try:
        result = subprocess.run(
            [config.get("sftp", "sftp"), "-q", "-b", "-", "-D", command],
            input=f"df {path}\n",
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": os.environ.get("HOME", "/root"), "LC_ALL": "C"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_sftp_df(result.stdout) if result.returncode == 0 else None


def diagnose(config: dict[str, Any], stderr: str, repository: str, name: str | None = None) -> str:
    """explain(), and when an SFTP server answered a write with its catch-all SSH_FX_FAILURE (it
    reports ENOSPC no better, so restic never sees "no space left on device"), ask it how much room
    the repository has left."""
    message = explain(stderr, name or repository)
    if "ssh_fx_failure" in stderr.lower() and message.startswith("restic failed"):
        free = sftp_free_bytes(config, repository)
        if free is not None and free < FULL_BELOW:
            where = f"{name or repository}, {free // 1024} KiB free"
            return f"repository full: no space left on the backup host ({where})"
    return message


def run_restic(
    config: dict[str, Any],
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 6 * 3600,
    incomplete_ok: bool = False,
    name: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """restic; a non-zero exit raises JobError. ``incomplete_ok``: a backup's exit 3 (snapshot saved,
    some source files unreadable) is returned to the caller, who records it as a warning. ``name``:
    how the error names the repository (default: its address)."""
    environment = env or restic_env(config)
    result = subprocess.run(
        restic_argv(config, *args), env=environment, capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode == 3 and incomplete_ok:
        return result
    if result.returncode != 0:
        raise repository_error(diagnose(config, result.stderr, environment["RESTIC_REPOSITORY"], name))
    return result


# A stream between processes (mariadb-dump into restic, restic dump into a file) ends by this
# deadline unless the configuration says otherwise ("stream_timeout_s"): a frozen SFTP session or
# a stuck dump would otherwise block a read or a write, and the run, for ever.
STREAM_TIMEOUT = 6 * 3600


def stream_timeout(config: dict[str, Any]) -> float:
    return float(config.get("stream_timeout_s", STREAM_TIMEOUT))


class Deadline:
    """Ends the processes it watches when ``seconds`` pass: each gets its first signal (SIGKILL
    unless told; restic takes SIGINT, which saves no snapshot), then SIGKILL ``grace`` seconds later.
    A read blocked on their pipes then sees EOF and a write a broken pipe, so the caller's own
    clean-up runs; ``expired`` tells it why. Used as a context manager, which cancels it."""

    def __init__(self, seconds: float, grace: float = 60) -> None:
        self.seconds = seconds
        self.grace = grace
        self.expired = False
        self.watched: list[tuple[subprocess.Popen[bytes], int]] = []
        self.timers = [threading.Timer(seconds, self.expire), threading.Timer(seconds + grace, self.kill)]
        for timer in self.timers:
            timer.daemon = True

    def watch(self, process: subprocess.Popen[bytes], first: int = signal.SIGKILL) -> subprocess.Popen[bytes]:
        self.watched.append((process, first))
        return process

    def expire(self) -> None:
        self.expired = True
        for process, first in self.watched:
            if process.poll() is None:
                with contextlib.suppress(OSError):
                    process.send_signal(first)

    def kill(self) -> None:
        for process, _ in self.watched:
            if process.poll() is None:
                with contextlib.suppress(OSError):
                    process.kill()

    def __enter__(self) -> Deadline:
        for timer in self.timers:
            timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for timer in self.timers:
            timer.cancel()


def unlocking(config: dict[str, Any], log: Log, what: str, action: Callable[[], T]) -> T:
    """``action()``; when it meets a lock, remove the stale ones and try once more. restic unlock
    removes only locks whose process is gone (same host) or that are older than 30 minutes, so
    a live run's lock stays and the second try fails with "locked by another process". Run only
    on a lock: every restic command pays the repository's key derivation (~0.5 s)."""
    try:
        return action()
    except RepositoryLocked as exc:
        log(f"{what}: {exc}; removing stale locks (restic unlock) and trying again")
        run_restic(config, "unlock", timeout=600)
        return action()


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


KEEP_COUNTS = ("last", "hourly", "daily", "weekly", "monthly", "yearly")
# restic's duration: years, months, days, hours ("m" is months, not minutes), e.g. 48h, 7d, 1y6m.
KEEP_WITHIN = re.compile(r"(?:\d+y)?(?:\d+m)?(?:\d+d)?(?:\d+h)?")


def keep_policy(keep: dict[str, Any]) -> list[str]:
    """restic forget's --keep-* arguments. ``within`` (a duration, e.g. 48h) keeps every snapshot that
    close to the newest, ``last`` the newest N: a second backup the same day (a "back up now" after an
    unnoticed deletion, a re-run of the nightly) must not prune the day's earlier, good snapshot, which
    daily/weekly/monthly alone (one per day) would. A zero, a negative or an unknown entry is refused,
    never read as "not set": restic would then keep less than the policy seems to say."""
    unknown = sorted(set(keep) - {"within", *KEEP_COUNTS})
    if unknown:
        raise ConfigError(f"retention: unknown keep.{unknown[0]} (known: within, {', '.join(KEEP_COUNTS)})")
    policy = []
    if "within" in keep:
        value = keep["within"]
        if not isinstance(value, str) or not KEEP_WITHIN.fullmatch(value) or not re.search(r"[1-9]", value):
            raise ConfigError(f"retention: keep.within {value!r} is not a duration such as 48h, 7d or 1y6m")
        policy += ["--keep-within", value]
    for unit in KEEP_COUNTS:
        if unit in keep:
            value = keep[unit]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"retention: keep.{unit} {value!r} must be a whole number of snapshots, 1 or more")
            policy += [f"--keep-{unit}", str(value)]
    if not policy:
        # restic forget without a policy keeps everything; a policy of zeros would delete everything.
        raise ConfigError("retention keeps nothing: set keep.within and keep.last, daily, weekly or monthly")
    return policy


def forget_args(job_name: str, keep: dict[str, int]) -> list[str]:
    return [
        "forget",
        "--json",
        "--tag",
        f"job:{job_name}",
        "--group-by",
        "host,tags",
        *keep_policy(keep),
        "--keep-tag",
        PIN_TAG,
    ]


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


# Published content whose mass loss check-database calls "lost" (manifest field 'published', per database).
PUBLISHED_TYPES = ("post", "page")


def database_manifest(
    databases: list[str], newest: int = 10, socket: str | None = None, checksums: bool = True
) -> dict[str, Any]:
    """Per table: row count and CHECKSUM TABLE; per WordPress database: the newest published titles.

    ``checksums=False`` skips CHECKSUM TABLE (it reads every row): a quick health look, not a verification.
    """
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
            sums = (
                {name.split(".", 1)[1]: value for name, value in mariadb(f"CHECKSUM TABLE {listed}", socket=socket)}
                if checksums
                else {}
            )
            entry["tables"] = {t: {"rows": rows[t], "checksum": sums.get(t)} for t in tables}
        # The site's own posts table (wp_posts), not a multisite wp_2_posts or a plugin's *_posts.
        candidates = [t for t in tables if t.endswith("_posts")]
        posts = min(candidates, key=len) if candidates else None
        if posts:
            # Published posts and pages by type: check-database tells a mass deletion from editing by them.
            counted = mariadb(
                f"SELECT post_type, COUNT(*) FROM {quote_ident(database)}.{quote_ident(posts)} "  # noqa: S608 - quoted
                f"WHERE post_status = 'publish' AND post_type IN ({', '.join(map(sql_string, PUBLISHED_TYPES))}) "
                "GROUP BY post_type",
                socket=socket,
            )
            entry["published"] = {kind: 0 for kind in PUBLISHED_TYPES} | {k: int(n) for k, n in counted}
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


# --------------------------------------------------------------------------- files: verify and restore

EVIDENCE_DIR = Path("/var/lib/portalops/evidence")


def files_diff(expected: dict[str, Any], actual: dict[str, Any]) -> dict[str, list[str]]:
    """A files manifest against one of the live tree: what changed, went missing or was added.

    Regular files compare by sha256, symlinks by target, and a file that became a link (or the
    other way round) is changed. ``added`` is what the backup never saw: an upload made since,
    or a dropped web shell; only a person can tell which, so a restore keeps them as evidence.
    """
    want_files, want_links = expected.get("files", {}), expected.get("links", {})
    have_files, have_links = actual.get("files", {}), actual.get("links", {})
    changed, missing = [], []
    for path, spec in want_files.items():
        if path in have_files:
            if have_files[path]["sha256"] != spec["sha256"]:
                changed.append(path)
        elif path in have_links:
            changed.append(path)
        else:
            missing.append(path)
    for path, target in want_links.items():
        if path in have_links:
            if have_links[path] != target:
                changed.append(path)
        elif path in have_files:
            changed.append(path)
        else:
            missing.append(path)
    known = set(want_files) | set(want_links)
    added = [path for path in [*have_files, *have_links] if path not in known]
    return {"changed": sorted(changed), "missing": sorted(missing), "added": sorted(added)}


def live_files_manifest(paths: list[str], exclude: list[str] | None) -> dict[str, Any]:
    """The live tree as a manifest, every file read again (no hash cache: tampering can keep size and mtime).

    A top path that is gone entirely is no error here: its files are then all missing."""
    return files_manifest([p for p in paths if os.path.lexists(p)], exclude, cache={})


def pick_files_snapshot(listed: list[dict[str, Any]], job_name: str, wanted: str | None) -> dict[str, Any]:
    """The newest snapshot of a files job, or the one ``wanted`` names (an id or its prefix)."""
    if not listed:
        raise JobError(f"no snapshot of job {job_name} in the repository")
    if wanted:
        chosen = [s for s in listed if s["id"].startswith(wanted) or s.get("short_id") == wanted]
        if not chosen:
            raise JobError(f"snapshot {wanted} of job {job_name} not found")
        return chosen[0]
    return max(listed, key=lambda s: parse_time(s["time"]))


def restic_include(path: str) -> str:
    """A path as a restic --include pattern that matches only itself (glob characters escaped)."""
    return re.sub(r"([\\*?\[\]])", r"\\\1", path)


def keep_evidence(paths: list[str], directory: Path, details: dict[str, Any]) -> dict[str, str]:
    """Before anything is touched: a tar of ``paths`` as found (links as links, owners and modes kept),
    the sha256 of each regular file and of the tar, and ``details`` (what differed, from which snapshot).
    Root only; the directory is returned in the summary so it can be copied off the host."""
    directory.mkdir(parents=True, mode=0o700, exist_ok=True)
    directory.chmod(0o700)
    tar_path = directory / "evidence.tar"
    sums: dict[str, str] = {}
    with tarfile.open(tar_path, "w") as tar:
        for path in paths:
            if os.path.lexists(path):
                tar.add(path, recursive=False)
                if Path(path).is_file() and not Path(path).is_symlink():
                    sums[path] = sha256_file(Path(path))
    sums["evidence.tar"] = sha256_file(tar_path)
    (directory / "SHA256SUMS").write_text("".join(f"{digest}  {name}\n" for name, digest in sums.items()))
    (directory / "details.json").write_text(json.dumps(details, indent=2, sort_keys=True) + "\n")
    for name in ("evidence.tar", "SHA256SUMS", "details.json"):
        (directory / name).chmod(0o600)
    return sums


def unique_directory(root: Path, moment: dt.datetime) -> Path:
    base = root / moment.strftime("%Y%m%dT%H%M%SZ")
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def put_in_place(source: Path, destination: Path, staging: Path) -> None:
    """One file or link restored into ``staging`` replaces ``destination`` atomically, with the owner,
    group and mode the snapshot recorded; missing parent directories are made as the snapshot had them."""
    missing = []
    parent = destination.parent
    while not parent.exists():
        missing.append(parent)
        parent = parent.parent
    for directory in reversed(missing):
        directory.mkdir()
        recorded = staging / str(directory).lstrip("/")
        if recorded.is_dir():
            info = recorded.stat()
            os.chown(directory, info.st_uid, info.st_gid)
            directory.chmod(info.st_mode & 0o7777)
    temporary = destination.with_name(f".{destination.name}.portalops-restore")
    if os.path.lexists(temporary):
        temporary.unlink()
    info = source.lstat()
    if source.is_symlink():
        os.symlink(os.readlink(source), temporary)
    else:
        shutil.copy2(source, temporary)
        temporary.chmod(info.st_mode & 0o7777)
    if os.geteuid() == 0:
        os.lchown(temporary, info.st_uid, info.st_gid)
        if not source.is_symlink():
            temporary.chmod(info.st_mode & 0o7777)  # chown clears setuid bits
    os.replace(temporary, destination)


def quarantine(paths: list[str], directory: Path) -> list[str]:
    """Files the backup never saw, moved (never deleted) under ``directory``/quarantine with their path."""
    moved = []
    for path in paths:
        if not os.path.lexists(path):
            continue
        target = directory / "quarantine" / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        shutil.move(path, target)
        moved.append(path)
    return moved


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


# --------------------------------------------------------------------------- pins

# A database snapshot whose manifest shows mass loss against its predecessor's (mass_loss, the same
# thresholds as check-database) pins the predecessor: restic tag --add PIN_TAG, which every forget
# (here and on the backup host's second copy) keeps, until a person runs `portalops-backup release`.
# restic tag rewrites a snapshot: the pinned one has a new id, its first id stays in 'original'.
PIN_TAG = "portalops-pinned"


def kept_manifest(config: dict[str, Any], job_name: str) -> dict[str, Any] | None:
    """The job's kept manifest (keep_manifest): read before the job's new snapshot replaces it."""
    try:
        found: dict[str, Any] = json.loads((Path(config["status_dir"]) / "manifests" / f"{job_name}.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return found


def loss_against(
    previous: dict[str, Any] | None, current: dict[str, Any] | None, thresholds: dict[str, int]
) -> list[str]:
    """Mass loss from the predecessor's manifest to the new snapshot's (nothing to compare: none)."""
    if not previous or not current or not previous.get("snapshot_id") or "databases" not in previous:
        return []
    if previous.get("snapshot_id") == current.get("snapshot_id"):
        return []
    return mass_loss(previous, current, thresholds)


def pins_path(config: dict[str, Any]) -> Path:
    return Path(config["status_dir"]) / "pins.json"


def read_pins(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The pins this host made, with why (the repository's tags are the truth of what is pinned)."""
    try:
        found: list[dict[str, Any]] = json.loads(pins_path(config).read_text())
    except (OSError, json.JSONDecodeError):
        return []
    return found


def write_pins(config: dict[str, Any], pins: list[dict[str, Any]]) -> None:
    write_atomic(pins_path(config), json.dumps(pins, indent=2, sort_keys=True) + "\n")


def same_snapshot(snapshot: dict[str, Any], wanted: str) -> bool:
    """``wanted`` (an id or prefix) names this snapshot, or the one it was before restic tag rewrote it."""
    return bool(wanted) and (snapshot["id"].startswith(wanted) or str(snapshot.get("original", "")).startswith(wanted))


def pin_record(
    job_name: str, snapshot: dict[str, Any], flagged: str, problems: list[str], moment: dt.datetime
) -> dict[str, Any]:
    return {
        "job": job_name,
        "id": snapshot["id"],
        "short_id": snapshot.get("short_id", snapshot["id"][:8]),
        "original": snapshot.get("original") or snapshot["id"],
        "time": stamp(parse_time(snapshot["time"])),
        "pinned": stamp(moment),
        "flagged_snapshot": flagged,
        "problems": problems,
    }


def mass_loss_entry(pin: dict[str, Any]) -> dict[str, Any]:
    """A job status's ``mass_loss`` item: what is gone, in which snapshot, and which snapshot is pinned."""
    return {
        "snapshot": pin["flagged_snapshot"],
        "problems": pin["problems"],
        "pinned_snapshot": pin["short_id"],
        "pinned_snapshot_id": pin["id"],
        "pinned": pin["pinned"],
        "release": f"portalops-backup release {pin['short_id']}",
    }


def pinned_in(forget_stdout: str) -> set[str] | None:
    """Ids of the snapshots restic forget --json kept because they carry PIN_TAG (None: unreadable)."""
    try:
        groups = json.loads(forget_stdout or "[]")
        return {s["id"] for g in groups or [] for s in g.get("keep") or [] if PIN_TAG in (s.get("tags") or [])}
    except (json.JSONDecodeError, TypeError, KeyError, AttributeError):
        return None


def pin_snapshot(
    config: dict[str, Any], job_name: str, previous: dict[str, Any], flagged: str, problems: list[str], log: Log
) -> dict[str, Any]:
    """Tag the predecessor so no forget removes it; its pin record (the new id restic tag gave it)."""
    wanted = str(previous["snapshot_id"])
    log(f"{job_name}: MASS LOSS against snapshot {wanted[:8]}: {'; '.join(problems)}; pinning {wanted[:8]}")
    run_restic(config, "tag", "--add", PIN_TAG, wanted)
    listed = run_restic(config, "snapshots", "--json", "--tag", PIN_TAG, "--host", config["host"])
    found = [s for s in json.loads(listed.stdout or "[]") if same_snapshot(s, wanted)]
    if not found:
        raise JobError(f"snapshot {wanted[:8]} does not carry the tag {PIN_TAG} after restic tag")
    pin = pin_record(job_name, found[0], flagged, problems, now())
    write_pins(config, [p for p in read_pins(config) if p["id"] != pin["id"]] + [pin])
    log(f"{job_name}: snapshot {wanted[:8]} pinned as {pin['short_id']} until a person releases it")
    return pin


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
        summary = incomplete(summary_of(result2.stdout), result2)
        keep_manifest(config, job["name"], manifest, summary)
        return summary
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
        "portalops_backup_mass_loss": (
            "1 while a snapshot of the job showed mass loss against its predecessor, which stays pinned "
            "until a person runs portalops-backup release.",
            lambda j: 1 if j.get("mass_loss") else 0,
        ),
    }
    carried = ("portalops_backup_job_last_success_timestamp_seconds", "portalops_backup_mass_loss")
    for name, (help_text, value) in series.items():
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
        jobs = status["jobs"] + (status.get("not_run", []) if name in carried else [])
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


# --------------------------------------------------------------------------- database restore

# The physical backup job restores by copy-and-start (fast); the dump is the fallback.
PHYSICAL, LOGICAL = "mariadb-backup", "mariadb-dump"
RESTORE_DIR = "/var/lib/portalops/restore"
# check-database: only WordPress core tables (the name after the site's table prefix) count as lost when
# missing or unreadable; a plugin dropping its own table or a purge of spam comments is the site's work.
CORE_TABLES = (
    "posts",
    "postmeta",
    "options",
    "users",
    "usermeta",
    "terms",
    "termmeta",
    "term_taxonomy",
    "term_relationships",
    "comments",
    "commentmeta",
    "links",
)
# ... and these core tables are never empty on a working site: emptied counts as lost.
NEVER_EMPTY = ("posts", "options", "users")


def database_jobs(config: dict[str, Any]) -> list[dict[str, Any]]:
    return [j for j in config.get("jobs", []) if j["type"] in (PHYSICAL, LOGICAL)]


def job_of(snapshot: dict[str, Any]) -> str:
    return next((t[4:] for t in snapshot.get("tags") or [] if t.startswith("job:")), "")


def restore_candidates(
    snapshots: list[dict[str, Any]], jobs: list[dict[str, Any]], wanted: str | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """What to restore, in order: the newest physical snapshot, then the newest dump (the fallback).

    ``wanted`` (an id or its prefix) names one snapshot of a database job: that one only, no fallback.
    """
    kinds = {j["name"]: j["type"] for j in jobs}
    ours = [(kinds[job_of(s)], s) for s in snapshots if job_of(s) in kinds]
    if wanted:
        chosen = [(k, s) for k, s in ours if s["id"].startswith(wanted) or s.get("short_id") == wanted]
        if not chosen:
            raise JobError(f"no snapshot {wanted} of a database job ({', '.join(sorted(kinds))})")
        return chosen[:1]
    order = []
    for kind in (PHYSICAL, LOGICAL):
        found = [(k, s) for k, s in ours if k == kind]
        if found:
            order.append(max(found, key=lambda item: parse_time(item[1]["time"])))
    if not order:
        raise JobError(f"no snapshot of a database job ({', '.join(sorted(kinds)) or 'none configured'})")
    return order


def manifest_problems(manifest: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """Live or restored databases against a manifest ([]: as the backup recorded them).

    A manifest taken while the site wrote ('consistent' false) also holds the state after the
    backup: each table's row count must then lie between the two.
    """
    if manifest.get("consistent", True) or "after" not in manifest:
        return compare_database(manifest, actual)
    problems = []
    for database, want in manifest["databases"].items():
        have = actual["databases"].get(database)
        if have is None:
            problems.append(f"{database}: missing")
            continue
        after = manifest["after"]["databases"].get(database, {}).get("tables", {})
        for table, spec in want["tables"].items():
            rows = have["tables"].get(table, {}).get("rows")
            low, high = sorted((spec["rows"], after.get(table, spec)["rows"]))
            if rows is None:
                problems.append(f"{database}.{table}: missing")
            elif not low <= rows <= high:
                problems.append(f"{database}.{table}: {rows} rows, outside {low}..{high} seen during the backup")
    return problems


def table_prefix(tables: list[str] | dict[str, Any]) -> str | None:
    """The site's table prefix (wp_ in the lab): the shortest one before an options, posts or users table
    (a multisite's wp_2_options is longer); None when the database holds no WordPress tables."""
    for suffix in NEVER_EMPTY:
        found = [t[: -len(suffix)] for t in tables if t.endswith(suffix) and len(t) > len(suffix)]
        if found:
            return min(found, key=len)
    return None


def core_tables(tables: list[str] | dict[str, Any]) -> dict[str, str]:
    """The WordPress core tables among ``tables``: table name -> core name (posts, options, ...)."""
    prefix = table_prefix(tables)
    if prefix is None:
        return {}
    return {t: t[len(prefix) :] for t in tables if t.startswith(prefix) and t[len(prefix) :] in CORE_TABLES}


def health_problems(manifest: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """Lost or corrupted, as opposed to changed since the backup: a database of the manifest or a
    WordPress core table of it missing or unreadable (``actual`` lists those under 'errors'), or its
    posts, options or users table emptied. Other tables (plugins') and fewer rows are the site's work
    (changes_since lists them)."""
    problems = list(actual.get("errors", []))
    for database, want in manifest["databases"].items():
        have = actual["databases"].get(database)
        if have is None:
            if not any(p.startswith(f"{database}:") for p in problems):
                problems.append(f"{database}: missing")
            continue
        for table, core in core_tables(want["tables"]).items():
            got = have["tables"].get(table)
            if got is None:
                problems.append(f"{database}.{table}: missing")
            elif core in NEVER_EMPTY and got["rows"] == 0:
                problems.append(f"{database}.{table}: empty, the backup had {want['tables'][table]['rows']} rows")
    return problems


def changes_since(manifest: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """Tables whose row count differs from the manifest, or gone (not a core table's loss, which
    health_problems names): what the site did since (for the record)."""
    changed = []
    for database, want in manifest["databases"].items():
        if database not in actual["databases"]:
            continue
        have = actual["databases"][database].get("tables", {})
        for table, spec in want["tables"].items():
            if table not in have:
                changed.append(f"{database}.{table} gone ({spec['rows']} rows at the backup)")
            elif have[table]["rows"] != spec["rows"]:
                changed.append(f"{database}.{table} {spec['rows']} -> {have[table]['rows']} rows")
    return changed


# Mass loss (check-database, and where the binary log replay stops): more than this percentage of the
# backup's published posts or pages, users or options gone, and at least min_count of them. Configurable
# as 'loss_thresholds' (restic_backup_loss_thresholds); a few deleted posts stay the site's editing.
LOSS_THRESHOLDS = {"published_percent": 20, "users_percent": 20, "options_percent": 50, "min_count": 3}


def loss_thresholds(config: dict[str, Any]) -> dict[str, int]:
    """The configured thresholds over the defaults (an older configuration has none)."""
    found = {**LOSS_THRESHOLDS, **config.get("loss_thresholds", {})}
    return {key: int(found[key]) for key in LOSS_THRESHOLDS}


def is_mass(gone: int, before: int, percent: int, thresholds: dict[str, int]) -> bool:
    """``gone`` of ``before`` items is a mass loss, not editing."""
    return gone >= thresholds["min_count"] and gone * 100 > percent * before


def mass_loss(manifest: dict[str, Any], actual: dict[str, Any], thresholds: dict[str, int]) -> list[str]:
    """Published content, users or options gone in bulk since the backup (net counts: posts written since
    make up for posts deleted). A manifest without published counts (older wrapper) checks users and
    options only."""
    problems = []
    for database, want in manifest["databases"].items():
        have = actual["databases"].get(database)
        if have is None:
            continue
        cores = {core: table for table, core in core_tables(want["tables"]).items()}
        posts = cores.get("posts", "posts")
        for kind, before in sorted(want.get("published", {}).items()):
            now_count = have.get("published", {}).get(kind, 0)
            if is_mass(before - now_count, before, thresholds["published_percent"], thresholds):
                problems.append(
                    f"{database}.{posts}: {before - now_count} of {before} published {kind}s gone since the backup "
                    f"({before} -> {now_count})"
                )
        for core in ("users", "options"):
            table = cores.get(core)
            if table is None or table not in have["tables"]:
                continue  # a missing core table is health_problems' finding
            before, now_count = want["tables"][table]["rows"], have["tables"][table]["rows"]
            if is_mass(before - now_count, before, thresholds[f"{core}_percent"], thresholds):
                problems.append(
                    f"{database}.{table}: {before - now_count} of {before} rows gone since the backup "
                    f"({before} -> {now_count})"
                )
    return problems


def live_manifest(databases: list[str], newest: int, checksums: bool = True) -> dict[str, Any]:
    """database_manifest, one database at a time: an unreadable database is an error, not an exception."""
    found: dict[str, Any] = {"kind": "mariadb", "databases": {}, "errors": []}
    for database in databases:
        try:
            found["databases"].update(database_manifest([database], newest, checksums=checksums)["databases"])
        except (JobError, subprocess.TimeoutExpired, ValueError) as exc:
            found["errors"].append(f"{database}: unreadable: {exc}")
    return found


# The server not answering, as opposed to data that is not there: refused or gone (2002, 2003, 2006, 2013),
# out of connections (1040, 1203), starting or shutting down (1053, the socket missing), a lock wait or
# deadlock (1205, 1213), a killed connection (1927), a query that timed out.
SERVER_UNAVAILABLE = re.compile(r"\bERROR (2002|2003|2006|2013|1040|1203|1053|1205|1213|1927)\b|timed out")


def unavailable(errors: list[str]) -> list[str]:
    """The errors that say the server could not be read right now, not that something is lost."""
    return [error for error in errors if SERVER_UNAVAILABLE.search(error)]


def manifest_from_dump(tail: bytes) -> dict[str, Any]:
    """The manifest line a mariadb-dump snapshot ends with (see job_mariadb_dump)."""
    marker = tail.rfind(MANIFEST_MARK.encode())
    if marker < 0:
        raise JobError("the dump carries no manifest line")
    found: dict[str, Any] = json.loads(tail[marker + len(MANIFEST_MARK) :].decode().splitlines()[0])
    return found


def aside_path(datadir: Path, moment: dt.datetime, what: str = "before-restore") -> Path:
    """Where the data directory a restore replaces is kept, as evidence (the tool never deletes it)."""
    return datadir.with_name(f"{datadir.name}.{what}-{moment.strftime('%Y%m%dT%H%M%SZ')}")


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


def until_time(text: str) -> dt.datetime:
    """--until: an ISO 8601 time; without a zone, this host's local time (as mariadb-binlog prints)."""
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.astimezone()


def pitr_rpo_seconds(replay: dict[str, Any], moment: dt.datetime) -> float | None:
    """The data-loss window of a point-in-time recovery: writes from the accident on (none when the
    whole binary log was replayed; unknown when stopped at a given position)."""
    if replay.get("to") == "end":
        return 0.0
    if replay.get("accident_time"):
        return round(max(0.0, (moment - parse_time(replay["accident_time"])).total_seconds()), 1)
    return None


def pitr_rpo_line(snapshot: dict[str, Any], replay: dict[str, Any], moment: dt.datetime) -> str:
    seconds = pitr_rpo_seconds(replay, moment)
    window = "unknown (stopped at a given position)" if seconds is None else f"{seconds:.0f} s = {seconds / 60:.1f} min"
    restored = (
        f"snapshot {snapshot.get('short_id', snapshot['id'][:8])} of {stamp(parse_time(snapshot['time']))} "
        f"restored and the binary log replayed from {replay['from']}"
    )
    if replay.get("to") == "end":
        return f"RPO (data-loss window): {window}; {restored} to its end (no destructive transaction in it)"
    return (
        f"RPO (data-loss window): {window}; {restored} up to {replay['to']}, stopping before the transaction of "
        f"{replay.get('accident_time') or 'the given position'} ({replay['how']}: {replay['stopped_before']}); "
        "writes from it on are not in the restored database"
    )


def binlog_position(prepared: Path) -> str:
    """Where the binary log stood at the backup: a DBA replays from here to narrow the loss."""
    for name in ("mariadb_backup_binlog_info", "xtrabackup_binlog_info"):
        path = prepared / name
        if path.is_file():
            return " ".join(path.read_text().split()[:2])
    return ""


# --------------------------------------------------------------------------- point-in-time recovery

# Where the server keeps its binary log index (roles/mariadb: mariadb_binlog_basename + .index), outside
# the data directory a physical restore moves aside; config 'binlog_index' overrides it.
BINLOG_INDEX = "/var/log/mysql/mariadb-bin.index"
# wp_posts' columns in a row event (binlog_row_metadata NO_LOG: by position, WordPress's schema since 2.x).
POST_CONTENT, POST_TITLE, POST_STATUS, POST_TYPE = "@5", "@6", "@8", "@21"
EVENT_HEAD = re.compile(r"^#(\d{6})\s+(\d{1,2}:\d\d:\d\d)\s+server id \d+\s+end_log_pos (\d+)")
ROW_EVENT = re.compile(r"^### (INSERT INTO|UPDATE|DELETE FROM) `([^`]+)`\.`([^`]+)`")
ROW_VALUE = re.compile(r"^###\s+(@\d+)=(.*?)(?: /\* .* \*/)?$")
USE_DB = re.compile(r"^use `([^`]+)`", re.IGNORECASE)
DROPPING = re.compile(r"^(DROP\s+TABLE|TRUNCATE(?:\s+TABLE)?|DROP\s+(?:DATABASE|SCHEMA))\b(.*)", re.IGNORECASE)
IDENT = re.compile(r"`([^`]+)`(?:\.`([^`]+)`)?|\b(?!IF\b|EXISTS\b)([A-Za-z0-9_$]+)(?:\.([A-Za-z0-9_$]+))?")


def binlog_files(index: Path) -> list[Path]:
    """The binary log files the server's index lists, oldest first."""
    return [
        path if path.is_absolute() else index.parent / path
        for path in (Path(line.strip()) for line in index.read_text().splitlines() if line.strip())
    ]


def new_transaction(file: str, start: int, when: dt.datetime | None) -> dict[str, Any]:
    """One transaction of the binary log: where it starts, when, and what it did to which table."""
    return {"file": file, "start": start, "time": when, "tables": {}, "dropped": []}


def table_counts(txn: dict[str, Any], database: str, table: str) -> dict[str, Any]:
    key = f"{database}.{table}"
    if key not in txn["tables"]:
        txn["tables"][key] = {"insert": 0, "update": 0, "delete": 0, "published": {}, "changed": {}}
    counts: dict[str, Any] = txn["tables"][key]
    return counts


def count_row(
    txn: dict[str, Any], verb: str, database: str, table: str, before: dict[str, str], after: dict[str, str]
) -> None:
    """One row of a row event: counted per table; for a posts table also published rows gained or lost
    (deleted, unpublished, published) and published rows whose title or content changed, per post type."""
    counts = table_counts(txn, database, table)
    counts[verb] += 1
    if not table.endswith("posts"):
        return
    old, new = before.get(POST_STATUS) == "'publish'", after.get(POST_STATUS) == "'publish'"
    kind = (after.get(POST_TYPE) or before.get(POST_TYPE) or "''").strip("'")
    gained = int(new) - int(old)
    if gained:
        counts["published"][kind] = counts["published"].get(kind, 0) + gained
    elif verb == "update" and old and new and any(before.get(c) != after.get(c) for c in (POST_CONTENT, POST_TITLE)):
        counts["changed"][kind] = counts["changed"].get(kind, 0) + 1


def event_time(day: str, clock: str) -> dt.datetime:
    """An event header's time, as mariadb-binlog prints it (this host's local time), made aware."""
    return dt.datetime.strptime(f"{day} {clock}", "%y%m%d %H:%M:%S").astimezone()


def dropped_tables(statement: str, database: str) -> list[str]:
    """database.table (or database.* for a whole database) that a DROP/TRUNCATE statement removes."""
    found = DROPPING.match(statement.strip())
    if not found:
        return []
    verb, rest = found.group(1).upper(), found.group(2).split("/*")[0]
    names = []
    for quoted_a, quoted_b, plain_a, plain_b in IDENT.findall(rest):
        first, second = quoted_a or plain_a, quoted_b or plain_b
        if not first:
            continue
        if verb.startswith("DROP") and ("DATABASE" in verb or "SCHEMA" in verb):
            names.append(f"{first}.*")
        else:
            names.append(f"{first}.{second}" if second else f"{database}.{first}")
    return names


def parse_binlog(lines: Iterator[str], file: str) -> Iterator[dict[str, Any]]:
    """Transactions of ``mariadb-binlog --base64-output=decode-rows -vv`` output of one file, in order.

    A transaction starts at its GTID event ('# at N' before it: the position to stop before); row
    events count rows per table (and published posts, see count_row); DROP/TRUNCATE statements name
    what they drop.
    """
    txn: dict[str, Any] | None = None
    at, database, when = 0, "", None
    row: tuple[str, str, str] | None = None
    images: dict[str, dict[str, str]] = {"before": {}, "after": {}}
    section = "before"

    def flush_row() -> None:
        nonlocal row
        if row is not None and txn is not None:
            verb, db, table = row
            count_row(txn, verb, db, table, images["before"], images["after"])
        row = None

    for raw in lines:
        line = raw.rstrip("\n")
        if line.startswith("### "):
            event = ROW_EVENT.match(line)
            if event:
                flush_row()
                verb = event.group(1).split()[0].lower()
                row = (verb, event.group(2), event.group(3))
                images = {"before": {}, "after": {}}
                section = "after" if verb == "insert" else "before"
            elif line.startswith("### SET"):
                section = "after"
            elif line.startswith("### WHERE"):
                section = "before"
            else:
                value = ROW_VALUE.match(line)
                if value and value.group(1) in (POST_CONTENT, POST_TITLE, POST_STATUS, POST_TYPE):
                    images[section][value.group(1)] = value.group(2)
            continue
        flush_row()
        if line.startswith("# at "):
            with contextlib.suppress(ValueError):
                at = int(line[5:].strip())
            continue
        head = EVENT_HEAD.match(line)
        if head:
            with contextlib.suppress(ValueError):
                when = event_time(head.group(1), head.group(2))
            if "\tGTID " in line or " GTID " in line:
                if txn is not None:
                    yield txn
                txn = new_transaction(file, at, when)
            continue
        used = USE_DB.match(line)
        if used:
            database = used.group(1)
            continue
        if txn is not None and not line.startswith("#"):
            txn["dropped"] += dropped_tables(line, database)
    flush_row()
    if txn is not None:
        yield txn


def destructive(
    txn: dict[str, Any], manifest: dict[str, Any], running: dict[str, int], thresholds: dict[str, int]
) -> str:
    """Why ``txn`` is the accident ('' when it is not): it drops or truncates a WordPress core table or a
    site database of the manifest, or it (or it together with all before it since the backup: ``running``,
    updated here, holds the net change per database.table:type) takes published posts or pages, users or
    options past the thresholds check-database uses, or changes the title or content of more than that
    share of the published posts."""
    reasons = []
    for name in txn["dropped"]:
        database, table = name.split(".", 1)
        want = manifest["databases"].get(database)
        if want is not None and (table == "*" or table in core_tables(want["tables"])):
            reasons.append(f"dropped {name}")
    for name, counts in sorted(txn["tables"].items()):
        database, table = name.split(".", 1)
        want = manifest["databases"].get(database)
        core = core_tables(want["tables"]).get(table) if want is not None else None
        if want is None or core is None:
            continue
        if core == "posts":
            published = want.get("published") or {}
            for kind in PUBLISHED_TYPES:
                before = published.get(kind, want["tables"][table]["rows"])
                gained, changed = counts["published"].get(kind, 0), counts["changed"].get(kind, 0)
                key = f"{name}:{kind}"
                current = before + running.get(key, 0)  # published just before this transaction
                running[key] = running.get(key, 0) + gained
                percent = thresholds["published_percent"]
                if is_mass(-gained, current, percent, thresholds):
                    reasons.append(f"deleted or unpublished {-gained} of {current} published {kind}s of {name}")
                elif is_mass(-running[key], before, percent, thresholds):
                    reasons.append(f"took the published {kind}s of {name} {-running[key]} below the backup's {before}")
                if is_mass(changed, current, percent, thresholds):
                    reasons.append(
                        f"changed the title or content of {changed} of {current} published {kind}s of {name}"
                    )
        elif core in ("users", "options"):
            before = want["tables"][table]["rows"]
            current = before + running.get(name, 0)
            running[name] = running.get(name, 0) + counts["insert"] - counts["delete"]
            percent = thresholds[f"{core}_percent"]
            if is_mass(counts["delete"] + counts["update"], current, percent, thresholds):
                reasons.append(f"deleted {counts['delete']} and changed {counts['update']} of {current} rows of {name}")
            elif is_mass(-running[name], before, percent, thresholds):
                reasons.append(f"took {name} {-running[name]} rows below the backup's {before}")
    return "; ".join(reasons)


NO_PITR = "point-in-time: NOT DONE, the database is the backup alone (writes since it are lost)"


def parse_position(text: str) -> tuple[str, int]:
    """'mariadb-bin.000002 4567 [GTID]' (a backup's) or 'mariadb-bin.000002:4567' (--until-position)."""
    found = re.match(r"\s*([^\s:]+)[\s:]+(\d+)(?:\s|$)", text)
    if not found:
        raise ValueError(f"{text!r} is not a binary log position (FILE:POSITION)")
    return Path(found.group(1)).name, int(found.group(2))


def files_from(binlogs: list[Path], first: str, last: str | None = None) -> list[Path]:
    """The binary log files from ``first`` through ``last`` (default: the newest); an error when
    ``first`` is gone (purged, or never there): the replay would leave a hole."""
    names = [p.name for p in binlogs]
    if first not in names:
        raise JobError(f"binary log {first} (the backup's position) is not in the index: purged or lost")
    end = names.index(last) + 1 if last in names else len(names)
    return binlogs[names.index(first) : end]


def scan_binlog(
    files: list[Path], start: int, manifest: dict[str, Any], thresholds: dict[str, int], until: dt.datetime | None
) -> dict[str, Any]:
    """Read the binary log from the backup on: the first transaction that is the accident (destructive),
    or with ``until`` the first at or after it. Raises JobError when mariadb-binlog cannot read a file."""
    running: dict[str, int] = {}
    seen, last_time = 0, None
    for number, path in enumerate(files):
        argv = [
            "mariadb-binlog",
            "--base64-output=decode-rows",
            "-vv",
            *([f"--start-position={start}"] if number == 0 else []),
            str(path),
        ]
        with tempfile.TemporaryFile() as err:
            reader = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, text=True, errors="replace")
            try:
                for txn in parse_binlog(iter(reader.stdout), path.name):  # type: ignore[arg-type]
                    seen += 1
                    if until is None:
                        why = destructive(txn, manifest, running, thresholds)
                    else:  # a person's choice: exactly there, whatever the log holds before it
                        late = txn["time"] is not None and txn["time"] >= until
                        why = f"the first transaction at or after --until {stamp(until)}" if late else ""
                    if why:
                        return {
                            "stop": (path.name, txn["start"]),
                            "reason": why,
                            "time": txn["time"],
                            "transactions": seen - 1,
                        }
                    last_time = txn["time"] or last_time
            finally:
                if reader.poll() is None:
                    reader.kill()
                code = reader.wait()
            if code not in (0, -signal.SIGKILL):
                err.seek(0)
                lines = err.read().decode(errors="replace").strip().splitlines()
                raise JobError(f"mariadb-binlog cannot read {path}: {lines[-1] if lines else f'exit {code}'}")
    return {"stop": None, "reason": "", "time": last_time, "transactions": seen}


def replay_binlog(files: list[Path], start: int, stop: tuple[str, int] | None) -> None:
    """mariadb-binlog from the backup's position up to (not including) ``stop``, piped into the server."""
    argv = ["mariadb-binlog", f"--start-position={start}"]
    if stop is not None:
        argv.append(f"--stop-position={stop[1]}")  # mariadb-binlog applies it to the last file
    with tempfile.TemporaryFile() as reader_err, tempfile.TemporaryFile() as load_err:
        reader = subprocess.Popen([*argv, *map(str, files)], stdout=subprocess.PIPE, stderr=reader_err)
        try:
            load = subprocess.run(
                ["mariadb", "--binary-mode", "--default-character-set=utf8mb4"],
                stdin=reader.stdout,
                stdout=subprocess.DEVNULL,
                stderr=load_err,
                check=False,
                timeout=6 * 3600,
            )
            code = reader.wait(timeout=600)
        finally:
            if reader.stdout is not None:
                reader.stdout.close()
            if reader.poll() is None:
                reader.kill()
                reader.wait()
        for name, rc, stream in (("loading it", load.returncode, load_err), ("mariadb-binlog", code, reader_err)):
            if rc != 0:
                stream.seek(0)
                lines = stream.read().decode(errors="replace").strip().splitlines()
                raise JobError(f"binary log replay: {name} failed: {lines[-1] if lines else f'exit {rc}'}")


def point_in_time(
    config: dict[str, Any],
    manifest: dict[str, Any],
    binlogs: list[Path],
    until: dt.datetime | None,
    until_position: str | None,
    log: Log,
) -> dict[str, Any]:
    """Replay the binary log onto the restored backup up to just before the accident. The outcome for
    the record: 'replayed' false (and 'error') when the binary log is missing or broken, so the database
    stays as the backup left it."""
    found: dict[str, Any] = {"replayed": False, "from": "", "to": "", "stopped_before": "", "how": "", "error": ""}
    try:
        if not manifest.get("binlog_position"):
            raise JobError("the backup recorded no binary log position (binary log off when it was taken?)")
        first, start = parse_position(manifest["binlog_position"])
        found["from"] = f"{first}:{start}"
        if until_position:
            last, stop_at = parse_position(until_position)
            files = files_from(binlogs, first, last)
            if files[-1].name != last:
                raise JobError(f"binary log {last} (--until-position) is not in the index")
            scan: dict[str, Any] = {
                "stop": (last, stop_at),
                "reason": f"--until-position {last}:{stop_at}",
                "time": None,
            }
            found["how"] = "given (--until-position)"
        else:
            files = files_from(binlogs, first)
            log(f"point-in-time: reading the binary log from {first}:{start} ({len(files)} files) for the accident")
            scan = scan_binlog(files, start, manifest, loss_thresholds(config), until)
            found["how"] = "given (--until)" if until is not None else "found in the binary log"
        stop = scan["stop"]
        if stop is not None:
            files = files_from(files, files[0].name, stop[0])
            found["stopped_before"] = scan["reason"]
            found["to"] = f"{stop[0]}:{stop[1]}"
            found["accident_time"] = stamp(scan["time"]) if scan["time"] is not None else ""
            log(f"point-in-time: stopping before {stop[0]}:{stop[1]} ({found['how']}): {scan['reason']}")
        else:
            found["to"] = "end"
            log("point-in-time: no destructive transaction in the binary log since the backup; replaying all of it")
        replay_binlog(files, start, stop)
        found["replayed"] = True
        log(f"point-in-time: replayed the binary log {found['from']} -> {found['to']}")
    except (JobError, OSError, ValueError, subprocess.SubprocessError) as exc:
        found["error"] = str(exc)
        log(f"{NO_PITR}: {exc}")
    return found


def move_back(prepared: Path, datadir: Path) -> None:
    """A prepared mariadb-backup moved into ``datadir`` (absent or empty) and handed to mysql."""
    result = subprocess.run(
        ["mariadb-backup", "--move-back", f"--target-dir={prepared}", f"--datadir={datadir}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=6 * 3600,
    )
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        raise JobError(f"mariadb-backup --move-back failed: {lines[-1] if lines else 'no message'}")
    subprocess.run(["chown", "-R", "mysql:mysql", str(datadir)], check=True, timeout=3600)


def systemctl(*args: str) -> None:
    result = subprocess.run(["systemctl", *args], capture_output=True, text=True, check=False, timeout=900)
    if result.returncode != 0:
        raise JobError(f"systemctl {' '.join(args)} failed: {result.stderr.strip() or result.stdout.strip()}")


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


def is_mount(path: Path) -> bool:
    return os.path.ismount(path)


def same_filesystem(path: Path, other: Path) -> bool:
    return path.stat().st_dev == other.stat().st_dev


def tree_size(path: Path) -> int:
    """Bytes under ``path`` (files as stored, links not followed)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def room_aside(datadir: Path, aside: Path) -> str:
    """Why the data directory cannot be moved aside ('' when it can): a mount point's entries are copied
    into ``aside`` on another filesystem, which must have room for them (a rename needs none)."""
    if not datadir.exists() or same_filesystem(datadir, aside.parent):
        return ""
    needed, free = tree_size(datadir), shutil.disk_usage(aside.parent).free
    if needed > free:
        return (
            f"not enough room in {aside.parent} to keep {datadir} aside ({needed >> 20} MiB needed, "
            f"{free >> 20} MiB free): physical path refused"
        )
    return ""


def move_aside(datadir: Path, aside: Path) -> None:
    """Rename the data directory; a mount point cannot be renamed, so its entries are moved instead.
    The caller records ``aside`` before calling: a move that fails half-way is undone by put_back."""
    if not is_mount(datadir):
        try:
            datadir.rename(aside)
            return
        except OSError:
            pass
    aside.mkdir(mode=0o700, exist_ok=True)
    for entry in datadir.iterdir():
        shutil.move(str(entry), str(aside / entry.name))


def restore_physical(
    config: dict[str, Any], snapshot: dict[str, Any], datadir: Path, moment: dt.datetime, log: Log
) -> dict[str, Any]:
    """restic restore the prepared backup, stop MariaDB, keep the data directory aside, move the backup in, start."""
    work = Path(config.get("restore_dir", RESTORE_DIR)) / snapshot["short_id"]
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, mode=0o700)
    try:
        log(f"physical: restic restore of snapshot {snapshot['short_id']} into {work}")
        run_restic(config, "restore", snapshot["id"], "--target", str(work))
        prepared = work / snapshot["paths"][0].lstrip("/")
        manifest: dict[str, Any] = json.loads((prepared / "portalops-manifest.json").read_text())
        # Not a file of the server's: it must not end up in the data directory.
        (prepared / "portalops-manifest.json").rename(work / "portalops-manifest.json")
        position = binlog_position(prepared)
        if position:
            log(f"physical: binary log position at the backup: {position}")
        aside = aside_path(datadir, moment)
        refused = room_aside(datadir, aside)
        if refused:
            raise JobError(refused)
        log("physical: stopping MariaDB")
        systemctl("stop", "mariadb")
        moved: Path | None = None
        complete = False
        try:
            if datadir.exists():
                mode = datadir.stat().st_mode & 0o7777
                moved = aside  # recorded before the move: put_back also undoes a move that stopped half-way
                move_aside(datadir, aside)
                complete = True
                log(f"physical: the data directory as it was is kept as evidence in {aside}")
            else:
                mode = 0o755
                log(f"physical: there was no data directory {datadir}")
            datadir.mkdir(mode=mode, exist_ok=True)
            move_back(prepared, datadir)
            datadir.chmod(mode)
            log("physical: starting MariaDB on the restored data")
            systemctl("start", "mariadb")
        except BaseException:
            # Also on Ctrl-C or SIGTERM (Terminated): never leave MariaDB stopped on a half-restored datadir.
            put_back(datadir, moved, moment, log, restored=complete)
            raise
        manifest["binlog_position"] = position
        return manifest
    finally:
        shutil.rmtree(work, ignore_errors=True)


def put_back(datadir: Path, aside: Path | None, moment: dt.datetime, log: Log, restored: bool = True) -> None:
    """A physical restore failed half-way: the server gets its own data (and grants) back for the fallback.

    ``restored``: the move aside finished (what the data directory holds now is the restore's, kept as
    failed-restore); otherwise it holds the entries the move did not reach, which stay. A mount point
    gets its entries back one by one.
    """
    with contextlib.suppress(JobError):
        systemctl("stop", "mariadb")
    if aside is not None and aside.exists():
        if restored and datadir.exists():
            failed = aside_path(datadir, moment, "failed-restore")
            move_aside(datadir, failed)
            log(f"physical: the half-restored data directory is kept in {failed}")
        if datadir.exists():
            for entry in aside.iterdir():
                shutil.move(str(entry), str(datadir / entry.name))
            aside.rmdir()
        else:
            aside.rename(datadir)
        log(f"physical: {aside} put back as {datadir}")
    with contextlib.suppress(JobError):
        systemctl("start", "mariadb")


def server_answers() -> bool:
    try:
        mariadb("SELECT 1")
    except (JobError, subprocess.TimeoutExpired):
        return False
    return True


# A logical restore never touches the live databases until the dump has loaded into new ones and they
# verify: the dump's databases are renamed on the stream (restore_line) into "<db>__portalops_restore_<ID>",
# then ONE RENAME TABLE statement (atomic in MariaDB) moves every live table into "<db>__portalops_before_<ID>"
# (the evidence, until restore-database --discard-evidence ID) and every loaded table into the live name.
# Tables, not databases, move: the site users' grants name their own database only.
RESTORE_ID = re.compile(r"\d{8}T\d{6}Z")
MAX_NAME = 64  # MariaDB's longest database name
# mariadb-dump --databases names each database twice: "CREATE DATABASE /*!32312 IF NOT EXISTS*/ `db` ...;" and
# "USE `db`;" (statements on lines of their own; data lines start with INSERT, so never match).
CREATE_LINE = re.compile(rb"^CREATE DATABASE (?:/\*!32312 IF NOT EXISTS\*/ )?`((?:[^`]|``)+)`(.*)$", re.DOTALL)
USE_LINE = re.compile(rb"^USE `((?:[^`]|``)+)`;\s*$")
# Any other statement on a database (ALTER DATABASE, which mariadb-dump writes around routines, DROP, an
# unquoted USE) would reach past the new databases: refused.
DATABASE_LINE = re.compile(rb"^\s*(?:/\*!\d+\s*)?(?:(?:ALTER|CREATE|DROP)\s+(?:DATABASE|SCHEMA)\b|USE\b|\\u)", re.I)
# Room a logical restore keeps free beyond what it writes, and its margin on the loaded size (InnoDB pages
# and indexes of a freshly loaded table can take more than the dump's text).
LOAD_RESERVE = 256 << 20
LOAD_MARGIN_PERCENT = 50
# The whole of restore-database (restic, the load, the verification, the binary log replay) ends by then,
# cleanly (the old data put back or kept), before the runbook step's own 7 h timeout would kill it.
RESTORE_TIMEOUT = 6.5 * 3600


class DeadlinePassed(Terminated):
    """restore-database's overall deadline passed: unwinds like SIGTERM, so the clean-up runs."""


class Untouched(JobError):
    """A restore failed without changing the live databases (a logical restore before its swap)."""


def restore_id(moment: dt.datetime) -> str:
    """The id a restore names its new and evidence databases with (its start, UTC)."""
    return moment.strftime("%Y%m%dT%H%M%SZ")


def side_database(database: str, role: str, rid: str) -> str:
    """``database``'s companion of a restore: role 'restore' (the load) or 'before' (the evidence).
    A name too long for MariaDB keeps its start and a digest of the whole."""
    suffix = f"__portalops_{role}_{rid}"
    if len(database) + len(suffix) <= MAX_NAME:
        return database + suffix
    digest = hashlib.sha256(database.encode()).hexdigest()[:8]
    return f"{database[: MAX_NAME - len(suffix) - len(digest) - 1]}_{digest}{suffix}"


def restore_line(line: bytes, names: dict[str, str]) -> bytes:
    """One line of a mariadb-dump --databases stream, its databases renamed (``names``: dump's -> new).
    CREATE DATABASE loses IF NOT EXISTS (a clash fails the load, nothing is reused); any other database
    statement, or a database the restore does not rename, raises Untouched."""
    if not DATABASE_LINE.match(line):
        return line
    found = CREATE_LINE.match(line) or USE_LINE.match(line)
    name = found.group(1).decode().replace("``", "`") if found else None
    if found is None or name not in names:
        shown = line[:120].decode(errors="replace").strip()
        raise Untouched(f"the dump holds a statement this restore does not carry out: {shown}")
    new = quote_ident(names[name]).encode()
    if line.startswith(b"USE"):
        return b"USE " + new + b";\n"
    return b"CREATE DATABASE " + new + found.group(2)


def swap_statement(tables: dict[str, tuple[list[str], list[str]]], names: dict[str, tuple[str, str]]) -> str:
    """The one RENAME TABLE of a logical restore: per database (``tables``: its live tables, the loaded
    ones; ``names``: its new and evidence database), every live table into the evidence first, then every
    loaded table into the live name. MariaDB runs the renames in order and all or none."""
    moves = []
    for database, (live, _) in sorted(tables.items()):
        evidence = quote_ident(names[database][1])
        moves += [f"{quote_ident(database)}.{quote_ident(t)} TO {evidence}.{quote_ident(t)}" for t in sorted(live)]
    for database, (_, loaded) in sorted(tables.items()):
        new = quote_ident(names[database][0])
        moves += [f"{new}.{quote_ident(t)} TO {quote_ident(database)}.{quote_ident(t)}" for t in sorted(loaded)]
    return f"RENAME TABLE {', '.join(moves)}" if moves else ""


def logical_needs(dump_bytes: int, live_bytes: int) -> dict[str, int]:
    """Bytes a logical restore writes, by what: the dump file; the new databases (the dump's text or the
    live databases' size, whichever is larger, plus a margin); the binary log of the load (about the dump)."""
    loaded = max(dump_bytes, live_bytes)
    return {
        "dump file": dump_bytes,
        "new databases": loaded * (100 + LOAD_MARGIN_PERCENT) // 100,
        "binary log": dump_bytes,
    }


def space_refusal(needs: dict[str, int], where: dict[str, tuple[int, str]], free: dict[int, int]) -> str:
    """Why a logical restore is refused for room ('' when every filesystem holds what it will write plus
    LOAD_RESERVE). ``where``: need -> (device, path); ``free``: device -> free bytes. Needs on one
    filesystem add up."""
    refusals = []
    for device in sorted({device for device, _ in where.values()}):
        mine = [what for what in needs if where[what][0] == device]
        total = sum(needs[what] for what in mine) + LOAD_RESERVE
        if total > free[device]:
            parts = ", ".join(f"{what} {needs[what] >> 20} MiB in {where[what][1]}" for what in mine)
            refusals.append(
                f"{total >> 20} MiB needed ({parts}, {LOAD_RESERVE >> 20} MiB kept free), {free[device] >> 20} MiB free"
            )
    if not refusals:
        return ""
    return "not enough room for a logical restore, nothing changed: " + "; ".join(refusals)


def snapshot_size(config: dict[str, Any], snapshot: dict[str, Any]) -> int:
    """Bytes a snapshot restores to (a dump snapshot: the dump's size)."""
    stats = json.loads(run_restic(config, "stats", "--json", "--mode", "restore-size", snapshot["id"]).stdout)
    return int(stats["total_size"])


def schema_bytes(databases: list[str]) -> int:
    listed = ", ".join(map(sql_string, databases))
    found = mariadb(
        "SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables "  # noqa: S608 - quoted
        f"WHERE table_schema IN ({listed})"
    )
    return int(found[0][0]) if found else 0


def check_room(config: dict[str, Any], snapshot: dict[str, Any], databases: list[str], datadir: Path) -> str:
    """space_refusal for this host: the dump's size from the repository, the live databases' from the server."""
    dump_bytes = snapshot_size(config, snapshot)
    needs = logical_needs(dump_bytes, schema_bytes(databases))
    staging = Path(config.get("restore_dir", RESTORE_DIR))
    while not staging.exists():  # made by the restore: its nearest existing parent's filesystem
        staging = staging.parent
    binlogs = Path(config.get("binlog_index", BINLOG_INDEX)).parent
    paths = {"dump file": staging, "new databases": datadir, "binary log": binlogs}
    if not binlogs.is_dir():
        del needs["binary log"], paths["binary log"]
    where = {what: (path.stat().st_dev, str(path)) for what, path in paths.items()}
    free = {where[what][0]: shutil.disk_usage(path).free for what, path in paths.items()}
    return space_refusal(needs, where, free)


def other_objects(databases: list[str]) -> list[str]:
    """Views, triggers, routines and events in ``databases``: a table swap would leave them behind."""
    listed = ", ".join(map(sql_string, databases))
    return [
        f"{kind} {schema}.{name}"
        for kind, schema, name in mariadb(
            "SELECT 'view', table_schema, table_name FROM information_schema.views "  # noqa: S608 - quoted
            f"WHERE table_schema IN ({listed}) UNION ALL "
            "SELECT 'trigger', trigger_schema, trigger_name FROM information_schema.triggers "
            f"WHERE trigger_schema IN ({listed}) UNION ALL "
            "SELECT 'routine', routine_schema, routine_name FROM information_schema.routines "
            f"WHERE routine_schema IN ({listed}) UNION ALL "
            "SELECT 'event', event_schema, event_name FROM information_schema.events "
            f"WHERE event_schema IN ({listed})"
        )
    ]


def table_names(database: str) -> list[str]:
    """Every table of ``database`` (views are other_objects' and refused)."""
    return [
        row[0]
        for row in mariadb(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = "  # noqa: S608 - quoted
            f"{sql_string(database)} AND table_type <> 'VIEW' ORDER BY table_name"
        )
    ]


def existing_databases() -> set[str]:
    return {row[0] for row in mariadb("SHOW DATABASES")}


def load_dump(dump_file: Path, names: dict[str, str]) -> None:
    """The dump through restore_line into the mariadb client (which stops at the first error)."""
    with tempfile.TemporaryFile() as load_err:
        load = subprocess.Popen(
            ["mariadb", "--default-character-set=utf8mb4"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=load_err,
        )
        try:
            try:
                with dump_file.open("rb") as dump:
                    for line in dump:
                        load.stdin.write(restore_line(line, names))  # type: ignore[union-attr]
                load.stdin.close()  # type: ignore[union-attr]
            except BrokenPipeError:
                pass  # the client stopped at an error: its stderr says which
            code = load.wait()
        except BaseException:
            load.kill()
            load.wait()
            raise
        if code != 0:
            load_err.seek(0)
            lines = load_err.read().decode(errors="replace").strip().splitlines()
            raise Untouched(f"loading the dump failed: {lines[-1] if lines else 'no message'}")


def drop_new(new: list[str], log: Log) -> list[str]:
    """Drop a failed logical restore's new databases, SIGTERM and the deadline held off meanwhile; those left."""
    left = []
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGALRM})
    try:
        for database in new:
            try:
                mariadb(f"DROP DATABASE IF EXISTS {quote_ident(database)}")
            except (JobError, subprocess.TimeoutExpired) as exc:
                left.append(database)
                log(f"logical: could not drop the new database {database} ({exc}); drop it by hand")
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
    return left


def stopped(made: list[str], log: Log) -> None:
    """A logical restore stopped before its swap: its databases go, the live ones were not touched."""
    left = drop_new(made, log)
    gone = [d for d in made if d not in left]
    log(
        f"logical: stopped before the swap, the live databases were not touched; dropped {', '.join(gone) or 'nothing'}"
        + (f", left {', '.join(left)}" if left else "")
    )


Progress = Callable[..., None]


def no_progress(phase: str, live_changed: bool | None, **extra: Any) -> None:
    """restore_logical's progress when nobody records it."""


def restore_logical(
    config: dict[str, Any],
    snapshot: dict[str, Any],
    databases: list[str],
    datadir: Path,
    moment: dt.datetime,
    log: Log,
    progress: Progress = no_progress,
) -> dict[str, Any]:
    """Load the dump into new databases, verify them against its manifest, then swap their tables in
    (swap_statement); the live tables stay as evidence. Until the swap the live databases are not
    touched: a failure raises Untouched, and a failure or SIGTERM drops the new databases."""
    if not server_answers():
        with contextlib.suppress(JobError):
            systemctl("start", "mariadb")
        if not server_answers():
            raise Untouched("MariaDB does not answer: a dump can only be loaded into a running server")
    rid = restore_id(moment)
    staging = Path(config.get("restore_dir", RESTORE_DIR))
    refused = check_room(config, snapshot, databases, datadir)
    if refused:
        raise Untouched(refused)
    staging.mkdir(parents=True, mode=0o700, exist_ok=True)
    dump_file = staging / f"{snapshot['short_id']}.sql"
    made: list[str] = []  # databases of this restore to drop when it stops before the swap
    swapped = False
    try:
        log(f"logical: reading snapshot {snapshot['short_id']} ({snapshot['paths'][0]}) into {dump_file}")
        manifest = fetch_dump(config, snapshot, dump_file)
        restored = sorted(manifest["databases"])
        names = {d: side_database(d, "restore", rid) for d in restored}
        evidence = {d: side_database(d, "before", rid) for d in restored}
        clash = (set(names.values()) | set(evidence.values())) & existing_databases()
        if clash:
            raise Untouched(f"databases of a restore {rid} exist already: {', '.join(sorted(clash))}")
        made += names.values()
        progress("loading", False, leftovers=sorted(names.values()))
        log(f"logical: loading the dump into new databases {', '.join(names.values())}; the live ones stay as they are")
        load_dump(dump_file, names)
        others = other_objects(restored + list(names.values()))
        if others:
            raise Untouched(
                f"the databases hold {', '.join(others[:10])}: this restore swaps tables only, restore those by hand"
            )
        progress("verifying", False, leftovers=sorted(names.values()))
        loaded = live_manifest(list(names.values()), newest_titles_count(manifest))
        found = {d: loaded["databases"][names[d]] for d in restored if names[d] in loaded["databases"]}
        problems = loaded["errors"] + manifest_problems(manifest, {"databases": found})
        if problems:
            raise Untouched(f"the loaded databases differ from the snapshot's manifest: {'; '.join(problems[:5])}")
        log(f"logical: the new databases match the snapshot's manifest ({manifest_size(manifest)})")
        live = existing_databases()
        tables = {d: (table_names(d) if d in live else [], table_names(names[d])) for d in restored}
        for database in restored:
            charset, collation = mariadb(
                "SELECT default_character_set_name, default_collation_name FROM information_schema.schemata "  # noqa: S608 - quoted
                f"WHERE schema_name = {sql_string(names[database])}"
            )[0]
            defaults = f"CHARACTER SET {charset} COLLATE {collation}"
            if database not in live:
                mariadb(f"CREATE DATABASE {quote_ident(database)} {defaults}")
            if tables[database][0]:
                made.append(evidence[database])
                mariadb(f"CREATE DATABASE {quote_ident(evidence[database])} {defaults}")
        statement = swap_statement(tables, {d: (names[d], evidence[d]) for d in restored})
        kept = {d: evidence[d] for d in restored if tables[d][0]}
        log(f"logical: swapping the tables in (one RENAME TABLE), the live ones into {', '.join(kept.values())}")
        # SIGTERM and the deadline wait for the rename (all or nothing, at most the lock wait): what it did is known.
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGALRM})
        try:
            progress("swapping", None, leftovers=sorted(names.values()), evidence=kept)
            mariadb(f"SET SESSION lock_wait_timeout = 60;\n{statement}")
            swapped = True
            progress("swapped", True, evidence=kept)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
        log(f"logical: swapped; the data as it was is kept in {', '.join(kept.values()) or 'nothing (no live tables)'}")
        drop_new(list(names.values()), log)
        manifest["evidence"] = {"id": rid, "databases": kept}
        return manifest
    except Exception as exc:
        if swapped:
            raise
        stopped(made, log)
        if isinstance(exc, Untouched):
            raise
        raise Untouched(str(exc)) from exc
    except BaseException:
        if not swapped:
            stopped(made, log)
        raise
    finally:
        dump_file.unlink(missing_ok=True)


def fetch_dump(config: dict[str, Any], snapshot: dict[str, Any], target: Path) -> dict[str, Any]:
    """restic dump a mariadb-dump snapshot into ``target``; its manifest, once the file is known complete
    (restic succeeded, mariadb-dump's 'Dump completed' line, then the manifest line job_mariadb_dump adds)."""
    with tempfile.TemporaryFile() as dump_err, target.open("wb") as sink, Deadline(stream_timeout(config)) as deadline:
        dump = subprocess.Popen(
            restic_argv(config, "dump", snapshot["id"], snapshot["paths"][0]),
            stdout=subprocess.PIPE,
            stderr=dump_err,
            env=restic_env(config),
        )
        deadline.watch(dump)
        tail = b""
        try:
            for block in iter(lambda: dump.stdout.read(CHUNK), b""):  # type: ignore[union-attr]
                sink.write(block)
                tail = (tail + block)[-(4 << 20) :]
        except BaseException:
            dump.kill()
            dump.wait()
            raise
        code = dump.wait()
        if code != 0 and deadline.expired:
            raise JobError(f"restic dump of snapshot {snapshot['short_id']} timed out after {deadline.seconds:.0f} s")
        if code != 0:
            dump_err.seek(0)
            raise JobError(explain(dump_err.read().decode(errors="replace"), config["repository"]))
    marker = tail.rfind(MANIFEST_MARK.encode())
    if marker < 0 or DUMP_DONE not in tail[:marker]:
        raise JobError(f"the dump of snapshot {snapshot['short_id']} is incomplete (no 'Dump completed' and manifest)")
    manifest = manifest_from_dump(tail)
    if not tail.endswith(b"\n"):
        raise JobError(f"the dump of snapshot {snapshot['short_id']} is incomplete (its manifest line is cut)")
    return manifest


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
    # Every client's repository has the same address on the backup host (its chroot), so the
    # failure names the client too.
    name = f"{config['host']}'s repository {config['repository']}"
    try:
        run_restic(config, "unlock", name=name)
        if prune:
            log("prune: removing data no snapshot needs any more")
            run_restic(config, "prune", name=name)
        log(f"check: repository structure and data subset {subset}")
        run_restic(config, "check", "--read-data-subset", subset, name=name)
    except (JobError, subprocess.TimeoutExpired) as exc:
        error = str(exc)
        log(f"check FAILED: {error}")
    else:
        log("check: no errors were found")
    return simple_status(config, "maintain" if prune else "check", started, error, {"subset": subset})


# A client's clock may run a little ahead of the backup host's; a snapshot dated further ahead is forged.
FUTURE_TOLERANCE = dt.timedelta(hours=1)


def future_snapshots(
    snapshots: list[dict[str, Any]], moment: dt.datetime, tolerance: dt.timedelta = FUTURE_TOLERANCE
) -> list[str]:
    """Snapshots dated after ``moment`` (beyond ``tolerance``), as "id time host". Their time is what the
    client said (restic backup --time), and retention counts from the newest snapshot (keep-within) or
    keeps the newest ones (keep-last, -daily): one forged date far ahead would let the second copy's
    forget prune every real snapshot. The second copy is never pruned while one is there."""
    return [
        f"{s.get('short_id', s['id'][:8])} {stamp(parse_time(s['time']))} {s.get('hostname', '?')}"
        for s in sorted(snapshots, key=lambda s: parse_time(s["time"]))
        if parse_time(s["time"]) > moment + tolerance
    ]


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
            listed = run_restic({**config, "sftp_command": ""}, "snapshots", "--json", env=env)
            future = future_snapshots(json.loads(listed.stdout or "[]"), now())
            if future:
                raise JobError(
                    f"{len(future)} snapshots dated in the future ({', '.join(future[:3])}): the second copy "
                    "is not pruned until a person checks them (restic forget ID on this host)"
                )
            # restic copy keeps tags: a snapshot a client pinned stays pinned here too.
            forget = [
                "forget",
                "--prune",
                "--json",
                "--group-by",
                "host,tags",
                *keep_policy(keep),
                "--keep-tag",
                PIN_TAG,
            ]
            run_restic({**config, "sftp_command": ""}, *forget, env=env)
            entry.update(ok=True, last_success_ts=time.time())
        except (JobError, ConfigError, subprocess.TimeoutExpired) as exc:
            entry.update(ok=False, error=str(exc))
            log(f"copy {copy['name']}: FAILED: {exc}")
        entry["duration_s"] = round(time.monotonic() - begin, 3)
        results.append(entry)
    error = "; ".join(f"{r['name']}: {r['error']}" for r in results if not r["ok"])
    return simple_status(config, "copy", started, error, {"jobs": results})


def newest_titles_count(manifest: dict[str, Any]) -> int:
    first: dict[str, Any] = next(iter(manifest["databases"].values()), {})
    return len(first.get("newest_titles", [])) or 10


def manifest_size(manifest: dict[str, Any]) -> str:
    tables = sum(len(d["tables"]) for d in manifest["databases"].values())
    rows = sum(t["rows"] for d in manifest["databases"].values() for t in d["tables"].values())
    return f"{len(manifest['databases'])} databases, {tables} tables, {rows} rows"


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
    started = now()
    rid = restore_id(started)
    seconds = float(deadline or config.get("restore_timeout_s", RESTORE_TIMEOUT))
    datadir = Path(config.get("mariadb_datadir", "/var/lib/mysql"))
    jobs = {j["name"]: j for j in database_jobs(config)}
    failures: list[str] = []
    problems: list[str] = []
    used: tuple[str, dict[str, Any], dict[str, Any]] | None = None
    replay: dict[str, Any] = {}
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
        progress("verifying the restored databases" if used else "giving up", False)
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
                log(f"verify: the restored databases against the snapshot's manifest ({manifest_size(manifest)})")
                restored = live_manifest(list(manifest["databases"]), newest_titles_count(manifest))
                problems = restored["errors"] + manifest_problems(manifest, restored)
            for problem in problems[:50]:
                log(f"verify: DIFFERS: {problem}")
            if not problems:
                said = "are sound" if path == "logical" else "match the manifest"
                log(f"verify: ok, {manifest_size(manifest)} {said}")
            if not problems and path == "physical":
                replay = point_in_time(config, manifest, binlogs, until, until_position, log)
            elif not problems:
                replay = {"replayed": False, "error": "a dump records no binary log position"}
                log(f"{NO_PITR}: {replay['error']}")
            if replay.get("replayed"):
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


def command_discard_evidence(config: dict[str, Any], rid: str, log: Log) -> int:
    """Drop the evidence databases a logical restore kept (and new databases it left), named by its id."""
    if not RESTORE_ID.fullmatch(rid):
        print(
            f"portalops-backup: {rid!r} is not a restore id (UTC time as YYYYMMDDTHHMMSSZ, as the restore printed it)",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    databases = sorted({d for j in database_jobs(config) for d in j["databases"]})
    wanted = [side_database(d, role, rid) for d in databases for role in ("before", "restore")]
    found = [d for d in wanted if d in existing_databases()]
    if not found:
        log(f"restore-database: no evidence of restore {rid} on this host (looked for {', '.join(wanted)})")
        return EXIT_FAILED
    for database in found:
        log(f"restore-database: dropping {database} ({len(table_names(database))} tables)")
        mariadb(f"DROP DATABASE {quote_ident(database)}")
    log(f"restore-database: the evidence of restore {rid} is discarded")
    return EXIT_OK


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


def files_job(config: dict[str, Any], name: str) -> dict[str, Any]:
    jobs: list[dict[str, Any]] = config.get("jobs", [])
    for job in jobs:
        if job["name"] == name:
            if job["type"] != "files":
                raise ConfigError(f"job {name!r} is a {job['type']} job, not a files job")
            return job
    raise ConfigError(f"no such job: {name}")


def files_state(
    config: dict[str, Any], job: dict[str, Any], wanted: str | None
) -> tuple[dict[str, Any], dict[str, Any], dict[str, list[str]]]:
    """The chosen snapshot, its manifest (read from the repository, not from this host, whose copy an
    intruder could have edited) and how the live tree differs from it. Reads only (--no-lock)."""
    listed = run_restic(
        config, "--no-lock", "snapshots", "--json", "--tag", f"job:{job['name']}", "--host", config["host"]
    )
    snapshot = pick_files_snapshot(json.loads(listed.stdout or "[]"), job["name"], wanted)
    path = Path(config["status_dir"]) / "manifests" / f"{job['name']}.json"
    try:
        manifest: dict[str, Any] = json.loads(run_restic(config, "--no-lock", "dump", snapshot["id"], str(path)).stdout)
    except json.JSONDecodeError:
        raise JobError(f"snapshot {snapshot['short_id']} of {job['name']} carries no readable manifest") from None
    return snapshot, manifest, files_diff(manifest, live_files_manifest(manifest["paths"], job.get("exclude")))


def files_report(
    job: dict[str, Any], snapshot: dict[str, Any], manifest: dict[str, Any], diff: dict[str, list[str]]
) -> dict[str, Any]:
    return {
        "job": job["name"],
        "snapshot": snapshot["short_id"],
        "snapshot_time": stamp(parse_time(snapshot["time"])),
        "manifest_files": manifest.get("count", len(manifest.get("files", {}))),
        **diff,
        "ok": not any(diff.values()),
    }


def log_diff(diff: dict[str, list[str]], log: Log, limit: int = 500) -> None:
    for kind in ("changed", "missing", "added"):
        for path in diff[kind][:limit]:
            log(f"{kind.upper()}: {path}")
        if len(diff[kind]) > limit:
            log(f"{kind.upper()}: ... and {len(diff[kind]) - limit} more")


def command_verify_files(config: dict[str, Any], name: str, wanted: str | None, as_json: bool, log: Log) -> int:
    """Exit 0 only when the live tree is exactly what the snapshot's manifest recorded."""
    job = files_job(config, name)
    snapshot, manifest, diff = files_state(config, job, wanted)
    report = files_report(job, snapshot, manifest, diff)
    if as_json:
        print(json.dumps(report, sort_keys=True), flush=True)
    else:
        log(
            f"verify-files {name}: live files against snapshot {report['snapshot']} taken {report['snapshot_time']} "
            f"({report['manifest_files']} files)"
        )
        log_diff(diff, log)
        counts = ", ".join(f"{len(diff[k])} {k}" for k in ("changed", "missing", "added"))
        log(f"verify-files {name}: {'identical to the manifest' if report['ok'] else counts}")
    return EXIT_OK if report["ok"] else EXIT_FAILED


def restore_from_snapshot(
    config: dict[str, Any], snapshot: dict[str, Any], manifest: dict[str, Any], paths: list[str], log: Log
) -> list[str]:
    """``paths`` restored from the snapshot into a staging directory, each checked against the manifest,
    then put in place; returns what could not be restored."""
    if not paths:
        return []
    root = Path(config.get("staging_dir", "/var/backups/portalops"))
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    staging = Path(tempfile.mkdtemp(prefix="restore-files-", dir=root))
    problems = []
    try:
        includes = [arg for path in paths for arg in ("--include", restic_include(path))]
        log(f"restore-files: restic restore of {len(paths)} paths from snapshot {snapshot['short_id']}")
        run_restic(config, "--no-lock", "restore", snapshot["id"], "--target", str(staging), *includes)
        for path in paths:
            source = staging / path.lstrip("/")
            spec = manifest.get("files", {}).get(path)
            if spec is not None and (
                not source.is_file() or source.is_symlink() or sha256_file(source) != spec["sha256"]
            ):
                problems.append(f"{path}: the snapshot's copy is missing or does not match the manifest")
                continue
            if spec is None and (not source.is_symlink() or os.readlink(source) != manifest["links"].get(path)):
                problems.append(f"{path}: the snapshot's link is missing or does not match the manifest")
                continue
            try:
                put_in_place(source, Path(path), staging)
            except OSError as exc:
                problems.append(f"{path}: could not be put in place: {exc}")
                continue
            log(f"RESTORED: {path}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return problems


def command_restore_files(
    config: dict[str, Any], name: str, wanted: str | None, evidence: str | None, yes: bool, log: Log
) -> int:
    """Evidence first (changed and added files as found), then changed and missing files back from the
    snapshot, added files moved into the evidence directory, then verified again."""
    started = now()
    job = files_job(config, name)
    snapshot, manifest, diff = files_state(config, job, wanted)
    report = files_report(job, snapshot, manifest, diff)
    log(f"restore-files {name}: live files against snapshot {report['snapshot']} taken {report['snapshot_time']}")
    log_diff(diff, log)
    if report["ok"]:
        log(f"restore-files {name}: identical to the manifest, nothing to restore")
        print(json.dumps({**report, "evidence": "", "restored": [], "quarantined": [], "problems": []}), flush=True)
        return EXIT_OK
    if not yes:
        print(
            f"portalops-backup: restore-files replaces {len(diff['changed'])} changed and {len(diff['missing'])} "
            f"missing files and moves {len(diff['added'])} added ones into an evidence directory; repeat with --yes",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    if evidence:
        directory = Path(evidence)
    else:
        EVIDENCE_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
        EVIDENCE_DIR.chmod(0o700)
        directory = unique_directory(EVIDENCE_DIR, started)
    details = {**report, "host": config["host"], "taken": stamp(started), "manifest_paths": manifest["paths"]}
    expected = {p: manifest["files"][p]["sha256"] for p in diff["changed"] + diff["missing"] if p in manifest["files"]}
    details["expected_sha256"] = expected
    sums = keep_evidence(diff["changed"] + diff["added"], directory, details)
    log(f"restore-files: evidence of {len(sums) - 1} files kept in {directory} (evidence.tar, SHA256SUMS)")
    problems = restore_from_snapshot(config, snapshot, manifest, diff["changed"] + diff["missing"], log)
    moved = quarantine(diff["added"], directory)
    for path in moved:
        log(f"QUARANTINED: {path} -> {directory / 'quarantine' / path.lstrip('/')}")
    after = files_diff(manifest, live_files_manifest(manifest["paths"], job.get("exclude")))
    remaining = [f"{kind} {path}" for kind in ("changed", "missing", "added") for path in after[kind]]
    problems += [f"still differs: {line}" for line in remaining]
    for problem in problems[:100]:
        log(f"restore-files: PROBLEM: {problem}")
    summary = {
        **report,
        "ok": not problems,
        "evidence": str(directory),
        "restored": [p for p in diff["changed"] + diff["missing"] if not any(x.startswith(p + ":") for x in problems)],
        "quarantined": moved,
        "problems": problems,
        "duration_s": round((now() - started).total_seconds(), 1),
    }
    simple_status(config, "restore-files", started, "; ".join(problems), {"restore_files": summary})
    log(f"restore-files {name}: {'verified, identical to the manifest' if not problems else 'FAILED'}")
    print(json.dumps(summary, sort_keys=True), flush=True)
    return EXIT_OK if not problems else EXIT_FAILED


def pin_reason(pin: dict[str, Any] | None) -> str:
    if pin is None:
        return "pinned by hand (no record on this host)"
    return f"pinned {pin['pinned']}: snapshot {pin['flagged_snapshot']} showed {'; '.join(pin['problems'])}"


def command_release(config: dict[str, Any], wanted: str, log: Log) -> int:
    """A person's act: remove a pin (after saying what it releases); retention may then forget the snapshot."""
    pinned = json.loads(run_restic(config, "snapshots", "--json", "--tag", PIN_TAG).stdout or "[]")
    chosen = [s for s in pinned if same_snapshot(s, wanted)]
    if len(chosen) != 1:
        known = ", ".join(s.get("short_id", s["id"][:8]) for s in pinned) or "none"
        print(
            f"portalops-backup: {'more than one' if chosen else 'no'} pinned snapshot {wanted} "
            f"(pinned: {known}); nothing released",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    snapshot = chosen[0]
    pins = read_pins(config)
    pin = next((p for p in pins if p["id"] == snapshot["id"]), None)
    message = (
        f"releasing snapshot {snapshot.get('short_id', snapshot['id'][:8])} of {job_of(snapshot) or '?'} taken "
        f"{stamp(parse_time(snapshot['time']))} ({pin_reason(pin)}); retention may now forget it"
    )
    print(message, flush=True)
    log(message)
    run_restic(config, "tag", "--remove", PIN_TAG, snapshot["id"])
    write_pins(config, [p for p in pins if p["id"] != snapshot["id"]])
    # The last run's status and metrics lose the flag now, not at the next run.
    status = previous_status(Path(config["status_dir"]) / "run.json")
    if status.get("jobs") is not None:
        for job in status["jobs"] + status.get("not_run", []):
            flags = [f for f in job.get("mass_loss", []) if f.get("pinned_snapshot_id") != snapshot["id"]]
            if flags:
                job["mass_loss"] = flags
            else:
                job.pop("mass_loss", None)
        record(config, status)
    return EXIT_OK


def command_status(config: dict[str, Any]) -> int:
    """The last run's jobs, mass-loss flags and the pinned snapshots (read-only)."""
    status = previous_status(Path(config["status_dir"]) / "run.json")
    lines = []
    if status:
        lines.append(
            f"last run {status.get('run_id')}: {'ok' if status.get('ok') else 'FAILED'}, {status.get('finished')}"
        )
    for job in status.get("jobs", []) + status.get("not_run", []):
        state = "ok" if job.get("ok") else f"FAILED: {job.get('error')}"
        lines.append(f"  {job['name']}: {state}, snapshot {str(job.get('snapshot_id') or '-')[:8]}")
        for flag in job.get("mass_loss", []):
            pinned = flag.get("pinned_snapshot") or f"nothing (pin failed: {flag.get('pin_error')})"
            lines.append(
                f"    MASS LOSS in snapshot {flag['snapshot']}: {'; '.join(flag['problems'])}; pinned {pinned}"
            )
    pins = {p["id"]: p for p in read_pins(config)}
    try:
        pinned = json.loads(run_restic(config, "snapshots", "--json", "--tag", PIN_TAG).stdout or "[]")
    except (JobError, json.JSONDecodeError, subprocess.TimeoutExpired) as exc:
        lines.append(f"repository not readable ({exc}): the pins recorded on this host")
        pinned = [
            {"id": p["id"], "short_id": p["short_id"], "time": p["time"], "tags": [f"job:{p['job']}"]}
            for p in pins.values()
        ]
    lines.append(
        f"pinned snapshots: {len(pinned)}" + (" (release with: portalops-backup release ID)" if pinned else "")
    )
    for snapshot in pinned:
        lines.append(
            f"  {snapshot.get('short_id', snapshot['id'][:8])} {job_of(snapshot) or '?'} taken "
            f"{stamp(parse_time(snapshot['time']))}: {pin_reason(pins.get(snapshot['id']))}"
        )
    print("\n".join(lines))
    return EXIT_OK


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
    sub.add_parser("status", help="the last run, mass-loss flags and pinned snapshots")
    release = sub.add_parser("release", help="remove the pin of a snapshot kept after a mass loss (a person's act)")
    release.add_argument("snapshot", help="the pinned snapshot (id or prefix, or its id before it was pinned)")
    restore = sub.add_parser("restore-database", help="restore MariaDB from the newest database backup, verified")
    restore.add_argument("--snapshot", help="this snapshot (id or prefix) of a database job, no fallback")
    restore.add_argument("--yes", action="store_true", help="really replace the data (without it: refused)")
    restore.add_argument("--logical", action="store_true", help="the newest dump only (no physical backup)")
    restore.add_argument(
        "--deadline",
        type=float,
        help=f"end the whole restore, cleanly, after this many seconds (default {RESTORE_TIMEOUT:.0f})",
    )
    restore.add_argument(
        "--discard-evidence",
        metavar="ID",
        help="drop the evidence databases the logical restore ID kept (ID as it printed it); nothing else",
    )
    until = restore.add_mutually_exclusive_group()
    until.add_argument(
        "--until",
        type=until_time,
        help="replay the binary log up to this time (ISO 8601; local time without a zone) instead of the accident",
    )
    until.add_argument("--until-position", help="replay the binary log up to FILE:POSITION (not including it)")
    verify = sub.add_parser("verify-database", help="the live databases against a snapshot's manifest")
    verify.add_argument("--snapshot", help="this snapshot (default: the newest database backup's manifest)")
    sub.add_parser("check-database", help="lost or corrupted? (changes since the backup are fine)")
    verify_files = sub.add_parser("verify-files", help="a files job's live tree against a snapshot's manifest")
    verify_files.add_argument("job", help="a files job of this host (e.g. cms-files)")
    verify_files.add_argument("--snapshot", help="this snapshot (id or prefix; default: the job's newest)")
    verify_files.add_argument("--json", action="store_true", help="one JSON object instead of lines")
    restore_files = sub.add_parser("restore-files", help="keep evidence, restore changed and missing files")
    restore_files.add_argument("job", help="a files job of this host (e.g. cms-files)")
    restore_files.add_argument("--snapshot", help="this snapshot (id or prefix; default: the job's newest)")
    restore_files.add_argument("--evidence", help=f"evidence directory (default: {EVIDENCE_DIR}/<UTC time>)")
    restore_files.add_argument("--yes", action="store_true", help="really change the files (without it: refused)")
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
    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        # Read-only: they run while a backup holds the lock (a health check must not fail for that).
        if args.command == "check-database":
            return command_check_database(config, log)
        if args.command == "verify-database":
            return command_verify_database(config, args.snapshot, log)
        if args.command == "verify-files":
            return command_verify_files(config, args.job, args.snapshot, args.json, log)
        if args.command == "status":
            return command_status(config)
        with run_lock(config):
            if args.command == "restore-files":
                return command_restore_files(config, args.job, args.snapshot, args.evidence, args.yes, log)
            if args.command == "restore-database" and args.discard_evidence is not None:
                return command_discard_evidence(config, args.discard_evidence, log)
            if args.command == "restore-database":
                return command_restore_database(
                    config,
                    args.snapshot,
                    args.yes,
                    log,
                    until=args.until,
                    until_position=args.until_position,
                    logical=args.logical,
                    deadline=args.deadline,
                )
            if args.command == "run":
                return command_run(config, args.job, log)
            if args.command == "maintain":
                return command_check(config, None, log, prune=True)
            if args.command == "check":
                return command_check(config, args.subset, log, prune=False)
            if args.command == "copy":
                return command_copy(config, log)
            if args.command == "release":
                return command_release(config, args.snapshot, log)
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
    except DeadlinePassed as exc:
        print(f"portalops-backup: {exc}; clean-up done", file=sys.stderr)
        return EXIT_FAILED
    except Terminated as exc:
        print(f"portalops-backup: {exc}; clean-up done", file=sys.stderr)
        return 128 + signal.SIGTERM
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
