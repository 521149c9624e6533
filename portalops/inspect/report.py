"""Every site of the inventory inspected, and the result as the indicators' self-check table.

The inventory is read the way ``portalops probe`` reads it (rendered by Ansible, so templated
values such as the lab's CA directory resolve): ``portal_sites`` (with optional ``sections``),
``portal_public_url``, the web hosts' CA files, plus ``portalops_sensitive_words`` (the customer's
list; the repository ships none) and ``portalops_inspect_error_patterns`` (regular expressions of the
error texts a page answering 200 must not show; default :data:`pages.DEFAULT_ERROR_PATTERNS`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from portalops.errors import BadInput, EnvironmentProblem, ExitCode
from portalops.inspect import availability, interaction, metrics, pages, scheduled, veto
from portalops.inspect.site import Settings, SiteReport, inspect_site
from portalops.inventory import Inventory
from portalops.monitoring import api, endpoints
from portalops.probe import PROBE_VARS, targets_from_vars
from portalops.resolve import CONNECTION_VARS, resolve_vars
from portalops.runbook.hosts import SshHost
from portalops.runbook.live import connections_for

INSPECT_VARS = {
    **PROBE_VARS,
    **CONNECTION_VARS,  # the first CMS host's, where the scheduled posts are read (:mod:`scheduled`)
    "words": "portalops_sensitive_words | default([])",
    "error_patterns": "portalops_inspect_error_patterns | default(none)",
    # Where Prometheus answers, by portalops status' rule (portalops.monitoring.endpoints).
    "lab_publish": "lab_publish | default([])",
    "ansible_host": "ansible_host | default(inventory_hostname)",
    "monitoring_prometheus_listen_address": "monitoring_prometheus_listen_address | default(none)",
}


def settings_from_vars(
    hostvars: dict[str, dict[str, Any]], depth: int, max_requests: int, time_budget: float
) -> tuple[Settings, list[dict[str, Any]]]:
    """The settings and the sites (name, domains, checked sections) from rendered inventory variables."""
    url, _targets, _forbidden, cafiles = targets_from_vars(hostvars)
    first = next(v for v in hostvars.values() if v.get("url"))
    words = first.get("words") or []
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
        raise BadInput("portalops_sensitive_words must be a list of strings")
    patterns = first.get("error_patterns")
    if patterns is None:
        patterns = list(pages.DEFAULT_ERROR_PATTERNS)
    if not isinstance(patterns, list) or not all(isinstance(p, str) and p for p in patterns):
        raise BadInput("portalops_inspect_error_patterns must be a list of regular expressions")
    try:
        pages.compile_patterns(patterns)
    except ValueError as exc:
        raise BadInput(f"portalops_inspect_error_patterns: {exc}") from exc
    sites = []
    for site in first.get("sites") or []:
        if not site.get("domains"):
            continue
        try:
            sections = veto.check_sections(site.get("sections"))
            source = interaction.check_source(site.get("interaction_source"))
        except ValueError as exc:
            raise BadInput(f"portal_sites {site.get('name')}: {exc}") from exc
        sites.append(
            {
                "name": str(site["name"]),
                "domains": [str(d) for d in site["domains"]],
                "sections": sections,
                "interaction_source": source,
            }
        )
    settings = Settings(url, cafiles, words, patterns, depth, max_requests, time_budget)
    return settings, sites


def prometheus_from_vars(
    hostvars: dict[str, dict[str, Any]], source: str, given: str = "", timeout: float = api.TIMEOUT
) -> api.Prometheus | None:
    """``given``, else the monitoring host's Prometheus as ``portalops status`` finds it; None without one."""
    if given:
        return api.Prometheus(given, timeout)
    monitoring = [h for h, v in hostvars.items() if endpoints.GROUP in (v.get("groups") or [])]
    if not monitoring:
        return None
    rendered = {h: {k: v for k, v in hostvars[h].items() if v is not None} for h in monitoring}
    inventory = Inventory(str(source), rendered, {endpoints.GROUP: monitoring})
    return api.Prometheus(endpoints.from_inventory(inventory, alertmanager="-").prometheus, timeout)


def load_sites(
    source: str | Path,
    site: str = "",
    depth: int = 2,
    max_requests: int = 300,
    time_budget: float = 120.0,
    cafiles: Sequence[str] = (),
) -> tuple[dict[str, dict[str, Any]], Settings, list[dict[str, Any]]]:
    """The rendered inventory variables, the settings and the sites (``site``: only that one) to inspect."""
    if not Path(source).exists():
        raise BadInput(f"inventory not found: {source}")
    hostvars = resolve_vars(source, ["all"], INSPECT_VARS, exact=False)
    settings, sites = settings_from_vars(hostvars, depth, max_requests, time_budget)
    settings.cafiles = [*cafiles, *settings.cafiles]
    if site:
        sites = [s for s in sites if s["name"] == site]
        if not sites:
            raise BadInput(f"no site {site!r} in portal_sites")
    return hostvars, settings, sites


def inspect_inventory(
    source: str | Path,
    site: str = "",
    depth: int = 2,
    max_requests: int = 300,
    time_budget: float = 120.0,
    cafiles: Sequence[str] = (),
    now: dt.datetime | None = None,
    prometheus: str = "",
) -> list[SiteReport]:
    """``prometheus``: its URL, else the inventory's monitoring host (none: availability not checked)."""
    hostvars, settings, sites = load_sites(source, site, depth, max_requests, time_budget, cafiles)
    figures = availability.read(prometheus_from_vars(hostvars, str(source), prometheus), [s["name"] for s in sites])
    held_back = scheduled.read_sites(hostvars, sites)
    moment = now or utc_now()
    return [
        inspect_site(
            s["name"],
            s["domains"],
            s["sections"],
            settings,
            moment,
            figure=figures.get(s["name"], availability.NOT_MEASURED),
            interaction_source=s["interaction_source"],
            held_back=held_back.get(s["name"]),
        )
        for s in sites
    ]


def push_metrics(source: str | Path, reports: Sequence[SiteReport], now: dt.datetime) -> list[str]:
    """Every site's metrics into the textfile directory of each monitoring host (:mod:`metrics`); where they went."""
    expressions = {
        **CONNECTION_VARS,
        "textfile_dir": f"exporters_node_textfile_dir | default({metrics.TEXTFILE_DIR!r})",
    }
    rendered = resolve_vars(source, [endpoints.GROUP], expressions, exact=False)  # none: BadInput, naming it
    hosts = {name: SshHost(c) for name, c in connections_for(rendered, sorted(rendered)).items()}
    try:
        failed = metrics.push(hosts, {h: str(v["textfile_dir"]) for h, v in rendered.items()}, reports, now)
    finally:
        for host in hosts.values():
            host.close()
    if failed:
        raise EnvironmentProblem("inspection metrics not delivered: " + "; ".join(failed))
    return [f"{h}:{rendered[h]['textfile_dir']}" for h in sorted(hosts)]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


VERDICTS = {
    ExitCode.OK: "通过 / pass",
    ExitCode.FAILED: "不合格 / a veto item failed",
    ExitCode.UNKNOWN: "无法判断 / cannot tell",
}


def exit_code(reports: Sequence[SiteReport]) -> ExitCode:
    return veto.exit_status(r.status for r in reports)


def to_json(reports: Sequence[SiteReport], now: dt.datetime) -> str:
    document = {
        "time_utc": now.isoformat(timespec="seconds"),
        "exit": int(exit_code(reports)),
        "sites": [asdict(r) for r in reports],
    }
    return json.dumps(document, indent=2, ensure_ascii=False)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _availability(figure: availability.Figure) -> str:
    if not figure.source:
        return "未检查 / not checked (no monitoring)"
    if figure.ratio_7d is None or figure.veto_margin_7d is None:
        return f"无法判断 / unknown ({figure.error or 'no figure recorded for the site'})"
    return f"{figure.ratio_7d * 100:.2f} %, 否决余量 / veto margin {figure.veto_margin_7d * 100:+.2f} pp"


def markdown(reports: Sequence[SiteReport], now: dt.datetime) -> str:
    verdict = VERDICTS[exit_code(reports)]
    lines = [
        "# 政府网站检查自查 / Government website inspection self-check",
        "",
        f"时间 / Time (UTC): {now:%Y-%m-%d %H:%M}  ",
        f"结论 / Verdict: **{verdict}**",
        "",
        "依据 / Basis: 「政府网站与政务新媒体检查指标」(2019) 单项否决指标 (single-veto items) and deductions.",
    ]
    for r in reports:
        lines += [
            "",
            f"## {r.site} ({r.domain}): {veto.STATUS_ZH[r.status]} / {r.status}",
            "",
            "| 指标 / Item | 否决 / Veto | 结果 / Result | 余量 / Margin |",
            "|---|---|---|---|",
        ]
        for item in r.items:
            lines.append(
                f"| {item.zh} / {item.en} | {'是 / yes' if item.veto else '否 / no'} |"
                f" {veto.STATUS_ZH[item.status]} / {item.status} | {_cell(item.margin)} |"
            )
        lines += ["", f"7 天可用率 (15 秒) / 7-day availability (15 s rule): {_availability(r.availability_7d)}"]
        evidence = [(item, e) for item in r.items for e in item.evidence]
        if evidence:
            lines += ["", "### 证据 / Evidence", ""]
            lines += [f"- {item.zh} / {item.en}: {_cell(e)}" for item, e in evidence]
        if r.sections:
            lines += [
                "",
                "### 栏目 / Sections",
                "",
                "| 栏目 / Section | 类别 / Class | 文章 / Posts | 最近更新 / Newest (UTC) | 天 / Days |",
                "|---|---|---|---|---|",
            ]
            for s in r.sections:
                newest = (s["newest_utc"] or "-")[:16].replace("T", " ")
                days = "-" if s["age_days"] is None else str(s["age_days"])
                lines.append(f"| {_cell(s['name'])} ({s['slug']}) | {s['class']} | {s['posts']} | {newest} | {days} |")
        if r.stats:
            lines += ["", "统计 / Stats: " + ", ".join(f"{k} {v}" for k, v in r.stats.items())]
    return "\n".join(lines) + "\n"


def write_reports(reports: Sequence[SiteReport], now: dt.datetime, out_dir: Path) -> Path:
    """``<out_dir>/<UTC>.md`` and ``.json``; the Markdown's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    base = out_dir / now.strftime("%Y%m%dT%H%M%SZ")
    base.with_suffix(".json").write_text(to_json(reports, now) + "\n", encoding="utf-8")
    base.with_suffix(".md").write_text(markdown(reports, now), encoding="utf-8")
    return base.with_suffix(".md")
