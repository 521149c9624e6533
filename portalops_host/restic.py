"""restic driven through subprocess with --json: its environment, its errors explained in one line, stale locks."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import subprocess
from collections.abc import Callable
from typing import Any, TypeVar

from portalops_host.errors import JobError, RepositoryLocked, RepositoryUnusable
from portalops_host.log import Log

T = TypeVar("T")


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
    messages: list[dict[str, Any]] = []
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
    for message in json_messages(stdout)[::-1]:
        if message.get("message_type") == "summary":
            return message
    raise JobError("restic printed no summary (snapshot not saved)")


def backup_args(config: dict[str, Any], job: dict[str, Any]) -> list[str]:
    args = ["backup", "--json", "--host", config["host"], "--tag", f"portalops,job:{job['name']}"]
    for pattern in job.get("exclude", []):
        args += ["--exclude", pattern]
    return args


def rolling_subset(day: dt.date, parts: int) -> str:
    """The part of the data a weekly check reads: all of it over ``parts`` weeks."""
    week = day.isocalendar().week + 53 * day.isocalendar().year
    return f"{week % parts + 1}/{parts}"
