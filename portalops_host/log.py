"""One line per event to stdout (journald under systemd) and to the run's log file."""

from __future__ import annotations

from pathlib import Path
from typing import IO

from portalops_host.times import now, stamp


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
