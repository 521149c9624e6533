"""The service report: its period, its figures from recorded incidents and reports, its Markdown and HTML."""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from portalops.cli import main
from portalops.cmdb import build, roles, run
from portalops.errors import BadInput
from portalops.monitoring.api import Prometheus, Sample, Series, Unreachable, parse_matrix, parse_vector
from portalops.runbook import desk
from portalops.runbook.journal import stamp
from portalops.runbook.levels import Level
from portalops.service import changes, report
from portalops.service.pdf import write_pdf
from portalops.service.period import parse_period
from portalops.service.render import TEXT, charts, markdown, to_html
from tests.unit import monitoring_servers
from tests.unit.test_cmdb import WHEN, lab_inventory, later, recorded

NOV_NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "kind", "first", "last", "days"),
    [
        ("2026-11", "month", date(2026, 11, 1), date(2026, 11, 30), 30),
        ("2026-02", "month", date(2026, 2, 1), date(2026, 2, 28), 28),
        ("2026-12", "month", date(2026, 12, 1), date(2026, 12, 31), 31),
        ("2026-Q4", "quarter", date(2026, 10, 1), date(2026, 12, 31), 92),
        ("2026-q1", "quarter", date(2026, 1, 1), date(2026, 3, 31), 90),
        ("2026", "year", date(2026, 1, 1), date(2026, 12, 31), 365),
    ],
)
def test_a_period_is_a_month_a_quarter_or_a_year_of_beijing_days(
    text: str, kind: str, first: date, last: date, days: int
) -> None:
    period = parse_period(text)
    assert (period.kind, period.first, period.last, len(period.days())) == (kind, first, last, days)
    # Beijing midnight: 16:00 UTC the day before
    assert period.start.astimezone(UTC) == datetime(first.year, first.month, first.day, tzinfo=UTC) - timedelta(hours=8)


@pytest.mark.parametrize(
    "text", ["2026-13", "2026-00", "2026-Q5", "2026-Q0", "junk", "", "2026-1", "26-11", "2026-11-01"]
)
def test_a_bad_period_is_refused(text: str) -> None:
    with pytest.raises(BadInput, match="--period"):
        parse_period(text)


@pytest.mark.parametrize("text", ["2026-13", "2026-Q5", "garbage"])
def test_the_command_refuses_a_bad_period_with_exit_2_and_writes_nothing(text: str, tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = main(["report", "--period", text, "--out", str(tmp_path / "out")], out, err)
    assert code == 2
    assert "--period" in err.getvalue() and err.getvalue().count("\n") == 1
    assert not (tmp_path / "out").exists()


def _incidents(root: Path) -> dict[str, str]:
    """Four incidents as people would record them: three detected in November 2026, one in October."""
    made = {}
    for key, level, detected in (
        ("l1", Level.L1, datetime(2026, 11, 10, 2, 0, tzinfo=UTC)),
        ("l2_prompt", Level.L2, datetime(2026, 11, 12, 3, 0, tzinfo=UTC)),
        ("l2_late", Level.L2, datetime(2026, 11, 20, 3, 0, tzinfo=UTC)),
        ("october", Level.L3, datetime(2026, 10, 20, 3, 0, tzinfo=UTC)),
    ):
        journal = desk.open_reported(root, level, f"title {key}", "caller", "phone", "alice", detected, detected, None)
        made[key] = journal.incident
    l1, prompt, late = made["l1"], made["l2_prompt"], made["l2_late"]
    at = datetime(2026, 11, 10, 2, 2, tzinfo=UTC)
    desk.transition(root, l1, "ack", "alice", at)
    desk.transition(root, l1, "onsite", "alice", at + timedelta(minutes=1))
    desk.transition(root, l1, "resolve", "alice", at + timedelta(minutes=18), note="restarted")
    at = datetime(2026, 11, 12, 3, 1, tzinfo=UTC)
    desk.transition(root, prompt, "ack", "bob", at)
    desk.transition(root, prompt, "callback", "bob", at + timedelta(minutes=5))
    desk.transition(root, prompt, "resolve", "bob", at + timedelta(minutes=39), note="fixed")
    at = datetime(2026, 11, 20, 3, 2, tzinfo=UTC)
    desk.transition(root, late, "ack", "bob", at)
    desk.transition(root, late, "callback", "bob", at + timedelta(hours=2))  # the 15 min call-back, missed
    return made


def test_incidents_are_counted_per_level_and_a_late_call_back_is_breached(tmp_path: Path) -> None:
    made = _incidents(tmp_path / "incidents")
    period = parse_period("2026-11")
    section = report.incidents_section(period, report.journals(tmp_path / "incidents"), NOV_NOW)
    assert section["count"] == 3
    assert section["by_level"] == {"L1": 1, "L2": 2, "L3": 0}
    assert made["october"] not in [row["id"] for row in section["items"]]
    late = next(row for row in section["items"] if row["id"] == made["l2_late"])
    callback = next(f for f in late["deadlines"] if f["name"] == "callback")
    assert callback["status"] == "breached" and callback["at"] is not None
    assert late["resolved"] is None and section["unresolved"] == 1
    prompt = next(row for row in section["items"] if row["id"] == made["l2_prompt"])
    assert [f["status"] for f in prompt["deadlines"] if f["name"] == "callback"] == ["met"]
    assert prompt["called_back"] is not None and prompt["ttr_s"] == 40 * 60.0
    assert section["deadlines"]["callback"] == {"met": 1, "breached": 1, "pending": 0, "n/a": 0}
    assert section["breached"] >= 1
    assert section["mttr_s"] == round((18 * 60 + 2 * 60 + 40 * 60) / 2, 1)
    assert [b["label"] for b in section["mttr_trend"]] == ["11-W1", "11-W2", "11-W3", "11-W4", "11-W5"]
    assert [b["resolved"] for b in section["mttr_trend"]] == [0, 2, 0, 0, 0]


def _document(tmp_path: Path, period_text: str = "2026-11") -> dict[str, Any]:
    return report.build(
        parse_period(period_text), NOV_NOW, tmp_path / "incidents", tmp_path / "reports", None, ["portal"]
    )


def test_the_report_shows_the_breached_deadline_as_breached_in_both_languages(tmp_path: Path) -> None:
    made = _incidents(tmp_path / "incidents")
    document = _document(tmp_path)
    for lang in ("zh", "en"):
        text = markdown(document, lang)
        line = next(line for line in text.splitlines() if made["l2_late"] in line)
        assert TEXT[lang]["breached"] in line
        page = to_html(document, lang)
        assert f'<span class="breached">{TEXT[lang]["breached"]}</span>' in page
    assert "L1: 1, L2: 2, L3: 0" in markdown(document, "en")


def test_an_empty_period_says_no_incidents_and_availability_unknown_never_a_number(tmp_path: Path) -> None:
    _incidents(tmp_path / "incidents")
    document = _document(tmp_path, "2026-09")
    assert document["incidents"]["count"] == 0 and document["incidents"]["items"] == []
    assert document["availability"]["sites"] == [] and "availability unknown" in document["availability"]["error"]
    assert document["backups"]["jobs"] == [] and document["backups"]["error"]
    zh, en = markdown(document, "zh"), markdown(document, "en")
    assert TEXT["zh"]["no_incidents"] in zh and "No incidents in the period." in en
    availability = zh.split("## 二")[0].split("## 一")[1].split("\n", 1)[1]  # the section below its heading
    assert "availability unknown" in availability and "%" not in availability
    for lang, text in (("zh", zh), ("en", en)):
        for key in ("availability", "incidents", "problems", "patches", "backups", "audit", "fault_drills"):
            assert f"## {TEXT[lang][key]}" in text
    assert "## 一、网站可用性" in zh and "## 1. Availability" in en
    assert to_html(document, "zh").startswith("<!DOCTYPE html>") and 'lang="zh-CN"' in to_html(document, "zh")


def _write(path: Path, body: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body), encoding="utf-8")


def test_recorded_reports_of_the_period_are_read_others_left_out(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    drill = {"summary": {"ok": True, "rto_s": 14.5, "rpo_s": 20.9, "checks_passed": 5, "checks_total": 5}}
    _write(reports / "drills" / "20261105T045517Z.json", drill)
    _write(reports / "drills" / "20261120T045517Z.json", {"summary": {**drill["summary"], "rto_s": 12.0}})
    _write(reports / "drills" / "20261201T045517Z.json", drill)  # December
    _write(reports / "drills" / "20261031T170000Z.json", drill)  # 1 November 01:00 in Beijing: November
    (reports / "drills" / "20261110T000000Z.json").write_text("{not json", encoding="utf-8")
    fault = {"runbook": "l1_defacement", "fault": "site_defaced", "ok": False, "outcome": "failed", "mttr_s": 55.8}
    _write(reports / "fault-drills" / "20261103T182427Z-l1_defacement-site_defaced.json", fault)
    patch = {"ok": True, "hosts": [{"host": "web1", "packages": [{"name": "nginx"}], "reboot": "not needed"}]}
    _write(reports / "patch" / "20261102T231446Z.json", patch)
    audit = {"hosts": [{"host": "web1", "lynis_index": 83, "ssh_failures": [], "errors": []}], "tls_problems": ["x"]}
    _write(reports / "audit" / "20261104T010101Z.json", audit)
    document = _document(tmp_path)
    drills = document["restore_drills"]
    assert [r["rto_s"] for r in drills["runs"]] == [14.5, 14.5, 12.0]
    assert drills["unreadable"] == ["20261110T000000Z.json: JSONDecodeError"]
    assert document["fault_drills"]["failed"] == 1 and document["fault_drills"]["runs"][0]["mttr_s"] == 55.8
    assert document["patches"]["runs"][0]["packages"] == 1
    assert document["audit"]["runs"][0]["lynis"] == {"web1": 83} and document["audit"]["runs"][0]["tls_problems"] == 1
    assert document["inspections"]["runs"] == []
    assert TEXT["en"]["no_inspections"] in markdown(document, "en")
    svg = charts(document, TEXT["zh"])[TEXT["zh"]["drills"]]
    assert _svg(svg).tag == "{http://www.w3.org/2000/svg}svg"


def _svg(text: str) -> ET.Element:
    """Parsed as XML: well-formed or an exception."""
    return ET.fromstring(text)  # noqa: S314 - the SVG this test just generated, not untrusted input


class RecordedPrometheus(Prometheus):
    """Prometheus' answers as recorded, keyed by the start of the query; nothing answers what is not listed."""

    def __init__(self, answers: dict[str, Any], dead: bool = False) -> None:
        super().__init__("http://mon1.lab.test:9090")
        self.answers, self.dead = answers, dead
        self.asked: list[str] = []

    def _answer(self, expr: str) -> Any:
        self.asked.append(expr)
        if self.dead:
            raise Unreachable("http://mon1.lab.test:9090/api/v1/query: [Errno 111] Connection refused")
        return next(answer for prefix, answer in self.answers.items() if expr.startswith(prefix))

    def query(self, expr: str, at: datetime | None = None) -> list[Sample]:
        return parse_vector(self._answer(expr))

    def query_range(self, expr: str, start: datetime, end: datetime, step_s: float) -> list[Series]:
        return parse_matrix(self._answer(expr))


def _vector(*rows: tuple[dict[str, str], float]) -> dict[str, Any]:
    result = [{"metric": m, "value": [1796000000, repr(v)]} for m, v in rows]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def _days_matrix(period_days: list[date], site: str, values: list[float]) -> dict[str, Any]:
    stamps = [datetime(d.year, d.month, d.day, 16, tzinfo=UTC).timestamp() for d in period_days]  # next Beijing 00:00
    series = {"metric": {"site": site}, "values": [[t, repr(v)] for t, v in zip(stamps, values, strict=True)]}
    return {"status": "success", "data": {"resultType": "matrix", "result": [series]}}


def test_availability_per_day_and_for_the_period_from_prometheus_with_the_95_line(tmp_path: Path) -> None:
    period = parse_period("2026-11")
    days = period.days()
    values = [1.0] * 30
    values[6] = 0.9  # 7 November under the line
    answers = {
        "avg by (site) (avg_over_time(portalops:probe_loaded:15s[1d]))": _days_matrix(days, "portal", values),
        report.quantile_expr(0.95, "1d"): _days_matrix(days, "portal", [0.5] * 30),
        "avg by (site)": _vector(({"site": "portal"}, 0.9966), ({"site": "news"}, 0.93)),
        "max by (site) (quantile_over_time(0.5,": _vector(({"site": "portal"}, 0.21)),
        "max by (site) (quantile_over_time(0.95,": _vector(({"site": "portal"}, 0.8)),
        "max by (site) (quantile_over_time(0.99,": _vector(({"site": "portal"}, 2.5)),
        "max by (site, phase)": _vector(
            ({"site": "portal", "phase": "transfer"}, 0.05), ({"site": "portal", "phase": "connect"}, 0.01)
        ),
        "min by (host, job)": _vector(
            ({"host": "db1", "job": "db-dump"}, 1.0), ({"host": "cms1", "job": "files"}, 0.0)
        ),
        "max by (host, job) (max_over_time(portalops_backup_job_last": _vector(
            ({"host": "db1", "job": "db-dump"}, 1795000000.0)
        ),
        "avg by (host, job)": _vector(
            ({"host": "db1", "job": "db-dump"}, 1.0), ({"host": "cms1", "job": "files"}, 0.75)
        ),
        "max by (host, job) (max_over_time(portalops_backup_job_bytes": _vector(
            ({"host": "db1", "job": "db-dump"}, 199544.0)
        ),
    }
    prometheus = RecordedPrometheus(answers)
    section = report.gather_availability(prometheus, period, NOV_NOW, ["portal"])
    assert f"[{30 * 86400}s]" in prometheus.asked[0]  # the whole period, once it is over
    portal, news = section["sites"]
    assert (portal["site"], portal["ratio"], news["site"], news["ratio"]) == ("portal", 0.9966, "news", 0.93)
    assert round(portal["margin"], 4) == 0.0466 and round(news["margin"], 4) == -0.02
    assert len(portal["days"]) == 30 and portal["days"][0] == {"day": "2026-11-01", "ratio": 1.0, "p95_s": 0.5}
    assert portal["days_under"] == ["2026-11-07"]
    assert all(d["ratio"] is None for d in news["days"])  # no daily series: unknown, not up
    assert (portal["p50_s"], portal["p95_s"], portal["p99_s"]) == (0.21, 0.8, 2.5)
    assert portal["phases_p95_s"] == {"transfer": 0.05, "connect": 0.01} and news["phases_p95_s"] == {}
    backups = report.gather_backups(prometheus, period, NOV_NOW)
    assert [(j["host"], j["all_ok"]) for j in backups["jobs"]] == [("cms1", False), ("db1", True)]
    assert backups["failing"] == 1 and backups["jobs"][0]["last_success"] is None
    assert (backups["jobs"][0]["ok_share"], backups["jobs"][1]["max_bytes_added"]) == (0.75, 199544.0)
    document = {**_document(tmp_path), "availability": section, "backups": backups}
    text = markdown(document, "zh")
    assert "| portal | 99.66 % | +4.66 pp | 1 | 0.21 | 0.8 | 2.5 |" in text
    assert "| news | 93.00 % | -2.00 pp | 未知 |" in text  # no day known: not "0 days under the line"
    assert (
        "| cms1: files | 否 | 75.00 % | 未知 | - |" in text and "| db1: db-dump | 是 | 100.00 % | 194.9 KiB |" in text
    )
    assert "| 站点 | connect | transfer |" in text and "| portal | 0.01 | 0.05 |" in text
    page = to_html(document, "zh")
    svgs = re.findall(r"<svg.*?</svg>", page, flags=re.S)
    assert svgs
    for svg in svgs:
        root = _svg(svg)
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
    chart = _svg(svgs[0])
    assert any(e.tag.endswith("line") and e.get("stroke-dasharray") for e in chart.iter())  # the 95 % line
    assert any((e.text or "") == "95%" for e in chart.iter())


def test_a_month_under_way_ends_with_today_so_far_and_days_ahead_are_not_listed() -> None:
    period = parse_period("2026-12")
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)  # 20:00 on 3 December in Beijing
    answers = {
        "avg by (site) (avg_over_time(portalops:probe_loaded:15s[1d]))": _days_matrix(
            period.days()[:2], "portal", [1.0, 0.99]
        ),
        report.quantile_expr(0.95, "1d"): _days_matrix(period.days()[:2], "portal", [0.4, 0.6]),
        "avg by (site)": _vector(({"site": "portal"}, 0.98)),
        "max by (site)": _vector(),
        "max by (site, phase)": _vector(),
    }
    prometheus = RecordedPrometheus(answers)
    section = report.gather_availability(prometheus, period, now, ["portal"])
    assert section["days"] == ["2026-12-01", "2026-12-02", "2026-12-03"]
    assert [d["ratio"] for d in section["sites"][0]["days"]] == [1.0, 0.99, 0.98]  # today: the last query, so far
    assert f"[{20 * 3600}s]" in prometheus.asked[-1]
    assert section["sites"][0]["p95_s"] is None
    assert [d["p95_s"] for d in section["sites"][0]["days"]] == [0.4, 0.6, None]  # today: no p95 answered yet


def test_prometheus_not_answering_says_so_and_shows_no_figure(tmp_path: Path) -> None:
    period = parse_period("2026-11")
    section = report.gather_availability(RecordedPrometheus({}, dead=True), period, NOV_NOW, ["portal"])
    assert section["sites"] == [] and section["error"].startswith("Prometheus did not answer")
    assert section["error"].endswith("availability unknown")
    document = {**_document(tmp_path), "availability": section}
    assert "Prometheus did not answer" in markdown(document, "en")
    assert TEXT["en"]["availability"] not in charts(document, TEXT["en"])


def test_the_command_writes_json_markdown_and_html_named_for_the_period(tmp_path: Path) -> None:
    _incidents(tmp_path / "incidents")
    out, err = io.StringIO(), io.StringIO()
    argv = ["report", "--period", "2026-11", "--lang", "en", "--prometheus", "http://127.0.0.1:9"]
    argv += ["--incidents", str(tmp_path / "incidents"), "--reports", str(tmp_path / "reports")]
    argv += ["--out", str(tmp_path / "service"), "--timeout", "1"]
    assert main(argv, out, err) == 0
    written = sorted(p.name for p in (tmp_path / "service").iterdir())
    assert written == ["2026-11.html", "2026-11.json", "2026-11.md", "2026-11.pdf"]
    document = json.loads((tmp_path / "service" / "2026-11.json").read_text(encoding="utf-8"))
    assert document["incidents"]["by_level"] == {"L1": 1, "L2": 2, "L3": 0} and document["lang"] == "en"
    assert "availability unknown" in err.getvalue()
    assert (
        (tmp_path / "service" / "2026-11.md")
        .read_text(encoding="utf-8")
        .startswith("# County portal operations service report 2026-11")
    )


def test_the_pdf_is_the_html_printed_by_weasyprint_with_the_chinese_title(tmp_path: Path) -> None:
    _incidents(tmp_path / "incidents")
    html_path, pdf_path = tmp_path / "2026-11.html", tmp_path / "2026-11.pdf"
    html_path.write_text(to_html(_document(tmp_path), "zh"), encoding="utf-8")
    assert write_pdf(html_path, pdf_path) == "", "scripts/setup-system installs Debian's weasyprint"
    data = pdf_path.read_bytes()
    assert data.startswith(b"%PDF-")
    title = ("\ufeff" + TEXT["zh"]["title"]).encode("utf-16-be").hex()  # the document title: <title> of the page
    assert title.encode() in data.lower()
    assert not list(tmp_path.glob(".*.tmp"))


def test_without_weasyprint_no_pdf_and_it_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    html_path = tmp_path / "r.html"
    html_path.write_text("<html></html>", encoding="utf-8")
    assert write_pdf(html_path, tmp_path / "r.pdf").startswith("no PDF: weasyprint is not installed")
    assert not (tmp_path / "r.pdf").exists()


def test_the_changes_of_the_period_are_listed_failed_counted_others_left_out(tmp_path: Path) -> None:
    root = tmp_path / "incidents"
    web = [{"host": "web1", "ok": 3, "changed": 1, "failed": 0, "unreachable": 0}]
    at = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)
    site = changes.record(
        root, changes.Kind.PLAYBOOK, "site.yml", at, at, changes.Result.OK, web, by="ops", playbook="site.yml"
    )
    act = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
    db = [{"host": "db1", "result": "failed"}]
    acted = changes.record(
        root, changes.Kind.RUNBOOK, "restore_database", act, act, changes.Result.FAILED, db,
        by="portalops-responder", incident="INC-1", runbook="l1_database_lost", step="restore_database",
    )  # fmt: skip
    october = datetime(2026, 10, 31, 15, 0, tzinfo=UTC)  # 23:00 in Beijing: October, outside the period
    changes.record(root, changes.Kind.RESTORE, "drill", october, october, changes.Result.OK, [], by="cron")
    section = _document(tmp_path)["changes"]
    assert [item["id"] for item in section["items"]] == [site.id, acted.id]
    assert section["by_kind"] == {"playbook": 1, "runbook": 1, "restore": 0} and section["failed"] == 1
    assert section["items"][1]["hosts"] == ["db1"] and section["items"][1]["incident"] == "INC-1"
    for lang in ("zh", "en"):
        text = markdown(_document(tmp_path), lang)
        assert f"## {TEXT[lang]['changes']}" in text
        line = next(line for line in text.splitlines() if acted.id in line)
        assert "db1" in line and TEXT[lang]["fail"] in line
    assert TEXT["en"]["no_changes"] in markdown(_document(tmp_path, "2026-09"), "en")


def test_log_retention_per_host_is_the_evidence_prometheus_holds_at_the_periods_end(tmp_path: Path) -> None:
    period = parse_period("2026-11")
    end = datetime(2026, 11, 30, 16, 0, tzinfo=UTC)  # 1 December 00:00 in Beijing
    journal, nginx = end - timedelta(days=200), end - timedelta(days=181, hours=12)
    answers = {
        "portalops_log_oldest_timestamp_seconds": _vector(
            ({"instance": "web1", "log": "journal"}, journal.timestamp()),
            ({"instance": "web1", "log": "nginx"}, nginx.timestamp()),
            ({"instance": "db1", "log": "journal"}, (end - timedelta(days=3)).timestamp()),
        ),
        "portalops_log_retention_days": _vector(({"instance": "web1"}, 180.0)),
    }
    prometheus = RecordedPrometheus(answers)
    section = report.gather_logs(prometheus, period, NOV_NOW)
    assert prometheus.asked == ["portalops_log_oldest_timestamp_seconds", "portalops_log_retention_days"]
    db1, web1 = section["hosts"]
    assert (web1["host"], web1["retention_days"], web1["oldest"]["log"]) == ("web1", 180, "journal")
    assert web1["oldest"]["days_kept"] == 200.0 and web1["logs"][1] == {
        "log": "nginx",
        "since": stamp(nginx),
        "days_kept": 181.5,
    }
    assert (db1["retention_days"], db1["oldest"]["days_kept"]) == (None, 3.0)  # no promise known: unknown
    text = markdown({**_document(tmp_path), "logs": section}, "en")
    assert f"## {TEXT['en']['logs']}" in text
    assert "| web1 | 180 | 2026-05-15 | journal: 2026-05-15 | 200 |" in text, text
    assert "| db1 | unknown | 2026-11-28 | journal: 2026-11-28 | 3 |" in text
    silent = report.gather_logs(RecordedPrometheus({"portalops_log": _vector()}), period, NOV_NOW)
    assert silent["hosts"] == [] and "no log retention evidence" in silent["error"]
    dead = report.gather_logs(RecordedPrometheus({}, dead=True), period, NOV_NOW)
    assert dead["error"].startswith("Prometheus did not answer") and dead["error"].endswith("log retention unknown")


def _p95_chart(document: dict[str, Any], lang: str) -> ET.Element | None:
    svg = charts(document, TEXT[lang]).get(TEXT[lang]["p95_days"])
    return None if svg is None else _svg(svg)


@pytest.mark.parametrize(("slowest", "line"), [(16.0, True), (0.9, False)])
def test_the_daily_p95_chart_has_a_point_per_day_from_prometheus_range_query(
    tmp_path: Path, slowest: float, line: bool
) -> None:
    period = parse_period("2026-11")
    values = [0.3 + n / 100 for n in range(30)]
    values[9] = slowest  # 10 November
    world = monitoring_servers.Monitoring()
    world.queries[report.quantile_expr(0.95, "1d")] = _days_matrix(period.days(), "portal", values)
    with monitoring_servers.serve(world) as url:
        document = report.build(period, NOV_NOW, tmp_path / "incidents", tmp_path / "reports", Prometheus(url))
    ranges = [a for a in world.asked if a.startswith("/api/v1/query_range?") and "probe_duration_seconds" in a]
    assert len(ranges) == 1 and "step=86400" in ranges[0]  # one range query stepping a day, over HTTP
    portal = document["availability"]["sites"][0]
    assert [d["p95_s"] for d in portal["days"]] == values
    assert portal["days_p95_over_limit"] == (["2026-11-10"] if line else [])
    for lang in ("zh", "en"):
        chart = _p95_chart(document, lang)
        assert chart is not None
        assert sum(1 for e in chart.iter() if e.tag.endswith("circle")) == 30
        assert any(e.tag.endswith("polyline") for e in chart.iter())
        dashed = any(e.tag.endswith("line") and e.get("stroke-dasharray") for e in chart.iter())
        title = next(e.text for e in chart.iter() if e.tag.endswith("title"))
        assert dashed is line and (TEXT[lang]["off_scale"] in str(title)) is not line  # the 15 s line, or why not
        assert f"## {TEXT[lang]['p95_days']}" in markdown(document, lang)
    assert f"| portal | 2026-11-10 | {slowest:g} | {1 if line else 0} |" in markdown(document, "en")
    assert "<figure><svg" in to_html(document, "zh").split(TEXT["zh"]["p95_days"], 1)[1]


def test_without_prometheus_the_daily_p95_chart_is_left_out_and_the_section_says_why(tmp_path: Path) -> None:
    period = parse_period("2026-11")
    dead = report.build(
        period, NOV_NOW, tmp_path / "i", tmp_path / "r", Prometheus(monitoring_servers.dead_url(), 1.0), ["portal"]
    )
    for document in (_document(tmp_path), dead):
        assert document["availability"]["sites"] == []
        for lang in ("zh", "en"):
            assert _p95_chart(document, lang) is None
            section = markdown(document, lang).split(f"## {TEXT[lang]['p95_days']}", 1)[1].split("## ", 1)[0]
            assert "availability unknown" in section and "|" not in section  # a reason, no table
            assert TEXT[lang]["p95_days"] in to_html(document, lang)
    assert "Prometheus did not answer" in dead["availability"]["error"]


def _snapshots(directory: Path, *dates: str) -> dict[str, dict[str, Any]]:
    """CMDB snapshots as ``portalops cmdb`` writes them: the lab of test_cmdb on the first date, a week on after."""
    first = build.build(lab_inventory(), recorded(), WHEN, roles.site_plays(run.SITE))
    written = {}
    for n, day in enumerate(dates):
        doc = {**(first if n == 0 else later(first)), "date": day, "generated": f"{day}T01:00:00Z"}
        run.write_snapshot(doc, directory)
        written[day] = doc
    return written


def test_the_configuration_changes_are_the_diff_of_the_snapshots_around_the_period(tmp_path: Path) -> None:
    _snapshots(tmp_path / "reports" / "cmdb", "2026-10-31", "2026-10-20", "2026-11-15", "2026-11-28", "2026-12-02")
    document = _document(tmp_path)
    section = document["configuration"]
    assert (section["from"], section["to"], section["error"]) == ("2026-10-31", "2026-11-28", "")
    assert section["diff"]["hosts_added"] == ["mon1"]
    web1 = section["diff"]["hosts"]["web1"]
    assert web1["versions_changed"] == {"nginx": ["1.22.1-9+deb12u2", "1.22.1-9+deb12u3"]}
    assert json.loads(json.dumps(document))["configuration"]["to"] == "2026-11-28"  # in the JSON as it is written
    for lang in ("zh", "en"):
        t = TEXT[lang]
        text = markdown(document, lang)
        assert f"## {t['configuration']}" in text and f"{t['compared']}: 2026-10-31 → 2026-11-28" in text
        assert f"| - | {t['hosts_added']} | mon1 |" in text
        assert f"| web1 | {t['versions_changed']} | nginx: 1.22.1-9+deb12u2 → 1.22.1-9+deb12u3 |" in text
        assert f"| web1 | {t['ports_closed']} | tcp 127.0.0.1:9113 (prometheus-ngin) |" in text
        assert f"| web1 | {t['certificates_renewed']} | /etc/nginx/tls/portal.crt: 2029-03-07" in text
        assert f"{t['not_answering']}: backup1" in text
        assert "<td>nginx: 1.22.1-9+deb12u2 → 1.22.1-9+deb12u3</td>" in to_html(document, lang)


@pytest.mark.parametrize(
    ("dates", "compared"),
    [
        ((), (None, None)),
        (("2026-10-31",), ("2026-10-31", None)),
        (("2026-11-30",), ("2026-11-30", None)),
        (("2026-12-02", "2026-12-05"), (None, None)),  # after the period: nothing of it
    ],
)
def test_fewer_than_two_snapshots_say_so_and_name_the_command(
    tmp_path: Path, dates: tuple[str, ...], compared: tuple[str | None, None]
) -> None:
    _snapshots(tmp_path / "reports" / "cmdb", *dates)
    section = _document(tmp_path)["configuration"]
    assert (section["from"], section["to"], section["diff"]) == (*compared, None)
    assert "`portalops cmdb` takes one" in section["error"]
    for lang in ("zh", "en"):
        text = markdown(_document(tmp_path), lang)
        assert f"## {TEXT[lang]['configuration']}\n\n{TEXT[lang]['no_snapshots']}" in text
        assert "portalops cmdb" in TEXT[lang]["no_snapshots"]


def test_two_snapshots_within_the_period_are_compared_when_none_is_before_it(tmp_path: Path) -> None:
    _snapshots(tmp_path / "reports" / "cmdb", "2026-11-03", "2026-11-20")
    section = _document(tmp_path)["configuration"]
    assert (section["from"], section["to"], section["diff"]["changed"]) == ("2026-11-03", "2026-11-20", True)
    (tmp_path / "reports" / "cmdb" / "2026-11-20.json").write_text("[]", encoding="utf-8")
    broken = _document(tmp_path)["configuration"]
    assert broken["diff"] is None and "is not a CMDB snapshot" in broken["error"]
    assert broken["error"] in markdown(_document(tmp_path), "en")
