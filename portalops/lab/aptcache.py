"""The lab machine's package cache (apt-cacher-ng, installed by scripts/setup-system).

Lab hosts (``base_apt_proxy`` in inventory/lab) and molecule instances fetch
Debian packages through it. Its transfer log says how much it fetched from the
mirror and how much it served, which the benchmarks report.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PORT = 3142
LOG = Path("/var/log/apt-cacher-ng/apt-cacher.log")
CACHE_DIR = Path("/var/cache/apt-cacher-ng")


@dataclass(frozen=True)
class Traffic:
    """Bytes apt-cacher-ng fetched from the mirror and served to clients."""

    fetched: int = 0
    served: int = 0
    errors: int = 0
    clients: frozenset[str] = frozenset()

    @property
    def hit_ratio(self) -> float:
        """Share of the served bytes that did not have to be fetched (0 when nothing was served)."""
        if self.served <= 0:
            return 0.0
        return max(0.0, 1.0 - self.fetched / self.served)

    def describe(self) -> str:
        mib = 1024 * 1024
        return (
            f"served {self.served / mib:.1f} MiB, fetched {self.fetched / mib:.1f} MiB from the mirror "
            f"({self.hit_ratio:.0%} from the cache), {self.errors} errors"
        )


def parse_log(lines: Iterable[str]) -> Traffic:
    """Sum a stretch of apt-cacher.log: ``time|I|bytes|client|path`` is a fetch from the mirror,
    ``O`` a transfer to the client, ``E`` an error; anything else is skipped."""
    fetched = served = errors = 0
    clients: set[str] = set()
    for line in lines:
        fields = line.split("|", 4)
        if len(fields) < 4 or not fields[2].isdigit():
            continue
        kind, size = fields[1], int(fields[2])
        if kind == "I":
            fetched += size
        elif kind == "O":
            served += size
            clients.add(fields[3])
        elif kind == "E":
            errors += 1
    return Traffic(fetched=fetched, served=served, errors=errors, clients=frozenset(clients))


def log_size(log: Path = LOG) -> int:
    """Where the log ends now: read the traffic from here on with ``traffic_since``."""
    try:
        return log.stat().st_size
    except OSError:  # no log yet, or not readable (not root)
        return 0


def traffic_since(offset: int, log: Path = LOG) -> Traffic:
    """The traffic logged after ``offset`` (from the start when the log was rotated since)."""
    try:
        with log.open("rb") as handle:
            if offset <= log.stat().st_size:
                handle.seek(offset)
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:  # no log yet, or not readable (not root)
        return Traffic()
    return parse_log(text.splitlines())


def answers(host: str = "127.0.0.1", port: int = PORT, timeout: float = 2.0) -> bool:
    """Whether the cache accepts a connection, as the hosts' apt proxy detect script asks."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def service_argv(action: str, systemd: bool) -> list[str]:
    """How to start or stop the cache: systemd where it is PID 1, the SysV script otherwise (CI)."""
    if systemd:
        return ["systemctl", action, "apt-cacher-ng"]
    return ["/etc/init.d/apt-cacher-ng", action]


def service(action: str, wait: float = 5.0) -> None:
    """Start or stop the cache (root only) and wait until it answers, or no longer does."""
    argv = service_argv(action, systemd=Path("/run/systemd/system").is_dir())
    subprocess.run(argv, check=True, capture_output=True, timeout=60)
    deadline = time.monotonic() + wait
    while answers(timeout=0.5) != (action != "stop"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"apt-cacher-ng did not {action} within {wait:.0f} s")
        time.sleep(0.1)
