"""Gather the CMDB from the hosts and keep dated snapshots under reports/cmdb/."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from portalops.ansible_json import JSON_CALLBACK_ENV
from portalops.cmdb import build, markdown, roles
from portalops.errors import BadInput, CommandFailed
from portalops.inventory import REPO_ROOT, Inventory
from portalops.proc import last_line, require_tools, run
from portalops.vault import ansible_env

PLAYBOOK = REPO_ROOT / "playbooks" / "cmdb.yml"
SITE = REPO_ROOT / "playbooks" / "site.yml"
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def gather(inventory: Inventory, now: datetime | None = None) -> dict[str, Any]:
    """Run playbooks/cmdb.yml with the JSON callback and build the document from its answers."""
    require_tools(["ansible-playbook"], "run `make setup`")
    env = {
        **ansible_env(inventory.source),
        **JSON_CALLBACK_ENV,
    }
    # Exit 4 (a host unreachable) and 2 (a host failed) still carry every answer: build() marks those hosts.
    result = run(
        ["ansible-playbook", "-i", inventory.source, str(PLAYBOOK)], env=env, check=False, timeout=900, what="cmdb"
    )
    try:
        document = build.callback_document(result.stdout)
    except BadInput as exc:
        raise CommandFailed(
            f"playbooks/cmdb.yml: exit {result.returncode}: {last_line(result.stderr or result.stdout)}"
        ) from exc
    return build.build(inventory, document, now or datetime.now(UTC), roles.site_plays(SITE))


def snapshot_dates(directory: Path) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.json") if DATE.fullmatch(p.stem))


def load_snapshot(directory: Path, date: str) -> dict[str, Any]:
    """The snapshot of ``date``; a clear error naming the dates there are when it does not exist."""
    path = directory / f"{date}.json"
    if not DATE.fullmatch(date) or not path.is_file():
        dates = snapshot_dates(directory)
        there = f"snapshots there are: {', '.join(dates)}" if dates else "there is no snapshot yet"
        raise BadInput(f"no CMDB snapshot of {date!r} in {directory}; {there}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BadInput(f"{path} is not a CMDB snapshot: {exc}") from exc
    if not isinstance(data, dict) or "hosts" not in data:
        raise BadInput(f"{path} is not a CMDB snapshot (no hosts)")
    return data


def write_snapshot(doc: dict[str, Any], directory: Path) -> tuple[Path, Path]:
    """reports/cmdb/<date>.json and .md; a later run the same day replaces that day's snapshot."""
    directory.mkdir(parents=True, exist_ok=True)
    base = directory / str(doc["date"])
    paths = base.with_suffix(".json"), base.with_suffix(".md")
    for path, text in zip(
        paths, (json.dumps(doc, indent=2, ensure_ascii=False) + "\n", markdown.render(doc)), strict=True
    ):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return paths
