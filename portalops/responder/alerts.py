"""Alertmanager's two shapes of an alert, checked and parsed into :class:`Alert` (pure functions).

- the webhook payload, version 4: ``{"version": "4", "status", "receiver", "groupKey", "alerts": [...]}``,
  each alert ``{"status": "firing"|"resolved", "labels", "annotations", "startsAt", "endsAt",
  "generatorURL", "fingerprint"}``;
- ``GET /api/v2/alerts``: a list of ``{"labels", "annotations", "startsAt", "endsAt", "fingerprint",
  "status": {"state": "active"|"suppressed"|"unprocessed", ...}, ...}``.

Anything else is :class:`BadPayload`: the server answers 400 and starts nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from portalops.runbook.levels import Level

_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$")
_FINGERPRINT = re.compile(r"^[0-9a-f]{1,64}$")
_LEVEL = re.compile(r"^[Ll]?([123])$")
ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time: Alertmanager's endsAt of an alert still firing


class BadPayload(ValueError):
    """Not what Alertmanager sends."""


@dataclass(frozen=True)
class Alert:
    fingerprint: str
    status: str  # firing | resolved
    labels: Mapping[str, str]
    starts_at: datetime
    ends_at: datetime | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    generator_url: str = ""

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "alert")

    @property
    def runbook(self) -> str:
        return self.labels.get("runbook", "")

    @property
    def level(self) -> Level | None:
        """The ``level`` label (L1, L2, L3), None when absent or not one of them."""
        match = _LEVEL.match(self.labels.get("level", "").strip())
        return Level(int(match.group(1))) if match else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "status": self.status,
            "alertname": self.name,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "startsAt": stamp_text(self.starts_at),
            "endsAt": stamp_text(self.ends_at) if self.ends_at else "",
            "generatorURL": self.generator_url,
        }


def stamp_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_time(value: Any, what: str) -> datetime:
    """RFC 3339 as Go writes it (nanoseconds allowed); always timezone-aware."""
    match = _RFC3339.match(value) if isinstance(value, str) else None
    if not match:
        raise BadPayload(f"{what}: not an RFC 3339 time: {value!r}")
    seconds, fraction, zone = match.groups()
    micro = (fraction or ".0")[1:7].ljust(6, "0")
    try:
        return datetime.fromisoformat(f"{seconds}.{micro}{'+00:00' if zone == 'Z' else zone}")
    except ValueError:
        raise BadPayload(f"{what}: not a valid time: {value!r}") from None


def _strings(value: Any, what: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise BadPayload(f"{what}: an object of strings")
    return dict(value)


def is_heartbeat_labels(labels: Mapping[str, str]) -> bool:
    """The always-firing Watchdog (severity none, no runbook): the monitoring's heartbeat, not a fault."""
    return labels.get("severity") == "none" and not labels.get("runbook")


def _alert(item: Any, where: str, status: str) -> Alert:
    if not isinstance(item, dict):
        raise BadPayload(f"{where}: an object")
    fingerprint = item.get("fingerprint")
    if not isinstance(fingerprint, str) or not _FINGERPRINT.match(fingerprint):
        raise BadPayload(f"{where}.fingerprint: Alertmanager's hex fingerprint")
    labels = _strings(item.get("labels"), f"{where}.labels")
    if not labels.get("alertname"):
        raise BadPayload(f"{where}.labels: no alertname")
    ends = item.get("endsAt")
    ended = None if ends in (None, "", ZERO_TIME) else parse_time(ends, f"{where}.endsAt")
    url = item.get("generatorURL", "")
    return Alert(
        fingerprint=fingerprint,
        status=status,
        labels=labels,
        starts_at=parse_time(item.get("startsAt"), f"{where}.startsAt"),
        ends_at=ended,
        annotations=_strings(item.get("annotations", {}), f"{where}.annotations"),
        generator_url=url if isinstance(url, str) else "",
    )


def parse_webhook(payload: Any) -> list[Alert]:
    """A webhook notification (version 4) -> its alerts; BadPayload names the first thing wrong."""
    if not isinstance(payload, dict):
        raise BadPayload("the body: a JSON object")
    if payload.get("version") != "4":
        raise BadPayload(f"version: 4 expected, got {payload.get('version')!r}")
    items = payload.get("alerts")
    if not isinstance(items, list) or not items:
        raise BadPayload("alerts: a non-empty list")
    alerts = []
    for i, item in enumerate(items):
        status = item.get("status") if isinstance(item, dict) else None
        if status not in ("firing", "resolved"):
            raise BadPayload(f"alerts[{i}].status: firing or resolved, got {status!r}")
        alerts.append(_alert(item, f"alerts[{i}]", str(status)))
    return alerts


def parse_api_alerts(payload: Any) -> list[Alert]:
    """``GET /api/v2/alerts`` -> the active ones (suppressed alerts are silenced or inhibited: not ours to act on)."""
    if not isinstance(payload, list):
        raise BadPayload("Alertmanager's /api/v2/alerts: a JSON list")
    alerts = []
    for i, item in enumerate(payload):
        state = item.get("status", {}).get("state") if isinstance(item, dict) else None
        if state == "active":
            alerts.append(_alert(item, f"[{i}]", "firing"))
    return alerts
