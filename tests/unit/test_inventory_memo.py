"""The inventory and rendered variables are asked of Ansible once per process, and again when they change."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from portalops import inventory
from portalops.inventory import forget_answers, load_inventory
from portalops.runbook import resolve
from portalops.runbook.resolve import resolve_vars

INVENTORY_JSON = '{"_meta": {"hostvars": {"web1": {"x": 1}}}, "all": {"children": ["web"]}, "web": {"hosts": ["web1"]}}'
ADHOC_JSON = '{"plays": [{"tasks": [{"hosts": {"web1": {"msg": {"address": "10.0.0.1"}}}}]}]}'


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, list[list[str]]]]:
    """An inventory directory and the Ansible commands run against it (answered from recordings)."""
    source = tmp_path / "inv"
    (source / "group_vars" / "all").mkdir(parents=True)
    (source / "hosts.yml").write_text("all:\n  hosts:\n    web1:\n")
    (source / "group_vars" / "all" / "x.yml").write_text("x: 1\n")
    calls: list[list[str]] = []

    def run(argv: list[str], **_kw: Any) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        return subprocess.CompletedProcess(
            argv, 0, INVENTORY_JSON if argv[0] == "ansible-inventory" else ADHOC_JSON, ""
        )

    monkeypatch.setattr(inventory, "run", run)
    monkeypatch.setattr(resolve, "run", run)
    forget_answers()
    yield source, calls
    forget_answers()


def test_the_inventory_is_read_once_and_each_caller_gets_its_own_copy(site: tuple[Path, list[list[str]]]) -> None:
    source, calls = site
    first = load_inventory(source)
    first.hostvars["web1"]["x"] = 99  # a caller changing its copy
    second = load_inventory(source)
    assert len(calls) == 1
    assert second.hostvars["web1"]["x"] == 1


def test_an_edited_inventory_is_read_again(site: tuple[Path, list[list[str]]]) -> None:
    source, calls = site
    load_inventory(source)
    changed = source / "group_vars" / "all" / "x.yml"
    changed.write_text("x: 22\n")
    os.utime(changed, ns=(1, 1))  # a different time even on a coarse clock
    load_inventory(source)
    (source / "group_vars" / "all" / "y.yml").write_text("y: 1\n")  # a new file
    load_inventory(source)
    assert len(calls) == 3


def test_another_environment_is_asked_again(
    site: tuple[Path, list[list[str]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    source, calls = site
    load_inventory(source)
    monkeypatch.setenv("PORTALOPS_LAB_DIR", "/elsewhere")  # lab_state_dir renders from it
    load_inventory(source)
    monkeypatch.setenv("ANSIBLE_VAULT_IDENTITY_LIST", "other@/dev/null")
    load_inventory(source)
    assert len(calls) == 3


def test_rendered_variables_are_asked_once_per_question(site: tuple[Path, list[list[str]]]) -> None:
    source, calls = site
    assert resolve_vars(source, ["web1"], {"address": "ansible_host"}) == {"web1": {"address": "10.0.0.1"}}
    resolve_vars(source, ["web1"], {"address": "ansible_host"})
    resolve_vars(source, ["web1"], {"address": "ansible_host | default('x')"})  # another question
    assert [argv[0] for argv in calls] == ["ansible", "ansible"]


def test_a_failed_answer_is_not_remembered(site: tuple[Path, list[list[str]]], monkeypatch: pytest.MonkeyPatch) -> None:
    source, calls = site

    def broken(argv: list[str], **_kw: Any) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, "no json here", "")

    monkeypatch.setattr(inventory, "run", broken)
    with pytest.raises(Exception, match="no JSON"):
        load_inventory(source)
    with pytest.raises(Exception, match="no JSON"):
        load_inventory(source)
    assert len(calls) == 2
