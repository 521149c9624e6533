"""The draft of a report to the regulator (《国家网络安全事件报告管理办法》), from an incident's record.

What the journal knows is filled in (when it was found, hosts, the diagnosis, what the runbook and
the people did, its lifecycle state, the contact of the inventory's security officer); what only
people know is left as a marked blank. The initial report follows the prescribed content of
:data:`overall.REPORT_CONTENT`; the follow-up adds what happened since the last report sent; the
final report is the 事件总结报告 (cause, handling, harm, responsibility, corrective actions,
lessons). A draft is only ever written: a person reviews it, the head approves it, someone sends
it and records that with ``--sent``.
"""

# ruff: noqa: RUF001 - Chinese text keeps its own full-width punctuation on purpose

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from portalops.errors import BadInput
from portalops.runbook import lifecycle
from portalops.runbook.grading import Clock, clock_of, grade_label
from portalops.runbook.journal import RunState, detected_at, parse_stamp, stamp, start_event
from portalops.runbook.overall import REPORT_CONTENT, Inputs
from portalops.runbook.plandoc import security_officer
from portalops.runbook.workcal import local_text, span

BLANK = "【待填写 to be completed】"
TITLES = {
    "initial": ("网络安全事件报告（初报）", "Cybersecurity incident report (initial)"),
    "follow-up": ("网络安全事件报告（续报）", "Cybersecurity incident report (follow-up)"),
    "final": ("网络安全事件总结报告", "Incident summary report (final)"),
}
CONTROLLER = "controller"  # LocalHost's name: the control node, not an affected system
PERSON_MEASURES = ("workaround", "resolved")  # lifecycle events that say what a person did about it


def _when(text: str) -> str:
    return f"{local_text(parse_stamp(text))} = {text}"


def _security_officer(contacts: Sequence[Mapping[str, Any]]) -> str:
    c = security_officer(contacts)
    if c is None:
        return BLANK + "（清单 `portalops_contacts` 中无安全负责人 / no security officer in the inventory）"
    return f"{c['role_zh']} / {c['role_en']}: {c['who']}, {c['phone']}, {c['email']} (deputy {c['deputy']})"


def _hosts(events: Sequence[Mapping[str, Any]]) -> list[str]:
    seen = [str(h) for e in events if e.get("event") == "step_begin" for h in e.get("hosts") or []]
    seen += [str(e["host"]) for e in events if e.get("event") == "command" and "host" in e]
    return [h for h in dict.fromkeys(seen) if h != CONTROLLER]


def _ends(events: Sequence[Mapping[str, Any]], kind: str) -> list[Mapping[str, Any]]:
    return [e for e in events if e.get("event") == "step_end" and e.get("kind") == kind]


def _cause(events: Sequence[Mapping[str, Any]]) -> list[str]:
    """What the diagnosis found, and what the acts found broken and repaired: the cause as known."""
    lines = [f"- 诊断 diagnosis `{e['step']}`: {f}" for e in _ends(events, "diagnose") for f in e.get("findings") or []]
    lines += [
        f"- 处置前检查发现异常并已处理 found broken and acted on: {a}"
        for e in _ends(events, "act")
        if e.get("result") in ("done", "failed", "unknown")
        for a in e.get("actions") or []
    ]
    return lines or ["- 诊断步骤未发现异常 / the diagnosis found nothing abnormal"]


def _measures(events: Sequence[Mapping[str, Any]]) -> list[str]:
    """The runbook's acts and checks and the person's workaround and resolution, in journal order."""
    lines = []
    for e in events:
        if e.get("event") in PERSON_MEASURES:
            lines.append(f"- {e['ts']} {lifecycle.event_text(e)}")
            continue
        if e.get("event") != "step_end" or e.get("kind") not in ("act", "manual", "escalate", "verify"):
            continue
        if e.get("result") in ("not_needed", "skipped"):
            continue
        lines.append(f"- {e['ts']} `{e['step']}` ({e['kind']}): **{e['result']}** - {e.get('summary', '')}")
        lines += [f"  - {a}" for a in e.get("actions") or []]
    return lines or ["- 未执行处置操作 / no action was taken"]


def _status(events: Sequence[Mapping[str, Any]], state: RunState, now: datetime) -> str:
    """The lifecycle's state: resolved by a person or by a runbook's verified recovery, or still open."""
    resolved = lifecycle.resolution(events)
    if resolved is not None:
        how = "every verify step passed" if resolved.get("event") == "end" else lifecycle.event_text(resolved)
        text = f"已恢复 recovered at {_when(str(resolved['ts']))}: {how}"
        closed = lifecycle.last(events, "closed")
        if lifecycle.state_of(events) is lifecycle.State.CLOSED and closed is not None:
            text += f"; 已关闭 closed by {closed.get('by', '?')} at {_when(str(closed['ts']))}"
        return text
    as_of = f"(as of {local_text(now)})"
    if state.escalated or state.end.get("outcome") == "not_recovered":
        return f"未恢复，已升级 not recovered, escalated {as_of}"
    if lifecycle.state_of(events) is lifecycle.State.NEW:
        return f"未确认 not yet acknowledged {as_of}"
    text = f"处置中 being handled {as_of}"
    if any(e.get("event") == "step_begin" for e in events) and not state.finished:
        text += "; the runbook has not finished"
    workaround = lifecycle.last(events, "workaround")
    return text + (f"; 临时措施 workaround in place: {lifecycle.event_text(workaround)}" if workaround else "")


def _found(start: Mapping[str, Any]) -> str:
    """When it was found, and how the journal knows."""
    if not start.get("detected"):
        how = "处置开始；更早发现请更正 / the runbook started; correct it if found earlier"
    elif start.get("opened_by") == lifecycle.PERSON:
        who, channel = start.get("reported_by"), start.get("channel")
        how = f"{who} 经 {channel} 报告 / reported by {who} via {channel}"
    else:
        how = "告警开始 / the alert began"
    return f"{_when(stamp(detected_at(start)))}（{how}）"


def _duration(events: Sequence[Mapping[str, Any]], now: datetime) -> str:
    """From detection to the resolution that holds, or to now while it is open."""
    resolved = lifecycle.resolution(events)
    until = parse_stamp(str(resolved["ts"])) if resolved else now
    lasted = span((until - detected_at(start_event(events))).total_seconds())
    return f"at least {lasted} ({'to recovery' if resolved else 'so far'})"


def _facts(events: Sequence[Mapping[str, Any]], inputs: Inputs, clock: Clock, now: datetime) -> list[str]:
    start = start_event(events)
    state = RunState.replay([dict(e) for e in events])
    graded = clock.graded
    to = ("保护工作部门和公安机关", "the protection authority and the public security bureau")
    if not graded.get("cii_operator"):
        to = ("属地省级网信部门", "the provincial cyberspace office")
    due = f"{local_text(clock.due)} ({clock.hours:g} h)" if clock.due else "无（较大以下）/ none (below III)"
    sites = "; ".join(f"{s.get('title', s.get('name'))} ({', '.join(s.get('domains') or [])})" for s in inputs.sites)
    return [
        "| 项目 item | 内容 content |",
        "|---|---|",
        f"| 报告单位 reporting unit | {BLANK} |",
        f"| 联系人 contact | {_security_officer(inputs.contacts)} |",
        f"| 报送对象 to | {to[0]} / {to[1]} |",
        f"| 报告时限 due | {due} |",
        f"| 事件编号 incident | `{start.get('incident')}` |",
        f"| 事件分级 grade | {grade_label(clock.grade)}, by {graded.get('by')} at {_when(str(graded['ts']))}"
        + (f": {graded['reason']}" if graded.get("reason") else "")
        + " |",
        f"| 事件类型 type | {start.get('title_zh')} / {start.get('title_en')}"
        f" (L{start.get('level')} {start.get('level_zh', '')}); GB/T 20986-2023 类别 category: {BLANK} |",
        f"| 发现时间 found | {_found(start)} |",
        f"| 门户站点 the portal's sites | {sites or BLANK}（确认受影响的站点 confirm which were affected） |",
        f"| 处置涉及主机 hosts checked or acted on | {', '.join(_hosts(events)) or BLANK} |",
        f"| 持续时间 duration | {_duration(events, now)} |",
        f"| 当前状态 status | {_status(events, state, now)} |",
    ]


def _initial(events: Sequence[Mapping[str, Any]], state: RunState, now: datetime) -> list[str]:
    start = start_event(events)
    bodies = [
        ["见上表 / see the table above", f"- 系统基本情况 what the systems are: {BLANK}"],
        [
            f"- 影响 impact: {start.get('title_zh')} / {start.get('title_en')}; {_status(events, state, now)}",
            f"- 已造成的危害 harm done (visitors, services, data): {BLANK}",
            "- 已采取的措施及效果 measures taken and their effect:",
            *[f"  {line}" for line in _measures(events)],
        ],
        [f"- {_status(events, state, now)}", f"- 趋势与可能的进一步影响 how it may develop: {BLANK}"],
        [*_cause(events), f"- 初步分析 first analysis: {BLANK}"],
        [f"- {BLANK}", f"- 证据 evidence: the journal `incidents/{start.get('incident')}/journal.jsonl`"],
        [*[f"- {f}" for f in state.followups], f"- {BLANK}"],
        [f"- {BLANK}"],
        [f"- {BLANK}"],
    ]
    lines: list[str] = []
    for n, ((zh, en), body) in enumerate(zip(REPORT_CONTENT, bodies, strict=True), 1):
        lines += ["", f"## {n} {zh} / {en}", "", *body]
    return lines


def _since(events: Sequence[Mapping[str, Any]], clock: Clock) -> list[str]:
    after = str(clock.sent[-1]["ts"]) if clock.sent else ""
    lines = []
    for e in (e for e in events if str(e["ts"]) > after):
        if e.get("event") == "step_end":
            lines.append(f"- {e['ts']} `{e['step']}` ({e['kind']}): {e['result']} - {e.get('summary', '')}")
        elif e.get("event") == "end":
            lines.append(f"- {e['ts']} end: {e.get('outcome')}")
        elif e.get("event") in lifecycle.EVENTS:
            lines.append(f"- {e['ts']} {lifecycle.event_text(e)}")
    since = f"the {clock.sent[-1].get('stage')} report sent {after}" if after else "no report marked sent yet"
    return [f"自上次报告以来 since {since}:", "", *(lines or ["- 日志中无新进展 / nothing journalled since"])]


def _final(events: Sequence[Mapping[str, Any]], state: RunState, clock: Clock) -> list[str]:
    reports = [f"- {e.get('stage')} sent {e['ts']} by {e.get('by')}" for e in clock.sent] or ["- 无 none marked sent"]
    sections = (
        ("事件处置过程 Handling", _measures(events)),
        ("影响和危害 Impact and harm", [f"- {BLANK}"]),
        ("原因分析（根本原因） Cause (root cause)", [*_cause(events), f"- 根本原因 root cause: {BLANK}"]),
        ("责任认定 Responsibility", [f"- {BLANK}"]),
        (
            "整改措施 Corrective actions",
            [*[f"- {f}" for f in state.followups], f"- {BLANK}（每项：责任人、期限 / each: owner, due date）"],
        ),
        ("经验教训 Lessons learned", [f"- {BLANK}"]),
        ("已报送的报告 Reports sent", reports),
    )
    lines: list[str] = []
    for n, (title, body) in enumerate(sections, 1):
        lines += ["", f"## {n} {title}", "", *body]
    return lines


def draft(events: Sequence[Mapping[str, Any]], inputs: Inputs, stage: str, now: datetime) -> str:
    """The report of ``stage`` for a graded incident, as Markdown (zh first, en alongside)."""
    if stage not in TITLES:
        raise BadInput(f"no report stage {stage!r}; known: {', '.join(TITLES)}")
    start = start_event(events)
    clock = clock_of(str(start.get("incident")), events)
    if clock is None:
        raise BadInput(f"incident {start.get('incident')} is not graded: `portalops incident grade` it first")
    state = RunState.replay([dict(e) for e in events])
    zh, en = TITLES[stage]
    lines = [
        f"# {zh} {en}",
        "",
        f"**草稿 DRAFT** generated {stamp(now)} from `incidents/{start.get('incident')}/`: 安全负责人审核、补全"
        f"{BLANK}、主管领导批准后由人工报送；本工具不发送任何内容。 / The security officer reviews it and fills the "
        "blanks, the head approves it, a person sends it; portalops sends nothing.",
        "",
        *_facts(events, inputs, clock, now),
    ]
    if clock.due is None:
        lines += ["", "注意：一般（IV）事件无需向监管部门报告 / Note: a grade IV incident need not be reported."]
    if stage == "initial":
        lines += _initial(events, state, now)
    elif stage == "follow-up":
        lines += ["", "## 进展 Progress", "", *_since(events, clock), *_initial(events, state, now)]
    else:
        lines += _final(events, state, clock)
    return "\n".join(lines) + "\n"
