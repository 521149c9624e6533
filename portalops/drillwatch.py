"""Drills through the monitoring (`portalops drill run --via-monitoring`): inject, then only watch.

The drill injects the fault and types nothing more. mon1's probes have to see it, Alertmanager has to
post it to the responder, the responder has to open the incident and run the runbook unattended, and
close the incident once the runbook verified recovery and the alert resolved. This module watches the
responder's incidents directory for that incident and times each stage from the injection:

- ``firing_s``: the alert's ``startsAt`` (Prometheus saw the fault);
- ``opened_s``: the incident opened (MTTD, the plan's clock starts here at the latest);
- ``recovered_s``: the runbook's verify steps passed (MTTR);
- ``closed_s``: the incident closed (recovered and the alert resolved).

A runbook whose next act is destructive stops there in an unattended run and waits for a person; a
runbook the responder may not run unattended at all (not in its ``auto_run``, e.g. l1_database_lost,
whose repair is a restore) is not run, and its incident waits for a person from the start. With
``confirm`` the drill plays that person, with the one command the notification names
(``portalops runbook run RUNBOOK --resume INCIDENT --yes``), and times the wait; without it the drill
ends at the wait, which is what a destructive fault must show.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from portalops.errors import BadInput, EnvironmentProblem
from portalops.responder.alerts import is_heartbeat_labels
from portalops.responder.config import Config, listen_address
from portalops.runbook.journal import parse_stamp, read_events
from portalops.runbook.outcome import RunbookExit

RESPONDER = "responder"  # the start event's opened_by of an incident the responder opened


@dataclass
class Watched:
    """What the monitoring did about one injected fault; times are seconds after the injection."""

    incident: str = ""  # the first incident the responder opened for the runbook
    incidents: list[str] = field(default_factory=list)  # every one it opened for the runbook meanwhile
    alert: str = ""
    level: int = 0
    exit: RunbookExit | None = None  # how the runbook's last run in the incident ended; None: no run ended
    waiting_step: str = ""  # the destructive step the unattended run stopped before
    person_command: str = ""  # the responder ran nothing: the command its notice gave a person to run
    resumed: list[str] = field(default_factory=list)  # the incidents the drill ran as the person, first one first
    confirmed: bool = False  # the drill confirmed that step, as the person on duty would
    firing_s: float | None = None
    opened_s: float | None = None
    waited_s: float | None = None  # the unattended run stopped to wait for a person
    recovered_s: float | None = None
    closed_s: float | None = None
    notes: list[str] = field(default_factory=list)


def seconds(since: datetime, text: object) -> float | None:
    return round((parse_stamp(str(text)) - since).total_seconds(), 1) if text else None


def responder_incidents(root: Path, runbook_id: str, since: datetime) -> dict[str, list[dict[str, Any]]]:
    """The runbook's incidents the responder opened at or after ``since``, by name, oldest first."""
    found: list[tuple[datetime, str, list[dict[str, Any]]]] = []
    for journal in root.glob("*/journal.jsonl") if root.is_dir() else []:
        events = read_events(journal)
        start = next((e for e in events if e.get("event") == "start"), None)
        if not start or start.get("runbook") != runbook_id or start.get("opened_by") != RESPONDER:
            continue
        opened = parse_stamp(str(start["ts"]))
        if opened >= since:
            found.append((opened, journal.parent.name, events))
    return {name: events for _, name, events in sorted(found, key=lambda x: x[:2])}


def last_end(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    ends = [e for e in events if e.get("event") == "end"]
    return ends[-1] if ends else None


def declined_step(events: list[dict[str, Any]]) -> str:
    """The destructive step the last unattended run stopped before, or ''."""
    end = last_end(events)
    if end is None or end.get("exit") != RunbookExit.ABORTED:
        return ""
    declined = [e for e in events if e.get("event") == "step_end" and e.get("result") == "declined"]
    return str(declined[-1]["step"]) if declined else ""


def closed_event(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((e for e in events if e.get("event") == "closed"), None)


def for_a_person(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The dispatch event of an incident the responder left to a person (it runs nothing), or None."""
    dispatch = next((e for e in events if e.get("event") == "dispatch"), None)
    return dispatch if dispatch is not None and dispatch.get("mode") != "auto" else None


def running(events: list[dict[str, Any]]) -> bool:
    """A run of the incident started (or resumed) and has not ended yet; an incident the responder
    dispatched to a person runs nothing until someone resumes it."""
    busy = False
    for event in events:
        if event.get("event") in {"start", "resume"}:
            busy = True
        elif event.get("event") == "end" or (event.get("event") == "dispatch" and event.get("mode") != "auto"):
            busy = False
    return busy


def answered(root: Path) -> set[str]:
    """Fingerprints of the alerts whose incident the responder opened and has not closed: the alert firing
    on joins that incident and starts no run (a new occurrence is journalled, not answered again)."""
    found = set()
    for journal in root.glob("*/journal.jsonl") if root.is_dir() else []:
        events = read_events(journal)
        start = next((e for e in events if e.get("event") == "start"), None)
        if start and start.get("opened_by") == RESPONDER and not closed_event(events):
            found.add(str(start.get("alert", {}).get("fingerprint", "")))
            found.update(str(e["alert"].get("fingerprint", "")) for e in events if e.get("event") == "alert_joined")
    return found


def responder_runs(root: Path) -> list[str]:
    """The incidents the responder opened that have a run going on now (queued for hosts or acting)."""
    found = []
    for journal in sorted(root.glob("*/journal.jsonl")) if root.is_dir() else []:
        events = read_events(journal)
        start = next((e for e in events if e.get("event") == "start"), None)
        if start and start.get("opened_by") == RESPONDER and not closed_event(events) and running(events):
            found.append(journal.parent.name)
    return found


class ResponderWatch:
    """The responder of ``config``, as the drill sees it: its health and its incidents directory."""

    def __init__(
        self,
        config: Config,
        progress: Callable[[str], None] = print,
        poll: float = 1.0,  # a look at Alertmanager and the journals: cheap; each stage is seen within 1 s
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self.progress = progress
        self.poll = poll
        self.clock = clock
        self.sleep = sleep

    @property
    def url(self) -> str:
        host, port = listen_address(self.config.listen)
        return f"http://{host}:{port}"

    def require_running(self) -> None:
        """BadInput unless the responder answers /healthz with status ok: nothing would answer the fault."""
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=10) as answer:  # noqa: S310 - http:// from config
                status = json.load(answer).get("status")
        except (OSError, ValueError, AttributeError) as error:
            status = str(error)
        if status != "ok":
            raise BadInput(
                f"no responder answers at {self.url} ({status}): a drill via the monitoring needs it running "
                "(`portalops responder --config contrib/portalops-responder-lab.yml` on the lab)"
            )

    def firing(self) -> list[str]:
        """The names of the alerts Alertmanager holds active for the responder's receiver (no Alertmanager
        configured: none). EnvironmentProblem when it does not answer: whether it is quiet is unknown then."""
        if not self.config.alertmanager:
            return []
        query = urllib.parse.urlencode(
            {"active": "true", "silenced": "false", "inhibited": "false", "receiver": self.config.receiver or ".*"}
        )
        url = f"{self.config.alertmanager.rstrip('/')}/api/v2/alerts?{query}"
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - http(s):// from config
                alerts = json.load(answer)
        except (OSError, ValueError, AttributeError, TypeError) as error:
            raise EnvironmentProblem(f"Alertmanager at {self.config.alertmanager} did not answer: {error}") from None
        if not isinstance(alerts, list) or not all(isinstance(a, dict) for a in alerts):
            raise EnvironmentProblem(f"Alertmanager at {self.config.alertmanager} answered no list of alerts")
        # The Watchdog always fires: the monitoring's heartbeat, which opens no incident and runs nothing. An
        # alert already answered (its incident open, e.g. the availability burn the drills themselves cause on
        # a young lab) opens nothing new either; whether its run still goes on is responder_runs' to say.
        known = answered(self.config.incidents)
        faults = [
            a.get("labels", {})
            for a in alerts
            if not is_heartbeat_labels(a.get("labels", {})) and a.get("fingerprint") not in known
        ]
        return sorted(str(labels.get("alertname", "?")) for labels in faults)

    def wait_quiet(self, timeout: float, settle: float = 0.0) -> None:
        """Return once no alert fires for the responder and no run it started is going on, for ``settle`` s.

        A drill injects into a quiet monitoring only: an alert left firing by an earlier fault (or a run
        still queued for it) would open an incident and repair the new fault before the fault's own alert,
        and the drill would time a detection that did not happen. EnvironmentProblem after ``timeout``.
        """
        deadline = self.clock() + timeout
        quiet_since: float | None = None
        said = ""
        while True:
            try:
                alerts, runs = self.firing(), responder_runs(self.config.incidents)
                why = "; ".join(
                    part
                    for part in (
                        f"firing: {', '.join(alerts)}" if alerts else "",
                        f"runs going on in {', '.join(runs)}" if runs else "",
                    )
                    if part
                )
            except EnvironmentProblem as problem:
                why = problem.message
            now = self.clock()
            if not why:
                quiet_since = now if quiet_since is None else quiet_since
                if now - quiet_since >= settle:
                    return
            else:
                quiet_since = None
                if why != said:
                    self.progress(f"drill: waiting for the monitoring to be quiet before injecting ({why})")
                    said = why
            if now >= deadline:
                raise EnvironmentProblem(
                    f"the monitoring was not quiet within {timeout:g} s ({why or 'quiet too briefly'}); "
                    "a drill via the monitoring injects only when no alert fires and no responder run goes on"
                )
            self.sleep(self.poll)

    def watch(
        self,
        runbook_id: str,
        since: datetime,
        timeout: float,
        confirm: Callable[[str], RunbookExit] | None = None,
    ) -> Watched:
        """Wait for the incident, its run and its close; ``confirm`` resumes a run waiting for a person."""
        seen = Watched()
        deadline = self.clock() + timeout
        while True:
            incidents = responder_incidents(self.config.incidents, runbook_id, since)
            if incidents and self._stage(seen, incidents, since, confirm):
                return seen
            if self.clock() >= deadline:
                seen.notes.append(self._timed_out(seen, timeout))
                return seen
            self.sleep(self.poll)

    def _stage(
        self,
        seen: Watched,
        incidents: dict[str, list[dict[str, Any]]],
        since: datetime,
        confirm: Callable[[str], RunbookExit] | None,
    ) -> bool:
        """Record what happened since the last look; True when there is nothing more to wait for."""
        seen.incidents = list(incidents)
        if not seen.incident:
            seen.incident = next(iter(incidents))
            start = incidents[seen.incident][0]
            seen.alert = str(start.get("alert", {}).get("labels", {}).get("alertname", ""))
            seen.level = int(start.get("level") or 0)
            seen.firing_s = seconds(since, start.get("detected"))
            seen.opened_s = seconds(since, start.get("ts"))
            self.progress(
                f"monitoring: {seen.alert} fired {seen.firing_s} s after the injection; "
                f"incident {seen.incident} (L{seen.level}) opened after {seen.opened_s} s"
            )
        events = incidents[seen.incident]
        end = last_end(events)
        if end is None:
            return self._for_a_person(seen, events, since, confirm)
        step = declined_step(events)
        if step and not seen.confirmed:
            seen.waiting_step = step
            seen.waited_s = seconds(since, end.get("ts"))
            self.progress(f"monitoring: the unattended run waits for a person before {step} ({seen.waited_s} s)")
            if confirm is None:
                seen.exit = RunbookExit.ABORTED
                return True
            seen.confirmed = True
            self.progress(f"drill: confirming {step} as the person on duty (--resume {seen.incident} --yes)")
            confirm(seen.incident)
            return False
        seen.exit = RunbookExit(int(end["exit"]))
        if seen.exit is not RunbookExit.RECOVERED:
            return True
        if seen.recovered_s is None:
            seen.recovered_s = seconds(since, end.get("ts"))
            self.progress(f"monitoring: the runbook verified recovery {seen.recovered_s} s after the injection")
        # Every incident the fault opened for this runbook closes (the runs after the first find it repaired).
        # One left to a person (an alert of the runbook that fired after the first run recovered, so it opened
        # its own incident) closes only after a run: the drill, playing the person, runs its notice's command too.
        for name, events in incidents.items():
            if confirm and name not in seen.resumed and not last_end(events) and for_a_person(events):
                seen.resumed.append(name)
                self.progress(f"drill: {name} waits for a person too; running it (--resume {name} --yes)")
                confirm(name)
        closed = [closed_event(e) for e in incidents.values()]
        if all(closed):
            stamps = [seconds(since, c.get("ts")) for c in closed if c]
            seen.closed_s = max(x for x in stamps if x is not None)
            self.progress(
                f"monitoring: {len(closed)} incident(s) closed, the last {seen.closed_s} s after the injection"
            )
            return True
        return False

    def _for_a_person(
        self,
        seen: Watched,
        events: list[dict[str, Any]],
        since: datetime,
        confirm: Callable[[str], RunbookExit] | None,
    ) -> bool:
        """An incident the responder left to a person (no run of its own): the drill ends there, or plays
        the person with the command of the notice; True when there is nothing more to wait for."""
        dispatch = for_a_person(events)
        if dispatch is None or seen.confirmed:
            return False
        seen.person_command = str(dispatch.get("command", ""))
        seen.waited_s = seconds(since, dispatch.get("ts"))
        self.progress(
            f"monitoring: the responder runs nothing for {seen.incident}: it waits for a person "
            f"({seen.waited_s} s): {seen.person_command}"
        )
        if confirm is None:
            seen.exit = RunbookExit.ABORTED  # nothing ran; `--resume INCIDENT` goes on, as after a decline
            return True
        seen.confirmed = True
        seen.resumed.append(seen.incident)
        self.progress(f"drill: running the runbook as the person on duty (--resume {seen.incident} --yes)")
        confirm(seen.incident)
        return False

    @staticmethod
    def _timed_out(seen: Watched, timeout: float) -> str:
        if not seen.incident:
            return f"no incident for the runbook opened within {timeout:g} s of the injection"
        if seen.exit is None:
            return f"the runbook's run in {seen.incident} did not end within {timeout:g} s of the injection"
        return f"not every incident closed within {timeout:g} s of the injection ({', '.join(seen.incidents)})"
