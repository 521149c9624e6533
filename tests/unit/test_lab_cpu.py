"""portalops.lab.cpu: CPU time per lab host from its cgroup, the controller's from its children, and a step's floor."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from portalops.lab import cpu
from portalops.lab.podman import Container

V1 = "/libpod_parent/libpod-aaa"
V2 = "/machine.slice/libpod-bbb.scope/container"


def test_a_cgroup_v2_host_counts_usage_usec_and_a_v1_host_cpuacct_nanoseconds(tmp_path: Path) -> None:
    v2 = tmp_path / V2.lstrip("/")
    v2.mkdir(parents=True)
    (v2 / "cpu.stat").write_text("usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n")
    v1 = tmp_path / "cpuacct" / V1.lstrip("/")
    v1.mkdir(parents=True)
    (v1 / "cpuacct.usage").write_text("1500000000\n")
    assert cpu.cgroup_cpu_seconds(V2, tmp_path) == 2.5
    assert cpu.cgroup_cpu_seconds(V1, tmp_path) == 1.5
    assert cpu.cgroup_cpu_seconds("/gone", tmp_path) is None  # removed meanwhile: unknown, not zero


def test_the_controller_counts_the_cpu_of_children_it_waited_for() -> None:
    before = cpu.children_cpu_seconds()
    burn = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"
    subprocess.run([sys.executable, "-c", burn], check=True)
    assert cpu.children_cpu_seconds() - before >= 0.3


def test_a_steps_usage_is_the_difference_and_its_floor_spreads_it_over_every_core() -> None:
    before = cpu.Reading(at=100.0, controller=10.0, hosts={"web1": 50.0, "old": 7.0})
    after = cpu.Reading(at=200.0, controller=70.0, hosts={"web1": 110.0, "new": 80.0})
    used = cpu.between(before, after, cores=2)
    # "new" was created meanwhile (its cgroup started at zero); "old" was removed and is not in the answer
    assert used.hosts == {"web1": 60.0, "new": 80.0}
    assert (used.wall, used.controller, used.total) == (100.0, 60.0, 200.0)
    assert used.busy == 2.0  # both cores busy the whole step: only less work or more cores shorten it
    assert used.floor_s == 100.0
    waiting = cpu.between(before, cpu.Reading(at=400.0, controller=12.0, hosts={"web1": 52.0}), cores=4)
    assert waiting.busy == pytest.approx(4.0 / 300)  # a step that waits
    assert waiting.floor_s == 1.0


class FakePodman:
    def __init__(self, inspected: list[dict[str, Any]]) -> None:
        self.inspected = inspected
        self.asked: list[tuple[str, ...]] = []

    def containers(self, label: str) -> list[Container]:
        assert label == "portalops.lab=lab"
        return [
            Container("portalops-web1", "id1", "running", {}),
            Container("portalops-db1", "id2", "exited", {}),
        ]

    def run(self, *args: str, **_: Any) -> subprocess.CompletedProcess[str]:
        self.asked.append(args)
        return subprocess.CompletedProcess(args, 0, json.dumps(self.inspected), "")


def test_each_running_lab_container_is_read_from_the_cgroup_podman_names(tmp_path: Path) -> None:
    (tmp_path / "cpuacct" / V1.lstrip("/")).mkdir(parents=True)
    (tmp_path / "cpuacct" / V1.lstrip("/") / "cpuacct.usage").write_text("3000000000")
    podman = FakePodman([{"Name": "portalops-web1", "State": {"CgroupPath": V1}}])
    reading = cpu.read(podman, "portalops.lab=lab", tmp_path)  # type: ignore[arg-type]
    assert reading.hosts == {"portalops-web1": 3.0}
    assert podman.asked == [("inspect", "--type", "container", "--format", "json", "id1")]  # not the stopped db1
