"""The Ansible inventory is the one source of truth for hosts.

portalops never keeps its own host list: it asks ``ansible-inventory`` and
parses the JSON with a pure function, so tests can feed it recorded output.
Within one process the answer is asked once (:class:`Resolved`): a drill or a
runbook run reads the same inventory many times, and Ansible takes a second or
more per answer; a changed file of the inventory, or another Ansible
environment, asks again.
"""

from __future__ import annotations

import copy
import json
import os
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

from portalops.errors import BadInput
from portalops.proc import run
from portalops.vault import LAB_INVENTORY, REPO_ROOT, ansible_env, refuse_lab_password

__all__ = ["LAB_INVENTORY", "REPO_ROOT", "Inventory", "Resolved", "load_inventory", "parse_inventory"]

T = TypeVar("T")


def fingerprint(source: Path | str) -> tuple[object, ...]:
    """What Ansible's answer about ``source`` depends on, cheaply: every file of the inventory (path,
    size, mtime) and the ANSIBLE_* environment (the vault identities, the configuration)."""
    path = Path(source)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    seen = []
    for name in files:
        try:
            stat = name.stat()
        except FileNotFoundError:
            continue
        seen.append((str(name), stat.st_size, stat.st_mtime_ns))
    ansible = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("ANSIBLE_")))
    return (str(path.resolve()), tuple(seen), ansible)


class Resolved:
    """Answers Ansible gave in this process, by question, kept while the inventory and the Ansible
    environment stay as they were. Each caller gets its own copy (callers may change what they get)."""

    def __init__(self) -> None:
        self._answers: dict[Hashable, tuple[tuple[object, ...], object]] = {}
        self._lock = threading.Lock()

    def get(self, source: Path | str, question: Hashable, ask: Callable[[], T]) -> T:
        now = fingerprint(source)
        with self._lock:
            kept = self._answers.get(question)
        if kept is not None and kept[0] == now:
            return cast(T, copy.deepcopy(kept[1]))
        answer = ask()
        with self._lock:
            self._answers[question] = (now, answer)
        return copy.deepcopy(answer)

    def clear(self) -> None:
        with self._lock:
            self._answers.clear()


RESOLVED = Resolved()


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
    return RESOLVED.get(source, ("inventory", str(source.resolve())), lambda: _ask_inventory(source))


def _ask_inventory(source: Path) -> Inventory:
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
