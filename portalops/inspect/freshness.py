"""The inspection's early warnings, before a veto item fails, and the content editors who act on them.

What ``l2_content_stale`` runs (``portalops content stale``) and what its alerts watch in the inspection's
metrics: a dynamic section whose newest item is :data:`WARN_DAYS` old (L3) or :data:`STALE_DAYS` (L2, a
day before the 14-day veto), :data:`BLANK_SECTIONS` blank sections (one below the veto), and any veto
item of the content failed (L2). Sensitive words have their own runbook (``l1_sensitive_content``) and
the 7-day availability is the monitoring's (``PortalAvailabilityBurn``), so neither is judged here.

Only people can publish: the runbook tells the content editors (the ``portalops_contacts`` whose role is
the content editor's) by e-mail through the SMTP server of ``portalops_notify``'s first e-mail channel,
naming each section and its age, and the verification is the inspection no longer warning.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from portalops.inspect import metrics, veto
from portalops.inspect.site import SiteReport
from portalops.runbook.notify import Channel, Delivery, Notice, Notifier, channels_from_config
from portalops.service.changes import INCIDENT_VARIABLE

WARN_DAYS = veto.WARN_DAYS[veto.DYNAMIC]  # 10: the L3 alert
LIMIT_DAYS = veto.LIMIT_DAYS[veto.DYNAMIC]  # 14: the veto
STALE_DAYS = LIMIT_DAYS - 1  # 13: the L2 alert, the day before the veto
BLANK_SECTIONS = veto.BLANK_VETO - 1  # 4: the L2 alert, one below the veto
# Veto items whose failure the content editors put right (a leaked ID number, a date in the future, the
# home page or sections not updated, enquiries unanswered); each failed one is an L2 alert.
CONTENT_VETO_ITEMS = ("site_not_updated", "sections_not_updated", "personal_data", "future_dates", "interaction")
EDITOR_ROLES = ("content editor", "内容编辑")  # in role_en / role_zh of portalops_contacts
RUNBOOK = "l2_content_stale"
LEVEL = 2


def warnings(report: SiteReport) -> tuple[list[str], list[str]]:
    """What the inspection of one site warns of, one line each, and what it could not tell."""
    site = report.site
    found: list[str] = []
    for s in report.sections:
        age = s["age_days"]
        if s["class"] == veto.DYNAMIC and age is not None and age >= WARN_DAYS:
            state = "STALE" if age >= STALE_DAYS else "at risk"
            found.append(
                f"{site}: {state}: dynamic section {s['name']} ({s['slug']}): {age:g} days since its newest"
                f" item (warning at {WARN_DAYS}, alert at {STALE_DAYS}, veto at {LIMIT_DAYS}); {s['link']}"
            )
    blank = [f"{s['name']} ({s['slug']})" for s in report.sections if s["blank"]]
    count = metrics.blank_count(report)
    if report.sections and count >= BLANK_SECTIONS:
        found.append(
            f"{site}: {count} blank sections and pages (alert at {BLANK_SECTIONS}, veto at {veto.BLANK_VETO}):"
            f" {', '.join(blank) or 'blank pages'}"
        )
    unknown: list[str] = []
    for item in report.items:
        if item.id not in CONTENT_VETO_ITEMS:
            continue
        if item.status == veto.FAIL:
            more = f"; {len(item.evidence) - 5} more" if len(item.evidence) > 5 else ""
            evidence = f": {'; '.join(item.evidence[:5])}{more}" if item.evidence else ""
            found.append(f"{site}: veto item FAILED: {item.zh} / {item.en}: {item.margin}{evidence}")
        elif item.status == veto.UNKNOWN:
            unknown.append(f"{site}: {item.en}: cannot tell: {item.margin}")
    return found, unknown


def editors(contacts: Any) -> list[Mapping[str, Any]]:
    """The content editors of ``portalops_contacts``: each entry whose role names the content editor."""
    if not isinstance(contacts, Sequence) or isinstance(contacts, str):
        return []
    return [
        c
        for c in contacts
        if isinstance(c, Mapping)
        and any(role in f"{c.get('role_en', '')} {c.get('role_zh', '')}".lower() for role in EDITOR_ROLES)
    ]


def who(contact: Mapping[str, Any]) -> str:
    role = f"{contact.get('role_zh', '')} / {contact.get('role_en', '')}"
    return f"{role}: {contact.get('who', '')}, {contact.get('phone', '')}, {contact.get('email', '')}"


def notice(lines: Sequence[str], incident: str = "") -> Notice:
    """What the editors are told: every section and item to put right, with its age and margin."""
    title = "[L2 二级] 网站内容更新提醒 Portal content to update: 栏目即将或已经超过检查时限"
    text = "\n".join(
        [
            f"### {title}",
            f"- incident: {incident or '-'}",
            "- 请在期限前发布新内容或补充空白栏目，运维无法代为发布。",  # noqa: RUF001 - Chinese punctuation
            "- Please publish in these sections (or fill the blank ones) before the inspection's limit;"
            " operations cannot publish for you.",
            *[f"- {line}" for line in lines],
        ]
    )
    return Notice("editors", incident, RUNBOOK, LEVEL, title, text)


def tell(notify: Any, contacts: Sequence[Mapping[str, Any]], message: Notice) -> tuple[list[Delivery], str]:
    """``message`` by e-mail to the editors, through the first e-mail channel of ``portalops_notify`` (its SMTP
    server and sender); the deliveries, or why there is none."""
    addresses = [str(c["email"]) for c in contacts if c.get("email")]
    if not addresses:
        return [], "no content editor with an e-mail address in portalops_contacts"
    mail = [c for c in channels_from_config(notify) if c.type == "email"]
    if not mail:
        return [], "notifications are off or have no e-mail channel (portalops_notify)"
    channel = Channel(
        name=f"{mail[0].name} (content editors)",
        type="email",
        settings={**mail[0].settings, "to": addresses},
        levels=frozenset({message.level}),
        events=frozenset({message.event}),
        timeout=mail[0].timeout,
    )
    return Notifier([channel]).send(message), ""


def running_incident() -> str:
    return os.environ.get(INCIDENT_VARIABLE, "")
