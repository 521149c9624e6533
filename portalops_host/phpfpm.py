"""`portalops-host check fpm-saturation`: no php-fpm pool runs its pm.max_children, nor logged reaching it
lately (the l2_slow_response runbook)."""

from __future__ import annotations

import glob
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path


def max_children(pool_config: str) -> int | None:
    """A pool file's ``pm.max_children`` (None when it sets none)."""
    limit = None
    for line in pool_config.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "pm.max_children":
            limit = int(value.split(";")[0])
    return limit


def children(ps_args: str) -> dict[str, int]:
    """How many children each pool runs, from ``ps -eo args=`` (``php-fpm: pool NAME``)."""
    count: dict[str, int] = {}
    for line in ps_args.splitlines():
        words = line.split()
        if len(words) > 2 and words[:2] == ["php-fpm:", "pool"]:
            count[words[2]] = count.get(words[2], 0) + 1
    return count


def reached(log_lines: Iterable[str], since: float) -> dict[str, int]:
    """How often each pool logged reaching its limit at or after ``since`` (local time, as php-fpm logs).
    pm = dynamic logs 'reached pm.max_children setting', pm = ondemand 'reached max_children setting'."""
    count: dict[str, int] = {}
    for line in log_lines:
        if line.startswith("[") and ("reached pm.max_children" in line or "reached max_children" in line):
            try:
                when = time.mktime(time.strptime(line[1:21], "%d-%b-%Y %H:%M:%S"))
            except ValueError:
                continue
            pool = line.split("[pool ", 1)[-1].split("]", 1)[0]
            if when >= since:
                count[pool] = count.get(pool, 0) + 1
    return count


def saturation(
    limits: Mapping[str, int], busy: Mapping[str, int], hits: Mapping[str, int], minutes: int
) -> tuple[list[str], bool]:
    """A line per pool and the verdict line, and whether no pool is saturated: all its children busy, or
    its limit reached within ``minutes``."""
    lines, full = [], []
    for name, limit in sorted(limits.items()):
        running, logged = busy.get(name, 0), hits.get(name, 0)
        lines.append(f"{name}: {running} of {limit} children, {logged} reached pm.max_children in {minutes} min")
        if running >= limit or logged:
            full.append(name)
    lines.append("saturated: " + ", ".join(full) if full else "no pool saturated")
    return lines, not full


def command_fpm_saturation(pools: str, log: Path, minutes: int) -> int:
    """Exit 0 when no pool of the files ``pools`` (a glob) is saturated, 1 when one is or none sets a limit."""
    limits = {}
    for path in sorted(glob.glob(pools)):
        limit = max_children(Path(path).read_text())
        if limit is not None:
            limits[Path(path).name.removesuffix(".conf")] = limit
    if not limits:
        print(f"no pool in {pools} sets pm.max_children", file=sys.stderr)
        return 1
    ps = subprocess.run(["ps", "-eo", "args="], capture_output=True, text=True, check=False).stdout
    try:
        log_lines = log.read_text(errors="replace").splitlines()[-5000:]
    except OSError:
        log_lines = []
    lines, calm = saturation(limits, children(ps), reached(log_lines, time.time() - minutes * 60), minutes)
    for line in lines:
        print(line)
    return 0 if calm else 1
