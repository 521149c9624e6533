from __future__ import annotations

from typing import Any

import pytest

from portalops.errors import BadInput
from portalops.inventory import load_inventory, parse_inventory


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
