"""The host-side errors and exit codes: one exception family, and the exit code each command maps it to."""

from __future__ import annotations

import signal

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_ENVIRONMENT = 0, 1, 2, 3


EXIT_UNKNOWN = 75  # EX_TEMPFAIL: a check that cannot tell right now (never a reason to restore)


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


class DeadlinePassed(Terminated):
    """restore-database's overall deadline passed: unwinds like SIGTERM, so the clean-up runs."""


class Untouched(JobError):
    """A restore failed without changing the live databases (a logical restore before its swap)."""


# The one place a command's error becomes its exit code and the line on stderr: the first class that
# matches wins (DeadlinePassed before the Terminated it is); a stopped command has cleaned up first.
FAILURES: tuple[tuple[type[BaseException], int, str], ...] = (
    (LockError, EXIT_ENVIRONMENT, ""),
    (ConfigError, EXIT_BAD_INPUT, ""),
    (JobError, EXIT_FAILED, ""),
    (DeadlinePassed, EXIT_FAILED, "; clean-up done"),
    (Terminated, 128 + signal.SIGTERM, "; clean-up done"),
)


def failure(exc: BaseException) -> tuple[int, str]:
    """``exc``'s exit code and what stderr says of it (FAILURES)."""
    for kind, code, after in FAILURES:
        if isinstance(exc, kind):
            return code, f"{exc}{after}"
    raise exc
