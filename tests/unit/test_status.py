"""``portalops status`` against real loopback servers answering recorded Prometheus and Alertmanager JSON,
with incidents opened by the responder's own journal code."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from portalops.cli import main
from portalops.errors import ExitCode
from portalops.inventory import parse_inventory
from portalops.monitoring.api import Alertmanager, Prometheus
from portalops.monitoring.endpoints import from_inventory, inventory_sites
from portalops.monitoring.status import collect, format_table, to_json, verdict
from portalops.responder.alerts import parse_webhook
from portalops.responder.incidents import Store
from portalops.runbook import registry
from portalops.runbook.desk import summaries as desk_summaries
from portalops.runbook.journal import Journal, stamp
from portalops.runbook.levels import Level
from portalops.runbook.workcal import WorkCalendar, deadlines
from tests.unit.monitoring_servers import (
    DOMAINS,
    SITE,
    Monitoring,
    dead_url,
    go_time,
    prometheus_answers,
    serve,
    site_down_alert,
    watchdog,
)

NOW = datetime(2026, 12, 3, 7, 30, tzinfo=UTC)  # Thursday 15:30 in Beijing: working hours
RUNBOOKS = registry.discover()


@pytest.fixture
def world() -> Iterator[tuple[Monitoring, str]]:
    state = Monitoring()
    with serve(state) as url:
        yield state, url


def all_well(world: Monitoring, now: datetime = NOW) -> None:
    world.queries = prometheus_answers(now)
    world.alerts = [watchdog(now)]


def responder_incident(root: Path, alert: dict[str, Any], now: datetime) -> str:
    """Open an incident as the responder does on Alertmanager's webhook."""
    payload = {"version": "4", "status": "firing", "receiver": "portalops", "alerts": [alert]}
    store = Store(root, "inventory/lab", RUNBOOKS, WorkCalendar(), clock=lambda: now)
    return store.receive(parse_webhook(payload)[0], via="webhook").incident


def webhook_alert(name: str, runbook: str, level: str, starts: datetime) -> dict[str, Any]:
    return {
        "status": "firing",
        "labels": {"alertname": name, "runbook": runbook, "level": level, "site": SITE},
        "annotations": {"summary": name},
        "startsAt": go_time(starts),
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://mon1:9090/graph",
        "fingerprint": hashlib.sha256(name.encode()).hexdigest()[:16],
    }


def status_of(url: str, root: Path, now: datetime = NOW, prometheus: str = "") -> Any:
    return collect(Prometheus(prometheus or url, 2), Alertmanager(url, 2), root, now, [SITE])


def test_all_well_is_ok_with_the_figures_of_the_recording_rules(world: tuple[Monitoring, str], tmp_path: Path) -> None:
    state, url = world
    all_well(state)
    found = status_of(url, tmp_path)
    assert verdict(found) == ("ok", ExitCode.OK)
    [site] = found.sites
    assert (site.name, site.state, site.domains) == (SITE, "up", dict.fromkeys(DOMAINS, "up"))
    assert (site.ratio_24h, site.ratio_7d, site.veto_margin_7d) == (0.9993, 0.9981, 0.0481)
    table = format_table(found)
    assert "99.93 %" in table and "99.81 %" in table and "+4.81 pp" in table
    assert "站点 site" in table and "verdict: ok (exit 0)" in table
    body = json.loads(to_json(found))
    assert body["verdict"] == "ok" and body["exit"] == 0 and body["sites"][0]["state"] == "up"
    # Prometheus was asked through its JSON query API only; Alertmanager for what a person must see.
    assert all(p.startswith(("/api/v1/query?", "/api/v2/alerts?")) for p in state.asked)
    assert "/api/v2/alerts?active=true&silenced=false&inhibited=false" in state.asked


def test_a_site_down_with_its_alert_and_incident_is_broken(world: tuple[Monitoring, str], tmp_path: Path) -> None:
    state, url = world
    state.queries = prometheus_answers(NOW, up=False)
    state.alerts = [watchdog(NOW), site_down_alert(NOW)]
    incident = responder_incident(
        tmp_path,
        webhook_alert("PortalSiteDown", "l1_portal_unreachable", "L1", NOW - timedelta(minutes=3)),
        NOW - timedelta(minutes=3),
    )
    found = status_of(url, tmp_path)
    assert verdict(found) == ("broken", ExitCode.FAILED)
    assert found.sites[0].state == "down" and found.sites[0].domains[DOMAINS[0]] == "down"
    assert [a.name for a in found.alerts] == ["PortalSiteDown"]  # the Watchdog is a heartbeat, not shown as one
    [open_one] = found.incidents
    assert open_one.incident == incident and open_one.level == 1
    assert [d.name for d in open_one.deadlines] == ["respond", "onsite"]
    table = format_table(found)
    assert f"site {SITE} down" in table and "PortalSiteDown" in table and incident in table


def test_a_defaced_site_is_broken_though_its_inspection_probe_passes(
    world: tuple[Monitoring, str], tmp_path: Path
) -> None:
    state, url = world
    all_well(state)
    state.queries = prometheus_answers(NOW, defaced=True)
    found = status_of(url, tmp_path)
    assert found.sites[0].state == "defaced"
    assert verdict(found)[1] == ExitCode.FAILED


def test_under_the_veto_line_is_broken(world: tuple[Monitoring, str], tmp_path: Path) -> None:
    state, url = world
    all_well(state)
    state.queries = prometheus_answers(NOW, ratio_7d=0.93)
    found = status_of(url, tmp_path)
    assert found.sites[0].state == "up" and found.sites[0].veto_margin_7d == pytest.approx(-0.02)
    assert verdict(found)[1] == ExitCode.FAILED
    assert "-2.00 pp" in format_table(found)


def test_prometheus_dead_makes_every_figure_unknown_never_up_and_still_shows_incidents(
    world: tuple[Monitoring, str], tmp_path: Path
) -> None:
    state, url = world
    all_well(state)
    incident = responder_incident(
        tmp_path,
        webhook_alert("PortalSlow", "l2_slow_response", "L2", NOW - timedelta(minutes=5)),
        NOW - timedelta(minutes=5),
    )
    found = status_of(url, tmp_path, prometheus=dead_url())
    [site] = found.sites
    assert (site.state, site.ratio_24h, site.ratio_7d, site.veto_margin_7d) == ("unknown", None, None, None)
    assert found.prometheus_error
    assert [i.incident for i in found.incidents] == [incident]
    assert verdict(found) == ("unknown", ExitCode.UNKNOWN)
    table = format_table(found)
    assert "UNREACHABLE" in table and incident in table and " up " not in table
    assert "unknown" in table.split("\n")[5]  # the site's row


def test_prometheus_dead_through_the_command_exits_75_cannot_tell(
    world: tuple[Monitoring, str], tmp_path: Path
) -> None:
    state, url = world
    all_well(state, datetime.now(UTC))
    out, err = io.StringIO(), io.StringIO()
    argv = ["status", "--json", "--prometheus", dead_url(), "--alertmanager", url, "--incidents", str(tmp_path)]
    assert main(argv, out, err) == 75
    body = json.loads(out.getvalue())
    assert body["verdict"] == "unknown" and body["prometheus"]["error"]


def test_the_command_all_well_exits_0(world: tuple[Monitoring, str], tmp_path: Path) -> None:
    state, url = world
    all_well(state, datetime.now(UTC))
    out, err = io.StringIO(), io.StringIO()
    argv = ["status", "--prometheus", url, "--alertmanager", url, "--incidents", str(tmp_path)]
    assert main(argv, out, err) == 0, out.getvalue()
    assert "portal" in out.getvalue() and "verdict: ok" in out.getvalue()


def test_alertmanager_dead_leaves_the_alerts_unknown(world: tuple[Monitoring, str], tmp_path: Path) -> None:
    state, url = world
    all_well(state)
    found = collect(Prometheus(url, 2), Alertmanager(dead_url(), 2), tmp_path, NOW, [SITE])
    assert found.sites[0].state == "up" and found.alertmanager_error
    assert verdict(found)[1] == ExitCode.UNKNOWN
    assert "firing alerts: unknown" in format_table(found)


def test_an_incident_past_its_call_back_deadline_is_overdue(world: tuple[Monitoring, str], tmp_path: Path) -> None:
    state, url = world
    all_well(state)
    late = responder_incident(
        tmp_path,
        webhook_alert("PortalSlow", "l2_slow_response", "L2", NOW - timedelta(minutes=20)),
        NOW - timedelta(minutes=20),
    )
    found = status_of(url, tmp_path)
    [incident] = found.incidents
    callback = next(d for d in incident.deadlines if d.name == "callback")
    assert callback.left_s == -300.0  # 15 min after detection, 20 min ago
    assert incident.overdue == ["回电 call back"]
    assert verdict(found) == ("broken", ExitCode.FAILED)
    table = format_table(found)
    assert "OVERDUE by 5 min" in table and f"incident {late} overdue" in table


def test_an_incident_within_its_deadlines_counts_down_and_is_not_a_failure(
    world: tuple[Monitoring, str], tmp_path: Path
) -> None:
    state, url = world
    all_well(state)
    responder_incident(
        tmp_path,
        webhook_alert("BackupStale", "l3_backup_stale", "L3", NOW - timedelta(minutes=5)),
        NOW - timedelta(minutes=5),
    )
    found = status_of(url, tmp_path)
    [incident] = found.incidents
    assert incident.deadlines[0].left_s == 25 * 60.0
    assert verdict(found) == ("ok", ExitCode.OK)
    assert "25 min left" in format_table(found)


def test_closed_and_recovered_incidents_are_not_open(tmp_path: Path) -> None:
    closed = Journal(tmp_path / "20261203T070000Z-l1_portal_unreachable")
    closed.write("start", runbook="l1_portal_unreachable", level=1, opened_by="responder", deadlines=[])
    closed.write("closed", by="portalops-responder")
    person = Journal(tmp_path / "20261203T071000Z-l2_slow_response")
    person.write("start", runbook="l2_slow_response", level=2, deadlines=[])
    person.write("end", outcome="recovered", exit=0, summary="")
    escalated = Journal(tmp_path / "20261203T072000Z-l2_slow_response")
    escalated.write("start", runbook="l2_slow_response", level=2, deadlines=[])
    escalated.write("end", outcome="not_recovered", exit=1, summary="")
    found = collect(Prometheus(dead_url(), 1), Alertmanager(dead_url(), 1), tmp_path, NOW)
    assert [i.incident for i in found.incidents] == ["20261203T072000Z-l2_slow_response"]


INVENTORY = {
    "_meta": {
        "hostvars": {
            "mon1": {
                "ansible_host": "10.89.60.16",
                "lab_publish": ["127.0.0.1:9090:9090", "127.0.0.1:9093:9093"],
                "portal_sites": [{"name": "portal", "domains": list(DOMAINS)}, {"name": "news", "domains": []}],
            },
            "web1": {"ansible_host": "10.89.60.11"},
        }
    },
    "all": {"children": ["web", "monitoring"]},
    "web": {"hosts": ["web1"]},
    "monitoring": {"hosts": ["mon1"]},
}
DEFAULTS = {
    "monitoring_prometheus_listen_address": "0.0.0.0:9090",
    "monitoring_alertmanager_listen_address": "0.0.0.0:9093",
}


def test_where_they_answer_the_lab_publishes_on_loopback() -> None:
    where = from_inventory(parse_inventory(INVENTORY, "inventory/lab"), defaults=DEFAULTS)
    assert (where.prometheus, where.alertmanager) == ("http://127.0.0.1:9090", "http://127.0.0.1:9093")
    assert inventory_sites(parse_inventory(INVENTORY, "inventory/lab")) == ["portal", "news"]


def test_where_they_answer_elsewhere_the_monitoring_host_and_its_ports_and_flags_first() -> None:
    data = json.loads(json.dumps(INVENTORY))
    del data["_meta"]["hostvars"]["mon1"]["lab_publish"]
    data["_meta"]["hostvars"]["mon1"]["monitoring_alertmanager_listen_address"] = "0.0.0.0:19093"
    inventory = parse_inventory(data, "inventory/prod")
    where = from_inventory(inventory, defaults=DEFAULTS)
    assert (where.prometheus, where.alertmanager) == ("http://10.89.60.16:9090", "http://10.89.60.16:19093")
    where = from_inventory(inventory, prometheus="http://prom.example:9090", defaults=DEFAULTS)
    assert where.prometheus == "http://prom.example:9090" and where.alertmanager == "http://10.89.60.16:19093"


def test_the_role_defaults_name_the_ports() -> None:
    where = from_inventory(parse_inventory(INVENTORY, "inventory/lab"))
    assert where.prometheus.endswith(":9090") and where.alertmanager.endswith(":9093")


def test_deadlines_are_the_lifecycles_flags_the_responders_ack_meets_respond(
    world: tuple[Monitoring, str], tmp_path: Path
) -> None:
    state, url = world
    all_well(state)
    incident = responder_incident(
        tmp_path,
        webhook_alert("PortalSiteDown", "l1_portal_unreachable", "L1", NOW - timedelta(minutes=7)),
        NOW - timedelta(minutes=7),
    )
    found = status_of(url, tmp_path)
    [shown] = found.incidents
    assert shown.incident == incident and shown.state == "acknowledged"
    respond, onsite = shown.deadlines
    assert (respond.status, respond.at, respond.evidence) == (
        "met",
        "2026-12-03T07:23:00.000Z",
        "acknowledged by portalops-responder",
    )
    assert onsite.status == "breached" and onsite.owed  # at once in working hours, and nobody went
    assert shown.overdue == ["到场 on site"]
    # the same flags `portalops incident list` shows: one rule, in portalops.runbook.lifecycle
    [row], _ = desk_summaries(tmp_path, NOW)
    assert [(d.name, d.status) for d in shown.deadlines] == [(f.name, f.status) for f in row.flags]
    assert "met 2026-12-03 15:23" in format_table(found)


def test_a_delivered_notice_alone_is_no_response(world: tuple[Monitoring, str], tmp_path: Path) -> None:
    state, url = world
    all_well(state)
    opened = NOW - timedelta(minutes=7)
    incident = "20261203T072300Z-phone"
    journal = Journal(tmp_path / incident, lambda: opened)
    journal.write(
        "start",
        incident=incident,
        runbook="",
        level=1,
        title_zh="首页打不开",
        title_en="首页打不开",
        opened_by="person",
        detected=stamp(opened),
        deadlines=[d.as_dict() for d in deadlines(Level.L1, opened, WorkCalendar())],
    )
    Journal(tmp_path / incident, lambda: opened + timedelta(seconds=2)).write(
        "notify", notice="start", channel="duty", type="webhook", ok=True, error="", duration_s=0.1
    )
    [shown] = status_of(url, tmp_path).incidents
    assert (shown.state, shown.overdue) == ("new", ["响应 respond", "到场 on site"])
    assert verdict(status_of(url, tmp_path)) == ("broken", ExitCode.FAILED)
    Journal(tmp_path / incident, lambda: NOW).write("acknowledged", by="值班员")
    [acked] = status_of(url, tmp_path).incidents
    assert [(d.name, d.status, d.owed) for d in acked.deadlines] == [
        ("respond", "breached", False),  # acknowledged, but 2 min after "at once"
        ("onsite", "breached", True),
    ]
    assert "BREACHED, late" in format_table(status_of(url, tmp_path))


def test_no_7_day_figure_yet_is_cannot_tell(world: tuple[Monitoring, str], tmp_path: Path) -> None:
    state, url = world
    all_well(state)
    state.queries = {k: v for k, v in state.queries.items() if "veto_margin" not in k}
    found = status_of(url, tmp_path)
    assert found.sites[0].state == "up" and found.sites[0].veto_margin_7d is None
    assert verdict(found) == ("unknown", ExitCode.UNKNOWN)
