"""Times as restic and the status files write them (UTC, RFC 3339), parsed and printed in one place."""

from __future__ import annotations

import datetime as dt
import re


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def stamp(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> dt.datetime:
    """restic's RFC 3339 times carry nanoseconds, which datetime does not parse."""
    text = re.sub(r"\.(\d{6})\d*", r".\1", text)
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def until_time(text: str) -> dt.datetime:
    """--until: an ISO 8601 time; without a zone, this host's local time (as mariadb-binlog prints)."""
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.astimezone()
