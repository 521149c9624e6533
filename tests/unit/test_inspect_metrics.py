"""The inspection's textfile metrics: what the alert rules read, written whole or not at all."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from portalops.inspect import metrics, veto
from portalops.inspect.site import SiteReport
from portalops.runbook.hosts import LocalHost

NOW = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)


def report() -> SiteReport:
    sensitive = veto.Item("sensitive_content", "敏感", "Sensitive", True, veto.FAIL, "1 found", ["https://p/?p=7: 词"])
    sections = veto.Item(
        "sections_not_updated", "栏目", "Sections", True, veto.AT_RISK, "", ["blank page: https://p/x"]
    )
    unknown = veto.Item("site_unreachable", "不能访问", "Unreachable", True, veto.UNKNOWN, "silent")
    found = SiteReport(
        "portal", "portal.lab.test", "https://portal.lab.test/", veto.FAIL, [sensitive, sections, unknown]
    )
    found.sections = [
        {"slug": "政务动态", "class": "dynamic", "age_days": 15.04, "blank": False},
        {"slug": "通知公告", "class": "notice", "age_days": 3.0, "blank": False},
        {"slug": 'odd"slug', "class": "static", "age_days": 40.0, "blank": False},
        {"slug": "empty", "class": "dynamic", "age_days": None, "blank": True},
    ]
    return found


def samples(text: str) -> dict[str, str]:
    return {line.rsplit(" ", 1)[0]: line.rsplit(" ", 1)[1] for line in text.splitlines() if not line.startswith("#")}


def test_each_item_its_status_and_findings_each_section_its_age_and_the_blanks() -> None:
    text = metrics.exposition(report(), NOW)
    found = samples(text)
    assert found['portalops_inspect_findings{site="portal",item="sensitive_content"}'] == "1"
    assert found['portalops_inspect_item_status{site="portal",item="sensitive_content"}'] == "2"
    assert found['portalops_inspect_item_status{site="portal",item="sections_not_updated"}'] == "1"
    assert found['portalops_inspect_item_status{site="portal",item="site_unreachable"}'] == "3"
    assert found['portalops_inspect_section_age_days{site="portal",section="政务动态",class="dynamic"}'] == "15.040"
    assert found['portalops_inspect_section_age_days{site="portal",section="通知公告",class="notice"}'] == "3"
    assert found['portalops_inspect_section_age_days{site="portal",section="odd\\"slug",class="static"}'] == "40"
    assert found['portalops_inspect_blank_sections{site="portal"}'] == "2"  # the blank section and the blank page
    assert found['portalops_inspect_last_run_timestamp_seconds{site="portal"}'] == f"{NOW.timestamp():.0f}"
    assert text.count("# TYPE ") == len(metrics.HELP) and text.endswith("\n")


def test_the_file_is_written_whole_under_its_site_s_name(tmp_path: Path) -> None:
    host = LocalHost(tmp_path)
    assert metrics.push({"mon": host}, {"mon": str(tmp_path)}, [report()], NOW) == []
    assert [p.name for p in tmp_path.iterdir()] == ["portalops_inspect_portal.prom"]
    assert (tmp_path / "portalops_inspect_portal.prom").read_text() == metrics.exposition(report(), NOW)
    assert metrics.file_name("a site/../x") == "portalops_inspect_a_site_.._x.prom"


def test_a_file_that_could_not_be_written_is_named(tmp_path: Path) -> None:
    failed = metrics.push({"mon": LocalHost(tmp_path)}, {"mon": str(tmp_path / "missing")}, [report()], NOW)
    assert len(failed) == 1 and failed[0].startswith("mon: portalops_inspect_portal.prom: exit 1"), failed
    assert not list(tmp_path.iterdir())
