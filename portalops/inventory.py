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
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

from portalops.errors import BadInput
from portalops.proc import run
from portalops.vault import LAB_INVENTORY, REPO_ROOT, ansible_env, refuse_lab_password

__all__ = ["LAB_INVENTORY", "REPO_ROOT", "Inventory", "Resolved", "load_inventory", "parse_inventory"]

T = TypeVar("T")
Fingerprint = tuple[object, ...]


def fingerprint(source: Path | str) -> Fingerprint:
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
    # As Ansible is started for ``source`` (ansible_env: the configuration, the lab's vault identity), so a
    # command a run starts with that environment holds the same fingerprint as the run.
    ansible = tuple(sorted((k, v) for k, v in ansible_env(source).items() if k.startswith("ANSIBLE_")))
    return (str(path.resolve()), tuple(seen), ansible)


class Resolved:
    """Answers Ansible gave in this process, by question, kept while the inventory and the Ansible
    environment stay as they were. Each caller gets its own copy (callers may change what they get).

    A run hands answers on to the portalops commands its steps start (``portalops probe``) through
    the environment (:meth:`export`, ``$PORTALOPS_RESOLVED``): the child takes an answer only while its
    own fingerprint of the inventory is the one the answer was given for, else it asks Ansible."""

    def __init__(self) -> None:
        self._answers: dict[Hashable, tuple[Fingerprint, object]] = {}
        self._inherited: dict[str, tuple[str, object]] | None = None
        self._lock = threading.Lock()

    def get(self, source: Path | str, question: Hashable, ask: Callable[[], T]) -> T:
        now = fingerprint(source)
        with self._lock:
            kept = self._answers.get(question) or self._inherited_answer(question, now)
        if kept is not None and kept[0] == now:
            return cast(T, copy.deepcopy(kept[1]))
        answer = ask()
        self.put(source, question, answer, now)
        return copy.deepcopy(answer)

    def put(self, source: Path | str, question: Hashable, answer: object, now: Fingerprint | None = None) -> None:
        """Keep ``answer`` as Ansible's answer to ``question`` about ``source`` as it is now."""
        now = fingerprint(source) if now is None else now
        with self._lock:
            self._answers[question] = (now, copy.deepcopy(answer))

    def holds(self, source: Path | str, question: Hashable) -> bool:
        now = fingerprint(source)
        with self._lock:
            kept = self._answers.get(question)
        return kept is not None and kept[0] == now

    def export(self, source: Path | str, questions: Sequence[Hashable]) -> dict[str, str]:
        """``$PORTALOPS_RESOLVED`` with the answers held for ``questions`` about ``source`` as it is now
        (none held: an empty dict). Only questions whose answers hold no secret belong here, and only
        while they are small: an environment variable has a limit (MAX_ARG_STRLEN, 128 KiB)."""
        now = fingerprint(source)
        with self._lock:
            held = [(q, self._answers[q][1]) for q in questions if self._answers.get(q, (None,))[0] == now]
        if not held:
            return {}
        text = json.dumps({"fingerprint": _key(now), "answers": [[_key(q), answer] for q, answer in held]})
        return {SHARED_ENV: text} if len(text) <= SHARED_LIMIT else {}

    def _inherited_answer(self, question: Hashable, now: Fingerprint) -> tuple[Fingerprint, object] | None:
        if self._inherited is None:
            self._inherited = _parse_shared(os.environ.get(SHARED_ENV, ""))
        found = self._inherited.get(_key(question))
        return (now, found[1]) if found is not None and found[0] == _key(now) else None

    def clear(self) -> None:
        with self._lock:
            self._answers.clear()
            self._inherited = None


SHARED_ENV = "PORTALOPS_RESOLVED"
SHARED_LIMIT = 64 * 1024


def _key(value: object) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _parse_shared(text: str) -> dict[str, tuple[str, object]]:
    """The answers a parent handed down, by question; anything unreadable is no answer (the child asks Ansible)."""
    try:
        data = json.loads(text) if text else {}
        return {str(q): (str(data["fingerprint"]), answer) for q, answer in data.get("answers", [])}
    except (ValueError, KeyError, TypeError, AttributeError):
        return {}


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
