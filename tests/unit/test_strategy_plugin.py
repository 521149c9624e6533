"""plugins/strategy/mitogen_linear.py: the installed collections listed once per run, not once per task."""

from __future__ import annotations

import gc
import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import ansible.collections.list
import ansible_mitogen.affinity
import ansible_mitogen.planner
import pytest
from ansible.plugins.loader import init_plugin_loader
from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder

LISTED = "/venv/ansible_collections/community/general"
PLUGIN = Path(__file__).resolve().parents[2] / "plugins" / "strategy" / "mitogen_linear.py"


@pytest.fixture(scope="module")
def plugin() -> Iterator[ModuleType]:
    original = ansible_mitogen.planner._load_collections
    spec = importlib.util.spec_from_file_location("portalops_strategy_under_test", PLUGIN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    ansible_mitogen.planner._load_collections = original


@pytest.fixture(autouse=True)
def collection_loader() -> Iterator[None]:
    """Ansible's import machinery for ansible_collections, as every ansible-* command sets it up."""
    init_plugin_loader()
    yield
    _AnsibleCollectionFinder._remove()


def invocation() -> Any:
    return SimpleNamespace(_extra_sys_paths=set())


def test_mitogen_calls_the_plugins_list_and_it_adds_what_mitogens_own_adds(
    plugin: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert ansible_mitogen.planner._load_collections is plugin._load_collections
    monkeypatch.setattr(plugin, "_collection_dirs", {})
    ours, theirs = invocation(), invocation()
    plugin._load_collections(ours)
    plugin._mitogen_load_collections(theirs)
    assert ours._extra_sys_paths == theirs._extra_sys_paths
    assert any(path.endswith("/ansible_collections/ansible/posix") for path in ours._extra_sys_paths)
    assert plugin._collection_search_path()  # the installed finder's, as in ansible-playbook


def test_the_list_made_before_the_fork_serves_every_worker_without_listing_again(
    plugin: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    def listing(*args: Any, **kwargs: Any) -> Iterator[bytes]:
        calls.append(os.getpid())
        yield LISTED.encode()

    monkeypatch.setattr(ansible.collections.list, "list_collection_dirs", listing)
    monkeypatch.setattr(plugin, "_collection_dirs", {})
    plugin._installed_collection_dirs()  # what StrategyModule.run does in the controller
    assert calls == [os.getpid()]
    plugin._installed_collection_dirs()
    assert calls == [os.getpid()]
    for _task in range(3):
        child = os.fork()
        if child == 0:  # a worker, as Ansible forks one per host and task
            worker = invocation()
            ansible_mitogen.planner._load_collections(worker)
            listed_again = calls != [os.getppid()]
            os._exit(1 if listed_again or worker._extra_sys_paths != {LISTED} else 0)
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    assert calls == [os.getpid()]


def test_the_controller_lists_before_it_runs_any_task(plugin: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[tuple[str, ...]]] = []

    def mitogens_run(self: object, *args: object) -> int:
        seen.append(list(plugin._collection_dirs.values()))
        return 0

    monkeypatch.setattr(ansible.collections.list, "list_collection_dirs", lambda: iter([LISTED.encode()]))
    monkeypatch.setattr(plugin, "_collection_dirs", {})
    monkeypatch.setattr(plugin._MitogenLinear, "run", mitogens_run)
    strategy = plugin.StrategyModule.__new__(plugin.StrategyModule)  # no TaskQueueManager needed
    assert strategy.run("iterator", "play_context") == 0
    assert seen == [[(LISTED,)]]


def test_a_changed_collection_search_path_is_listed_again(plugin: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    search_path: tuple[str, ...] = ("/venv",)
    searched: list[tuple[str, ...]] = []

    def listing(*args: Any, **kwargs: Any) -> Iterator[bytes]:
        searched.append(search_path)
        yield LISTED.encode()

    monkeypatch.setattr(ansible.collections.list, "list_collection_dirs", listing)
    monkeypatch.setattr(plugin, "_collection_search_path", lambda: search_path)
    monkeypatch.setattr(plugin, "_collection_dirs", {})
    plugin._installed_collection_dirs()
    search_path = ("/playbooks/collections", "/venv")
    plugin._installed_collection_dirs()
    plugin._installed_collection_dirs()
    assert searched == [("/venv",), ("/playbooks/collections", "/venv")]


def test_a_worker_takes_what_it_inherited_out_of_the_collector_and_the_controller_does_not(plugin: ModuleType) -> None:
    assert isinstance(ansible_mitogen.affinity.policy, plugin._ProcessPolicy)
    inherited = [[index] for index in range(1000)]  # containers the collector tracks, made before the fork
    frozen_before = gc.get_freeze_count()
    child = os.fork()
    if child == 0:  # a worker: Mitogen's WorkerProcess.run calls the policy first
        ansible_mitogen.affinity.policy.assign_worker()
        os._exit(0 if gc.get_freeze_count() >= len(inherited) and gc.is_tracked(inherited[0]) else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the worker left what it inherited to its collector"
    assert gc.get_freeze_count() == frozen_before, "the controller froze its own objects"


def test_loading_the_plugin_installs_the_template_cache_for_the_workers_it_forks(plugin: ModuleType) -> None:
    assert plugin.jinja_cache.installed() == plugin.jinja_cache.default_directory()
