#!/usr/bin/env python3
"""Run every role's molecule scenario, a few at a time, and say which failed.

Each scenario's full output goes to .lab/logs/molecule-<role>.log; the
terminal shows one line per role (result, seconds), the tail of each
failed log, and a table of the seconds each role spent in each stage
(create, converge, idempotence, ...), so the next speed-up is chosen by
numbers. Exit status 1 when any scenario failed.
Usage: scripts/molecule_all.py [--jobs N] [ROLE...]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from portalops.lab import aptcache

REPO = Path(__file__).resolve().parent.parent

LOGS = REPO / ".lab" / "logs"

# Molecule's line as a stage starts (colours aside): "INFO     default ➜ converge: Executing" on a terminal
# like this machine's, "INFO     [default > converge] Executing" where there is none (`make test` under CI).
STAGE = re.compile(r"(?:➜ |\[\S+ > )(?P<stage>[a-z_]+)[:\]] Executing$")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
# The table's columns, in molecule's order (a stage not named here gets a column after them); a stage run
# twice (destroy) is summed.
STAGES = ("destroy", "create", "prepare", "converge", "idempotence", "check", "side_effect", "verify")
# The order the scenarios start in: the longest first (the "all stages" seconds of a local make test, 617c91d),
# so that the lane ends on short ones instead of a long one running alone after the lab tests (1.3 min at 27%
# CPU there). A role not named here starts last.
LONGEST_FIRST = (
    "monitoring",
    "restore_drill",
    "nginx_portal",
    "backup_repository",
    "exporters",
    "hardening",
    "base",
    "central_logs",
    "logrotate",
    "mariadb",
    "wordpress",
    "patching",
)


def start_order(roles: Iterable[Path]) -> list[Path]:
    """LONGEST_FIRST's roles in its order, then any other, by name."""
    ranked = {name: rank for rank, name in enumerate(LONGEST_FIRST)}
    return sorted(roles, key=lambda role: (ranked.get(role.name, len(ranked)), role.name))


def stage_seconds(marks: list[tuple[float, str]], end: float) -> dict[str, float]:
    """Seconds per stage from (time, line) pairs of molecule's output: a stage lasts until the next one starts."""
    starts = [(t, m["stage"]) for t, line in marks if (m := STAGE.search(ANSI.sub("", line).rstrip()))]
    seconds: dict[str, float] = {}
    for (started, stage), ended in zip(starts, [t for t, _ in starts[1:]] + [end], strict=False):
        seconds[stage] = seconds.get(stage, 0.0) + ended - started
    return seconds


def stage_table(rows: list[tuple[str, dict[str, float]]]) -> str:
    """One row per role, one column per stage (seconds), and a total row: where molecule's time goes."""
    stages = [*STAGES, *sorted({s for _, seconds in rows for s in seconds} - set(STAGES))]
    lines = [f"{'seconds':<18}" + "".join(f"{s:>12}" for s in stages)]
    for name, seconds in rows:
        lines.append(f"{name:<18}" + "".join(f"{seconds.get(s, 0):>12.0f}" for s in stages))
    total = {s: sum(seconds.get(s, 0) for _, seconds in rows) for s in stages}
    lines.append(f"{'all roles':<18}" + "".join(f"{total[s]:>12.0f}" for s in stages))
    return "\n".join(lines)


def run(role: Path) -> tuple[str, int, float, dict[str, float]]:
    log = LOGS / f"molecule-{role.name}.log"
    started = time.monotonic()
    marks: list[tuple[float, str]] = []
    # Line-buffered: `tail -f` on a role's log shows molecule's progress as it comes.
    with log.open("w", buffering=1) as out:
        proc = subprocess.Popen(
            ["molecule", "test"],
            cwd=role,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        for line in proc.stdout or ():
            out.write(line)
            if "Executing" in line:
                marks.append((time.monotonic(), line))
        code = proc.wait()
    ended = time.monotonic()
    seconds = ended - started
    print(f"molecule {role.name:<14} {'ok' if code == 0 else 'FAILED':<7} {seconds:6.0f} s  ({log})", flush=True)
    return role.name, code, seconds, stage_seconds(marks, ended)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("roles", nargs="*")
    args = parser.parse_args()
    LOGS.mkdir(parents=True, exist_ok=True)
    roles = start_order(p.parents[2] for p in (REPO / "roles").glob("*/molecule/default/molecule.yml"))
    if args.roles:
        roles = [r for r in roles if r.name in args.roles]
    if not roles:
        print("molecule-all: no scenario to run", file=sys.stderr)
        return 1
    if not aptcache.answers():
        print("molecule-all: the package cache does not answer; every instance downloads from the mirror", flush=True)
    offset = aptcache.log_size()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(run, roles))
    failed = [name for name, code, _, _ in results if code != 0]
    for name in failed:
        tail = (LOGS / f"molecule-{name}.log").read_text(errors="replace").splitlines()[-40:]
        print(f"\n--- molecule {name}: last lines ---\n" + "\n".join(tail), file=sys.stderr)
    print(stage_table([(name, stages) for name, _, _, stages in results]))
    print(f"molecule: {len(results) - len(failed)} passed, {len(failed)} failed")
    print(f"package cache: {aptcache.traffic_since(offset).describe()}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
