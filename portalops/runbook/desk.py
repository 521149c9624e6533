"""The service desk on incidents: open one for a phone call, move it through its lifecycle, list them.

Every change is an event appended to the incident's journal under an exclusive lock on that
journal (so a person and the responder, or two people, never both act on the same state), after
:func:`lifecycle.check` allowed it; a refused change writes nothing. The record (``incident.md``)
is rendered again after each change.
"""

from __future__ import annotations

import fcntl
import json
import re
import socket
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from portalops.errors import BadInput
from portalops.runbook import lifecycle
from portalops.runbook.journal import (
    Journal,
    detected_at,
    incident_directory,
    new_incident_id,
    parse_stamp,
    read_events,
    stamp,
)
from portalops.runbook.levels import Level
from portalops.runbook.model import Runbook
from portalops.runbook.record import write_record
from portalops.runbook.workcal import TZ, WorkCalendar, deadlines, local_text

CHANNELS = ("phone", "information-centre", "monitoring", "email", "im", "in-person", "other")
SKEW = timedelta(minutes=1)  # a detection time this far ahead of the clock is a typo, not skew


def parse_at(text: str, now: datetime) -> datetime:
    """``--at``: ISO 8601; without an offset it is Beijing time, as the person on the phone reads it."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadInput(f"--at {text!r} is not an ISO time like 2026-12-03T09:40 (Beijing) or ...T01:40Z") from None
    moment = moment.replace(tzinfo=TZ) if moment.tzinfo is None else moment
    if moment > now + SKEW:
        raise BadInput(f"--at {text!r} is in the future ({local_text(moment)}; now {local_text(now)})")
    return moment.astimezone(UTC)


def open_reported(
    root: Path,
    level: Level,
    title: str,
    reported_by: str,
    channel: str,
    by: str,
    detected: datetime,
    now: datetime,
    runbook: Runbook | None = None,
    calendar: WorkCalendar | None = None,
) -> Journal:
    """A person's incident (a phone call...): the responder's ``start`` event, ``opened_by: person``."""
    if not title.strip() or not reported_by.strip() or not by.strip():
        raise BadInput("--title, --reported-by and --by must not be empty")
    if channel not in CHANNELS:
        raise BadInput(f"no channel {channel!r}; known: {', '.join(CHANNELS)}")
    calendar = calendar or WorkCalendar()
    key = runbook.id if runbook else re.sub(r"[^a-z0-9]+", "_", channel)
    root.mkdir(parents=True, exist_ok=True)
    while True:  # two desks opening in the same second each get their own directory
        incident = new_incident_id(key, detected, root)
        try:
            (root / incident).mkdir()
            break
        except FileExistsError:
            continue
    journal = Journal(root / incident, lambda: now)
    journal.write(
        "start",
        incident=incident,
        runbook=runbook.id if runbook else "",
        source=runbook.source if runbook else "",
        level=int(level),
        level_zh=level.spec.name_zh,
        title_zh=title,
        title_en=title,
        inventory="",
        limit=[],
        yes=False,
        user=by,
        controller=socket.gethostname(),
        in_working_hours=calendar.in_working_hours(detected),
        calendar=calendar.source(detected.astimezone(TZ).date()),
        deadlines=[d.as_dict() for d in deadlines(level, detected, calendar)],
        detected=stamp(detected),
        opened_by=lifecycle.PERSON,
        reported_by=reported_by,
        channel=channel,
    )
    write_record(journal.directory, journal.events)
    return journal


@contextmanager
def locked(root: Path, incident: str, now: datetime) -> Iterator[Journal]:
    """The incident's journal, read again under an exclusive lock held until the change is written."""
    directory = incident_directory(root, incident)
    path = directory / "journal.jsonl"
    if not path.is_file():
        raise BadInput(f"no incident {incident!r} under {root}")
    with path.open("a", encoding="utf-8") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        journal = Journal(directory, lambda: now)
        if not any(e.get("event") == "start" for e in journal.events):
            raise BadInput(f"incident {incident!r}: its journal has no start event (corrupt); nothing written")
        yield journal


def transition(root: Path, incident: str, command: str, by: str, now: datetime, **fields: Any) -> dict[str, Any]:
    """Journal one step of the lifecycle if the state allows it; the event written."""
    if not by.strip():
        raise BadInput("--by must not be empty")
    with locked(root, incident, now) as journal:
        step = lifecycle.check(command, incident, journal.events)
        extra = {k: v for k, v in fields.items() if v not in (None, "", False)}
        if step.event == "closed":
            extra |= _times(journal.events, now)
        event = journal.write(step.event, by=by, **extra)
        write_record(journal.directory, journal.events)
    return event


def _times(events: Sequence[Mapping[str, Any]], now: datetime) -> dict[str, Any]:
    """MTTD and MTTR of a person's close, as the responder's ``closed`` carries them."""
    start = next(e for e in events if e.get("event") == "start")
    detected = detected_at(start)
    resolved = lifecycle.resolved_at(events) or now
    return {
        "detected": stamp(detected),
        "opened": start["ts"],
        "resolved": stamp(resolved),
        "mttd_s": round((parse_stamp(str(start["ts"])) - detected).total_seconds(), 3),
        "mttr_s": round((resolved - detected).total_seconds(), 3),
    }


def link(root: Path, incident: str, kind: str, target: str, by: str, now: datetime) -> dict[str, Any] | None:
    """Journal a link to a problem, change or knowledge article; None when it was linked already."""
    lifecycle.check_link(kind, target)
    with locked(root, incident, now) as journal:
        if target in lifecycle.links(journal.events).get(kind, []):
            return None
        event = journal.write("link", kind=kind, target=target, by=by)
        write_record(journal.directory, journal.events)
    return event


@dataclass(frozen=True)
class Summary:
    """One line of ``portalops incident list``."""

    incident: str
    level: int
    title: str
    opened_by: str
    detected: datetime
    opened: datetime
    state: lifecycle.State
    flags: tuple[lifecycle.Flag, ...]

    @property
    def next(self) -> lifecycle.Flag | None:
        return lifecycle.owed(self.flags)

    def as_dict(self, now: datetime) -> dict[str, Any]:
        owed = self.next
        return {
            "id": self.incident,
            "level": self.level,
            "title": self.title,
            "opened_by": self.opened_by,
            "detected": stamp(self.detected),
            "opened": stamp(self.opened),
            "state": str(self.state),
            "deadlines": [f.as_dict(now) for f in self.flags],
            "next": None if owed is None else owed.as_dict(now) | {"left_s": round((owed.due - now).total_seconds())},
        }


def summarize(incident: str, events: Sequence[Mapping[str, Any]], now: datetime) -> Summary:
    start = next(e for e in events if e.get("event") == "start")
    opened = parse_stamp(str(start["ts"]))
    return Summary(
        incident,
        int(start.get("level") or 0),
        lifecycle.title_of(start),
        str(start.get("opened_by") or "runbook"),
        detected_at(start),
        opened,
        lifecycle.state_of(events),
        tuple(lifecycle.flags(events, now)),
    )


def summaries(root: Path, now: datetime, only_open: bool = False) -> tuple[list[Summary], list[str]]:
    """Every incident under ``root``, oldest detection first; and what could not be read."""
    found, skipped = [], []
    for path in sorted(root.glob("*/journal.jsonl")):
        events = read_events(path)
        try:
            summary = summarize(path.parent.name, events, now)
        except (StopIteration, KeyError, TypeError, ValueError) as exc:
            skipped.append(f"{path.parent.name}: unreadable journal ({type(exc).__name__}: {exc}), not listed")
            continue
        if not (only_open and summary.state is lifecycle.State.CLOSED):
            found.append(summary)
    return sorted(found, key=lambda s: (s.detected, s.incident)), skipped


def format_list(rows: Sequence[Summary], now: datetime) -> str:
    lines = [f"{'INCIDENT':<44} {'LVL':<3} {'STATE':<12} {'DETECTED (UTC+8)':<16}  {'NEXT DEADLINE':<28} TITLE"]
    for row in rows:
        detected = row.detected.astimezone(TZ).strftime("%Y-%m-%d %H:%M")
        owed = lifecycle.next_text(row.next, now)
        lines.append(f"{row.incident:<44} L{row.level:<2} {row.state:<12} {detected:<16}  {owed:<28} {row.title}")
    return "\n".join(lines)


def to_json(rows: Sequence[Summary], now: datetime) -> str:
    return json.dumps({"now": stamp(now), "incidents": [r.as_dict(now) for r in rows]}, ensure_ascii=False, indent=2)


def describe_lifecycle(events: Sequence[Mapping[str, Any]], now: datetime) -> list[str]:
    """The lines ``portalops incident show`` adds: state, who reported it, each deadline's flag, events."""
    start = next(e for e in events if e.get("event") == "start")
    lines = [f"state     {lifecycle.state_of(events)}"]
    if start.get("opened_by") == lifecycle.PERSON:
        lines.append(
            f"reported  by {start.get('reported_by')} via {start.get('channel')}; opened by {start.get('user')}"
        )
    if start.get("detected"):
        lines.append(f"detected  {local_text(parse_stamp(str(start['detected'])))} = {start['detected']}")
    for flag in lifecycle.flags(events, now):
        lines.append(f"deadline  {flag.title:<12} due {local_text(flag.due)}  {flag.text(now)}")
    for event in lifecycle.lifecycle_events(events):
        text = lifecycle.event_text(event).replace("**", "")
        lines.append(f"event     {local_text(parse_stamp(str(event['ts'])))}  {text}")
    return lines
