"""The overall emergency plan: generated from the runbooks, the inventory, the alert rules and the drills."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import yaml

from portalops.errors import BadInput
from portalops.inventory import LAB_INVENTORY, REPO_ROOT
from portalops.runbook import overall, plans
from portalops.runbook.levels import Level
from portalops.runbook.registry import discover
from portalops.runbook.workcal import RULES

PLAN = REPO_ROOT / "docs" / "emergency_plans" / "overall.md"
RULE_FILE = """\
groups:
  - name: portal
    rules:
      - alert: PortalDown
        expr: probe_success{job="portal"} == 0
        for: 5m
        labels:
          severity: critical
        annotations:
          summary: A site of the portal does not answer
      - record: job:probe_success:avg
        expr: avg(probe_success)
"""


@pytest.fixture(scope="module")
def lab_inputs() -> overall.Inputs:
    """The lab inventory as the plan reads it (one ansible run for the module)."""
    return overall.load_inputs(LAB_INVENTORY)


def test_the_overall_plan_names_every_runbook_and_every_contact() -> None:
    text = PLAN.read_text()
    for runbook in discover().values():
        assert f"]({runbook.id}.md) (`{runbook.id}`)" in text, runbook.id
    contacts = yaml.safe_load((LAB_INVENTORY / "group_vars/all/contacts.yml").read_text())["portalops_contacts"]
    for contact in contacts:
        for key in ("role_zh", "role_en", "who", "phone", "email", "deputy"):
            assert str(contact[key]) in text, (contact["role_en"], key)
    assert "[总体应急预案 / Overall emergency plan](overall.md)" in (PLAN.parent / "README.md").read_text()


def test_the_overall_plan_has_the_national_framework() -> None:
    text = PLAN.read_text()
    chapters = ("总则", "组织机构与职责", "事件分级", "监测与预警", "应急响应", "信息报告", "后期处置", "保障措施")
    for number, title in enumerate((*chapters, "培训与演练", "附则"), 1):
        assert f"\n## {number} {title} " in text, title
    index_version = next(line for line in (PLAN.parent / "README.md").read_text().splitlines() if "Version" in line)
    assert index_version.split("`")[1] in text, "the plan carries the index's version"


@pytest.mark.parametrize(
    "change",
    ["contact", "level", "grading", "cii"],
)
def test_a_changed_input_makes_check_report_the_overall_plan_stale(
    change: str, lab_inputs: overall.Inputs, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(overall, "load_inputs", lambda _inventory: lab_inputs)
    assert plans.main(["--check"]) == 0, "unchanged inputs give the committed plans"
    inputs = lab_inputs
    if change == "contact":
        contacts = [dict(c) for c in lab_inputs.contacts]
        contacts[-1]["phone"] = "+86 000-9999-9999"
        inputs = dataclasses.replace(lab_inputs, contacts=contacts)
    elif change == "grading":
        grading = {name: dict(values) for name, values in lab_inputs.grading.items()}
        grading["defaced_home_hours"]["relatively_major"] = 1
        inputs = dataclasses.replace(lab_inputs, grading=grading)
    elif change == "cii":
        inputs = dataclasses.replace(lab_inputs, cii_operator=True)
    else:
        rule = RULES[Level.L2][0]
        monkeypatch.setitem(RULES, Level.L2, (dataclasses.replace(rule, text_en="within 10 min"), *RULES[Level.L2][1:]))
    monkeypatch.setattr(overall, "load_inputs", lambda _inventory: inputs)
    assert plans.main(["--check"]) == 1
    assert "overall.md" in capsys.readouterr().err


def test_missing_inventory_parameters_take_the_defaults(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory"
    shutil.copytree(REPO_ROOT / "inventory" / "example", inventory)
    (inventory / "group_vars/all/emergency.yml").unlink()
    inputs = overall.load_inputs(inventory)
    assert inputs.grading == overall.GRADING_DEFAULTS
    assert inputs.cii_operator is False
    assert inputs.drill_interval_days == overall.FAULT_DRILL_INTERVAL_DAYS
    assert inputs.contacts and inputs.groups["drill"] == ["drill1"]


def test_partial_grading_overrides_only_what_it_names() -> None:
    inputs = overall.inputs_from({"web1": {"grading": {"unreachable_hours": {"major": 4}}}})
    assert inputs.grading["unreachable_hours"] == {"particularly_major": 24, "major": 4, "relatively_major": 2}
    assert inputs.grading["defaced_home_hours"] == overall.GRADING_DEFAULTS["defaced_home_hours"]
    text = overall.render([], inputs, {})
    assert "(`unreachable_hours`) | ≥ 24 h | ≥ 4 h | ≥ 2 h |" in text
    assert "最迟 4 小时内向属地省级网信部门报告" in text
    cii = overall.render([], dataclasses.replace(inputs, cii_operator=True), {})
    assert "最迟 1 小时内向保护工作部门和公安机关报告" in cii


@pytest.mark.parametrize(
    "grading",
    [{"unreachable": {"major": 4}}, {"unreachable_hours": {"severe": 4}}, {"unreachable_hours": {"major": "4h"}}],
)
def test_a_malformed_grading_parameter_is_refused(grading: object) -> None:
    with pytest.raises(BadInput, match="portalops_national_grading"):
        overall.grading_from(grading)


def test_the_inventories_document_the_code_defaults() -> None:
    for site in ("lab", "example"):
        data = yaml.safe_load((REPO_ROOT / "inventory" / site / "group_vars/all/emergency.yml").read_text())
        assert data["portalops_national_grading"] == overall.GRADING_DEFAULTS, site
        assert data["portalops_cii_operator"] is False
        assert data["portalops_fault_drill_interval_days"] == overall.FAULT_DRILL_INTERVAL_DAYS


def test_other_alert_rule_files_are_picked_up_when_they_appear(tmp_path: Path) -> None:
    none = overall.alert_rules(tmp_path)
    assert none == ([], [])
    assert "Other alert rule files" not in overall.render([], overall.Inputs(), {}, none)
    files = tmp_path / "roles" / "monitoring" / "files"
    files.mkdir(parents=True)
    (files / "portal.rules.yml").write_text(RULE_FILE)
    templates = tmp_path / "roles" / "monitoring" / "templates"
    templates.mkdir(parents=True)
    (templates / "hosts.rules.yml.j2").write_text("{{ ansible_managed | comment }}\ngroups: {% for x in y %}\n")
    rules, unread = overall.alert_rules(tmp_path)
    assert [r.alert for r in rules] == ["PortalDown"], "recording rules are not alerts"
    assert rules[0].duration == "5m" and rules[0].severity == "critical"
    assert rules[0].source == "roles/monitoring/files/portal.rules.yml"
    assert unread == ["roles/monitoring/templates/hosts.rules.yml.j2"]
    text = overall.render([], overall.Inputs(), {}, (rules, unread))
    assert '| `PortalDown` | `probe_success{job="portal"} == 0` | 5m | critical |' in text
    assert "hosts.rules.yml.j2" in text and "Other alert rule files" in text


def test_the_monitoring_section_lists_the_alerts_the_runbooks_declare() -> None:
    """From the same source as the rule file: every alert with its level, plan and condition in words."""
    runbooks = list(discover().values())
    section = overall.render(runbooks, overall.Inputs(), {}).split("## 4 ")[1].split("## 5 ")[0]
    assert "not deployed yet" not in section
    for rb in runbooks:
        for alert in rb.alerts:
            row = next(line for line in section.splitlines() if line.startswith(f"| `{alert.name}` |"))
            assert f"| L{int(rb.alert_level(alert))}" in row and f"[{rb.id}]({rb.id}.md)" in row
            assert alert.summary_zh in row and alert.summary_en in row and row.endswith(f"| {alert.duration} |")
    assert "| `Watchdog` | — |" in section
    assert "`DiskFillingUp` | L3 (预警 early warning) | [l2_disk_pressure]" in section
    # No other rule file yet: the generated one is not a *.rules.yml and is listed from the runbooks.
    assert overall.alert_rules() == ([], [])
    assert "`PortalSiteDown`" in PLAN.read_text()
