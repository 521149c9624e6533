"""The duty board: its model (deadline math, state mapping, escaping), its sign-in cookie, its HTTP
side on a real responder, and the countdown ticking in a real headless chromium.

Prometheus and Alertmanager are the recorded-JSON loopback servers of ``portalops status``'s tests; the
incidents are opened by the service desk's own code, as ``portalops incident open`` does.
"""

from __future__ import annotations

import http.client
import json
import logging
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from portalops.errors import BadInput
from portalops.monitoring.api import Alertmanager, Prometheus
from portalops.monitoring.status import Due, Site, Status, open_incidents
from portalops.responder.board import Board, Sources, countdown, gather, line_class, render, ticking
from portalops.responder.boardweb import COOKIE, BoardSite, Sessions
from portalops.responder.config import Config, load_config
from portalops.responder.incidents import Store
from portalops.responder.server import Running, make_app, start_in_thread
from portalops.responder.service import Responder
from portalops.runbook import registry
from portalops.runbook.desk import open_reported
from portalops.runbook.journal import utc_now
from portalops.runbook.levels import Level
from portalops.runbook.notify import Notifier
from tests.browser import Browser, countdown_seconds, sign_in_and_read_countdown
from tests.unit.monitoring_servers import (
    SITE,
    Monitoring,
    dead_url,
    prometheus_answers,
    serve,
    site_down_alert,
    watchdog,
)
from tests.unit.test_responder import FakeRunner

BOARD_TOKEN = "board-token-for-people-0123"  # noqa: S105 - a test's token
WEBHOOK_TOKEN = "webhook-token-for-alertmanager"  # noqa: S105 - a test's token
NOW = datetime(2026, 12, 3, 7, 30, tzinfo=UTC)  # Thursday 15:30 in Beijing: working hours
HOSTILE = '<script>alert("x")</script> & "quoted"'


def drill_report(directory: Path, name: str, ok: bool = True) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    summary = {"ok": ok, "rto_s": 41.5, "rpo_s": 3600.0, "checks_passed": 7 if ok else 5, "checks_total": 7}
    (directory / f"{name}.json").write_text(json.dumps({"summary": summary, "result": {}}))


def open_l2(root: Path, detected: datetime, title: str = "首页打不开") -> str:
    journal = open_reported(root, Level.L2, title, "信息中心 王五", "phone", "张三", detected, detected)
    return journal.directory.name


# ---------------------------------------------------------------------- the model, pure


def test_countdown_is_h_mm_ss_left_or_overdue() -> None:
    assert countdown(7198.9) == "1:59:58 left"
    assert countdown(0) == "0:00:00 left"
    assert countdown(-12.4) == "OVERDUE by 0:00:12"
    assert countdown(-3 * 3600 - 61) == "OVERDUE by 3:01:01"
    assert countdown_seconds(countdown(7198.9)) == 7198 and countdown_seconds(countdown(-12)) == -12


def test_only_pending_and_owed_deadlines_tick() -> None:
    due = "2026-12-03T08:00:00.000Z"
    assert ticking(Due("callback", "回电 call back", due, 1800.0, "pending"))
    assert ticking(Due("callback", "回电 call back", due, -60.0, "breached"))  # owed: nothing done yet
    assert not ticking(Due("callback", "回电 call back", due, -60.0, "breached", at=due, evidence="late call"))
    assert not ticking(Due("onsite", "到场 on site", due, 600.0, "met", at=due, evidence="张三 remote"))
    assert not ticking(Due("onsite", "到场 on site", due, 600.0, "n/a", evidence="resolved before"))


def test_availability_against_the_95_percent_line() -> None:
    assert (line_class(0.95), line_class(0.9499), line_class(None)) == ("ok", "bad", "unknown")


def model(tmp_path: Path, sites: list[Site], now: datetime = NOW) -> Board:
    status = Status(now, "http://prometheus", "http://alertmanager", sites=sites)
    return Board(status, today={s.name: 0.99 for s in sites}, backups={"error": "", "jobs": []})


def test_site_states_map_to_their_classes_and_unknown_is_never_up(tmp_path: Path) -> None:
    sites = [Site("up-site", "up", ratio_7d=0.99), Site("down-site", "down", ratio_7d=0.9), Site("dark")]
    page = render(model(tmp_path, sites), "n0nce")
    assert '<td class="state ok">up</td>' in page
    assert '<td class="state bad">down</td>' in page
    assert '<td class="state unknown">unknown</td>' in page
    assert '<td class="week bad">90.00 %</td>' in page and '<td class="week unknown">unknown</td>' in page


def test_every_text_is_escaped(tmp_path: Path) -> None:
    root = tmp_path / "incidents"
    incident = open_l2(root, NOW - timedelta(minutes=5), HOSTILE)
    board = model(tmp_path, [Site(HOSTILE, "up")])
    board.status.incidents = open_incidents(root, NOW)
    page = render(board, "n0nce")
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &quot;quoted&quot;" in page
    assert page.count("<script") == 1 and '<script nonce="n0nce">' in page
    assert f'data-incident="{incident}"' in page


def test_gather_reads_what_status_reads_and_the_newest_drill(tmp_path: Path) -> None:
    world = Monitoring()
    world.queries = prometheus_answers(NOW)
    world.alerts = [watchdog(NOW), site_down_alert(NOW)]
    reports = tmp_path / "reports"
    drill_report(reports / "drills", "20261201T180000Z", ok=True)
    drill_report(reports / "drills", "20261202T180000Z", ok=False)
    root = tmp_path / "incidents"
    incident = open_l2(root, NOW - timedelta(minutes=5))
    with serve(world) as url:
        board = gather(Sources(Prometheus(url, 2), Alertmanager(url, 2), root, reports, (SITE,)), NOW)
    [site] = board.status.sites
    assert (site.name, site.state, site.ratio_7d) == (SITE, "up", 0.9981)
    assert [a.name for a in board.status.alerts] == ["PortalSiteDown"]  # not the Watchdog
    [shown] = board.status.incidents
    assert shown.incident == incident
    assert [(d.name, d.status) for d in shown.deadlines] == [("callback", "pending"), ("onsite", "pending")]
    assert board.drill is not None
    assert (board.drill["started"], board.drill["ok"], board.drill["checks"]) == (
        "2026-12-02T18:00:00.000Z",
        False,
        "5/7",
    )
    page = render(board, "n0nce")
    callback = shown.deadlines[0]
    assert f'data-due="{int(datetime.fromisoformat(callback.due.replace("Z", "+00:00")).timestamp() * 1000)}"' in page
    assert countdown(callback.left_s) in page  # the server's text until the script ticks


def test_dead_monitoring_leaves_every_figure_unknown(tmp_path: Path) -> None:
    dead = dead_url()
    (tmp_path / "reports" / "drills").mkdir(parents=True)
    (tmp_path / "reports" / "drills" / "20261202T180000Z.json").write_text("{not json")
    sources = Sources(Prometheus(dead, 1), Alertmanager(dead, 1), tmp_path / "incidents", tmp_path / "reports", (SITE,))
    board = gather(sources, NOW)
    assert [(s.name, s.state) for s in board.status.sites] == [(SITE, "unknown")]
    assert board.today == {} and board.today_error and board.backups["error"]
    assert board.drill is None and "unreadable" in board.drill_error
    page = render(board, "n0nce")
    assert "firing alerts unknown" in page and "backups unknown" in page
    assert ">up<" not in page


# ---------------------------------------------------------------------- the sign-in cookie


def test_a_session_cookie_is_valid_until_it_expires_and_only_untampered() -> None:
    sessions = Sessions(BOARD_TOKEN, 3600)
    cookie = sessions.issue(NOW)
    assert sessions.valid(cookie, NOW + timedelta(minutes=59))
    assert not sessions.valid(cookie, NOW + timedelta(hours=1))  # expired
    version, expiry, signature = cookie.split(".")
    assert not sessions.valid(f"{version}.{int(expiry) + 86400}.{signature}", NOW)  # a later expiry, same signature
    assert not sessions.valid(f"{version}.{expiry}.{signature[:-1]}{'0' if signature[-1] != '0' else '1'}", NOW)
    assert not sessions.valid(f"v2.{expiry}.{signature}", NOW)
    assert not sessions.valid("", NOW) and not sessions.valid("v1..", NOW)
    assert not Sessions(BOARD_TOKEN + "x", 3600).valid(cookie, NOW)  # a new token ends every session
    assert sessions.accepts(BOARD_TOKEN) and not sessions.accepts(BOARD_TOKEN[:-1]) and not sessions.accepts("")
    assert BOARD_TOKEN not in repr(sessions)


def test_config_board_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "responder.yml"
    path.write_text("board_enabled: true\nboard_token_env: TEST_BOARD\nprometheus: http://mon1:9090/\nreports: r\n")
    config = load_config(path)
    assert (config.board_enabled, config.prometheus, config.reports, config.board_session) == (
        True,
        "http://mon1:9090",
        Path("r"),
        43200.0,
    )
    monkeypatch.setenv("TEST_BOARD", "short")
    with pytest.raises(BadInput, match=r"board_token from \$TEST_BOARD: missing or shorter than 16"):
        config.board_token()
    monkeypatch.setenv("TEST_BOARD", BOARD_TOKEN)
    assert config.board_token() == BOARD_TOKEN
    with pytest.raises(BadInput, match="board_enabled is true or false"):
        load_config(None, {"board_enabled": "yes"})
    with pytest.raises(BadInput, match="board_session"):
        load_config(None, {"board_session": 10})


# ---------------------------------------------------------------------- over HTTP, then in the browser


@dataclass
class Served:
    url: str
    root: Path
    world: Monitoring


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """A responder with the board on an ephemeral port, its monitoring the recorded-JSON servers (live now)."""
    world = Monitoring()
    now = utc_now()
    world.queries = prometheus_answers(now)
    world.alerts = [watchdog(now), site_down_alert(now)]
    root = tmp_path / "incidents"
    root.mkdir()
    reports = tmp_path / "reports"
    drill_report(reports / "drills", "20261202T180000Z")
    config = Config(incidents=root, inventory="inventory/lab", reconcile_interval=3600)
    responder = Responder(config, Store(root, config.inventory, registry.discover()), Notifier([]), FakeRunner(root))
    with serve(world) as monitoring:
        sources = Sources(Prometheus(monitoring, 2), Alertmanager(monitoring, 2), root, reports, (SITE,))
        board = BoardSite(sources, Sessions(BOARD_TOKEN, 3600))
        server: Running = start_in_thread(make_app(responder, WEBHOOK_TOKEN, reconcile=False, board=board))
        try:
            yield Served(server.url, root, world)
        finally:
            server.stop()
            responder.shutdown()


def request(
    base: str, method: str, path: str, body: dict[str, str] | None = None, cookie: str = ""
) -> http.client.HTTPResponse:
    """One request, redirects not followed (http.client), so the test sees each 303 and Set-Cookie."""
    url = urllib.parse.urlsplit(base)
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=20)
    headers = {"Cookie": f"{COOKIE}={cookie}"} if cookie else {}
    data = urllib.parse.urlencode(body) if body is not None else None
    if data is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    connection.request(method, path, body=data, headers=headers)
    response = connection.getresponse()
    response.read()
    return response


def test_without_a_session_the_board_redirects_to_its_sign_in(served: Served) -> None:
    answer = request(served.url, "GET", "/board")
    assert (answer.status, answer.getheader("Location")) == (303, "/board/signin")
    tampered = Sessions(BOARD_TOKEN + "-other", 3600).issue(utc_now())
    assert request(served.url, "GET", "/board", cookie=tampered).status == 303
    form = request(served.url, "GET", "/board/signin")
    assert form.status == 200 and "script-src 'nonce-" in (form.getheader("Content-Security-Policy") or "")


def test_the_webhook_token_does_not_open_the_board_and_a_wrong_token_is_not_logged(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="portalops.responder"):
        answer = request(served.url, "POST", "/board/signin", {"token": WEBHOOK_TOKEN})
    assert answer.status == 401 and answer.getheader("Set-Cookie") is None
    assert "board sign-in from 127.0.0.1: refused" in caplog.text
    assert WEBHOOK_TOKEN not in caplog.text


def test_signing_in_sets_a_strict_httponly_cookie_that_opens_the_board(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="portalops.responder"):
        answer = request(served.url, "POST", "/board/signin", {"token": BOARD_TOKEN})
    assert (answer.status, answer.getheader("Location")) == (303, "/board")
    cookie = answer.getheader("Set-Cookie") or ""
    for attribute in ("HttpOnly", "SameSite=Strict", "Max-Age=3600", "Path=/board"):
        assert attribute in cookie, cookie
    assert BOARD_TOKEN not in caplog.text and BOARD_TOKEN not in cookie
    value = cookie.split(";")[0].split("=", 1)[1]
    board = request(served.url, "GET", "/board", cookie=value)
    assert board.status == 200 and board.getheader("Cache-Control") == "no-store"
    assert request(served.url, "POST", "/board/signout").getheader("Location") == "/board/signin"


def test_the_board_counts_an_open_incidents_deadline_down_in_a_real_browser(served: Served, tmp_path: Path) -> None:
    incident = open_l2(served.root, utc_now() - timedelta(minutes=1), HOSTILE)
    browser = Browser(tmp_path)
    try:
        first, second = sign_in_and_read_countdown(browser, served.url, BOARD_TOKEN, incident)
        assert 0 < second < first <= 15 * 60, (first, second)  # an L2's call-back is due 15 min after detection
        assert first - second >= 2  # three seconds apart, by the page's own script
        shown = browser.evaluate(f"document.querySelector('[data-incident=\"{incident}\"]').innerText")
        assert HOSTILE in shown  # the title shown as text, never run
        assert browser.evaluate("document.scripts.length") == 1
        site = browser.evaluate(f"document.querySelector('[data-site=\"{SITE}\"] .state').textContent")
        assert site == "up"
        assert "PortalSiteDown" in browser.evaluate("document.body.innerText")
        assert browser.errors == [], browser.errors
    finally:
        browser.close()
