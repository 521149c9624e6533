#!/usr/bin/env python3
"""`make bench-lanes`: does `make test`'s side lane yield the CPU to the lab lane?

Two contests on this machine's cores, each between two equal CPU burners (one busy loop per core,
BURN_S seconds) started as `make test` starts its lanes, printing the CPU seconds each got and their
ratio; the baseline is the same contest measured in the same run with the setting under test left out:

1. Sessions: the lab lane's way (a session of its own, nice 0) against the side lane's way
   (test_lanes: a session of its own at `nice -n 19`, its autogroup at nice 10), baseline `nice -n 19` only.
2. Containers: a lab container (`--cpu-shares` as `portalops lab up` gives it) against a container as
   molecule starts one (no setting), baseline two containers without the setting.

The lab lane should get most of the CPU in each contest, and about half in each baseline.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from portalops.lab.config import CPU_SHARES
from portalops.lab.image import STABLE_TAG

REPO = Path(__file__).resolve().parent.parent
# test_lanes is a script (it runs before the virtualenv exists), loaded from its file as `make test` runs it.
_SPEC = importlib.util.spec_from_file_location("test_lanes", REPO / "scripts" / "test_lanes.py")
if _SPEC is None or _SPEC.loader is None:
    sys.exit("bench-lanes: scripts/test_lanes.py is missing")
test_lanes = sys.modules["test_lanes"] = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(test_lanes)

BURN_S = 8
CORES = os.cpu_count() or 1
# The burners' CPU seconds as bash's `times` prints them (its last line: the children's user and system
# time, e.g. "0m7.912s 0m0.020s"); in the shell itself, not in a pipe's subshell, which has no children.
BURN = f"for i in $(seq {CORES}); do timeout {BURN_S} sh -c 'while :; do :; done' & done; wait; times"
ENV = {**os.environ, "CONTAINERS_CONF": str(REPO / "lab" / "containers.conf")}


def burn(argv: list[str]) -> float:
    """CPU seconds the burners of ``argv`` got; in a session of their own, as test_lanes starts a lane."""
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=ENV, start_new_session=True)
    out, _ = process.communicate(timeout=BURN_S * 10)
    if process.returncode != 0:
        sys.exit(f"bench-lanes: {' '.join(argv[:6])} ... exited {process.returncode}")
    return sum(seconds(word) for word in out.strip().splitlines()[-1].split())


def seconds(times: str) -> float:
    """'1m7.912s' -> 67.912"""
    minutes, _, rest = times.rstrip("s").partition("m")
    return int(minutes) * 60 + float(rest)


def contest(lab: list[str], side: list[str]) -> tuple[float, float]:
    with ThreadPoolExecutor(max_workers=2) as pool:
        got_lab = pool.submit(burn, lab)
        got_side = pool.submit(burn, side)
        return got_lab.result(), got_side.result()


def container(name: str, *options: str) -> list[str]:
    return ["podman", "run", "--rm", "--name", name, *options, STABLE_TAG, "bash", "-c", BURN]


def share(lab: float, side: float) -> float:
    return lab / (lab + side) if lab + side else 0.0


def line(what: str, lab: float, side: float) -> str:
    return f"{what:<44} lab {lab:6.1f} s  side {side:6.1f} s  lab's share {share(lab, side):4.0%}"


def main() -> int:
    shell = ["bash", "-c", BURN]
    print(f"bench-lanes: {CORES} cores, {BURN_S} s of busy loops per contest")
    base = contest(shell, [*test_lanes.NICE, *shell])
    ours = contest(shell, [*test_lanes.LOWER_AUTOGROUP, *test_lanes.NICE, *shell])
    print(line("sessions, side at nice 19 only (baseline)", *base))
    print(line("sessions, side at nice 19 + autogroup 10", *ours))
    for name in ("bench-lanes-lab", "bench-lanes-side"):
        subprocess.run(["podman", "rm", "-f", "-t", "0", name], env=ENV, capture_output=True, check=False)
    started = time.monotonic()
    base_c = contest(container("bench-lanes-lab"), container("bench-lanes-side"))
    ours_c = contest(container("bench-lanes-lab", "--cpu-shares", str(CPU_SHARES)), container("bench-lanes-side"))
    print(line("containers, no shares (baseline)", *base_c))
    print(line(f"containers, lab at --cpu-shares {CPU_SHARES}", *ours_c))
    sessions, containers = share(*ours) / share(*base), share(*ours_c) / share(*base_c)
    print(f"lab lane's CPU share against the baseline: sessions x{sessions:.2f}, containers x{containers:.2f}")
    print(f"(containers measured in {time.monotonic() - started:.0f} s, image {STABLE_TAG})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
