"""Prometheus' and Alertmanager's HTTP APIs, read as JSON; a server that does not answer is :class:`Unreachable`.

Nothing here decides anything: the callers turn an unreachable server into "unknown" (status) or
"dead" (deadman).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from portalops.responder.alerts import BadPayload, parse_time

TIMEOUT = 5.0  # seconds per request: a monitoring server slower than this is as good as dead to a person


class Unreachable(Exception):
    """The server did not answer, answered an error or something that is not its API's JSON."""


def _get(url: str, timeout: float) -> bytes:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise Unreachable(f"not an http(s) URL: {url}")
    where = parts._replace(query="").geturl()  # the error names the endpoint, not the whole query
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310 - http(s) only
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s) only
            body: bytes = response.read()
    except urllib.error.HTTPError as exc:
        raise Unreachable(f"{where}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:  # refused, timeout, DNS, reset
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise Unreachable(f"{where}: {reason}") from None
    return body


def get_json(url: str, timeout: float = TIMEOUT) -> Any:
    try:
        return json.loads(_get(url, timeout))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise Unreachable(f"{url}: not JSON ({exc})") from None


@dataclass(frozen=True)
class Sample:
    """One series of an instant vector."""

    labels: dict[str, str]
    value: float


def _result(payload: Any, kind: str, called: str) -> list[Any]:
    """The ``data.result`` list of a successful answer of ``resultType`` ``kind``; Unreachable otherwise."""
    if not isinstance(payload, dict) or payload.get("status") != "success":
        error = payload.get("error", payload) if isinstance(payload, dict) else payload
        raise Unreachable(f"Prometheus did not answer the query: {error}")
    data = payload.get("data")
    if not isinstance(data, dict) or data.get("resultType") != kind or not isinstance(data.get("result"), list):
        raise Unreachable(f"Prometheus answered something other than {called}")
    result: list[Any] = data["result"]
    return result


def parse_vector(payload: Any) -> list[Sample]:
    """``{"status": "success", "data": {"resultType": "vector", "result": [{"metric", "value": [ts, "v"]}]}}``."""
    samples = []
    for item in _result(payload, "vector", "an instant vector"):
        try:
            samples.append(Sample({str(k): str(v) for k, v in item["metric"].items()}, float(item["value"][1])))
        except (KeyError, TypeError, ValueError, IndexError, AttributeError):
            raise Unreachable(f"Prometheus answered a malformed sample: {item!r}") from None
    return samples


@dataclass(frozen=True)
class Series:
    """One series of a range vector: (UNIX time, value) pairs."""

    labels: dict[str, str]
    values: list[tuple[float, float]]


def parse_matrix(payload: Any) -> list[Series]:
    """``{"status": "success", "data": {"resultType": "matrix", "result": [{"metric", "values": [[ts, "v"]]}]}}``."""
    found = []
    for item in _result(payload, "matrix", "a range vector"):
        try:
            values = [(float(t), float(v)) for t, v in item["values"]]
            found.append(Series({str(k): str(v) for k, v in item["metric"].items()}, values))
        except (KeyError, TypeError, ValueError, AttributeError):
            raise Unreachable(f"Prometheus answered a malformed series: {item!r}") from None
    return found


class Prometheus:
    def __init__(self, url: str, timeout: float = TIMEOUT) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def query(self, expr: str, at: datetime | None = None) -> list[Sample]:
        """``GET /api/v1/query``: the instant vector of ``expr`` now (or at ``at``)."""
        fields = {"query": expr} | ({"time": f"{at.timestamp():.3f}"} if at is not None else {})
        query = urllib.parse.urlencode(fields)
        return parse_vector(get_json(f"{self.url}/api/v1/query?{query}", self.timeout))

    def query_range(self, expr: str, start: datetime, end: datetime, step_s: float) -> list[Series]:
        """``GET /api/v1/query_range``: ``expr`` evaluated every ``step_s`` from ``start`` to ``end``."""
        fields = {"query": expr, "start": f"{start.timestamp():.3f}", "end": f"{end.timestamp():.3f}"}
        query = urllib.parse.urlencode(fields | {"step": f"{step_s:g}"})
        return parse_matrix(get_json(f"{self.url}/api/v1/query_range?{query}", self.timeout))

    def ready(self) -> None:
        """``GET /-/ready`` answers 200 once Prometheus serves queries (its body is text, not read)."""
        _get(f"{self.url}/-/ready", self.timeout)


@dataclass(frozen=True)
class AmAlert:
    """An alert of ``GET /api/v2/alerts``."""

    labels: dict[str, str]
    annotations: dict[str, str]
    state: str  # active | suppressed | unprocessed
    starts_at: datetime
    updated_at: datetime
    ends_at: datetime
    fingerprint: str

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")


def parse_alerts(payload: Any) -> list[AmAlert]:
    if not isinstance(payload, list):
        raise Unreachable("Alertmanager answered something other than a list of alerts")
    alerts = []
    for i, item in enumerate(payload):
        where = f"alert {i}"
        try:
            alerts.append(
                AmAlert(
                    labels={str(k): str(v) for k, v in item["labels"].items()},
                    annotations={str(k): str(v) for k, v in (item.get("annotations") or {}).items()},
                    state=str((item.get("status") or {}).get("state", "")),
                    starts_at=parse_time(item["startsAt"], where + " startsAt"),
                    updated_at=parse_time(item["updatedAt"], where + " updatedAt"),
                    ends_at=parse_time(item["endsAt"], where + " endsAt"),
                    fingerprint=str(item.get("fingerprint", "")),
                )
            )
        except (KeyError, TypeError, AttributeError, BadPayload) as exc:
            raise Unreachable(f"Alertmanager answered a malformed alert ({where}: {exc})") from None
    return alerts


class Alertmanager:
    def __init__(self, url: str, timeout: float = TIMEOUT) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def alerts(self, **flags: bool) -> list[AmAlert]:
        """``GET /api/v2/alerts`` with its filters (``active``, ``silenced``, ``inhibited``, ``unprocessed``)."""
        query = urllib.parse.urlencode({k: str(v).lower() for k, v in flags.items()})
        return parse_alerts(get_json(f"{self.url}/api/v2/alerts" + (f"?{query}" if query else ""), self.timeout))

    def firing(self) -> list[AmAlert]:
        """What a person must see: active, neither silenced nor inhibited."""
        return self.alerts(active=True, silenced=False, inhibited=False)
