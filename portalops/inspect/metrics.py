"""The inspection as Prometheus textfile metrics on the monitoring host, so alert rules warn before a veto.

``portalops inspect --metrics`` runs on the control node (portalops-inspect.timer), which no Prometheus
scrapes; the monitoring host's node_exporter reads a textfile directory (the exporters role's
``exporters_node_textfile_dir``). So each site's metrics go there over SSH, as runbook steps reach hosts,
one file per site (``portalops_inspect_<site>.prom``: inspecting one site leaves the others' as they
were), written beside it and renamed, so a scrape never reads half a file.

Series (gauges, labels ``site`` and ``item`` or ``section``):

- ``portalops_inspect_item_status``: 0 pass or not checked, 1 at risk, 2 failed, 3 cannot tell;
- ``portalops_inspect_findings``: the evidence lines of the item (posts with a sensitive word, broken links);
- ``portalops_inspect_section_age_days``: days since a section's newest item (classes with a limit);
- ``portalops_inspect_blank_sections``: blank sections and pages, as the veto counts them;
- ``portalops_inspect_last_run_timestamp_seconds``: when the inspection ran (a stale file says so).
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import shlex
from collections.abc import Mapping, Sequence

from portalops.inspect import veto
from portalops.inspect.site import SiteReport
from portalops.runbook.hosts import Host

TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"  # the exporters role's default exporters_node_textfile_dir
STATUS_VALUE = {veto.PASS: 0, veto.NOT_CHECKED: 0, veto.AT_RISK: 1, veto.FAIL: 2, veto.UNKNOWN: 3}
HELP = {
    "portalops_inspect_item_status": "Inspection item: 0 pass or not checked, 1 at risk, 2 failed, 3 cannot tell.",
    "portalops_inspect_findings": "Evidence lines of the inspection item (posts, links, sections).",
    "portalops_inspect_section_age_days": "Days since the newest item of a section with an update limit (its class).",
    "portalops_inspect_blank_sections": "Blank sections and pages of the site, as the veto counts them.",
    "portalops_inspect_last_run_timestamp_seconds": "When portalops inspect last inspected the site.",
}
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.3f}"


def blank_count(report: SiteReport) -> int:
    """Blank sections (categories without a post) and blank pages, as the veto counts them."""
    blank = sum(1 for section in report.sections if section["blank"])
    sections = next((i for i in report.items if i.id == "sections_not_updated"), None)
    return blank + (sum(1 for e in sections.evidence if e.startswith("blank page: ")) if sections else 0)


def exposition(report: SiteReport, now: dt.datetime) -> str:
    """One site's metrics in Prometheus' text format."""
    site = _label(report.site)
    series: dict[str, list[str]] = {name: [] for name in HELP}
    for item in report.items:
        labels = f'site="{site}",item="{_label(item.id)}"'
        series["portalops_inspect_item_status"].append(f"{{{labels}}} {STATUS_VALUE[item.status]}")
        series["portalops_inspect_findings"].append(f"{{{labels}}} {len(item.evidence)}")
    for section in report.sections:
        if section["class"] in veto.LIMIT_DAYS and section["age_days"] is not None:
            labels = f'site="{site}",section="{_label(section["slug"])}",class="{section["class"]}"'
            series["portalops_inspect_section_age_days"].append(f"{{{labels}}} {_number(section['age_days'])}")
    if report.sections:
        series["portalops_inspect_blank_sections"].append(f'{{site="{site}"}} {blank_count(report)}')
    series["portalops_inspect_last_run_timestamp_seconds"].append(f'{{site="{site}"}} {now.timestamp():.0f}')
    lines = []
    for name, samples in series.items():
        if samples:
            lines += [f"# HELP {name} {HELP[name]}", f"# TYPE {name} gauge", *(name + s for s in samples)]
    return "\n".join(lines) + "\n"


def file_name(site: str) -> str:
    return f"portalops_inspect_{_UNSAFE.sub('_', site)}.prom"


def write_command(directory: str, name: str, text: str) -> str:
    """A shell line writing ``text`` to ``directory/name`` atomically (a temporary name the collector skips)."""
    target = shlex.quote(f"{directory.rstrip('/')}/{name}")
    temporary = shlex.quote(f"{directory.rstrip('/')}/.{name}.tmp")
    data = base64.b64encode(text.encode()).decode()
    return (
        f"printf %s {data} | base64 -d > {temporary} && chmod 0644 {temporary} && mv -f {temporary} {target}"
        f" && echo {target}"
    )


def push(
    hosts: Mapping[str, Host], directories: Mapping[str, str], reports: Sequence[SiteReport], now: dt.datetime
) -> list[str]:
    """Each site's file on every monitoring host; what failed, one line each (empty: all delivered)."""
    failed = []
    for name, host in hosts.items():
        for report in reports:
            result = host.run(write_command(directories[name], file_name(report.site), exposition(report, now)), 30)
            if not result.ok:
                failed.append(f"{name}: {file_name(report.site)}: {result.why_unknown()}")
    return failed
