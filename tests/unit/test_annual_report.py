"""The annual 政府网站工作年度报表: visits from recorded nginx log lines, published items per section class,
the security figures from records and reports, and the form's blanks for staff."""

# ruff: noqa: RUF001 - Chinese text keeps its own full-width punctuation on purpose
from __future__ import annotations

import gzip
import io
import json
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from portalops.cli import main
from portalops.inventory import REPO_ROOT
from portalops.runbook.hosts import CommandResult, Host, LocalHost
from portalops.runbook.plandoc import security_officer
from portalops.runbook.workcal import TZ
from portalops.service import annual, problems
from portalops.service.annual_render import TITLE, markdown, to_html
from portalops.service.period import parse_period
from portalops_host import visits
from tests.unit.hostscripts import on_this_machine
from tests.unit.test_dependencies import imports
from tests.unit.test_service_report import RecordedPrometheus, _vector

DATA = Path(__file__).parent / "data" / "nginx" / "access_portal.log"
YEAR = parse_period("2026")
NOW = datetime(2026, 12, 5, 4, 0, tzinfo=UTC)  # 2026-12-05 12:00 in Beijing
DOMAINS = {"portal.lab.test": "portal", "www.portal.lab.test": "portal", "news.lab.test": "news"}
# What the recorded lines hold for 2026 (Beijing days), line by line in the data file's comments above.
EXPECTED: dict[str, Any] = {
    "first": "2026-01-01T00:00:00+08:00",
    "last": "2026-12-04T16:30:00+00:00",
    "days": {"2026-01-01": 1, "2026-12-02": 1, "2026-12-04": 15, "2026-12-05": 1},
    "sites": {
        "news": {"2026-12-04": {"views": 1, "visitors": 1}},
        "portal": {
            "2026-01-01": {"views": 1, "visitors": 1},
            "2026-12-04": {"views": 4, "visitors": 2},
            "2026-12-05": {"views": 1, "visitors": 1},
        },
    },
    "unparsed": 1,
    "unattributed": 2,
}
# The fields only people know: every one of them a marked blank, whatever the sources say.
STAFF = {
    "sponsor", "site_type", "site_code", "icp", "police",
    "columns_kept", "columns_new",
    "interpretations", "interpretation_materials", "interpretation_products", "media_articles", "responses",
    "service_catalogue", "registered_users", "services", "online_services", "cases", "cases_people",
    "cases_entities",
    "unified_platform", "messages", "messages_done", "messages_days", "messages_public", "surveys",
    "survey_opinions", "survey_results", "interviews", "interview_questions", "interview_answers", "smart_qa",
    "owner",
    "has_mobile", "weibo", "wechat", "mobile_other",
    "search_service", "multilingual", "accessibility", "personalised", "innovation_other",
    "head", "reviewer", "filler", "phone", "filled_on",
}  # fmt: skip


def lines() -> list[str]:
    return DATA.read_text(encoding="utf-8").splitlines(keepends=True)


def test_visits_are_page_views_of_browsers_per_site_and_beijing_day() -> None:
    assert visits.aggregate(lines(), YEAR.start, YEAR.end, DOMAINS) == EXPECTED


@pytest.mark.parametrize(
    ("line", "visit"),
    [(n, n in (0, 2, 3, 4, 12, 13, 15, 16, 17, 18, 19)) for n in range(20)],
)
def test_each_recorded_line_is_a_visit_or_not(line: int, visit: bool) -> None:
    entry = visits.parse(lines()[line])
    assert entry is not None
    assert visits.is_visit(entry) is visit


def test_the_parser_reads_escaped_quotes_and_the_host_field_and_refuses_other_formats() -> None:
    entry = visits.parse(lines()[4])
    assert entry is not None
    assert entry["agent"].endswith("\\x22quoted\\x22") and entry["host"] == "portal.lab.test"
    assert entry["target"] == "/?p=12" and entry["method"] == "GET"
    assert visits.parse(lines()[-1]) is None


def test_the_beijing_day_bounds_are_the_information_centres() -> None:
    assert visits.BEIJING.utcoffset(None) == datetime(2026, 6, 1, tzinfo=TZ).utcoffset()


def rotated(directory: Path) -> str:
    """The recorded lines split as logrotate leaves them: the live file and a compressed rotation."""
    log = directory / "access.log"
    old, new = lines()[:10], lines()[10:]
    with gzip.open(directory / "access.log-20261204-000000.gz", "wt", encoding="utf-8") as packed:
        packed.writelines(old)
    log.write_text("".join(new), encoding="utf-8")
    (directory / "access.log.bak-unrelated").write_text("", encoding="utf-8")
    (directory / "access.logger").write_text(lines()[0], encoding="utf-8")  # another log, not a rotation
    return str(log)


class HereHost(LocalHost):
    """This machine as a web host: the form's ``portalops-host`` command run from this checkout."""

    def run(self, command: str, timeout: float) -> CommandResult:
        return super().run(on_this_machine(command), timeout)


def test_the_host_side_run_reads_the_rotations_and_answers_the_same_json(tmp_path: Path) -> None:
    """The command the form sends to each web host, run here by bash: the same figures from the same lines."""
    log = rotated(tmp_path)
    hosts: dict[str, Host] = {"web1": HereHost(tmp_path)}
    merged, errors = annual.gather_visits(hosts, {"web1": log}, YEAR, DOMAINS)
    assert errors == []
    assert merged["days"] == EXPECTED["days"] and merged["sites"] == EXPECTED["sites"]
    assert sorted(Path(f).name for f in merged["hosts"]["web1"]["files"]) == [
        "access.log",
        "access.log-20261204-000000.gz",
        "access.log.bak-unrelated",
    ]


def test_a_host_that_cannot_read_its_log_is_named_and_no_visit_is_made_up(tmp_path: Path) -> None:
    merged, errors = annual.gather_visits(
        {"web1": HereHost(tmp_path)}, {"web1": str(tmp_path / "nothing" / "access.log")}, YEAR, DOMAINS
    )
    assert errors == [] and merged["days"] == {}  # no file: no line, and the coverage says none
    log = tmp_path / "access.log"
    log.write_text(lines()[0], encoding="utf-8")
    (tmp_path / "access.log-20261204-000000.gz").write_bytes(b"not gzip")  # a damaged rotation
    merged, errors = annual.gather_visits({"web1": HereHost(tmp_path)}, {"web1": str(log)}, YEAR, DOMAINS)
    assert len(errors) == 1 and errors[0].startswith(f"web1: reading {log}: exit 1:"), errors
    assert "gzip" in errors[0].lower() and merged["sites"] == {}


def test_two_edge_hosts_add_up() -> None:
    one = visits.aggregate(lines(), YEAR.start, YEAR.end, DOMAINS)
    merged = annual.merge_visits({"web1": one, "web2": one})
    assert merged["days"]["2026-12-04"] == 30
    assert merged["sites"]["portal"]["2026-12-04"] == {"views": 8, "visitors": 4}


def test_the_coverage_says_which_days_of_the_year_the_logs_hold() -> None:
    cover = annual.coverage(YEAR, NOW, EXPECTED["days"])
    assert cover["days_in_period"] == 365 and cover["days_so_far"] == 339  # up to 2026-12-05, Beijing
    assert cover["days_covered"] == 4
    assert cover["covered"] == ["2026-01-01", "2026-12-02", "2026-12-04 – 2026-12-05"]
    assert cover["missing"] == ["2026-01-02 – 2026-12-01", "2026-12-03"]
    assert (cover["first_day"], cover["last_day"]) == ("2026-01-01", "2026-12-05")


CATEGORIES = [
    {"id": 1, "name": "Uncategorized", "slug": "uncategorized", "parent": 0},
    {"id": 2, "name": "政务动态", "slug": "%e6%94%bf%e5%8a%a1", "parent": 0},
    {"id": 3, "name": "通知公告", "slug": "notices", "parent": 0},
    {"id": 4, "name": "机构概况", "slug": "about", "parent": 0},
    {"id": 5, "name": "Links", "slug": "links", "parent": 0},
]
POSTS = [
    {"id": 10, "date_gmt": "2025-12-31T15:59:59", "categories": [2]},  # 2025 in Beijing
    {"id": 11, "date_gmt": "2025-12-31T16:00:00", "categories": [2]},  # 2026-01-01 00:00 in Beijing
    {"id": 12, "date_gmt": "2026-06-01T08:00:00", "categories": [2, 3]},
    {"id": 13, "date_gmt": "2026-07-01T08:00:00", "categories": [3]},
    {"id": 14, "date_gmt": "2026-08-01T08:00:00", "categories": [4, 1]},
    {"id": 15, "date_gmt": "2026-09-01T08:00:00", "categories": [5]},
    {"id": 16, "date_gmt": "2026-12-31T16:00:00", "categories": [3]},  # 2027 in Beijing
]


def test_items_published_are_counted_per_section_and_per_class_each_post_once() -> None:
    found = annual.publishing(CATEGORIES, POSTS, YEAR, [{"slug": "links", "class": "exempt"}])
    assert found["total"] == 5
    assert found["categories"][1]["slug"] == "政务"
    per = {c["name"]: (c["class"], c["posts"]) for c in found["categories"]}
    assert per == {
        "Uncategorized": ("static", 1),
        "政务动态": ("dynamic", 2),
        "通知公告": ("notice", 2),
        "机构概况": ("static", 1),
        "Links": ("exempt", 1),
    }
    # post 14 is in two static sections and counts once; post 12 counts in dynamic and in notice
    assert found["by_class"] == {"dynamic": 2, "notice": 2, "static": 1, "exempt": 1}


def report_file(directory: Path, when: datetime, body: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{when:%Y%m%dT%H%M%SZ}.json").write_text(json.dumps(body), encoding="utf-8")


def records(tmp_path: Path) -> tuple[Path, Path]:
    """Reports of 2025 and 2026 under reports/, and problems opened and resolved in and out of 2026."""
    reports, incidents = tmp_path / "reports", tmp_path / "incidents"
    in_year, before = datetime(2026, 3, 2, 2, 0, tzinfo=UTC), datetime(2025, 12, 1, 2, 0, tzinfo=UTC)
    for sub in ("audit", "inspect", "drills"):
        report_file(reports / sub, in_year, {"hosts": []})
        report_file(reports / sub, before, {"hosts": []})
    report_file(reports / "audit", in_year + timedelta(days=30), {"hosts": []})
    report_file(reports / "fault-drills", in_year + timedelta(days=60), {"ok": True})
    (reports / "drills" / "20260401T000000Z.json").write_text("{", encoding="utf-8")
    old = problems.open_problem(incidents, "old disk", "duty", before)
    problems.update(incidents, old.id, "duty", in_year, status="resolved", texts={"root_cause": "x", "fix": "y"})
    new = problems.open_problem(incidents, "slow pages", "duty", in_year)
    problems.open_problem(incidents, "still open", "duty", in_year)
    problems.update(incidents, new.id, "duty", NOW, status="resolved", texts={"root_cause": "x", "fix": "y"})
    return reports, incidents


def test_security_counts_checks_problems_and_drills_of_the_year(tmp_path: Path) -> None:
    reports, incidents = records(tmp_path)
    found = annual.security(YEAR, reports, incidents)
    assert found["checks"] == 4  # audits 2, inspections 1, restore drills 1 (2025's not, the broken one said)
    assert [len(found["runs"][n]) for n in ("audit", "inspections", "restore_drills", "fault_drills")] == [2, 1, 1, 1]
    assert found["drills"] == ["2026-03-02T02:00:00.000Z", "2026-05-01T02:00:00.000Z"]
    assert found["problems_found"] == ["PRB-2026-001", "PRB-2026-002"]
    assert found["problems_fixed"] == ["PRB-2025-001", "PRB-2026-001"]
    assert found["unreadable"] == ["reports/drills/20260401T000000Z.json: JSONDecodeError"]


SITE: dict[str, Any] = {
    "name": "portal",
    "title": "某县人民政府门户网站",
    "url": "https://portal.lab.test/",
    "domains": [],
}


def sources(tmp_path: Path, visit_errors: list[str] | None = None) -> annual.Sources:
    reports, incidents = records(tmp_path)
    merged = annual.merge_visits({"web1": visits.aggregate(lines(), YEAR.start, YEAR.end, DOMAINS)})
    return annual.Sources(
        publishing=lambda site: annual.publishing(CATEGORIES, POSTS, YEAR),
        visits=lambda: (merged, visit_errors or []),
        prometheus=None,
        reports_dir=reports,
        incidents_dir=incidents,
    )


def fields(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["id"]: f for s in document["sites"][0]["sections"] for f in s["fields"]}


def test_the_form_fills_what_the_sources_know_and_leaves_the_rest_blank_for_staff(tmp_path: Path) -> None:
    document = annual.build(YEAR, NOW, [SITE], sources(tmp_path))
    sections = document["sites"][0]["sections"]
    assert [s["zh"] for s in sections] == [
        "基本信息", "信息发布", "专栏专题", "解读回应", "办事服务", "互动交流", "安全防护", "移动新媒体", "创新发展",
        "填报信息",
    ]  # fmt: skip
    found = fields(document)
    blanks = {k for k, f in found.items() if not f["filled"]}
    # monitoring: no Prometheus here, so not known either; it is never a guess
    assert blanks == STAFF | {"monitoring"}
    for field in found.values():
        assert (field["value"] == annual.BLANK) is (not field["filled"]), field
        assert bool(field["source"]) is field["filled"], field
    shown = {k: f["value"] for k, f in found.items() if f["filled"]}
    assert shown["views"] == "6" and shown["visitors"] == "4"
    assert "4/339" in found["views"]["source"] and "2026-12-04 – 2026-12-05" in found["views"]["source"]
    assert (shown["posts_total"], shown["posts_dynamic"], shown["posts_notice"], shown["posts_static"]) == (
        "5",
        "2",
        "2",
        "2",
    )
    assert (shown["checks"], shown["problems_found"], shown["problems_fixed"]) == ("4", "2", "2")
    assert shown["drills"] == "是 yes（2 次 times: 2026-03-02, 2026-05-01）"
    assert document["monitoring"]["error"].startswith("no Prometheus known")


def test_without_the_logs_visits_are_left_blank_and_the_reason_is_kept(tmp_path: Path) -> None:
    document = annual.build(YEAR, NOW, [SITE], sources(tmp_path, ["web1: reading /x: unreachable"]))
    found = fields(document)
    assert not found["views"]["filled"] and not found["visitors"]["filled"]
    assert document["logs"]["errors"] == ["web1: reading /x: unreachable"]
    assert "web1: reading /x: unreachable" in markdown(document, document["sites"][0])


def test_markdown_and_html_show_every_blank_marked_and_the_chinese_title_first(tmp_path: Path) -> None:
    document = annual.build(YEAR, NOW, [SITE], sources(tmp_path))
    form = document["sites"][0]
    text = markdown(document, form)
    assert text.startswith(f"# {TITLE}（2026年度）\n")
    rows = [line for line in text.splitlines() if line.startswith("| ") and annual.BLANK in line]
    assert len(rows) == len(STAFF) + 1
    assert "| 网站总访问量 / Total visits | 6 | 次 / visits |" in text
    page = to_html(document, form)
    assert page.count(f'<span class="blank">{annual.BLANK}</span>') == len(STAFF) + 2  # + the note on top
    assert f"<title>{TITLE}（2026年度）</title>" in page


OFFICER = {"role_zh": "安全负责人", "role_en": "Security officer", "who": "网络安全责任人", "phone": "+86 5"}
HEAD = {"role_zh": "主管领导", "role_en": "Head of the portal", "who": "主管单位", "phone": "+86 6"}


def test_the_security_owner_is_the_inventorys_security_officer_or_a_marked_blank(tmp_path: Path) -> None:
    named = replace(sources(tmp_path), contacts=[HEAD, OFFICER])
    document = annual.build(YEAR, NOW, [SITE], named)
    owner = fields(document)["owner"]
    assert owner["filled"] and owner["value"] == "是 yes（安全负责人 / Security officer: 网络安全责任人, +86 5）"
    assert "portalops_contacts" in owner["source"]
    assert (
        "| 是否明确网站安全责任人 / Person responsible for the site's security named | 是 yes（安全负责人"
        in markdown(document, document["sites"][0])
    )

    document = annual.build(YEAR, NOW, [SITE], replace(named, contacts=[HEAD]))
    owner = fields(document)["owner"]
    assert not owner["filled"] and owner["value"] == annual.BLANK and owner["source"] == ""
    assert owner["why"] == "清单 portalops_contacts 中无安全负责人 / no security officer in portalops_contacts"
    row = f"| 是否明确网站安全责任人 / Person responsible for the site's security named | {annual.BLANK} |  | 清单"
    assert row in markdown(document, document["sites"][0])


def test_the_form_reads_the_security_officer_from_the_inventory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(annual, "build", lambda _period, _now, _sites, sources: {"contacts": sources.contacts})
    read = annual.from_inventory(str(REPO_ROOT / "inventory/lab"), YEAR, NOW, Path("reports"), Path("incidents"))
    officer = security_officer(read["contacts"])
    assert officer is not None and officer["role_en"] == "Security officer" and officer["phone"]


def test_the_command_refuses_anything_but_a_year_and_both_periods_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = main(["report", "--annual", "2026-Q1", "--form", "gov-website", "--out", str(tmp_path / "out")], out, err)
    assert code == 2 and "wanted a year" in err.getvalue() and not (tmp_path / "out").exists()
    with pytest.raises(SystemExit):
        main(["report", "--annual", "2026", "--period", "2026-11"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_the_module_sent_to_the_web_hosts_needs_nothing_but_the_standard_library() -> None:
    assert set(imports([Path(visits.__file__)])) <= {*sys.stdlib_module_names, "__future__"}


def test_monitoring_says_on_which_days_and_from_when_to_when_prometheus_probed_each_site() -> None:
    days = [t.timestamp() for t in (datetime(2026, 11, 30, 4, tzinfo=UTC), datetime(2026, 12, 1, 4, tzinfo=UTC))]
    matrix = {"metric": {"site": "portal"}, "values": [[days[0], "0"], [days[1], "5760"]]}
    quiet = {"metric": {"site": "news"}, "values": [[days[0], "0"], [days[1], "0"]]}
    first, last = datetime(2026, 11, 30, 9, 31, tzinfo=UTC), datetime(2026, 12, 1, 3, 59, tzinfo=UTC)
    prometheus = RecordedPrometheus(
        {
            "sum by (site) (count_over_time(probe_success": {
                "status": "success",
                "data": {"resultType": "matrix", "result": [matrix, quiet]},
            },
            "min(min_over_time(timestamp(probe_success": _vector(({}, first.timestamp())),
            "max(max_over_time(timestamp(probe_success": _vector(({}, last.timestamp())),
        }
    )
    found = annual.gather_monitoring(prometheus, YEAR, NOW)
    assert found == {
        "error": "",
        "prometheus": "http://mon1.lab.test:9090",
        "sites": {"portal": {"days": 1, "first": "2026-11-30T09:31:00.000Z", "last": "2026-12-01T03:59:00.000Z"}},
    }
    assert 'site="portal"' in prometheus.asked[1]
    dead = annual.gather_monitoring(RecordedPrometheus({}, dead=True), YEAR, NOW)
    assert dead["error"].startswith("Prometheus did not answer") and dead["sites"] == {}
    filled = annual.fill(
        SITE,
        {"error": "x"},
        None,
        annual.coverage(YEAR, NOW, {}),
        annual.security(YEAR, Path("/nonexistent"), Path("/nonexistent")),
        found,
    )
    assert filled["monitoring"]["value"] == "是 yes（2026-11-30 – 2026-12-01, 1 天 days）"
    assert "posts_total" not in filled and "views" not in filled
