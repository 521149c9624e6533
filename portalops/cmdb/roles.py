"""Which roles each host runs, read from site.yml's plays (the playbooks are the truth, not a list)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

Play = tuple[str, list[str]]
Plays = Sequence[Play]


def site_plays(site: Path) -> list[Play]:
    """(hosts pattern, roles) of every play that site.yml imports, in order."""
    found: list[Play] = []
    for entry in yaml.safe_load(site.read_text()) or []:
        imported = entry.get("ansible.builtin.import_playbook") or entry.get("import_playbook")
        if imported:
            found += site_plays(site.parent / str(imported))
            continue
        roles = [r if isinstance(r, str) else str(r.get("role", r.get("name", ""))) for r in entry.get("roles", [])]
        if roles:
            found.append((str(entry.get("hosts", "")), roles))
    return found


def roles_of(host: str, groups: list[str], plays: Plays) -> list[str]:
    """The roles of the plays whose simple pattern (names joined by ':' or ',') names the host or its groups."""
    names = {host, "all", *groups}
    found: list[str] = []
    for pattern, roles in plays:
        terms = [t.strip() for t in pattern.replace(",", ":").split(":") if t.strip()]
        if any(t in names for t in terms if not t.startswith(("!", "&"))):
            found += [r for r in roles if r not in found]
    return found


def plays_json(plays: Plays) -> list[dict[str, Any]]:
    return [{"hosts": pattern, "roles": roles} for pattern, roles in plays]
