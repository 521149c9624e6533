"""National grading of an incident and the regulatory reporting clock it starts.

Our L1-L3 are service levels; the national grade (GB/T 20986-2023, 《国家网络安全事件报告管理办法》)
is a person's decision, journalled as a ``grade`` event (who, when, grade, reason). A grade of 较大
(III) or above puts the incident under the reporting duty, and the rules count its time from
discovery: the report is due 4 h after the incident was found (the start's ``detected``), 1 h for an
operator of critical information infrastructure (``portalops_cii_operator``), however late the
grading came; a late grading finds the clock partly used or already overdue, and says so. The
hours are written into the grade event (which keeps its own time), so the record keeps the duty
that applied when the incident was graded. A later grade wins; an upgrade keeps the hours of the
grade that raised it, a grade below 较大 lifts the duty.
"""

# ruff: noqa: RUF001 - Chinese text keeps its own full-width punctuation on purpose

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from portalops.errors import BadInput
from portalops.runbook import lifecycle
from portalops.runbook.journal import detected_at, parse_stamp, stamp, start_event
from portalops.runbook.levels import Level
from portalops.runbook.overall import CRITERIA, GRADES, LEVEL_GRADE, RAISING
from portalops.runbook.workcal import local_text, span

REPORT_HOURS = 4  # to the provincial cyberspace office
CII_REPORT_HOURS = 1  # critical information infrastructure operators
WARN_FRACTION = 0.25  # warn the duty manager when less than this share of the clock is left
# Each grade by its key, 中文, roman numeral and English names, lower-cased.
ALIASES: dict[str, str] = {
    alias: key
    for key, zh, roman, en in GRADES
    for alias in (key, key.replace("_", "-"), zh, roman.lower(), en, en.replace(" ", "-"))
} | {"especially-major": "particularly_major", "significant": "relatively_major"}
# Which criterion of `portalops_national_grading` a runbook's duration measures. A runbook not here
# (L2, L3, or a cause the journal cannot tell) gets no suggestion: a person grades it.
CRITERION_OF: dict[str, str] = {
    "l1_portal_unreachable": "unreachable_hours",
    "l1_database_lost": "unreachable_hours",  # the sites' content cannot be served
    "l1_defacement": "defaced_home_hours",  # the journal cannot tell which page: the home page, on the safe side
}


def grade_key(text: str) -> str:
    """``特别重大``, ``I``, ``especially-major``... as the grade's key; anything else is bad input."""
    key = ALIASES.get(text.strip().lower())
    if key is None:
        known = ", ".join(f"{zh} ({roman}, {en.replace(' ', '-')})" for _, zh, roman, en in GRADES)
        raise BadInput(f"no national grade {text!r}; known: {known}")
    return key


def grade_label(key: str) -> str:
    for name, zh, roman, en in GRADES:
        if name == key:
            return f"{zh}（{roman}） {en}"
    return key


@dataclass(frozen=True)
class Suggestion:
    grade: str | None  # None: no suggestion, a person grades it
    why: str


def suggest(
    events: Sequence[Mapping[str, Any]], grading: Mapping[str, Mapping[str, float]], now: datetime
) -> Suggestion:
    """A national grade from the incident's level, runbook and duration (detection to resolution), for a
    person to confirm."""
    start = start_event(events)
    try:
        level = Level(int(start.get("level", 0)))
        began = detected_at(start)
    except (KeyError, TypeError, ValueError):
        return Suggestion(None, "the journal holds no usable level or start time: no suggestion")
    criterion = CRITERION_OF.get(str(start.get("runbook", "")))
    if level is not Level.L1 or criterion is None:
        zh, en = LEVEL_GRADE[level]
        return Suggestion(None, f"L{int(level)} `{start.get('runbook')}`: {zh} / {en}; no criterion to measure")
    # As the regulator's draft counts it: from detection to the resolution that holds (a person's or
    # the runbook's recovery), or to now while it is open.
    resolved = lifecycle.resolution(events)
    hours = ((parse_stamp(str(resolved["ts"])) if resolved else now) - began).total_seconds() / 3600
    thresholds = grading[criterion]
    met = [g for g in RAISING if hours >= thresholds[g]]
    zh, en, _ = CRITERIA[criterion]
    how = "detection to recovery" if resolved else "so far, not recovered"
    measured = f"{zh} / {en}: at least {hours:.2f} h ({how})"
    if met:
        return Suggestion(met[0], f"{measured} >= {thresholds[met[0]]:g} h ({grade_label(met[0])})")
    lowest = thresholds[RAISING[-1]]
    return Suggestion("general", f"{measured} < {lowest:g} h ({grade_label(RAISING[-1])}); L1 is general at least")


@dataclass(frozen=True)
class Clock:
    """The reporting duty of one incident, as its journal says."""

    incident: str
    level: int
    grade: str  # the latest grade's key
    graded: Mapping[str, Any]  # the latest grade event
    started: datetime | None  # the detection; None: the grade is below 较大, no report is due
    hours: float
    sent: tuple[Mapping[str, Any], ...]  # report_sent events
    raised: datetime | None = None  # when the grade that put it under the duty was recorded

    @property
    def due(self) -> datetime | None:
        return self.started + timedelta(hours=self.hours) if self.started else None

    def basis(self) -> str:
        """How the deadline was reckoned, and how much of the clock the grading found used."""
        if self.started is None:
            return ""
        text = f"{self.hours:g} h after detection at {local_text(self.started)}"
        if self.raised is None or self.raised <= self.started:
            return text
        used = (self.raised - self.started) / timedelta(hours=self.hours)
        late = f"{used:.0%} of the clock used" if used < 1 else "the clock had run out"
        return f"{text}; graded {span((self.raised - self.started).total_seconds())} after it: {late}"

    def left(self, now: datetime) -> timedelta | None:
        return self.due - now if self.due else None

    def status(self, now: datetime) -> str:
        if self.due is None:
            return "no report due (below 较大 III)"
        if self.sent:
            first = parse_stamp(str(self.sent[0]["ts"]))
            late = first - self.due
            when = "on time" if late <= timedelta(0) else f"late by {span(late.total_seconds())}"
            return f"report sent {stamp(first)} by {self.sent[0].get('by', '?')} ({when})"
        left = self.due - now
        if left < timedelta(0):
            return f"OVERDUE by {span(left.total_seconds())}"
        return f"{span(left.total_seconds())} left"

    def overdue(self, now: datetime) -> bool:
        return self.due is not None and not self.sent and now > self.due

    def warns(self, now: datetime, fraction: float = WARN_FRACTION) -> bool:
        left = self.left(now)
        return left is not None and not self.sent and left < timedelta(hours=self.hours * fraction)


def clock_of(incident: str, events: Sequence[Mapping[str, Any]]) -> Clock | None:
    """The clock of an incident's grades; None when it was never graded."""
    grades = [e for e in events if e.get("event") == "grade"]
    if not grades:
        return None
    latest = grades[-1]
    raised: datetime | None = None
    hours = float(latest.get("report_hours") or 0)
    for event in grades:  # the first grade of 较大 or above since the last one below sets the hours
        if event.get("grade") not in RAISING:
            raised = None
        elif raised is None:
            raised, hours = parse_stamp(str(event["ts"])), float(event["report_hours"])
    sent = tuple(e for e in events if e.get("event") == "report_sent" and e.get("regulator"))
    start = start_event(events)
    started = detected_at(start) if raised else None  # the rules count from discovery, not from the grading
    level = int(start.get("level", 0))
    return Clock(incident, level, str(latest["grade"]), latest, started, hours, sent if started else (), raised)


def report_hours(grade: str, cii_operator: bool) -> float:
    if grade not in RAISING:
        return 0
    return CII_REPORT_HOURS if cii_operator else REPORT_HOURS
