"""An incident's lifecycle and its response deadlines, read from its journal alone.

The states, and what moves an incident between them (each a journal event, timestamped and
attributed; the command that writes it in brackets)::

    new ──acknowledged (ack)──> acknowledged ──resolved (resolve)──> resolved ──closed (close)──> closed
                                      ^         (or a runbook's end: recovered)          |
                                      └──────────────── reopened (reopen) <──────────────┘

- an incident a person opened starts ``new`` (a person acknowledges it); the responder's starts
  ``new`` too and the responder acknowledges it at once (its own ``acknowledged`` event, ``by:
  portalops-responder``): it notifies the duty contacts and dispatches the runbook; one a person
  started by running a runbook starts ``acknowledged`` (running it is the response);
- ``called_back`` and ``on_site`` (``remote`` for remote handling) are facts recorded while the
  incident is acknowledged or resolved; ``workaround`` only while acknowledged; none of them before
  an acknowledgement, none on a closed incident;
- ``reopened`` (from resolved or closed) goes back to acknowledged; the deadlines stay those of the
  first detection;
- ``link`` (a problem, a change, a knowledge article) is allowed in every state.

Each deadline of the ``start`` event gets a flag computed from the events, never typed: ``met``
(the first evidence at or before ``due``), ``breached`` (later, or none and ``due`` passed),
``pending``, or ``n/a`` for the on-site deadline of an incident resolved before it was due without a
visit (there was nothing left to go on site for). A call-back is owed to the reporter whatever
happened: an unattended recovery does not replace it.

This module is the one place that says when a deadline is met; ``portalops incident`` (list, show,
the record) and ``portalops status`` all show what :func:`flags` computes:

- ``respond`` (L1, at once = 5 min): the first ``acknowledged`` (a person's ``ack``, or the
  responder's auto-acknowledgement of the incident it opened), or a person starting the runbook;
  a delivered notice alone is not a response;
- ``callback`` (L2 15 min, L3 30 min): only a person's ``called_back`` (``portalops incident
  callback``); neither the responder's acknowledgement nor a runbook's recovery counts;
- ``onsite``: a person's ``on_site`` (or ``--remote``); ``n/a`` when resolved before it was due.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from portalops.errors import BadInput
from portalops.runbook.journal import parse_stamp
from portalops.runbook.workcal import TZ, span

PERSON = "person"  # opened_by of an incident a person opened (a phone call...)


class State(StrEnum):
    NEW = "new"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    CLOSED = "closed"


@dataclass(frozen=True)
class Transition:
    """A command of ``portalops incident``, the event it journals and where it is allowed."""

    command: str
    event: str
    allowed: frozenset[State]
    to: State | None  # None: the state does not change
    help: str


_WORKING = frozenset({State.ACKNOWLEDGED, State.RESOLVED})
TRANSITIONS: dict[str, Transition] = {
    t.command: t
    for t in (
        Transition("ack", "acknowledged", frozenset({State.NEW}), State.ACKNOWLEDGED, "a person took the incident on"),
        Transition("callback", "called_back", _WORKING, None, "the reporter was called back"),
        Transition("onsite", "on_site", _WORKING, None, "someone is on site (--remote: handling it remotely)"),
        Transition("workaround", "workaround", frozenset({State.ACKNOWLEDGED}), None, "a workaround is in place"),
        Transition("resolve", "resolved", frozenset({State.ACKNOWLEDGED}), State.RESOLVED, "service is restored"),
        Transition("close", "closed", frozenset({State.RESOLVED}), State.CLOSED, "the reporter agrees it is over"),
        Transition("reopen", "reopened", frozenset({State.RESOLVED, State.CLOSED}), State.ACKNOWLEDGED, "it is back"),
    )
}
STATE_AFTER = {t.event: t.to for t in TRANSITIONS.values() if t.to is not None}
EVENTS = frozenset({t.event for t in TRANSITIONS.values()} | {"link"})  # what people journal: lifecycle_events
# A link's kind, and the shape of the id it takes: the records themselves are kept by later parts.
LINKS: dict[str, re.Pattern[str]] = {
    kind: re.compile(rf"^{prefix}-[A-Za-z0-9](?:[A-Za-z0-9_.-]{{0,62}}[A-Za-z0-9])?$")
    for kind, prefix in (("problem", "PRB"), ("change", "CHG"), ("kb", "KB"))
}
LINK_EXAMPLES = {"problem": "PRB-2026-007", "change": "CHG-2026-001", "kb": "KB-nginx-502"}


def _replay(events: Sequence[Mapping[str, Any]]) -> tuple[State, Mapping[str, Any] | None]:
    """The state, and the event that resolved the incident as it stands (None unless resolved or closed)."""
    state, resolution = State.NEW, None
    for event in events:
        kind, before = event.get("event"), state
        if kind == "start":
            state = State.NEW if event.get("opened_by") else State.ACKNOWLEDGED
        elif kind == "end" and event.get("outcome") == "recovered" and state is not State.CLOSED:
            state = State.RESOLVED  # the runbook verified recovery from outside
        elif kind in STATE_AFTER:
            state = STATE_AFTER[str(kind)]
        if state is State.RESOLVED and before not in (State.RESOLVED, State.CLOSED):
            resolution = event
        elif state in (State.NEW, State.ACKNOWLEDGED):
            resolution = None  # a reopen undoes the resolution
    return state, resolution


def state_of(events: Sequence[Mapping[str, Any]]) -> State:
    return _replay(events)[0]


def resolution(events: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """What resolved the incident as it stands: a person's ``resolved`` or a runbook's recovered ``end``;
    None while it is new or acknowledged (a reopened one too). Unlike :func:`resolved_at`, the first
    resolution ever (MTTR), this is the one that still holds."""
    return _replay(events)[1]


def title_of(start: Mapping[str, Any]) -> str:
    zh, en = str(start.get("title_zh", "")), str(start.get("title_en", ""))
    return zh if zh == en or not en else f"{zh} / {en}"


def last(events: Sequence[Mapping[str, Any]], kind: str) -> Mapping[str, Any] | None:
    return next((e for e in reversed(events) if e.get("event") == kind), None)


def check(command: str, incident: str, events: Sequence[Mapping[str, Any]]) -> Transition:
    """The transition, if the incident's state allows it; otherwise a BadInput that says what to do."""
    transition = TRANSITIONS[command]
    state = state_of(events)
    if state in transition.allowed:
        return transition
    done = last(events, transition.event)
    if command == "reopen":
        hint = "only a resolved or closed incident can be reopened"
    elif state is State.NEW:
        hint = f"acknowledge it first: `portalops incident ack {incident}`"
    elif state is State.CLOSED and command != "close":
        hint = f"reopen it first: `portalops incident reopen {incident} --reason TEXT`"
    elif command == "close" and state is not State.CLOSED:
        hint = f"resolve it first: `portalops incident resolve {incident} --note TEXT`"
    elif command == "workaround":
        hint = "it is resolved already; reopen it if the fault is back"
    elif done:
        hint = f"already {transition.event} by {done.get('by', '?')} at {done['ts']}"
    elif command == "ack":
        hint = "a person started its runbook, which acknowledged it"
    else:
        hint = "a runbook verified its recovery"
    return _refuse(f"cannot {command} incident {incident}: it is {state}" + (f"; {hint}" if hint else ""))


def _refuse(message: str) -> Transition:
    raise BadInput(message + " (nothing written)")


def check_link(kind: str, target: str) -> str:
    if kind not in LINKS:
        raise BadInput(f"no link kind {kind!r}; known: {', '.join(LINKS)}")
    if not LINKS[kind].match(target):
        raise BadInput(f"{target!r} is not a {kind} id: like {LINK_EXAMPLES[kind]} (nothing written)")
    return target


def links(events: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {kind: [] for kind in LINKS}
    for event in events:
        if event.get("event") == "link" and str(event.get("target")) not in found.get(str(event.get("kind")), []):
            found.setdefault(str(event.get("kind")), []).append(str(event.get("target")))
    return found


@dataclass(frozen=True)
class Flag:
    """One deadline of the incident and whether it was met, from the journal's events."""

    name: str  # respond | callback | onsite
    title: str  # 回电 call back
    rule: str
    due: datetime
    status: str  # met | breached | pending | n/a
    at: datetime | None  # when the evidence was journalled
    how: str  # the evidence, or why none is needed

    def text(self, now: datetime) -> str:
        if self.status == "pending":
            return f"pending: {span((self.due - now).total_seconds())} left"
        if self.at is None:
            return f"{self.status}: {self.how}" if self.status == "n/a" else "BREACHED: none recorded, due passed"
        delta = (self.at - self.due).total_seconds()
        when = f"{span(-delta)} early" if delta <= 0 else f"{span(delta)} late"
        verdict = "met" if self.status == "met" else "BREACHED"
        return f"{verdict}: {self.how} at {self.at.astimezone(TZ):%H:%M:%S} UTC+8 ({when})"

    def as_dict(self, now: datetime) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "due": self.due.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "status": self.status,
            "at": self.at.strftime("%Y-%m-%dT%H:%M:%SZ") if self.at else None,
            "evidence": self.how,
            "left_s": round((self.due - now).total_seconds()) if self.status == "pending" else None,
        }


def _evidence(name: str, events: Sequence[Mapping[str, Any]]) -> tuple[datetime, str] | None:
    """The first event that answers a deadline: who did what, when."""
    for event in events:
        kind = event.get("event")
        by = event.get("by", "?")
        if name == "respond" and kind == "start" and not event.get("opened_by"):
            return parse_stamp(str(event["ts"])), f"runbook started by {event.get('user', '?')}"
        if name == "respond" and kind == "acknowledged":
            return parse_stamp(str(event["ts"])), f"acknowledged by {by}"
        if name == "callback" and kind == "called_back":
            return parse_stamp(str(event["ts"])), f"called back by {by}"
        if name == "onsite" and kind == "on_site":
            where = "remote handling" if event.get("remote") else "on site"
            return parse_stamp(str(event["ts"])), f"{where}: {by}"
    return None


def resolved_at(events: Sequence[Mapping[str, Any]]) -> datetime | None:
    """The first resolution: a person's ``resolved`` or a runbook's verified recovery."""
    for event in events:
        if event.get("event") == "resolved" or (event.get("event") == "end" and event.get("outcome") == "recovered"):
            return parse_stamp(str(event["ts"]))
    return None


def flags(events: Sequence[Mapping[str, Any]], now: datetime) -> list[Flag]:
    start = next((e for e in events if e.get("event") == "start"), {})
    resolved = resolved_at(events)
    found = []
    for deadline in start.get("deadlines") or []:
        name, due = str(deadline["name"]), parse_stamp(str(deadline["due"]))
        title = f"{deadline.get('title_zh', '')} {deadline.get('title_en', name)}".strip()
        rule = f"{deadline.get('rule_zh', '')} / {deadline.get('rule_en', '')}"
        evidence = _evidence(name, events)
        if evidence and evidence[0] <= due:
            found.append(Flag(name, title, rule, due, "met", *evidence))
        elif name == "onsite" and resolved is not None and resolved <= due:
            why = f"resolved at {resolved.astimezone(TZ):%H:%M:%S} UTC+8, before it was due: no visit needed"
            found.append(Flag(name, title, rule, due, "n/a", None, why))
        elif evidence:
            found.append(Flag(name, title, rule, due, "breached", *evidence))
        else:
            status = "breached" if now > due else "pending"
            found.append(Flag(name, title, rule, due, status, None, "none recorded"))
    return found


def owed(found: Sequence[Flag]) -> Flag | None:
    """The next deadline still owed (nothing recorded yet), earliest first."""
    waiting = [f for f in found if f.at is None and f.status in ("pending", "breached")]
    return min(waiting, key=lambda f: f.due) if waiting else None


def next_text(flag: Flag | None, now: datetime) -> str:
    if flag is None:
        return "-"
    left = (flag.due - now).total_seconds()
    title = flag.title.split(" ", 1)[-1]
    if left < 0:
        return f"{title} BREACHED {span(left)} ago"
    return f"{title} in {span(left)}"


def lifecycle_events(events: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [e for e in events if e.get("event") in EVENTS]


def event_text(event: Mapping[str, Any]) -> str:
    """One lifecycle event as a line of the record or of ``show``."""
    kind = str(event["event"])
    by = event.get("by", "?")
    if kind == "link":
        return f"linked to {event.get('kind')} {event.get('target')} by {by}"
    if kind == "closed" and "mttr_s" in event:
        times = f"; MTTD {event['mttd_s']:.0f} s, MTTR {event['mttr_s']:.0f} s (from detection)"
    else:
        times = ""
    what = "on site (remote handling)" if kind == "on_site" and event.get("remote") else kind.replace("_", " ")
    words = [str(event[k]) for k in ("note", "reason") if event.get(k)]
    return f"**{what}** by {by}{times}" + (f": {' '.join(words)}" if words else "")
