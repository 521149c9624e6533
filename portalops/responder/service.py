"""The responder's work, apart from HTTP: alerts in, incidents, notices and runs out.

:meth:`Responder.receive` decides synchronously (under the store's lock) which incident an alert
belongs to, so a burst of duplicates, however concurrent, opens one; what takes time (notifying,
running the runbook, closing) goes to a thread pool, each step journalled in the incident.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass, field
from typing import Any

from portalops.responder.alerts import Alert, is_heartbeat_labels, parse_time
from portalops.responder.config import Config
from portalops.responder.incidents import Received, Store, destructive_acts
from portalops.responder.notices import closed_notice, confirm_command, opened_notice, waiting_notice
from portalops.responder.runner import UNKNOWN_LEVEL, Runner
from portalops.runbook import reporting
from portalops.runbook.journal import stamp, start_event, utc_now
from portalops.runbook.notify import Notice, Notifier
from portalops.runbook.outcome import RunbookExit

LOG = logging.getLogger("portalops.responder")
CLOSE_MARGIN = 0.2  # s after the settle's end: the store's clock has then passed it, whatever the timer's jitter
# How long a notice waits for the incident's notice before it (a channel that hangs): then it goes anyway.
NOTICE_ORDER_WAIT = 120.0
Turn = tuple[threading.Event | None, threading.Event]  # the notice before (None: the first), and this one's


def _daemon_timer(delay: float, fn: Callable[[], None]) -> threading.Timer:
    timer = threading.Timer(delay, fn)
    timer.daemon = True
    timer.start()
    return timer


def is_heartbeat(alert: Alert) -> bool:
    """The always-firing Watchdog (severity none, no runbook): the monitoring's heartbeat, not a fault."""
    return is_heartbeat_labels(alert.labels)


@dataclass
class Responder:
    config: Config
    store: Store
    notifier: Notifier
    runner: Runner
    workers: int = 8
    last_reconcile: str = ""
    reconcile_error: str = ""
    last_heartbeat: str = ""  # when the monitoring's always-firing Watchdog was last seen
    _pool: ThreadPoolExecutor = field(init=False)
    _pending: set[Future[None]] = field(init=False, default_factory=set)
    _clocks: threading.Lock = field(init=False, default_factory=threading.Lock)  # one clock check at a time
    _clock_cache: reporting.ClockCache = field(init=False, default_factory=dict)  # journals read, by path
    # Calls a function after so many seconds (a daemon timer; tests hand in their own).
    later: Callable[[float, Callable[[], None]], object] | None = None
    _closing: dict[str, object] = field(init=False, default_factory=dict)  # incident -> its settle's timer
    _closing_lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    # Each incident's notices go out in the order they were decided (the opening one before the run's escalation,
    # though both are sent from the pool): incident -> the last notice's "sent" event.
    _notice_tail: dict[str, threading.Event] = field(init=False, default_factory=dict)
    _notice_lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="responder")

    # ------------------------------------------------------------------ alerts in

    def receive(self, alerts: Iterable[Alert], via: str) -> list[Received]:
        received = []
        for alert in alerts:
            if is_heartbeat(alert):
                # The dead-man's switch: proof the monitoring is alive, no fault and no incident.
                if alert.status == "firing":
                    self.last_heartbeat = stamp(utc_now())
                continue
            received.append(self.store.receive(alert, via))
        for item in received:
            self._follow(item)
        return received

    def reconcile(self, active: list[Alert]) -> list[Received]:
        """Alertmanager's active alerts, after a restart or a lost webhook: firing ones not known open
        (or join) their incident at their own startsAt; open incidents whose alert is no longer active
        resolved meanwhile; a late alert still active ``settle`` after it joined opens its own incident."""
        received = self.receive(active, "reconcile")
        still = {a.fingerprint for a in active}
        gone = []
        for incident in sorted(set(self.store.fingerprints().values())):
            for fingerprint, last in self.store.firing_alerts(self.store.events(incident)).items():
                if fingerprint not in still:
                    started = parse_time(last["startsAt"], "startsAt")
                    gone.append(Alert(fingerprint, "resolved", last["labels"], started, None))
        received += self.receive(gone, "reconcile")
        moved = self.store.promote_overdue(active)
        for item in moved:
            self._follow(item)
        return received + moved

    def start_pending(self) -> list[str]:
        """At start: runs a previous responder was told to start and never did (it stopped in between)."""
        started = []
        for incident in sorted(set(self.store.fingerprints().values())):
            events = self.store.events(incident)
            dispatch = [e for e in events if e.get("event") == "dispatch"]
            ran = any(e.get("event") in ("run_started", "resume", "end") for e in events)
            if dispatch and dispatch[0].get("mode") == "auto" and not ran:
                start = start_event(events)
                self._submit(self._run, incident, str(start["runbook"]), start)
                started.append(incident)
        return started

    def _follow(self, item: Received) -> None:
        if item.opened or item.occurrence > 1:
            start = start_event(self.store.events(item.incident))
            mode = self.mode(item)
            command = self.command(item.runbook.id, item.incident) if item.runbook else ""
            if item.opened:
                self.store.note(item.incident, "dispatch", mode=mode, command=command)
            LOG.info("incident %s: %s %s (%s)", item.incident, item.alert.name, item.alert.status, mode)
            missed = item.opened and item.alert.status == "resolved"
            notice = opened_notice(start, item.incident, mode, command, item.occurrence, missed)
            # its turn taken now, before the run is submitted: whatever the run says later goes after it
            self._submit(self._notify, item.incident, notice, self._turn(item.incident))
            # Also for an alert that had already resolved when it reached us (a fault that came and went):
            # the runbook's diagnosis and its verify step from outside are what close the incident.
            if item.opened and mode == "auto" and item.runbook:
                self._submit(self._run, item.incident, item.runbook.id, start)
        if item.resolved:
            LOG.info("incident %s: %s resolved", item.incident, item.alert.name)
            self._submit(self.close, item.incident)

    def command(self, runbook: str, incident: str) -> str:
        return confirm_command(runbook, incident, self.config.inventory, self.config.incidents)

    def mode(self, item: Received) -> str:
        """auto: runs unattended; person: waits for the command; unknown: no runbook or level."""
        if item.runbook is None or item.level is None:
            return "unknown"
        return "auto" if item.runbook.id in self.config.auto_run else "person"

    # ------------------------------------------------------------------ the slow part, in threads

    def _submit(self, fn: Any, *args: Any) -> None:
        future: Future[None] = self._pool.submit(self._guard, fn, *args)
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)

    @staticmethod
    def _guard(fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except Exception:  # a failed notice or run is logged; the responder goes on
            LOG.exception("responder task %s failed", getattr(fn, "__name__", fn))

    def _turn(self, incident: str) -> Turn:
        """The next place in the incident's order of notices."""
        mine = threading.Event()
        with self._notice_lock:
            before = self._notice_tail.get(incident)
            self._notice_tail[incident] = mine
        return before, mine

    def _notify(self, incident: str, notice: Notice, turn: Turn | None = None) -> None:
        """Send ``notice`` once the incident's notice before it is sent (``turn``: a place taken earlier; by
        default the next one now)."""
        before, mine = turn or self._turn(incident)
        try:
            if before is not None and not before.wait(NOTICE_ORDER_WAIT):
                LOG.warning("incident %s: the notice before %s is not out after %.0f s", incident, notice.event,
                            NOTICE_ORDER_WAIT)  # fmt: skip
            for delivery in self.notifier.send(notice):
                self.store.note(incident, "notify", notice=notice.event, **delivery.journal_fields())
                if not delivery.ok:
                    LOG.warning("incident %s: notice via %s failed: %s", incident, delivery.channel, delivery.error)
        finally:
            mine.set()
            with self._notice_lock:
                if self._notice_tail.get(incident) is mine:  # the last one: nothing waits on it
                    del self._notice_tail[incident]

    def _run(self, incident: str, runbook: str, start: dict[str, Any]) -> None:
        def waiting(holder: str) -> None:
            self.store.note(incident, "run_waits", reason=holder)
            LOG.info("incident %s: waits for the hosts: %s", incident, holder)

        self.store.note(incident, "run_started", runbook=runbook, unattended=True)
        rc = self.runner(runbook, incident, waiting, int(start.get("level") or UNKNOWN_LEVEL))
        self.store.note(incident, "run_ended", runbook=runbook, exit=rc)
        LOG.info("incident %s: runbook %s exited %s", incident, runbook, rc)
        if rc == RunbookExit.ABORTED:
            events = self.store.events(incident)
            declined = [e["step"] for e in events if e.get("event") == "step_end" and e.get("result") == "declined"]
            if declined:
                command = self.command(runbook, incident)
                self._notify(incident, waiting_notice(start, incident, declined[-1], command))
        self.close(incident)

    def close(self, incident: str) -> None:
        closed = self.store.try_close(incident)
        if closed is not None:
            LOG.info("incident %s closed: MTTD %s s, MTTR %s s", incident, closed["mttd_s"], closed["mttr_s"])
            self._notify(incident, closed_notice(start_event(self.store.events(incident)), incident, closed))
            return
        # Recovered and resolved, within the settle: closed the moment the settle passed, not at the sweep
        # after it (up to a reconcile interval later, which told the duty team nothing more).
        due = self.store.closes_at(incident)
        if due is not None:
            self._close_later(incident, max((due - self.store.clock()).total_seconds(), 0.0))

    def _close_later(self, incident: str, delay: float) -> None:
        """``close`` again once ``delay`` s passed; one pending per incident."""

        def due() -> None:
            with self._closing_lock:
                self._closing.pop(incident, None)
            with contextlib.suppress(RuntimeError):  # the responder shut down meanwhile: its pool takes no more
                self._submit(self.close, incident)

        with self._closing_lock:  # held while the timer starts: ``due`` cannot pop before it is recorded
            if incident not in self._closing:
                self._closing[incident] = (self.later or _daemon_timer)(delay + CLOSE_MARGIN, due)

    def sweep(self) -> None:
        """Close what a person's run recovered after the alert had resolved; warn of reporting clocks."""
        for incident in sorted(set(self.store.fingerprints().values())):
            self.close(incident)
        self._submit(self.warn_clocks)

    def warn_clocks(self) -> None:
        """Tell the duty manager of each graded incident whose report to the regulator is nearly due or
        overdue, once per incident and state, as ``portalops incident clocks --notify`` does from cron
        where no responder runs. A check still sending when the next sweep comes is not doubled. Only
        journals that changed since the last sweep are read again."""
        if not self._clocks.acquire(blocking=False):
            return
        try:
            now = self.store.clock()
            for clock in reporting.due_warnings(now, self.config.incidents, cache=self._clock_cache):
                for said in reporting.warn(clock, now, self.notifier, self.config.incidents):
                    LOG.info("incident %s: report clock %s: %s", clock.incident, clock.status(now), said)
        finally:
            self._clocks.release()

    def drain(self, timeout: float = 30.0) -> None:
        """Wait for the notices and runs under way (tests; shutdown)."""
        while self._pending:
            done, _ = wait_for(list(self._pending), timeout=timeout)
            if not done:
                raise TimeoutError("responder tasks still running")

    def shutdown(self) -> None:
        """Queued tasks are dropped; a run under way goes on in its own process (the unit's KillMode=process)."""
        for timer in list(self._closing.values()):
            if isinstance(timer, threading.Timer):
                timer.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)


def policy(runbook_id: str, config: Config, runbooks: dict[str, Any]) -> str:
    """One line per runbook for the log at start: runs unattended or waits, and which acts wait."""
    runbook = runbooks[runbook_id]
    waits = destructive_acts(runbook)
    how = "unattended" if runbook_id in config.auto_run else "by a person"
    return f"{runbook_id}: {how}" + (f"; destructive acts wait for a person: {', '.join(waits)}" if waits else "")
