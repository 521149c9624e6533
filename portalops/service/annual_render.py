"""The annual form of one site as Markdown and as a printable HTML page (the service report's style), Chinese
first with English alongside; a blank for staff is printed as :data:`annual.BLANK`, never as an empty cell."""

# ruff: noqa: RUF001 - Chinese text keeps its own full-width punctuation on purpose
from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from portalops.service.render import STYLE, Table, _local, markdown_page

TITLE = "政府网站工作年度报表"
TITLE_EN = "Annual report of the government website"
CLASS_NAMES = {
    "dynamic": "动态 dynamic",
    "notice": "公告/政策 notice",
    "static": "概况 static",
    "exempt": "不计 exempt",
}
FIELD_HEAD = ["项目 Item", "数值 Value", "单位 Unit", "来源 Source"]


def _tables(doc: Mapping[str, Any], form: Mapping[str, Any]) -> list[Table]:
    """Heading, header, rows and notes of every table of the site's form, then the evidence behind it."""
    out: list[Table] = []
    for section in form["sections"]:
        rows = [
            [f"{f['zh']} / {f['en']}", f["value"], f["unit"], f["source"] or f.get("why") or "-"]
            for f in section["fields"]
        ]
        out.append(
            (f"{section['zh']} / {section['en']}", ["项目 Item", "数值 Value", "单位 Unit", "来源 Source"], rows, [])
        )
    posts = form["publishing"]
    rows = [
        [c["name"], c["slug"], CLASS_NAMES.get(c["class"], c["class"]), str(c["posts"])] for c in posts["categories"]
    ]
    notes = [posts["error"]] if posts.get("error") else []
    out.append(
        ("附：各栏目发布量 / Annex: items per section", ["栏目 Section", "slug", "类别 Class", "条 Items"], rows, notes)
    )
    cover = doc["logs"]["coverage"]
    notes = [
        f"日志覆盖 Days the logs cover: {cover['days_covered']} / {cover['days_so_far']}"
        f"（全年 of {cover['days_in_period']}）; 保留 kept {cover['retention_days']} 天 days",
        f"覆盖 covered: {', '.join(cover['covered']) or '-'}",
        f"缺失 missing: {', '.join(cover['missing']) or '-'}",
        *(f"无法读取 unreadable: {e}" for e in doc["logs"]["errors"]),
    ]
    seen = form["visits"] or {"days": {}}
    rows = [[day, str(f["views"]), str(f["visitors"])] for day, f in seen["days"].items()]
    out.append(
        ("附：访问量按日 / Annex: visits per day", ["日期 Day", "访问量 Visits", "独立用户 Visitors"], rows, notes)
    )
    secure = doc["security"]
    rows = [
        [name, str(len(runs)), ", ".join(_local(r, "%Y-%m-%d") for r in runs) or "-"]
        for name, runs in secure["runs"].items()
    ]
    notes = [
        f"发现问题 problems found: {', '.join(secure['problems_found']) or '-'}",
        f"整改 corrected: {', '.join(secure['problems_fixed']) or '-'}",
        *(f"无法读取 unreadable: {u}" for u in secure["unreadable"]),
    ]
    if doc["monitoring"]["error"]:
        notes.append(f"监测 monitoring: {doc['monitoring']['error']}")
    out.append(("附：安全检查与演练 / Annex: checks and drills", ["报告 Reports", "次 Runs", "日期 Days"], rows, notes))
    return out


def _heading(doc: Mapping[str, Any], form: Mapping[str, Any]) -> tuple[str, str]:
    return f"{TITLE}（{doc['year']}年度）", f"{TITLE_EN}, {doc['year']}: {form['title']}"


def markdown(doc: Mapping[str, Any], form: Mapping[str, Any]) -> str:
    zh, en = _heading(doc, form)
    lines = [f"# {zh}", "", f"{en}  ", f"生成时间 Generated: {_local(doc['generated'], '%Y-%m-%d %H:%M')} (UTC+8)  "]
    lines += [f"标记为“{doc['blank']}”的项目由人工填写。", ""]
    return markdown_page(lines, _tables(doc, form))


def to_html(doc: Mapping[str, Any], form: Mapping[str, Any]) -> str:
    zh, en = _heading(doc, form)
    blank = html.escape(doc["blank"])
    body = [
        f"<h1>{html.escape(zh)}</h1>",
        f"<p>{html.escape(en)}<br>生成时间 Generated: {_local(doc['generated'], '%Y-%m-%d %H:%M')} (UTC+8)</p>",
        f'<p class="note">标记为“<span class="blank">{blank}</span>”的项目由人工填写。</p>',
    ]
    for heading, head, rows, notes in _tables(doc, form):
        body.append(f"<section><h2>{html.escape(heading)}</h2>")
        body += [f'<p class="note">{html.escape(n)}</p>' for n in notes]
        if rows:
            body.append("<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr></thead>")
            for row in rows:
                cells = [f'<span class="blank">{blank}</span>' if c == doc["blank"] else html.escape(c) for c in row]
                body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
            body.append("</table>")
        body.append("</section>")
    style = STYLE + ".blank{color:#a60;font-style:italic}\n"
    return (
        f'<!DOCTYPE html>\n<html lang="zh-CN"><head><meta charset="utf-8"><title>{html.escape(zh)}</title>'
        f"<style>{style}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
