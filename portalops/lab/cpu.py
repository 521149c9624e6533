"""CPU time counted where it is spent while the lab works: the controller's processes and each lab host.

A step that is slow with cores to spare waits (on the network, a timeout, a poll); one that keeps every core
busy computes, and only less work or more cores shorten it. ``floor_s``, the step's CPU time spread over
every core of the machine, is the shortest it could take here however it were scheduled: a wall-time target
below it cannot be met by waiting less.

The controller's share is this process's waited-for children (``ansible-playbook`` and all it runs: SSH,
Mitogen's brokers); each host's is its container's cgroup (cgroup v2 ``cpu.stat`` or v1 ``cpuacct.usage``),
found through ``podman inspect``'s JSON.
"""

from __future__ import annotations

import json
import os
import resource
import time
from dataclasses import dataclass
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
    ids = [c.id for c in podman.containers(label) if c.state == "running"]
    if not ids:
        return {}
    found = json.loads(podman.run("inspect", "--type", "container", "--format", "json", *ids).stdout)
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
