"""The lab fixture: real hosts or a failure that says why; never a silent skip."""

from __future__ import annotations

import functools
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from portalops.inventory import load_inventory
from portalops.lab import cpu
from portalops.lab.config import LabConfig, lab_config
from tests.integration.helpers import failed_tasks, playbook, portalops
from tests.unit.hostscripts import load

SITE = "playbooks/site.yml"
LANES = load("test_lanes", "scripts/test_lanes.py")


# The modules that build the lab and test its converge run first, whatever their names.
CONVERGE_FIRST = ("test_lab", "test_lab_faults", "test_site")


@functools.cache
def container_prefix() -> str:
    return lab_config(load_inventory()).container_prefix


def lab_hosts_cpu() -> dict[str, tuple[str, float]]:
    """Container ID: (host name, CPU seconds so far) of this lab's hosts (the lab's or, in a clone, the clone's)."""
    return cpu.containers_cpu_seconds(container_prefix(), cpu.own_store())


def lab_order(module: str, waits: bool) -> int:
    """Where a lab test module runs: the converge's modules first, then the modules marked ``waits`` (they spend
    their time waiting for alerts, restarts and polls, with the CPUs mostly idle: `make test` starts molecule
    beside the lab once the converge is over, and its CPU work fills that idle time), then the modules that
    compute (restic, Lynis, apt), which get the cores once the side lane is done. Within each group: file order."""
    return 0 if module in CONVERGE_FIRST else 1 if waits else 2


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A stable sort on a key per module: each module's tests stay together and in their order; tests outside
    # this directory (`pytest tests`) keep theirs, before the lab's.
    here = Path(__file__).parent
    items.sort(
        key=lambda item: (
            lab_order(item.path.stem, item.get_closest_marker("waits") is not None) if item.path.parent == here else -1
        )
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Under `make test` (PORTALOPS_TEST_CPU_LOG): how busy the machine's CPUs were while each lab test ran,
    its fixtures' setup and teardown included, for the table per module that `make test` prints."""
    log = os.environ.get("PORTALOPS_TEST_CPU_LOG")
    before, started = LANES.cpu_jiffies(), time.monotonic()
    ours, hosts = cpu.children_cpu_seconds(), lab_hosts_cpu() if log else {}
    yield
    after = LANES.cpu_jiffies()
    if log and before and after:
        hosts_after = lab_hosts_cpu()
        record = {
            "test": item.nodeid,
            "module": item.module.__name__ if isinstance(item, pytest.Function) else item.nodeid,
            "seconds": round(time.monotonic() - started, 1),
            "busy": after[0] - before[0],
            "total": after[1] - before[1],
            # CPU seconds of what the test ran here (Ansible, runbooks, podman) and in each of this lab's hosts
            # (a host started meanwhile counts from zero: test_lab's down and up)
            "ours_cpu_s": round(cpu.children_cpu_seconds() - ours, 1),
            "hosts_cpu_s": {name: round(used, 1) for name, used in cpu.used_since(hosts, hosts_after).items()},
        }
        with Path(log).open("a") as out:
            out.write(json.dumps(record) + "\n")


@pytest.fixture(scope="session")
def lab() -> Iterator[LabConfig]:
    """The lab, up. Fails (never skips) with the reason when it cannot start."""
    if os.geteuid() != 0:
        pytest.fail("the lab tests need root (rootful podman); run `sudo make test`")
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed; `make setup` installs it")
    up = portalops("lab", "up")
    if up.returncode != 0:
        pytest.fail(f"`portalops lab up` failed (exit {up.returncode}):\n{up.stderr[-3000:]}")
    yield lab_config(load_inventory())
    if os.environ.get("PORTALOPS_KEEP_LAB") != "1":
        portalops("lab", "down")


@pytest.fixture(scope="session")
def converged(lab: LabConfig) -> LabConfig:
    """The lab after one site.yml run from bare hosts; fails with the failed tasks named.

    PORTALOPS_LAB_CONVERGED=1: this is a clone of a lab that `make test` converged (its snapshot), in a session
    of its own; the lab's session tests that converge (test_site), this one starts from it.
    PORTALOPS_SNAPSHOT_DONE (a file): once converged, the lab is committed to a snapshot for that clone, and the
    file says how that went ("ok", or why not), converge failed or not, so the clone never waits in vain."""
    if os.environ.get("PORTALOPS_LAB_CONVERGED") == "1":
        return lab
    snapshot = "not taken: the converge failed"
    try:
        code, stats, output = playbook(SITE, log_name="site-converge")
        if code == 0 and os.environ.get("PORTALOPS_SNAPSHOT_DONE"):
            taken = portalops("lab", "snapshot")
            snapshot = "ok" if taken.returncode == 0 else f"failed (exit {taken.returncode}): {taken.stderr[-2000:]}"
    finally:
        # `make test` starts molecule beside the lab once the converge no longer needs the cores.
        if flag := os.environ.get("PORTALOPS_CONVERGE_DONE"):
            Path(flag).touch()
        if done := os.environ.get("PORTALOPS_SNAPSHOT_DONE"):
            # Whole or not at all (the clone's lane polls the file): written aside, then renamed.
            Path(done + ".new").write_text(snapshot + "\n")
            Path(done + ".new").replace(done)
    assert code == 0, "site.yml failed:\n" + "\n".join(failed_tasks(output))
    assert set(stats) >= {h.name for h in lab.hosts}
    assert snapshot == "ok" or not os.environ.get("PORTALOPS_SNAPSHOT_DONE"), f"the lab's snapshot: {snapshot}"
    return lab
