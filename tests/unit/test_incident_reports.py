"""National grading, the regulatory reporting clock and the report drafts, on a recorded incident.

``data/incidents/`` holds the journal of a real lab run of l1_portal_unreachable (php-fpm stopped on
cms1, restarted by the runbook); each test works on a copy of it under ``tmp_path``.
"""

# ruff: noqa: RUF001 - Chinese text keeps its own full-width punctuation on purpose

from __future__ import annotations

import io
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from portalops import cli
from portalops.errors import BadInput
from portalops.runbook import desk, grading, regreport, reporting
from portalops.runbook.engine import Options, run_runbook
from portalops.runbook.hosts import CommandResult
from portalops.runbook.journal import Journal, open_incident, read_events, stamp
from portalops.runbook.levels import Level
from portalops.runbook.notify import Delivery, Notice, Notifier
from portalops.runbook.overall import GRADING_DEFAULTS, Inputs, grading_from
from portalops.runbook.planning import make_plan
from tests.unit.test_runbook_engine import INVENTORY, RUNBOOK, FakeHost, World, runtime

DATA = Path(__file__).parent / "data" / "incidents"
INCIDENT = "20261203T081955Z-l1_portal_unreachable"
STARTED = datetime(2026, 12, 3, 8, 19, 55, 466000, tzinfo=UTC)
GRADED = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
OFFICER = {
    "role_zh": "安全负责人",
    "role_en": "Security officer",
    "who": "网络安全责任人",
    "phone": "+86 000-0000-0005",
    "email": "security@portal.lab.test",
    "deputy": "+86 000-0000-0015",
    "levels": [1],
}
HEAD = {**OFFICER, "role_zh": "主管领导", "role_en": "Head of the portal", "who": "主管单位", "phone": "+86 6"}
INPUTS = Inputs(
    contacts=[HEAD, OFFICER],
    sites=[{"name": "portal", "title": "某县人民政府门户网站", "domains": ["portal.lab.test"]}],
)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    shutil.copytree(DATA, tmp_path / "incidents")
    return tmp_path / "incidents"


def journal_at(root: Path, moment: datetime, incident: str = INCIDENT) -> Journal:
    return open_incident(root, incident, lambda: moment)


def graded(root: Path, grade: str, moment: datetime = GRADED, cii: bool = False) -> grading.Clock:
    return reporting.record_grade(journal_at(root, moment), grading.grade_key(grade), "张三", "首页不可访问", cii)


def events_lasting(hours: float, runbook: str = "l1_portal_unreachable", level: int = 1) -> list[dict[str, Any]]:
    start = {"event": "start", "ts": stamp(STARTED), "incident": "x", "runbook": runbook, "level": level}
    end = {"event": "end", "ts": stamp(STARTED + timedelta(hours=hours)), "outcome": "recovered", "exit": 0}
    return [start, end]


def run_cli(*argv: str, now: datetime, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    monkeypatch.setattr(cli, "utc_now", lambda: now)
    monkeypatch.setattr(cli, "load_inputs", lambda _source: INPUTS)  # no ansible: the inventory's inputs
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["incident", *argv], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


# ----------------------------------------------------------------- suggestion


@pytest.mark.parametrize(
    ("runbook", "hours", "expected"),
    [
        ("l1_portal_unreachable", 0.07, "general"),
        ("l1_portal_unreachable", 1.99, "general"),
        ("l1_portal_unreachable", 2, "relatively_major"),
        ("l1_portal_unreachable", 6, "major"),
        ("l1_portal_unreachable", 24, "particularly_major"),
        ("l1_database_lost", 7, "major"),
        ("l1_defacement", 0.4, "general"),
        ("l1_defacement", 0.5, "relatively_major"),
        ("l1_defacement", 2, "major"),
        ("l1_defacement", 6, "particularly_major"),
    ],
)
def test_the_suggestion_follows_each_threshold(runbook: str, hours: float, expected: str) -> None:
    suggestion = grading.suggest(events_lasting(hours, runbook), GRADING_DEFAULTS, STARTED)
    assert suggestion.grade == expected, suggestion.why


def test_the_inventory_thresholds_and_an_open_incident_count() -> None:
    lower = grading_from({"unreachable_hours": {"relatively_major": 1}})
    assert grading.suggest(events_lasting(1.5), lower, STARTED).grade == "relatively_major"
    still_down = events_lasting(0.1)[:1]  # no end yet: its duration so far, up to now
    suggestion = grading.suggest(still_down, GRADING_DEFAULTS, STARTED + timedelta(hours=6, minutes=1))
    assert suggestion.grade == "major" and "not recovered" in suggestion.why


def test_the_suggestion_counts_from_detection_to_a_persons_resolution_as_the_draft_does() -> None:
    """Found at 16:19 by a phone call, the runbook started 1 h 50 min later and failed; a person resolved it
    at 18:30: 2 h 11 min from discovery, above the 2 h threshold, though the runbook ran only 20 min."""
    detected = STARTED - timedelta(hours=1, minutes=50)
    events = [
        {**events_lasting(0)[0], "detected": stamp(detected), "opened_by": "person"},
        {"event": "end", "ts": stamp(STARTED + timedelta(minutes=20)), "outcome": "failed", "exit": 1},
        {"event": "acknowledged", "ts": stamp(STARTED + timedelta(minutes=1)), "by": "张三"},
        {"event": "resolved", "ts": stamp(detected + timedelta(hours=2, minutes=11)), "by": "张三", "note": "x"},
    ]
    suggestion = grading.suggest(events, GRADING_DEFAULTS, STARTED + timedelta(days=1))
    assert suggestion.grade == "relatively_major", suggestion.why
    assert "at least 2.18 h (detection to recovery)" in suggestion.why, suggestion.why


@pytest.mark.parametrize(
    "events",
    [
        events_lasting(30, "l2_slow_response", level=2),
        events_lasting(30, "l3_backup_stale", level=3),
        events_lasting(30, "l1_some_new_runbook"),
        [{"event": "start", "ts": stamp(STARTED), "runbook": "l1_portal_unreachable"}],  # no level
        [{"event": "start", "ts": "yesterday", "runbook": "l1_portal_unreachable", "level": 1}],
    ],
)
def test_no_suggestion_when_the_journal_cannot_tell(events: list[dict[str, Any]]) -> None:
    assert grading.suggest(events, GRADING_DEFAULTS, STARTED + timedelta(days=2)).grade is None


# ----------------------------------------------------------------- the clock


@pytest.mark.parametrize(("grade", "cii", "hours"), [("较大", False, 4), ("III", True, 1), ("major", False, 4)])
def test_a_grade_of_iii_or_above_starts_a_clock_that_counts_from_detection(
    root: Path, grade: str, cii: bool, hours: float
) -> None:
    clock = graded(root, grade, cii=cii)
    assert clock.due == STARTED + timedelta(hours=hours), "the rules count from discovery, not from the grading"
    event = read_events(root / INCIDENT / "journal.jsonl")[-1]
    assert event["event"] == "grade" and event["by"] == "张三" and event["reason"] == "首页不可访问"
    assert event["ts"] == stamp(GRADED) and event["report_hours"] == hours and event["cii_operator"] is cii
    assert "## National grade and regulatory report" in (root / INCIDENT / "incident.md").read_text()
    assert [c.incident for c in reporting.clocks(root)] == [INCIDENT]


def test_the_responders_clock_cache_reads_a_journal_again_only_when_it_changed(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The responder sweeps every minute: unchanged journals are not read again, a grade recorded since is seen."""
    read: list[Path] = []

    def reading(path: Path) -> list[dict[str, Any]]:
        read.append(path)
        return read_events(path)

    monkeypatch.setattr(reporting, "read_events", reading)
    cache: reporting.ClockCache = {}
    assert reporting.clocks(root, cache) == [] and read
    read.clear()
    assert reporting.clocks(root, cache) == [] and read == []
    graded(root, "较大")
    assert [c.incident for c in reporting.clocks(root, cache)] == [INCIDENT]
    assert read == [root / INCIDENT / "journal.jsonl"]


def test_a_general_grade_starts_no_clock(root: Path) -> None:
    clock = graded(root, "一般")
    assert read_events(root / INCIDENT / "journal.jsonl")[-1]["report_hours"] == 0
    assert clock.due is None and clock.status(GRADED) == "no report due (below 较大 III)"
    assert reporting.clocks(root) == []
    with pytest.raises(BadInput, match="below 较大"):
        reporting.record_sent(journal_at(root, GRADED), "initial", "李四")


def test_the_clock_says_time_left_then_overdue_then_sent(root: Path) -> None:
    clock = graded(root, "III")
    assert clock.status(STARTED + timedelta(hours=2, minutes=30)) == "1 h 30 min left"
    assert not clock.warns(STARTED + timedelta(hours=2, minutes=30))
    assert clock.warns(STARTED + timedelta(hours=3, minutes=1))  # under 25 % of 4 h left
    assert reporting.due_warnings(STARTED + timedelta(hours=3, minutes=1), root) == [clock]
    late = STARTED + timedelta(hours=5, minutes=5)
    assert clock.status(late) == "OVERDUE by 1 h 05 min" and clock.overdue(late)
    sent = reporting.record_sent(journal_at(root, late), "initial", "李四")
    assert sent.status(late) == f"report sent {stamp(late)} by 李四 (late by 1 h 05 min)"
    assert reporting.due_warnings(late, root) == []


def test_a_late_grading_finds_the_clock_used_and_an_overdue_one_says_so(tmp_path: Path) -> None:
    """A phone call at 20:00 Beijing, opened at 20:10, graded 3 h 05 min later: 55 min are left, not 4 h."""
    root = tmp_path / "incidents"
    found = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    incident = desk.open_reported(
        root, Level.L2, "首页被篡改", "网民", "phone", "张三", found, found + MIN * 10
    ).incident
    late = found + timedelta(hours=3, minutes=5)
    clock = reporting.record_grade(journal_at(root, late, incident), "relatively_major", "张三", "", False)
    assert clock.due == found + timedelta(hours=4) and clock.status(late) == "55 min left" and clock.warns(late)
    assert clock.graded["ts"] == stamp(late), "the grade event keeps its own time"
    assert clock.basis() == (
        "4 h after detection at 2026-12-03 20:00 Thu (UTC+8); graded 3 h 05 min after it: 77% of the clock used"
    )
    record = (root / incident / "incident.md").read_text()
    assert "| report due | 2026-12-04 00:00 Fri (UTC+8) (4 h after detection at 2026-12-03 20:00 Thu" in record
    cii = reporting.record_grade(journal_at(root, late, incident), "relatively_major", "张三", "", True)
    assert cii.due == found + timedelta(hours=4), "the grade that raised it keeps its hours"
    lifted = reporting.record_grade(journal_at(root, late, incident), "general", "张三", "", False)
    assert lifted.due is None
    cii = reporting.record_grade(journal_at(root, late, incident), "major", "张三", "", True)
    assert cii.due == found + timedelta(hours=1) and cii.status(late) == "OVERDUE by 2 h 05 min" and cii.overdue(late)
    assert cii.basis().endswith("graded 3 h 05 min after it: the clock had run out")
    assert [c.incident for c in reporting.due_warnings(late, root)] == [incident]


def test_grading_twice_keeps_both_events_and_the_latest_wins(root: Path) -> None:
    graded(root, "III")
    later = GRADED + timedelta(hours=1)
    clock = graded(root, "II", later)
    grades = [e for e in read_events(root / INCIDENT / "journal.jsonl") if e["event"] == "grade"]
    assert [e["grade"] for e in grades] == ["relatively_major", "major"]
    assert clock.grade == "major" and clock.graded["ts"] == stamp(later)
    assert clock.due == STARTED + timedelta(hours=4), "an upgrade does not restart a running clock"
    assert graded(root, "IV", later + timedelta(hours=1)).due is None, "a grade below III stops it"


# ----------------------------------------------------------------- the CLI


def test_show_and_clocks_from_the_command_line(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = run_cli("show", INCIDENT, "--incidents", str(root), now=GRADED, monkeypatch=monkeypatch)
    assert code == 0 and "not graded" in out
    args = ("grade", INCIDENT, "--incidents", str(root), "-i", str(root))
    code, out, _ = run_cli(*args, now=GRADED, monkeypatch=monkeypatch)
    assert code == 0 and "suggested: 一般（IV） general" in out
    code, out, _ = run_cli(*args, "--grade", "significant", "--by", "张三", now=GRADED, monkeypatch=monkeypatch)
    assert code == 0 and "graded 较大（III）" in out and "3 h 19 min left" in out  # from 16:19, found
    code, out, _ = run_cli("show", INCIDENT, "--incidents", str(root), now=GRADED, monkeypatch=monkeypatch)
    assert (
        "deadline  2026-12-03 20:19 Thu (UTC+8) = 2026-12-03T12:19:55.466Z (4 h after detection at 2026-12-03 "
        "16:19 Thu (UTC+8); graded 40 min after it: 17% of the clock used)"
    ) in out
    assert "report    3 h 19 min left" in out
    clocks = ("clocks", "--incidents", str(root))
    assert run_cli(*clocks, now=GRADED, monkeypatch=monkeypatch)[:2] == (0, "")
    code, out, _ = run_cli(*clocks, now=STARTED + timedelta(hours=3, minutes=30), monkeypatch=monkeypatch)
    assert code == 0 and out.startswith(INCIDENT) and "30 min left" in out
    code, out, _ = run_cli(*clocks, now=STARTED + timedelta(hours=4, minutes=1), monkeypatch=monkeypatch)
    assert code == 1 and "OVERDUE by 1 min" in out


def test_a_missing_or_corrupt_incident_is_bad_input_and_nothing_is_written(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corrupt = root / "20261203T090000Z-l1_defacement"
    corrupt.mkdir()
    (corrupt / "journal.jsonl").write_text('{"event": "step_begin", "ts": "2026-12-03T09:00:00Z"}\n{"trunc')
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    draft = root.parent / "draft.md"
    for incident in ("20261203T000000Z-nope", "../incidents", corrupt.name):
        for argv in (
            ("grade", incident, "-i", str(root), "--grade", "III", "--by", "张三"),
            ("report", incident, "-i", str(root), "--regulator", "--out", str(draft)),
            ("report", incident, "--regulator", "--sent", "--by", "李四"),
            ("show", incident),
        ):
            code, out, err = run_cli(*argv, "--incidents", str(root), now=GRADED, monkeypatch=monkeypatch)
            assert code == 2 and out == "" and len(err.splitlines()) == 1, (argv, err)
    for argv in (
        ("grade", INCIDENT, "-i", str(root), "--grade", "V", "--by", "张三"),  # no such grade
        ("grade", INCIDENT, "-i", str(root), "--grade", "III"),  # nobody decided it
        ("report", INCIDENT, "-i", str(root), "--regulator", "--out", str(draft)),  # not graded yet
    ):
        code, _, err = run_cli(*argv, "--incidents", str(root), now=GRADED, monkeypatch=monkeypatch)
        assert code == 2, (argv, err)
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
    assert not draft.exists()


# ----------------------------------------------------------------- the draft


def test_the_draft_holds_the_records_facts_and_the_blanks(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    graded(root, "较大")
    out_file = root.parent / "initial.md"
    argv = ("report", INCIDENT, "--regulator", "--incidents", str(root), "-i", str(root), "--out", str(out_file))
    code, _, err = run_cli(*argv, now=GRADED + timedelta(hours=1), monkeypatch=monkeypatch)
    assert code == 0 and "draft written" in err
    text = out_file.read_text()
    for fact in (
        "# 网络安全事件报告（初报） Cybersecurity incident report (initial)",
        "| 处置涉及主机 hosts checked or acted on | web1, cms1, db1 |",
        "| 发现时间 found | 2026-12-03 16:19 Thu (UTC+8) = 2026-12-03T08:19:55.466Z",
        "较大（III） relatively major, by 张三 at 2026-12-03 17:00 Thu (UTC+8) = 2026-12-03T09:00:00.000Z: "
        "首页不可访问",
        "| 报告时限 due | 2026-12-03 20:19 Thu (UTC+8) (4 h) |",
        "| 报送对象 to | 属地省级网信部门 / the provincial cyberspace office |",
        "安全负责人 / Security officer: 网络安全责任人, +86 000-0000-0005, security@portal.lab.test",
        "某县人民政府门户网站 (portal.lab.test)",
        "| 持续时间 duration | at least 0 min (to recovery) |",
        "`start_php_fpm` (act): **done** - done on cms1",
        "  - Restart php-fpm on cms1: done",
        "`portal_back` (verify): **passed**",
        "found broken and acted on: Restart php-fpm on cms1: done",
        "已恢复 recovered at 2026-12-03 16:19 Thu (UTC+8) = 2026-12-03T08:19:59.867Z",
        "## 4 事件原因初步分析 / a first analysis of the cause",
        "| 报告单位 reporting unit | 【待填写 to be completed】 |",
    ):
        assert fact in text, fact
    assert text.count(regreport.BLANK) >= 8
    assert "start_cms_nginx" not in text, "a step that found nothing to do is no measure taken"
    code, _, err = run_cli(*argv, now=GRADED, monkeypatch=monkeypatch)
    assert code == 2 and "never written over" in err and out_file.read_text() == text


def test_the_follow_up_and_final_reports(root: Path) -> None:
    graded(root, "III")
    events = read_events(root / INCIDENT / "journal.jsonl")
    follow = regreport.draft(events, INPUTS, "follow-up", GRADED)
    assert "（续报）" in follow and "no report marked sent yet" in follow and "`portal_back` (verify)" in follow
    reporting.record_sent(journal_at(root, GRADED + timedelta(hours=1)), "initial", "李四")
    events = read_events(root / INCIDENT / "journal.jsonl")
    follow = regreport.draft(events, INPUTS, "follow-up", GRADED + timedelta(hours=2))
    assert "the initial report sent 2026-12-03T10:00:00.000Z" in follow and "nothing journalled since" in follow
    final = regreport.draft(events, INPUTS, "final", GRADED + timedelta(days=1))
    assert final.startswith("# 网络安全事件总结报告 Incident summary report (final)")
    for section in ("原因分析（根本原因）", "根本原因 root cause: 【待填写", "整改措施", "经验教训", "责任认定"):
        assert section in final, section
    assert "- initial sent 2026-12-03T10:00:00.000Z by 李四" in final
    assert "Restart php-fpm on cms1: done" in final


def test_the_draft_of_a_person_handled_incident_follows_its_lifecycle(tmp_path: Path) -> None:
    """Opened from a phone call (found at 20:00 Beijing), acknowledged, worked around and resolved by people:
    no runbook ran, yet the draft must say when it was found, that it is resolved and what was done."""
    root = tmp_path / "incidents"
    found = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)  # 20:00 Beijing
    opened = desk.open_reported(root, Level.L2, "首页打不开", "信息中心 王五", "phone", "张三", found, found + MIN * 10)
    incident = opened.incident
    desk.transition(root, incident, "ack", "张三", found + MIN * 15)
    reporting.record_grade(journal_at(root, found + MIN * 20, incident), "relatively_major", "张三", "", False)
    desk.transition(root, incident, "workaround", "李四", found + MIN * 40, note="切到备用服务器")
    desk.transition(root, incident, "resolve", "李四", found + MIN * 90, note="重启 php-fpm")
    events = read_events(root / incident / "journal.jsonl")
    final = regreport.draft(events, INPUTS, "final", found + timedelta(hours=5))
    for fact in (
        "| 发现时间 found | 2026-12-03 20:00 Thu (UTC+8) = 2026-12-03T12:00:00.000Z（信息中心 王五 经 phone 报告",
        "| 持续时间 duration | at least 1 h 30 min (to recovery) |",
        "| 当前状态 status | 已恢复 recovered at 2026-12-03 21:30 Thu (UTC+8) = 2026-12-03T13:30:00.000Z: "
        "**resolved** by 李四: 重启 php-fpm |",
        "- 2026-12-03T12:40:00.000Z **workaround** by 李四: 切到备用服务器",
        "- 2026-12-03T13:30:00.000Z **resolved** by 李四: 重启 php-fpm",
    ):
        assert fact in final, fact
    assert "the runbook has not finished" not in final and "(so far)" not in final

    desk.transition(root, incident, "reopen", "张三", found + MIN * 120, reason="又打不开了")
    events = read_events(root / incident / "journal.jsonl")
    follow = regreport.draft(events, INPUTS, "follow-up", found + MIN * 150)
    assert "| 持续时间 duration | at least 2 h 30 min (so far) |" in follow, "a reopen undoes the resolution"
    assert "处置中 being handled" in follow and "workaround in place: **workaround** by 李四" in follow
    assert "- 2026-12-03T14:00:00.000Z **reopened** by 张三: 又打不开了" in follow
    desk.transition(root, incident, "resolve", "李四", found + MIN * 160, note="换了磁盘")
    desk.transition(root, incident, "close", "张三", found + MIN * 170)
    events = read_events(root / incident / "journal.jsonl")
    closed = regreport.draft(events, INPUTS, "final", found + MIN * 180)
    assert "| 持续时间 duration | at least 2 h 40 min (to recovery) |" in closed
    assert "**resolved** by 李四: 换了磁盘; 已关闭 closed by 张三 at 2026-12-03 22:50" in closed


def test_a_draft_without_a_security_officer_leaves_the_contact_blank(root: Path) -> None:
    graded(root, "III")
    text = regreport.draft(read_events(root / INCIDENT / "journal.jsonl"), Inputs(), "initial", GRADED)
    assert "| 联系人 contact | 【待填写 to be completed】" in text


# ----------------------------------------------------------------- warnings


class Recorder(Notifier):
    """A notifier that delivers to nobody and remembers what it was asked to send."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[Notice] = []

    def send(self, notice: Notice) -> list[Delivery]:
        self.sent.append(notice)
        return [Delivery("duty-manager", "webhook", True)]


def test_the_duty_manager_is_warned_once_while_it_runs_out_and_once_when_overdue(root: Path) -> None:
    graded(root, "III")
    recorder = Recorder()
    for minutes in (181, 200, 239, 241, 300):
        now = STARTED + timedelta(minutes=minutes)
        for clock in reporting.due_warnings(now, root):
            reporting.warn(clock, now, recorder, root)
    assert [n.event for n in recorder.sent] == ["report_clock", "report_clock"]
    assert "59 min left" in recorder.sent[0].title and "OVERDUE by 1 min" in recorder.sent[1].title
    assert recorder.sent[0].level == 1 and recorder.sent[0].runbook == "l1_portal_unreachable"
    notes = [e for e in read_events(root / INCIDENT / "journal.jsonl") if e["event"] == "notify"]
    assert [(e["state"], e["ok"]) for e in notes] == [("warning", True), ("overdue", True)]
    assert "report_clock notice via duty-manager (webhook): sent" in (root / INCIDENT / "incident.md").read_text()


def test_grade_names_and_aliases() -> None:
    for names, key in (
        (("特别重大", "I", "especially-major", "particularly major"), "particularly_major"),
        (("重大", "ii", "Major"), "major"),
        (("较大", "III", "significant", "relatively-major"), "relatively_major"),
        (("一般", "IV", "general"), "general"),
    ):
        assert {grading.grade_key(n) for n in names} == {key}
    with pytest.raises(BadInput, match="no national grade"):
        grading.grade_key("severe")
    assert json.dumps(grading.ALIASES, ensure_ascii=False)  # every alias a plain string


def test_a_grade_written_while_the_runbook_runs_stays_in_the_record(tmp_path: Path) -> None:
    world = World()
    rt = runtime(world, tmp_path)

    class GradingHost(FakeHost):
        """A host on which, while nginx restarts, the security officer grades the incident."""

        def run(self, command: str, timeout: float) -> CommandResult:
            if command == "restart nginx":
                (directory,) = rt.incidents.iterdir()
                journal = open_incident(rt.incidents, directory.name)
                reporting.record_grade(journal, "relatively_major", "张三", "", False)
            return super().run(command, timeout)

    rt.hosts = lambda name: GradingHost(name, world)
    plan = make_plan(RUNBOOK, INVENTORY, (), {"python": "python", "inventory": "i", "repo": "."})
    result = run_runbook(RUNBOOK, plan, rt, Options(yes=True))
    record = (rt.incidents / result.incident / "incident.md").read_text()
    assert "## National grade and regulatory report" in record and "graded **较大（III）" in record
