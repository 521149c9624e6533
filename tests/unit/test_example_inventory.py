"""The template for real deployments parses and carries no lab leftovers."""

from __future__ import annotations

import ipaddress

from portalops.inventory import REPO_ROOT, load_inventory

LAB_SUBNET = ipaddress.ip_network("10.89.60.0/24")


def test_example_inventory_has_every_tier_and_no_lab_address() -> None:
    inv = load_inventory(REPO_ROOT / "inventory" / "example")
    for tier in ("web", "cms", "db", "backup", "drill"):
        assert inv.hosts_in(tier), tier
    for host, hostvars in inv.hostvars.items():
        assert ipaddress.ip_address(hostvars["ansible_host"]) not in LAB_SUBNET, host
        assert not any(var.startswith("lab_") for var in hostvars), host


def test_example_secrets_come_only_from_vault() -> None:
    text = (REPO_ROOT / "inventory/example/group_vars/all/secrets.yml").read_text()
    values = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("portalops_")]
    assert values and all(v.startswith('"{{ vault_') for v in values)
