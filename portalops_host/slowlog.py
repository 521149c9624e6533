"""`portalops-host check slow-queries`: MariaDB logged no slow query in the last hour (the l2_slow_response
runbook)."""

from __future__ import annotations

import collections
import datetime
import sys
import time
from collections.abc import Iterable
from pathlib import Path

# The tail of the log read: an hour of a busy server's slow queries, not a year of them.
TAIL_LINES = 20000


def entry_time(header: str) -> float | None:
    """When a ``# Time:`` header says its entry was logged: MariaDB's ``yymmdd hh:mm:ss`` (local time) or
    MySQL's ISO 8601; None when it is neither."""
    parts = header[7:].split()
    try:
        return time.mktime(time.strptime(" ".join(parts[:2]), "%y%m%d %H:%M:%S"))
    except ValueError:
        try:
            return datetime.datetime.fromisoformat(parts[0].replace("Z", "+00:00")).timestamp()
        except (ValueError, IndexError):
            return None


def slow_queries_since(lines: Iterable[str], since: float) -> int:
    """How many queries the slow log ``lines`` holds from ``since`` on. MariaDB writes ``# Time:`` only when
    the second changes: an entry without one has the time of the last before it."""
    when, count = None, 0
    for line in lines:
        if line.startswith("# Time:"):
            when = entry_time(line)
        elif line.startswith("# Query_time:") and when is not None and when >= since:
            count += 1
    return count


def command_slow_queries(log: Path) -> int:
    """Exit 0 when the slow log at ``log`` holds no query of the last hour, 1 when it does, 75 when it cannot
    be read. Its last :data:`TAIL_LINES` lines are read."""
    try:
        with log.open(errors="replace") as handle:
            lines = collections.deque(handle, maxlen=TAIL_LINES)
    except OSError as exc:
        print(f"cannot read the slow log: {exc}", file=sys.stderr)
        return 75
    count = slow_queries_since(lines, time.time() - 3600)
    print(f"{count} slow queries (over long_query_time) in the last hour")
    return 1 if count else 0
