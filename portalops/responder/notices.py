"""What the duty contacts read: the level, the deadlines and the one command to run (pure functions)."""

# ruff: noqa: RUF001 - Chinese text keeps its own full-width punctuation on purpose

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from portalops.runbook.journal import parse_stamp
from portalops.runbook.live import INCIDENTS_DIR
from portalops.runbook.notify import Notice
from portalops.runbook.workcal import local_text


def confirm_command(runbook: str, incident: str, inventory: str, root: Path) -> str:
    """The command a person runs to run (or go on with) the runbook in this incident, confirming its acts."""
    extra = "" if root == INCIDENTS_DIR else f" --incidents {root}"
    return f"portalops runbook run {runbook} --resume {incident} --yes -i {inventory}{extra}"


def _head(start: Mapping[str, Any]) -> str:
    level = int(start.get("level") or 0)
    label = f"L{level} {start.get('level_zh', '')}" if level else "级别未知 level unknown"
    return f"[{label}] {start.get('title_zh', '')} {start.get('title_en', '')}"


def _facts(start: Mapping[str, Any], incident: str) -> list[str]:
    alert = start.get("alert", {})
    lines = [
        f"- incident: {incident}",
        f"- alert: {alert.get('alertname', '?')} ({alert.get('fingerprint', '?')})",
        f"- detected: {local_text(parse_stamp(str(start['detected'])))} (alert startsAt {start['detected']})",
    ]
    for key in ("summary", "description"):
        if alert.get("annotations", {}).get(key):
            lines.append(f"- {key}: {alert['annotations'][key]}")
    lines += [
        f"- {d['title_zh']} {d['title_en']} due: {local_text(parse_stamp(d['due']))} ({d['rule_en']})"
        for d in start.get("deadlines", [])
    ]
    return lines


def opened_notice(
    start: Mapping[str, Any], incident: str, mode: str, command: str, occurrence: int, resolved: bool = False
) -> Notice:
    """``mode``: auto (running unattended), person (waits for the command), unknown (no runbook/level);
    ``resolved``: the first the responder heard of the alert was that it resolved."""
    what = {
        "auto": "告警，自动处置中 alert, runbook running",
        "person": "告警，待人工确认 alert, waiting for a person",
        "unknown": "未知告警 unknown alert",
    }[mode]
    if occurrence > 1:
        what = f"再次告警（第 {occurrence} 次）alert again (occurrence {occurrence})"
    if resolved:
        # Still run (auto) or offered (person): the runbook's checks and its verify step from outside
        # say whether the fault really went away, and only then does the incident close.
        what = "告警已恢复，未曾收到 alert already resolved, missed while it fired"
    title = f"{_head(start)}: {what} ({incident})"
    lines = [f"### {title}", *_facts(start, incident)]
    if mode == "auto":
        lines.append(f"- runbook `{start['runbook']}` runs unattended; destructive acts wait for: `{command}`")
    elif mode == "person":
        lines.append(f"- runbook `{start['runbook']}` is not run automatically; to run it: `{command}`")
    else:
        lines.append("- no known runbook or level for this alert: nothing was run; a person decides")
    level = int(start.get("level") or 0) or 1  # unknown: told on every channel that takes level 1
    return Notice("start", incident, str(start.get("runbook", "")), level, title, "\n".join(lines))


def waiting_notice(start: Mapping[str, Any], incident: str, step: str, command: str) -> Notice:
    title = f"{_head(start)}: 待确认破坏性操作 destructive step waits ({incident})"
    lines = [
        f"### {title}",
        *_facts(start, incident),
        f"- the unattended run stopped before `{step}`, which needs a person's confirmation",
        f"- to confirm and go on: `{command}`",
    ]
    return Notice("escalation", incident, str(start["runbook"]), int(start["level"]), title, "\n".join(lines))


def closed_notice(start: Mapping[str, Any], incident: str, closed: Mapping[str, Any]) -> Notice:
    title = f"{_head(start)}: 已恢复并关闭 recovered and closed ({incident})"
    lines = [
        f"### {title}",
        *_facts(start, incident)[:3],
        f"- recovery verified: {closed['recovered']}; alert resolved: {closed['alert_resolved']}",
        f"- MTTD {closed['mttd_s']:.0f} s (alert startsAt -> incident opened)",
        f"- MTTR {closed['mttr_s']:.0f} s (alert startsAt -> recovery verified)",
    ]
    return Notice("resolution", incident, str(start["runbook"]), int(start["level"]), title, "\n".join(lines))
