"""Choosing snapshots from restic's list: by id or prefix, else the newest (backup and drill alike)."""

from __future__ import annotations

from typing import Any

from portalops_host.times import parse_time


def job_of(snapshot: dict[str, Any]) -> str:
    return next((t[4:] for t in snapshot.get("tags") or [] if t.startswith("job:")), "")


def named(snapshot: dict[str, Any], wanted: str) -> bool:
    """``wanted`` (an id, its prefix or its short id) names ``snapshot``."""
    return bool(snapshot["id"].startswith(wanted) or snapshot.get("short_id") == wanted)


def newest(listed: list[dict[str, Any]]) -> dict[str, Any]:
    """The snapshot taken last (restic's times, nanoseconds and all)."""
    return max(listed, key=lambda s: parse_time(s["time"]))


def pick_snapshot(listed: list[dict[str, Any]], wanted: str | None) -> dict[str, Any] | None:
    """The first of ``listed`` that ``wanted`` names, else (no ``wanted``) the newest; None when there is none.
    The callers say what is missing in their own words (a job of this host, a host's job in the drill)."""
    if wanted:
        return next((s for s in listed if named(s, wanted)), None)
    return newest(listed) if listed else None
