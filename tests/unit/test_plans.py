"""The generated plans: contacts from the inventory, the latest recorded drill, the version and a release."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from portalops import faultdrill
from portalops.inventory import REPO_ROOT
from portalops.runbook import plans
from portalops.runbook.registry import get


def test_each_plan_lists_the_inventorys_roles_and_contacts() -> None:
    text = (REPO_ROOT / "docs" / "emergency_plans" / "l1_database_lost.md").read_text()
    assert "## 角色与联系人 Roles and contacts" in text
    assert "| 数据库管理员 / Database administrator (DBA) |" in text and "dba@portal.lab.test" in text


def test_a_recorded_drill_shows_in_its_plan_and_changes_the_version(tmp_path: Path) -> None:
    runbook = get("l2_disk_pressure")
    assert "None recorded yet" in plans.render_plan(runbook)
    result = faultdrill.DrillResult(
        runbook="l2_disk_pressure",
        fault="staging_full",
        host="db1",
        expected="recovered",
        outcome="recovered",
        incident="20261127T190000Z-l2_disk_pressure",
        mttr_s=7.5,
        target_s=0.0,
        portal_ok=True,
        data_intact=None,
        ok=True,
        started="2026-11-27T19:00:00Z",
    )
    before = plans.expected(out=tmp_path)
    path = faultdrill.record(result, tmp_path)
    assert json.loads(path.read_text())["l2_disk_pressure"]["mttr_s"] == 7.5
    after = plans.expected(out=tmp_path)
    assert "| MTTR 恢复时间 | 7.5 s |" in after["l2_disk_pressure.md"]
    assert "PASS 通过: recovered (expected recovered)" in after["l2_disk_pressure.md"]
    assert before["README.md"] != after["README.md"], "the version follows the recorded drills"
    assert before["l1_database_lost.md"] == after["l1_database_lost.md"]


def test_a_release_is_stamped_with_git_describe_and_carries_the_history(tmp_path: Path) -> None:
    target = plans.release(tmp_path)
    index = (target / "README.md").read_text()
    assert f"release 发布: `{target.name}`" in index
    assert "## 变更历史 Change history" in index and "runbook" in index.lower()
    assert {p.name for p in target.glob("*.md")} == set(plans.expected())
    whole = (target / "overall.md").read_text()
    assert f"release 发布: `{target.name}`" in whole
    assert "### 修订记录 Revision history\n\n```\n" in whole and "runbook" in whole.lower()


def test_contacts_from_an_inventory_without_any_are_said_to_be_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plans, "resolve_vars", lambda *_args, **_kw: {"localhost": {"contacts": []}})
    assert plans.load_contacts("whatever") == []
    assert "None in the inventory" in plans.render_plan(get("l3_backup_stale"), [])
