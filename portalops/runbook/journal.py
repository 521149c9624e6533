"""The incident journal: ``incidents/<id>/journal.jsonl``, one JSON object per line.

Every event is written (and flushed to disk) as it happens, so an interrupted
run leaves an exact record of where it stopped; :class:`RunState` replays the
journal, which is how ``--resume`` knows which steps are done.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from portalops.errors import BadInput

EXCERPT = 4000  # characters of a command's output kept in the journal
# Step results that count as done when a run resumes.
DONE = frozenset(
    {
        "ok",
        "problem",
        "not_needed",
        "done",
        "failed",
        "unknown",
        "passed",
        "confirmed",
        "pending",
        "escalated",
        "skipped",
    }
)
FINAL = frozenset({"recovered", "not_recovered"})


def utc_now() -> datetime:
    return datetime.now(UTC)


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def excerpt(text: str, limit: int = EXCERPT) -> str:
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-limit:]


def new_incident_id(runbook_id: str, moment: datetime, root: Path) -> str:
    base = f"{moment.astimezone(UTC):%Y%m%dT%H%M%SZ}-{runbook_id}"
    candidate, n = base, 1
    while (root / candidate).exists():
        n += 1
        candidate = f"{base}-{n}"
    return candidate


class Journal:
    """Append-only events of one incident."""

    def __init__(self, directory: Path, clock: Callable[[], datetime] = utc_now) -> None:
        self.directory = directory
        self.path = directory / "journal.jsonl"
        self.clock = clock
        self.events: list[dict[str, Any]] = read_events(self.path) if self.path.exists() else []

    @property
    def incident(self) -> str:
        return self.directory.name

    def write(self, event: str, **fields: Any) -> dict[str, Any]:
        entry = {"ts": stamp(self.clock()), "event": event, **fields}
        self.directory.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self.events.append(entry)
        return entry


def read_events(path: Path) -> list[dict[str, Any]]:
    """Every complete line; a line cut short by a crash is dropped, not fatal."""
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events


def open_incident(root: Path, incident: str, clock: Callable[[], datetime] = utc_now) -> Journal:
    directory = incident_directory(root, incident)
    if not (directory / "journal.jsonl").exists():
        raise BadInput(f"no incident {incident!r} under {root}")
    return Journal(directory, clock)


def incident_directory(root: Path, incident: str) -> Path:
    """An incident's directory: a name directly under ``root``, never a path that leads elsewhere."""
    directory = root / incident
    inside = directory.resolve().parent == root.resolve()
    if not incident or incident in (".", "..") or Path(incident).name != incident or not inside:
        raise BadInput(f"{incident!r} is not an incident of {root}: give the incident's name (its directory there)")
    return directory


def start_event(events: Sequence[Mapping[str, Any]], what: str = "the incident's journal") -> Mapping[str, Any]:
    """The run's start event: the runbook, level, inventory and limit it began with."""
    for event in events:
        if event.get("event") == "start":
            return event
    raise BadInput(f"{what} has no start event: not a runbook incident, or corrupt")


def detected_at(start: Mapping[str, Any]) -> datetime:
    """When the fault was found: the start event's ``detected`` (the alert's startsAt, the time a person
    was told), else its own time (a person started the runbook: that is when it was found)."""
    return parse_stamp(str(start.get("detected") or start["ts"]))


def start_of(root: Path, incident: str) -> dict[str, Any]:
    """The start event of an incident: a resumed run keeps its inventory and limit."""
    return dict(start_event(open_incident(root, incident).events, f"incident {incident!r}"))


@dataclass
class RunState:
    """What the journal says happened so far."""

    runbook: str = ""
    start: dict[str, Any] = field(default_factory=dict)
    end: dict[str, Any] = field(default_factory=dict)
    results: dict[str, str] = field(default_factory=dict)
    verified: dict[str, bool] = field(default_factory=dict)
    escalated: bool = False
    findings: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    followups: list[str] = field(default_factory=list)

    @property
    def recovered(self) -> bool | None:
        return all(self.verified.values()) if self.verified else None

    @property
    def finished(self) -> bool:
        return self.end.get("outcome") in FINAL

    def is_done(self, step_id: str) -> bool:
        return self.results.get(step_id) in DONE

    def apply(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "start":
            self.runbook = str(event.get("runbook", ""))
            self.start = event
        elif kind == "resume":
            self.end = {}
        elif kind == "end":
            self.end = event
        elif kind == "step_end":
            step = str(event["step"])
            self.results[step] = str(event["result"])
            # A verify step with no host left after --limit checked nothing: it neither passes nor fails.
            if event.get("kind") == "verify" and event["result"] != "skipped":
                self.verified[step] = event["result"] == "passed"
            self.escalated = self.escalated or event["result"] == "escalated"
            self.findings += list(event.get("findings", []))
            self.actions += list(event.get("actions", []))
            self.followups += list(event.get("followups", []))

    @classmethod
    def replay(cls, events: list[dict[str, Any]]) -> RunState:
        state = cls()
        for event in events:
            state.apply(event)
        return state
