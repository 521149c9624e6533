"""互动回应差: messages of an enquiry section (政民互动, 领导信箱, 咨询投诉) left unanswered for more than 3 months.

Only where the site has one: WordPress has no enquiry section of its own, so the messages are read from
a source the inventory names per site (``portal_sites[].interaction_source``): a path on the site, read
through the edge like its pages, or the http(s) URL of the enquiry system's export. Either answers JSON,
a list of messages or ``{"messages": [...]}``, each::

    {"received": "2026-09-01", "answered": "2026-09-03" or null, "link": "https://..."}

(``received`` and ``answered`` ISO 8601 dates or date-times, as the site shows them; ``link``, else
``id`` or ``title``, names the message in the evidence). Without a source the item is "not checked";
a source that does not answer or answers something else is "cannot tell", never a pass.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from portalops.inspect import veto

LIMIT_MONTHS = 3  # the veto: a message unanswered for more than 3 months
WARN_MONTHS = 2


class BadSource(Exception):
    """The source answered something that is not a list of messages; the message says what."""


@dataclass(frozen=True)
class Message:
    name: str
    received: dt.date
    answered: dt.date | None


def check_source(value: Any) -> str:
    """``interaction_source`` as configured: empty, a path on the site or an http(s) URL (ValueError)."""
    if value in (None, ""):
        return ""
    if not isinstance(value, str) or not value.startswith(("/", "http://", "https://")):
        raise ValueError(f"interaction_source {value!r} must be a path on the site (/...) or an http(s) URL")
    return value


def add_months(day: dt.date, months: int) -> dt.date:
    """The same day ``months`` later, or that month's last day (31 Aug + 3 months = 30 Nov)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return day.replace(year=year, month=month, day=min(day.day, calendar.monthrange(year, month)[1]))


def _date(value: Any, where: str) -> dt.date:
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).date()
    except ValueError:
        raise BadSource(f"{where}: {value!r} is not an ISO 8601 date") from None


def parse_messages(body: str) -> list[Message]:
    """The messages of the source's JSON; :class:`BadSource` names what is wrong."""
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise BadSource(f"not JSON ({exc})") from None
    if isinstance(data, dict):
        data = data.get("messages")
    if not isinstance(data, list):
        raise BadSource('not a list of messages (nor {"messages": [...]})')
    messages = []
    for i, entry in enumerate(data):
        if not isinstance(entry, dict) or not entry.get("received"):
            raise BadSource(f"message {i}: no received date")
        name = str(entry.get("link") or entry.get("id") or entry.get("title") or f"message {i}")
        answered = entry.get("answered")
        messages.append(
            Message(
                name,
                _date(entry["received"], f"{name} received"),
                _date(answered, f"{name} answered") if answered else None,
            )
        )
    return messages


def new_item() -> veto.Item:
    return veto.Item("interaction", "互动回应差", "Poor interaction", True, veto.NOT_CHECKED)


def judge(messages: Sequence[Message], today: dt.date, source: str) -> veto.Item:
    """Fail on a message unanswered for more than 3 months, at risk past 2; each such message listed."""
    item = new_item()
    waiting = sorted((m for m in messages if m.answered is None), key=lambda m: m.received)
    overdue = [m for m in waiting if add_months(m.received, LIMIT_MONTHS) < today]
    warned = [m for m in waiting if add_months(m.received, WARN_MONTHS) <= today]
    item.status = veto.FAIL if overdue else veto.AT_RISK if warned else veto.PASS
    item.evidence = [f"source: {source}"]
    item.evidence += [
        f"{'OVERDUE' if m in overdue else 'at risk'}: {m.name} received {m.received},"
        f" unanswered {(today - m.received).days} days (veto after {add_months(m.received, LIMIT_MONTHS)})"
        for m in warned
    ]
    oldest = (
        f"; the oldest received {waiting[0].received}, {(today - waiting[0].received).days} days ago" if waiting else ""
    )
    item.margin = (
        f"{len(messages)} messages, {len(waiting)} unanswered{oldest}; unanswered over {LIMIT_MONTHS} months:"
        f" {len(overdue)}, veto at 1"
    )
    return item


def not_configured() -> veto.Item:
    item = new_item()
    item.margin = "no enquiry section configured (portal_sites[].interaction_source): only where the site has one"
    return item


def unreadable(source: str, why: str) -> veto.Item:
    item = new_item()
    item.status = veto.UNKNOWN
    item.margin = f"the enquiry source did not answer messages: {why}"
    item.evidence = [f"source: {source}"]
    return item
