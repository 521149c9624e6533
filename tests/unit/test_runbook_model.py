"""Runbook declarations, the registry, planning against an inventory, and the generated plans."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from portalops.errors import BadInput
from portalops.inventory import REPO_ROOT, Inventory, parse_inventory
from portalops.runbook import Level, Runbook, StepKind, act, diagnose, escalate, verify
from portalops.runbook.planning import context_for, describe, expand, fill, make_plan
from portalops.runbook.plans import main as plans_main
from portalops.runbook.plans import stale
from portalops.runbook.registry import discover, get

GOOD: dict[str, Any] = {
    "id": "t_example",
    "title_zh": "测试",
    "title_en": "Test",
    "level": Level.L2,
    "triggers": (("症状", "symptom"),),
    "targets": ("web",),
}


def inventory() -> Inventory:
    data = {
        "_meta": {"hostvars": {"web1": {}, "web2": {}, "db1": {}}},
        "all": {"children": ["web", "db"]},
        "web": {"hosts": ["web1", "web2"]},
        "db": {"hosts": ["db1"]},
    }
    return parse_inventory(data, "test")


def runbook(**changes: Any) -> Runbook:
    steps = (
        diagnose("look", "看", "Look", on=("web",), run="systemctl is-active nginx"),
        act("fix", "修", "Fix", on=("web",), check="systemctl is-active nginx", run="systemctl restart nginx"),
        verify("probe", "测", "Probe", run="{{ python }} -m portalops.cli probe -i {{ inventory }}"),
        escalate("up", "升级", "Escalate", to_zh="二线", to_en="second line"),
    )
    return Runbook(**{**GOOD, "steps": steps, **changes})


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"id": "Bad-Id"}, "snake_case"),
        ({"steps": (diagnose("a", "a", "a", run="true"),)}, "needs a verify step"),
        (
            {"steps": (escalate("e", "e", "e", to_zh="x", to_en="x"), verify("v", "v", "v", run="true"))},
            "escalation comes after a verify",
        ),
        ({"targets": ("db",)}, "not among the runbook's targets"),
    ],
)
def test_malformed_runbooks_fail_at_definition(changes: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        runbook(**changes)


def test_an_act_runs_a_command_or_a_playbook_not_both() -> None:
    steps = (
        act("x", "x", "x", on=("web",), run="true", playbook="playbooks/web.yml"),
        verify("v", "v", "v", run="true"),
        escalate("e", "e", "e", to_zh="x", to_en="x"),
    )
    with pytest.raises(ValueError, match="either a command or a playbook"):
        runbook(steps=steps)


def test_the_shipped_runbooks_load_and_are_named_after_their_ids() -> None:
    found = discover()
    assert {"l1_portal_unreachable", "l3_backup_stale", "l3_certificate_expiry"} <= set(found)
    for runbook_id, rb in found.items():
        assert rb.id == runbook_id
        assert rb.source == f"runbooks/{runbook_id}.py"
        assert rb.steps[-1].kind is StepKind.ESCALATE


def test_unknown_runbook_is_bad_input_naming_the_known_ones() -> None:
    with pytest.raises(BadInput, match=r"no runbook 'nope'; known: .*l1_portal_unreachable"):
        get("nope")
    with pytest.raises(BadInput):
        get("../portalops/cli")


def test_plan_expands_groups_and_honours_limit() -> None:
    context = context_for("inventory/test")
    plan = make_plan(runbook(), inventory(), [], context)
    assert [p.hosts for p in plan] == [("web1", "web2"), ("web1", "web2"), (), ()]
    assert plan[2].run == f"{sys.executable} -m portalops.cli probe -i inventory/test"
    limited = make_plan(runbook(), inventory(), ["web2"], context)
    assert limited[0].hosts == ("web2",)


def test_limit_outside_the_targets_or_the_inventory_is_bad_input() -> None:
    with pytest.raises(BadInput, match="db1 not among the targets of t_example"):
        make_plan(runbook(), inventory(), ["db1"], context_for("x"))
    with pytest.raises(BadInput, match="no host or group 'web9'"):
        expand(inventory(), ["web9"])


def test_placeholders_are_quoted_and_unknown_ones_refused() -> None:
    assert fill("ls {{ repo }}", {"repo": "/a b"}) == "ls '/a b'"
    with pytest.raises(BadInput, match="unknown placeholder"):
        fill("{{ nope }}", {})


def test_describe_shows_every_command_on_real_hosts() -> None:
    context = context_for("inventory/test")
    text = describe(runbook(), make_plan(runbook(), inventory(), [], context), context)
    assert "on web1, web2" in text
    assert "check: systemctl is-active nginx" in text
    assert "run: systemctl restart nginx" in text
    assert "to: 二线 / second line" in text


def test_generated_plans_are_current() -> None:
    assert stale() == [], "run `python -m portalops.runbook.plans`: docs/emergency_plans/ is stale"


def test_plans_check_fails_on_a_stale_or_orphan_plan(tmp_path: Path) -> None:
    out = tmp_path / "plans"
    assert plans_main(["--out", str(out)]) == 0
    assert plans_main(["--check", "--out", str(out)]) == 0
    plan = out / "l1_portal_unreachable.md"
    plan.write_text(plan.read_text().replace("Portal unreachable", "Portal down"))
    assert plans_main(["--check", "--out", str(out)]) == 1
    assert plans_main(["--out", str(out)]) == 0
    shutil.copy(plan, out / "l9_gone.md")
    assert plans_main(["--check", "--out", str(out)]) == 1


def test_a_plan_has_both_languages_deadlines_steps_and_escalation() -> None:
    text = (REPO_ROOT / "docs/emergency_plans/l1_portal_unreachable.md").read_text()
    for expected in (
        "# L1 一级 · 门户网站无法访问 / Portal unreachable",
        "业务中断",
        "at once in working hours, within 1 h outside them",
        "systemctl restart nginx",
        "## 升级 Escalation",
        "4 aborted",
    ):
        assert expected in text
