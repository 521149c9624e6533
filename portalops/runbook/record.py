"""``incidents/<id>/incident.md``: the incident record, rendered from the journal alone.

Timeline, response deadlines and whether they were met, actions, outcome,
follow-ups for problem management. A pure function of the journal's events,
rewritten after every step, so even a killed run leaves a readable record.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from portalops.runbook import lifecycle
from portalops.runbook.grading import clock_of, grade_label
from portalops.runbook.journal import RunState, parse_stamp
from portalops.runbook.workcal import local_text, span


def _hms(stamp: str) -> str:
    return stamp[11:19] if len(stamp) >= 19 else stamp


def _timeline_line(event: dict[str, Any]) -> str | None:
    kind = event["event"]
    if kind == "start" and event.get("opened_by") == lifecycle.PERSON:
        return f"opened by {event.get('user', '?')}: reported by {event.get('reported_by')} via {event.get('channel')}"
    if kind == "start":
        return f"runbook `{event['runbook']}` started by {event.get('user', '?')}"
    if kind == "resume":
        return f"resumed by {event.get('user', '?')} at step `{event.get('from_step', '?')}`"
    if kind == "notify":
        verdict = "sent" if event["ok"] else f"FAILED ({event.get('error', '')})"
        return f"{event['notice']} notice via {event['channel']} ({event['type']}): {verdict}"
    if kind == "step_end":
        return f"step `{event['step']}` ({event['kind']}): **{event['result']}** - {event.get('summary', '')}"
    if kind == "confirm":
        return f"confirmation for `{event['step']}`: {event['answer']}"
    if kind in ("interrupted", "error"):
        stopped = "".join(f"; {line}" for line in event.get("stopped") or [])
        return f"{kind} at step `{event.get('step', '?')}`: {event.get('reason', '')}{stopped}"
    if kind == "end":
        return f"end: **{event['outcome']}** (exit {event['exit']})"
    if kind == "grade":
        why = f": {event['reason']}" if event.get("reason") else ""
        return f"graded **{grade_label(str(event['grade']))}** by {event.get('by', '?')}{why}"
    if kind == "report_sent":
        return f"{event.get('stage', '')} report to the regulator marked sent by {event.get('by', '?')}"
    return _responder_line(event)


def _responder_line(event: dict[str, Any]) -> str | None:
    """The events of an incident the responder (portalops.responder) opened from an alert."""
    kind = event["event"]
    if kind == "alert":
        name = f"alert {event['alertname']}" if event.get("alertname") else "alert"
        return f"{name} firing since {event['startsAt']} (occurrence {event['occurrence']}, via {event['via']})"
    if kind == "alert_joined":
        alert = event["alert"]
        line = f"alert {alert.get('alertname', '?')} ({alert.get('fingerprint', '?')}) joins: the same runbook's fault"
        if event.get("during_repair"):
            return line.replace("the same runbook's fault", "began while the run acted on the hosts (its own doing)")
        late = event.get("after_recovery")
        return line + (", reported late (began within the settle after the recovery)" if late else "")
    if kind == "alert_moved":
        return f"alert {event['fingerprint']} moved to incident {event['to']}: {event['reason']}, a fault of its own"
    if kind == "alert_resolved":
        return f"alert resolved at {event['endsAt']} (via {event['via']})"
    if kind == "dispatch":
        return f"responder: runbook {event['mode']}" + (f"; `{event['command']}`" if event.get("command") else "")
    if kind == "run_waits":
        return f"runbook waits for its hosts: {event['reason']}"
    if kind == "run_ended":
        return f"unattended run of `{event['runbook']}` exited {event['exit']}"
    if kind == "closed" and event.get("by") == "portalops-responder":
        return f"**closed**: MTTD {event['mttd_s']:.0f} s, MTTR {event['mttr_s']:.0f} s (from the alert's startsAt)"
    if kind in ("link", *(t.event for t in lifecycle.TRANSITIONS.values())):
        return lifecycle.event_text(event)
    return None


def _met(flag: lifecycle.Flag) -> str:
    """The deadline's flag as the record shows it, computed from the events (never typed)."""
    if flag.status == "pending":
        return "not yet (pending)"
    if flag.at is None:
        return f"n/a: {flag.how}" if flag.status == "n/a" else "**no**: none recorded by the due time"
    if flag.status == "met":
        return f"yes: {flag.how} {flag.at:%H:%M:%S} UTC"
    return f"**no**: {flag.how} {flag.at:%H:%M:%S} UTC, {span((flag.at - flag.due).total_seconds())} late"


def render_incident(events: list[dict[str, Any]]) -> str:
    state = RunState.replay(events)
    start = state.start
    if not start:
        return "# Incident\n\nThe journal has no start event.\n"
    now = parse_stamp(str(events[-1]["ts"]))  # the record is as of its last event
    limit = ", ".join(start.get("limit") or []) or "none"
    person = start.get("opened_by") == lifecycle.PERSON
    title = lifecycle.title_of(start)
    source = "reported" if person else "alert startsAt"
    lines = [
        f"# Incident {start['incident']}",
        "",
        f"L{start['level']} {start.get('level_zh', '')} · {title}",
        "",
        "| | |",
        "|---|---|",
        f"| state | **{lifecycle.state_of(events)}** |",
        *(
            [f"| runbook | `{start['runbook']}`" + (f" ({start['source']})" if start.get("source") else "") + " |"]
            if start.get("runbook") or not person
            else []
        ),
        *([f"| reported | by {start.get('reported_by')} via {start.get('channel')} |"] if person else []),
        *(
            [f"| detected | {local_text(parse_stamp(start['detected']))} = {start['detected']} ({source}) |"]
            if start.get("detected")
            else []
        ),
        f"| {'opened' if person else 'started'} | {local_text(parse_stamp(start['ts']))} = {start['ts']} |",
        f"| by | {start.get('user', '?')} on {start.get('controller', '?')} |",
        *([] if person else [f"| inventory | {start.get('inventory', '')}; limit: {limit} |"]),
        f"| in working hours | {'yes' if start.get('in_working_hours') else 'no'} ({start.get('calendar', '')}) |",
    ]
    end = state.end
    if end:
        took = (parse_stamp(end["ts"]) - parse_stamp(start["ts"])).total_seconds()
        lines.append(
            f"| outcome | **{end['outcome']}** (exit {end['exit']}) at {end['ts']}, {took:.0f} s after start |"
        )
    elif start.get("runbook"):
        lines.append("| outcome | **open**: the run has not finished (resume it with `--resume`) |")
    linked = [f"{kind} {target}" for kind, targets in lifecycle.links(events).items() for target in targets]
    if linked:
        lines.append(f"| links | {', '.join(linked)} |")
    lines += ["", "## Response deadlines", "", "| deadline | rule | due (UTC+8) | met |", "|---|---|---|---|"]
    for flag in lifecycle.flags(events, now):
        lines.append(f"| {flag.title} | {flag.rule} | {local_text(flag.due)} | {_met(flag)} |")
    lines += _national(events, start["incident"])
    lines += ["", "## Timeline (UTC)", "", "| time | event |", "|---|---|"]
    for event in events:
        text = _timeline_line(event)
        if text:
            lines.append(f"| {_hms(event['ts'])} | {text.replace('|', '/')} |")
    unknown = [f for e in events if e["event"] == "step_end" and e["result"] == "unknown" for f in e["findings"]]
    sections = (
        ("Findings", state.findings),
        ("Could not tell (unknown, not acted on)", unknown),
        ("Actions", state.actions),
        ("Follow-ups (problem management)", _followups(state, events, now)),
    )
    for title, items in sections:
        lines += ["", f"## {title}", ""]
        lines += [f"- {item}" for item in items] or ["- none"]
    return "\n".join(lines) + "\n"


def _national(events: list[dict[str, Any]], incident: str) -> list[str]:
    """The national grade and the regulatory reporting clock, once a person graded the incident."""
    clock = clock_of(incident, events)
    if clock is None:
        return []
    lines = ["", "## National grade and regulatory report", "", "| | |", "|---|---|"]
    lines.append(f"| grade | **{grade_label(clock.grade)}** by {clock.graded.get('by', '?')} at {clock.graded['ts']} |")
    if clock.due is None:
        return [*lines, "| report | none due (below 较大 III) |"]
    lines.append(f"| report due | {local_text(clock.due)} ({clock.basis()}) |")
    sent = [f"{e.get('stage')} by {e.get('by')} at {e['ts']}" for e in clock.sent]
    return [*lines, f"| sent | {'; '.join(sent) or '**not yet**: `portalops incident show` says how long is left'} |"]


def write_record(directory: Path, events: list[dict[str, Any]]) -> Path:
    path = directory / "incident.md"
    path.write_text(render_incident(events), encoding="utf-8")
    return path


def _followups(state: RunState, events: list[dict[str, Any]], now: datetime) -> list[str]:
    items = list(state.followups)
    incident = state.start["incident"]
    command = {"respond": "ack", "callback": "callback", "onsite": "onsite"}
    for flag in lifecycle.flags(events, now):
        if flag.at is None and flag.status in ("pending", "breached"):
            what = f"`portalops incident {command.get(flag.name, flag.name)} {incident}`"
            items.append(
                f"record the actual time of '{flag.title.split(' ', 1)[-1]}' (due {local_text(flag.due)}): {what}"
            )
    if state.end.get("outcome") != "recovered" and not lifecycle.links(events).get("problem"):
        items.append("find the root cause and record it as a problem (the incident was not closed by the runbook)")
    return items
