"""The Ansible inventory is the one source of truth for hosts.

portalops never keeps its own host list: it asks ``ansible-inventory`` and
parses the JSON with a pure function, so tests can feed it recorded output.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from portalops.errors import BadInput
from portalops.proc import run
from portalops.vault import LAB_INVENTORY, REPO_ROOT, ansible_env, refuse_lab_password

__all__ = ["LAB_INVENTORY", "REPO_ROOT", "Inventory", "load_inventory", "parse_inventory"]


@dataclass(frozen=True)
class Inventory:
    """Hosts with their variables and the groups each belongs to."""

    source: str
    hostvars: dict[str, dict[str, Any]]
    groups: dict[str, list[str]] = field(default_factory=dict)

    def hosts_in(self, group: str) -> list[str]:
        return list(self.groups.get(group, []))

    def groups_of(self, host: str) -> list[str]:
        return sorted(g for g, members in self.groups.items() if host in members and g != "all")


def parse_inventory(data: dict[str, Any], source: str) -> Inventory:
    """Turn ``ansible-inventory --list`` JSON into an :class:`Inventory`.

    Group membership is flattened: a host in a child group is a member of
    every ancestor group too, as Ansible sees it.
    """
    hostvars: dict[str, dict[str, Any]] = dict(data.get("_meta", {}).get("hostvars", {}))
    direct: dict[str, list[str]] = {}
    children: dict[str, list[str]] = {}
    for name, body in data.items():
        if name == "_meta" or not isinstance(body, dict):
            continue
        direct[name] = list(body.get("hosts", []))
        children[name] = list(body.get("children", []))

    def members(group: str, seen: frozenset[str]) -> list[str]:
        found = list(direct.get(group, []))
        for child in children.get(group, []):
            if child not in seen:
                found.extend(members(child, seen | {child}))
        return list(dict.fromkeys(found))

    groups = {group: members(group, frozenset({group})) for group in direct}
    for host in {h for hosts in groups.values() for h in hosts}:
        hostvars.setdefault(host, {})
    return Inventory(source=source, hostvars=hostvars, groups=groups)


def load_inventory(path: Path | str | None = None) -> Inventory:
    """Ask Ansible for the inventory at ``path`` (default: the lab)."""
    source = Path(path) if path is not None else LAB_INVENTORY
    if not source.exists():
        raise BadInput(f"inventory not found: {source}")
    refuse_lab_password(source)  # before Ansible opens its vault with whatever secret it was given
    result = run(
        ["ansible-inventory", "-i", str(source), "--list"],
        env=ansible_env(source),
        what=f"read inventory {source}",
        timeout=120,
    )
    try:
        data = json.loads(result.stdout)
    except json.JSONDecodeError as exc:
        raise BadInput(f"inventory {source}: ansible-inventory printed no JSON: {exc}") from exc
    inventory = parse_inventory(data, str(source))
    if not inventory.hostvars:
        raise BadInput(f"inventory {source} defines no hosts")
    return inventory
