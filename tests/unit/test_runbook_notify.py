"""Notifications against local receivers: an SMTP sink and an HTTP server on 127.0.0.1."""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import hmac
import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from portalops.errors import BadInput
from portalops.runbook.notify import Notice, Notifier, channels_from_config, dingtalk_sign

NOTICE = Notice(
    event="escalation",
    incident="20260310T020000Z-l1_portal_unreachable",
    runbook="l1_portal_unreachable",
    level=1,
    title="[L1 一级] 门户网站无法访问 Portal unreachable: 升级 escalated",
    text="### 门户网站无法访问\n- finding: web1 nginx inactive",
)
SIGNING = "SEC-test-signing-value"
NOW_MS = 1773108000123


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        parts = urllib.parse.urlsplit(self.path)
        self.server.requests.append((parts.path, urllib.parse.parse_qs(parts.query), json.loads(body)))  # type: ignore[attr-defined]
        answer: dict[str, Any] = {"errcode": 0, "errmsg": "ok"}
        if parts.path == "/refuse":
            answer = {"errcode": 310000, "errmsg": "sign not match"}
        payload = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def http() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.requests = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def config(smtp_port: int, http_port: int, **extra: Any) -> dict[str, Any]:
    base = f"http://127.0.0.1:{http_port}"
    return {
        "enabled": True,
        "timeout": 3,
        "channels": [
            {
                "name": "mail",
                "type": "email",
                "smtp_host": "127.0.0.1",
                "smtp_port": smtp_port,
                "from": "portalops@portal.lab.test",
                "to": ["oncall@portal.lab.test"],
            },
            {"name": "wecom", "type": "wecom", "url": f"{base}/cgi-bin/webhook/send?key=k1"},
            {"name": "ding", "type": "dingtalk", "url": f"{base}/robot/send?access_token=t1", "secret": SIGNING},
            {"name": "hook", "type": "webhook", "url": f"{base}/hook", "headers": {"X-Portalops": "1"}},
            *extra.get("more", []),
        ],
    }


def test_every_channel_delivers_to_its_local_receiver(smtp: Any, http: Any) -> None:
    notifier = Notifier(
        channels_from_config(config(smtp.server_address[1], http.server_address[1])), now=lambda: NOW_MS / 1000
    )
    deliveries = notifier.send(NOTICE)
    assert [(d.channel, d.ok, d.error) for d in deliveries] == [
        ("mail", True, ""),
        ("wecom", True, ""),
        ("ding", True, ""),
        ("hook", True, ""),
    ]
    mail = email.message_from_bytes(smtp.received[0], policy=email.policy.default)
    assert mail["Subject"] == NOTICE.title
    assert mail["To"] == "oncall@portal.lab.test"
    assert "web1 nginx inactive" in mail.get_content()

    by_path = {path: (query, body) for path, query, body in http.requests}
    query, body = by_path["/cgi-bin/webhook/send"]
    assert query == {"key": ["k1"]}
    assert body == {"msgtype": "markdown", "markdown": {"content": NOTICE.text}}
    _, body = by_path["/hook"]
    assert body["event"] == "escalation"
    assert body["incident"] == NOTICE.incident
    assert body["level"] == 1


def test_dingtalk_requests_are_signed_as_dingtalk_documents(http: Any) -> None:
    url = f"http://127.0.0.1:{http.server_address[1]}/robot/send?access_token=t1"
    channels = channels_from_config(
        {"enabled": True, "channels": [{"name": "d", "type": "dingtalk", "url": url, "secret": SIGNING}]}
    )
    Notifier(channels, now=lambda: NOW_MS / 1000).send(NOTICE)
    _, query, body = http.requests[0]
    assert query["access_token"] == ["t1"]
    timestamp = query["timestamp"][0]
    assert timestamp == str(NOW_MS)
    # DingTalk's own recipe: hmac(secret, "timestamp\nsecret", sha256), base64 (then URL-encoded in the query).
    string_to_sign = f"{timestamp}\n{SIGNING}".encode()
    expected = base64.b64encode(hmac.new(SIGNING.encode("utf-8"), string_to_sign, digestmod=hashlib.sha256).digest())
    assert query["sign"] == [expected.decode()]
    assert urllib.parse.unquote_plus(dingtalk_sign(SIGNING, NOW_MS)) == expected.decode()
    assert body == {"msgtype": "markdown", "markdown": {"title": NOTICE.title, "text": NOTICE.text}}


def test_a_refusing_robot_and_a_dead_smtp_server_are_reported_not_raised(http: Any) -> None:
    base = f"http://127.0.0.1:{http.server_address[1]}"
    channels = channels_from_config(
        {
            "enabled": True,
            "timeout": 2,
            "channels": [
                {"name": "refuse", "type": "dingtalk", "url": f"{base}/refuse", "secret": SIGNING},
                {
                    "name": "mail",
                    "type": "email",
                    "smtp_host": "127.0.0.1",
                    "smtp_port": 9,
                    "from": "a@b",
                    "to": ["c@d"],
                },
                {"name": "nohost", "type": "webhook", "url": "http://127.0.0.1:9/x"},
            ],
        }
    )
    deliveries = {d.channel: d for d in Notifier(channels).send(NOTICE)}
    assert not any(d.ok for d in deliveries.values())
    assert "sign not match" in deliveries["refuse"].error
    assert "ConnectionRefusedError" in deliveries["mail"].error
    assert "URLError" in deliveries["nohost"].error


def test_channels_filter_by_level_and_event(http: Any) -> None:
    url = f"http://127.0.0.1:{http.server_address[1]}/hook"
    channels = channels_from_config(
        {
            "enabled": True,
            "channels": [
                {"name": "l1only", "type": "webhook", "url": url, "levels": [1]},
                {"name": "ends", "type": "webhook", "url": url, "events": ["resolution"]},
            ],
        }
    )
    sent = Notifier(channels).send(NOTICE)
    assert [d.channel for d in sent] == ["l1only"]
    l3 = Notice("resolution", "i", "r", 3, "t", "x")
    assert [d.channel for d in Notifier(channels).send(l3)] == ["ends"]


def test_disabled_or_absent_configuration_has_no_channels() -> None:
    assert channels_from_config(None) == []
    assert channels_from_config({"enabled": False, "channels": [{"name": "x", "type": "nope"}]}) == []


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"name": "x", "type": "sms"}, "type out of email, wecom, dingtalk, webhook"),
        ({"name": "x", "type": "email", "smtp_host": "h", "from": "a@b"}, "missing to"),
        ({"name": "x", "type": "email", "smtp_host": "h", "from": "a@b", "to": "c@d"}, "to must be a list"),
        ({"name": "x", "type": "webhook", "url": "http://h", "events": ["boom"]}, "events are start"),
    ],
)
def test_bad_configuration_is_bad_input_naming_the_channel(entry: dict[str, Any], problem: str) -> None:
    with pytest.raises(BadInput, match=problem):
        channels_from_config({"enabled": True, "channels": [entry]})


def test_the_lab_configuration_is_valid_and_off() -> None:
    import yaml

    from portalops.inventory import REPO_ROOT

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!vault", lambda loader, node: "vaulted")
    data = yaml.load((REPO_ROOT / "inventory/lab/group_vars/all/notify.yml").read_text(), Loader=Loader)  # noqa: S506
    notify = data["portalops_notify"]
    assert notify["enabled"] is False
    channels = channels_from_config({**notify, "enabled": True})
    assert sorted(c.type for c in channels) == ["dingtalk", "email", "webhook", "wecom"]
    for channel in channels:
        target = channel.settings.get("url") or channel.settings["smtp_host"]
        assert "127.0.0.1" in target, "the lab's receivers are local"
