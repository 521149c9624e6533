"""Notifications at an incident's start, escalation and resolution, and when its report is due.

Channels come from the inventory variable ``portalops_notify``
(inventory/lab/group_vars/all/notify.yml documents it): SMTP email, a WeCom
group robot, a DingTalk robot with signed requests, a generic JSON webhook.
A channel that fails is reported as a :class:`Delivery`, never raised: a
notification must not stop a runbook.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import smtplib
import ssl
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from portalops.errors import BadInput

EVENTS = ("start", "escalation", "resolution", "report_clock", "monitoring")
TYPES = ("email", "wecom", "dingtalk", "webhook")
WECOM_LIMIT = 4000  # bytes; WeCom refuses markdown content over 4096


@dataclass(frozen=True)
class Notice:
    event: str  # start | escalation | resolution | report_clock | monitoring (portalops deadman)
    incident: str
    runbook: str
    level: int
    title: str  # one line
    text: str  # Markdown


@dataclass(frozen=True)
class Delivery:
    channel: str
    type: str
    ok: bool
    error: str = ""
    duration_s: float = 0.0

    def journal_fields(self) -> dict[str, Any]:
        """What an incident's journal keeps of this delivery (its ``notify`` event)."""
        return {
            "channel": self.channel,
            "type": self.type,
            "ok": self.ok,
            "error": self.error,
            "duration_s": self.duration_s,
        }


@dataclass(frozen=True)
class Channel:
    """One configured receiver; ``settings`` are the type's own keys."""

    name: str
    type: str
    settings: Mapping[str, Any]
    levels: frozenset[int] = frozenset({1, 2, 3})
    events: frozenset[str] = frozenset(EVENTS)
    timeout: float = 5.0

    def wants(self, notice: Notice) -> bool:
        return notice.level in self.levels and notice.event in self.events

    def send(self, notice: Notice, now: Callable[[], float] = time.time) -> None:
        if self.type == "email":
            send_email(self.settings, notice, self.timeout)
        elif self.type == "wecom":
            content = notice.text.encode()[:WECOM_LIMIT].decode(errors="ignore")
            _robot_reply(post_json(self.settings["url"], wecom_payload(content), self.timeout))
        elif self.type == "dingtalk":
            url = dingtalk_url(self.settings["url"], str(self.settings.get("secret", "")), int(now() * 1000))
            _robot_reply(post_json(url, dingtalk_payload(notice), self.timeout))
        else:
            headers = {str(k): str(v) for k, v in (self.settings.get("headers") or {}).items()}
            post_json(self.settings["url"], webhook_payload(notice), self.timeout, headers)


def wecom_payload(content: str) -> dict[str, Any]:
    return {"msgtype": "markdown", "markdown": {"content": content}}


def dingtalk_payload(notice: Notice) -> dict[str, Any]:
    return {"msgtype": "markdown", "markdown": {"title": notice.title, "text": notice.text}}


def webhook_payload(notice: Notice) -> dict[str, Any]:
    return {
        "event": notice.event,
        "incident": notice.incident,
        "runbook": notice.runbook,
        "level": notice.level,
        "title": notice.title,
        "text": notice.text,
    }


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's signature: base64(HMAC-SHA256(key=secret, "timestamp\\nsecret")), URL-encoded."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return urllib.parse.quote_plus(base64.b64encode(digest))


def dingtalk_url(url: str, secret: str, timestamp_ms: int) -> str:
    if not secret:
        return url
    joiner = "&" if urllib.parse.urlsplit(url).query else "?"
    return f"{url}{joiner}timestamp={timestamp_ms}&sign={dingtalk_sign(secret, timestamp_ms)}"


def post_json(url: str, payload: Mapping[str, Any], timeout: float, headers: Mapping[str, str] | None = None) -> Any:
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"not an http(s) URL: {url}")
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        url,
        data=json.dumps(payload, ensure_ascii=False).encode(),
        headers={"Content-Type": "application/json; charset=utf-8", **(headers or {})},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s) only
        body = response.read()
    try:
        return json.loads(body) if body else None
    except json.JSONDecodeError:
        return None


def _robot_reply(reply: Any) -> None:
    """WeCom and DingTalk answer HTTP 200 with a non-zero errcode when they refuse."""
    if not isinstance(reply, dict) or reply.get("errcode", 0) != 0:
        raise RuntimeError(f"robot refused the message: {reply}")


def send_email(settings: Mapping[str, Any], notice: Notice, timeout: float) -> None:
    message = EmailMessage()
    message["Subject"] = notice.title
    message["From"] = str(settings["from"])
    message["To"] = ", ".join(settings["to"])
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=str(settings["from"]).rsplit("@", 1)[-1])
    message.set_content(notice.text)
    with smtplib.SMTP(str(settings["smtp_host"]), int(settings.get("smtp_port", 25)), timeout=timeout) as smtp:
        if settings.get("smtp_starttls"):
            smtp.starttls(context=ssl.create_default_context())
        if settings.get("smtp_user"):
            smtp.login(str(settings["smtp_user"]), str(settings.get("smtp_password", "")))
        smtp.send_message(message)


REQUIRED = {"email": ("smtp_host", "from", "to"), "wecom": ("url",), "dingtalk": ("url",), "webhook": ("url",)}


def channels_from_config(config: Any) -> list[Channel]:
    """Validate ``portalops_notify``; an absent or disabled configuration has no channels."""
    if config is None or config == {}:
        return []
    if not isinstance(config, dict):
        raise BadInput(f"portalops_notify must be a mapping, got {type(config).__name__}")
    if not config.get("enabled", False):
        return []
    timeout = float(config.get("timeout", 5))
    channels: list[Channel] = []
    for i, entry in enumerate(config.get("channels") or []):
        where = f"portalops_notify.channels[{i}]"
        if not isinstance(entry, dict) or entry.get("type") not in TYPES or not entry.get("name"):
            raise BadInput(f"{where}: needs a name and a type out of {', '.join(TYPES)}")
        missing = [key for key in REQUIRED[entry["type"]] if not entry.get(key)]
        if missing:
            raise BadInput(f"{where} ({entry['name']}): missing {', '.join(missing)}")
        if entry["type"] == "email" and not isinstance(entry["to"], list):
            raise BadInput(f"{where} ({entry['name']}): to must be a list of addresses")
        events = frozenset(entry.get("events", EVENTS))
        if not events <= set(EVENTS):
            raise BadInput(f"{where} ({entry['name']}): events are {', '.join(EVENTS)}")
        channels.append(
            Channel(
                name=str(entry["name"]),
                type=str(entry["type"]),
                settings=entry,
                levels=frozenset(int(level) for level in entry.get("levels", (1, 2, 3))),
                events=events,
                timeout=float(entry.get("timeout", timeout)),
            )
        )
    return channels


@dataclass
class Notifier:
    channels: list[Channel] = field(default_factory=list)
    now: Callable[[], float] = time.time

    def send(self, notice: Notice) -> list[Delivery]:
        """Every channel that wants ``notice``, in parallel; failures come back as deliveries."""
        wanted = [c for c in self.channels if c.wants(notice)]
        if not wanted:
            return []
        with ThreadPoolExecutor(max_workers=len(wanted)) as pool:
            return list(pool.map(lambda channel: self._deliver(channel, notice), wanted))

    def _deliver(self, channel: Channel, notice: Notice) -> Delivery:
        started = time.monotonic()
        try:
            channel.send(notice, self.now)
        except Exception as exc:  # any failure of any channel is reported, never raised
            error = f"{type(exc).__name__}: {exc}"
            return Delivery(channel.name, channel.type, False, error, round(time.monotonic() - started, 3))
        return Delivery(channel.name, channel.type, True, "", round(time.monotonic() - started, 3))
