"""Running a runbook in an incident the responder opened: ``portalops runbook run --resume --unattended``.

Each run is its own process, so the engine's :class:`~portalops.runbook.lock.TargetLock` (a flock per
target host) keeps one run at a time on a host, against the responder's other runs and a person's
alike. A run that finds its hosts busy exits 3 before it does anything; the runner waits and tries
again until ``lock_wait`` runs out: the second incident waits for the first.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from portalops.runbook.outcome import RunbookExit

BUSY = " is busy: "  # what TargetLock says when another run holds a host
RETRY = 15.0  # seconds between tries while the hosts are busy


class Runner(Protocol):
    def __call__(self, runbook: str, incident: str, waiting: Callable[[str], None]) -> int:
        """Run ``runbook`` in ``incident``; its exit code (:class:`RunbookExit`). ``waiting`` is told
        once, with the holder's line, when the hosts are busy."""
        ...


@dataclass
class SubprocessRunner:
    inventory: str
    incidents: Path
    lock_wait: float = 3600.0
    python: str = sys.executable
    sleep: Callable[[float], None] = time.sleep
    execute: Callable[[list[str], Path], tuple[int, str]] = field(default=lambda argv, log: _execute(argv, log))

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

    def __call__(self, runbook: str, incident: str, waiting: Callable[[str], None]) -> int:
        log = self.incidents / incident / "responder-run.log"
        waited, told = 0.0, False
        while True:
            rc, output = self.execute(self.argv(runbook, incident), log)
            busy = rc == RunbookExit.ENVIRONMENT and BUSY in output
            if not busy or waited >= self.lock_wait:
                return rc
            if not told:
                waiting(next((line for line in output.splitlines() if BUSY in line), output.strip()))
                told = True
            self.sleep(RETRY)
            waited += RETRY


def _execute(argv: list[str], log: Path) -> tuple[int, str]:
    """The run, its output appended to the incident's ``responder-run.log``; the exit code and the output."""
    done = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    output = done.stdout + done.stderr
    with log.open("a", encoding="utf-8") as handle:
        handle.write(f"$ {' '.join(argv)}\n{output}exit {done.returncode}\n")
    return done.returncode, output
