"""plugins/callback/portalops_host_cpu.py and its table in bench-converge: each task's CPU time in the hosts."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.unit.hostscripts import load

plugin = load("portalops_host_cpu_under_test", "plugins/callback/portalops_host_cpu.py")


def test_each_task_gets_the_hosts_cpu_time_of_its_span_the_costliest_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    readings = iter(
        [
            {"id-web": ("web1", 10.0), "id-db": ("db1", 5.0)},  # the first task starts
            {"id-web": ("web1", 11.0), "id-db": ("db1", 5.5)},  # it ends, the handler starts
            {"id-web": ("web1", 20.0), "id-db2": ("db1", 2.0)},  # db1 replaced meanwhile: counts from zero
        ]
    )
    monkeypatch.setattr(plugin.cpu, "containers_cpu_seconds", lambda prefix, store: next(readings))
    callback = plugin.CallbackModule()
    log = tmp_path / "host-cpu.json"
    # its options as ansible-playbook would give them (the loader reads them from DOCUMENTATION)
    monkeypatch.setattr(callback, "get_option", {"log": str(log), "prefix": "portalops-"}.get)
    callback.v2_playbook_on_task_start(SimpleNamespace(get_name=lambda: "base : small"), False)
    callback.v2_playbook_on_handler_task_start(SimpleNamespace(get_name=lambda: "restart big"))
    callback.v2_playbook_on_stats(None)
    tasks = json.loads(log.read_text())
    assert [(t["task"], t["hosts_cpu_s"]) for t in tasks] == [
        ("restart big", {"web1": 9.0, "db1": 2.0}),
        ("base : small", {"web1": 1.0, "db1": 0.5}),
    ]
    assert all(t["seconds"] >= 0 for t in tasks)


def test_the_bench_table_shows_the_costliest_tasks_and_the_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    # bench_converge reads the lab's inventory when imported: only its table is under test here
    monkeypatch.setattr("portalops.inventory.load_inventory", lambda *a, **k: None)
    monkeypatch.setattr("portalops.lab.config.lab_config", lambda inventory: SimpleNamespace(hosts=[]))
    bench = load("bench_converge_under_test", "scripts/bench_converge.py")
    tasks = [
        {"task": "hardening : install", "seconds": 190.0, "hosts_cpu_s": {"web1": 50.0, "db1": 25.0}},
        {"task": "base : locale", "seconds": 12.0, "hosts_cpu_s": {"web1": 20.0}},
        {"task": "base : ping", "seconds": 1.0, "hosts_cpu_s": {"web1": 5.0}},
    ]
    rows = bench.task_table(tasks, top=2).splitlines()
    assert rows[1].split()[:4] == ["75.0", "75%", "190.0", "hardening"]
    assert rows[2].split()[:4] == ["20.0", "20%", "12.0", "base"]
    assert rows[3].split() == ["100.0", "100%", "all", "3", "tasks"]
