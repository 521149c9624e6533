"""Grades and reports sent, written to an incident's journal; the clocks that run out, told.

:mod:`grading` says what a journal means; this module changes journals (append-only events, the
record rendered again) and warns through the channels of ``portalops_notify``. Nothing here
sends a report to the regulator: a person does, and records it with ``--sent``.
"""

# ruff: noqa: RUF001 - Chinese text keeps its own full-width punctuation on purpose

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from portalops.errors import BadInput
from portalops.resolve import resolve_vars
from portalops.runbook import lifecycle
from portalops.runbook.desk import describe_lifecycle
from portalops.runbook.grading import WARN_FRACTION, Clock, clock_of, grade_label, report_hours
from portalops.runbook.journal import (
    Journal,
    RunState,
    open_incident,
    parse_stamp,
    read_events,
    stamp,
    start_event,
    utc_now,
)
from portalops.runbook.live import INCIDENTS_DIR
from portalops.runbook.notify import Notice, Notifier, channels_from_config
from portalops.runbook.overall import GRADES
from portalops.runbook.record import write_record
from portalops.runbook.workcal import local_text

STAGES = ("initial", "follow-up", "final")


def open_graded(root: Path, incident: str, clock: Callable[[], datetime] = utc_now) -> Journal:
    """An incident fit to grade or report on: it exists and its journal starts as a runbook's does."""
    journal = open_incident(root, incident, clock)
    start_event(journal.events)
    return journal


def _clock(journal: Journal) -> Clock:
    clock = clock_of(journal.incident, journal.events)
    if clock is None:
        raise BadInput(f"incident {journal.incident} is not graded: `portalops incident grade {journal.incident}`")
    return clock


def record_grade(journal: Journal, grade: str, by: str, reason: str, cii_operator: bool) -> Clock:
    """Journal a person's grading; the record is rendered again with its clock."""
    if not by.strip():
        raise BadInput("--by: who grades the incident")
    _, zh, roman, _ = next(g for g in GRADES if g[0] == grade)
    journal.write(
        "grade",
        grade=grade,
        grade_zh=f"{zh}（{roman}）",
        by=by,
        reason=reason,
        cii_operator=cii_operator,
        report_hours=report_hours(grade, cii_operator),
    )
    write_record(journal.directory, journal.events)
    return _clock(journal)


def record_sent(journal: Journal, stage: str, by: str) -> Clock:
    """Journal that a person sent the regulator's report (portalops never sends it)."""
    if _clock(journal).due is None:
        raise BadInput(f"incident {journal.incident} is graded below 较大 (III): no report is due")
    if stage not in STAGES:
        raise BadInput(f"no report stage {stage!r}; known: {', '.join(STAGES)}")
    if not by.strip():
        raise BadInput("--by: who sent the report")
    journal.write("report_sent", regulator=True, stage=stage, by=by)
    write_record(journal.directory, journal.events)
    return _clock(journal)


# A journal's clock as last read, by the journal's path: (its size and mtime then, the clock or None).
ClockCache = dict[Path, tuple[tuple[int, int], Clock | None]]


def clocks(root: Path = INCIDENTS_DIR, cache: ClockCache | None = None) -> list[Clock]:
    """Every incident under ``root`` graded 较大 (III) or above, oldest first. With a ``cache`` (the
    responder's, kept across its sweeps), a journal is read again only when it grew or changed."""
    found = []
    for path in sorted(root.glob("*/journal.jsonl")):
        try:
            seen = path.stat()
        except FileNotFoundError:
            continue
        key = (seen.st_size, seen.st_mtime_ns)
        if cache is not None and path in cache and cache[path][0] == key:
            clock = cache[path][1]
        else:
            events = read_events(path)
            clock = clock_of(path.parent.name, events) if any(e.get("event") == "start" for e in events) else None
            if cache is not None:
                cache[path] = (key, clock)
        if clock is not None and clock.due is not None:
            found.append(clock)
    return found


def due_warnings(
    now: datetime, root: Path = INCIDENTS_DIR, fraction: float = WARN_FRACTION, cache: ClockCache | None = None
) -> list[Clock]:
    """Incidents whose clock has less than ``fraction`` of it left (or ran out) and no report sent."""
    return [clock for clock in clocks(root, cache) if clock.warns(now, fraction)]


def warn(clock: Clock, now: datetime, notifier: Notifier, root: Path = INCIDENTS_DIR) -> list[str]:
    """Tell the duty manager once per state (running out, overdue); each delivery is journalled."""
    state = "overdue" if clock.overdue(now) else "warning"
    journal = open_incident(root, clock.incident)
    told = any(
        e.get("event") == "notify" and e.get("notice") == "report_clock" and e.get("state") == state and e.get("ok")
        for e in journal.events
    )
    if told or clock.due is None:
        return []
    title = f"[报告时限 report deadline] {clock.incident}: {clock.status(now)}"
    text = "\n".join(
        [
            f"### {title}",
            f"- grade: {grade_label(clock.grade)} by {clock.graded.get('by', '?')} at {clock.graded.get('ts', '?')}",
            f"- due: {local_text(clock.due)} = {stamp(clock.due)} ({clock.basis()})",
            f"- draft: `portalops incident report {clock.incident} --regulator --out FILE`",
            f"- once sent: `portalops incident report {clock.incident} --regulator --sent --by NAME`",
        ]
    )
    said = []
    runbook = str(start_event(journal.events).get("runbook", ""))
    for delivery in notifier.send(Notice("report_clock", clock.incident, runbook, clock.level, title, text)):
        journal.write("notify", notice="report_clock", state=state, **delivery.journal_fields())
        said.append(f"{delivery.channel}: {'sent' if delivery.ok else 'FAILED ' + delivery.error}")
    if said:
        write_record(journal.directory, journal.events)
    return said


def notifier_for(source: str) -> Notifier:
    """The channels of ``portalops_notify`` in the inventory at ``source``."""
    rendered = resolve_vars(source, ["all"], {"notify": "portalops_notify | default(None)"}, exact=False)
    return Notifier(channels_from_config(rendered[sorted(rendered)[0]].get("notify")))


def describe_incident(events: list[dict[str, Any]], now: datetime) -> str:
    """``portalops incident show``: what ran, how it ended, its grade and its reporting clock."""
    start = start_event(events)
    state = RunState.replay(events)
    incident = str(start.get("incident"))
    end = state.end
    ended = f"{end.get('outcome')} at {local_text(parse_stamp(str(end['ts'])))}" if end else "open (not finished)"
    lines = [
        f"incident  {incident}",
        f"runbook   {start.get('runbook') or '-'}  L{start.get('level')} {start.get('level_zh', '')}  "
        f"{lifecycle.title_of(start)}",
        f"started   {local_text(parse_stamp(str(start['ts'])))} = {start['ts']}",
        *([f"outcome   {ended}"] if end or start.get("runbook") else []),
        *describe_lifecycle(events, now),
    ]
    clock = clock_of(incident, events)
    if clock is None:
        return "\n".join([*lines, f"grade     not graded: `portalops incident grade {incident}` suggests one"])
    graded = clock.graded
    why = f" ({graded['reason']})" if graded.get("reason") else ""
    lines.append(f"grade     {grade_label(clock.grade)} by {graded.get('by')} at {graded['ts']}{why}")
    if clock.due is not None:
        lines.append(f"deadline  {local_text(clock.due)} = {stamp(clock.due)} ({clock.basis()})")
    lines.append(f"report    {clock.status(now)}")
    lines += [f"sent      {e.get('stage')} by {e.get('by')} at {e['ts']}" for e in clock.sent]
    return "\n".join(lines)
