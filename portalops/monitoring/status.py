"""``portalops status``: each site now, its availability under the 15 s rule, open incidents, firing alerts.

Gathered, then judged by one function (:func:`verdict`): ``broken`` when a site is down or defaced or
under the veto line, an alert fires or an open incident owes a deadline already past; else ``unknown``
when Prometheus or Alertmanager did not answer or a site has no probe now; else ``ok``. A figure that
could not be read is ``None`` ("unknown"), never "up".

An incident is open while someone still has to act on it (its lifecycle state is new or acknowledged);
its state and every deadline's flag (met, breached, pending, n/a) are those of
:mod:`portalops.runbook.lifecycle`, the one place that says when a deadline is met.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from portalops.errors import ExitCode
from portalops.monitoring.api import Alertmanager, AmAlert, Prometheus, Sample, Unreachable
from portalops.runbook import lifecycle
from portalops.runbook.grading import clock_of
from portalops.runbook.journal import parse_stamp, read_events, stamp
from portalops.runbook.workcal import local_text, span

PROBE_JOB = "http_portal"
DEFACEMENT_JOB = "http_portal_defacement"
QUERIES = {
    "probes": f'probe_success{{job=~"{PROBE_JOB}|{DEFACEMENT_JOB}"}}',
    "ratio_24h": "avg by (site) (portalops:probe_loaded:ratio_24h)",
    "ratio_7d": "portalops:site_availability:ratio_7d",
    "margin_7d": "portalops:site_availability:veto_margin_7d",
}
WATCHDOG = "Watchdog"


@dataclass
class Site:
    name: str
    state: str = "unknown"  # up | down | defaced | unknown
    domains: dict[str, str] = field(default_factory=dict)  # domain -> up | down | defaced
    ratio_24h: float | None = None
    ratio_7d: float | None = None
    veto_margin_7d: float | None = None


@dataclass(frozen=True)
class Due:
    """One deadline as :func:`portalops.runbook.lifecycle.flags` judged it."""

    name: str  # respond | callback | onsite
    title: str  # 回电 call back
    due: str  # UTC stamp
    left_s: float  # negative: past due
    status: str  # met | breached | pending | n/a
    at: str = ""  # when its evidence was journalled, else empty
    evidence: str = ""  # who did what (or why none is needed)

    @property
    def owed(self) -> bool:
        """Past due and nothing recorded yet: someone must act now."""
        return self.status == "breached" and not self.at


@dataclass
class Incident:
    incident: str
    runbook: str
    level: int
    title_zh: str
    title_en: str
    detected: str
    opened_by: str
    state: str  # new | acknowledged (portalops.runbook.lifecycle)
    deadlines: list[Due] = field(default_factory=list)
    report: str = ""  # the regulator's report clock, when graded 较大 or above
    report_overdue: bool = False

    @property
    def overdue(self) -> list[str]:
        late = [d.title for d in self.deadlines if d.owed]
        return [*late, "报告 report"] if self.report_overdue else late


@dataclass(frozen=True)
class Firing:
    name: str
    level: str
    severity: str
    site: str
    instance: str
    summary: str
    since: str


@dataclass
class Status:
    now: datetime
    prometheus: str
    alertmanager: str
    prometheus_error: str = ""
    alertmanager_error: str = ""
    sites: list[Site] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)
    alerts: list[Firing] = field(default_factory=list)
    watchdog: str = ""  # when Alertmanager last heard the Watchdog, empty: not firing or unknown


def sites_from(samples: Mapping[str, Sequence[Sample]], names: Iterable[str]) -> list[Site]:
    """One row per site: the inventory's names first, then any other the probes name."""
    found = {s.labels.get("site", "") for group in samples.values() for s in group} - {""}
    sites = {name: Site(name) for name in [*names, *sorted(found - set(names))]}
    for sample in samples.get("probes", []):
        site = sites[sample.labels.get("site", "")] if sample.labels.get("site") in sites else None
        if site is None:
            continue
        domain = sample.labels.get("domain") or sample.labels.get("instance", "?")
        ok = sample.value == 1
        if sample.labels.get("job") == DEFACEMENT_JOB:
            if not ok:
                site.domains[domain] = "defaced"
        elif site.domains.get(domain) != "defaced":
            site.domains[domain] = "up" if ok else "down"
    for site in sites.values():
        states = set(site.domains.values())
        site.state = next((s for s in ("defaced", "down", "up") if s in states), "unknown")
    for key, attribute in (("ratio_24h", "ratio_24h"), ("ratio_7d", "ratio_7d"), ("margin_7d", "veto_margin_7d")):
        for sample in samples.get(key, []):
            if sample.labels.get("site") in sites:
                setattr(sites[sample.labels["site"]], attribute, sample.value)
    return list(sites.values())


def query(prometheus: Prometheus, keys: Sequence[str] = tuple(QUERIES)) -> dict[str, list[Sample]]:
    """The answers to :data:`QUERIES` (``keys`` of them); :class:`Unreachable` when one is not answered."""
    return {key: prometheus.query(QUERIES[key]) for key in keys}


def availability_7d(prometheus: Prometheus, names: Sequence[str]) -> list[Site]:
    """Each site's 7-day availability under the 15 s rule and its margin to the veto line, as ``status``
    shows them (``None``: no figure recorded for the site); :class:`Unreachable` when Prometheus does not
    answer. ``portalops inspect`` reports them."""
    return sites_from(query(prometheus, ("ratio_7d", "margin_7d")), names)


OPEN = (lifecycle.State.NEW, lifecycle.State.ACKNOWLEDGED)


def is_open(events: list[dict[str, Any]]) -> bool:
    """Not yet resolved (by a person or a runbook's verified recovery) nor closed: someone must act."""
    return any(e.get("event") == "start" for e in events) and lifecycle.state_of(events) in OPEN


def dues(events: list[dict[str, Any]], now: datetime) -> list[Due]:
    """Every deadline of the incident with the flag :func:`lifecycle.flags` computes, counting down from ``now``."""
    return [
        Due(
            flag.name,
            flag.title,
            stamp(flag.due),
            round((flag.due - now).total_seconds(), 1),
            flag.status,
            stamp(flag.at) if flag.at else "",
            flag.how,
        )
        for flag in lifecycle.flags(events, now)
    ]


def open_incidents(root: Path, now: datetime) -> list[Incident]:
    """Every open incident under ``root``, oldest first, with its deadlines counting down from ``now``."""
    found = []
    for path in sorted(root.glob("*/journal.jsonl")):
        events = read_events(path)
        if not is_open(events):
            continue
        start = next(e for e in events if e.get("event") == "start")
        name = path.parent.name
        deadlines = dues(events, now)
        clock = clock_of(name, events)
        found.append(
            Incident(
                incident=name,
                runbook=str(start.get("runbook", "")),
                level=int(start.get("level") or 0),
                title_zh=str(start.get("title_zh", "")),
                title_en=str(start.get("title_en", "")),
                detected=str(start.get("detected") or start.get("ts", "")),
                opened_by=str(start.get("opened_by") or start.get("user", "")),
                state=str(lifecycle.state_of(events)),
                deadlines=deadlines,
                report=clock.status(now) if clock is not None and clock.due is not None else "",
                report_overdue=clock is not None and clock.overdue(now),
            )
        )
    return found


def firing_from(alerts: Sequence[AmAlert]) -> list[Firing]:
    """Alerts a person must see: the Watchdog (always firing, severity none) is the pipeline's heartbeat, not one."""
    return [
        Firing(
            a.name,
            a.labels.get("level", ""),
            a.labels.get("severity", ""),
            a.labels.get("site", ""),
            a.labels.get("instance", ""),
            a.annotations.get("summary", ""),
            stamp(a.starts_at),
        )
        for a in sorted(alerts, key=lambda a: (a.labels.get("level", "L9"), a.starts_at))
        if a.name != WATCHDOG and a.labels.get("severity") != "none"
    ]


def collect(
    prometheus: Prometheus, alertmanager: Alertmanager, incidents: Path, now: datetime, sites: Sequence[str] = ()
) -> Status:
    status = Status(now, prometheus.url, alertmanager.url)
    samples: dict[str, list[Sample]] = {}
    try:
        samples = query(prometheus)
    except Unreachable as exc:
        status.prometheus_error = str(exc)
        samples = {}  # a half-answered set of figures is not shown as if whole
    status.sites = sites_from(samples, sites)
    try:
        firing = alertmanager.firing()
    except Unreachable as exc:
        status.alertmanager_error = str(exc)
    else:
        status.alerts = firing_from(firing)
        watchdog = [a for a in firing if a.name == WATCHDOG]
        status.watchdog = stamp(max(a.updated_at for a in watchdog)) if watchdog else ""
    status.incidents = open_incidents(incidents, now)
    return status


def problems(status: Status) -> tuple[list[str], list[str]]:
    """What is broken, and what cannot be told."""
    broken, unknown = [], []
    for site in status.sites:
        if site.state in ("down", "defaced"):
            broken.append(f"site {site.name} {site.state}")
        elif site.state == "unknown":
            unknown.append(f"site {site.name}: no probe result")
        if site.veto_margin_7d is not None and site.veto_margin_7d < 0:
            broken.append(f"site {site.name} under the 7-day veto line")
        elif site.veto_margin_7d is None and not status.prometheus_error:
            unknown.append(f"site {site.name}: no 7-day availability (recording rules not evaluated yet)")
    broken += [f"alert {a.name} firing" + (f" ({a.site})" if a.site else "") for a in status.alerts]
    for incident in status.incidents:
        if incident.overdue:
            broken.append(f"incident {incident.incident} overdue: {', '.join(incident.overdue)}")
    if status.prometheus_error:
        unknown.insert(0, f"Prometheus: {status.prometheus_error}")
    if status.alertmanager_error:
        unknown.append(f"Alertmanager: {status.alertmanager_error}")
    elif not status.watchdog:
        unknown.append("the Watchdog alert is not firing: the alerting pipeline may be dead")
    if not status.sites and not status.prometheus_error:
        unknown.append("Prometheus knows no probed site")
    return broken, unknown


def verdict(status: Status) -> tuple[str, ExitCode]:
    broken, unknown = problems(status)
    if broken:
        return "broken", ExitCode.FAILED
    if unknown:
        return "unknown", ExitCode.UNKNOWN
    return "ok", ExitCode.OK


def to_json(status: Status) -> str:
    word, code = verdict(status)
    broken, unknown = problems(status)
    body = {
        "generated": stamp(status.now),
        "verdict": word,
        "exit": int(code),
        "broken": broken,
        "unknown": unknown,
        "prometheus": {"url": status.prometheus, "error": status.prometheus_error or None},
        "alertmanager": {"url": status.alertmanager, "error": status.alertmanager_error or None},
        "watchdog_updated": status.watchdog or None,
        "sites": [asdict(s) for s in status.sites],
        "incidents": [{**asdict(i), "overdue": i.overdue} for i in status.incidents],
        "alerts": [asdict(a) for a in status.alerts],
    }
    return json.dumps(body, ensure_ascii=False, indent=2)


def _ratio(value: float | None) -> str:
    return "unknown" if value is None else f"{value * 100:.2f} %"


def _margin(value: float | None) -> str:
    return "unknown" if value is None else f"{value * 100:+.2f} pp"


def _cell(text: str, width: int, right: bool = False) -> str:
    """Padded to ``width`` terminal columns: a Chinese character takes two."""
    used = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)
    fill = " " * max(0, width - used)
    return fill + text if right else text + fill


def _left(seconds: float) -> str:
    return f"OVERDUE by {span(seconds)}" if seconds < 0 else f"{span(seconds)} left"


def _flag(due: Due) -> str:
    if due.status == "pending" or due.owed:
        return _left(due.left_s)
    if due.status == "n/a":
        return f"n/a: {due.evidence}"
    at = local_text(parse_stamp(due.at))
    return f"{'met' if due.status == 'met' else 'BREACHED, late'} {at}: {due.evidence}"


def format_table(status: Status) -> str:
    word, code = verdict(status)
    broken, unknown = problems(status)
    age = (status.now - parse_stamp(status.watchdog)).total_seconds() if status.watchdog else 0.0
    heard = f"Watchdog updated {age:.0f} s ago" if status.watchdog else "Watchdog NOT firing"
    lines = [
        f"portalops status  {local_text(status.now)} = {stamp(status.now)}",
        f"Prometheus    {status.prometheus}  "
        + (f"UNREACHABLE: {status.prometheus_error}" if status.prometheus_error else "ok"),
        f"Alertmanager  {status.alertmanager}  "
        + (f"UNREACHABLE: {status.alertmanager_error}" if status.alertmanager_error else f"ok, {heard}"),
        "",
        " ".join(
            [
                _cell("站点 site", 14),
                _cell("状态 state", 12),
                _cell("24 h", 9, True),
                _cell("7 天 7 d", 9, True),
                _cell("否决余量 veto margin", 22, True),
                " 域名 domains",
            ]
        ),
    ]
    for site in status.sites:
        domains = ", ".join(f"{d} {s}" for d, s in sorted(site.domains.items())) or "-"
        lines.append(
            f"{site.name:<14} {site.state:<12} {_ratio(site.ratio_24h):>9} {_ratio(site.ratio_7d):>9}"
            f" {_margin(site.veto_margin_7d):>22}  {domains}"
        )
    if not status.sites:
        lines.append("(no site known)")
    lines += ["", f"未结事件 open incidents: {len(status.incidents)}"]
    for incident in status.incidents:
        level = f"L{incident.level}" if incident.level else "L?"
        detected = f"  detected {local_text(parse_stamp(incident.detected))}" if incident.detected else ""
        lines.append(
            f"  {incident.incident}  {level}  {incident.state}  {incident.title_zh} / {incident.title_en}{detected}"
        )
        for d in incident.deadlines:
            due = local_text(parse_stamp(d.due))
            lines.append(f"    {_cell(d.title, 14)} due {due}  {_flag(d)}")
        if incident.report:
            lines.append(f"    报告 report      {incident.report}")
    lines += ["", f"告警 firing alerts: {'unknown' if status.alertmanager_error else len(status.alerts)}"]
    for alert in status.alerts:
        where = " ".join(f"{k}={v}" for k, v in (("site", alert.site), ("instance", alert.instance)) if v)
        lines.append(
            f"  {alert.name:<28} {alert.level or alert.severity:<4} {where}  since {alert.since}  {alert.summary}"
        )
    lines += ["", f"结论 verdict: {word} (exit {int(code)})"]
    lines += [f"  broken: {p}" for p in broken] + [f"  unknown: {p}" for p in unknown]
    return "\n".join(lines)
