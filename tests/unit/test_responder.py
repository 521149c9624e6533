"""The responder over real HTTP on loopback: a real server on an ephemeral port, a test notice receiver
and a fake Alertmanager API as tiny real servers beside it; only the runbook run is a fake runner."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from portalops.errors import BadInput, EnvironmentProblem
from portalops.inventory import parse_inventory
from portalops.responder.alerts import parse_time, parse_webhook
from portalops.responder.config import Config, load_config
from portalops.responder.incidents import Store
from portalops.responder.runner import BUSY, SubprocessRunner
from portalops.responder.server import Running, make_app, start_in_thread
from portalops.responder.service import Responder
from portalops.runbook import Runbook, act, diagnose, escalate, registry, reporting, verify
from portalops.runbook.engine import Options, Runtime, run_runbook
from portalops.runbook.hosts import LocalHost
from portalops.runbook.journal import Journal, open_incident, read_events
from portalops.runbook.levels import Level
from portalops.runbook.lock import TargetLock
from portalops.runbook.notify import Channel, Notifier
from portalops.runbook.outcome import RunbookExit
from portalops.runbook.planning import make_plan
from portalops.runbook.workcal import WorkCalendar, deadlines

TOKEN = "s3cret-token-for-the-responder"  # noqa: S105 - a test's token
RUNBOOKS = registry.discover()
STARTS = "2026-03-10T02:00:00.123456789Z"  # Tuesday 10:00 in Beijing; Go writes nanoseconds
FP_WEB = "a1b2c3d4e5f60718"
FP_DB = "0f0e0d0c0b0a0908"


def alert(fingerprint: str = FP_WEB, status: str = "firing", starts: str = STARTS, **labels: str) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": "PortalDown", "runbook": "l1_portal_unreachable", "level": "L1", **labels},
        "annotations": {"summary": "www.example.gov.cn does not load"},
        "startsAt": starts,
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-03-10T02:05:00Z",
        "generatorURL": "http://mon1:9090/graph",
        "fingerprint": fingerprint,
    }


def webhook(*alerts: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "4",
        "groupKey": '{}:{alertname="PortalDown"}',
        "truncatedAlerts": 0,
        "status": alerts[0]["status"],
        "receiver": "portalops",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://mon1:9093",
        "alerts": list(alerts),
    }


def post(url: str, body: bytes | dict[str, Any], token: str | None = TOKEN) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(f"{url}/alerts", data=data, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
        return dict(json.loads(response.read()))


@dataclass
class FakeRunner:
    """Stands in for `portalops runbook run --resume --unattended`: journals what the engine would."""

    root: Path
    outcome: str = "recovered"  # recovered | not_recovered | declined
    calls: list[tuple[str, str]] = field(default_factory=list)
    levels: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, runbook: str, incident: str, waiting: Callable[[str], None], level: int = 4) -> int:
        with self.lock:
            self.calls.append((runbook, incident))
            self.levels.append(level)
        journal = Journal(self.root / incident)
        journal.write("resume", from_step="probe", user="test")
        if self.outcome == "declined":
            journal.write("step_end", step="restore_database", kind="act", result="declined", summary="")
            journal.write("end", outcome="aborted", exit=4, summary="declined")
            return int(RunbookExit.ABORTED)
        passed = self.outcome == "recovered"
        journal.write("step_end", step="verify", kind="verify", result="passed" if passed else "failed", summary="")
        journal.write("end", outcome=self.outcome, exit=0 if passed else 1, summary="")
        return int(RunbookExit.RECOVERED if passed else RunbookExit.NOT_RECOVERED)


@dataclass
class Received:
    """A notice receiver (the `webhook` channel of portalops_notify) and a fake Alertmanager API."""

    notices: list[dict[str, Any]] = field(default_factory=list)
    active: list[dict[str, Any]] = field(default_factory=list)
    slow: dict[str, float] = field(default_factory=dict)  # event -> seconds the receiver takes before taking it

    def app(self) -> web.Application:
        async def hook(request: web.Request) -> web.Response:
            notice = await request.json()
            await asyncio.sleep(self.slow.get(str(notice.get("event")), 0.0))
            self.notices.append(notice)
            return web.json_response({})

        async def alerts(request: web.Request) -> web.Response:
            assert request.query["active"] == "true"
            return web.json_response(self.active)

        app = web.Application()
        app.router.add_post("/hook", hook)
        app.router.add_get("/api/v2/alerts", alerts)
        return app


@dataclass
class World:
    root: Path
    peer: Received
    peer_url: str
    runner: FakeRunner
    servers: list[Running] = field(default_factory=list)
    responders: list[Responder] = field(default_factory=list)

    def start(
        self, auto_run: tuple[str, ...] = ("l1_portal_unreachable",), reconcile: bool = False, settle: float = 0.0
    ) -> str:
        """A responder (a new one each time, as after a restart) serving on an ephemeral port."""
        config = Config(
            incidents=self.root,
            inventory="inventory/lab",
            auto_run=auto_run,
            alertmanager=self.peer_url,
            reconcile_interval=3600,
            settle=settle,
        )
        notifier = Notifier([Channel("duty", "webhook", {"url": f"{self.peer_url}/hook"})])
        store = Store(self.root, config.inventory, RUNBOOKS, settle=config.settle)
        responder = Responder(config, store, notifier, self.runner)
        self.responders.append(responder)
        server = start_in_thread(make_app(responder, TOKEN, reconcile=reconcile))
        self.servers.append(server)
        return server.url

    @property
    def responder(self) -> Responder:
        return self.responders[-1]

    def incidents(self) -> list[str]:
        return sorted(p.parent.name for p in self.root.glob("*/journal.jsonl"))

    def events(self, incident: str, kind: str = "") -> list[dict[str, Any]]:
        found = read_events(self.root / incident / "journal.jsonl")
        return [e for e in found if not kind or e["event"] == kind]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    peer = Received()
    peer_server = start_in_thread(peer.app())
    root = tmp_path / "incidents"
    root.mkdir()
    made = World(root, peer, peer_server.url, FakeRunner(root))
    yield made
    for server in made.servers:
        server.stop()
    for responder in made.responders:
        responder.shutdown()
    peer_server.stop()


@pytest.mark.parametrize("token", [None, "wrong-token-of-the-same-size!!", ""], ids=["none", "wrong", "empty"])
def test_without_the_right_bearer_token_401_and_nothing_opened(world: World, token: str | None) -> None:
    url = world.start()
    status, body = post(url, webhook(alert()), token)
    assert status == 401
    assert body == {"error": "unauthorized"}
    assert world.incidents() == []


def test_malformed_json_is_400_logged_and_starts_nothing(world: World, caplog: pytest.LogCaptureFixture) -> None:
    url = world.start()
    with caplog.at_level(logging.WARNING, logger="portalops.responder"):
        status, body = post(url, b'{"version": "4", "alerts": [')
    assert status == 400
    assert "malformed JSON" in body["error"]
    assert "malformed JSON" in caplog.text
    assert world.incidents() == []
    assert world.runner.calls == []


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        ([alert()], "a JSON object"),
        ({**webhook(alert()), "version": "3"}, "version"),
        ({**webhook(alert()), "alerts": []}, "alerts"),
        (webhook({**alert(), "status": "pending"}), "status"),
        (webhook({**alert(), "fingerprint": "../../etc"}), "fingerprint"),
        (webhook({**alert(), "startsAt": "yesterday"}), "startsAt"),
        (webhook({**alert(), "labels": {"alertname": "X", "level": 1}}), "labels"),
        (webhook({**alert(), "labels": {"runbook": "l1_portal_unreachable"}}), "alertname"),
    ],
    ids=["list", "version", "no-alerts", "status", "fingerprint", "startsAt", "labels", "no-alertname"],
)
def test_wrong_schema_is_400_logged_and_starts_nothing(
    world: World, caplog: pytest.LogCaptureFixture, payload: Any, says: str
) -> None:
    url = world.start()
    with caplog.at_level(logging.WARNING, logger="portalops.responder"):
        status, body = post(url, json.dumps(payload).encode())
    assert status == 400
    assert says in body["error"]
    assert "not an Alertmanager webhook" in caplog.text
    assert world.incidents() == []


def test_a_burst_of_five_duplicates_is_one_incident_one_notice_one_run(world: World) -> None:
    url = world.start()
    answers: list[int] = []
    threads = [threading.Thread(target=lambda: answers.append(post(url, webhook(alert()))[0])) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    world.responder.drain()
    assert answers == [200] * 5
    [incident] = world.incidents()
    assert len(world.events(incident, "alert")) == 1
    assert world.runner.calls == [("l1_portal_unreachable", incident)]
    assert [n["event"] for n in world.peer.notices] == ["start"]


def test_detection_time_and_deadlines_are_the_alerts_startsAt_not_receipt(world: World) -> None:
    url = world.start()
    post(url, webhook(alert()))
    world.responder.drain()
    [incident] = world.incidents()
    [start] = world.events(incident, "start")
    starts = parse_time(STARTS, "startsAt")
    assert start["detected"] == "2026-03-10T02:00:00.123Z"
    assert incident.startswith("20260310T020000Z-l1_portal_unreachable")
    assert start["level"] == 1
    assert start["alert"]["fingerprint"] == FP_WEB
    assert start["deadlines"] == [d.as_dict() for d in deadlines(Level.L1, starts, WorkCalendar())]
    assert start["ts"] > start["detected"]  # opened when the webhook came, after the alert started
    notice = world.peer.notices[0]
    assert notice["level"] == 1
    assert "detected: 2026-03-10 10:00 Tue (UTC+8)" in notice["text"]
    assert "on site due: 2026-03-10 10:05" in notice["text"]
    assert "runs unattended" in notice["text"]


def test_resolved_closes_only_after_the_runbook_verified_recovery(world: World) -> None:
    world.runner.outcome = "not_recovered"
    url = world.start()
    post(url, webhook(alert()))
    world.responder.drain()
    [incident] = world.incidents()
    post(url, webhook(alert(status="resolved")))
    world.responder.drain()
    assert world.events(incident, "alert_resolved")
    assert not world.events(incident, "closed")  # resolved, but the runbook did not verify recovery

    # A person resumes it and it recovers; the sweep closes it with MTTD and MTTR from startsAt.
    journal = Journal(world.root / incident)
    journal.write("resume", from_step="verify", user="person")
    journal.write("step_end", step="verify", kind="verify", result="passed", summary="")
    end = journal.write("end", outcome="recovered", exit=0, summary="")
    world.responder.sweep()
    world.responder.drain()
    [closed] = world.events(incident, "closed")
    [start] = world.events(incident, "start")
    starts = parse_time(STARTS, "startsAt")
    assert closed["mttr_s"] == round((parse_time(end["ts"], "ts") - starts).total_seconds(), 3)
    assert closed["mttd_s"] == round((parse_time(start["ts"], "ts") - starts).total_seconds(), 3)
    assert world.peer.notices[-1]["event"] == "resolution"
    assert "MTTR" in world.peer.notices[-1]["text"]
    assert "alert resolved" in (world.root / incident / "incident.md").read_text()


def test_the_sweep_warns_the_duty_manager_of_a_reporting_clock_once_without_cron(world: World) -> None:
    """Graded 较大 long after its alert began (startsAt 2026-03-10), the report is overdue: the sweep after a
    reconciliation tells the duty contacts once, however many sweeps follow."""
    url = world.start()
    post(url, webhook(alert()))
    world.responder.drain()
    [incident] = world.incidents()
    reporting.record_grade(open_incident(world.root, incident), "relatively_major", "张三", "", False)
    for _ in range(3):
        world.responder.sweep()
        world.responder.drain()
    told = [n for n in world.peer.notices if n["event"] == "report_clock"]
    assert len(told) == 1 and told[0]["incident"] == incident and "OVERDUE" in told[0]["title"]
    [note] = [e for e in world.events(incident, "notify") if e["notice"] == "report_clock"]
    assert (note["state"], note["ok"]) == ("overdue", True)


def test_recovered_but_still_firing_stays_open_until_the_alert_resolves(world: World) -> None:
    url = world.start()
    post(url, webhook(alert()))
    world.responder.drain()
    [incident] = world.incidents()
    assert world.events(incident, "end")[-1]["outcome"] == "recovered"
    assert not world.events(incident, "closed")
    post(url, webhook(alert(status="resolved")))
    world.responder.drain()
    assert world.events(incident, "closed")
    post(url, webhook(alert(starts="2026-03-10T03:00:00Z")))  # fires again after closing: a new incident
    world.responder.drain()
    assert len(world.incidents()) == 2


def test_a_flapping_alert_is_one_incident_with_its_occurrences(world: World) -> None:
    world.runner.outcome = "not_recovered"
    url = world.start()
    post(url, webhook(alert()))
    post(url, webhook(alert(status="resolved")))
    post(url, webhook(alert(starts="2026-03-10T02:07:00Z")))
    post(url, webhook(alert(starts="2026-03-10T02:07:00Z")))  # Alertmanager's repeat: same occurrence
    world.responder.drain()
    [incident] = world.incidents()
    assert [e["occurrence"] for e in world.events(incident, "alert")] == [1, 2]
    assert "occurrence 2" in world.peer.notices[-1]["title"]
    assert len(world.runner.calls) == 1


def test_an_incidents_notices_go_out_in_order_however_slow_the_first(world: World) -> None:
    """The opening notice and the run are sent to the pool together: a run that stops at once for a person
    (declined) must not tell the duty team of its escalation before the incident's opening reached them (a
    loaded CI machine showed exactly that order)."""
    world.peer.slow["start"] = 1.5
    world.runner.outcome = "declined"
    url = world.start()
    post(url, webhook(alert()))
    world.responder.drain()
    assert [n["event"] for n in world.peer.notices] == ["start", "escalation"]
    assert world.responder._notice_tail == {}  # nothing left waiting


def test_alerts_of_one_runbook_join_its_incident_and_it_closes_when_all_resolved(world: World) -> None:
    """A defaced theme fails the probe of every site it serves: on the lab three PortalDefaced fingerprints
    opened three incidents, one ran and two waited for ever. One fault: one incident, one notice, one run."""
    world.runner.outcome = "declined"  # the run waits for a person before its destructive act
    url = world.start()
    post(url, webhook(alert(), alert(FP_DB, starts="2026-03-10T02:00:15Z", instance="https://b.example.gov.cn/")))
    world.responder.drain()
    [incident] = world.incidents()
    assert [(e["fingerprint"], e["occurrence"]) for e in world.events(incident, "alert")] == [(FP_WEB, 1), (FP_DB, 1)]
    assert world.events(incident, "alert_joined")[0]["alert"]["labels"]["instance"] == "https://b.example.gov.cn/"
    assert len(world.runner.calls) == 1
    assert [n["event"] for n in world.peer.notices] == ["start", "escalation"]

    journal = Journal(world.root / incident)  # the person confirms; the run recovers
    journal.write("resume", from_step="restore_database", user="person")
    journal.write("end", outcome="recovered", exit=0, summary="")
    post(url, webhook(alert(status="resolved")))
    world.responder.drain()
    assert not world.events(incident, "closed")  # the second site's alert still fires
    post(url, webhook(alert(FP_DB, status="resolved", starts="2026-03-10T02:00:15Z")))
    world.responder.drain()
    [closed] = world.events(incident, "closed")
    assert closed["alerts"] == 2
    assert "joins: the same runbook's fault" in (world.root / incident / "incident.md").read_text()

    # Loaded from disk after a restart: both fingerprints belong to nothing open any more.
    assert Store(world.root, "inventory/lab", RUNBOOKS).fingerprints() == {}


def test_a_resolved_alert_repeated_after_its_incident_closed_opens_nothing(world: World) -> None:
    """Alertmanager repeats a group's resolved alerts at each group_interval; on the lab each repeat after the
    close opened a new incident and ran the runbook again (CI: two runs still going when the drill ended)."""
    url = world.start()
    post(url, webhook(alert(), alert(FP_DB, instance="https://b.example.gov.cn/")))
    world.responder.drain()
    post(url, webhook(alert(status="resolved"), alert(FP_DB, status="resolved", instance="https://b.example.gov.cn/")))
    world.responder.drain()
    [incident] = world.incidents()
    assert world.events(incident, "closed")
    repeat = webhook(alert(FP_DB, status="resolved", instance="https://b.example.gov.cn/"))
    for target in (url, world.start()):  # as it runs, and after a restart (read back from the journals)
        before = len(world.peer.notices)
        post(target, repeat)
        world.responder.drain()
        assert world.incidents() == [incident]
        assert len(world.runner.calls) == 1
        assert len(world.peer.notices) == before
        assert len(world.events(incident, "alert_resolved")) == 2


def after_recovery(world: World, incident: str, seconds: float) -> str:
    """A startsAt ``seconds`` after the incident's run verified its recovery."""
    recovered = parse_time(world.events(incident, "end")[-1]["ts"], "ts")
    return (recovered + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_an_alert_of_the_same_runbook_after_its_run_recovered_is_a_new_incident(world: World) -> None:
    url = world.start()
    post(url, webhook(alert()))
    world.responder.drain()
    [first] = world.incidents()
    post(url, webhook(alert(FP_DB, starts=after_recovery(world, first, 0.5))))  # past the settle: news
    world.responder.drain()
    assert len(world.incidents()) == 2
    assert len(world.runner.calls) == 2
    store = Store(world.root, "inventory/lab", RUNBOOKS)  # restart: each fingerprint still knows its own
    assert sorted(store.fingerprints()) == sorted([FP_WEB, FP_DB])
    assert len(set(store.fingerprints().values())) == 2


def test_the_same_fault_reported_late_joins_the_recovered_incident_and_pages_no_one_again(world: World) -> None:
    """On the lab a killed php-fpm gave three L1 incidents, three pages and three runs: PortalBackendDown
    opened one and its run recovered; PortalWrongContent (for: 20s) of two sites fired 3 and 18 s after that.
    Begun within the settle after the recovery, they join it. It closes once they resolved too and the
    settle passed (MariaDB's incident closed 12 s after its recovery, 2 s before a late probe alert began)."""
    url = world.start(settle=2.0)
    post(url, webhook(alert()))
    world.responder.drain()
    [incident] = world.incidents()
    late = alert(FP_DB, starts=after_recovery(world, incident, 1.0), instance="https://b.example.gov.cn/")
    post(url, webhook(alert(status="resolved")))
    world.responder.drain()
    assert not world.events(incident, "closed")  # resolved and recovered, but within the settle
    post(url, webhook(late))
    world.responder.drain()
    assert world.incidents() == [incident]
    [joined] = world.events(incident, "alert_joined")
    assert joined["after_recovery"] is True
    assert len(world.runner.calls) == 1
    assert [n["event"] for n in world.peer.notices] == ["start"]
    post(url, webhook({**late, "status": "resolved", "endsAt": late["startsAt"]}))
    world.responder.drain()
    recovered = parse_time(world.events(incident, "end")[-1]["ts"], "ts")
    assert not world.events(incident, "closed") or datetime.now(UTC) >= recovered + timedelta(seconds=2)
    wait_for(lambda: datetime.now(UTC) >= recovered + timedelta(seconds=2.1))
    world.responder.sweep()
    world.responder.drain()
    [closed] = world.events(incident, "closed")
    assert closed["alerts"] == 2
    assert parse_time(closed["ts"], "ts") >= recovered + timedelta(seconds=2)
    assert Store(world.root, "inventory/lab", RUNBOOKS).probation == {}


def test_an_incident_closes_when_its_settle_ends_with_no_sweep_in_between(world: World) -> None:
    """Recovered and resolved within the settle: it closes once the settle passed, not before, and not only
    at the next reconciliation's sweep (an hour away here; a minute by default)."""
    url = world.start(settle=1.5)
    post(url, webhook(alert()))
    world.responder.drain()
    [incident] = world.incidents()
    post(url, webhook(alert(status="resolved")))
    world.responder.drain()
    recovered = parse_time(world.events(incident, "end")[-1]["ts"], "ts")
    assert not world.events(incident, "closed") or datetime.now(UTC) >= recovered + timedelta(seconds=1.5)
    wait_for(lambda: world.events(incident, "closed"), seconds=5)
    [closed] = world.events(incident, "closed")
    assert parse_time(closed["ts"], "ts") >= recovered + timedelta(seconds=1.5)
    # The resolution notice goes out after the closed line is written (another thread): wait for it to arrive.
    wait_for(lambda: world.peer.notices and world.peer.notices[-1]["event"] == "resolution", seconds=5)
    assert world.peer.notices[-1]["event"] == "resolution"


def test_a_pending_close_waits_for_the_settle_again_when_the_alert_fires_meanwhile(tmp_path: Path) -> None:
    """The settle's timer only asks the store again: an alert firing again by then keeps the incident open."""
    scheduled: list[tuple[float, Callable[[], None]]] = []
    config = Config(incidents=tmp_path, inventory="inventory/lab", auto_run=("l1_portal_unreachable",), settle=60)
    store = Store(tmp_path, config.inventory, RUNBOOKS, settle=60)
    runner = FakeRunner(tmp_path)
    responder = Responder(config, store, Notifier([]), runner, later=lambda s, fn: scheduled.append((s, fn)))
    try:
        responder.receive(parse_webhook(webhook(alert())), "webhook")
        responder.drain()
        [incident] = sorted(p.parent.name for p in tmp_path.glob("*/journal.jsonl"))
        responder.receive(parse_webhook(webhook(alert(status="resolved"))), "webhook")
        responder.drain()
        [(delay, due)] = scheduled  # one timer, however many times it was asked
        assert 59 <= delay <= 60.5, delay
        responder.close(incident)
        assert len(scheduled) == 1
        responder.receive(parse_webhook(webhook(alert(starts="2026-03-10T02:00:00Z"))), "webhook")
        responder.drain()
        due()
        responder.drain()
        events = read_events(tmp_path / incident / "journal.jsonl")
        assert store.firing(events), events
        assert not [e for e in events if e["event"] == "closed"], events
    finally:
        responder.shutdown()


def test_a_late_alert_that_keeps_firing_past_the_settle_moves_to_an_incident_of_its_own(world: World) -> None:
    """Joined after the recovery but still active a settle later: not the old fault's tail but a fault of its
    own, told and run like any; the old incident no longer waits for it and closes."""
    url = world.start(settle=0.3)
    post(url, webhook(alert()))
    world.responder.drain()
    [old] = world.incidents()
    late = alert(FP_DB, starts=after_recovery(world, old, 0.1), instance="https://b.example.gov.cn/")
    post(url, webhook(late))
    post(url, webhook(alert(status="resolved")))
    world.responder.drain()
    assert world.incidents() == [old] and not world.events(old, "closed")
    assert Store(world.root, "inventory/lab", RUNBOOKS, settle=0.3).probation.keys() == {FP_DB}  # after a restart

    time.sleep(0.4)
    world.peer.active = [{**late, "status": {"state": "active", "silencedBy": [], "inhibitedBy": []}}]
    again = world.start(reconcile=True, settle=0.3)
    wait_for(lambda: get(f"{again}/healthz")["last_reconcile"])
    world.responder.drain()
    [moved] = world.events(old, "alert_moved")
    assert moved["fingerprint"] == FP_DB and moved["to"] in world.incidents()
    [alert_in_new] = world.events(moved["to"], "alert")
    assert (alert_in_new["fingerprint"], alert_in_new["moved_from"]) == (FP_DB, old)
    assert world.events(moved["to"], "start")[0]["detected"] == late["startsAt"][:23] + "Z"
    assert [incident for _, incident in world.runner.calls] == [old, moved["to"]]
    assert [n["event"] for n in world.peer.notices].count("start") == 2
    wait_for(lambda: world.events(old, "closed"))  # the old one's own alert resolved: closed by the sweep
    assert world.responder.store.fingerprints() == {FP_DB: moved["to"]}


def test_an_alert_the_repair_itself_causes_joins_that_incident_and_one_that_stays_moves_out(world: World) -> None:
    """l1_database_lost stops php-fpm for the restore; PortalBackendDown (l1_portal_unreachable's) fired then,
    and on the lab opened an L1 incident and an unattended run 5 s after the restore's recovery. Begun while
    the run acted, it joins the repair's incident, on probation: still active a settle later, it moves out."""
    store = Store(world.root, "inventory/lab", RUNBOOKS, settle=60)
    lost = {"alertname": "DatabaseTableLost", "runbook": "l1_database_lost"}
    repair = store.receive(parse_webhook(webhook(alert(FP_DB, **lost)))[0], "webhook").incident
    before_the_act = datetime.now(UTC)
    journal = Journal(world.root / repair)
    journal.write("resume", from_step="db_health", user="person")
    journal.write("step_begin", step="stop_writes", hosts=["controller"])
    journal.write("step_end", step="stop_writes", kind="act", result="done", summary="")

    def backend_down(fingerprint: str, starts: datetime) -> Any:
        stamped = starts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return store.receive(parse_webhook(webhook(alert(fingerprint, starts=stamped, instance="cms1")))[0], "webhook")

    caused = backend_down(FP_WEB, datetime.now(UTC))
    assert (caused.incident, caused.opened, caused.occurrence) == (repair, False, 0)  # no page, no run
    [joined] = [e for e in read_events(world.root / repair / "journal.jsonl") if e["event"] == "alert_joined"]
    assert joined["during_repair"] is True
    assert "its own doing" in (world.root / repair / "incident.md").read_text()
    assert Store(world.root, "inventory/lab", RUNBOOKS, settle=60).probation.keys() == {FP_WEB}  # after a restart
    earlier = backend_down("1111222233334444", before_the_act - timedelta(seconds=1))  # began before the act
    assert earlier.opened and earlier.incident != repair

    # Still firing a settle after it joined: a fault of its own after all, told and run as any.
    store.clock = lambda: datetime.now(UTC) + timedelta(seconds=61)
    active = parse_webhook(webhook(alert(FP_WEB, starts=caused.alert.starts_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))))
    [moved] = store.promote_overdue(active)
    assert moved.opened and moved.incident not in (repair, earlier.incident) and moved.runbook is not None
    assert moved.runbook.id == "l1_portal_unreachable"
    assert store.fingerprints()[FP_WEB] == moved.incident


def test_an_incident_whose_alerts_resolved_while_it_waits_for_a_person_is_not_joined(world: World) -> None:
    """A person-mode incident (l1_database_lost is not in auto_run) whose alert resolved and that nobody ran
    yet is history: another alert of the runbook is a new fault with its own incident and notice."""
    url = world.start()
    lost = {"alertname": "DatabaseTableLost", "runbook": "l1_database_lost"}
    post(url, webhook(alert(FP_DB, **lost)))
    post(url, webhook(alert(FP_DB, status="resolved", **lost)))
    world.responder.drain()
    [waiting] = world.incidents()
    post(url, webhook(alert(FP_WEB, starts="2026-03-10T02:30:00Z", schema="wp_news", **lost)))
    world.responder.drain()
    assert len(world.incidents()) == 2
    assert not world.events(waiting, "alert_joined")
    assert [n["event"] for n in world.peer.notices] == ["start", "start"]


def test_reconcile_resolves_a_joined_alert_no_longer_listed(world: World) -> None:
    world.runner.outcome = "declined"
    url = world.start()
    post(url, webhook(alert(), alert(FP_DB, instance="https://b.example.gov.cn/")))
    world.responder.drain()
    [incident] = world.incidents()
    world.peer.active = [{**alert(), "status": {"state": "active"}}]  # the second resolved unheard
    again = world.start(reconcile=True)
    wait_for(lambda: get(f"{again}/healthz")["last_reconcile"])
    world.responder.drain()
    [gone] = world.events(incident, "alert_resolved")
    assert (gone["fingerprint"], gone["via"]) == (FP_DB, "reconcile")
    assert get(f"{again}/healthz")["open_incidents"] == 1


def test_a_resolve_for_an_alert_never_seen_firing_records_both_and_runs_the_runbook_to_verify(world: World) -> None:
    """A fault that came and went before the responder heard of it: its incident still needs the runbook's
    diagnosis and verify step from outside to close (on the lab, a first notification that arrives after
    the edge came back stayed open for ever when nothing ran)."""
    url = world.start()
    post(url, webhook(alert(status="resolved")))
    world.responder.drain()
    [incident] = world.incidents()
    assert [e["startsAt"] for e in world.events(incident, "alert")] == ["2026-03-10T02:00:00.123Z"]
    assert world.events(incident, "alert_resolved")[0]["endsAt"] == "2026-03-10T02:05:00.000Z"
    assert world.runner.calls == [("l1_portal_unreachable", incident)]
    notice = world.peer.notices[0]
    assert "already resolved" in notice["title"]
    assert "runs unattended" in notice["text"]


def test_the_watchdog_is_a_heartbeat_not_an_incident(world: World) -> None:
    url = world.start()
    watchdog = alert(FP_DB, alertname="Watchdog", severity="none")
    del watchdog["labels"]["runbook"], watchdog["labels"]["level"]
    post(url, webhook(watchdog))
    world.responder.drain()
    assert world.incidents() == []
    assert world.runner.calls == []
    assert world.peer.notices == []
    assert world.responder.last_heartbeat


def test_a_destructive_runbook_is_notified_with_its_command_but_not_run(world: World) -> None:
    url = world.start()
    post(url, webhook(alert(FP_DB, alertname="DatabaseLost", runbook="l1_database_lost")))
    world.responder.drain()
    [incident] = world.incidents()
    assert world.runner.calls == []
    [notice] = world.peer.notices
    command = f"portalops runbook run l1_database_lost --resume {incident} --yes -i inventory/lab"
    assert command in notice["text"]
    assert "not run automatically" in notice["text"]
    assert world.events(incident, "dispatch")[0]["mode"] == "person"


def test_an_unattended_run_stopped_before_a_destructive_act_names_the_confirming_command(world: World) -> None:
    world.runner.outcome = "declined"
    url = world.start(auto_run=("l1_database_lost",))
    post(url, webhook(alert(FP_DB, alertname="DatabaseLost", runbook="l1_database_lost")))
    world.responder.drain()
    [incident] = world.incidents()
    waiting = world.peer.notices[-1]
    assert waiting["event"] == "escalation"
    assert "before `restore_database`" in waiting["text"]
    assert f"--resume {incident} --yes" in waiting["text"]


@pytest.mark.parametrize(
    "labels", [{"runbook": "no_such_runbook"}, {"level": "P1"}, {"runbook": ""}], ids=["runbook", "level", "none"]
)
def test_an_alert_without_a_known_runbook_or_level_is_recorded_and_notified_not_run(
    world: World, labels: dict[str, str]
) -> None:
    url = world.start()
    body = alert()
    body["labels"] = {"alertname": "Strange", "level": "L2", "runbook": "l1_portal_unreachable", **labels}
    if labels == {"level": "P1"}:
        body["labels"]["runbook"] = "nope"
    post(url, webhook(body))
    world.responder.drain()
    [incident] = world.incidents()
    [start] = world.events(incident, "start")
    assert start["known"] is False
    assert world.runner.calls == []
    [notice] = world.peer.notices
    assert "unknown alert" in notice["title"]


def test_reconcile_opens_a_missed_firing_alert_at_its_startsAt_and_never_twice(world: World) -> None:
    world.runner.outcome = "not_recovered"
    missed = {**alert(), "status": {"state": "active", "silencedBy": [], "inhibitedBy": []}, "receivers": []}
    silenced = {**alert("ffff"), "status": {"state": "suppressed", "silencedBy": ["x"], "inhibitedBy": []}}
    world.peer.active = [missed, silenced]
    url = world.start(reconcile=True)
    wait_for(lambda: get(f"{url}/healthz")["last_reconcile"])
    world.responder.drain()
    [incident] = world.incidents()
    assert world.events(incident, "start")[0]["detected"] == "2026-03-10T02:00:00.123Z"
    assert world.events(incident, "start")[0]["via"] == "reconcile"

    again = world.start(reconcile=True)  # restarted: reads the open incident from disk, opens nothing new
    wait_for(lambda: get(f"{again}/healthz")["last_reconcile"])
    world.responder.drain()
    assert world.incidents() == [incident]
    assert len(world.events(incident, "alert")) == 1
    assert get(f"{again}/healthz")["open_incidents"] == 1

    world.peer.active = []  # resolved while nobody listened: the next reconcile records it
    third = world.start(reconcile=True)
    wait_for(lambda: get(f"{third}/healthz")["last_reconcile"])
    assert world.events(incident, "alert_resolved")[0]["via"] == "reconcile"


def test_a_run_the_previous_responder_never_started_starts_after_a_restart(world: World) -> None:
    store = Store(world.root, "inventory/lab", RUNBOOKS)
    got = store.receive(parse_webhook(webhook(alert()))[0], "webhook")
    store.note(got.incident, "dispatch", mode="auto", command="")  # then it stopped, before the run
    world.peer.active = [{**alert(), "status": {"state": "active"}}]
    url = world.start(reconcile=True)
    wait_for(lambda: get(f"{url}/healthz")["last_reconcile"])
    world.responder.drain()
    assert world.runner.calls == [("l1_portal_unreachable", got.incident)]
    again = world.start(reconcile=True)  # it ran: a second restart starts nothing
    wait_for(lambda: get(f"{again}/healthz")["last_reconcile"])
    world.responder.drain()
    assert len(world.runner.calls) == 1


def test_healthz_says_ok_without_a_token(world: World) -> None:
    url = world.start()
    assert get(f"{url}/healthz")["status"] == "ok"


def test_a_run_whose_hosts_are_busy_waits_and_tries_again() -> None:
    answers = [(3, "portalops: web1 of inventory x is busy: runbook l1 by a@b"), (3, "... is busy: ..."), (0, "")]
    told: list[str] = []
    slept: list[float] = []
    runner = SubprocessRunner(
        "inventory/lab", Path("/nowhere"), lock_wait=600, sleep=slept.append, execute=lambda argv, log: answers.pop(0)
    )
    assert runner("l1_portal_unreachable", "INC", told.append) == 0
    assert told == ["portalops: web1 of inventory x is busy: runbook l1 by a@b"]
    assert len(slept) == 2
    assert "--unattended" in runner.argv("l1_portal_unreachable", "INC")
    busy = SubprocessRunner("i", Path("/n"), lock_wait=0, sleep=slept.append, execute=lambda a, b: (3, " is busy: "))
    assert busy("r", "INC", told.append) == 3  # waited long enough: the exit says busy


def test_an_l1_run_waiting_for_hosts_goes_before_the_l2_and_l3_runs_that_waited_longer() -> None:
    """Three runs wait for hosts a fourth holds: the L3 first, then the L2, then the L1. When the holder
    ends, the L1 gets the hosts first; the L2 and L3 do not even try while it waits."""
    holder_done = threading.Event()
    order: list[str] = []
    guard = threading.Lock()

    attempts: list[str] = []

    def execute(argv: list[str], log: Path) -> tuple[int, str]:
        incident = argv[argv.index("--resume") + 1]
        with guard:
            attempts.append(incident)
            if not holder_done.is_set():
                return 3, "portalops: db1 of inventory x is busy: runbook l2 by a@b"
            order.append(incident)
            return 0, ""

    runner = SubprocessRunner(
        "inventory/lab", Path("/nowhere"), lock_wait=600, sleep=lambda s: time.sleep(0.01), execute=execute
    )
    threads = []
    for incident, level in (("L3-run", 3), ("L2-run", 2), ("L1-run", 1)):
        threads.append(threading.Thread(target=runner, args=("r", incident, lambda line: None, level)))
        threads[-1].start()

        def waiting(incident: str = incident) -> bool:
            return incident in runner._waiting

        wait_for(waiting)
    with guard:
        since_l1_waits = len(attempts)
    time.sleep(0.1)  # some rounds of retries: only the L1 run tries
    holder_done.set()
    for thread in threads:
        thread.join(timeout=10)
    assert order[0] == "L1-run", order
    l1_done = len(attempts) - 1 - attempts[::-1].index("L1-run")  # its one successful try
    assert set(attempts[since_l1_waits : l1_done + 1]) == {"L1-run"}, attempts
    assert sorted(order) == ["L1-run", "L2-run", "L3-run"]
    assert runner._waiting == {}
    assert runner.outranked("L2-run", 2) is False  # nobody waits any more


def test_the_responder_passes_the_incidents_level_to_the_runner(world: World) -> None:
    url = world.start()
    post(url, webhook(alert()))
    world.responder.drain()
    assert world.runner.levels == [1]


def test_config_refuses_unknown_keys_and_a_missing_or_short_token(tmp_path: Path) -> None:
    path = tmp_path / "responder.yml"
    path.write_text("incidents: /tmp/x\nauto_runs: [a]\n")
    with pytest.raises(BadInput, match="auto_runs"):
        load_config(path)
    path.write_text(f"token_file: {tmp_path / 'token'}\nlisten: 0.0.0.0:9099\n")
    config = load_config(path)
    with pytest.raises(BadInput, match="token_file"):
        config.token()
    (tmp_path / "token").write_text("short\n")
    with pytest.raises(BadInput, match="shorter than 16"):
        config.token()
    (tmp_path / "token").write_text(TOKEN + "\n")
    assert config.token() == TOKEN
    with pytest.raises(BadInput, match="listen"):
        load_config(None, {"listen": "9099"})


def test_config_notify_channels_replace_the_inventorys_and_are_checked_at_load(tmp_path: Path) -> None:
    path = tmp_path / "responder.yml"
    path.write_text("listen: 127.0.0.1:1\n")
    assert load_config(path).notify is None  # the inventory's portalops_notify
    hook = {"name": "duty", "type": "webhook", "url": "http://127.0.0.1:1/n", "events": ["start"]}
    path.write_text(yaml.safe_dump({"notify": {"enabled": True, "channels": [hook]}}))
    [channel] = load_config(path).notify or ()
    assert (channel.name, channel.events) == ("duty", frozenset({"start"}))
    path.write_text(yaml.safe_dump({"notify": {"enabled": False, "channels": [hook]}}))
    assert load_config(path).notify == ()  # disabled: no notices at all, not the inventory's
    path.write_text(yaml.safe_dump({"notify": {"enabled": True, "channels": [{"name": "x", "type": "webhook"}]}}))
    with pytest.raises(BadInput, match="missing url"):
        load_config(path)


def wait_for(condition: Callable[[], Any], seconds: float = 10.0) -> None:
    deadline = datetime.now(UTC) + timedelta(seconds=seconds)
    while not condition():
        if datetime.now(UTC) > deadline:
            raise AssertionError("condition not met in time")
        threading.Event().wait(0.05)


def test_the_engine_runs_the_runbook_in_the_incident_the_responder_opened(tmp_path: Path) -> None:
    """No fake runner: the engine resumes the responder's incident unattended, on this machine's bash,
    and the store closes it once the alert resolved, with MTTR up to the engine's verified end."""
    runbook = Runbook(
        id="t_site_down",
        title_zh="站点不可用",
        title_en="Site down",
        level=Level.L2,
        triggers=(("打不开", "does not load"),),
        targets=("web",),
        steps=(
            diagnose("look", "看", "Look", run="true"),
            act("fix", "修", "Fix", check="test -e fixed", run="touch fixed"),
            act("wipe", "清", "Wipe", check="true", run="rm -rf wiped", destructive=True),  # sound: not needed
            verify("back", "恢复", "Back", run="test -e fixed"),
            escalate("up", "升级", "Escalate", to_zh="二线", to_en="second line"),
        ),
    )
    root = tmp_path / "incidents"
    store = Store(root, "inventory/test", {runbook.id: runbook}, settle=0)
    body = alert(runbook="t_site_down", level="L2")
    got = store.receive(parse_webhook(webhook(body))[0], "webhook")
    inventory = parse_inventory({"_meta": {"hostvars": {"web1": {}}}, "web": {"hosts": ["web1"]}}, "inventory/test")
    context = {"python": "python", "inventory": "inventory/test", "repo": str(tmp_path)}
    runtime = Runtime(
        hosts=lambda name: LocalHost(tmp_path),
        local=LocalHost(tmp_path),
        notifier=Notifier([]),
        confirm=lambda question: pytest.fail(f"asked {question!r} in an unattended run"),
        progress=lambda line: None,
        incidents=root,
        context=context,
        inventory_source="inventory/test",
    )
    plan = make_plan(runbook, inventory, (), context)
    result = run_runbook(runbook, plan, runtime, Options(resume=got.incident, unattended=True))
    assert result.exit is RunbookExit.RECOVERED
    assert result.incident == got.incident
    assert store.try_close(got.incident) is None  # recovered, the alert still firing
    store.receive(parse_webhook(webhook(alert(status="resolved")))[0], "webhook")
    closed = store.try_close(got.incident)
    assert closed is not None
    assert closed["mttd_s"] > 0
    assert closed["mttr_s"] >= closed["mttd_s"]
    record = (root / got.incident / "incident.md").read_text()
    assert "**recovered**" in record
    assert "**closed**" in record


def test_a_closed_incident_is_not_closed_again(tmp_path: Path) -> None:
    """Once closed, the store neither closes it a second time nor schedules a close for it."""
    store = Store(tmp_path, "inventory/lab", RUNBOOKS, settle=0)
    got = store.receive(parse_webhook(webhook(alert()))[0], "webhook")
    store.note(got.incident, "end", outcome="recovered", exit=0, summary="recovered")
    store.receive(parse_webhook(webhook(alert(status="resolved")))[0], "webhook")
    assert store.closes_at(got.incident) is not None
    assert store.try_close(got.incident) is not None
    assert store.closes_at(got.incident) is None
    assert store.try_close(got.incident) is None
    assert [e["event"] for e in store.events(got.incident)].count("closed") == 1


@pytest.mark.parametrize("name", ["portalops-responder.yml", "portalops-responder-lab.yml"])
def test_the_example_configurations_load_and_name_existing_runbooks(name: str) -> None:
    config = load_config(Path(__file__).resolve().parents[2] / "contrib" / name)
    assert config.auto_run
    assert set(config.auto_run) <= set(RUNBOOKS)
    assert config.alertmanager.startswith("http")


def test_the_runner_knows_the_engines_busy_message(tmp_path: Path) -> None:
    """The lock another process holds (a person's run, another incident's) is what the runner waits out."""
    hold = (
        "import sys, time; from pathlib import Path; from portalops.runbook.lock import TargetLock;"
        " TargetLock('inventory/lab', ['web1'], 'runbook x', directory=Path(sys.argv[1])).acquire();"
        " print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", hold, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(EnvironmentProblem) as caught:
            TargetLock("inventory/lab", ["web1", "db1"], "runbook y", directory=tmp_path).acquire()
        assert BUSY in caught.value.message
        assert int(caught.value.exit_code) == RunbookExit.ENVIRONMENT
    finally:
        holder.kill()
        holder.wait()
