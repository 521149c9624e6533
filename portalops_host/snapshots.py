"""Choosing snapshots from restic's list: by id or prefix, else the newest (backup and drill alike)."""

from __future__ import annotations

from typing import Any

from portalops_host.errors import JobError
from portalops_host.times import parse_time


def job_of(snapshot: dict[str, Any]) -> str:
    return next((t[4:] for t in snapshot.get("tags") or [] if t.startswith("job:")), "")


def named(snapshot: dict[str, Any], wanted: str) -> bool:
    """``wanted`` (an id, its prefix or its short id) names ``snapshot``."""
    return bool(snapshot["id"].startswith(wanted) or snapshot.get("short_id") == wanted)


def newest(listed: list[dict[str, Any]]) -> dict[str, Any]:
    """The snapshot taken last (restic's times, nanoseconds and all)."""
    return max(listed, key=lambda s: parse_time(s["time"]))


def pick_snapshot(listed: list[dict[str, Any]], job: str, wanted: str | None, where: str) -> dict[str, Any]:
    """The newest of ``listed`` (a job's snapshots in the repository ``where`` names), or the first one
    ``wanted`` names; JobError says which is missing."""
    if not listed:
        raise JobError(f"no snapshot of job {job} in {where}")
    if not wanted:
        return newest(listed)
    chosen = next((s for s in listed if named(s, wanted)), None)
    if chosen is None:
        raise JobError(f"snapshot {wanted} of job {job} not found")
    return chosen
