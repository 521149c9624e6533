"""Problems and known errors through the real command line: open, update, link, close, suggest, the files.

Each command runs ``portalops.cli.main`` on a records directory under ``tmp_path`` with the clock
fixed (``cli.utc_now``); incidents are opened the way a person does (``portalops incident open``).
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
from portalops.errors import BadInput
from portalops.runbook.journal import read_events
from portalops.service import problems, records, suggest

NOW = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)  # 10:00 Thursday in Beijing


def at(days: float = 0, minutes: float = 0) -> datetime:
    return NOW + timedelta(days=days, minutes=minutes)


class Desk:
    """``portalops problem|incident ...`` on one records directory, at a given time."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.monkeypatch = monkeypatch

    def __call__(self, *argv: str, now: datetime = NOW) -> tuple[int, str, str]:
        self.monkeypatch.setattr(cli, "utc_now", lambda: now)
        out, err = io.StringIO(), io.StringIO()
        code = cli.main([*argv, "--incidents", str(self.root)], out=out, err=err)
        return code, out.getvalue(), err.getvalue()

    def incident(self, runbook: str, when: datetime) -> str:
        code, out, err = self(
            "incident", "open", "--level", "L2", "--title", "网站很慢", "--reported-by", "信息中心 王五",
            "--runbook", runbook, "--at", when.isoformat(), now=when + timedelta(minutes=1),
        )  # fmt: skip
        assert code == 0, err
        return out.split()[1].rstrip(":")

    def open(self, *extra: str, now: datetime = NOW) -> str:
        code, out, err = self("problem", "open", "--title", "php-fpm 池反复占满", "--by", "张三", *extra, now=now)
        assert code == 0, err
        return out.split()[1].rstrip(":")

    def path(self, problem: str) -> Path:
        return self.root / "problems" / f"{problem}.md"

    def front(self, problem: str) -> dict[str, Any]:
        meta, _ = records.split(self.path(problem).read_text())
        return meta


@pytest.fixture
def desk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Desk:
    monkeypatch.setattr(suggest, "DRILL_REPORTS", tmp_path / "fault-drills")  # not this checkout's reports
    return Desk(tmp_path / "records", monkeypatch)


def test_a_problem_goes_from_open_to_known_error_to_resolved_to_closed(desk: Desk) -> None:
    first = desk.incident("l2_slow_response", at(-3))
    problem = desk.open("--runbook", "l2_slow_response", "--incident", first, "--kb", "KB-php-fpm-pool-saturated")
    assert problem == "PRB-2026-001"
    steps = [
        (("--root-cause", "首页查询没有索引, 慢查询占满 php-fpm 子进程"), "open"),
        (
            ("--workaround", "平滑重载 php-fpm\nreload php-fpm (l2_slow_response)", "--status", "known-error"),
            "known-error",
        ),
        (("--fix", "为 wp_postmeta 加索引", "--status", "resolved", "--note", "CHG 待补"), "resolved"),
    ]
    for n, (argv, status) in enumerate(steps, start=1):
        code, out, err = desk("problem", "update", problem, *argv, "--by", "李四", now=at(minutes=n))
        assert code == 0, err
        assert out.startswith(f"{problem}: updated") and out.endswith(f"by 李四; now {status}\n")
    code, out, err = desk("problem", "close", problem, "--by", "张三", "--note", "一个月未再发生", now=at(30))
    assert (code, out) == (0, f"{problem}: closed resolved -> closed: 一个月未再发生 by 张三; now closed\n"), err

    meta = desk.front(problem)
    assert (meta["status"], meta["runbook"], meta["incidents"], meta["kb"]) == (
        "closed",
        "l2_slow_response",
        [first],
        ["KB-php-fpm-pool-saturated"],
    )
    assert meta["workaround"] == "平滑重载 php-fpm\nreload php-fpm (l2_slow_response)"
    assert "workaround: |-\n  平滑重载 php-fpm\n  reload php-fpm (l2_slow_response)\n" in desk.path(problem).read_text()
    history = [(e["event"], e["by"], e.get("from"), e.get("to"), e.get("fields")) for e in meta["history"]]
    assert history == [
        ("opened", "张三", None, None, None),
        ("updated", "李四", None, None, ["root_cause"]),
        ("updated", "李四", "open", "known-error", ["workaround"]),
        ("updated", "李四", "known-error", "resolved", ["fix"]),
        ("closed", "张三", "resolved", "closed", None),
    ]
    assert [e["ts"] for e in meta["history"]][-1] == "2027-01-02T02:00:00.000Z"
    body = desk.path(problem).read_text().split("\n---\n", 1)[1]
    assert "| status | **closed** |" in body and "## 根本原因 Root cause\n\n首页查询没有索引" in body
    assert f"## 关联事件 Incidents\n\n- {first}\n" in body
    # The incident's journal links back to the problem, and `incident show` names it.
    links = [
        (e["kind"], e["target"], e["by"])
        for e in read_events(desk.root / first / "journal.jsonl")
        if e["event"] == "link"
    ]
    assert links == [("problem", problem, "张三")]
    code, out, _ = desk("incident", "show", first, now=at(31))
    assert code == 0 and f"problem   {problem} (closed): php-fpm 池反复占满" in out
    code, out, _ = desk("problem", "show", problem, now=at(31))
    assert code == 0 and out.splitlines()[:2] == [f"{problem}: php-fpm 池反复占满", "status     closed"]
    assert "history    2026-12-03 10:01 Thu (UTC+8)  李四: updated (root_cause)" in out


@pytest.mark.parametrize(
    ("done", "refused", "says"),
    [
        ((), ("close",), "cannot close problem PRB-2026-001: it is open; resolve it first"),
        (
            (),
            ("update", "--status", "known-error", "--root-cause", "x"),
            "cannot be known-error without its workaround",
        ),
        ((), ("update", "--status", "resolved", "--fix", "x"), "cannot be resolved without its root cause"),
        ((("--root-cause", "c", "--workaround", "w", "--status", "known-error"),), ("close",), "it is known-error"),
        (
            (("--root-cause", "c", "--fix", "f", "--status", "resolved"), ("close",)),
            ("update", "--status", "open"),
            "cannot update problem PRB-2026-001: it is closed (by 张三 at 2026-12-03T02:02:00.000Z); a problem",
        ),
        ((("--root-cause", "c", "--fix", "f", "--status", "resolved"), ("close",)), ("close",), "it is closed"),
        (
            (("--root-cause", "c", "--fix", "f", "--status", "resolved"), ("close",)),
            ("link", "--change", "CHG-1"),
            "it is closed",
        ),
        ((), ("update", "--status", "closed"), "invalid choice: 'closed'"),
    ],
)
def test_illegal_moves_are_refused_with_exit_2_and_nothing_written(
    desk: Desk, done: tuple[tuple[str, ...], ...], refused: tuple[str, ...], says: str
) -> None:
    problem = desk.open()
    for n, argv in enumerate(done, start=1):
        command = ("close",) if argv == ("close",) else ("update", *argv)
        assert desk("problem", command[0], problem, *command[1:], "--by", "张三", now=at(minutes=n))[0] == 0
    before = desk.path(problem).read_bytes()
    if refused == ("update", "--status", "closed"):
        with pytest.raises(SystemExit) as exit_:
            desk("problem", "update", problem, "--status", "closed")
        assert exit_.value.code == 2
    else:
        code, out, err = desk("problem", refused[0], problem, *refused[1:], "--by", "张三", now=at(minutes=9))
        assert (code, out) == (2, ""), err
        assert says in err and err.endswith("(nothing written)\n"), err
    assert desk.path(problem).read_bytes() == before


def test_links_must_exist_and_are_recorded_once(desk: Desk) -> None:
    incident = desk.incident("l3_backup_stale", at(-1))
    problem = desk.open()
    broken = desk.root / "20261203T000000Z-broken" / "journal.jsonl"
    broken.parent.mkdir()
    broken.write_text('{"ts": "2026-12-03T00:00:00.000Z", "event": "acknowledged"}\n')
    before = desk.path(problem).read_bytes()
    for argv, says in [
        (("--incident", "20261203T000000Z-nope"), "no incident '20261203T000000Z-nope'"),
        (("--incident", "../problems"), "is not an incident of"),
        (("--kb", "KB-no-such-article"), "no article KB-no-such-article in"),
        (("--change", "site.yml"), "'site.yml' is not a change id"),
        (("--incident", "20261203T000000Z-broken"), "its journal has no start event (corrupt); nothing written"),
        ((), "give --incident, --kb or --change"),
    ]:
        code, _, err = desk("problem", "link", problem, *argv, "--by", "张三")
        assert code == 2 and says in err, err
    assert desk.path(problem).read_bytes() == before
    argv = ("--incident", incident, "--kb", "KB-restic-repository-locked", "--change", "CHG-20261203-backup")
    code, out, err = desk("problem", "link", problem, *argv, "--by", "张三")
    assert code == 0, err
    assert out == (
        f"{problem}: linked incidents: {incident} kb: KB-restic-repository-locked changes: CHG-20261203-backup"
        " by 张三; now open\n"
    )
    code, out, _ = desk("problem", "link", problem, *argv, "--by", "张三")
    assert (code, out) == (0, f"{problem}: nothing to change; open\n")
    meta = desk.front(problem)
    assert (meta["incidents"], meta["kb"], meta["changes"]) == (
        [incident],
        ["KB-restic-repository-locked"],
        ["CHG-20261203-backup"],
    )
    assert [e["event"] for e in meta["history"]] == ["opened", "linked"]
    code, out, _ = cli_kb_show(desk, "KB-restic-repository-locked")
    assert f"cited by: problem {problem} (open)" in out


def cli_kb_show(desk: Desk, article: str) -> tuple[int, str, str]:
    desk.monkeypatch.setattr(cli, "utc_now", lambda: NOW)
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["kb", "show", article, "--incidents", str(desk.root)], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_an_incident_linked_by_hand_shows_in_the_problem_and_the_article(desk: Desk) -> None:
    code, out, err = desk("incident", "open", "--level", "L3", "--title", "备份报错", "--reported-by", "王五")
    assert code == 0, err
    incident = out.split()[1].rstrip(":")  # no runbook: nothing to suggest by, but links work
    problem = desk.open()
    for argv in (("--problem", problem), ("--kb", "KB-restic-repository-locked")):
        code, _, err = desk("incident", "link", incident, *argv, "--by", "张三")
        assert code == 0, err
    code, out, _ = desk("problem", "show", problem)
    assert f"incident   {incident} (its journal links here)" in out
    assert f"cited by: incident {incident}" in cli_kb_show(desk, "KB-restic-repository-locked")[1]


def test_repeated_incidents_of_a_runbook_suggest_a_problem_and_never_create_one(desk: Desk) -> None:
    first = desk.incident("l2_slow_response", at(-20))
    second = desk.incident("l2_slow_response", at(-2))
    desk.incident("l3_backup_stale", at(-1))  # once only: nothing to suggest
    code, out, err = desk("problem", "suggest", "--json")
    assert code == 0, err
    made = json.loads(out)
    assert made == [
        {
            "runbook": "l2_slow_response",
            "days": 30,
            "incidents": [first, second],
            "earlier_problems": [],
            "command": "portalops problem open --title '网站很慢' --runbook l2_slow_response"
            f" --incident {first} --incident {second}",
        }
    ]
    assert not (desk.root / "problems").exists()  # a suggestion creates nothing
    code, out, _ = desk("problem", "suggest", "--days", "10")
    assert (code, out) == (0, "no runbook or alert repeated within 10 days without a problem\n")
    code, out, _ = desk("incident", "show", second)
    assert "problem   suggested: 2 incidents of runbook l2_slow_response within 30 days" in out
    assert (
        f"          open it: portalops problem open --title '网站很慢' --runbook l2_slow_response --incident {first}"
        in out
    )
    code, out, _ = desk("incident", "show", second, "--days", "7")
    assert "problem   " not in out

    problem = desk.open("--runbook", "l2_slow_response", "--incident", first, "--incident", second)
    assert desk("problem", "suggest")[1].startswith("no runbook or alert repeated")
    assert f"problem   {problem} (open)" in desk("incident", "show", second)[1]
    # Closed, the problem no longer covers what comes after it: a new incident suggests one again.
    desk("problem", "update", problem, "--root-cause", "c", "--fix", "f", "--status", "resolved")
    desk("problem", "close", problem, "--by", "张三")
    third = desk.incident("l2_slow_response", at(-1))
    made = json.loads(desk("problem", "suggest", "--json")[1])
    assert made[0]["incidents"] == [first, second, third] and made[0]["earlier_problems"] == [problem]


def test_a_fault_drills_incidents_suggest_nothing(desk: Desk, tmp_path: Path) -> None:
    drill = desk.incident("l2_disk_pressure", at(-2))
    real = desk.incident("l2_disk_pressure", at(-1))
    assert json.loads(desk("problem", "suggest", "--json")[1])[0]["incidents"] == [drill, real]
    reports = tmp_path / "fault-drills"
    reports.mkdir()
    (reports / "20261201T020000Z-l2_disk_pressure-disk_full.json").write_text(json.dumps({"incident": drill}))
    (reports / "torn.json").write_text('{"incident": ')
    assert json.loads(desk("problem", "suggest", "--json")[1]) == []
    assert "problem   " not in desk("incident", "show", real)[1]


def test_the_window_comes_from_the_environment_when_no_flag_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(suggest.DAYS_VARIABLE, "14")
    assert suggest.default_days() == 14
    assert cli.build_parser().parse_args(["problem", "suggest"]).days == 14
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["problem", "suggest", "--days", "0"])
    monkeypatch.setenv(suggest.DAYS_VARIABLE, "soon")
    assert suggest.default_days() == suggest.DEFAULT_DAYS == 30


def test_responder_incidents_of_an_alert_without_a_runbook_repeat_by_alert_name() -> None:
    def start(incident: str, when: str) -> list[dict[str, Any]]:
        alert = {"alertname": "DiskAlmostFull", "fingerprint": incident}
        return [{"ts": when, "event": "start", "runbook": "", "detected": when, "alert": alert}]

    found = [
        suggest.occurrence("a", start("a", "2026-12-01T00:00:00.000Z")),
        suggest.occurrence("b", start("b", "2026-12-02T00:00:00.000Z")),
        suggest.occurrence("c", [{"ts": "2026-12-02T00:00:00.000Z", "event": "start", "runbook": ""}]),
    ]
    assert found[2] is None  # a person's incident without a runbook has nothing to repeat by
    made = suggest.suggestions([f for f in found if f], [], NOW, 30)
    assert [(s.kind, s.name, [o.incident for o in s.incidents]) for s in made] == [
        ("alert", "DiskAlmostFull", ["a", "b"])
    ]
    assert "--alert DiskAlmostFull" in made[0].command()


def test_a_malformed_record_is_named_with_exit_2_and_never_written_over(desk: Desk) -> None:
    good = desk.open()
    bad = desk.open()
    path = desk.path(bad)
    path.write_text(path.read_text().replace("status: open", "status: solved"))
    broken = path.read_bytes()
    code, out, err = desk("problem", "list")
    assert code == 2 and good in out and bad not in out
    assert f"portalops: problem {path} is malformed: status: 'solved' is none of open, known-error" in err
    for argv in (
        ("show", bad),
        ("update", bad, "--root-cause", "x"),
        ("close", bad),
        ("link", bad, "--change", "CHG-1"),
    ):
        code, _, err = desk("problem", *argv)
        assert code == 2 and "mend it by hand (nothing written)" in err, argv
    assert path.read_bytes() == broken
    path.write_text("no front matter\n")
    code, _, err = desk("problem", "show", bad)
    assert code == 2 and "does not start with a '---' line" in err
    assert desk("problem", "show", "PRB-9")[0] == 2
    assert desk("problem", "show", "PRB-2026-999")[0] == 2
    assert sorted(p.name for p in (desk.root / "problems").iterdir()) == [".lock", f"{good}.md", f"{bad}.md"]


def test_a_write_is_checked_against_the_schema_first(tmp_path: Path) -> None:
    path = tmp_path / "PRB-2026-001.md"
    path.write_text("kept\n")
    meta = {"id": "PRB-2026-001", "title": "t", "status": "known-error", "opened": "2026-12-03T02:00:00.000Z"}
    record = records.Record(path, meta | {"opened_by": "x", "history": []}, "")
    with pytest.raises(BadInput, match="would be invalid: root_cause: needed when known-error; workaround: needed"):
        records.write(record, problems.SCHEMA, problems.check, "problem")
    with pytest.raises(BadInput, match="history: missing; colour: unknown field"):
        records.write(records.Record(path, meta | {"colour": "red"}, ""), problems.SCHEMA, None, "problem")
    assert path.read_text() == "kept\n" and [p.name for p in tmp_path.iterdir()] == [path.name]


def test_a_change_waits_for_the_lock_and_two_opens_get_two_ids(desk: Desk) -> None:
    problem = desk.open()
    results: list[problems.Change] = []
    with records.locked(desk.root / "problems"):  # another writer holds the directory
        worker = threading.Thread(
            target=lambda: results.append(problems.update(desk.root, problem, "李四", at(1), texts={"fix": "f"}))
        )
        worker.start()
        worker.join(0.3)
        assert worker.is_alive() and "fix: ''" in desk.path(problem).read_text()
    worker.join(5)
    assert len(results) == 1 and desk.front(problem)["fix"] == "f"
    opened: list[str] = []
    workers = [
        threading.Thread(target=lambda: opened.append(problems.open_problem(desk.root, "t", "x", NOW).id))
        for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(5)
    assert sorted(opened) == ["PRB-2026-002", "PRB-2026-003", "PRB-2026-004", "PRB-2026-005"]


def test_list_open_and_json(desk: Desk) -> None:
    done = desk.open()
    desk("problem", "update", done, "--root-cause", "c", "--fix", "f", "--status", "resolved")
    desk("problem", "close", done)
    waiting = desk.open("--alert", "PortalDown")
    code, out, _ = desk("problem", "list", "--open")
    assert code == 0 and [line.split()[0] for line in out.splitlines()] == ["PROBLEM", waiting]
    assert out.splitlines()[1].split()[1:6] == ["open", "2026-12-03", "10:00", "0", "PortalDown"]
    rows = json.loads(desk("problem", "list", "--json")[1])
    assert [(r["id"], r["status"]) for r in rows] == [(done, "closed"), (waiting, "open")]
    assert set(rows[0]) == set(problems.SCHEMA)
    assert desk("problem", "open", "--title", "x", "--runbook", "nope")[0] == 2
    assert desk("problem", "open", "--title", " ")[0] == 2
    assert desk("problem", "open", "--title", "x", "--incident", "20261203T000000Z-nope")[0] == 2
    assert desk("problem", "open", "--title", "x", "--kb", "KB-nope")[0] == 2
    assert sorted(p.name for p in (desk.root / "problems").glob("*.md")) == [f"{done}.md", f"{waiting}.md"]
