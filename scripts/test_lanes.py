#!/usr/bin/env python3
"""`make test` in two lanes: the lab tests in one, everything else beside them.

The lab tests (tests/integration) spend most of their wall time waiting on
hosts: services restarting, probes timing out, drills polling. The other
layers (lint, unit tests, every role's molecule scenario) need no lab and fit
into that waiting, so they run beside it in a second lane (two scenarios at a
time), second on the CPU. The lab lane streams to the terminal; the side lane writes
.lab/logs/test-side.log, says on the terminal when each of its layers ends, and
is printed in full at the end. Then one table: each layer, its result, its wall
time and how busy the machine's CPUs were meanwhile (so the next speed-up is chosen by
numbers: a lane that waits leaves cores idle, a lane that computes does not), and the
lab tests' wall time per module (from pytest's JUnit XML). Exit status 1 when any
layer failed; every layer runs even when another failed, so one CI run names every
failure.

Standard library only: it starts before the virtualenv exists (`make setup` is
its first layer). Usage: scripts/test_lanes.py [--serial]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOGS = REPO / ".lab" / "logs"
MAKE = ["make", "--no-print-directory"]
# The side lane at the lowest CPU priority, inherited by all it starts: the lab lane (converge,
# audit, drills) is the critical path of `make test`, the side lane has ~40 min of slack and
# takes what the lab lane leaves of the machine's two cores. (Processes a container runs are in
# that container's cgroup, where the nice value weighs only against the container's own.)
NICE = ["nice", "-n", "19"]
# Each lane is a session of its own, and with the kernel's autogroup scheduling (Debian's default,
# /proc/sys/kernel/sched_autogroup_enabled = 1) the CPU is shared between sessions first: a nice value
# then weighs only against processes of the same session, and `nice -n 19` alone gave the side lane
# as much CPU as the lab lane. The session's autogroup gets a nice value too (sched(7)), by the
# lane's first process itself before it execs (where the kernel has no autogroups, nothing to do):
# 10, not 19, so that the side lane still gets about a tenth of a CPU the lab lane fills (weight 110
# against 1024; at 19, 15 against 1024) and no unit test or molecule connection times out meanwhile.
LOWER_AUTOGROUP = ["sh", "-c", '{ echo 10 > /proc/self/autogroup; } 2>/dev/null; exec "$@"', "lower-autogroup"]

# The layers; each is a make target that works alone (`make lint`, ...).
FIRST = ("setup", "lab-image")  # before the lanes: both lanes need the venv and the image
LAB_LANE = ("integration",)
SIDE_LANE = ("lint", "unit", "molecule")
# Molecule's containers install packages in their own cgroups, where `nice` does not reach: beside the
# lab's converge from bare (six hosts' dpkg on two cores) they slowed it by ~3.5 min (976 s against 763 s
# alone) on the critical path. So molecule waits until the lab lane's converge is over (the integration
# conftest touches this file) or the lab lane ended, at most WAIT_LIMIT s; lint and unit go first.
CONVERGE_DONE = "converge.done"  # in LOGS
WAITS_FOR_CONVERGE = ("molecule",)
WAIT_LIMIT = 45 * 60
STAT = Path("/proc/stat")
INTEGRATION_XML = "integration.xml"  # in LOGS: the Makefile's integration target writes it
# In LOGS: one JSON line per lab test, the machine's busy and total CPU jiffies while it ran (setup and
# teardown included), written by tests/integration/conftest.py where PORTALOPS_TEST_CPU_LOG names it. A
# module that is slow with idle CPUs waits (for alerts, polls, timeouts); a busy one computes.
INTEGRATION_CPU = "integration-cpu.jsonl"


@dataclass
class Layer:
    name: str
    code: int | None = None
    seconds: float = 0.0
    cpu: float | None = None  # the machine's CPUs busy while this layer ran (0..1)

    @property
    def result(self) -> str:
        return "not run" if self.code is None else "ok" if self.code == 0 else f"FAILED ({self.code})"


@dataclass
class Lane:
    layers: list[Layer]
    log: Path | None  # None: the terminal
    nice: bool = False  # run at the lowest CPU priority (the side lane, beside the lab)
    wait_for: Callable[[], bool] | None = None  # before a WAITS_FOR_CONVERGE layer: True once it may start
    process: subprocess.Popen[bytes] | None = None
    stopped: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, env: dict[str, str]) -> None:
        out = self.log.open("wb") if self.log else None
        try:
            for layer in self.layers:
                if self.wait_for and layer.name in WAITS_FOR_CONVERGE:
                    self.wait(layer.name, self.wait_for)
                with self.lock:
                    if self.stopped:
                        return
                    # its own session: a lane is stopped with everything it started
                    self.process = subprocess.Popen(
                        [*LOWER_AUTOGROUP, *NICE, *MAKE, layer.name] if self.nice else [*MAKE, layer.name],
                        cwd=REPO,
                        env=env,
                        stdout=out,
                        stderr=out,
                        start_new_session=True,
                    )
                started, jiffies = time.monotonic(), cpu_jiffies()
                layer.code = self.process.wait()
                layer.seconds = time.monotonic() - started
                layer.cpu = busy_between(jiffies, cpu_jiffies())
                if self.log:
                    say(f"[beside the lab] {layer.name}: {layer.result} in {layer.seconds:.0f} s (log: {self.log})")
        finally:
            if out:
                out.close()

    def wait(self, name: str, ready: Callable[[], bool]) -> None:
        began = time.monotonic()
        say(f"[beside the lab] {name} waits for the lab's converge")
        while not self.stopped and not ready() and time.monotonic() - began < WAIT_LIMIT:
            time.sleep(5)
        say(f"[beside the lab] {name} starts after {time.monotonic() - began:.0f} s of waiting")

    def stop(self) -> None:
        with self.lock:
            self.stopped = True
            if self.process and self.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
                    os.killpg(self.process.pid, signal.SIGTERM)


def say(line: str) -> None:
    # on a line of its own, even in the middle of pytest's row of dots
    sys.stdout.write(f"\n{line}\n")
    sys.stdout.flush()


def cpu_jiffies(stat: Path = STAT) -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat; None where there is none."""
    try:
        first = stat.read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    # user nice system idle iowait irq softirq steal (guest time is counted in user already)
    ticks = [int(x) for x in first[1:9]]
    idle = sum(ticks[3:5])
    return sum(ticks) - idle, sum(ticks)


def busy_between(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """The fraction of CPU time that was busy between two readings of cpu_jiffies."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


def run_first(layers: list[Layer]) -> bool:
    for layer in layers:
        started, jiffies = time.monotonic(), cpu_jiffies()
        layer.code = subprocess.run([*MAKE, layer.name], cwd=REPO, check=False).returncode
        layer.seconds = time.monotonic() - started
        layer.cpu = busy_between(jiffies, cpu_jiffies())
        if layer.code != 0:
            return False
    return True


def percent(fraction: float | None) -> str:
    return "?" if fraction is None else f"{fraction:.0%}"


def table(layers: list[Layer], wall: float, cpu: float | None, alone: tuple[float, float | None] | None) -> str:
    rows = [f"{'layer':<12} {'result':<12} {'wall':>8} {'cpu busy':>9}"]
    rows += [f"{x.name:<12} {x.result:<12} {x.seconds / 60:7.1f}m {percent(x.cpu):>9}" for x in layers]
    rows.append(f"{'make test':<12} {'':<12} {wall / 60:7.1f}m {percent(cpu):>9}")
    if alone:
        rows.append(
            f"(the lab lane alone, after the side lane ended: {alone[0] / 60:.1f}m, cpu busy {percent(alone[1])})"
        )
    return "\n".join(rows)


def by_module(junit: Path) -> list[tuple[str, float, int]]:
    """Seconds (setup, call and teardown) and tests per test module, slowest first, from pytest's JUnit XML."""
    totals: dict[str, tuple[float, int]] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):  # noqa: S314 - pytest's own file of this run
        parts = case.get("classname", "").split(".")
        module = ".".join(parts[: next((i + 1 for i, p in enumerate(parts) if p.startswith("test_")), len(parts))])
        seconds, count = totals.get(module, (0.0, 0))
        totals[module] = (seconds + float(case.get("time") or 0), count + 1)
    return sorted(((m, s, n) for m, (s, n) in totals.items()), key=lambda row: -row[1])


def cpu_by_module(log: Path) -> dict[str, float]:
    """Each module's share of busy CPU while its tests ran, from the lab tests' CPU log (INTEGRATION_CPU)."""
    jiffies: dict[str, tuple[int, int]] = {}
    try:
        lines = log.read_text().splitlines()
    except OSError:
        return {}
    for line in lines:
        try:
            record = json.loads(line)
            module, busy, total = str(record["module"]), int(record["busy"]), int(record["total"])
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by a killed run counts for nothing
        was = jiffies.get(module, (0, 0))
        jiffies[module] = (was[0] + busy, was[1] + total)
    return {module: busy / total for module, (busy, total) in jiffies.items() if total > 0}


def module_table(junit: Path, cpu_log: Path | None = None) -> str:
    try:
        rows = by_module(junit)
    except (OSError, ET.ParseError) as error:
        return f"(no time per lab test module: {error})"
    cpu = cpu_by_module(cpu_log) if cpu_log else {}
    lines = [f"{'lab test module':<48} {'tests':>5} {'wall':>8} {'cpu busy':>9}"]
    lines += [
        f"{module.removeprefix('tests.integration.'):<48} {count:>5} {seconds / 60:7.1f}m {percent(cpu.get(module)):>9}"
        for module, seconds, count in rows
    ]
    return "\n".join(lines)


def terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> int:
    signal.signal(signal.SIGTERM, terminate)
    # Started in the background by a shell without job control, we would inherit SIGINT and SIGQUIT
    # ignored and pass that on to every test; tests that interrupt a child would then see it live on.
    # A handler (not an ignore) is reset to the default in each child at exec.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGQUIT, terminate)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serial", action="store_true", help="one layer after the other, all on the terminal")
    args = parser.parse_args()
    began = time.monotonic()
    first = [Layer(name) for name in FIRST]
    lab = Lane([Layer(name) for name in LAB_LANE], log=None)
    side = Lane(
        [Layer(name) for name in SIDE_LANE],
        log=None if args.serial else LOGS / "test-side.log",
        nice=not args.serial,
    )
    layers = [*first, *side.layers, *lab.layers]
    at_start = cpu_jiffies()
    alone: tuple[float, float | None] | None = None
    if run_first(first):
        LOGS.mkdir(parents=True, exist_ok=True)
        converge_done = LOGS / CONVERGE_DONE
        converge_done.unlink(missing_ok=True)
        (LOGS / INTEGRATION_XML).unlink(missing_ok=True)  # a table of this run's lab tests only
        (LOGS / INTEGRATION_CPU).unlink(missing_ok=True)
        env = {
            **os.environ,
            # Two at a time beside the lab too: one scenario alone uses about one core (its controller and its
            # containers take turns), and the lab lane, first on the CPU, leaves one or both idle while it waits.
            "MOLECULE_JOBS": "2",
            "PORTALOPS_CONVERGE_DONE": str(converge_done),
            "PORTALOPS_TEST_CPU_LOG": str(LOGS / INTEGRATION_CPU),
        }
        try:
            if args.serial:
                side.run(env)
                lab.run(env)
            else:
                lab_thread_done = threading.Event()
                side.wait_for = lambda: converge_done.exists() or lab_thread_done.is_set()
                side_ended: list[tuple[float, tuple[int, int] | None]] = []

                def side_then_mark() -> None:
                    side.run(env)
                    side_ended.append((time.monotonic(), cpu_jiffies()))

                beside = threading.Thread(target=side_then_mark, daemon=True)
                beside.start()
                try:
                    lab.run(env)
                finally:
                    lab_thread_done.set()
                beside.join()
                if side_ended and (lab_ended := time.monotonic()) > side_ended[0][0]:
                    alone = (lab_ended - side_ended[0][0], busy_between(side_ended[0][1], cpu_jiffies()))
        finally:
            # Ctrl-C, or CI's SIGTERM (made a SystemExit by terminate): the lanes stop with us.
            side.stop()
            lab.stop()
        if side.log and side.log.exists():  # the side lane wrote a log only beside the lab
            say(f"--- the layers beside the lab ({side.log}) ---")
            sys.stdout.write(side.log.read_text(errors="replace"))
    if (LOGS / INTEGRATION_XML).exists() and lab.layers[0].code is not None:
        say(module_table(LOGS / INTEGRATION_XML, LOGS / INTEGRATION_CPU))
    say(table(layers, time.monotonic() - began, busy_between(at_start, cpu_jiffies()), alone))
    return 0 if all(x.code == 0 for x in layers) else 1


if __name__ == "__main__":
    sys.exit(main())
