"""``portalops deadman``: is the monitoring itself alive, asked from the controller (cron-able).

Alive when Prometheus answers ``/-/ready``, Alertmanager answers its API, and the always-firing
``Watchdog`` alert is in Alertmanager with an ``updatedAt`` younger than ``max_age`` (Prometheus
re-sends a firing alert every minute, and Alertmanager stamps ``updatedAt`` on each: a stale one
means Prometheus no longer evaluates its rules or no longer reaches Alertmanager).

With ``--notify`` it tells the duty contacts (``portalops_notify``, event ``monitoring``) once when
the monitoring dies and once when it comes back, remembering the last state in a small JSON file
(default ``incidents/.deadman.json``, beside the incidents it guards). A notice no channel
delivered is tried again on the next run.

Worst-case delay from death to notice, run every ``INTERVAL_S``: Prometheus or Alertmanager down
-> the next run (<= 60 s + the request timeout); Prometheus up but not sending alerts -> ``max_age``
+ one interval (<= 180 + 60 s = 4 min).
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from portalops.monitoring.api import Alertmanager, Prometheus, Unreachable
from portalops.monitoring.status import WATCHDOG
from portalops.runbook.journal import parse_stamp, stamp
from portalops.runbook.live import INCIDENTS_DIR
from portalops.runbook.notify import Delivery, Notice, Notifier
from portalops.runbook.workcal import local_text, span

STATE_FILE = INCIDENTS_DIR / ".deadman.json"
INTERVAL_S = 60  # contrib/systemd/portalops-deadman.timer runs it every minute
MAX_AGE_S = 180.0  # three missed re-sends of the Watchdog
LEVEL = 1  # blind monitoring hides every L1 fault: it goes to the channels that serve L1
EVENT = "monitoring"


def check(prometheus: Prometheus, alertmanager: Alertmanager, now: datetime, max_age: float = MAX_AGE_S) -> list[str]:
    """What is dead; empty when the monitoring is alive."""
    dead = []
    try:
        prometheus.ready()
    except Unreachable as exc:
        dead.append(f"Prometheus not ready: {exc}")
    try:
        alerts = alertmanager.alerts()  # a silenced or inhibited Watchdog still proves the pipeline works
    except Unreachable as exc:
        return [*dead, f"Alertmanager not answering: {exc}"]
    watchdog = [a for a in alerts if a.name == WATCHDOG]
    if not watchdog:
        dead.append("Alertmanager has no Watchdog alert: Prometheus does not evaluate its rules or cannot reach it")
        return dead
    age = (now - max(a.updated_at for a in watchdog)).total_seconds()
    if age > max_age:
        dead.append(
            f"the Watchdog alert was last updated {span(age)} ago (more than {span(max_age)}):"
            " Prometheus stopped sending alerts to Alertmanager"
        )
    return dead


@dataclass
class State:
    """The last state the duty contacts should know of."""

    state: str = "alive"  # alive | dead
    since: str = ""
    dead: list[str] = field(default_factory=list)
    notified: bool = True  # a first run that finds it alive has nothing to tell
    was: list[str] = field(default_factory=list)  # alive again: what was dead
    was_since: str = ""  # and since when

    @classmethod
    def load(cls, path: Path) -> State:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                str(data["state"]),
                str(data["since"]),
                [str(item) for item in data["dead"]],
                bool(data["notified"]),
                [str(item) for item in data.get("was", [])],
                str(data.get("was_since", "")),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return cls()  # none yet, or unreadable: as if alive and told

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = path.with_name(path.name + ".tmp")
        scratch.write_text(json.dumps(asdict(self), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        os.replace(scratch, path)


def notice(state: State, now: datetime) -> Notice:
    where = socket.gethostname()
    if state.state == "dead":
        title = "[监控失效 MONITORING DEAD] Prometheus/Alertmanager: faults are not detected now"
        lines = [
            f"### {title}",
            *[f"- {item}" for item in state.dead],
            f"- since: {local_text(parse_stamp(state.since))} (seen by `portalops deadman` on {where})",
            "- until it is back, no alert opens an incident: watch the portal by hand (`portalops probe`)",
            "- look: `portalops status`; on mon1 `systemctl status prometheus prometheus-alertmanager`",
        ]
    else:
        title = "[监控恢复 monitoring back] Prometheus and Alertmanager answer, the Watchdog fires"
        was = f" (dead since {local_text(parse_stamp(state.was_since))})" if state.was_since else ""
        lines = [
            f"### {title}",
            f"- back at: {local_text(now)}{was}",
            *[f"- was: {item}" for item in state.was],
            "- alerts raised while it was dead were not seen: `portalops status` shows what fires now",
        ]
    return Notice(EVENT, "", "", LEVEL, title, "\n".join(lines))


@dataclass(frozen=True)
class Outcome:
    dead: list[str]
    state: State
    deliveries: list[Delivery]


def step(dead: list[str], path: Path, notifier: Notifier, now: datetime) -> Outcome:
    """Remember the state; notify on each change (and again while no channel delivered the notice)."""
    previous = State.load(path)
    current = "dead" if dead else "alive"
    if current == previous.state:
        state = previous
        state.since = state.since or stamp(now)
        state.dead = list(dead) or state.dead
    elif dead:
        state = State(current, stamp(now), list(dead), notified=False)
    else:
        state = State(current, stamp(now), [], notified=False, was=previous.dead, was_since=previous.since)
    deliveries: list[Delivery] = []
    if not state.notified:
        deliveries = notifier.send(notice(state, now))
        state.notified = any(d.ok for d in deliveries)
    state.save(path)
    return Outcome(list(dead), state, deliveries)
