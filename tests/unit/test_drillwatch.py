"""The drill's view of the responder (portalops/drillwatch.py), on journals written as the responder writes them."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from portalops.drillwatch import ResponderWatch, responder_incidents
from portalops.errors import BadInput, EnvironmentProblem
from portalops.responder.config import Config
from portalops.runbook.journal import stamp
from portalops.runbook.outcome import RunbookExit

INJECTED = datetime(2026, 12, 3, 10, 0, 0, tzinfo=UTC)
RUNBOOK = "l1_portal_unreachable"


def at(seconds: float) -> str:
    return stamp(INJECTED + timedelta(seconds=seconds))


def write(root: Path, name: str, *events: dict[str, Any]) -> None:
    directory = root / name
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / "journal.jsonl").open("a") as journal:
        for event in events:
            journal.write(json.dumps(event) + "\n")


def opened(
    seconds: float, alert: str = "PortalSiteDown", by: str = "responder", runbook: str = RUNBOOK
) -> dict[str, Any]:
    return {
        "event": "start",
        "ts": at(seconds),
        "runbook": runbook,
        "level": 1,
        "opened_by": by,
        "detected": at(seconds - 4),
        "alert": {"labels": {"alertname": alert}, "fingerprint": alert},
    }


def end(seconds: float, code: RunbookExit) -> dict[str, Any]:
    return {"event": "end", "ts": at(seconds), "exit": int(code), "outcome": code.name.lower()}


def closed(seconds: float) -> dict[str, Any]:
    return {"event": "closed", "ts": at(seconds), "mttd_s": 4, "mttr_s": seconds}


class Steps:
    """A clock that moves one poll per sleep, and a hook that changes the journals at a given poll."""

    def __init__(self, changes: dict[int, Callable[[], None]]) -> None:
        self.now = 0.0
        self.polls = 0
        self.changes = changes

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.polls += 1
        if change := self.changes.get(self.polls):
            change()


def watcher(root: Path, steps: Steps) -> ResponderWatch:
    return ResponderWatch(
        Config(incidents=root), progress=lambda _line: None, poll=2, clock=steps.clock, sleep=steps.sleep
    )


def test_the_first_incident_its_recovery_and_every_close_are_timed_from_the_injection(tmp_path: Path) -> None:
    write(tmp_path, "a", opened(20))
    steps = Steps(
        {
            2: lambda: write(tmp_path, "b", opened(25, "PortalWrongContent")),
            3: lambda: write(tmp_path, "a", {"event": "step_end", "step": "start_web_nginx", "result": "done"}),
            4: lambda: write(tmp_path, "a", end(41, RunbookExit.RECOVERED)),
            5: lambda: write(tmp_path, "a", closed(70)),
            6: lambda: write(tmp_path, "b", end(50, RunbookExit.RECOVERED), closed(75)),
        }
    )
    seen = watcher(tmp_path, steps).watch(RUNBOOK, INJECTED, 600)
    assert (seen.incident, seen.incidents, seen.alert, seen.level) == ("a", ["a", "b"], "PortalSiteDown", 1)
    assert (seen.firing_s, seen.opened_s, seen.recovered_s, seen.closed_s) == (16.0, 20.0, 41.0, 75.0)
    assert seen.exit is RunbookExit.RECOVERED
    assert seen.notes == []
    assert steps.polls == 6  # it waited for the second incident to close too


def test_incidents_of_a_person_another_runbook_or_before_the_injection_are_not_the_drills(tmp_path: Path) -> None:
    write(tmp_path, "person", opened(5, by="person"))
    write(tmp_path, "other", opened(5, runbook="l3_degraded_services"))
    write(tmp_path, "earlier", opened(-30))
    write(tmp_path, "ours", opened(12))
    assert list(responder_incidents(tmp_path, RUNBOOK, INJECTED)) == ["ours"]
    assert responder_incidents(tmp_path / "missing", RUNBOOK, INJECTED) == {}


def test_nothing_detected_times_out_with_a_note_and_no_outcome(tmp_path: Path) -> None:
    steps = Steps({})
    seen = watcher(tmp_path, steps).watch(RUNBOOK, INJECTED, 30)
    assert seen.exit is None
    assert seen.incident == ""
    assert seen.notes == ["no incident for the runbook opened within 30 s of the injection"]


def test_a_recovered_incident_that_never_closes_is_named(tmp_path: Path) -> None:
    write(tmp_path, "a", opened(20), end(41, RunbookExit.RECOVERED))
    seen = watcher(tmp_path, Steps({})).watch(RUNBOOK, INJECTED, 10)
    assert seen.exit is RunbookExit.RECOVERED
    assert seen.closed_s is None
    assert seen.notes == ["not every incident closed within 10 s of the injection (a)"]


def test_a_run_that_did_not_recover_ends_the_watch_at_once(tmp_path: Path) -> None:
    write(tmp_path, "a", opened(20), end(90, RunbookExit.NOT_RECOVERED))
    steps = Steps({})
    seen = watcher(tmp_path, steps).watch(RUNBOOK, INJECTED, 600)
    assert seen.exit is RunbookExit.NOT_RECOVERED
    assert steps.polls == 0


def waiting(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a",
        opened(20, "PortalDefaced", runbook="l1_defacement"),
        {"event": "step_end", "step": "restore_packaged_files", "result": "declined"},
        end(35, RunbookExit.ABORTED),
    )


def the_person(root: Path, confirmed: list[str], recovered_at: float) -> Callable[[str], RunbookExit]:
    """The drill playing the person on duty: its run resumes the incident and recovers at ``recovered_at``."""

    def confirm(incident: str) -> RunbookExit:
        confirmed.append(incident)
        write(root, incident, {"event": "resume"}, end(recovered_at, RunbookExit.RECOVERED))
        return RunbookExit.RECOVERED

    return confirm


def test_a_destructive_step_waits_for_a_person_and_the_drill_says_so(tmp_path: Path) -> None:
    waiting(tmp_path)
    seen = watcher(tmp_path, Steps({})).watch("l1_defacement", INJECTED, 600)
    assert (seen.exit, seen.waiting_step, seen.waited_s, seen.confirmed) == (
        RunbookExit.ABORTED,
        "restore_packaged_files",
        35.0,
        False,
    )


def test_confirmed_as_the_person_on_duty_the_run_goes_on_and_the_incident_closes(tmp_path: Path) -> None:
    waiting(tmp_path)
    confirmed: list[str] = []
    confirm = the_person(tmp_path, confirmed, recovered_at=60)
    steps = Steps({2: lambda: write(tmp_path, "a", closed(80))})
    seen = watcher(tmp_path, steps).watch("l1_defacement", INJECTED, 600, confirm)
    assert confirmed == ["a"]
    assert (seen.exit, seen.confirmed, seen.waited_s, seen.recovered_s, seen.closed_s) == (
        RunbookExit.RECOVERED,
        True,
        35.0,
        60.0,
        80.0,
    )


COMMAND = "portalops runbook run l1_database_lost --resume b --yes -i inventory/lab"


def for_a_person(tmp_path: Path) -> None:
    """As the responder leaves an incident whose runbook is not in its auto_run: opened, dispatched to a
    person with the command, announced; no run."""
    write(
        tmp_path,
        "b",
        opened(30, "DatabaseTableLost", runbook="l1_database_lost"),
        {"event": "dispatch", "ts": at(30.5), "mode": "person", "command": COMMAND},
        {"event": "notify", "ts": at(31), "notice": "start"},
    )


def test_an_incident_the_responder_leaves_to_a_person_ends_the_drill_at_the_wait(tmp_path: Path) -> None:
    write(tmp_path, "b", opened(30, "DatabaseTableLost", runbook="l1_database_lost"))  # not dispatched yet
    steps = Steps({2: lambda: for_a_person(tmp_path)})
    seen = watcher(tmp_path, steps).watch("l1_database_lost", INJECTED, 600)
    assert (seen.exit, seen.person_command, seen.waited_s, seen.confirmed) == (
        RunbookExit.ABORTED,
        COMMAND,
        30.5,
        False,
    )
    assert (seen.opened_s, seen.recovered_s, seen.closed_s, seen.waiting_step) == (30.0, None, None, "")
    assert steps.polls == 2


def test_played_as_the_person_the_drill_runs_the_runbook_in_the_incident_and_waits_for_its_close(
    tmp_path: Path,
) -> None:
    for_a_person(tmp_path)
    confirmed: list[str] = []
    confirm = the_person(tmp_path, confirmed, recovered_at=95)
    # A second incident of the runbook, left to a person too (another site's table alert, opened after the
    # first incident's run had recovered, so it did not join that incident)
    down = {"event": "dispatch", "ts": at(70), "mode": "person", "command": "c"}
    steps = Steps(
        {
            1: lambda: write(tmp_path, "c", opened(70, "DatabaseTableLost", runbook="l1_database_lost"), down),
            3: lambda: write(tmp_path, "b", closed(110)),
            4: lambda: write(tmp_path, "c", closed(120)),
        }
    )
    seen = watcher(tmp_path, steps).watch("l1_database_lost", INJECTED, 600, confirm)
    assert confirmed == ["b", "c"]  # each once, though the watch looked again before the closes
    assert (seen.incidents, seen.resumed, seen.closed_s) == (["b", "c"], ["b", "c"], 120.0)
    assert (seen.exit, seen.confirmed, seen.person_command, seen.waited_s) == (
        RunbookExit.RECOVERED,
        True,
        COMMAND,
        30.5,
    )
    assert seen.recovered_s == 95.0


@pytest.fixture
def healthz() -> Iterator[Callable[[str], Config]]:
    answer = {"body": b""}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(answer["body"])

        def log_message(self, *_args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def config(body: str) -> Config:
        answer["body"] = body.encode()
        return Config(listen=f"127.0.0.1:{server.server_address[1]}")

    yield config
    server.shutdown()
    server.server_close()


def test_a_drill_via_the_monitoring_needs_a_responder_that_answers(healthz: Callable[[str], Config]) -> None:
    ResponderWatch(healthz('{"status": "ok"}')).require_running()
    with pytest.raises(BadInput, match="no responder answers"):
        ResponderWatch(healthz('{"status": "starting"}')).require_running()
    with pytest.raises(BadInput, match="no responder answers"):
        ResponderWatch(healthz("not json")).require_running()
    with pytest.raises(BadInput, match="portalops responder --config"):
        ResponderWatch(Config(listen="127.0.0.1:1")).require_running()


@pytest.fixture
def alertmanager() -> Iterator[tuple[dict[str, Any], str]]:
    """A loopback stand-in for Alertmanager's /api/v2/alerts: answers what the test puts in ``state``."""
    state: dict[str, Any] = {"alerts": [], "status": 200, "queries": []}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state["queries"].append(self.path)
            self.send_response(state["status"])
            self.end_headers()
            self.wfile.write(json.dumps(state["alerts"]).encode())

        def log_message(self, *_args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def quiet_watcher(root: Path, url: str, steps: Steps, said: list[str]) -> ResponderWatch:
    config = Config(incidents=root, alertmanager=url, receiver="portalops-responder")
    return ResponderWatch(config, progress=said.append, poll=5, clock=steps.clock, sleep=steps.sleep)


def test_the_drill_injects_only_once_no_alert_fires_and_no_responder_run_goes_on(
    tmp_path: Path, alertmanager: tuple[dict[str, Any], str]
) -> None:
    state, url = alertmanager
    watchdog = {"labels": {"alertname": "Watchdog", "severity": "none"}}  # always fires: a heartbeat, not a fault
    state["alerts"] = [{"labels": {"alertname": "PortalBackendDown"}}, watchdog]
    write(tmp_path, "old", opened(-30))  # the run this alert started is still going on

    def resolved() -> None:
        state["alerts"] = [watchdog]

    def run_ended() -> None:
        write(tmp_path, "old", end(20, RunbookExit.RECOVERED))

    steps = Steps({2: resolved, 4: run_ended})
    said: list[str] = []
    quiet_watcher(tmp_path, url, steps, said).wait_quiet(timeout=120, settle=10)
    # quiet from poll 4 (t=20 s), and it stayed so for the 10 s settle
    assert steps.now == 30.0
    assert said[0].endswith("(firing: PortalBackendDown; runs going on in old)")
    assert said[1].endswith("(runs going on in old)")
    assert "receiver=portalops-responder" in state["queries"][0] and "active=true" in state["queries"][0]


def test_an_incident_waiting_for_a_person_does_not_keep_the_monitoring_busy(
    tmp_path: Path, alertmanager: tuple[dict[str, Any], str]
) -> None:
    _, url = alertmanager
    write(tmp_path, "waits", opened(-300), end(-250, RunbookExit.ABORTED))
    write(tmp_path, "by-hand", opened(-10, by="person"))  # a person's run is not the responder's
    for_a_person(tmp_path)  # opened for a person, who has not run it yet: nothing runs
    steps = Steps({})
    quiet_watcher(tmp_path, url, steps, []).wait_quiet(timeout=60)
    assert steps.now == 0.0


def test_a_monitoring_that_never_quiets_or_an_alertmanager_that_does_not_answer_stops_the_drill(
    tmp_path: Path, alertmanager: tuple[dict[str, Any], str]
) -> None:
    state, url = alertmanager
    state["alerts"] = [{"labels": {"alertname": "PortalSiteDown"}}]
    with pytest.raises(EnvironmentProblem, match=r"not quiet within 30 s \(firing: PortalSiteDown\)"):
        quiet_watcher(tmp_path, url, Steps({}), []).wait_quiet(timeout=30)
    state["status"] = 500
    with pytest.raises(EnvironmentProblem, match=r"Alertmanager at .* did not answer"):
        quiet_watcher(tmp_path, url, Steps({}), []).wait_quiet(timeout=30)


def test_an_alert_whose_incident_is_open_with_no_run_going_on_does_not_keep_the_drill_waiting(
    tmp_path: Path, alertmanager: tuple[dict[str, Any], str]
) -> None:
    """The availability burn the drills themselves cause on a young lab fires for hours: the responder answered
    it (its incident open, its run ended); it joins that incident and starts nothing, so the drill goes on.
    The same alert without an incident (not answered yet) still holds the drill."""
    state, url = alertmanager
    burn = {"labels": {"alertname": "PortalAvailabilityBurn", "runbook": "l2_slow_response"}, "fingerprint": "burn"}
    state["alerts"] = [burn]
    with pytest.raises(EnvironmentProblem, match=r"firing: PortalAvailabilityBurn"):
        quiet_watcher(tmp_path, url, Steps({}), []).wait_quiet(timeout=30)
    write(
        tmp_path,
        "burning",
        {**opened(-600, alert="burn"), "runbook": "l2_slow_response"},
        end(-500, RunbookExit.NOT_RECOVERED),
    )
    steps = Steps({})
    quiet_watcher(tmp_path, url, steps, []).wait_quiet(timeout=30)
    assert steps.now == 0.0
    write(tmp_path, "burning", closed(-10))  # closed: the next firing would open a new incident
    with pytest.raises(EnvironmentProblem, match=r"firing: PortalAvailabilityBurn"):
        quiet_watcher(tmp_path, url, Steps({}), []).wait_quiet(timeout=30)
    state["alerts"] = {"not": "a list"}
    with pytest.raises(EnvironmentProblem, match="no list of alerts"):
        quiet_watcher(tmp_path, url, Steps({}), []).wait_quiet(timeout=30)
