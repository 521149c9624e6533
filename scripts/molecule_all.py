#!/usr/bin/env python3
"""Run every role's molecule scenario, a few at a time, and say which failed.

Each scenario's full output goes to .lab/logs/molecule-<role>.log; the
terminal shows one line per role (result, seconds) and the tail of each
failed log. Exit status 1 when any scenario failed.
Usage: scripts/molecule_all.py [--jobs N] [ROLE...]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from portalops.lab import aptcache

REPO = Path(__file__).resolve().parent.parent

LOGS = REPO / ".lab" / "logs"


def run(role: Path) -> tuple[str, int, float]:
    log = LOGS / f"molecule-{role.name}.log"
    started = time.monotonic()
    with log.open("w") as out:
        code = subprocess.run(
            ["molecule", "test"], cwd=role, stdout=out, stderr=subprocess.STDOUT, check=False
        ).returncode
    seconds = time.monotonic() - started
    print(f"molecule {role.name:<14} {'ok' if code == 0 else 'FAILED':<7} {seconds:6.0f} s  ({log})", flush=True)
    return role.name, code, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("roles", nargs="*")
    args = parser.parse_args()
    LOGS.mkdir(parents=True, exist_ok=True)
    roles = sorted(p.parents[2] for p in (REPO / "roles").glob("*/molecule/default/molecule.yml"))
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
    failed = [name for name, code, _ in results if code != 0]
    for name in failed:
        tail = (LOGS / f"molecule-{name}.log").read_text(errors="replace").splitlines()[-40:]
        print(f"\n--- molecule {name}: last lines ---\n" + "\n".join(tail), file=sys.stderr)
    print(f"molecule: {len(results) - len(failed)} passed, {len(failed)} failed")
    print(f"package cache: {aptcache.traffic_since(offset).describe()}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
