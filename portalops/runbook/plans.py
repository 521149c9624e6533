"""Generate the auditors' emergency plans, ``docs/emergency_plans/``, from the runbooks.

One Markdown plan per runbook, in Chinese and English, and an index. The
documents are never edited by hand: ``python -m portalops.runbook.plans``
rewrites them and ``--check`` fails when one is stale (the unit tests run it).
Besides the runbooks they read the roles and contacts from the inventory
(``portalops_contacts``) and each runbook's latest recorded drill
(``drills.json`` beside the plans, written by ``portalops drill run --record``).
The index carries a content version (a hash of everything the plans are made
of); ``--release DIR`` also writes a copy stamped with ``git describe`` and the
plans' change history, to hand to auditors.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from portalops.inventory import LAB_INVENTORY, REPO_ROOT
from portalops.runbook import alerts, overall
from portalops.runbook.model import Runbook, Step, StepKind
from portalops.runbook.outcome import RunbookExit
from portalops.runbook.plandoc import MARK, deadline_table, level_table
from portalops.runbook.plandoc import cell as _cell
from portalops.runbook.registry import RUNBOOKS_DIR, discover
from portalops.runbook.workcal import AT_ONCE, WORK_END, WORK_START

PLANS_DIR = REPO_ROOT / "docs" / "emergency_plans"
DRILLS_FILE = "drills.json"
OVERALL = "overall.md"
KIND_ZH = {
    StepKind.DIAGNOSE: "诊断 diagnose",
    StepKind.ACT: "处置 act",
    StepKind.VERIFY: "验证 verify",
    StepKind.MANUAL: "人工 manual",
    StepKind.ESCALATE: "升级 escalate",
}


def _step_section(number: int, step: Step) -> list[str]:
    lines = [f"### {number}. {step.title_zh} / {step.title_en}", ""]
    facts = [
        f"- kind: {KIND_ZH[step.kind]} (`{step.id}`)",
        f"- on 作用于: {step.where}",
        f"- timeout 超时: {step.timeout:g} s"
        + (f", {step.attempts} attempts {step.interval:g} s apart" if step.attempts > 1 else ""),
    ]
    if step.destructive:
        facts.append("- destructive 破坏性: asks for confirmation unless `--yes` / 需确认")
    lines += facts
    if step.kind is StepKind.ACT:
        lines.append("- acts only where the check fails / 仅在检查不通过的主机上执行")
    if step.kind is StepKind.ACT and step.check:
        again_zh = f"在 {step.wait:g} 秒内重复检查, 仍无法判断则" if step.wait else ""
        again_en = f"checked again for up to {step.wait:g} s; still unknown, " if step.wait else ""
        lines.append(
            "- check exit 75, a timeout or an unreachable host means unknown (cannot tell right now): "
            f"{again_en}never acted on, the host is named and the verify decides / "
            f"检查退出码 75、超时或主机不可达为“无法判断”: {again_zh}不执行处置, 记录该主机与原因, 由验证步骤判定"
        )
    if step.kind is StepKind.ESCALATE:
        lines.append("- runs only when not recovered / 仅在未恢复时执行")
    if step.note_zh:
        label = "escalate to 升级至" if step.kind is StepKind.ESCALATE else "instructions 操作说明"
        lines.append(f"- {label}: {step.note_zh} / {step.note_en}")
    for title, text in (("check 检查", step.check), ("run 执行", step.run)):
        if text:
            lines += ["", f"{title}:", "", "```sh", text, "```"]
    if step.playbook:
        lines += [
            "",
            "run 执行:",
            "",
            "```sh",
            f"ansible-playbook -i <inventory> {step.playbook} --limit <hosts>",
            "```",
        ]
    return [*lines, ""]


def _alerts_section(runbook: Runbook) -> list[str]:
    """The Prometheus alerts that start this plan (the rule file is generated from them)."""
    if not runbook.alerts:
        return []
    lines = [
        "告警 (监控自动启动本预案, `roles/monitoring/files/portalops-alerts.yml`) / "
        "Alerts that start this plan (monitoring; `roles/monitoring/files/portalops-alerts.yml`):",
        "",
        "| 告警 alert | 级别 level | 条件 condition | PromQL | 持续 for |",
        "|---|---|---|---|---|",
    ]
    for alert in runbook.alerts:
        level = runbook.alert_level(alert)
        lines.append(
            f"| `{alert.name}` | L{int(level)} | {_cell(alert.summary_zh)} / {_cell(alert.summary_en)} "
            f"| `{_cell(' '.join(alert.expr.split()))}` | {alert.duration} |"
        )
    return [*lines, ""]


def _contacts_section(contacts: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = ["## 角色与联系人 Roles and contacts", ""]
    if not contacts:
        return [*lines, "None in the inventory (`portalops_contacts`) / 清单中未配置联系人。", ""]
    lines += ["| 角色 role | 人员 who | 电话 phone | 邮件 email |", "|---|---|---|---|"]
    for c in contacts:
        role = f"{c.get('role_zh', '')} / {c.get('role_en', '')}"
        lines.append(
            f"| {_cell(role)} | {_cell(str(c.get('who', '')))} | {_cell(str(c.get('phone', '')))} "
            f"| {_cell(str(c.get('email', '')))} |"
        )
    return [*lines, ""]


def _drill_section(drill: Mapping[str, Any] | None, runbook_id: str) -> list[str]:
    lines = ["## 最近演练 Latest drill", ""]
    if not drill:
        return [*lines, f"None recorded yet / 尚无记录 (`portalops drill run {runbook_id} --record`).", ""]
    target = f" (target {drill['target_s']:g} s)" if drill.get("target_s") else ""
    data = {None: "not checked 未检查", True: "intact 完整", False: "LOST 丢失"}[drill.get("data_intact")]
    verdict = "PASS 通过" if drill["ok"] else "FAIL 未通过"
    return [
        *lines,
        "| | |",
        "|---|---|",
        f"| date 日期 | {drill['started']} |",
        f"| fault 故障 | `{drill['fault']}` on {drill['host']} |",
        f"| result 结果 | {verdict}: {drill['outcome']} (expected {drill['expected']}) |",
        f"| MTTR 恢复时间 | {drill['mttr_s']:g} s{target} |",
        f"| data 数据 | {data} |",
        f"| incident 事件 | `incidents/{drill['incident']}` |",
        "",
    ]


def render_plan(
    runbook: Runbook, contacts: Sequence[Mapping[str, Any]] = (), drill: Mapping[str, Any] | None = None
) -> str:
    level = runbook.level
    spec = level.spec
    verifies = [s for s in runbook.steps if s.kind is StepKind.VERIFY]
    escalations = [s for s in runbook.steps if s.kind is StepKind.ESCALATE]
    lines = [
        f"# L{int(level)} {spec.name_zh} · {runbook.title_zh} / {runbook.title_en}",
        "",
        MARK.format(source=runbook.source),
        "",
        "| | |",
        "|---|---|",
        f"| 编号 id | `{runbook.id}` |",
        f"| 级别 level | {int(level)} ({spec.name_zh}): {spec.meaning_zh} / {spec.meaning_en} |",
        f"| 作用范围 targets | {', '.join(runbook.targets)} (inventory groups / hosts) |",
        f"| runbook | `{runbook.source}` |",
        "",
        "## 启动条件 Start conditions",
        "",
        *[f"- {zh} / {en}" for zh, en in runbook.triggers],
        "",
        *_alerts_section(runbook),
        "## 响应时限 Response deadlines",
        "",
        *deadline_table(level),
        "",
        f"Working hours 工作时间: Mon-Fri {WORK_START:%H:%M}-{WORK_END:%H:%M} Asia/Shanghai, following the State "
        "Council's official holidays and make-up workdays (调休). 'At once' is measured as within "
        f"{int(AT_ONCE.total_seconds() // 60)} minutes; the journal records each deadline and whether it was met.",
        "",
        "## 处置步骤 Steps",
        "",
        "| # | kind | step | on | timeout |",
        "|---|---|---|---|---|",
        *[
            f"| {n} | {KIND_ZH[s.kind]} | {_cell(s.title_zh)} / {_cell(s.title_en)} | {s.where} | {s.timeout:g} s |"
            for n, s in enumerate(runbook.steps, 1)
        ],
        "",
    ]
    for number, step in enumerate(runbook.steps, 1):
        lines += _step_section(number, step)
    lines += ["## 恢复标准 Recovery criteria", ""]
    lines += [f"- {s.title_zh} / {s.title_en} (`{s.id}`)" for s in verifies]
    lines += ["", "## 升级 Escalation", ""]
    lines += [f"- {s.note_zh} / {s.note_en} (`{s.id}`)" for s in escalations]
    lines += ["", *_contacts_section(contacts), *_drill_section(drill, runbook.id)]
    lines += [
        "## 执行 How to run",
        "",
        "```sh",
        f"portalops runbook run {runbook.id} --dry-run    # every command, none run",
        f"portalops runbook run {runbook.id} [--yes] [--limit HOST] [-i INVENTORY]",
        f"python {runbook.source} --dry-run",
        "```",
        "",
        "Exit codes 退出码: " + "; ".join(f"{int(c)} {c.meaning}" for c in RunbookExit) + ".",
        "",
    ]
    return "\n".join(lines)


def render_index(runbooks: Sequence[Runbook], version: str = "", release: str = "", history: str = "") -> str:
    lines = [
        "# 应急预案 Emergency plans",
        "",
        MARK.format(source="runbooks/"),
        "",
        "One plan per runbook under `runbooks/`, generated from it: the runbook is the plan that runs.",
        "每个预案由 `runbooks/` 下对应的可执行 runbook 生成。",
        "",
        f"版本 Version: `{version}` (a hash of all plans: runbooks, inventory, alert rules, drills)"
        + (f"; release 发布: `{release}`" if release else ""),
        "",
        "## 故障级别 Fault levels",
        "",
        *level_table(),
        "",
        "## 总体预案 Overall plan",
        "",
        f"[总体应急预案 / Overall emergency plan]({OVERALL}): organisation, national grading, reporting duties, "
        "resources and drills, above the specific plans below.",
        "",
        "## 预案 Plans",
        "",
        "| level | plan | runbook |",
        "|---|---|---|",
        *[
            f"| L{int(rb.level)} | [{rb.title_zh} / {rb.title_en}]({rb.id}.md) | `{rb.source}` |"
            for rb in sorted(runbooks, key=lambda r: (int(r.level), r.id))
        ],
        "",
        "Regenerate with `python -m portalops.runbook.plans`; the unit tests fail when a plan is stale.",
        "A copy for auditors, stamped with `git describe` and the change history:",
        "`python -m portalops.runbook.plans --release reports/emergency_plans`.",
        "",
    ]
    if history:
        lines += ["## 变更历史 Change history", "", "```", history.rstrip("\n"), "```", ""]
    return "\n".join(lines)


def load_drills(out: Path) -> dict[str, Any]:
    path = out / DRILLS_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def expected(
    runbooks_dir: Path = RUNBOOKS_DIR,
    out: Path = PLANS_DIR,
    inventory: str | Path = LAB_INVENTORY,
    release: str = "",
    history: str = "",
) -> dict[str, str]:
    """File name under docs/emergency_plans/ -> its content."""
    runbooks = list(discover(runbooks_dir).values())
    inputs, drills, rules = overall.load_inputs(inventory), load_drills(out), overall.alert_rules()
    files = {f"{rb.id}.md": render_plan(rb, inputs.contacts, drills.get(rb.id)) for rb in runbooks}
    files[OVERALL] = overall.render(runbooks, inputs, drills, rules)
    digest = hashlib.sha256("".join(files[name] for name in sorted(files)).encode()).hexdigest()[:12]
    version = f"plans-{digest}"
    files[OVERALL] = overall.render(runbooks, inputs, drills, rules, version, release, history)
    files["README.md"] = render_index(runbooks, version, release, history)
    return files


def stale(out: Path = PLANS_DIR, runbooks_dir: Path = RUNBOOKS_DIR, inventory: str | Path = LAB_INVENTORY) -> list[str]:
    wanted = expected(runbooks_dir, out, inventory)
    problems = [name for name, text in wanted.items() if not (out / name).exists() or (out / name).read_text() != text]
    problems += [p.name for p in sorted(out.glob("*.md")) if p.name not in wanted]
    return problems


def git(*args: str) -> str:
    result = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    return result.stdout.strip() if result.returncode == 0 else ""


def release(directory: Path, inventory: str | Path = LAB_INVENTORY) -> Path:
    """A copy of the plans for auditors, stamped with git describe and the change history."""
    described = git("describe", "--always", "--dirty", "--tags") or "unversioned"
    history = git("log", "--date=short", "--format=%ad %h %s", "--", "runbooks", "docs/emergency_plans")
    target = directory / described
    target.mkdir(parents=True, exist_ok=True)
    for name, text in expected(out=PLANS_DIR, inventory=inventory, release=described, history=history).items():
        (target / name).write_text(text)
    return target


def write(out: Path = PLANS_DIR, runbooks_dir: Path = RUNBOOKS_DIR, inventory: str | Path = LAB_INVENTORY) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    wanted = expected(runbooks_dir, out, inventory)
    changed = []
    for name, text in wanted.items():
        path = out / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            changed.append(name)
    for path in sorted(out.glob("*.md")):
        if path.name not in wanted and "portalops.runbook.plans" in path.read_text():
            path.unlink()
            changed.append(f"{path.name} (removed)")
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m portalops.runbook.plans", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail when a generated plan is stale; write nothing")
    parser.add_argument("--out", type=Path, default=PLANS_DIR)
    parser.add_argument("-i", "--inventory", default=str(LAB_INVENTORY), help="where the contacts come from")
    parser.add_argument("--release", type=Path, metavar="DIR", help="write a copy stamped with git describe into DIR")
    args = parser.parse_args(argv)
    if args.release:
        print(f"wrote {release(args.release, args.inventory)}")
        return 0
    if args.check:
        problems = [str(args.out / name) for name in stale(args.out, inventory=args.inventory)]
        problems += [str(alerts.RULE_FILE)] if args.out == PLANS_DIR and alerts.stale() else []
        for name in problems:
            print(f"stale: {name} (run `python -m portalops.runbook.plans`)", file=sys.stderr)
        return 1 if problems else 0
    for name in write(args.out, inventory=args.inventory):
        print(f"wrote {args.out / name}")
    # The alert rules come from the same runbooks: one command regenerates both (`make plans`); a copy of the
    # plans elsewhere (--out) leaves the repository's rule file alone.
    if args.out == PLANS_DIR and alerts.write():
        print(f"wrote {alerts.RULE_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
