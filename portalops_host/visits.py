"""`portalops-host visits`: visits and unique visitors per site and Beijing day, from the edge's access log
(nginx_portal's "portal" format), as JSON.

The annual form (portalops.service.annual) runs it on each web host, so 180 days of logs are read where
they are kept and only the day counts cross the network. The log format
(roles/nginx_portal/templates/etc/nginx/nginx.conf.j2) is the combined format followed by ``key=value``
fields; nginx escapes quotes inside quoted fields (``\\x22``), so one regular expression reads a line. There
is no JSON log format to read instead: fail2ban and the slow-response runbook read this one.

A visit (访问量) is a page view: a GET answered 200 or 304, of a page (not a static file, not the admin, the
REST API, the login or cron), by a client that is not a robot, a monitor or portalops' own tools. A unique
visitor (独立用户) is one address with one user agent on one day; the year's figure is the sum of the days.
"""

from __future__ import annotations

import glob
import gzip
import json
import os
import re
import sys
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

BEIJING = timezone(timedelta(hours=8), "UTC+8")  # the information centre's days (portalops.runbook.workcal.TZ)
LINE = re.compile(
    r'^(?P<addr>\S+) - (?P<user>\S+) \[(?P<time>[^\]]+)\] "(?P<request>[^"]*)" (?P<status>\d{3}) (?P<bytes>\S+)'
    r' "(?P<referer>[^"]*)" "(?P<agent>[^"]*)"(?: host=(?P<host>\S+))?'
)
TIME_FORMAT = "%d/%b/%Y:%H:%M:%S %z"  # $time_local
PAGE_STATUSES = frozenset({"200", "304"})
STATIC = (
    ".css", ".js", ".map", ".png", ".jpg", ".jpeg", ".gif", ".svg", ".ico", ".webp", ".bmp",
    ".woff", ".woff2", ".ttf", ".eot", ".otf", ".mp4", ".mp3", ".txt", ".xml",
)  # fmt: skip
NOT_PAGES = ("/wp-admin", "/wp-json", "/wp-includes", "/wp-content", "/wp-login.php", "/xmlrpc.php", "/wp-cron.php")
NOT_PAGE_QUERIES = ("rest_route=", "preview=true")  # the REST API; the cache bypass of portalops' probes
# Robots, monitors and portalops' own clients (portalops-probe, portalops-inspect, blackbox_exporter).
AGENTS = ("bot", "spider", "crawl", "slurp", "blackbox", "portalops", "prometheus", "monitor", "headless")


def parse(line: str) -> dict[str, Any] | None:
    """One log line's fields, with ``at`` its time; None when it is not in the portal format."""
    found = LINE.match(line)
    if not found:
        return None
    try:
        at = datetime.strptime(found["time"], TIME_FORMAT)
    except ValueError:
        return None
    entry: dict[str, Any] = found.groupdict()
    method, _, rest = entry["request"].partition(" ")
    entry["method"], entry["target"] = method, rest.rsplit(" ", 1)[0] if " " in rest else rest
    entry["host"] = (entry["host"] or "").lower()
    entry["at"] = at
    return entry


def is_visit(entry: dict[str, Any]) -> bool:
    """A page view by a person's browser (see the module's docstring)."""
    if entry["method"] != "GET" or entry["status"] not in PAGE_STATUSES:
        return False
    path, _, query = str(entry["target"]).partition("?")
    lowered, agent = path.lower(), str(entry["agent"]).lower()
    if lowered.endswith(STATIC) or lowered.startswith(NOT_PAGES) or any(q in query for q in NOT_PAGE_QUERIES):
        return False
    return agent not in ("", "-") and not any(word in agent for word in AGENTS)


def aggregate(lines: Iterable[str], start: datetime, end: datetime, domains: dict[str, str]) -> dict[str, Any]:
    """Day counts of the lines dated in [start, end): every line per day (the logs' coverage), and per site
    (``domains``: domain -> site) its visits and unique visitors."""
    days: dict[str, int] = {}
    visitors: dict[str, dict[str, set[tuple[str, str]]]] = {}
    views: dict[str, dict[str, int]] = {}
    unparsed = unattributed = 0
    first: datetime | None = None
    last: datetime | None = None
    for line in lines:
        entry = parse(line)
        if entry is None:
            unparsed += 1 if line.strip() else 0
            continue
        at: datetime = entry["at"]
        if not start <= at < end:
            continue
        first, last = min(first or at, at), max(last or at, at)
        day = at.astimezone(BEIJING).date().isoformat()
        days[day] = days.get(day, 0) + 1
        if not is_visit(entry):
            continue
        site = domains.get(entry["host"])
        if site is None:
            unattributed += 1
            continue
        per_day = views.setdefault(site, {})
        per_day[day] = per_day.get(day, 0) + 1
        visitors.setdefault(site, {}).setdefault(day, set()).add((entry["addr"], entry["agent"]))
    return {
        "first": first.isoformat() if first else None,
        "last": last.isoformat() if last else None,
        "days": dict(sorted(days.items())),
        "sites": {
            site: {day: {"views": count, "visitors": len(visitors[site][day])} for day, count in sorted(per.items())}
            for site, per in sorted(views.items())
        },
        "unparsed": unparsed,
        "unattributed": unattributed,
    }


def log_files(path: str, since: datetime) -> list[str]:
    """The live log and its rotations (``access.log-20261203-000000[.gz]``, ``access.log.1``), those written
    to since ``since`` only: a file last written before it holds no line of the period."""
    found = [p for p in glob.glob(glob.escape(path) + "*") if p == path or p[len(path)] in "-."]
    return sorted(p for p in found if os.path.isfile(p) and os.path.getmtime(p) >= since.timestamp())


def read_lines(paths: Iterable[str]) -> Iterator[str]:
    for path in paths:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8", errors="replace") as opened:
            yield from opened


def command_visits(log: str, start: datetime, end: datetime, domains: dict[str, str]) -> int:
    """Print :func:`aggregate`'s JSON of the lines of ``log`` and its rotations dated in [start, end), with
    ``files`` the files read; exit 0, or 1 when a file cannot be read (named on stderr, nothing printed)."""
    files = log_files(log, start)
    try:
        found = aggregate(read_lines(files), start, end, domains)
    except (OSError, EOFError) as exc:
        print(f"cannot read {log} or a rotation of it: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"files": files, **found}))
    return 0
