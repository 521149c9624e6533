"""portalops.lab.cpu: CPU time per lab host from its cgroup, the controller's from its children, and a step's floor."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
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


def conmon(proc: Path, pid: int, *argv: str) -> None:
    (proc / str(pid)).mkdir(parents=True)
    (proc / str(pid) / "cmdline").write_bytes("\0".join(argv).encode() + b"\0")


def usage(root: Path, cgroup: str, seconds: float) -> None:
    (root / "cpuacct" / cgroup.lstrip("/")).mkdir(parents=True, exist_ok=True)
    (root / "cpuacct" / cgroup.lstrip("/") / "cpuacct.usage").write_text(f"{int(seconds * 1e9)}\n")


def test_every_running_container_of_every_store_is_named_from_its_conmon(tmp_path: Path) -> None:
    clone_store = "/var/tmp/clone/.lab/storage"
    conmon(tmp_path, 10, "/usr/bin/conmon", "--api-version", "1", "-c", "aaa", "-u", "aaa", "-n", "portalops-web1")
    conmon(tmp_path, 11, "/usr/bin/conmon", "-c", "bbb", "-n", "portalops-web1", "--exit-command-arg", "--root",
           "--exit-command-arg", clone_store, "--exit-command-arg", "--runroot")  # fmt: skip
    conmon(tmp_path, 12, "/usr/bin/python3", "-c", "print()", "-n", "not-a-container")
    (tmp_path / "13").mkdir()  # a process that ended between the listing and the reading
    found = sorted(cpu.running_containers(tmp_path), key=lambda c: c.id)
    assert found == [
        cpu.Running("aaa", "portalops-web1", cpu.DEFAULT_STORE),
        cpu.Running("bbb", "portalops-web1", clone_store),
    ]


def test_the_watch_counts_each_container_from_when_it_began_and_the_total_from_the_common_cgroup(
    tmp_path: Path,
) -> None:
    proc, root = tmp_path / "proc", tmp_path / "cgroup"
    conmon(proc, 10, "conmon", "-c", "old", "-n", "portalops-db1")
    usage(root, cpu.CONTAINERS_CGROUP, 1000.0)
    usage(root, cpu.CONMON_CGROUP, 100.0)
    usage(root, f"{cpu.CONTAINERS_CGROUP}/libpod-old", 400.0)
    watch = cpu.Watch(root, proc)
    # db1 works 30 s; a molecule instance starts and works 50 s, and is removed after 70 s, 20 s of them unseen
    usage(root, f"{cpu.CONTAINERS_CGROUP}/libpod-old", 430.0)
    conmon(proc, 11, "conmon", "-c", "new", "-n", "exporters")
    usage(root, f"{cpu.CONTAINERS_CGROUP}/libpod-new", 50.0)
    watch.look()
    (proc / "11" / "cmdline").unlink()
    usage(root, cpu.CONTAINERS_CGROUP, 1100.0)
    usage(root, cpu.CONMON_CGROUP, 102.5)  # podman's monitors carried the instance's stdio
    watch.look()
    report = watch.report()
    assert report["containers_cpu_s"] == 100.0  # exact, the unseen 20 s included
    assert report["conmon_cpu_s"] == 2.5
    assert report["containers"] == [
        {"name": "exporters", "store": None, "cpu_s": 50.0},
        {"name": "portalops-db1", "store": None, "cpu_s": 30.0},
    ]


def catches_sigterm(pid: int) -> bool:
    caught = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) & 1 << (signal.SIGTERM - 1))


def test_the_watch_writes_its_report_when_terminated(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    watcher = subprocess.Popen([sys.executable, "-m", "portalops.lab.cpu", str(out), "--interval", "0.1"])
    try:
        deadline = time.monotonic() + 20
        while not catches_sigterm(watcher.pid) and time.monotonic() < deadline:  # its handler is in place
            time.sleep(0.05)
        watcher.terminate()
        assert watcher.wait(timeout=20) == 0
    finally:
        watcher.kill()
    report = json.loads(out.read_text())
    assert set(report) == {"wall_s", "containers_cpu_s", "conmon_cpu_s", "containers"}


def test_a_labs_hosts_are_its_own_stores_containers_named_with_its_prefix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proc, root, clone = tmp_path / "proc", tmp_path / "cgroup", "/var/tmp/clone/.lab/storage"
    conmon(proc, 10, "conmon", "-c", "lab", "-n", "portalops-web1")
    conmon(proc, 11, "conmon", "-c", "cloned", "-n", "portalops-web1", "--exit-command-arg", "--root",
           "--exit-command-arg", clone)  # fmt: skip
    conmon(proc, 12, "conmon", "-c", "mol", "-n", "exporters")
    for cid, seconds in (("lab", 7.0), ("cloned", 3.0), ("mol", 5.0)):
        usage(root, f"{cpu.CONTAINERS_CGROUP}/libpod-{cid}", seconds)
    monkeypatch.delenv("CONTAINERS_STORAGE_CONF", raising=False)
    assert cpu.containers_cpu_seconds("portalops-", cpu.own_store(), root, proc) == {"lab": ("web1", 7.0)}
    conf = tmp_path / "storage.conf"
    conf.write_text(f'[storage]\ndriver = "overlay"\ngraphroot = "{clone}"\nrunroot = "/run/clone"\n')
    monkeypatch.setenv("CONTAINERS_STORAGE_CONF", str(conf))  # as in the clone (portalops.lab.clone)
    assert cpu.containers_cpu_seconds("portalops-", cpu.own_store(), root, proc) == {"cloned": ("web1", 3.0)}


def test_a_host_replaced_meanwhile_counts_from_zero_not_from_the_one_it_replaced() -> None:
    before = {"old": ("web1", 300.0), "gone": ("db1", 50.0), "kept": ("cms1", 10.0)}
    now = {"new": ("web1", 2.0), "kept": ("cms1", 14.0)}
    assert cpu.used_since(before, now) == {"web1": 2.0, "cms1": 4.0}


WATCHER = f'{sys.executable} -m portalops.lab.cpu "$1" --interval 0.1 --parent $$'


def test_the_watch_ends_with_whoever_started_it(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    # a shell starts it and ends at once, as a killed `make test` would: no watcher is left behind
    started = subprocess.run(
        ["sh", "-c", f"{WATCHER} >/dev/null 2>&1 & echo $!", "sh", str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    watcher = int(started.stdout)
    deadline = time.monotonic() + 20
    while Path(f"/proc/{watcher}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{watcher}").exists()
    assert set(json.loads(out.read_text())) == {"wall_s", "containers_cpu_s", "conmon_cpu_s", "containers"}
