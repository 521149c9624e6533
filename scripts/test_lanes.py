#!/usr/bin/env python3
"""`make test` in five lanes: the lab tests on the lab and on two clones of it, everything else beside them.

The lab tests (tests/integration) spend most of their wall time waiting on
hosts: services restarting, probes timing out, drills polling. So they run on
three labs at once: the lab, and from its converge on, two clones of it (see
CLONES). The other layers (lint, unit tests, every role's molecule
scenario) need no lab and fit into that waiting, so they run beside them in two
side lanes (lint and unit; molecule, two scenarios at a time), last on the CPU (SIDE_LANES). The lab lane
streams to the terminal; the others write .lab/logs/test-side.log, test-molecule.log and test-clone*.log, say
on the terminal when each of their layers ends, and are printed in full at the
end. Then one table: each layer, its result, its wall time and how busy the
machine's CPUs were meanwhile (so the next speed-up is chosen by numbers: a lane
that waits leaves cores idle, a lane that computes does not), and the
lab tests' wall time per module (from pytest's JUnit XML), and where the CPU time
went (each layer's processes, the containers by name, the rest). Exit status 1 when any
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
from typing import Any

REPO = Path(__file__).resolve().parent.parent
LOGS = REPO / ".lab" / "logs"
MAKE = ["make", "--no-print-directory"]
# The side lanes at the lowest CPU priority, inherited by all they start: the lab lanes (converge,
# audit, drills) hold the labs' hosts and the clones wait for the lab's converge; the side lanes take what
# the lab lanes leave of the machine's two cores (with three labs, molecule still ended within ~1.5 min
# of them: local CI of 22e4710). (Processes a container runs are in
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
# The side lanes, by name (their logs are test-<name>.log): lint and unit, and molecule. Apart, because the unit
# tests wait more than they compute (1.3 CPU-min in 5.7 min of wall time in a local CI of 48c485e, beside three
# labs): one after the other, molecule started when they ended, 2 min after the lab's converge, and ended last.
SIDE_LANES = (("side", ("lint", "unit")), ("molecule", ("molecule",)))
# Molecule's containers install packages in their own cgroups, where `nice` does not reach: beside the
# lab's converge from bare (six hosts' dpkg on two cores) they slowed it by ~3.5 min (976 s against 763 s
# alone) on the critical path. So molecule waits until the lab lane's converge is over (the integration
# conftest touches this file) or the lab lane ended, at most WAIT_LIMIT s; lint and unit go meanwhile.
CONVERGE_DONE = "converge.done"  # in LOGS
WAITS_FOR_CONVERGE = ("molecule",)
WAIT_LIMIT = 45 * 60
POLL_S = 5.0  # between two looks at what a waiting layer waits for
# The lab tests in three shares, on three labs at once (not with --serial: there `make integration` runs them
# all on one). The lab converges (its pytest session's `converged` fixture), is committed to a snapshot right
# after (~1 min; the fixture writes SNAPSHOT_DONE), and runs every module but the clones' (test_site, the
# converge's own tests, first); meanwhile two clones of it (`make integration-clone CLONE_DIR=...`: each its own
# network namespace and podman store, started from the snapshot) run theirs. A module runs whole on one lab and
# starts from the converged lab, as it does alone. With two labs, the tail of `make test` (the lab lanes alone,
# after molecule) kept the CPUs 77% busy: each lane is a chain of waits (an Ansible run, a host's restart, a
# probe's interval), and a third chain fills them (CI of a7c6eb4: 32.9 min, 59 CPU-min on two cores). The shares
# are sized so that the three lanes end together: the clones' each the lab's after its converge, less the ~5 min
# they wait for the snapshot. The lab keeps what needs it: its converge (test_site), its own life (test_lab),
# the package cache's lab side (test_site_aptcache), the patch test's repository (it listens in the lab's
# network namespace only), and test_site_backup, whose fresh backups the patch test's pre-check finds. The
# package cache reaches each clone through its relay (clone.start_relay).
SNAPSHOT_DONE = "snapshot.done"  # in LOGS
TESTS = REPO / "tests" / "integration"
# Where the clones live: the Makefile's CLONE_DIR's directory (root's, as the lab's store).
CLONES_IN = "/var/tmp"  # noqa: S108 - a fixed place of root's, no file made from a guessable name by others


@dataclass(frozen=True)
class CloneShare:
    """A clone of the lab, where it lives, and the lab test modules it runs."""

    name: str  # its lane's and its logs' name
    dir: str  # CLONE_DIR for make
    modules: tuple[str, ...]

    @property
    def junit(self) -> str:  # in LOGS
        return f"integration-{self.name}.xml"


CLONES = (
    # the responder's loop and the monitoring: waits on scrapes, alerts and their resolution
    CloneShare(
        "clone",
        f"{CLONES_IN}/portalops-lab-clone",
        (
            "test_site_responder",
            "test_site_monitoring",
            "test_site_status",
            "test_site_runbooks_start",
            "test_site_runbooks_firewall",
            "test_site_probe_real",
            "test_site_packages",
            # short ones, for the lanes to end together (local CI of 48c485e: the lab's lane ended 3 min after
            # this clone's)
            "test_site_runbook_lock",
            "test_site_annual_report",
            "test_site_backup_keys",
            "test_site_cmdb",
            "test_site_duty_board",
            "test_site_bastion",
            # the clone reaches its own hosts, never the lab's
            "test_site_isolation",
        ),
    ),
    # the drills and runbooks of data and content, the audit
    CloneShare(
        "clone2",
        f"{CLONES_IN}/portalops-lab-clone2",
        (
            "test_site_backup_retention",
            "test_site_runbooks",
            "test_site_runbooks_db",
            "test_site_runbooks_tamper",
            "test_site_restore_logical",
            "test_site_audit",
            "test_site_inspect",
            "test_site_logs",
        ),
    ),
)
CLONE_MODULES = tuple(module for share in CLONES for module in share.modules)
STAT = Path("/proc/stat")
INTEGRATION_XML = "integration.xml"  # in LOGS: the Makefile's integration target writes it
# In LOGS: one JSON line per lab test, the machine's busy and total CPU jiffies while it ran (setup and
# teardown included), written by tests/integration/conftest.py where PORTALOPS_TEST_CPU_LOG names it. A
# module that is slow with idle CPUs waits (for alerts, polls, timeouts); a busy one computes, in the lab's hosts
# or here (each line has both).
INTEGRATION_CPU = "integration-cpu.jsonl"
# In LOGS: every container's CPU time over the run (the lab's, the clone's, molecule's), from a watcher the
# virtualenv's Python runs (portalops.lab.cpu) once setup made it; with each layer's own processes' CPU time,
# the table of where the machine's CPU time went. With the CPUs busy, only less CPU time shortens `make test`.
CONTAINERS_CPU = "containers-cpu.json"
CPU_WATCH = [str(REPO / ".venv" / "bin" / "python"), "-m", "portalops.lab.cpu"]
TOP_CONTAINERS = 12  # rows of the table; the rest are summed
WIDTH = 64  # of its first column: a clone's container is named with its store


def lab_modules() -> list[str]:
    return sorted(path.stem for path in TESTS.glob("test_*.py"))


def lab_tests(modules: list[str] | tuple[str, ...]) -> str:
    """LAB_TESTS for make: the modules' files."""
    return "LAB_TESTS=" + " ".join(str((TESTS / f"{module}.py").relative_to(REPO)) for module in modules)


@dataclass
class Layer:
    name: str  # the make target
    label: str = ""  # its row in the table, where one target runs more than once
    variables: tuple[str, ...] = ()  # for make: LAB_TESTS=..., LAB_JUNIT=...
    env: dict[str, str] = field(default_factory=dict)
    # Before it starts, asked every few seconds: None: not yet; True: go; False: it cannot run (what it needs failed).
    ready: Callable[[], bool | None] | None = None
    code: int | None = None
    seconds: float = 0.0
    cpu: float | None = None  # the machine's CPUs busy while this layer ran (0..1)
    # CPU seconds of its processes that ended and were waited for (make and all it ran; not containers)
    cpu_s: float | None = None

    @property
    def title(self) -> str:
        return self.label or self.name

    @property
    def result(self) -> str:
        return "not run" if self.code is None else "ok" if self.code == 0 else f"FAILED ({self.code})"


@dataclass
class Lane:
    layers: list[Layer]
    log: Path | None  # None: the terminal
    nice: bool = False  # run at the lowest CPU priority (the side lanes, beside the labs)
    name: str = "beside the lab"  # how its lines on the terminal begin
    key: str = "lab"  # SIDE_LANES' or a clone's name (its log's), "lab": when each lane ended (tail)
    process: subprocess.Popen[bytes] | None = None
    stopped: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, env: dict[str, str]) -> None:
        out = self.log.open("wb") if self.log else None
        try:
            for layer in self.layers:
                if layer.ready and not self.wait(layer, layer.ready):
                    say(f"[{self.name}] {layer.title}: not run (what it needs failed)")
                    continue
                with self.lock:
                    if self.stopped:
                        return
                    make = [*MAKE, layer.name, *layer.variables]
                    # its own session: a lane is stopped with everything it started
                    self.process = subprocess.Popen(
                        [*LOWER_AUTOGROUP, *NICE, *make] if self.nice else make,
                        cwd=REPO,
                        env={**env, **layer.env},
                        stdout=out,
                        stderr=out,
                        start_new_session=True,
                    )
                started, jiffies = time.monotonic(), cpu_jiffies()
                layer.code, layer.cpu_s = wait_counting(self.process)
                layer.seconds = time.monotonic() - started
                layer.cpu = busy_between(jiffies, cpu_jiffies())
                if self.log:
                    say(f"[{self.name}] {layer.title}: {layer.result} in {layer.seconds:.0f} s (log: {self.log})")
        finally:
            if out:
                out.close()

    def wait(self, layer: Layer, ready: Callable[[], bool | None]) -> bool:
        began = time.monotonic()
        say(f"[{self.name}] {layer.title} waits for the lab")
        go = ready()
        while go is None and not self.stopped and time.monotonic() - began < WAIT_LIMIT:
            time.sleep(POLL_S)
            go = ready()
        say(f"[{self.name}] {layer.title} starts after {time.monotonic() - began:.0f} s of waiting")
        return go is not False

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


def wait_counting(process: subprocess.Popen[bytes]) -> tuple[int, float | None]:
    """Its exit status, and the CPU seconds it and every process it waited for used (None when someone else
    waited for it: the lane was stopped)."""
    try:
        _, status, usage = os.wait4(process.pid, 0)
    except ChildProcessError:
        return process.wait(), None
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, usage.ru_utime + usage.ru_stime


def run_first(layers: list[Layer]) -> bool:
    for layer in layers:
        started, jiffies = time.monotonic(), cpu_jiffies()
        layer.code, layer.cpu_s = wait_counting(subprocess.Popen([*MAKE, layer.name], cwd=REPO))
        layer.seconds = time.monotonic() - started
        layer.cpu = busy_between(jiffies, cpu_jiffies())
        if layer.code != 0:
            return False
    return True


def percent(fraction: float | None) -> str:
    return "?" if fraction is None else f"{fraction:.0%}"


def tail(
    ended: dict[str, tuple[float, tuple[int, int] | None]], now: tuple[int, int] | None
) -> tuple[str, float, float | None] | None:
    """Who ran last and alone (the lab lanes, or the side lanes), for how long, and how busy the CPUs were then:
    the lanes' end times and CPU readings by name (SIDE_LANES', "lab" and the clones' names)."""
    side_names = {name for name, _ in SIDE_LANES}
    labs = [mark for name, mark in ended.items() if name not in side_names]
    sides = [mark for name, mark in ended.items() if name in side_names]
    if not sides or not labs:
        return None
    lab_end, side_end = max(labs, key=lambda mark: mark[0]), max(sides, key=lambda mark: mark[0])
    first, last, who = (
        (side_end, lab_end, "the lab lanes alone, after the side lanes ended")
        if lab_end[0] > side_end[0]
        else (lab_end, side_end, "the side lanes alone, after the lab lanes ended")
    )
    return who, last[0] - first[0], busy_between(first[1], last[1] or now)


def table(layers: list[Layer], wall: float, cpu: float | None, alone: tuple[str, float, float | None] | None) -> str:
    rows = [f"{'layer':<22} {'result':<12} {'wall':>8} {'cpu busy':>9}"]
    rows += [f"{x.title:<22} {x.result:<12} {x.seconds / 60:7.1f}m {percent(x.cpu):>9}" for x in layers]
    rows.append(f"{'make test':<22} {'':<12} {wall / 60:7.1f}m {percent(cpu):>9}")
    if alone:
        rows.append(f"({alone[0]}: {alone[1] / 60:.1f}m, cpu busy {percent(alone[2])})")
    return "\n".join(rows)


def cpu_table(layers: list[Layer], busy_s: float | None, watched: dict[str, Any] | None) -> str:
    """Where the machine's busy CPU time went: each layer's own processes, the containers (the most costly by
    name, a clone's with its store), and the rest (processes no layer waited for: SSH masters, this script's)."""
    rows = [f"{'where the CPU time went':<{WIDTH}} {'CPU-min':>8} {'share':>6}"]

    def row(what: str, seconds: float | None, share: bool = True) -> None:
        of = f"{seconds / busy_s:.0%}" if share and seconds is not None and busy_s else ""
        rows.append(f"{what:<{WIDTH}} {'?' if seconds is None else f'{seconds / 60:.1f}':>8} {of:>6}")

    for layer in layers:
        row(f"{layer.title}: its processes", layer.cpu_s)
    containers = watched.get("containers_cpu_s") if watched else None
    row("containers (the labs' hosts, molecule's instances)", containers)
    listed = list((watched or {}).get("containers", []))
    for found in listed[:TOP_CONTAINERS]:
        where = f" in {found['store']}" if found.get("store") else ""
        row(f"  {found['name']}{where}", float(found["cpu_s"]), share=False)
    conmon = (watched or {}).get("conmon_cpu_s")
    if conmon is not None:
        row("  conmon (podman's monitors of containers and exec sessions)", float(conmon), share=False)
    if containers is not None and listed:
        more = len(listed) - TOP_CONTAINERS
        row(
            f"  {f'{more} more, and ' if more > 0 else ''}time after a removed one's last look",
            containers - sum(float(c["cpu_s"]) for c in listed[:TOP_CONTAINERS]) - float(conmon or 0.0),
            share=False,
        )
    counted = [x.cpu_s for x in layers] + [containers]
    rest = None if busy_s is None or None in counted else busy_s - sum(x or 0.0 for x in counted)
    row("the rest (processes no layer waited for)", rest)
    row("the machine's CPUs busy", busy_s)
    if watched is None:
        rows.append(f"(no container CPU time: {LOGS / CONTAINERS_CPU} was not written)")
    return "\n".join(rows)


def busy_seconds(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """CPU seconds the machine was busy between two readings of cpu_jiffies (over all its CPUs)."""
    if before is None or after is None:
        return None
    return (after[0] - before[0]) / os.sysconf("SC_CLK_TCK")


def by_module(*junits: Path) -> list[tuple[str, float, int]]:
    """Seconds (setup, call and teardown) and tests per test module, slowest first, from pytest's JUnit XML
    (one file per pytest session)."""
    totals: dict[str, tuple[float, int]] = {}
    cases = [case for junit in junits for case in ET.parse(junit).getroot().iter("testcase")]  # noqa: S314 - this run's
    for case in cases:
        parts = case.get("classname", "").split(".")
        module = ".".join(parts[: next((i + 1 for i, p in enumerate(parts) if p.startswith("test_")), len(parts))])
        seconds, count = totals.get(module, (0.0, 0))
        totals[module] = (seconds + float(case.get("time") or 0), count + 1)
    return sorted(((m, s, n) for m, (s, n) in totals.items()), key=lambda row: -row[1])


@dataclass
class ModuleCpu:
    """What a lab test module's tests used while they ran (setup and teardown included), from INTEGRATION_CPU."""

    busy: int = 0  # the machine's busy jiffies
    total: int = 0  # all its jiffies
    hosts_s: float | None = None  # CPU seconds in the lab's hosts (the lab's, or the clone's)
    ours_s: float | None = None  # CPU seconds of what the tests ran here (Ansible, runbooks, podman)

    @property
    def share(self) -> float | None:
        """The machine's share of busy CPU."""
        return self.busy / self.total if self.total > 0 else None


def cpu_by_module(log: Path) -> dict[str, ModuleCpu]:
    """Each module's use of CPU while its tests ran, from the lab tests' CPU log (INTEGRATION_CPU)."""
    modules: dict[str, ModuleCpu] = {}
    try:
        lines = log.read_text().splitlines()
    except OSError:
        return {}
    for line in lines:
        try:
            record = json.loads(line)
            module, busy, total = str(record["module"]), int(record["busy"]), int(record["total"])
            hosts = sum(float(s) for s in record["hosts_cpu_s"].values()) if "hosts_cpu_s" in record else None
            ours = float(record["ours_cpu_s"]) if "ours_cpu_s" in record else None
        except (ValueError, KeyError, TypeError, AttributeError):
            continue  # a line cut short by a killed run counts for nothing
        found = modules.setdefault(module, ModuleCpu())
        found.busy, found.total = found.busy + busy, found.total + total
        if hosts is not None:
            found.hosts_s = (found.hosts_s or 0.0) + hosts
        if ours is not None:
            found.ours_s = (found.ours_s or 0.0) + ours
    return modules


def minutes(seconds: float | None) -> str:
    return "?" if seconds is None else f"{seconds / 60:.1f}m"


def module_table(junits: Path | list[Path], cpu_log: Path | None = None) -> str:
    """Per lab test module, slowest first: tests, wall time, the machine's share of busy CPU, and the CPU time
    of the lab's hosts and of what the tests ran here: where the lab tests' CPU time goes."""
    try:
        rows = by_module(*(junits if isinstance(junits, list) else [junits]))
    except (OSError, ET.ParseError) as error:
        return f"(no time per lab test module: {error})"
    cpu = cpu_by_module(cpu_log) if cpu_log else {}
    lines = [f"{'lab test module':<48} {'tests':>5} {'wall':>8} {'cpu busy':>9} {'host CPU':>9} {'our CPU':>9}"]
    for module, seconds, count in rows:
        used = cpu.get(module, ModuleCpu())
        lines.append(
            f"{module.removeprefix('tests.integration.'):<48} {count:>5} {seconds / 60:7.1f}m"
            f" {percent(used.share):>9} {minutes(used.hosts_s):>9} {minutes(used.ours_s):>9}"
        )
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
    sides = [
        Lane(
            [Layer(layer) for layer in names],
            log=None if args.serial else LOGS / f"test-{name}.log",
            nice=not args.serial,
            key=name,
        )
        for name, names in SIDE_LANES
    ]
    lab_done = threading.Event()  # the lab lane ended
    lab, clones = lab_lanes(args.serial, lab_done)
    lanes = [*sides, lab, *clones]
    layers = [*first, *(layer for lane in lanes for layer in lane.layers)]
    at_start = cpu_jiffies()
    alone: tuple[str, float, float | None] | None = None
    watcher: subprocess.Popen[bytes] | None = None
    if run_first(first):
        LOGS.mkdir(parents=True, exist_ok=True)
        (LOGS / CONTAINERS_CPU).unlink(missing_ok=True)
        watcher = start_watch(LOGS / CONTAINERS_CPU)
        converge_done = LOGS / CONVERGE_DONE
        converge_done.unlink(missing_ok=True)
        # this run's files only: none left from an earlier one
        for name in (INTEGRATION_XML, *(share.junit for share in CLONES), INTEGRATION_CPU, SNAPSHOT_DONE):
            (LOGS / name).unlink(missing_ok=True)
        for layer in (layer for side in sides for layer in side.layers):  # with --serial: before the lab lane
            if layer.name in WAITS_FOR_CONVERGE and not args.serial:
                layer.ready = lambda: True if converge_done.exists() or lab_done.is_set() else None
        env = {
            **os.environ,
            # Two at a time beside the lab too: one scenario alone uses about one core (its controller and its
            # containers take turns), and the lab lane, first on the CPU, leaves one or both idle while it waits.
            "MOLECULE_JOBS": "2",
            "PORTALOPS_CONVERGE_DONE": str(converge_done),
            "PORTALOPS_SNAPSHOT_DONE": str(LOGS / SNAPSHOT_DONE),
            "PORTALOPS_TEST_CPU_LOG": str(LOGS / INTEGRATION_CPU),
        }
        if args.serial:  # no clone: no snapshot, whatever the environment we were started in says
            del env["PORTALOPS_SNAPSHOT_DONE"]
        try:
            if args.serial:
                for lane in lanes:
                    lane.run(env)
            else:
                ended: dict[str, tuple[float, tuple[int, int] | None]] = {}

                def run_and_mark(lane: Lane) -> None:
                    lane.run(env)
                    ended[lane.key] = (time.monotonic(), cpu_jiffies())

                threads = [
                    threading.Thread(target=run_and_mark, args=(lane,), daemon=True) for lane in [*sides, *clones]
                ]
                for thread in threads:
                    thread.start()
                try:
                    run_and_mark(lab)
                finally:
                    lab_done.set()
                for thread in threads:
                    thread.join()
                alone = tail(ended, cpu_jiffies())
        finally:
            # Ctrl-C, or CI's SIGTERM (made a SystemExit by terminate): the lanes stop with us.
            for lane in lanes:
                lane.stop()
        if (LOGS / SNAPSHOT_DONE).exists():
            # the snapshot's images (GBs), now that the clones that ran from them are gone
            subprocess.run([*MAKE, "lab-snapshot-remove"], cwd=REPO, env=env, check=False)
        for lane in lanes:
            if lane.log and lane.log.exists():  # a lane wrote a log only beside the lab
                say(f"--- the layers {lane.name} ({lane.log}) ---")
                sys.stdout.write(lane.log.read_text(errors="replace"))
    at_end = cpu_jiffies()
    watched = stop_watch(watcher, LOGS / CONTAINERS_CPU) if watcher else None
    xml = (INTEGRATION_XML, *(share.junit for share in CLONES))
    junits = [LOGS / name for name in xml if (LOGS / name).exists()]
    if junits:
        say(module_table(junits, LOGS / INTEGRATION_CPU))
    say(table(layers, time.monotonic() - began, busy_between(at_start, at_end), alone))
    say(cpu_table(layers, busy_seconds(at_start, at_end), watched))
    return 0 if all(x.code == 0 for x in layers) else 1


def start_watch(out: Path) -> subprocess.Popen[bytes] | None:
    """The watcher of every container's CPU time (CPU_WATCH), writing ``out`` when stopped; None if it cannot start."""
    try:
        # --parent: it ends with us, even when we are killed without a chance to stop it
        return subprocess.Popen(
            [*CPU_WATCH, str(out), "--parent", str(os.getpid())], cwd=REPO, stdin=subprocess.DEVNULL
        )
    except OSError as error:
        say(f"(no container CPU time: {error})")
        return None


def stop_watch(watcher: subprocess.Popen[bytes], out: Path) -> dict[str, Any] | None:
    """Its report, once it wrote it on SIGTERM (None if it did not within 30 s, or failed)."""
    watcher.terminate()
    try:
        watcher.wait(timeout=30)
        report = json.loads(out.read_text())
    except (subprocess.TimeoutExpired, OSError, ValueError):
        watcher.kill()
        return None
    return report if isinstance(report, dict) else None


def snapshot_taken(done: Path, lab_done: threading.Event) -> bool | None:
    """The clone's ``ready``: go once the lab's snapshot is taken; not at all when it was not (the file says
    why), or when the lab lane ended without a word; None (wait) until then. An empty file is one being
    written: a local CI run read it between its creation and its text, and ran no clone."""
    try:
        said = done.read_text().strip()
    except OSError:
        said = ""
    if not said:
        return False if lab_done.is_set() else None
    if said != "ok":
        say(f"[on the clone] the lab's snapshot: {said}")
    return said == "ok"


def lab_lanes(serial: bool, lab_done: threading.Event) -> tuple[Lane, list[Lane]]:
    """The lab lane, and a lane for each clone beside it (none with --serial: all lab tests on the lab)."""
    if serial:
        return Lane([Layer("integration")], log=None), []
    lab = Lane(
        [
            Layer(
                "integration",
                label="integration: lab",
                variables=(
                    lab_tests([m for m in lab_modules() if m not in CLONE_MODULES]),
                    f"LAB_JUNIT={LOGS / INTEGRATION_XML}",
                ),
            )
        ],
        log=None,
    )
    clones = [
        Lane(
            [
                Layer(
                    "integration-clone",
                    label=f"integration: {share.name}",
                    variables=(lab_tests(share.modules), f"LAB_JUNIT={LOGS / share.junit}", f"CLONE_DIR={share.dir}"),
                    env={"PORTALOPS_LAB_CONVERGED": "1"},
                    ready=lambda: snapshot_taken(LOGS / SNAPSHOT_DONE, lab_done),
                )
            ],
            log=LOGS / f"test-{share.name}.log",
            name=f"on the {share.name}",
            key=share.name,
        )
        for share in CLONES
    ]
    return lab, clones


if __name__ == "__main__":
    sys.exit(main())
