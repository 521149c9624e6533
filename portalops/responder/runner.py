"""Running a runbook in an incident the responder opened: ``portalops runbook run --resume --unattended``.

Each run is its own process, so the engine's :class:`~portalops.runbook.lock.TargetLock` (a flock per
target host) keeps one run at a time on a host, against the responder's other runs and a person's
alike. A run that finds its hosts busy exits 3 before it does anything; the runner waits and tries
again until ``lock_wait`` runs out: the second incident waits for the first.

Among the responder's runs waiting for hosts, the most urgent level goes first: while an L1 run
waits, an L2 or L3 run does not try (an L2 run that holds the hosts is not interrupted; the L1 run
gets them as soon as it ends, before any L2 or L3 run that waited longer). Runs of one level take
their turns as they come.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from portalops.runbook.outcome import RunbookExit

BUSY = " is busy: "  # what TargetLock says when another run holds a host
RETRY = 15.0  # seconds between tries while the hosts are busy


UNKNOWN_LEVEL = 4  # an incident without a level waits behind L3


class Runner(Protocol):
    def __call__(self, runbook: str, incident: str, waiting: Callable[[str], None], level: int = UNKNOWN_LEVEL) -> int:
        """Run ``runbook`` in ``incident`` of ``level`` (1-3); its exit code (:class:`RunbookExit`).
        ``waiting`` is told once, with the holder's line, when the hosts are busy."""
        ...


@dataclass
class SubprocessRunner:
    inventory: str
    incidents: Path
    lock_wait: float = 3600.0
    python: str = sys.executable
    sleep: Callable[[float], None] = time.sleep
    execute: Callable[[list[str], Path], tuple[int, str]] = field(default=lambda argv, log: _execute(argv, log))
    _waiting: dict[str, int] = field(default_factory=dict, init=False)  # incident -> level, while it waits
    _guard: threading.Lock = field(default_factory=threading.Lock, init=False)

    def outranked(self, incident: str, level: int) -> bool:
        """Another run waits for hosts with a more urgent level: this one lets it try first."""
        with self._guard:
            return any(other < level for name, other in self._waiting.items() if name != incident)

    def argv(self, runbook: str, incident: str) -> list[str]:
        return [
            self.python,
            "-m",
            "portalops.cli",
            "runbook",
            "run",
            runbook,
            "--resume",
            incident,
            "--unattended",
            "-i",
            self.inventory,
            "--incidents",
            str(self.incidents),
        ]

    def __call__(self, runbook: str, incident: str, waiting: Callable[[str], None], level: int = UNKNOWN_LEVEL) -> int:
        log = self.incidents / incident / "responder-run.log"
        waited, told = 0.0, False
        try:
            while True:
                if not self.outranked(incident, level) or waited >= self.lock_wait:
                    rc, output = self.execute(self.argv(runbook, incident), log)
                    busy = rc == RunbookExit.ENVIRONMENT and BUSY in output
                    if not busy or waited >= self.lock_wait:
                        return rc
                    with self._guard:
                        self._waiting[incident] = level
                    if not told:
                        waiting(next((line for line in output.splitlines() if BUSY in line), output.strip()))
                        told = True
                self.sleep(RETRY)
                waited += RETRY
        finally:
            with self._guard:
                self._waiting.pop(incident, None)


def _execute(argv: list[str], log: Path) -> tuple[int, str]:
    """The run, its output appended to the incident's ``responder-run.log``; the exit code and the output."""
    done = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    output = done.stdout + done.stderr
    with log.open("a", encoding="utf-8") as handle:
        handle.write(f"$ {' '.join(argv)}\n{output}exit {done.returncode}\n")
    return done.returncode, output
