"""The service report's figures, gathered from what the system already records; nothing is typed in.

Sources: the incident journals (their lifecycle and deadline flags from
:mod:`portalops.runbook.lifecycle`, never recomputed), the problem records, the JSON reports under
``reports/`` (patch, restore drills, audit, inspection, fault drills; each file named by its UTC
start), Prometheus' HTTP API (availability under the 15 s rule, response-time percentiles per period
and per day, backup jobs) and the CMDB's dated snapshots (``reports/cmdb/``, their diff). A source
without data for the period is said to be so (``error`` or an empty list): a number that could not be
read is never shown as one. Gathering does the I/O; :func:`incidents_section`
and the other ``*_section`` functions are pure, so the report is testable on recorded files.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from portalops.cmdb import diff as cmdb_diff
from portalops.cmdb import run as cmdb_run
from portalops.errors import BadInput
from portalops.monitoring.api import Prometheus, Sample, Series, Unreachable
from portalops.runbook import lifecycle
from portalops.runbook.journal import detected_at, parse_stamp, read_events, stamp
from portalops.runbook.workcal import TZ
from portalops.service import changes, problems
from portalops.service.period import Period

TARGET = 0.95  # the inspection's availability line (monitoring_availability_target)
LOADED = "portalops:probe_loaded:15s"  # the recording rule: 1 when a probe loaded within 15 s
LIMIT_S = 15.0  # ...and the rule's limit: a page slower than that did not load
QUANTILES = (0.5, 0.95, 0.99)
REPORT_DIRS = {
    "patches": "patch",
    "restore_drills": "drills",
    "audit": "audit",
    "inspections": "inspect",
    "fault_drills": "fault-drills",
}
LIFECYCLE = ("acknowledged", "called_back", "on_site", "resolved")


def _first(events: Sequence[Mapping[str, Any]], kind: str) -> str | None:
    event = next((e for e in events if e.get("event") == kind), None)
    return str(event["ts"]) if event else None


def incident_row(name: str, events: Sequence[Mapping[str, Any]], now: datetime) -> dict[str, Any]:
    """One incident: its clocks from detection to resolution and each deadline as lifecycle flags it."""
    start = next(e for e in events if e.get("event") == "start")
    detected = detected_at(start)
    times = {kind: _first(events, kind) for kind in LIFECYCLE}
    if times["acknowledged"] is None and not start.get("opened_by"):
        times["acknowledged"] = str(start["ts"])  # a person started the runbook: that is the response
    resolved = lifecycle.resolved_at(events)
    times["resolved"] = stamp(resolved) if resolved else None
    return {
        "id": name,
        "level": int(start.get("level") or 0),
        "title": lifecycle.title_of(start),
        "opened_by": str(start.get("opened_by") or "runbook"),
        "state": str(lifecycle.state_of(events)),
        "detected": stamp(detected),
        **times,
        "ttr_s": round((resolved - detected).total_seconds(), 1) if resolved else None,
        # as `portalops incident list --json` shows them: lifecycle is the one source of the flags
        "deadlines": [f.as_dict(now) for f in lifecycle.flags(events, now)],
    }


def _mean(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 1) if values else None


def _bucket(period: Period, moment: datetime) -> str:
    local = moment.astimezone(TZ)
    if period.kind == "month":
        week = (local.day - 1) // 7 + 1
        return f"{local:%m}-W{week}"  # days 1-7, 8-14...
    return f"{local:%Y-%m}"


def _buckets(period: Period) -> list[str]:
    if period.kind == "month":
        weeks = (period.last.day - 1) // 7 + 1
        return [f"{period.first:%m}-W{n}" for n in range(1, weeks + 1)]
    return [f"{y}-{m:02d}" for y, m in period.months()]


def incidents_section(
    period: Period, journals: Mapping[str, Sequence[Mapping[str, Any]]], now: datetime
) -> dict[str, Any]:
    """Incidents detected in the period: counts per level and state, deadlines met or breached, MTTR trend."""
    rows, unreadable = [], []
    for name, events in sorted(journals.items()):
        try:
            row = incident_row(name, events, now)
        except (StopIteration, KeyError, TypeError, ValueError) as exc:
            unreadable.append(f"{name}: unreadable journal ({type(exc).__name__})")
            continue
        if period.contains(parse_stamp(row["detected"])):
            rows.append(row)
    rows.sort(key=lambda r: (r["detected"], r["id"]))
    by_level = {f"L{n}": sum(1 for r in rows if r["level"] == n) for n in (1, 2, 3)}
    deadlines: dict[str, dict[str, int]] = {}
    for row in rows:
        for flag in row["deadlines"]:
            counts = deadlines.setdefault(flag["name"], {"met": 0, "breached": 0, "pending": 0, "n/a": 0})
            counts[flag["status"]] = counts.get(flag["status"], 0) + 1
    trend = []
    for label in _buckets(period):
        times = [
            r["ttr_s"] for r in rows if r["ttr_s"] is not None and _bucket(period, parse_stamp(r["detected"])) == label
        ]
        trend.append({"label": label, "resolved": len(times), "mttr_s": _mean(times)})
    resolved = [r["ttr_s"] for r in rows if r["ttr_s"] is not None]
    return {
        "count": len(rows),
        "by_level": by_level,
        "unresolved": sum(1 for r in rows if r["resolved"] is None),
        "deadlines": deadlines,
        "breached": sum(1 for r in rows for f in r["deadlines"] if f["status"] == "breached"),
        "mttr_s": _mean(resolved),
        "mttr_trend": trend,
        "items": rows,
        "unreadable": unreadable,
    }


def problems_section(period: Period, found: Sequence[problems.Problem], malformed: Sequence[str]) -> dict[str, Any]:
    """Problems opened before the period ended and not closed before it began (their status now)."""
    items = []
    for problem in found:
        opened = parse_stamp(str(problem.meta["opened"]))
        closed = [parse_stamp(str(e["ts"])) for e in problem.meta["history"] if e.get("to") == "closed"]
        if opened >= period.end or (closed and min(closed) < period.start):
            continue
        items.append(
            {
                "id": problem.id,
                "title": str(problem.meta["title"]),
                "status": str(problem.status),
                "opened": str(problem.meta["opened"]),
                "incidents": problem.listed("incidents"),
                "root_cause": str(problem.meta.get("root_cause", "")),
                "workaround": str(problem.meta.get("workaround", "")),
            }
        )
    known = sum(1 for i in items if i["status"] == problems.Status.KNOWN_ERROR)
    return {"count": len(items), "known_errors": known, "items": items, "unreadable": list(malformed)}


def changes_section(period: Period, found: Sequence[changes.Change], malformed: Sequence[str]) -> dict[str, Any]:
    """The changes started in the period (playbook runs, runbooks' destructive acts, restores), oldest first."""
    items = [
        {
            "id": change.id,
            "kind": str(change.meta["kind"]),
            "title": str(change.meta["title"]),
            "by": str(change.meta["by"]),
            "started": str(change.meta["started"]),
            "result": str(change.meta["result"]),
            "hosts": change.host_names(),
            "incident": str(change.meta.get("incident", "")),
        }
        for change in found
        if period.start <= change.started < period.end
    ]
    by_kind = {kind.value: sum(1 for i in items if i["kind"] == kind) for kind in changes.Kind}
    failed = sum(1 for i in items if i["result"] == changes.Result.FAILED)
    return {"count": len(items), "by_kind": by_kind, "failed": failed, "items": items, "unreadable": list(malformed)}


def report_time(path: Path) -> datetime | None:
    """A report's UTC start from its name (``20261203T182427Z...``); None when it is not named so."""
    try:
        return datetime.strptime(path.name[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def load_reports(directory: Path, period: Period) -> tuple[list[tuple[datetime, dict[str, Any]]], list[str]]:
    """The JSON reports of a directory started in the period, oldest first; and those unreadable."""
    found, bad = [], []
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        when = report_time(path)
        if when is None or not period.contains(when):
            continue
        body = read_report(path)
        if isinstance(body, dict):
            found.append((when, body))
        else:
            bad.append(f"{path.name}: {body}")
    return found, bad


def read_report(path: Path) -> dict[str, Any] | str:
    """A JSON report's object, or why it cannot be read."""
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return type(exc).__name__
    return body if isinstance(body, dict) else "not a JSON object"


def latest_report(directory: Path) -> tuple[datetime, dict[str, Any] | str] | None:
    """The newest report of a directory by the UTC start in its name, read (or why not); None: there is none."""
    named = [(when, path) for path in directory.glob("*.json") if (when := report_time(path)) is not None]
    if not named:
        return None
    when, path = max(named)
    return when, read_report(path)


def _patch(when: datetime, body: Mapping[str, Any]) -> dict[str, Any]:
    hosts = [h for h in body.get("hosts", []) if isinstance(h, dict)]
    return {
        "started": stamp(when),
        "ok": bool(body.get("ok")),
        "hosts": len(hosts),
        "packages": sum(len(h.get("packages") or []) for h in hosts),
        "reboots": sum(1 for h in hosts if str(h.get("reboot", "")).startswith(("done", "rebooted"))),
        "why": str(body.get("why", "")),
    }


def _drill(when: datetime, body: Mapping[str, Any]) -> dict[str, Any]:
    summary = body.get("summary") or {}
    return {
        "started": stamp(when),
        "ok": bool(summary.get("ok")),
        "rto_s": summary.get("rto_s"),
        "rpo_s": summary.get("rpo_s"),
        "checks": f"{summary.get('checks_passed', 0)}/{summary.get('checks_total', 0)}",
    }


def _audit(when: datetime, body: Mapping[str, Any]) -> dict[str, Any]:
    hosts = [h for h in body.get("hosts", []) if isinstance(h, dict)]
    return {
        "started": stamp(when),
        "lynis": {str(h.get("host")): h.get("lynis_index") for h in hosts},
        "ssh_failures": sum(len(h.get("ssh_failures") or []) for h in hosts),
        "ssh_warnings": sum(len(h.get("ssh_warnings") or []) for h in hosts),
        "tls_problems": len(body.get("tls_problems") or []),
        "errors": sum(len(h.get("errors") or []) for h in hosts),
    }


def _inspection(when: datetime, body: Mapping[str, Any]) -> dict[str, Any]:
    sites = [s for s in body.get("sites", []) if isinstance(s, dict)]
    return {"started": stamp(when), "exit": body.get("exit"), "sites": sorted({str(s.get("site")) for s in sites})}


def _fault(when: datetime, body: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("runbook", "fault", "host", "outcome", "ok", "mttr_s", "mttd_s", "via", "incident")
    return {"started": stamp(when), **{k: body.get(k) for k in keys}}


SHAPES = {
    "patches": _patch,
    "restore_drills": _drill,
    "audit": _audit,
    "inspections": _inspection,
    "fault_drills": _fault,
}


def reports_section(
    name: str, found: Sequence[tuple[datetime, Mapping[str, Any]]], bad: Sequence[str]
) -> dict[str, Any]:
    runs = [SHAPES[name](when, body) for when, body in found]
    section: dict[str, Any] = {"count": len(runs), "runs": runs, "unreadable": list(bad)}
    if name in ("patches", "restore_drills", "fault_drills"):
        section["failed"] = sum(1 for r in runs if not r["ok"])
    return section


def _window(period: Period, now: datetime) -> tuple[datetime, int] | None:
    """Where to evaluate the period's figures and its range in seconds; None before the period began."""
    until = min(period.end, now)
    seconds = int((until - period.start).total_seconds())
    return (until, seconds) if seconds > 0 else None


def _site_days(series: Sequence[Series], partial: Sequence[Sample], today: date | None) -> dict[str, dict[str, float]]:
    """site -> {day: ratio}: each range sample at a Beijing midnight covers the day before it."""
    days: dict[str, dict[str, float]] = {}
    for item in series:
        site = item.labels.get("site", "")
        for at, value in item.values:
            day = (datetime.fromtimestamp(at, TZ) - timedelta(days=1)).date()
            days.setdefault(site, {})[day.isoformat()] = value
    for sample in partial:
        if today is not None:
            days.setdefault(sample.labels.get("site", ""), {})[today.isoformat()] = sample.value
    return days


def availability_section(
    period: Period,
    now: datetime,
    names: Sequence[str],
    days: Mapping[str, Mapping[str, float]],
    whole: Sequence[Sample],
    quantiles: Mapping[float, Sequence[Sample]],
    error: str = "",
    phases: Sequence[Sample] = (),
    p95_days: Mapping[str, Mapping[str, float]] | None = None,
) -> dict[str, Any]:
    """Availability per site per day and for the period against the 95 % line; response-time percentiles,
    and each day's p95 (``p95_days``: site -> {day: seconds}) against the 15 s limit."""
    if error:
        return {"error": error, "target": TARGET, "limit_s": LIMIT_S, "sites": [], "days": []}
    p95_days = p95_days or {}
    listed = [d.isoformat() for d in period.days() if datetime(d.year, d.month, d.day, tzinfo=TZ) < now]
    ratios = {s.labels.get("site", ""): s.value for s in whole}
    seen = sorted((set(ratios) | set(days) | set(p95_days)) - set(names) - {""})
    sites = []
    for name in [*names, *seen]:
        ratio = ratios.get(name)
        per_day = [
            {"day": d, "ratio": days.get(name, {}).get(d), "p95_s": p95_days.get(name, {}).get(d)} for d in listed
        ]
        under = [d for d in listed if days.get(name, {}).get(d, 1.0) < TARGET]
        slow = [d for d in listed if p95_days.get(name, {}).get(d, 0.0) > LIMIT_S]
        percentiles = {
            f"p{round(q * 100)}_s": next((s.value for s in quantiles.get(q, []) if s.labels.get("site") == name), None)
            for q in QUANTILES
        }
        sites.append(
            {
                "site": name,
                "ratio": ratio,
                "margin": None if ratio is None else ratio - TARGET,
                "days": per_day,
                "days_under": under,
                "days_p95_over_limit": slow,
                **percentiles,
                "phases_p95_s": {s.labels.get("phase", "?"): s.value for s in phases if s.labels.get("site") == name},
            }
        )
    return {"error": "", "target": TARGET, "limit_s": LIMIT_S, "sites": sites, "days": listed}


def loaded_expr(window: str) -> str:
    """Each site's share of probes loaded within 15 s over ``window`` (a PromQL range: ``1d``, ``3600s``)."""
    return f"avg by (site) (avg_over_time({LOADED}[{window}]))"


def quantile_expr(q: float, window: str) -> str:
    """Each site's ``q`` quantile of the whole response time over ``window``."""
    return f'max by (site) (quantile_over_time({q}, probe_duration_seconds{{job="http_portal"}}[{window}]))'


def _since_midnight(until: datetime) -> str:
    """The range from the Beijing midnight before ``until`` to it."""
    today = until.astimezone(TZ).date()
    since = int((until - datetime(today.year, today.month, today.day, tzinfo=TZ)).total_seconds())
    return f"{max(since, 1)}s"


def availability_today(prometheus: Prometheus, until: datetime) -> list[Sample]:
    """Each site's availability under the 15 s rule from the Beijing midnight before ``until`` to it."""
    return prometheus.query(loaded_expr(_since_midnight(until)), until)


def _per_day(
    prometheus: Prometheus, expr: Callable[[str], str], period: Period, until: datetime
) -> dict[str, dict[str, float]]:
    """site -> {day: value} of ``expr`` over each whole Beijing day of the period before ``until`` (one
    ``query_range`` stepping a day), and over today so far while the period is under way."""
    full_days = [d for d in period.days() if datetime(d.year, d.month, d.day, tzinfo=TZ) + timedelta(days=1) <= until]
    series: list[Series] = []
    if full_days:
        first, last = full_days[0] + timedelta(days=1), full_days[-1] + timedelta(days=1)
        series = prometheus.query_range(
            expr("1d"),
            datetime(first.year, first.month, first.day, tzinfo=TZ),
            datetime(last.year, last.month, last.day, tzinfo=TZ),
            86400,
        )
    today = until.astimezone(TZ).date() if until < period.end else None
    partial = prometheus.query(expr(_since_midnight(until)), until) if today is not None else []
    return _site_days(series, partial, today)


def gather_availability(prometheus: Prometheus, period: Period, now: datetime, names: Sequence[str]) -> dict[str, Any]:
    window = _window(period, now)
    if window is None:
        return availability_section(period, now, names, {}, [], {}, "the period has not begun: availability unknown")
    until, seconds = window
    try:
        whole = prometheus.query(loaded_expr(f"{seconds}s"), until)
        quantiles = {q: prometheus.query(quantile_expr(q, f"{seconds}s"), until) for q in QUANTILES}
        per_phase = f'probe_http_duration_seconds{{job="http_portal"}}[{seconds}s]'
        phases = prometheus.query(f"max by (site, phase) (quantile_over_time(0.95, {per_phase}))", until)
        days = _per_day(prometheus, loaded_expr, period, until)
        p95_days = _per_day(prometheus, lambda window: quantile_expr(0.95, window), period, until)
    except Unreachable as exc:
        return availability_section(
            period, now, names, {}, [], {}, f"Prometheus did not answer ({exc}): availability unknown"
        )
    return availability_section(period, now, names, days, whole, quantiles, "", phases, p95_days)


def configuration_section(period: Period, directory: Path) -> dict[str, Any]:
    """What the CMDB's snapshots say changed in the period: the latest snapshot dated on or before the
    period's first day (else the period's first) against the latest dated in the period, by
    :func:`portalops.cmdb.diff.diff`. Fewer than two is said, naming the command that takes one."""
    dates = cmdb_run.snapshot_dates(directory) if directory.is_dir() else []
    first, last = period.first.isoformat(), period.last.isoformat()
    within = [d for d in dates if first <= d <= last]
    old = max((d for d in dates if d <= first), default=within[0] if within else None)
    new = within[-1] if within and within[-1] != old else None
    section: dict[str, Any] = {"directory": str(directory), "from": old, "to": new, "error": "", "diff": None}
    if old is None or new is None:
        section["error"] = (
            f"fewer than two CMDB snapshots to compare for the period in {directory}: `portalops cmdb` takes one"
        )
        return section
    try:
        section["diff"] = cmdb_diff.diff(cmdb_run.load_snapshot(directory, old), cmdb_run.load_snapshot(directory, new))
    except BadInput as exc:
        section["error"] = exc.message
    return section


def _by_job(samples: Sequence[Sample]) -> dict[tuple[str, str], float]:
    return {(s.labels.get("host", ""), s.labels.get("job", "")): s.value for s in samples}


def backups_section(
    success: Sequence[Sample],
    last: Sequence[Sample],
    error: str = "",
    share: Sequence[Sample] = (),
    added: Sequence[Sample] = (),
) -> dict[str, Any]:
    """Each backup job: did every run the period saw succeed, the share of the period its newest run was
    good, the most one run added, and its last success (from its metrics: nothing here is counted by hand)."""
    if error:
        return {"error": error, "jobs": []}
    lasts, shares, sizes = _by_job(last), _by_job(share), _by_job(added)
    jobs = []
    for key, value in sorted(_by_job(success).items()):
        when = lasts.get(key)
        jobs.append(
            {
                "host": key[0],
                "job": key[1],
                "all_ok": value == 1,
                "ok_share": shares.get(key),
                "max_bytes_added": sizes.get(key),
                "last_success": stamp(datetime.fromtimestamp(when, UTC)) if when else None,
            }
        )
    return {"error": "", "jobs": jobs, "failing": sum(1 for j in jobs if not j["all_ok"])}


def gather_backups(prometheus: Prometheus, period: Period, now: datetime) -> dict[str, Any]:
    window = _window(period, now)
    if window is None:
        return backups_section([], [], "the period has not begun: backups unknown")
    return backups_over(prometheus, *window)


def backups_over(prometheus: Prometheus, until: datetime, seconds: int) -> dict[str, Any]:
    """:func:`backups_section` of the ``seconds`` before ``until``."""
    found = []
    try:
        for how, metric in (
            ("min", "portalops_backup_job_success"),
            ("max", "portalops_backup_job_last_success_timestamp_seconds"),
            ("avg", "portalops_backup_job_success"),
            ("max", "portalops_backup_job_bytes_added"),
        ):
            found.append(prometheus.query(f"{how} by (host, job) ({how}_over_time({metric}[{seconds}s]))", until))
    except Unreachable as exc:
        return backups_section([], [], f"Prometheus did not answer ({exc}): backups unknown")
    return backups_section(found[0], found[1], "", found[2], found[3])


def logs_section(
    oldest: Sequence[Sample], retention: Sequence[Sample], until: datetime, error: str = ""
) -> dict[str, Any]:
    """Per host, how far back its logs go at the period's end (the logrotate role's evidence metrics): each
    log's oldest kept file (the journal: its first entry), the oldest of them, and the promised retention."""
    if error:
        return {"error": error, "hosts": []}
    promised = {s.labels.get("instance", ""): int(s.value) for s in retention}
    hosts: dict[str, list[dict[str, Any]]] = {}
    for sample in oldest:
        since = datetime.fromtimestamp(sample.value, UTC)
        hosts.setdefault(sample.labels.get("instance", ""), []).append(
            {
                "log": sample.labels.get("log", "?"),
                "since": stamp(since),
                "days_kept": round((until - since).total_seconds() / 86400, 1),
            }
        )
    rows = []
    for host, logs in sorted(hosts.items()):
        logs.sort(key=lambda entry: entry["since"])
        rows.append({"host": host, "retention_days": promised.get(host), "oldest": logs[0], "logs": logs})
    return {"error": "", "hosts": rows}


def gather_logs(prometheus: Prometheus, period: Period, now: datetime) -> dict[str, Any]:
    window = _window(period, now)
    if window is None:
        return logs_section([], [], now, "the period has not begun: log retention unknown")
    until, _ = window
    try:
        oldest = prometheus.query("portalops_log_oldest_timestamp_seconds", until)
        retention = prometheus.query("portalops_log_retention_days", until)
    except Unreachable as exc:
        return logs_section([], [], until, f"Prometheus did not answer ({exc}): log retention unknown")
    if not oldest:
        return logs_section([], [], until, "Prometheus has no log retention evidence (the logrotate role writes it)")
    return logs_section(oldest, retention, until)


def journals(root: Path) -> dict[str, list[dict[str, Any]]]:
    return {path.parent.name: read_events(path) for path in sorted(root.glob("*/journal.jsonl"))}


def build(
    period: Period,
    now: datetime,
    incidents_dir: Path,
    reports_dir: Path,
    prometheus: Prometheus | None,
    sites: Sequence[str] = (),
) -> dict[str, Any]:
    """The whole report as a JSON-ready document."""
    found, malformed = problems.load(incidents_dir)
    document: dict[str, Any] = {
        "period": {
            "id": period.id,
            "kind": period.kind,
            "first_day": period.first.isoformat(),
            "last_day": period.last.isoformat(),
            "start": stamp(period.start),
            "end": stamp(period.end),
        },
        "generated": stamp(now),
        "complete": now >= period.end,
    }
    if prometheus is None:
        missing = "no Prometheus known (no monitoring host in the inventory, no --prometheus)"
        document["availability"] = availability_section(
            period, now, sites, {}, [], {}, missing + ": availability unknown"
        )
        document["backups"] = backups_section([], [], missing + ": backups unknown")
        document["logs"] = logs_section([], [], now, missing + ": log retention unknown")
    else:
        document["prometheus"] = prometheus.url
        document["availability"] = gather_availability(prometheus, period, now, sites)
        document["backups"] = gather_backups(prometheus, period, now)
        document["logs"] = gather_logs(prometheus, period, now)
    document["incidents"] = incidents_section(period, journals(incidents_dir), now)
    document["problems"] = problems_section(period, found, malformed)
    document["changes"] = changes_section(period, *changes.load(incidents_dir, period.start))
    document["configuration"] = configuration_section(period, reports_dir / "cmdb")
    for name, sub in REPORT_DIRS.items():
        document[name] = reports_section(name, *load_reports(reports_dir / sub, period))
    return document
