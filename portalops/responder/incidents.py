"""Alerts into incidents: one incident per fault while it is open, journalled as a runbook's.

The incident is opened with the engine's own journal (``incidents/<id>/journal.jsonl``) and a
``start`` event like the one ``portalops runbook run`` writes, so ``--resume INCIDENT`` runs the
runbook in it and ``portalops incident show`` reads it. What the responder adds:

- ``start``: ``detected`` = the alert's ``startsAt`` (the deadlines count from it, not from when
  the webhook arrived), ``alert`` (labels, fingerprint), ``opened_by: responder``;
- ``acknowledged`` (``by: portalops-responder``, ``auto: true``) right after it: the responder
  auto-acknowledges what it opens, which meets the "respond" deadline (portalops.runbook.lifecycle);
- ``alert``: one per occurrence (a new ``startsAt`` for a fingerprint: a flapping alert), with its
  ``fingerprint``; a repeated notification of the same occurrence writes nothing;
- ``alert_joined``: another alert naming the same runbook fired while an alert of the incident still
  fires and its run has not recovered yet (a defaced theme fails the probe of every site it serves:
  one fault, one incident, one run); its occurrences and resolve are journalled like the first's.
  Also one that began within ``settle`` seconds of the run's verified recovery (``after_recovery``):
  the monitoring's lag (a probe alert's ``for:``, a scrape, an evaluation, group_wait) reports the same
  fault late; on the lab each such alert opened an incident of its own, paged the duty team again and ran
  the runbook again, three L1 incidents for one killed php-fpm;
  And an alert of another runbook that began while this incident's run was acting on the hosts, or
  within ``settle`` after its recovery (``during_repair``): the repair's own doing (l1_database_lost stops
  php-fpm for the restore, and PortalBackendDown fires);
- ``alert_moved``: such a late or during-repair alert still fires ``settle`` seconds after it joined: a
  fault of its own, moved to a new incident (opened, told and run like any);
- ``alert_resolved``: Alertmanager says a fingerprint resolved (or no longer lists it after a restart);
- ``closed``: the runbook verified recovery (its ``end`` event: recovered), every alert of the
  incident resolved and ``settle`` passed since the recovery (so a late report of the fault still finds
  the incident open: on the lab DatabaseDown resolved 12 s after the recovery, and a probe alert of the
  same outage began 2 s after that close), with MTTD (startsAt -> incident opened) and MTTR (startsAt -> verified
  recovery), in seconds.

A fingerprint whose incident is closed opens a new incident when it fires again; so does an alert of
the same runbook once the incident's run recovered (the repair is done; what fires now is news). A resolve
of an occurrence a closed incident already holds (Alertmanager repeats a group's resolved alerts) opens
nothing.
"""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
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


def on_probation(joined: Mapping[str, Any]) -> bool:
    """An ``alert_joined`` that moves to its own incident if still firing ``settle`` after it joined."""
    return bool(joined.get("after_recovery") or joined.get("during_repair"))


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
        settle: float = 60.0,
    ) -> None:
        self.root = root
        self.settle = timedelta(seconds=settle)
        self.inventory = inventory
        self.runbooks = runbooks
        self.calendar = calendar or WorkCalendar()
        self.clock = clock
        self.lock = threading.RLock()
        self.open: dict[str, str] = {}  # fingerprint -> incident
        self.seen: dict[str, set[tuple[str, str]]] = {}  # incident -> its occurrences, (fingerprint, startsAt)
        self.ended: dict[tuple[str, str], str] = {}  # an occurrence of a closed incident -> that incident
        # A fingerprint that joined on probation (after its incident's run recovered, or during another
        # runbook's repair) -> when, still firing, it opens its own.
        self.probation: dict[str, datetime] = {}
        self.load()

    def load(self) -> None:
        """The incidents the responder opened and did not close, from the journals on disk."""
        with self.lock:
            self.open.clear()
            self.seen.clear()
            self.ended.clear()
            self.probation.clear()
            for path in sorted(self.root.glob("*/journal.jsonl")):
                events = read_events(path)
                start = next((e for e in events if e.get("event") == "start"), None)
                if not start or start.get("opened_by") != "responder":
                    continue
                incident = path.parent.name
                if any(e.get("event") == "closed" for e in events):
                    first = str(start["alert"]["fingerprint"])
                    for event in events:
                        if event.get("event") == "alert":
                            self.ended[(str(event.get("fingerprint") or first), str(event["startsAt"]))] = incident
                    continue
                first = str(start["alert"]["fingerprint"])
                self.seen[incident] = set()
                self.open[first] = incident
                for event in events:
                    if event.get("event") in ("alert", "alert_joined"):
                        fingerprint = str(event.get("fingerprint") or first)
                        self.open[fingerprint] = incident
                        if event["event"] == "alert":
                            self.seen[incident].add((fingerprint, str(event["startsAt"])))
                firing = self.firing_alerts(events)
                for event in events:
                    fingerprint = str(event.get("fingerprint") or event.get("alert", {}).get("fingerprint", ""))
                    if event.get("event") == "alert_moved" and self.open.get(fingerprint) == incident:
                        self.open.pop(fingerprint)
                        self.seen[incident] = {k for k in self.seen[incident] if k[0] != fingerprint}
                    elif event.get("event") == "alert_joined" and fingerprint in firing and on_probation(event):
                        self.probation[fingerprint] = parse_stamp(str(event["ts"])) + self.settle

    def journal(self, incident: str) -> Journal:
        return Journal(self.root / incident, self.clock)

    def events(self, incident: str) -> list[dict[str, Any]]:
        return read_events(self.root / incident / "journal.jsonl")

    def receive(self, alert: Alert, via: str) -> Received:
        """Open, join or update the alert's incident; never runs or sends anything itself."""
        with self.lock:
            runbook = self.runbooks.get(alert.runbook)
            level = alert.level or (runbook.level if runbook else None)
            started = stamp_text(alert.starts_at)
            key = (alert.fingerprint, started)
            incident = self.open.get(alert.fingerprint, "")
            if not incident and key in self.ended:
                # Alertmanager repeats a group's resolved alerts after the incident that held them closed
                # (on the lab, each repeat opened a new incident and ran the runbook again): already told.
                return Received(self.ended[key], alert, False, 0, runbook, level)
            new_firing = alert.status == "firing" and key not in self.seen.get(incident, ())
            if incident and new_firing and any(e.get("event") == "closed" for e in self.events(incident)):
                self.open.pop(alert.fingerprint)  # a person closed it (`portalops incident close`): a new
                incident = ""  # firing is a new incident, as after the responder's own close
            joined = False
            if not incident and alert.status == "firing" and runbook is not None:
                incident, how = self._joinable(runbook.id, alert.starts_at)
                joined = bool(incident)
                if joined:
                    self.open[alert.fingerprint] = incident
                    fields = {how: True} if how else {}
                    self.journal(incident).write("alert_joined", alert=alert.as_dict(), via=via, **fields)
                    if how:
                        self.probation[alert.fingerprint] = self.clock() + self.settle
            opened = not incident
            if opened:
                incident = self._open(alert, runbook, level, via)
            journal = self.journal(incident)
            occurrence = 0
            # A resolve for an alert never seen firing (it fired and ended while the responder was down):
            # its occurrence is recorded first, so the incident says when the fault began.
            if key not in self.seen[incident] and (alert.status == "firing" or opened):
                self.seen[incident].add(key)
                occurrence = sum(1 for fingerprint, _ in self.seen[incident] if fingerprint == alert.fingerprint)
                journal.write(
                    "alert",
                    status="firing",
                    startsAt=started,
                    occurrence=occurrence,
                    via=via,
                    fingerprint=alert.fingerprint,
                    alertname=alert.name,
                )
                # A joined alert's first firing is part of the fault under way: no new notice, no new run.
                occurrence = occurrence if alert.status == "firing" and not joined else 0
            resolved = alert.status == "resolved" and alert.fingerprint in self.firing_alerts(journal.events)
            if resolved:
                self.probation.pop(alert.fingerprint, None)
                ended = stamp_text(alert.ends_at or self.clock())
                journal.write("alert_resolved", startsAt=started, endsAt=ended, via=via, fingerprint=alert.fingerprint)
            if occurrence or resolved or joined:
                write_record(journal.directory, journal.events)
            # The incident's alerts all resolved: what a close waits for (one of several resolving is not).
            resolved = resolved and not self.firing(journal.events)
            return Received(incident, alert, opened, occurrence, runbook, level, resolved)

    def _joinable(self, runbook: str, started: datetime) -> tuple[str, str]:
        """The open incident an alert of ``runbook`` that began at ``started`` joins, and how; ('', '') for none:

        - one of ``runbook`` whose fault is going on (an alert of it still fires) and whose run has not
          recovered yet ('': the same fault). One not recovered whose alerts all resolved while it waits for
          a person is history: a new alert is a new fault (on the lab, DatabaseDown during a MariaDB drill
          left such an incident, and a dropped table a drill later joined it and opened nothing);
        - one of ``runbook`` whose run recovered less than ``settle`` before the alert began
          (``after_recovery``: the monitoring reporting the same fault late, maybe after the incident's own
          alerts resolved);
        - else one of another runbook whose run had begun acting on the hosts when the alert began, and had
          not recovered ``settle`` before it (``during_repair``: the repair's own doing, as PortalBackendDown
          while l1_database_lost has php-fpm stopped for the restore; on the lab it opened an L1 incident and
          an unattended run 5 s after that recovery).

        The last two are on probation: still active ``settle`` after joining, they move to an incident of
        their own (:meth:`promote_overdue`), so a fault that only began meanwhile is run, ``settle`` later."""
        repairing = ""
        for incident in sorted(set(self.open.values())):
            events = self.events(incident)
            start = next((e for e in events if e.get("event") == "start"), {})
            if any(e.get("event") == "closed" for e in events):
                continue
            ends = [e for e in events if e.get("event") == "end"]
            recovered = parse_stamp(str(ends[-1]["ts"])) if ends and ends[-1].get("outcome") == "recovered" else None
            if start.get("runbook") == runbook:
                if recovered is not None:
                    # its alerts may have resolved already: the incident waits out the settle before it closes
                    if started <= recovered + self.settle:
                        return incident, "after_recovery"
                elif self.firing(events):
                    return incident, ""
            elif not repairing and self._repairing(events, started, recovered):
                repairing = incident
        return (repairing, "during_repair") if repairing else ("", "")

    def _repairing(self, events: list[dict[str, Any]], started: datetime, recovered: datetime | None) -> bool:
        """The incident's run had begun an act that it did (its first done act's step_begin) when ``started``,
        and is still running (a step begun after its last end), or recovered less than ``settle`` before."""
        kinds = [e.get("event") for e in events]
        done = next((e["step"] for e in events if e.get("event") == "step_end" and e.get("result") == "done"), None)
        began = next((e for e in events if e.get("event") == "step_begin" and e.get("step") == done), None)
        if began is None or started < parse_stamp(str(began["ts"])):
            return False
        last_end = max((i for i, kind in enumerate(kinds) if kind == "end"), default=-1)
        running = any(kind == "step_begin" for kind in kinds[last_end + 1 :])
        return running or (recovered is not None and started <= recovered + self.settle)

    def promote_overdue(self, active: list[Alert]) -> list[Received]:
        """Alerts on probation (joined after their incident's run recovered, or during another runbook's
        repair) still active ``settle`` after they joined: each is a fault of its own, moved to a new
        incident, to be told and run like any."""
        moved = []
        with self.lock:
            now = self.clock()
            for alert in active:
                due = self.probation.get(alert.fingerprint)
                if due is None or now < due or alert.status != "firing":
                    continue
                self.probation.pop(alert.fingerprint)
                old = self.open.get(alert.fingerprint, "")
                if not old or alert.fingerprint not in self.firing_alerts(self.events(old)):
                    continue
                self.open.pop(alert.fingerprint)
                self.seen[old] = {key for key in self.seen.get(old, ()) if key[0] != alert.fingerprint}
                runbook = self.runbooks.get(alert.runbook)
                level = alert.level or (runbook.level if runbook else None)
                incident = self._open(alert, runbook, level, "settle")
                why = f"still firing {self.settle.total_seconds():g} s after it joined"
                journal = self.journal(old)
                journal.write("alert_moved", fingerprint=alert.fingerprint, to=incident, reason=why)
                write_record(journal.directory, journal.events)
                started = stamp_text(alert.starts_at)
                self.seen[incident].add((alert.fingerprint, started))
                journal = self.journal(incident)
                journal.write(
                    "alert",
                    status="firing",
                    startsAt=started,
                    occurrence=1,
                    via="settle",
                    fingerprint=alert.fingerprint,
                    alertname=alert.name,
                    moved_from=old,
                )
                write_record(journal.directory, journal.events)
                moved.append(Received(incident, alert, True, 1, runbook, level))
        return moved

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
    def firing_alerts(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """The incident's alerts still firing (each fingerprint's last word is an occurrence, not a
        resolve), by fingerprint: that last ``alert`` event, with the alert's labels."""
        start = next((e for e in events if e.get("event") == "start"), {})
        first = start.get("alert", {})
        labels = {str(first.get("fingerprint", "")): first.get("labels", {})}
        last: dict[str, dict[str, Any]] = {}
        for event in events:
            kind = event.get("event")
            if kind == "alert_joined":
                labels[str(event["alert"]["fingerprint"])] = event["alert"].get("labels", {})
            elif kind in ("alert", "alert_resolved", "alert_moved"):
                fingerprint = str(event.get("fingerprint") or first.get("fingerprint", ""))
                last[fingerprint] = {**event, "labels": labels.get(fingerprint, {})}
        return {fp: event for fp, event in last.items() if event["event"] == "alert"}

    @classmethod
    def firing(cls, events: list[dict[str, Any]]) -> bool:
        """Any alert of the incident still firing (an occurrence after its last resolve)."""
        return bool(cls.firing_alerts(events))

    def note(self, incident: str, event: str, **fields: Any) -> None:
        with self.lock:
            journal = self.journal(incident)
            journal.write(event, **fields)
            write_record(journal.directory, journal.events)

    def fingerprints(self) -> dict[str, str]:
        with self.lock:
            return dict(self.open)

    def closes_at(self, incident: str) -> datetime | None:
        """When the incident closes if nothing changes: its verified recovery plus the settle, once every
        alert of it resolved; None while it cannot close yet for another reason, or is closed."""
        with self.lock:
            events = self.journal(incident).events
            return self._closes_at(events, RunState.replay(events))

    def _closes_at(self, events: list[dict[str, Any]], state: RunState) -> datetime | None:
        """``closes_at`` of the incident whose journal is ``events``, replayed as ``state``."""
        if any(e.get("event") == "closed" for e in events):
            return None
        if state.end.get("outcome") != "recovered" or self.firing(events):
            return None
        if not any(e.get("event") == "alert_resolved" for e in events):
            return None
        return parse_stamp(str(state.end["ts"])) + self.settle

    def try_close(self, incident: str) -> dict[str, Any] | None:
        """Close when the runbook verified recovery and the alert resolved; the ``closed`` event, or None."""
        with self.lock:
            journal = self.journal(incident)
            events = journal.events
            state = RunState.replay(events)  # once: the decision and the closed event read the same journal
            due = self._closes_at(events, state)
            if due is None or self.clock() < due:
                return None  # the responder closes it when the settle passed (Responder.close schedules it)
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
                alerts=len({fingerprint for fingerprint, _ in self.seen.get(incident, ())}),
                mttd_s=round((parse_stamp(str(start["ts"])) - detected).total_seconds(), 3),
                mttr_s=round((recovered - detected).total_seconds(), 3),
            )
            write_record(journal.directory, journal.events)
            for fingerprint in [fp for fp, known in self.open.items() if known == incident]:
                self.open.pop(fingerprint)
            self.ended.update(dict.fromkeys(self.seen.pop(incident, ()), incident))
            return closed
