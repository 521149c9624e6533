"""Repeated incidents suggest a problem; a person decides whether to open one (nothing is created here).

Incidents repeat when they share a runbook (whoever opened them: the responder, a person, a run)
or, for an alert no runbook answers, the alert's name. Two or more of them detected within
``days`` of each other suggest a problem, unless a problem that is not closed is already about that
runbook or alert, or every one of them is linked to a problem already (a problem's record lists it,
or its journal links one). An incident a person opened without a runbook has nothing to compare
by and never counts, nor does a fault drill's run (its report under ``reports/fault-drills/`` names
the incident): a drill repeats a fault on purpose.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from portalops.faultdrill import REPORTS_DIR as DRILL_REPORTS
from portalops.runbook import lifecycle
from portalops.runbook.journal import detected_at, read_events
from portalops.service.problems import Problem, Status

DEFAULT_DAYS = 30
DAYS_VARIABLE = "PORTALOPS_PROBLEM_DAYS"  # the site's window, when --days is not given


def default_days() -> int:
    text = os.environ.get(DAYS_VARIABLE, "")
    return int(text) if text.isdigit() and int(text) > 0 else DEFAULT_DAYS


@dataclass(frozen=True)
class Occurrence:
    incident: str
    kind: str  # runbook | alert
    name: str
    title: str
    detected: datetime
    problems: tuple[str, ...]  # problems its journal links to

    @property
    def key(self) -> tuple[str, str]:
        return self.kind, self.name


def occurrence(incident: str, events: Sequence[Mapping[str, Any]]) -> Occurrence | None:
    start = next((e for e in events if e.get("event") == "start"), None)
    if start is None:
        return None
    alert: Mapping[str, Any] = start["alert"] if isinstance(start.get("alert"), Mapping) else {}
    if start.get("runbook"):
        kind, name = "runbook", str(start["runbook"])
    elif alert.get("alertname"):
        kind, name = "alert", str(alert["alertname"])
    else:
        return None
    try:
        detected = detected_at(start)
    except (KeyError, ValueError):
        return None
    linked = tuple(lifecycle.links(events).get("problem", []))
    return Occurrence(incident, kind, name, lifecycle.title_of(start), detected, linked)


def drilled(directory: Path | None = None) -> frozenset[str]:
    """The incidents of fault drills, as their reports name them (default: reports/fault-drills/)."""
    directory = directory or DRILL_REPORTS
    found = set()
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(report, dict) and report.get("incident"):
            found.add(str(report["incident"]))
    return frozenset(found)


def occurrences(root: Path, drills: frozenset[str] = frozenset()) -> list[Occurrence]:
    """Every incident under ``root`` that has a runbook or an alert, by detection time; none of ``drills``."""
    found = []
    for path in sorted(root.glob("*/journal.jsonl")) if root.is_dir() else []:
        if path.parent.name in drills:
            continue
        found_one = occurrence(path.parent.name, read_events(path))
        if found_one:
            found.append(found_one)
    return sorted(found, key=lambda o: (o.detected, o.incident))


@dataclass(frozen=True)
class Suggestion:
    kind: str
    name: str
    days: int
    incidents: tuple[Occurrence, ...]
    earlier: tuple[str, ...]  # closed problems some of them were linked to

    def command(self) -> str:
        title = self.incidents[-1].title
        words = ["portalops", "problem", "open", "--title", title, f"--{self.kind}", self.name]
        for found in self.incidents:
            words += ["--incident", found.incident]
        return shlex.join(words)

    def text(self) -> str:
        ids = ", ".join(o.incident for o in self.incidents)
        again = f"; after {', '.join(self.earlier)} was closed" if self.earlier else ""
        return f"{len(self.incidents)} incidents of {self.kind} {self.name} within {self.days} days ({ids}){again}"

    def as_dict(self) -> dict[str, Any]:
        return {
            self.kind: self.name,
            "days": self.days,
            "incidents": [o.incident for o in self.incidents],
            "earlier_problems": list(self.earlier),
            "command": self.command(),
        }


def covering(found: Occurrence, problems: Sequence[Problem]) -> list[Problem]:
    """Problems not closed about the same runbook or alert, and any problem the incident is linked to."""
    return [
        p
        for p in problems
        if (p.status is not Status.CLOSED and p.meta.get(found.kind) == found.name)
        or found.incident in p.listed("incidents")
        or p.id in found.problems
    ]


def _suggest(group: Sequence[Occurrence], problems: Sequence[Problem], days: int) -> Suggestion | None:
    if len(group) < 2:
        return None
    if any(p.status is not Status.CLOSED and p.meta.get(group[0].kind) == group[0].name for p in problems):
        return None  # a problem is already about it
    covered = [covering(o, problems) for o in group]
    if all(covered):
        return None  # each is linked to a problem already
    earlier = tuple(sorted({p.id for found in covered for p in found}))
    return Suggestion(group[0].kind, group[0].name, days, tuple(group), earlier)


def suggestions(found: Sequence[Occurrence], problems: Sequence[Problem], now: datetime, days: int) -> list[Suggestion]:
    """Runbooks and alerts with two or more incidents detected in the last ``days`` days."""
    since = now - timedelta(days=days)
    groups: dict[tuple[str, str], list[Occurrence]] = {}
    for one in found:
        if since <= one.detected <= now:
            groups.setdefault(one.key, []).append(one)
    made = (_suggest(group, problems, days) for group in groups.values())
    return [s for s in made if s is not None]


def for_incident(
    incident: str, found: Sequence[Occurrence], problems: Sequence[Problem], days: int
) -> tuple[list[Problem], Suggestion | None]:
    """What ``incident show`` says: the problems about it, else a suggestion from its neighbours."""
    this = next((o for o in found if o.incident == incident), None)
    if this is None:
        return [], None
    about = covering(this, problems)
    if about:
        return about, None
    window = timedelta(days=days)
    group = [o for o in found if o.key == this.key and abs(o.detected - this.detected) <= window]
    return [], _suggest(group, problems, days)


def incident_lines(
    root: Path, incident: str, problems: Sequence[Problem], days: int, drills: frozenset[str] = frozenset()
) -> list[str]:
    """The lines ``portalops incident show`` adds: the problems about the incident, or a suggestion."""
    about, suggestion = for_incident(incident, occurrences(root, drills), problems, days)
    lines = [f"problem   {p.id} ({p.status}): {p.meta['title']}" for p in about]
    if suggestion:
        lines.append(f"problem   suggested: {suggestion.text()}")
        lines.append(f"          open it: {suggestion.command()}")
    return lines
