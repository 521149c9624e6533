"""Streams between processes (mariadb-dump into restic, restic dump into a file or a server) and the deadline that
ends them, so a frozen SFTP session or a stuck dump fails a run instead of hanging it."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
from typing import Any

CHUNK = 1 << 20


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
