"""One runbook (or drill) at a time per host of an inventory.

A run holds an exclusive ``flock`` on one file per target host (the runbook's
targets after ``--limit``) under ``incidents/.locks/<inventory>/``, from
before its plan is confirmed until it ends, ``--resume`` included. The kernel
drops the lock when the process dies, so a crashed or killed run never leaves
a stale lock behind. Each lock file says who holds it, so a second run
against an overlapping host exits 3 naming the holder instead of acting on
the same hosts at the same time.

A process that already holds a host (a drill running its runbook) may take it
again: the lock is re-entrant within one process.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import re
import socket
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from portalops.errors import EnvironmentProblem
from portalops.inventory import REPO_ROOT
from portalops.runbook.journal import stamp, utc_now

# The default incidents directory's, whatever --incidents a run journals to: two runs on the same
# hosts meet here even when they keep their journals apart.
LOCK_DIR = Path(os.environ.get("PORTALOPS_INCIDENTS_DIR", REPO_ROOT / "incidents")) / ".locks"

# Lock files this process holds: path -> (open file, how many holders in this process).
_HELD: dict[Path, tuple[IO[str], int]] = {}


def inventory_key(source: str) -> str:
    """A directory name for an inventory: its absolute path, readable."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(Path(source).resolve()).strip("/")) or "_"


def holder_text(info: dict[str, Any]) -> str:
    """Who holds a lock, as a person reads it."""
    if not info:
        return "a run that has not written its name yet"
    incident = f"incident {info['incident']}" if info.get("incident") else "no incident opened yet"
    return (
        f"{info.get('what', '?')} by {info.get('user', '?')}@{info.get('controller', '?')} pid {info.get('pid', '?')}"
        f" ({incident}) since {info.get('since', '?')}"
    )


class TargetLock:
    """The hosts of one inventory a run acts on, held exclusively while it runs."""

    def __init__(
        self,
        source: str,
        hosts: list[str],
        what: str,
        incident: str = "",
        directory: Path | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.source = source
        self.hosts = sorted(set(hosts))
        self.directory = (directory or LOCK_DIR) / inventory_key(source)
        self.info: dict[str, Any] = {
            "what": what,
            "incident": incident,
            "user": _user(),
            "controller": socket.gethostname(),
            "pid": os.getpid(),
            "since": stamp(clock()),
            "inventory": source,
            "hosts": self.hosts,
        }
        self._taken: list[Path] = []

    def path(self, host: str) -> Path:
        return self.directory / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', host)}.lock"

    def acquire(self) -> None:
        """Every host or none: the first host another process holds names its holder (exit 3)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for host in self.hosts:
            path = self.path(host)
            if path in _HELD:
                handle, count = _HELD[path]
                _HELD[path] = (handle, count + 1)
                self._taken.append(path)
                continue
            handle = path.open("a+", encoding="utf-8")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                self.release()
                raise EnvironmentProblem(
                    f"{host} of inventory {self.source} is busy: {holder_text(read_holder(path))};"
                    f" not starting {self.info['what']} (lock {path}; freed when that run ends or its process dies)"
                ) from None
            _HELD[path] = (handle, 1)
            self._taken.append(path)
            self._write(path)

    def note(self, incident: str) -> None:
        """The incident the run opened, for whoever finds the hosts busy."""
        self.info["incident"] = incident
        for path in self._taken:
            self._write(path)

    def release(self) -> None:
        for path in reversed(self._taken):
            handle, count = _HELD[path]
            if count > 1:
                _HELD[path] = (handle, count - 1)
                continue
            del _HELD[path]
            handle.close()  # closing the only descriptor releases the flock
        self._taken = []

    def _write(self, path: Path) -> None:
        handle, count = _HELD[path]
        info = self.info
        if count > 1:  # the outer holder (a drill) keeps its name; the incident is the inner run's
            info = {**read_holder(path), "incident": self.info["incident"]}
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(info, sort_keys=True) + "\n")
        handle.flush()

    def __enter__(self) -> TargetLock:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.release()


def read_holder(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
