"""CPU time counted where it is spent while the lab works: the controller's processes and each lab host.

A step that is slow with cores to spare waits (on the network, a timeout, a poll); one that keeps every core
busy computes, and only less work or more cores shorten it. ``floor_s``, the step's CPU time spread over
every core of the machine, is the shortest it could take here however it were scheduled: a wall-time target
below it cannot be met by waiting less.

The controller's share is this process's waited-for children (``ansible-playbook`` and all it runs: SSH,
Mitogen's brokers); each host's is its container's cgroup (cgroup v2 ``cpu.stat`` or v1 ``cpuacct.usage``),
found through ``podman inspect``'s JSON.

For a whole `make test` (scripts/test_lanes.py), ``python -m portalops.lab.cpu OUT`` watches every container on the
machine until SIGTERM, in any podman store (the lab's, a clone's, molecule's instances), named by their conmon.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import threading
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from portalops.lab.podman import Podman

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_cpu_seconds(cgroup: str, root: Path = CGROUP_ROOT) -> float | None:
    """CPU seconds the processes of ``cgroup`` (a path like ``/libpod_parent/libpod-ID``) used; None if unknown."""
    relative = cgroup.lstrip("/")
    stat = root / relative / "cpu.stat"  # cgroup v2: one tree
    if stat.is_file():
        for line in stat.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "usage_usec":
                return int(value) / 1e6
        return None
    usage = root / "cpuacct" / relative / "cpuacct.usage"  # cgroup v1: the cpuacct controller's tree
    if usage.is_file():
        return int(usage.read_text()) / 1e9
    return None


def children_cpu_seconds() -> float:
    """User and system CPU seconds of this process's children that have ended and were waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class Reading:
    at: float  # time.monotonic()
    controller: float
    hosts: dict[str, float]  # container name: CPU seconds


@dataclass(frozen=True)
class Usage:
    wall: float
    controller: float
    hosts: dict[str, float]
    cores: int

    @property
    def total(self) -> float:
        return self.controller + sum(self.hosts.values())

    @property
    def busy(self) -> float:
        """Cores kept busy on average (of ``cores``)."""
        return self.total / self.wall if self.wall > 0 else 0.0

    @property
    def floor_s(self) -> float:
        """The step's CPU time spread over every core: no schedule makes it shorter on this machine."""
        return self.total / self.cores


def between(before: Reading, after: Reading, cores: int | None = None) -> Usage:
    """What was used from ``before`` to ``after``; a host present in only one reading counts from zero (it was
    created or removed meanwhile, and a new container's cgroup starts at zero)."""
    hosts = {name: after.hosts[name] - before.hosts.get(name, 0.0) for name in after.hosts}
    return Usage(
        wall=after.at - before.at,
        controller=after.controller - before.controller,
        hosts=hosts,
        cores=cores or os.cpu_count() or 1,
    )


def cgroups(podman: Podman, label: str) -> dict[str, str]:
    """Container name: cgroup path, for the running containers that carry ``label``."""
    return cgroup_paths(podman, [c.id for c in podman.containers(label) if c.state == "running"])


def cgroup_paths(podman: Podman, containers: list[str]) -> dict[str, str]:
    """Container name: cgroup path, for these containers (names or ids) that have one (running ones)."""
    if not containers:
        return {}
    found = json.loads(podman.run("inspect", "--type", "container", "--format", "json", *containers).stdout)
    return {
        str(c["Name"]).lstrip("/"): str(c["State"]["CgroupPath"])
        for c in found
        if (c.get("State") or {}).get("CgroupPath")
    }


def read(podman: Podman, label: str, root: Path = CGROUP_ROOT) -> Reading:
    hosts: dict[str, float] = {}
    for name, path in cgroups(podman, label).items():
        seconds = cgroup_cpu_seconds(path, root)
        if seconds is not None:
            hosts[name] = seconds
    return Reading(at=time.monotonic(), controller=children_cpu_seconds(), hosts=hosts)


# -- Every container on the machine, watched for a whole `make test` (scripts/test_lanes.py): the lab's, a clone's
# (another podman store) and molecule's instances, named by podman, not only one lab's.
PROC = Path("/proc")
# Podman's parent cgroup for every container under cgroup_manager = cgroupfs (lab/containers.conf): its usage keeps
# what the containers removed since used, so the total is exact even for one that lived between two looks.
CONTAINERS_CGROUP = "/libpod_parent"
# In it, podman's monitors of containers and of `podman exec` sessions, whose stdio (Mitogen's, molecule's) they carry.
CONMON_CGROUP = f"{CONTAINERS_CGROUP}/conmon"
DEFAULT_STORE = "/var/lib/containers/storage"


@dataclass(frozen=True)
class Running:
    id: str
    name: str
    store: str  # podman's storage root: the lab's and molecule's, or a clone's


def running_containers(proc: Path = PROC) -> list[Running]:
    """Every container running on this machine in any podman store, from its conmon's command line: ``-c ID``,
    ``-n NAME``, and the storage root podman passes on as ``--exit-command-arg --root --exit-command-arg STORE``."""
    found = []
    for cmdline in proc.glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue  # it ended meanwhile
        if Path(argv[0]).name != "conmon":
            continue
        options = dict(pairwise(argv))
        passed = [value for option, value in pairwise(argv) if option == "--exit-command-arg"]
        store = next((value for option, value in pairwise(passed) if option == "--root"), "")
        if "-c" in options and "-n" in options:
            found.append(Running(options["-c"], options["-n"], store or DEFAULT_STORE))
    return found


def running_cpu(root: Path = CGROUP_ROOT, proc: Path = PROC) -> Iterator[tuple[Running, float]]:
    """Each running container (running_containers) with its CPU seconds so far, from its cgroup; one whose cgroup
    is gone (removed meanwhile) is left out."""
    for container in running_containers(proc):
        seconds = cgroup_cpu_seconds(f"{CONTAINERS_CGROUP}/libpod-{container.id}", root)
        if seconds is not None:
            yield container, seconds


def own_store() -> str:
    """The podman store this process's podman uses: a clone's (CONTAINERS_STORAGE_CONF names its storage.conf)
    or the default."""
    conf = os.environ.get("CONTAINERS_STORAGE_CONF")
    if not conf:
        return DEFAULT_STORE
    with Path(conf).open("rb") as text:
        return str(tomllib.load(text).get("storage", {}).get("graphroot") or DEFAULT_STORE)


def containers_cpu_seconds(
    prefix: str, store: str, root: Path = CGROUP_ROOT, proc: Path = PROC
) -> dict[str, tuple[str, float]]:
    """Container ID: (the rest of its name, CPU seconds so far) of each running container of ``store`` whose name
    starts with ``prefix`` (the lab's hosts: ``portalops-`` in the lab's store), without a podman process. By ID:
    a host replaced meanwhile (`lab up`) is another container, its cgroup counting from zero."""
    return {
        container.id: (container.name.removeprefix(prefix), seconds)
        for container, seconds in running_cpu(root, proc)
        if container.store == store and container.name.startswith(prefix)
    }


def used_since(before: dict[str, tuple[str, float]], now: dict[str, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds by name between two readings of containers_cpu_seconds; a container created meanwhile counts
    from zero, one removed meanwhile is not counted."""
    used: dict[str, float] = {}
    for cid, (name, seconds) in now.items():
        used[name] = used.get(name, 0.0) + seconds - before.get(cid, (name, 0.0))[1]
    return used


def since(before: float | None, now: float | None) -> float | None:
    return None if before is None or now is None else now - before


class Watch:
    """CPU seconds of each container since the watch began (one started later counts from zero), looked at every
    few seconds, and of all containers together from their common cgroup."""

    def __init__(self, root: Path = CGROUP_ROOT, proc: Path = PROC) -> None:
        self.root, self.proc = root, proc
        self.began = time.monotonic()
        self.total_at_start = cgroup_cpu_seconds(CONTAINERS_CGROUP, root)
        self.conmon_at_start = cgroup_cpu_seconds(CONMON_CGROUP, root)
        self.at_start: dict[str, float] = {}
        self.last: dict[str, tuple[Running, float]] = {}
        self.look(first=True)

    def look(self, first: bool = False) -> None:
        for container, seconds in running_cpu(self.root, self.proc):
            if first:
                self.at_start[container.id] = seconds
            self.last[container.id] = (container, seconds)

    def report(self) -> dict[str, object]:
        total = since(self.total_at_start, cgroup_cpu_seconds(CONTAINERS_CGROUP, self.root))
        conmon = since(self.conmon_at_start, cgroup_cpu_seconds(CONMON_CGROUP, self.root))
        containers = [
            {
                "name": c.name,
                "store": None if c.store == DEFAULT_STORE else c.store,  # a clone's
                "cpu_s": round(seconds - self.at_start.get(cid, 0.0), 1),
            }
            for cid, (c, seconds) in self.last.items()
        ]
        return {
            "wall_s": round(time.monotonic() - self.began, 1),
            "containers_cpu_s": None if total is None else round(total, 1),
            "conmon_cpu_s": None if conmon is None else round(conmon, 1),
            "containers": sorted(containers, key=lambda c: -float(c["cpu_s"])),  # type: ignore[arg-type]
        }


def watch(out: Path, interval: float, parent: int | None = None) -> None:
    """Look every ``interval`` s until SIGTERM or SIGINT, or until process ``parent`` is no longer ours (killed
    without a word: no watcher is left behind), then write the report to ``out`` (JSON)."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    watching = Watch()
    while not stop.wait(interval) and parent in (None, os.getppid()):
        watching.look()
    watching.look()
    out.write_text(json.dumps(watching.report(), indent=1) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Watch every container's CPU time until SIGTERM; write JSON.")
    parser.add_argument("out", type=Path)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--parent", type=int, help="stop when this process (the one starting us) is gone")
    arguments = parser.parse_args()
    watch(arguments.out, arguments.interval, arguments.parent)
