"""``incidents/<id>/incident.md``: the incident record, rendered from the journal alone.

Timeline, response deadlines and whether they were met, actions, outcome,
follow-ups for problem management. A pure function of the journal's events,
rewritten after every step, so even a killed run leaves a readable record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from portalops.runbook.grading import clock_of, grade_label
from portalops.runbook.journal import RunState, parse_stamp
from portalops.runbook.workcal import local_text


def _hms(stamp: str) -> str:
    return stamp[11:19] if len(stamp) >= 19 else stamp


def _timeline_line(event: dict[str, Any]) -> str | None:
    kind = event["event"]
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
        return f"alert firing since {event['startsAt']} (occurrence {event['occurrence']}, via {event['via']})"
    if kind == "alert_resolved":
        return f"alert resolved at {event['endsAt']} (via {event['via']})"
    if kind == "dispatch":
        return f"responder: runbook {event['mode']}" + (f"; `{event['command']}`" if event.get("command") else "")
    if kind == "run_waits":
        return f"runbook waits for its hosts: {event['reason']}"
    if kind == "run_ended":
        return f"unattended run of `{event['runbook']}` exited {event['exit']}"
    if kind == "closed":
        return f"**closed**: MTTD {event['mttd_s']:.0f} s, MTTR {event['mttr_s']:.0f} s (from the alert's startsAt)"
    return None


def _response_time(events: list[dict[str, Any]]) -> str | None:
    """When the responders were told: the first delivered start notice."""
    for event in events:
        if event["event"] == "notify" and event["notice"] == "start" and event["ok"]:
            return str(event["ts"])
    return None


def _met(deadline: dict[str, Any], events: list[dict[str, Any]], start: str) -> str:
    due = parse_stamp(deadline["due"])
    if deadline["name"] == "respond":
        told = _response_time(events)
        moment = told or start
        what = "start notice delivered" if told else "runbook started (no notice delivered)"
        verdict = "yes" if parse_stamp(moment) <= due else "**no**"
        return f"{verdict}: {what} {_hms(moment)} UTC"
    return "not measured by the runbook: the responder records it (see follow-ups)"


def render_incident(events: list[dict[str, Any]]) -> str:
    state = RunState.replay(events)
    start = state.start
    if not start:
        return "# Incident\n\nThe journal has no start event.\n"
    lines = [
        f"# Incident {start['incident']}",
        "",
        f"L{start['level']} {start.get('level_zh', '')} · {start['title_zh']} / {start['title_en']}",
        "",
        "| | |",
        "|---|---|",
        f"| runbook | `{start['runbook']}`" + (f" ({start['source']})" if start.get("source") else "") + " |",
        *(
            [f"| detected | {local_text(parse_stamp(start['detected']))} = {start['detected']} (alert startsAt) |"]
            if start.get("detected")
            else []
        ),
        f"| started | {local_text(parse_stamp(start['ts']))} = {start['ts']} |",
        f"| by | {start.get('user', '?')} on {start.get('controller', '?')} |",
        f"| inventory | {start.get('inventory', '')}; limit: {', '.join(start.get('limit') or []) or 'none'} |",
        f"| in working hours | {'yes' if start.get('in_working_hours') else 'no'} ({start.get('calendar', '')}) |",
    ]
    end = state.end
    if end:
        took = (parse_stamp(end["ts"]) - parse_stamp(start["ts"])).total_seconds()
        lines.append(
            f"| outcome | **{end['outcome']}** (exit {end['exit']}) at {end['ts']}, {took:.0f} s after start |"
        )
    else:
        lines.append("| outcome | **open**: the run has not finished (resume it with `--resume`) |")
    lines += ["", "## Response deadlines", "", "| deadline | rule | due (UTC+8) | met |", "|---|---|---|---|"]
    for deadline in start.get("deadlines", []):
        rule = f"{deadline['rule_zh']} / {deadline['rule_en']}"
        due = local_text(parse_stamp(deadline["due"]))
        met = _met(deadline, events, start["ts"])
        lines.append(f"| {deadline['title_zh']} {deadline['title_en']} | {rule} | {due} | {met} |")
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
        ("Follow-ups (problem management)", _followups(state, start)),
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
    lines.append(f"| report due | {local_text(clock.due)} ({clock.hours:g} h after grading) |")
    sent = [f"{e.get('stage')} by {e.get('by')} at {e['ts']}" for e in clock.sent]
    return [*lines, f"| sent | {'; '.join(sent) or '**not yet**: `portalops incident show` says how long is left'} |"]


def write_record(directory: Path, events: list[dict[str, Any]]) -> Path:
    path = directory / "incident.md"
    path.write_text(render_incident(events), encoding="utf-8")
    return path


def _followups(state: RunState, start: dict[str, Any]) -> list[str]:
    items = list(state.followups)
    for deadline in start.get("deadlines", []):
        if deadline["name"] != "respond":
            due = local_text(parse_stamp(deadline["due"]))
            items.append(f"record the actual time of '{deadline['title_en']}' (due {due})")
    if state.end.get("outcome") != "recovered":
        items.append("find the root cause and record it as a problem (the incident was not closed by the runbook)")
    return items
