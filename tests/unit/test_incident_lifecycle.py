"""The incident lifecycle through the real command line: open, transitions, deadline flags, list, links.

Each command runs ``portalops.cli.main`` on an incidents directory under ``tmp_path`` with the
clock fixed (``cli.utc_now``), so every event's time, and so every flag, is known.
2026-12-03 is a Thursday (a working day, 08:30-17:30 Beijing = 00:30-09:30 UTC).
"""

from __future__ import annotations

import io
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from portalops import cli
from portalops.responder.alerts import parse_webhook
from portalops.responder.incidents import Store
from portalops.runbook import desk as desk_lib
from portalops.runbook import registry
from portalops.runbook.journal import Journal, RunState, read_events
from portalops.service.problems import open_problem

CALL = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)  # 10:00 Thursday in Beijing


def at(minutes: float) -> datetime:
    return CALL + timedelta(minutes=minutes)


class Desk:
    """``portalops incident ...`` on one incidents directory, at a given time."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.monkeypatch = monkeypatch

    def __call__(self, *argv: str, now: datetime) -> tuple[int, str, str]:
        self.monkeypatch.setattr(cli, "utc_now", lambda: now)
        out, err = io.StringIO(), io.StringIO()
        code = cli.main(["incident", *argv, "--incidents", str(self.root)], out=out, err=err)
        return code, out.getvalue(), err.getvalue()

    def open(self, *extra: str, now: datetime, level: str = "L2") -> str:
        code, out, err = self(
            "open", "--level", level, "--title", "首页打不开", "--reported-by", "信息中心 王五", *extra, now=now
        )
        assert code == 0, err
        return out.split()[1].rstrip(":")

    def events(self, incident: str) -> list[dict[str, Any]]:
        return read_events(self.root / incident / "journal.jsonl")

    def listing(self, *extra: str, now: datetime) -> dict[str, Any]:
        code, out, err = self("list", "--json", *extra, now=now)
        assert code == 0, err
        result: dict[str, Any] = json.loads(out)
        return result

    def flags(self, incident: str, now: datetime) -> dict[str, str]:
        rows = [r for r in self.listing(now=now)["incidents"] if r["id"] == incident]
        return {d["name"]: d["status"] for d in rows[0]["deadlines"]}


@pytest.fixture
def desk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Desk:
    return Desk(tmp_path / "incidents", monkeypatch)


def test_a_phone_call_walks_through_every_transition_with_its_deadlines(desk: Desk) -> None:
    incident = desk.open("--at", "2026-12-03T10:00", "--by", "张三", now=at(1))  # Beijing time, no offset
    start = desk.events(incident)[0]
    assert start["event"] == "start" and start["opened_by"] == "person"
    assert (start["detected"], start["ts"]) == ("2026-12-03T02:00:00.000Z", "2026-12-03T02:01:00.000Z")
    assert (start["level"], start["reported_by"], start["channel"], start["user"]) == (
        2,
        "信息中心 王五",
        "phone",
        "张三",
    )
    due = {d["name"]: d["due"] for d in start["deadlines"]}
    assert due == {
        "callback": "2026-12-03T02:15:00Z",
        "onsite": "2026-12-03T03:00:00Z",
    }  # from the call, not the typing
    assert desk.flags(incident, at(2)) == {"callback": "pending", "onsite": "pending"}

    steps = [
        (("ack", incident, "--by", "张三"), at(3), "acknowledged"),
        (("callback", incident, "--by", "张三"), at(10), "acknowledged"),
        (("onsite", incident, "--by", "李四"), at(80), "acknowledged"),  # 20 min after its due
        (("workaround", incident, "--by", "李四", "--note", "切到备用服务器"), at(85), "acknowledged"),
        (("resolve", incident, "--by", "李四", "--note", "重启 php-fpm"), at(100), "resolved"),
        (("close", incident, "--by", "张三"), at(120), "closed"),
    ]
    for argv, now, state in steps:
        code, out, err = desk(*argv, now=now)
        assert code == 0, err
        assert out.startswith(f"{incident}: ") and out.splitlines()[0].endswith(f"now {state}")
    events = desk.events(incident)
    kinds = ["start", "acknowledged", "called_back", "on_site", "workaround", "resolved", "closed"]
    assert [e["event"] for e in events] == kinds
    assert [e["ts"][11:16] for e in events[1:]] == ["02:03", "02:10", "03:20", "03:25", "03:40", "04:00"]
    assert [e["by"] for e in events[1:]] == ["张三", "张三", "李四", "李四", "李四", "张三"]
    assert events[5]["note"] == "重启 php-fpm"
    assert (events[-1]["mttd_s"], events[-1]["mttr_s"]) == (60, 100 * 60)  # detected -> opened, -> resolved

    later = at(24 * 60)
    assert desk.flags(incident, later) == {"callback": "met", "onsite": "breached"}
    code, shown, _ = desk("show", incident, now=later)
    assert code == 0
    assert "state     closed" in shown
    assert "reported  by 信息中心 王五 via phone; opened by 张三" in shown
    assert (
        "回电 call back due 2026-12-03 10:15 Thu (UTC+8)  met: called back by 张三 at 10:10:00 UTC+8 (5 min early)"
        in shown
    )
    assert "BREACHED: on site: 李四 at 11:20:00 UTC+8 (20 min late)" in shown
    assert "event     2026-12-03 11:40 Thu (UTC+8)  resolved by 李四: 重启 php-fpm" in shown
    record = (desk.root / incident / "incident.md").read_text()
    assert "| state | **closed** |" in record
    assert (
        "| 回电 call back | 15 分钟内 / within 15 min | 2026-12-03 10:15 Thu (UTC+8) | yes: called back by 张三"
        in record
    )
    assert "| **no**: on site: 李四 03:20:00 UTC, 20 min late |" in record
    assert "| 03:25:00 | **workaround** by 李四: 切到备用服务器 |" in record
    assert "| 04:00:00 | **closed** by 张三; MTTD 60 s, MTTR 6000 s (from detection) |" in record
    assert "record the actual time" not in record  # every deadline has its evidence


def test_closing_an_unresolved_incident_is_refused_and_nothing_is_written(desk: Desk) -> None:
    incident = desk.open(now=at(0))
    assert desk("ack", incident, "--by", "张三", now=at(1))[0] == 0
    journal, record = desk.root / incident / "journal.jsonl", desk.root / incident / "incident.md"
    before = (journal.read_bytes(), record.read_bytes())
    code, out, err = desk("close", incident, "--by", "张三", now=at(2))
    assert (code, out) == (2, "")
    assert err == (
        f"portalops: cannot close incident {incident}: it is acknowledged; resolve it first:"
        f" `portalops incident resolve {incident} --note TEXT` (nothing written)\n"
    )
    assert (journal.read_bytes(), record.read_bytes()) == before


@pytest.mark.parametrize(
    ("done", "refused", "says"),
    [
        ((), ("callback",), "it is new; acknowledge it first"),
        ((), ("onsite", "--remote"), "it is new; acknowledge it first"),
        ((), ("resolve", "--note", "x"), "it is new; acknowledge it first"),
        (("ack",), ("ack",), "it is acknowledged; already acknowledged by 张三 at 2026-12-03T02:01:00.000Z"),
        (("ack",), ("reopen", "--reason", "x"), "only a resolved or closed incident can be reopened"),
        (("ack", "resolve"), ("workaround", "--note", "x"), "it is resolved already"),
        (("ack", "resolve", "close"), ("callback",), "it is closed; reopen it first"),
        (("ack", "resolve", "close"), ("close",), "it is closed; already closed by 张三 at 2026-12-03T02:03:00.000Z"),
        (("ack", "resolve"), ("resolve", "--note", "x"), "it is resolved; already resolved by 张三"),
    ],
)
def test_impossible_transitions_are_refused(
    desk: Desk, done: tuple[str, ...], refused: tuple[str, ...], says: str
) -> None:
    incident = desk.open(now=at(0))
    for n, command in enumerate(done, start=1):
        extra = ("--note", "好了") if command == "resolve" else ()
        assert desk(command, incident, "--by", "张三", *extra, now=at(n))[0] == 0
    count = len(desk.events(incident))
    code, _, err = desk(refused[0], incident, *refused[1:], "--by", "张三", now=at(9))
    assert code == 2 and says in err and err.endswith("(nothing written)\n")
    assert len(desk.events(incident)) == count


def test_a_closed_incident_reopens_and_closes_again(desk: Desk) -> None:
    incident = desk.open(now=at(0))
    for n, argv in enumerate([("ack",), ("resolve", "--note", "重启"), ("close",)], start=1):
        assert desk(argv[0], incident, *argv[1:], "--by", "张三", now=at(n))[0] == 0
    code, out, _ = desk("reopen", incident, "--reason", "又打不开了", "--by", "王五", now=at(30))
    assert code == 0 and out.splitlines()[0] == f"{incident}: reopened by 王五; now acknowledged"
    assert desk.events(incident)[-1]["reason"] == "又打不开了"
    assert desk.listing("--open", now=at(31))["incidents"][0]["state"] == "acknowledged"
    assert desk("resolve", incident, "--note", "换硬盘", "--by", "王五", now=at(50))[0] == 0
    assert desk("close", incident, "--by", "王五", now=at(55))[0] == 0
    assert [e["event"] for e in desk.events(incident)][4:] == ["reopened", "resolved", "closed"]
    assert "**reopened** by 王五: 又打不开了" in (desk.root / incident / "incident.md").read_text()


def _webhook(
    starts: str = "2026-12-03T02:00:00.123456789Z", runbook: str = "l1_portal_unreachable", level: str = "L1"
) -> dict[str, Any]:
    return {
        "version": "4",
        "status": "firing",
        "receiver": "portalops",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "PortalDown", "runbook": runbook, "level": level},
                "annotations": {"summary": "www.example.gov.cn does not load"},
                "startsAt": starts,
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://mon1:9090/graph",
                "fingerprint": "a1b2c3d4e5f60718",
            }
        ],
    }


def _alert_from_monitoring(root: Path, runbook: str = "l1_portal_unreachable", level: str = "L1") -> str:
    store = Store(root, "inventory/lab", registry.discover(), clock=lambda: at(1))
    return store.receive(parse_webhook(_webhook(runbook=runbook, level=level))[0], "webhook").incident


def test_the_responder_auto_acknowledges_what_it_opens_and_that_meets_respond(desk: Desk) -> None:
    incident = _alert_from_monitoring(desk.root)
    start, ack = desk.events(incident)[:2]
    assert (ack["event"], ack["by"], ack["auto"], ack["ts"]) == (
        "acknowledged",
        "portalops-responder",
        True,
        start["ts"],
    )
    row = desk.listing(now=at(2))["incidents"][0]
    assert (row["id"], row["level"], row["opened_by"], row["state"]) == (incident, 1, "responder", "acknowledged")
    assert row["detected"] == "2026-12-03T02:00:00.123Z"
    respond = row["deadlines"][0]
    assert (respond["name"], respond["status"], respond["evidence"]) == (
        "respond",
        "met",
        "acknowledged by portalops-responder",
    )
    assert row["next"]["name"] == "onsite" and row["next"]["status"] == "pending"  # L1 in working hours: 5 min
    before = desk.events(incident)
    code, _, err = desk("ack", incident, "--by", "值班员", now=at(3))
    assert code == 2 and "already acknowledged by portalops-responder" in err and "nothing written" in err
    assert desk.events(incident) == before
    # The runbook verified recovery unattended 4 min after detection: on site is not needed any more.
    Journal(desk.root / incident, lambda: at(4)).write("end", outcome="recovered", exit=0, summary="recovered")
    assert desk.flags(incident, at(4)) == {"respond": "met", "onsite": "n/a"}
    listed = desk.listing(now=at(4))["incidents"][0]
    assert listed["state"] == "resolved" and listed["next"] is None
    assert desk("close", incident, "--by", "值班员", now=at(6))[0] == 0
    assert Store(desk.root, "inventory/lab", {}).fingerprints() == {}  # the responder no longer tracks it


def test_a_responder_l2_still_owes_a_persons_call_back_after_an_unattended_recovery(desk: Desk) -> None:
    incident = _alert_from_monitoring(desk.root, "l2_slow_response", "L2")
    assert desk.flags(incident, at(2)) == {"callback": "pending", "onsite": "pending"}  # the auto-ack is no call-back
    Journal(desk.root / incident, lambda: at(4)).write("end", outcome="recovered", exit=0, summary="recovered")
    assert desk.flags(incident, at(14)) == {"callback": "pending", "onsite": "n/a"}
    assert desk.flags(incident, at(16)) == {"callback": "breached", "onsite": "n/a"}  # 15 min, none recorded
    code, out, err = desk("callback", incident, "--by", "值班员", now=at(20))
    assert code == 0, err
    assert "call back" in out and "BREACHED: called back by 值班员" in out and "(5 min late)" in out


def test_an_l1_reported_outside_working_hours_gets_the_off_hours_on_site_deadline(desk: Desk) -> None:
    night = datetime(2026, 12, 5, 14, 0, tzinfo=UTC)  # Saturday 22:00 in Beijing
    incident = desk.open("--at", "2026-12-05T14:00:00Z", now=night + timedelta(minutes=2), level="L1")
    start = desk.events(incident)[0]
    assert start["in_working_hours"] is False
    assert {d["name"]: d["due"] for d in start["deadlines"]} == {
        "respond": "2026-12-05T14:05:00Z",  # at once: 5 min
        "onsite": "2026-12-05T15:00:00Z",  # within 1 h outside working hours
    }
    day = desk.open("--at", "2026-12-03T10:00+08:00", now=at(2), level="L1")
    assert {d["name"]: d["due"] for d in desk.events(day)[0]["deadlines"]}["onsite"] == "2026-12-03T02:05:00Z"


def test_list_open_leaves_out_closed_incidents_and_json_has_the_deadlines(desk: Desk) -> None:
    done = desk.open(now=at(0))
    for n, argv in enumerate([("ack",), ("resolve", "--note", "好了"), ("close",)], start=1):
        assert desk(argv[0], done, *argv[1:], "--by", "张三", now=at(n))[0] == 0
    waiting = desk.open("--channel", "information-centre", now=at(5), level="L3")
    everything = desk.listing(now=at(10))
    assert [r["id"] for r in everything["incidents"]] == [done, waiting]
    only_open = desk.listing("--open", now=at(10))
    assert only_open["now"] == "2026-12-03T02:10:00.000Z"
    assert [r["id"] for r in only_open["incidents"]] == [waiting]
    row = only_open["incidents"][0]
    assert set(row) == {"id", "level", "title", "opened_by", "detected", "opened", "state", "deadlines", "next"}
    assert (row["level"], row["title"], row["opened_by"], row["state"]) == (3, "首页打不开", "person", "new")
    assert row["deadlines"][0] == {
        "name": "callback",
        "title": "回电 call back",
        "due": "2026-12-03T02:35:00Z",
        "status": "pending",
        "at": None,
        "evidence": "none recorded",
        "left_s": 25 * 60,
    }
    assert row["next"]["name"] == "callback" and row["next"]["left_s"] == 25 * 60
    code, table, _ = desk("list", "--open", now=at(40))
    assert code == 0
    assert table.splitlines()[1].split()[:6] == [waiting, "L3", "new", "2026-12-03", "10:05", "call"]
    assert "call back BREACHED 5 min ago" in table


def test_links_are_checked_and_recorded_once(desk: Desk) -> None:
    incident = desk.open(now=at(0))
    code, _, err = desk("link", incident, "--problem", "PRB-2026-007", now=at(1))
    assert code == 2 and "no problem PRB-2026-007 under" in err
    assert desk("link", incident, "--kb", "KB-nginx-502", now=at(1))[0] == 2  # no such article in kb/
    problem = open_problem(desk.root, "首页反复打不开", "张三", at(1)).id
    code, out, _ = desk("link", incident, "--problem", problem, "--by", "张三", now=at(1))
    assert (code, out) == (0, f"{incident}: linked to problem {problem}\n")
    assert desk("link", incident, "--problem", problem, now=at(2))[1].endswith(f"already linked to problem {problem}\n")
    assert desk("link", incident, "--kb", "KB-nginx-config-refused", now=at(3))[0] == 0
    code, _, err = desk("link", incident, "--change", "../etc/passwd", now=at(4))
    assert code == 2 and "is not a change id: like CHG-" in err
    links = [(e["kind"], e["target"]) for e in desk.events(incident) if e["event"] == "link"]
    assert links == [("problem", problem), ("kb", "KB-nginx-config-refused")]
    record = (desk.root / incident / "incident.md").read_text()
    assert f"| links | problem {problem}, kb KB-nginx-config-refused |" in record
    assert "find the root cause" not in record  # a problem is linked


def test_bad_input_writes_nothing(desk: Desk) -> None:
    code, _, err = desk(
        "open", "--level", "L2", "--title", "x", "--reported-by", "y", "--at", "2026-12-03T12:00", now=at(0)
    )
    assert code == 2 and "is in the future" in err
    assert desk("ack", "no-such-incident", now=at(0))[0] == 2
    assert desk("ack", "../outside", now=at(0))[0] == 2
    assert not desk.root.exists() or not any(desk.root.iterdir())


def test_a_reported_incident_names_the_runbook_a_person_may_resume_in_it(desk: Desk) -> None:
    incident = desk.open("--runbook", "l1_portal_unreachable", now=at(0), level="L1")
    assert incident.endswith("-l1_portal_unreachable")
    state = RunState.replay(desk.events(incident))  # what `runbook run RB --resume INCIDENT` checks
    assert state.runbook == "l1_portal_unreachable" and not state.finished
    code, _, err = desk("open", "--level", "L1", "--title", "x", "--reported-by", "y", "--runbook", "nope", now=at(1))
    assert code == 2 and "no runbook 'nope'" in err
    assert [p.name for p in desk.root.iterdir()] == [incident]


def test_a_new_firing_after_a_person_closed_the_responders_incident_opens_a_new_one(desk: Desk) -> None:
    store = Store(desk.root, "inventory/lab", registry.discover(), clock=lambda: at(1))
    first = store.receive(parse_webhook(_webhook())[0], "webhook").incident
    for n, argv in enumerate([("resolve", "--note", "好了"), ("close",)], start=2):  # acknowledged by the responder
        assert desk(argv[0], first, *argv[1:], "--by", "值班员", now=at(n))[0] == 0
    again = store.receive(parse_webhook(_webhook())[0], "webhook")  # the same occurrence, repeated
    assert again.incident == first and not again.opened
    later = store.receive(parse_webhook(_webhook("2026-12-03T03:00:00Z"))[0], "webhook")
    assert later.opened and later.incident != first
    assert [e["event"] for e in desk.events(first)][-1] == "closed"  # nothing more written to the closed one


def test_a_malformed_journal_is_named_and_never_written_to(desk: Desk) -> None:
    good = desk.open(now=at(0))
    broken = desk.root / "20261203T000000Z-broken"
    broken.mkdir()
    (broken / "journal.jsonl").write_text('{"ts": "2026-12-03T00:00:00.000Z", "event": "ack"}\n')
    code, out, err = desk("list", now=at(1))
    assert code == 0 and good in out and "broken" not in out
    assert "20261203T000000Z-broken: unreadable journal" in err
    code, _, err = desk("ack", broken.name, now=at(2))
    assert code == 2 and "has no start event (corrupt); nothing written" in err
    assert len((broken / "journal.jsonl").read_text().splitlines()) == 1


def test_a_change_waits_for_the_lock_on_the_journal(desk: Desk) -> None:
    incident = desk.open(now=at(0))
    results: list[dict[str, Any]] = []
    with desk_lib.locked(desk.root, incident, at(1)):  # another writer holds the journal
        worker = threading.Thread(
            target=lambda: results.append(desk_lib.transition(desk.root, incident, "ack", "张三", at(2)))
        )
        worker.start()
        worker.join(0.3)
        assert worker.is_alive() and [e["event"] for e in desk.events(incident)] == ["start"]
    worker.join(5)
    assert [e["event"] for e in desk.events(incident)] == ["start", "acknowledged"] and len(results) == 1
