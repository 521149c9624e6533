#!/usr/bin/env python3
"""One role's molecule converge with the package cache down, cold and warm.

Each measure is `molecule create`, then the timed `molecule converge`, then `molecule destroy`,
so only the converge counts (the container start does not). Down = apt-cacher-ng stopped: apt
falls back to the mirror (the detect script prints DIRECT), as with no cache at all. Cold =
the machine's cache emptied first (only with --cold: it throws the cache away). Warm = what the
previous measure left in the cache. Needs root (it stops and starts apt-cacher-ng); run one at a
time, the CPU is shared. Usage: scripts/bench_molecule_cache.py [--cold] [ROLE]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from portalops.lab import aptcache

REPO = Path(__file__).resolve().parent.parent


def molecule(role: Path, command: str) -> float:
    started = time.monotonic()
    result = subprocess.run(["molecule", command], cwd=role, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"bench-molecule-cache: molecule {command} failed:\n{(result.stdout + result.stderr)[-3000:]}")
    return time.monotonic() - started


def measure(role: Path) -> tuple[float, aptcache.Traffic]:
    molecule(role, "destroy")
    molecule(role, "create")
    offset = aptcache.log_size()
    try:
        seconds = molecule(role, "converge")
    finally:
        traffic = aptcache.traffic_since(offset)
        molecule(role, "destroy")
    return seconds, traffic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="also measure with the machine's cache emptied first")
    parser.add_argument("role", nargs="?", default="hardening")
    args = parser.parse_args()
    role = REPO / "roles" / args.role
    rows: list[tuple[str, float, aptcache.Traffic | None]] = []
    aptcache.service("stop")
    try:
        seconds, _ = measure(role)
    finally:
        aptcache.service("start")
    rows.append(("cache down (straight from the mirror)", seconds, None))
    if args.cold:
        aptcache.service("stop")
        for entry in aptcache.CACHE_DIR.iterdir():
            if entry.is_dir():
                shutil.rmtree(entry)
        aptcache.service("start")
        rows.append(("cold cache", *measure(role)))
    rows.append(("warm cache", *measure(role)))
    print(f"molecule converge of {args.role}, load average now {Path('/proc/loadavg').read_text().split()[0]}")
    for name, seconds, traffic in rows:
        print(f"{name:<40} {seconds:>7.1f} s  {traffic.describe() if traffic else ''}")


if __name__ == "__main__":
    main()
