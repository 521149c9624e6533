from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from portalops.errors import BadInput
from portalops.inventory import load_inventory, parse_inventory
from portalops.runbook.resolve import resolve_vars


def test_groups_are_flattened_through_children(inventory_json: dict[str, Any]) -> None:
    inv = parse_inventory(inventory_json, "x")
    assert sorted(inv.hosts_in("portal")) == ["cms1", "web1"]
    assert sorted(inv.hosts_in("all")) == ["cms1", "db1", "web1"]
    assert inv.groups_of("web1") == ["portal", "web"]
    assert inv.hosts_in("nosuchgroup") == []


def test_hostvars_are_kept(inventory_json: dict[str, Any]) -> None:
    inv = parse_inventory(inventory_json, "x")
    assert inv.hostvars["db1"]["ansible_host"] == "10.89.60.13"


def test_cyclic_children_do_not_loop() -> None:
    data = {"a": {"children": ["b"], "hosts": ["h1"]}, "b": {"children": ["a"], "hosts": ["h2"]}}
    inv = parse_inventory(data, "x")
    assert sorted(inv.hosts_in("a")) == ["h1", "h2"]


def test_missing_inventory_is_bad_input(tmp_path: Any) -> None:
    with pytest.raises(BadInput, match="inventory not found"):
        load_inventory(tmp_path / "nope")


def test_the_lab_inventory_has_the_five_hosts_in_their_tiers() -> None:
    inv = load_inventory()
    tiers = {group: inv.hosts_in(group) for group in ("web", "cms", "db", "backup", "drill")}
    assert tiers == {"web": ["web1"], "cms": ["cms1"], "db": ["db1"], "backup": ["backup1"], "drill": ["drill1"]}


def test_one_process_asks_ansible_once_until_the_inventory_or_its_environment_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A drill read the same inventory 5 times and rendered its variables 10 times (1-2 s each)."""
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  hosts:\n    web1:\n      ansible_host: 10.0.0.1\n")
    asked: list[str] = []

    def ansible_inventory(argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        asked.append(argv[0])
        address = "10.0.0.2" if "10.0.0.2" in inventory.read_text() else "10.0.0.1"
        listed = {"_meta": {"hostvars": {"web1": {"ansible_host": address}}}, "all": {"hosts": ["web1"]}}
        return subprocess.CompletedProcess(argv, 0, json.dumps(listed), "")

    monkeypatch.setattr("portalops.inventory.run", ansible_inventory)
    first = load_inventory(inventory)
    first.hostvars["web1"]["ansible_host"] = "changed by a caller"
    assert load_inventory(inventory).hostvars["web1"]["ansible_host"] == "10.0.0.1"  # its own copy
    assert asked == ["ansible-inventory"]
    inventory.write_text(inventory.read_text().replace("10.0.0.1", "10.0.0.2") + "# edited\n")
    assert load_inventory(inventory).hostvars["web1"]["ansible_host"] == "10.0.0.2"
    monkeypatch.setenv("ANSIBLE_VAULT_IDENTITY_LIST", "prod@/nowhere")
    load_inventory(inventory)
    assert len(asked) == 3


def test_named_hosts_are_answered_from_one_render_of_every_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A drill connects to db1, then to web1, then to the runbook's targets: one Ansible process, not three."""
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  hosts:\n    web1:\n    db1:\n")
    asked: list[str] = []

    def ansible(argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        asked.append(argv[3])  # the host pattern
        plays = [{"tasks": [{"hosts": {h: {"msg": {"address": h}} for h in ("web1", "db1")}}]}]
        return subprocess.CompletedProcess(argv, 0, json.dumps({"plays": plays}), "")

    monkeypatch.setattr("portalops.runbook.resolve.run", ansible)
    assert resolve_vars(inventory, ["db1"], {"address": "ansible_host"}) == {"db1": {"address": "db1"}}
    assert list(resolve_vars(inventory, ["web1", "db1"], {"address": "ansible_host"})) == ["web1", "db1"]
    assert asked == ["all"]
    with pytest.raises(BadInput, match="no host cms1"):
        resolve_vars(inventory, ["cms1", "web1"], {"address": "ansible_host"})
    assert resolve_vars(inventory, ["web"], {"address": "ansible_host"}, exact=False)  # a pattern is its own question
    assert asked == ["all", "web"]
