"""The controller's view of the live monitoring on mon1 (`portalops status`, `portalops deadman`), and a
person-opened L2 incident walked through its lifecycle with `portalops status` reading its deadlines.

Everything runs the real `portalops` command as a person or the dead-man timer would, against mon1's
Prometheus and Alertmanager on the loopback ports the lab publishes (127.0.0.1:9090 / :9093). The
incidents live in a directory of the test's, so earlier drills' incidents do not count here.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from portalops.inventory import REPO_ROOT
from portalops.lab.config import LabConfig
from portalops.monitoring.api import Prometheus
from portalops.monitoring.status import QUERIES
from tests.integration.helpers import on, portalops
from tests.integration.test_site_monitoring import PROMETHEUS, wait_until

# Mostly waiting (scrapes, alert rules' `for`, Prometheus' API polls), its CPUs idle: it runs right after the
# converge (conftest.lab_order).
pytestmark = pytest.mark.waits

PORTAL = yaml.safe_load((REPO_ROOT / "inventory/lab/group_vars/all/portal.yml").read_text())
SITES = {site["name"]: set(site["domains"]) for site in PORTAL["portal_sites"]}
ALERTMANAGER = "http://127.0.0.1:9093"  # lab_publish of mon1
ALERTMANAGER_UNIT = "prometheus-alertmanager"  # Debian's package and unit (roles/monitoring/tasks/service.yml)


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as answer:  # noqa: S310 - a fixed http:// URL
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def status(incidents: Path) -> tuple[int, dict[str, Any]]:
    result = portalops("status", "--json", "--incidents", str(incidents), timeout=60)
    assert result.stdout.startswith("{"), result.stdout + result.stderr
    return result.returncode, json.loads(result.stdout)


def wait_for_probes_after(moment: float) -> None:
    """Until Prometheus holds a probe of every site's domain scraped after ``moment`` (UNIX time). Up to a probe
    interval after an earlier module repaired its fault, the last probe still says what the fault did (this module
    runs seconds after test_site_probe_real, which stops php-fpm and MariaDB behind a warm cache)."""
    prometheus = Prometheus(PROMETHEUS)
    wait_until(
        f"a probe of every domain scraped after {moment}",
        lambda: [sample.value for sample in prometheus.query(f"timestamp({QUERIES['probes']})")],
        lambda taken: bool(taken) and min(taken) > moment,
    )


def test_status_reads_the_live_monitoring_and_reports_every_site(converged: LabConfig, tmp_path: Path) -> None:
    wait_for_probes_after(time.time())
    code, found = status(tmp_path / "incidents")
    assert found["prometheus"] == {"url": "http://127.0.0.1:9090", "error": None}
    assert found["alertmanager"] == {"url": "http://127.0.0.1:9093", "error": None}
    assert found["watchdog_updated"], "Alertmanager has the Watchdog: the alerting pipeline is alive"
    sites = {site["name"]: site for site in found["sites"]}
    assert set(sites) == set(SITES)
    for name, domains in SITES.items():
        site = sites[name]
        assert (site["state"], site["domains"]) == ("up", dict.fromkeys(domains, "up")), site
        assert 0 < site["ratio_24h"] <= 1 and 0 < site["ratio_7d"] <= 1 and site["veto_margin_7d"] is not None
    # Alerts may fire on a lab, and earlier drills may have pushed a young lab's 7-day figure under the
    # veto line: nothing is unknown, every site is up now, and the exit code is the verdict's.
    assert found["unknown"] == [], found
    assert found["incidents"] == []
    assert (code, found["verdict"]) in ((0, "ok"), (1, "broken")) and code == found["exit"]


def test_deadman_alive_then_dead_with_alertmanager_stopped(converged: LabConfig, tmp_path: Path) -> None:
    alive = portalops("deadman", "--timeout", "3", timeout=60)
    assert (alive.returncode, alive.stdout.strip()) == (0, "alive: Prometheus ready, Watchdog fresh"), alive.stderr
    on("mon1", f"systemctl stop {ALERTMANAGER_UNIT}")
    try:
        dead = portalops("deadman", "--timeout", "3", timeout=60)
        assert dead.returncode == 1, dead.stdout + dead.stderr  # 1 = dead, as `portalops deadman --help` says
        assert dead.stdout.startswith(f"DEAD: Alertmanager not answering: {ALERTMANAGER}"), dead.stdout
        # status cannot tell what fires now: never "all well" (75), or broken for something else it sees
        code, found = status(tmp_path / "incidents")
        assert found["alertmanager"]["error"] and found["alerts"] == [], found
        assert (
            code in (1, 75) and code == found["exit"] and any(u.startswith("Alertmanager:") for u in found["unknown"])
        )
    finally:
        on("mon1", f"systemctl start {ALERTMANAGER_UNIT}")
        deadline = time.monotonic() + 60
        while not ready(f"{ALERTMANAGER}/-/ready"):
            assert time.monotonic() < deadline, f"{ALERTMANAGER_UNIT} did not come back on mon1"
            time.sleep(1)


def run(incidents: Path, *argv: str) -> tuple[int, str]:
    result = portalops("incident", *argv, "--incidents", str(incidents), timeout=60)
    return result.returncode, result.stdout + result.stderr


def test_a_person_opened_l2_walks_through_every_transition(converged: LabConfig, tmp_path: Path) -> None:
    incidents = tmp_path / "incidents"
    code, out = run(incidents, "open", "--level", "L2", "--title", "首页打不开", "--reported-by", "信息中心 王五")
    assert code == 0, out
    incident = out.split()[1].rstrip(":")
    _, found = status(incidents)
    [shown] = found["incidents"]
    assert (shown["incident"], shown["level"], shown["state"]) == (incident, 2, "new")
    assert [(d["name"], d["status"]) for d in shown["deadlines"]] == [("callback", "pending"), ("onsite", "pending")]

    refused = run(incidents, "close", incident, "--by", "张三")  # an unresolved incident
    assert refused[0] == 2 and "nothing written" in refused[1], refused
    steps = [
        (("ack", incident), "acknowledged"),
        (("callback", incident), "acknowledged"),
        (("onsite", incident, "--remote"), "acknowledged"),
        (("workaround", incident, "--note", "切到备用服务器"), "acknowledged"),
        (("resolve", incident, "--note", "重启 php-fpm"), "resolved"),
        (("close", incident), "closed"),
        (("reopen", incident, "--reason", "又打不开了"), "acknowledged"),
        (("resolve", incident, "--note", "换了硬盘"), "resolved"),
        (("close", incident), "closed"),
    ]
    for argv, state in steps:
        code, out = run(incidents, *argv, "--by", "张三")
        assert code == 0 and f"now {state}" in out.splitlines()[0], (argv, out)
        if argv[0] == "callback":
            _, found = status(incidents)  # status shows the lifecycle's flag: met by the person's call-back
            assert found["incidents"][0]["deadlines"][0]["status"] == "met"
    refused = run(incidents, "callback", incident, "--by", "张三")  # on a closed incident
    assert refused[0] == 2 and "reopen it first" in refused[1], refused
    _, found = status(incidents)
    assert found["incidents"] == []  # closed: not open any more
    events = [json.loads(line) for line in (incidents / incident / "journal.jsonl").read_text().splitlines()]
    kinds = [e["event"] for e in events]
    first = ["start", "acknowledged", "called_back", "on_site", "workaround", "resolved", "closed"]
    assert kinds == [*first, "reopened", "resolved", "closed"]
    assert {e.get("by") for e in events[1:]} == {"张三"}
