#!/usr/bin/python3
"""portalops-phpfpm-metrics: php-fpm pool status as Prometheus textfile metrics.

Debian 12 packages no php-fpm exporter. Each site's pool serves its status page (pm.status_path, on
its own pm.status_listen socket, so it answers even when every worker is busy) through nginx on
loopback; a systemd timer runs this script, which reads each pool's status as JSON and writes one
.prom file for node_exporter's textfile collector, atomically (a scrape never sees half a file).

Usage: portalops-phpfpm-metrics --output DIR/portalops_phpfpm.prom --pool NAME=URL [--pool ...]

A pool that does not answer gets phpfpm_up 0 and no other series; the file is still written, so a
dead pool is a metric, not a missing one, and not a failed unit either: exit status 0 once the file
is written, whether or not every pool answered (the unreachable ones are named on stderr, for the
journal). A failed unit would mean the writer itself is broken, and it would stay failed beside the
php-fpm outage it reports, which is what the alert rules and the runbooks' "no failed unit" check
must not confuse. Exit status 1 when the file cannot be written, 2 on bad arguments. Standard
library only (it runs on the hosts).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

# (metric, php-fpm status field, type, help). Names follow the common php-fpm exporters' (phpfpm_*),
# so rules and dashboards written for them fit.
FIELDS: tuple[tuple[str, str, str, str], ...] = (
    ("phpfpm_start_since", "start since", "gauge", "Seconds since the pool's master process started."),
    ("phpfpm_accepted_connections", "accepted conn", "counter", "Requests the pool accepted."),
    ("phpfpm_listen_queue", "listen queue", "gauge", "Requests waiting for a free worker."),
    ("phpfpm_max_listen_queue", "max listen queue", "gauge", "Most requests ever waiting at once."),
    ("phpfpm_listen_queue_length", "listen queue len", "gauge", "Size of the socket's wait queue."),
    ("phpfpm_idle_processes", "idle processes", "gauge", "Idle workers."),
    ("phpfpm_active_processes", "active processes", "gauge", "Workers serving a request."),
    ("phpfpm_total_processes", "total processes", "gauge", "Workers, idle or active."),
    ("phpfpm_max_active_processes", "max active processes", "gauge", "Most workers ever active at once."),
    (
        "phpfpm_max_children_reached",
        "max children reached",
        "counter",
        "Times the pool hit pm.max_children (saturation).",
    ),
    ("phpfpm_slow_requests", "slow requests", "counter", "Requests slower than request_slowlog_timeout."),
)

Fetch = Callable[[str, float], Mapping[str, Any]]


class StatusError(Exception):
    """A pool's status could not be read or understood."""


def fetch_status(url: str, timeout: float) -> Mapping[str, Any]:
    """The pool's status page as JSON (php-fpm answers ?json with one object)."""
    separator = "&" if "?" in url else "?"
    try:
        with urllib.request.urlopen(f"{url}{separator}json", timeout=timeout) as response:  # noqa: S310 (loopback URL from the role)
            document = json.loads(response.read().decode("utf-8"))
    except (OSError, urllib.error.URLError, ValueError) as error:
        raise StatusError(f"{url}: {error}") from error
    if not isinstance(document, dict):
        raise StatusError(f"{url}: not a JSON object")
    return document


def label(value: str) -> str:
    """A label value escaped for the text exposition format."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render(statuses: Mapping[str, Mapping[str, Any] | None], now: float) -> str:
    """The .prom file for the pools' statuses (None: the pool did not answer)."""
    lines = [
        "# HELP phpfpm_up 1 when the pool's status page answered.",
        "# TYPE phpfpm_up gauge",
    ]
    lines += [f'phpfpm_up{{pool="{label(pool)}"}} {0 if status is None else 1}' for pool, status in statuses.items()]
    for metric, field, kind, help_text in FIELDS:
        values = []
        for pool, status in statuses.items():
            if status is None or not isinstance(status.get(field), int | float) or isinstance(status.get(field), bool):
                continue
            values.append(f'{metric}{{pool="{label(pool)}"}} {status[field]}')
        if values:
            lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} {kind}", *values]
    lines += [
        "# HELP phpfpm_metrics_timestamp_seconds When these php-fpm metrics were written.",
        "# TYPE phpfpm_metrics_timestamp_seconds gauge",
        f"phpfpm_metrics_timestamp_seconds {now:.0f}",
    ]
    return "\n".join(lines) + "\n"


def collect(
    pools: Mapping[str, str], fetch: Fetch, timeout: float
) -> tuple[dict[str, Mapping[str, Any] | None], list[str]]:
    """Each pool's status (None when it did not answer) and the errors met."""
    statuses: dict[str, Mapping[str, Any] | None] = {}
    errors = []
    for pool, url in pools.items():
        try:
            statuses[pool] = fetch(url, timeout)
        except StatusError as error:
            statuses[pool] = None
            errors.append(f"pool {pool}: {error}")
    return statuses, errors


def write_atomic(path: Path, text: str) -> None:
    """Write beside the target, then rename over it: readers see the old file or the new one."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def parse_pool(value: str) -> tuple[str, str]:
    name, sep, url = value.partition("=")
    if not sep or not name or not url.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"expected NAME=http://..., got {value!r}")
    return name, url


def main(argv: Sequence[str] | None = None, fetch: Fetch = fetch_status, clock: Callable[[], float] = time.time) -> int:
    parser = argparse.ArgumentParser(prog="portalops-phpfpm-metrics", description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, required=True, help="the .prom file to write")
    parser.add_argument("--pool", type=parse_pool, action="append", required=True, help="NAME=URL of a status page")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for each pool")
    args = parser.parse_args(argv)
    if not args.output.name.endswith(".prom"):
        parser.error("--output must end in .prom (the textfile collector reads only those)")
    statuses, errors = collect(dict(args.pool), fetch, args.timeout)
    for error in errors:
        print(f"portalops-phpfpm-metrics: {error}", file=sys.stderr)
    try:
        write_atomic(args.output, render(statuses, clock()))
    except OSError as error:
        print(f"portalops-phpfpm-metrics: cannot write {args.output}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
