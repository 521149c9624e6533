"""The duty board on the lab, in a real headless chromium: a person opens an L2 incident as after a phone
call, the board counts its call-back deadline down, and shows every site of the inventory as
`portalops status` sees it from mon1's Prometheus ("up" on a healthy lab).

The responder runs as `portalops responder` would, from this machine, with the lab's configuration
(contrib/portalops-responder-lab.yml) and the board enabled; it listens on a loopback port of its own
and keeps its incidents in the test's directory, so Alertmanager's webhook never reaches it and no
runbook runs (auto_run is empty). The incident it shows is closed at the end.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from portalops.inventory import REPO_ROOT
from portalops.lab.config import LabConfig
from tests.browser import Browser, sign_in_and_read_countdown
from tests.integration.helpers import portalops, running_responder
from tests.integration.test_site_responder import LAB_CONFIG, vault_token

PORTAL = yaml.safe_load((REPO_ROOT / "inventory/lab/group_vars/all/portal.yml").read_text())
SITES = [site["name"] for site in PORTAL["portal_sites"]]
BOARD_TOKEN = "duty-board-lab-token-0123456789"  # noqa: S105 - the test's own board token


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Served:
    url: str
    incidents: Path
    log: Path


@pytest.fixture(scope="module")
def board(converged: LabConfig, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    work = tmp_path_factory.mktemp("board")
    for name, secret in (("token", vault_token()), ("board.token", BOARD_TOKEN)):
        (work / name).touch(mode=0o600)
        (work / name).write_text(secret)
    url = f"http://127.0.0.1:{free_port()}"
    config = yaml.safe_load(LAB_CONFIG.read_text())
    config.update(
        listen=url.removeprefix("http://"),
        incidents=str(work / "incidents"),
        token_file=str(work / "token"),
        auto_run=[],
        board_enabled=True,
        board_token_file=str(work / "board.token"),
    )
    with running_responder(work, config, url) as log:
        yield Served(url, work / "incidents", log)


def incident(incidents: Path, *argv: str) -> str:
    result = portalops("incident", *argv, "--incidents", str(incidents), timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def sites_in_status(incidents: Path) -> dict[str, str]:
    result = portalops("status", "--json", "--incidents", str(incidents), timeout=60)
    assert result.stdout.startswith("{"), result.stdout + result.stderr
    return {site["name"]: site["state"] for site in json.loads(result.stdout)["sites"]}


def test_the_board_counts_a_person_opened_incident_down_and_shows_each_site_as_status_does(
    board: Served, tmp_path: Path
) -> None:
    # The lab was converged just now, perhaps after a drill broke a site: the probes see it recover
    # within a few scrapes (20 s each); until `portalops status` says every site is up, the lab is not
    # the healthy one this test is about.
    deadline = time.monotonic() + 180
    while (said := sites_in_status(board.incidents)) != dict.fromkeys(SITES, "up"):
        assert time.monotonic() < deadline, f"not every site up in `portalops status` 180 s after site.yml: {said}"
        time.sleep(5)
    opened = incident(
        board.incidents, "open", "--level", "L2", "--title", "值班看板测试", "--reported-by", "信息中心 王五"
    )
    name = opened.split()[1].rstrip(":")
    browser = Browser(tmp_path)
    try:
        first, second = sign_in_and_read_countdown(browser, board.url, BOARD_TOKEN, name)
        assert 0 < second < first <= 15 * 60, (first, second)  # an L2's call-back: 15 min after the call
        assert first - second >= 2, (first, second)  # ticked by the page's script, three seconds apart
        # Each site as status says it, read again beside the page: in CI the portal's probe failed once
        # between the wait above and the page (a slow first answer after the db_tls tests), the board said
        # "down" as status then did, and the test compared it with the earlier "up". A failed probe clears
        # at the next one; the board must follow status there too, at its next load.
        deadline = time.monotonic() + 120
        while True:
            shown = {
                site: browser.evaluate(f"document.querySelector('[data-site=\"{site}\"] .state').textContent")
                for site in SITES
            }
            said = sites_in_status(board.incidents)
            if shown == dict.fromkeys(SITES, "up") == said:
                break
            assert time.monotonic() < deadline, (shown, said)
            time.sleep(5)
            browser.open(f"{board.url}/board")
            browser.wait_for("location.pathname === '/board' && !!document.querySelector('[data-site] .state')")
        week = [browser.evaluate(f"document.querySelector('[data-site=\"{s}\"] .week').textContent") for s in SITES]
        assert all(w.endswith(" %") for w in week), week  # the recording rules' 7-day figure, not "unknown"
        assert browser.errors == [], browser.errors
    finally:
        browser.close()
        for argv in (("ack", name), ("resolve", name, "--note", "测试结束"), ("close", name)):
            incident(board.incidents, *argv, "--by", "张三")
    assert BOARD_TOKEN not in board.log.read_text()
