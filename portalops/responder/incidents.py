"""Alerts into incidents: one incident per fingerprint while it is open, journalled as a runbook's.

The incident is opened with the engine's own journal (``incidents/<id>/journal.jsonl``) and a
``start`` event like the one ``portalops runbook run`` writes, so ``--resume INCIDENT`` runs the
runbook in it and ``portalops incident show`` reads it. What the responder adds:

- ``start``: ``detected`` = the alert's ``startsAt`` (the deadlines count from it, not from when
  the webhook arrived), ``alert`` (labels, fingerprint), ``opened_by: responder``;
- ``acknowledged`` (``by: portalops-responder``, ``auto: true``) right after it: the responder
  auto-acknowledges what it opens, which meets the "respond" deadline (portalops.runbook.lifecycle);
- ``alert``: one per occurrence (a new ``startsAt`` for the fingerprint: a flapping alert); a
  repeated notification of the same occurrence writes nothing;
- ``alert_resolved``: Alertmanager says it resolved (or no longer lists it after a restart);
- ``closed``: the runbook verified recovery (its ``end`` event: recovered) and the alert resolved,
  with MTTD (startsAt -> incident opened) and MTTR (startsAt -> verified recovery), in seconds.

A fingerprint whose incident is closed opens a new incident when it fires again.
"""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from portalops.responder.alerts import Alert, stamp_text
from portalops.runbook.journal import Journal, RunState, new_incident_id, parse_stamp, read_events, utc_now
from portalops.runbook.levels import Level
from portalops.runbook.model import Runbook, StepKind
from portalops.runbook.record import write_record
from portalops.runbook.workcal import WorkCalendar, deadlines

USER = "portalops-responder"


@dataclass(frozen=True)
class Received:
    """What one alert did to the incidents, for the caller to notify and run."""

    incident: str
    alert: Alert
    opened: bool  # a new incident
    occurrence: int  # 1 for the first firing, more for a flapping alert, 0 for a duplicate or a resolve
    runbook: Runbook | None  # None: the alert names no runbook portalops knows
    level: Level | None
    resolved: bool = False


def destructive_acts(runbook: Runbook) -> list[str]:
    return [s.id for s in runbook.steps if s.kind is StepKind.ACT and s.destructive]


class Store:
    """The open incidents by fingerprint; every change is a journal event, under one lock."""

    def __init__(
        self,
        root: Path,
        inventory: str,
        runbooks: Mapping[str, Runbook],
        calendar: WorkCalendar | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.root = root
        self.inventory = inventory
        self.runbooks = runbooks
        self.calendar = calendar or WorkCalendar()
        self.clock = clock
        self.lock = threading.RLock()
        self.open: dict[str, str] = {}  # fingerprint -> incident
        self.seen: dict[str, set[str]] = {}  # incident -> startsAt of its occurrences
        self.load()

    def load(self) -> None:
        """The incidents the responder opened and did not close, from the journals on disk."""
        with self.lock:
            self.open.clear()
            self.seen.clear()
            for path in sorted(self.root.glob("*/journal.jsonl")):
                events = read_events(path)
                start = next((e for e in events if e.get("event") == "start"), None)
                if not start or start.get("opened_by") != "responder":
                    continue
                if any(e.get("event") == "closed" for e in events):
                    continue
                incident = path.parent.name
                self.open[str(start["alert"]["fingerprint"])] = incident
                self.seen[incident] = {str(e["startsAt"]) for e in events if e.get("event") == "alert"}

    def journal(self, incident: str) -> Journal:
        return Journal(self.root / incident, self.clock)

    def events(self, incident: str) -> list[dict[str, Any]]:
        return read_events(self.root / incident / "journal.jsonl")

    def receive(self, alert: Alert, via: str) -> Received:
        """Open or update the alert's incident; never runs or sends anything itself."""
        with self.lock:
            runbook = self.runbooks.get(alert.runbook)
            level = alert.level or (runbook.level if runbook else None)
            incident = self.open.get(alert.fingerprint, "")
            new_firing = alert.status == "firing" and stamp_text(alert.starts_at) not in self.seen.get(incident, ())
            if incident and new_firing and any(e.get("event") == "closed" for e in self.events(incident)):
                self.open.pop(alert.fingerprint)  # a person closed it (`portalops incident close`): a new
                incident = ""  # firing is a new incident, as after the responder's own close
            opened = not incident
            if opened:
                incident = self._open(alert, runbook, level, via)
            journal = self.journal(incident)
            occurrence = 0
            started = stamp_text(alert.starts_at)
            # A resolve for an alert never seen firing (it fired and ended while the responder was down):
            # its occurrence is recorded first, so the incident says when the fault began.
            if started not in self.seen[incident] and (alert.status == "firing" or opened):
                self.seen[incident].add(started)
                occurrence = len(self.seen[incident])
                journal.write("alert", status="firing", startsAt=started, occurrence=occurrence, via=via)
                occurrence = occurrence if alert.status == "firing" else 0
            resolved = alert.status == "resolved" and self.firing(journal.events)
            if resolved:
                ended = stamp_text(alert.ends_at or self.clock())
                journal.write("alert_resolved", startsAt=started, endsAt=ended, via=via)
            if occurrence or resolved:
                write_record(journal.directory, journal.events)
            return Received(incident, alert, opened, occurrence, runbook, level, resolved)

    def _open(self, alert: Alert, runbook: Runbook | None, level: Level | None, via: str) -> str:
        key = runbook.id if runbook else "alert_" + re.sub(r"[^a-z0-9_]+", "_", alert.name.lower()).strip("_")
        incident = new_incident_id(key, alert.starts_at, self.root)
        journal = self.journal(incident)
        detected = alert.starts_at
        journal.write(
            "start",
            incident=incident,
            runbook=runbook.id if runbook else "",
            source=runbook.source if runbook else "",
            level=int(level) if level else 0,
            level_zh=level.spec.name_zh if level else "未知",
            title_zh=runbook.title_zh if runbook else alert.annotations.get("summary", alert.name),
            title_en=runbook.title_en if runbook else alert.name,
            inventory=self.inventory,
            limit=[],
            yes=False,
            user=USER,
            controller=socket.gethostname(),
            in_working_hours=self.calendar.in_working_hours(detected),
            calendar=self.calendar.source(detected.date()),
            deadlines=[d.as_dict() for d in deadlines(level, detected, self.calendar)] if level else [],
            detected=stamp_text(detected),
            opened_by="responder",
            via=via,
            alert=alert.as_dict(),
            known=runbook is not None and level is not None,
        )
        # The responder takes on what it opens (it notifies the duty contacts and dispatches the runbook):
        # the lifecycle's acknowledgement, so the "respond" deadline is met by it, as by a person's ack.
        # The call-back and on-site deadlines still need a person's `portalops incident callback/onsite`.
        journal.write("acknowledged", by=USER, auto=True)
        self.open[alert.fingerprint] = incident
        self.seen[incident] = set()
        return incident

    @staticmethod
    def firing(events: list[dict[str, Any]]) -> bool:
        """The alert's last word: firing (an occurrence after the last resolve) or not."""
        last = [e["event"] for e in events if e.get("event") in ("alert", "alert_resolved")]
        return bool(last) and last[-1] == "alert"

    def note(self, incident: str, event: str, **fields: Any) -> None:
        with self.lock:
            journal = self.journal(incident)
            journal.write(event, **fields)
            write_record(journal.directory, journal.events)

    def fingerprints(self) -> dict[str, str]:
        with self.lock:
            return dict(self.open)

    def try_close(self, incident: str) -> dict[str, Any] | None:
        """Close when the runbook verified recovery and the alert resolved; the ``closed`` event, or None."""
        with self.lock:
            journal = self.journal(incident)
            events = journal.events
            state = RunState.replay(events)
            if any(e.get("event") == "closed" for e in events):
                return None
            if state.end.get("outcome") != "recovered" or self.firing(events):
                return None
            if not any(e.get("event") == "alert_resolved" for e in events):
                return None
            start = state.start
            detected = parse_stamp(str(start["detected"]))
            recovered = parse_stamp(str(state.end["ts"]))
            resolved = [e for e in events if e.get("event") == "alert_resolved"][-1]
            closed = journal.write(
                "closed",
                by=USER,
                detected=start["detected"],
                opened=start["ts"],
                recovered=state.end["ts"],
                alert_resolved=resolved["endsAt"],
                occurrences=len(self.seen.get(incident, ())),
                mttd_s=round((parse_stamp(str(start["ts"])) - detected).total_seconds(), 3),
                mttr_s=round((recovered - detected).total_seconds(), 3),
            )
            write_record(journal.directory, journal.events)
            self.open.pop(str(start["alert"]["fingerprint"]), None)
            return closed
