"""``portalops deadman`` against real loopback servers: a Prometheus, an Alertmanager answering recorded
API JSON, and a webhook receiver (the duty contacts' channel) counting the notices."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from portalops.cli import main
from portalops.monitoring.api import Alertmanager, Prometheus
from portalops.monitoring.deadman import State, check, step
from portalops.runbook.notify import Notifier, channels_from_config
from tests.unit.monitoring_servers import Monitoring, dead_url, serve, site_down_alert, watchdog

NOW = datetime(2026, 12, 3, 7, 30, tzinfo=UTC)


@pytest.fixture
def world() -> Iterator[tuple[Monitoring, str]]:
    state = Monitoring()
    with serve(state) as url:
        yield state, url


@pytest.fixture
def receiver() -> Iterator[tuple[Monitoring, str]]:
    state = Monitoring()
    with serve(state) as url:
        yield state, url


def notifier(url: str) -> Notifier:
    config = {"enabled": True, "timeout": 2, "channels": [{"name": "duty", "type": "webhook", "url": url + "/hook"}]}
    return Notifier(channels_from_config(config))


def test_alive_when_prometheus_is_ready_and_the_watchdog_fresh(world: tuple[Monitoring, str]) -> None:
    state, url = world
    state.alerts = [site_down_alert(NOW), watchdog(NOW)]
    assert check(Prometheus(url, 2), Alertmanager(url, 2), NOW) == []
    assert "/-/ready" in state.asked and "/api/v2/alerts" in state.asked


def test_watchdog_missing_is_dead(world: tuple[Monitoring, str]) -> None:
    state, url = world
    state.alerts = [site_down_alert(NOW)]
    [dead] = check(Prometheus(url, 2), Alertmanager(url, 2), NOW)
    assert "no Watchdog alert" in dead


def test_a_stale_watchdog_is_dead(world: tuple[Monitoring, str]) -> None:
    state, url = world
    state.alerts = [watchdog(NOW, age=timedelta(minutes=4))]
    [dead] = check(Prometheus(url, 2), Alertmanager(url, 2), NOW)
    assert "last updated 4 min ago" in dead
    assert check(Prometheus(url, 2), Alertmanager(url, 2), NOW, max_age=300) == []


def test_alertmanager_dead_is_dead(world: tuple[Monitoring, str]) -> None:
    _, url = world
    [dead] = check(Prometheus(url, 2), Alertmanager(dead_url(), 2), NOW)
    assert dead.startswith("Alertmanager not answering") and "refused" in dead.lower()


def test_prometheus_not_ready_is_dead(world: tuple[Monitoring, str]) -> None:
    state, url = world
    state.alerts = [watchdog(NOW)]
    state.ready = False
    [dead] = check(Prometheus(url, 2), Alertmanager(url, 2), NOW)
    assert dead == f"Prometheus not ready: {url}/-/ready: HTTP 503"


def test_notifies_once_when_it_dies_and_once_when_it_comes_back(
    world: tuple[Monitoring, str], receiver: tuple[Monitoring, str], tmp_path: Path
) -> None:
    state, url = world
    duty, hook = receiver
    path = tmp_path / ".deadman.json"
    told = notifier(hook)
    prometheus, alertmanager = Prometheus(url, 2), Alertmanager(url, 2)
    counts = []
    for minute, alive in enumerate([True, True, False, False, False, True, True]):
        now = NOW + timedelta(minutes=minute)
        state.alerts = [watchdog(now)] if alive else []
        step(check(prometheus, alertmanager, now), path, told, now)
        counts.append(len(duty.notices))
    assert counts == [0, 0, 1, 1, 1, 2, 2]
    died, back = duty.notices
    assert (died["event"], died["level"]) == ("monitoring", 1) and "DEAD" in died["title"]
    assert "no Watchdog alert" in died["text"]
    assert "monitoring back" in back["title"] and "was: Alertmanager has no Watchdog alert" in back["text"]
    assert State.load(path).state == "alive"


def test_a_notice_no_channel_delivered_is_tried_again_next_run(
    world: tuple[Monitoring, str], receiver: tuple[Monitoring, str], tmp_path: Path
) -> None:
    _, url = world
    duty, hook = receiver
    path = tmp_path / ".deadman.json"
    dead = check(Prometheus(url, 2), Alertmanager(dead_url(), 2), NOW)
    first = step(dead, path, notifier(dead_url()), NOW)
    assert first.state.state == "dead" and not first.state.notified and not first.deliveries[0].ok
    again = step(dead, path, notifier(hook), NOW + timedelta(minutes=1))
    assert again.state.notified and len(duty.notices) == 1
    assert json.loads(path.read_text())["since"] == "2026-12-03T07:30:00.000Z"  # when it died, not when told
    step(dead, path, notifier(hook), NOW + timedelta(minutes=2))
    assert len(duty.notices) == 1


def test_the_command_exits_0_alive_and_1_dead(world: tuple[Monitoring, str], tmp_path: Path) -> None:
    state, url = world
    state.alerts = [watchdog(datetime.now(UTC))]
    out = io.StringIO()
    assert main(["deadman", "--prometheus", url, "--alertmanager", url], out, io.StringIO()) == 0
    assert out.getvalue().startswith("alive")
    out = io.StringIO()
    assert main(["deadman", "--prometheus", dead_url(), "--alertmanager", url], out, io.StringIO()) == 1
    assert out.getvalue().startswith("DEAD: Prometheus not ready")
