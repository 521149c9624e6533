"""The service report as Markdown and as one self-contained, printable HTML page with inline SVG charts.

Chinese is the default; ``en`` gives the same report in English. Every text a section shows when its
source had nothing is said plainly ("Prometheus did not answer: availability unknown", "no incidents").
The charts are drawn here with the standard library: a chart is a few lines and rectangles.
"""

# ruff: noqa: RUF001 - Chinese text keeps its own full-width punctuation on purpose
from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from portalops.drill_report import human_bytes
from portalops.runbook.journal import parse_stamp
from portalops.runbook.workcal import TZ

TEXT: dict[str, dict[str, str]] = {
    "zh": {
        "title": "政府门户网站运维服务报告",
        "period": "报告期",
        "generated": "生成时间",
        "partial": "报告期尚未结束，数据截至生成时间。",
        "availability": "一、网站可用性（15 秒规则，95 % 否决线）",
        "site": "站点",
        "ratio": "报告期可用率",
        "margin": "距否决线",
        "under": "低于 95 % 的天数",
        "response": "响应时间（秒）",
        "per_day": "每日可用率",
        "phases": "各阶段响应时间 p95（秒）",
        "p95_days": "每日响应时间 p95（秒）",
        "slowest": "最慢的一天",
        "days_slow": "p95 超过 15 秒的天数",
        "off_scale": "（15 秒线远在图中数值之上，未画出）",
        "incidents": "二、事件",
        "no_incidents": "报告期内无事件。",
        "count": "事件总数",
        "level": "级别",
        "detected": "发现",
        "acknowledged": "响应",
        "called_back": "回电",
        "on_site": "到场",
        "resolved": "解决",
        "deadlines": "时限",
        "breached": "超时",
        "met": "按时",
        "pending": "未到期",
        "n/a": "不适用",
        "mttr": "平均修复时间（MTTR）趋势",
        "bucket": "时段",
        "mttr_s": "MTTR（秒）",
        "problems": "三、问题与已知错误",
        "no_problems": "报告期内无问题记录。",
        "status": "状态",
        "patches": "四、变更与补丁",
        "changes": "变更记录（剧本运行、处置动作、恢复）",
        "no_changes": "报告期内无变更记录。",
        "configuration": "报告期内的配置变更（CMDB 快照比较）",
        "compared": "比较的快照",
        "no_snapshots": "报告期可比较的 CMDB 快照不足两份，无法比较；用 portalops cmdb 记录一份快照。",
        "no_config_change": "两份快照之间没有变化。",
        "not_answering": "现在无应答、未比较的主机",
        "change": "变更",
        "detail": "内容",
        "hosts_added": "新增主机",
        "hosts_removed": "移除主机",
        "sites_added": "新增站点",
        "sites_removed": "移除站点",
        "backup_jobs_added": "新增备份作业",
        "backup_jobs_removed": "移除备份作业",
        "not_compared": "未比较",
        "os": "操作系统",
        "versions_changed": "软件包版本变更",
        "packages_added": "新装软件包",
        "packages_removed": "卸载软件包",
        "ports_opened": "新开端口",
        "ports_closed": "关闭端口",
        "certificates_renewed": "证书更新",
        "certificates_added": "新增证书",
        "certificates_removed": "移除证书",
        "kind": "类型",
        "by": "执行人",
        "no_patches": "报告期内无补丁运行报告。",
        "backups": "五、备份与恢复演练",
        "job": "备份作业",
        "all_ok": "期间全部成功",
        "last_success": "最近成功",
        "ok_share": "最近一次成功的时间占比",
        "max_added": "单次最大新增",
        "drills": "恢复演练（RTO/RPO）",
        "no_drills": "报告期内无恢复演练报告。",
        "rto_trend": "RTO 趋势（秒）",
        "audit": "六、安全审计（Lynis / ssh-audit / testssl）",
        "logs": "日志留存（不少于六个月）",
        "retention": "承诺留存（天）",
        "journal_since": "系统日志（journal）起始",
        "oldest_log": "最早日志",
        "days_kept": "已留存（天）",
        "no_audit": "报告期内无审计报告。",
        "inspections": "七、网站内容检查",
        "no_inspections": "报告期内无内容检查报告。",
        "fault_drills": "八、故障演练",
        "no_fault_drills": "报告期内无故障演练报告。",
        "yes": "是",
        "no": "否",
        "unknown": "未知",
        "unreadable": "无法读取",
        "started": "开始",
        "result": "结果",
        "pass": "通过",
        "fail": "失败",
        "hosts": "主机",
        "packages": "升级包",
        "no_backups": "Prometheus 中没有备份作业的数据。",
        "subject": "标题",
        "why": "说明",
        "fault": "故障 → 预案",
        "verdict": "判定",
    },
    "en": {
        "title": "County portal operations service report",
        "period": "Period",
        "generated": "Generated",
        "partial": "The period is not over yet: figures up to the generation time.",
        "availability": "1. Availability (15 s rule, 95 % veto line)",
        "site": "Site",
        "ratio": "Period availability",
        "margin": "Margin to the veto line",
        "under": "Days under 95 %",
        "response": "Response time (s)",
        "per_day": "Availability per day",
        "phases": "Response time p95 per phase (s)",
        "p95_days": "Response time p95 per day (s)",
        "slowest": "Slowest day",
        "days_slow": "Days with p95 over 15 s",
        "off_scale": " (the 15 s line lies far above the values: not drawn)",
        "incidents": "2. Incidents",
        "no_incidents": "No incidents in the period.",
        "count": "Incidents",
        "level": "Level",
        "detected": "Detected",
        "acknowledged": "Acknowledged",
        "called_back": "Called back",
        "on_site": "On site",
        "resolved": "Resolved",
        "deadlines": "Deadlines",
        "breached": "breached",
        "met": "met",
        "pending": "pending",
        "n/a": "n/a",
        "mttr": "MTTR trend",
        "bucket": "Interval",
        "mttr_s": "MTTR (s)",
        "problems": "3. Problems and known errors",
        "no_problems": "No problems recorded for the period.",
        "status": "Status",
        "patches": "4. Changes and patches",
        "changes": "Change records (playbook runs, runbook acts, restores)",
        "no_changes": "No change records in the period.",
        "configuration": "Configuration changes in the period (CMDB snapshots)",
        "compared": "Snapshots compared",
        "no_snapshots": "Fewer than two CMDB snapshots to compare for the period; portalops cmdb takes one.",
        "no_config_change": "No change between the two snapshots.",
        "not_answering": "Not compared, no answer now",
        "change": "Change",
        "detail": "Detail",
        "hosts_added": "hosts added",
        "hosts_removed": "hosts removed",
        "sites_added": "sites added",
        "sites_removed": "sites removed",
        "backup_jobs_added": "backup jobs added",
        "backup_jobs_removed": "backup jobs removed",
        "not_compared": "not compared",
        "os": "OS",
        "versions_changed": "package versions",
        "packages_added": "packages installed",
        "packages_removed": "packages removed",
        "ports_opened": "ports opened",
        "ports_closed": "ports closed",
        "certificates_renewed": "certificates renewed",
        "certificates_added": "certificates added",
        "certificates_removed": "certificates removed",
        "kind": "Kind",
        "by": "By",
        "no_patches": "No patch run reports in the period.",
        "backups": "5. Backups and restore drills",
        "job": "Backup job",
        "all_ok": "Every run succeeded",
        "last_success": "Last success",
        "ok_share": "Share of the period its last run was good",
        "max_added": "Most added by one run",
        "drills": "Restore drills (RTO/RPO)",
        "no_drills": "No restore drill reports in the period.",
        "rto_trend": "RTO trend (s)",
        "audit": "6. Security audit (Lynis / ssh-audit / testssl)",
        "logs": "Log retention (six months at least)",
        "retention": "Promised (days)",
        "journal_since": "Journal since",
        "oldest_log": "Oldest log",
        "days_kept": "Kept (days)",
        "no_audit": "No audit reports in the period.",
        "inspections": "7. Website content inspection",
        "no_inspections": "No inspection reports in the period.",
        "fault_drills": "8. Fault drills",
        "no_fault_drills": "No fault drill reports in the period.",
        "yes": "yes",
        "no": "no",
        "unknown": "unknown",
        "unreadable": "unreadable",
        "started": "Started",
        "result": "Result",
        "pass": "pass",
        "fail": "FAIL",
        "hosts": "Hosts",
        "packages": "Packages",
        "no_backups": "Prometheus has no data on backup jobs.",
        "subject": "Title",
        "why": "Note",
        "fault": "Fault → runbook",
        "verdict": "Verdict",
    },
}


def _pct(value: float | None, t: Mapping[str, str]) -> str:
    return t["unknown"] if value is None else f"{value * 100:.2f} %"


def _num(value: Any, t: Mapping[str, str]) -> str:
    return t["unknown"] if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _local(text: str | None, form: str = "%m-%d %H:%M") -> str:
    return "-" if not text else parse_stamp(text).astimezone(TZ).strftime(form)


def _ok(value: Any, t: Mapping[str, str]) -> str:
    return t["pass"] if value else t["fail"]


Table = tuple[str, list[str], list[list[str]], list[str]]  # heading, header, rows, notes


def sections(doc: Mapping[str, Any], t: Mapping[str, str]) -> list[Table]:
    """Each section: heading, table header, table rows, and plain lines (what is missing, and why)."""
    out: list[Table] = []
    avail = doc["availability"]
    head = [t["site"], t["ratio"], t["margin"], t["under"], "p50", "p95", "p99"]
    rows = [
        [
            s["site"],
            _pct(s["ratio"], t),
            t["unknown"] if s["margin"] is None else f"{s['margin'] * 100:+.2f} pp",
            str(len(s["days_under"])) if any(d["ratio"] is not None for d in s["days"]) else t["unknown"],
            *(_num(s[f"p{q}_s"], t) for q in (50, 95, 99)),
        ]
        for s in avail["sites"]
    ]
    notes = [avail["error"]] if avail["error"] else ([] if rows else [t["unknown"]])
    out.append((t["availability"], head, rows, notes))
    phases = sorted({p for s in avail["sites"] for p in s.get("phases_p95_s", {})}, key=_phase_order)
    rows = [[s["site"], *(_num(s["phases_p95_s"].get(p), t) for p in phases)] for s in avail["sites"]]
    if phases:
        out.append((t["phases"], [t["site"], *phases], rows, []))
    rows = []
    for s in avail["sites"]:
        known = [d for d in s["days"] if d.get("p95_s") is not None]
        worst = max(known, key=lambda d: d["p95_s"], default=None)
        if worst is not None:
            rows.append([s["site"], worst["day"], _num(worst["p95_s"], t), str(len(s["days_p95_over_limit"]))])
    notes = [avail["error"]] if avail["error"] else ([] if rows else [t["unknown"]])
    out.append((t["p95_days"], [t["site"], t["slowest"], "p95", t["days_slow"]], rows, notes))

    inc = doc["incidents"]
    head = [
        "ID",
        t["level"],
        t["detected"],
        t["acknowledged"],
        t["called_back"],
        t["on_site"],
        t["resolved"],
        t["deadlines"],
    ]
    rows = []
    for row in inc["items"]:
        flags = ", ".join(f"{f['title'].split(' ')[0]} {t.get(f['status'], f['status'])}" for f in row["deadlines"])
        rows.append(
            [
                f"{row['id']} {row['title']}",
                f"L{row['level']}",
                *(_local(row[k]) for k in ("detected", "acknowledged", "called_back", "on_site", "resolved")),
                flags or "-",
            ]
        )
    levels = ", ".join(f"{k}: {v}" for k, v in inc["by_level"].items())
    notes = (
        [f"{t['count']}: {inc['count']} ({levels}); {t['breached']}: {inc['breached']}"]
        if rows
        else [t["no_incidents"]]
    )
    notes += [f"{t['unreadable']}: {u}" for u in inc["unreadable"]]
    out.append((t["incidents"], head, rows, notes))
    trend = [[b["label"], str(b["resolved"]), _num(b["mttr_s"], t)] for b in inc["mttr_trend"]]
    out.append(
        (
            t["mttr"],
            [t["bucket"], t["resolved"], t["mttr_s"]],
            trend if inc["count"] else [],
            [] if inc["count"] else [t["no_incidents"]],
        )
    )

    prob = doc["problems"]
    rows = [[p["id"], p["title"], p["status"], ", ".join(p["incidents"]) or "-"] for p in prob["items"]]
    notes = [] if rows else [t["no_problems"]]
    notes += [f"{t['unreadable']}: {u}" for u in prob["unreadable"]]
    out.append((t["problems"], ["ID", t["subject"], t["status"], t["incidents"]], rows, notes))

    pat = doc["patches"]
    rows = [[_local(r["started"]), _ok(r["ok"], t), str(r["hosts"]), str(r["packages"]), r["why"]] for r in pat["runs"]]
    out.append(
        (
            t["patches"],
            [t["started"], t["result"], t["hosts"], t["packages"], t["why"]],
            rows,
            [] if rows else [t["no_patches"]],
        )
    )

    chg = doc["changes"]
    rows = [
        [
            f"{c['id']} {c['title']}",
            c["kind"],
            _local(c["started"]),
            c["by"],
            ", ".join(c["hosts"]) or "-",
            _ok(c["result"] == "ok", t),
        ]
        for c in chg["items"]
    ]
    notes = [] if rows else [t["no_changes"]]
    notes += [f"{t['unreadable']}: {u}" for u in chg["unreadable"]]
    head = ["ID", t["kind"], t["started"], t["by"], t["hosts"], t["result"]]
    out.append((t["changes"], head, rows, notes))
    out.append(configuration(doc["configuration"], t))

    back = doc["backups"]
    rows = [
        [
            f"{j['host']}: {j['job']}",
            t["yes"] if j["all_ok"] else t["no"],
            _pct(j.get("ok_share"), t),
            t["unknown"] if j.get("max_bytes_added") is None else human_bytes(int(j["max_bytes_added"])),
            _local(j["last_success"]),
        ]
        for j in back["jobs"]
    ]
    notes = [back["error"]] if back["error"] else ([] if rows else [t["no_backups"]])
    head = [t["job"], t["all_ok"], t["ok_share"], t["max_added"], t["last_success"]]
    out.append((t["backups"], head, rows, notes))
    dr = doc["restore_drills"]
    rows = [
        [_local(r["started"]), _ok(r["ok"], t), _num(r["rto_s"], t), _num(r["rpo_s"], t), r["checks"]]
        for r in dr["runs"]
    ]
    out.append(
        (
            t["drills"],
            [t["started"], t["result"], "RTO (s)", "RPO (s)", "checks"],
            rows,
            [] if rows else [t["no_drills"]],
        )
    )

    aud = doc["audit"]
    rows = [
        [
            _local(r["started"]),
            ", ".join(f"{h} {v if v is not None else '?'}" for h, v in r["lynis"].items()),
            str(r["ssh_failures"]),
            str(r["tls_problems"]),
        ]
        for r in aud["runs"]
    ]
    out.append(
        (t["audit"], [t["started"], "Lynis", "ssh-audit fail", "testssl"], rows, [] if rows else [t["no_audit"]])
    )

    logs = doc["logs"]
    rows = []
    for h in logs["hosts"]:
        journal = next((entry for entry in h["logs"] if entry["log"] == "journal"), None)
        rows.append(
            [
                h["host"],
                t["unknown"] if h["retention_days"] is None else str(h["retention_days"]),
                _local(journal["since"], "%Y-%m-%d") if journal else "-",
                f"{h['oldest']['log']}: {_local(h['oldest']['since'], '%Y-%m-%d')}",
                _num(h["oldest"]["days_kept"], t),
            ]
        )
    notes = [logs["error"]] if logs["error"] else []
    head = [t["hosts"], t["retention"], t["journal_since"], t["oldest_log"], t["days_kept"]]
    out.append((t["logs"], head, rows, notes))

    ins = doc["inspections"]
    verdict = {0: t["pass"], 1: t["fail"], 2: t["unknown"]}
    rows = [[_local(r["started"]), verdict.get(r["exit"], "?"), ", ".join(r["sites"])] for r in ins["runs"]]
    out.append((t["inspections"], [t["started"], t["result"], t["site"]], rows, [] if rows else [t["no_inspections"]]))

    fd = doc["fault_drills"]
    rows = [
        [
            _local(r["started"]),
            f"{r['fault']} → {r['runbook']}",
            str(r["outcome"]),
            _ok(r["ok"], t),
            _num(r["mttr_s"], t),
        ]
        for r in fd["runs"]
    ]
    out.append(
        (
            t["fault_drills"],
            [t["started"], t["fault"], t["result"], t["verdict"], "MTTR (s)"],
            rows,
            [] if rows else [t["no_fault_drills"]],
        )
    )
    return out


def _change_detail(value: Any) -> str:
    """A diff entry: a reason, a list of names, or names with their version (or ``[before, after]``)."""
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v[0]} → {v[1]}" if isinstance(v, list) else f"{k} {v}" for k, v in value.items())
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def configuration(section: Mapping[str, Any], t: Mapping[str, str]) -> Table:
    """The CMDB diff of the period's snapshots: one row per kind of change (per host), or why there is none."""
    changes = section["diff"]
    if changes is None:
        return t["configuration"], [], [], [t["no_snapshots"] if section["to"] is None else section["error"]]
    rows = [["-", t[k], _change_detail(changes[k])] for k in TOP_CHANGES if changes.get(k)]
    rows += [[host, t[k], _change_detail(v)] for host, found in changes["hosts"].items() for k, v in found.items()]
    notes = [f"{t['compared']}: {section['from']} → {section['to']}"]
    notes += [] if changes["changed"] else [t["no_config_change"]]
    notes += [f"{t['not_answering']}: {', '.join(changes['unreachable'])}"] if changes["unreachable"] else []
    return t["configuration"], [t["hosts"], t["change"], t["detail"]], rows, notes


TOP_CHANGES = (
    "hosts_added",
    "hosts_removed",
    "sites_added",
    "sites_removed",
    "backup_jobs_added",
    "backup_jobs_removed",
)
PHASES = ("resolve", "connect", "tls", "processing", "transfer")  # blackbox_exporter's, in the order they happen


def _phase_order(phase: str) -> tuple[int, str]:
    return (PHASES.index(phase) if phase in PHASES else len(PHASES), phase)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(doc: Mapping[str, Any], lang: str = "zh") -> str:
    t = TEXT[lang]
    lines = [f"# {t['title']} {doc['period']['id']}", ""]
    lines += [f"{t['period']}: {doc['period']['first_day']} – {doc['period']['last_day']}  "]
    lines += [f"{t['generated']}: {_local(doc['generated'], '%Y-%m-%d %H:%M')} (UTC+8)", ""]
    if not doc["complete"]:
        lines += [t["partial"], ""]
    return markdown_page(lines, sections(doc, t))


def markdown_page(top: Sequence[str], tables: Sequence[Table]) -> str:
    """``top`` lines, then each table under its heading, its notes above it."""
    lines = list(top)
    for heading, head, rows, notes in tables:
        lines += [f"## {heading}", ""]
        lines += [f"{n}  " for n in notes]
        if rows:
            lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


COLOURS = ("#1f5fa8", "#c0392b", "#27864b", "#8e44ad", "#d68910", "#17a2b8")


def line_chart(
    title: str,
    labels: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    line: float | None = None,
    low: float | None = None,
    high: float | None = None,
    percent: bool = False,
) -> str:
    """An SVG line chart: one polyline per series (gaps where a value is unknown), an optional target line."""
    width, height, left, right, top, bottom = 640, 240, 56, 120, 28, 36
    known = [v for values in series.values() for v in values if v is not None]
    lo = low if low is not None else min([*known, *([line] if line is not None else [])], default=0.0)
    hi = high if high is not None else max([*known, *([line] if line is not None else [])], default=1.0)
    if hi <= lo:
        hi = lo + 1.0
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(len(labels), 1)

    def x(i: int) -> float:
        return left + (plot_w * (i + 0.5) / n)

    def y(v: float) -> float:
        return top + plot_h * (1 - (min(max(v, lo), hi) - lo) / (hi - lo))

    def fmt(v: float) -> str:
        return f"{v * 100:.0f}%" if percent else f"{v:g}"

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
        f' role="img" aria-label="{html.escape(title)}">',
        f"<title>{html.escape(title)}</title>",
        f'<text x="{left}" y="16" font-size="13" font-weight="bold">{html.escape(title)}</text>',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>',
        f'<text x="{left - 4}" y="{top + 4}" font-size="10" text-anchor="end">{fmt(hi)}</text>',
        f'<text x="{left - 4}" y="{top + plot_h}" font-size="10" text-anchor="end">{fmt(lo)}</text>',
    ]
    step = max(1, n // 10)
    for i, label in enumerate(labels):
        if i % step == 0:
            parts.append(
                f'<text x="{x(i):.1f}" y="{height - 18}" font-size="9" text-anchor="middle">{html.escape(label)}</text>'
            )
    if line is not None:
        parts.append(
            f'<line x1="{left}" y1="{y(line):.1f}" x2="{left + plot_w}" y2="{y(line):.1f}" stroke="#c00"'
            f' stroke-dasharray="5,3"/><text x="{left + plot_w + 4}" y="{y(line) + 4:.1f}" font-size="10"'
            f' fill="#c00">{fmt(line)}</text>'
        )
    for k, (name, values) in enumerate(series.items()):
        colour = COLOURS[k % len(COLOURS)]
        run: list[str] = []
        for i, value in enumerate(values):
            if value is None:
                if len(run) > 1:
                    parts.append(
                        f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{" ".join(run)}"/>'
                    )
                run = []
                continue
            run.append(f"{x(i):.1f},{y(value):.1f}")
            parts.append(f'<circle cx="{x(i):.1f}" cy="{y(value):.1f}" r="2" fill="{colour}"/>')
        if len(run) > 1:
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{" ".join(run)}"/>')
        legend = f'x="{left + plot_w + 4}" y="{top + 14 + 14 * k}" font-size="10" fill="{colour}"'
        parts.append(f"<text {legend}>{html.escape(name)}</text>")
    parts.append("</svg>")
    return "".join(parts)


def charts(doc: Mapping[str, Any], t: Mapping[str, str]) -> dict[str, str]:
    """Section heading -> the SVG drawn under it."""
    found = {}
    avail = doc["availability"]
    if avail["sites"] and avail["days"]:
        series = {s["site"]: [d["ratio"] for d in s["days"]] for s in avail["sites"]}
        labels = [d[5:] for d in avail["days"]]
        known = [v for values in series.values() for v in values if v is not None]
        low = min([0.9, *known])
        found[t["availability"]] = line_chart(
            t["per_day"], labels, series, line=avail["target"], low=low, high=1.0, percent=True
        )
    drills = doc["restore_drills"]["runs"]
    if drills:
        labels = [_local(r["started"]) for r in drills]
        series = {"RTO": [r["rto_s"] for r in drills], "RPO": [r["rpo_s"] for r in drills]}
        found[t["drills"]] = line_chart(t["rto_trend"], labels, series, low=0.0)
    series = {s["site"]: [d.get("p95_s") for d in s["days"]] for s in avail["sites"]}
    known = [v for values in series.values() for v in values if v is not None]
    if known:
        limit = avail["limit_s"]
        drawn = max(known) >= limit / 3  # else the line would flatten every value onto the axis
        title = t["p95_days"] if drawn else t["p95_days"] + t["off_scale"]
        found[t["p95_days"]] = line_chart(
            title, [d[5:] for d in avail["days"]], series, line=limit if drawn else None, low=0.0
        )
    trend = doc["incidents"]["mttr_trend"]
    if doc["incidents"]["count"] and any(b["mttr_s"] is not None for b in trend):
        found[t["mttr"]] = line_chart(
            t["mttr_s"], [b["label"] for b in trend], {"MTTR": [b["mttr_s"] for b in trend]}, low=0.0
        )
    return found


STYLE = """
body{font-family:"Noto Sans CJK SC","Source Han Sans SC","WenQuanYi Micro Hei","Microsoft YaHei",sans-serif;
margin:2em;color:#222}
h1{font-size:1.5em;border-bottom:2px solid #1f5fa8;padding-bottom:.3em}
h2{font-size:1.15em;margin-top:1.6em;color:#1f5fa8}
table{border-collapse:collapse;margin:.5em 0;font-size:.85em}
th,td{border:1px solid #bbb;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#eef3fa}
p.note{color:#555}
.breached{color:#c00;font-weight:bold}
section{page-break-inside:avoid}
@page{size:A4;margin:1.5cm}
@media print{body{margin:0}a{color:inherit}}
"""


def _html_cell(text: str, t: Mapping[str, str]) -> str:
    escaped = html.escape(text)
    word = t["breached"]
    return escaped.replace(word, f'<span class="breached">{word}</span>') if word in text else escaped


def to_html(doc: Mapping[str, Any], lang: str = "zh") -> str:
    t = TEXT[lang]
    drawn = charts(doc, t)
    title = f"{t['title']} {doc['period']['id']}"
    body = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{t['period']}: {doc['period']['first_day']} – {doc['period']['last_day']}<br>"
        f"{t['generated']}: {_local(doc['generated'], '%Y-%m-%d %H:%M')} (UTC+8)</p>",
    ]
    if not doc["complete"]:
        body.append(f'<p class="note">{html.escape(t["partial"])}</p>')
    for heading, head, rows, notes in sections(doc, t):
        body.append(f"<section><h2>{html.escape(heading)}</h2>")
        body += [f'<p class="note">{html.escape(n)}</p>' for n in notes]
        if heading in drawn:
            body.append(f"<figure>{drawn[heading]}</figure>")
        if rows:
            body.append(
                "<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr></thead><tbody>"
            )
            body += ["<tr>" + "".join(f"<td>{_html_cell(c, t)}</td>" for c in row) + "</tr>" for row in rows]
            body.append("</tbody></table>")
        body.append("</section>")
    return (
        f'<!DOCTYPE html>\n<html lang="{"zh-CN" if lang == "zh" else "en"}"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
