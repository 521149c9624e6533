"""The monitoring host on the lab: every exporter scraped, every domain probed through the edge, the
exporters closed to everyone but mon1, a dead edge seen by the probes, a bad rule file refused.

Prometheus is asked through its HTTP API (JSON), published on the controller's 127.0.0.1:9090
(`lab_publish` of mon1), as `portalops status` and a person would ask it.
"""

from __future__ import annotations

import html
import json
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from portalops.inventory import REPO_ROOT
from portalops.lab.config import LabConfig
from tests.integration.helpers import failed_tasks, on, playbook
from tests.integration.test_site import get

# Mostly waiting (scrapes, alert rules' `for`, Prometheus' API polls), its CPUs idle: it runs right after the
# converge (conftest.lab_order).
pytestmark = pytest.mark.waits

PROMETHEUS = "http://127.0.0.1:9090"  # lab_publish of mon1
PORTAL = yaml.safe_load((REPO_ROOT / "inventory/lab/group_vars/all/portal.yml").read_text())
DOMAINS = {domain: site["name"] for site in PORTAL["portal_sites"] for domain in site["domains"]}
INVENTORY = yaml.safe_load((REPO_ROOT / "inventory/lab/hosts.yml").read_text())["all"]["children"]
ADDRESSES = {
    host: spec["ansible_host"] for group in INVENTORY.values() for host, spec in (group.get("hosts") or {}).items()
}
# Exporter jobs and the hosts each must have (the exporters role's groups).
EXPECTED_TARGETS = {("node", host) for host in ADDRESSES} | {("mysqld", "db1"), ("nginx", "web1"), ("nginx", "cms1")}
RULES_DIR = "/etc/prometheus/rules"
PROBES = 'probe_success{job="http_portal"}'


def api(path: str, **params: str) -> Any:
    url = f"{PROMETHEUS}{path}?{urllib.parse.urlencode(params)}" if params else f"{PROMETHEUS}{path}"
    with urllib.request.urlopen(url, timeout=20) as response:  # noqa: S310 - a fixed http:// URL
        answer = json.load(response)
    assert answer["status"] == "success", answer
    return answer["data"]


def query(expr: str) -> dict[str, float]:
    """Instant query; each series' value by its `domain`, else `instance` label."""
    return {
        series["metric"].get("domain") or series["metric"].get("instance", ""): float(series["value"][1])
        for series in api("/api/v1/query", query=expr)["result"]
    }


def wait_until(what: str, read: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 120) -> Any:
    """Poll ``read`` every 2 s until ``done`` holds; fail with the last answer after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s; last answer {value}")
        time.sleep(2)


def every_probe_says(value: float, what: str, timeout: float = 120) -> dict[str, float]:
    """Wait until the last probe of every domain (job http_portal) is ``value`` (1 passed, 0 failed)."""
    answer: dict[str, float] = wait_until(
        what, lambda: query(PROBES), lambda v: v == dict.fromkeys(DOMAINS, value), timeout=timeout
    )
    return answer


def scrape_health() -> dict[tuple[str, str], str]:
    return {
        (target["labels"]["job"], target["labels"]["instance"]): target["health"]
        for target in api("/api/v1/targets", state="active")["activeTargets"]
    }


def test_prometheus_scrapes_every_exporter_of_the_inventory(converged: LabConfig) -> None:
    health = wait_until(
        "every exporter up",
        scrape_health,
        lambda h: all(h.get(t) == "up" for t in EXPECTED_TARGETS),
    )
    assert {t: health.get(t) for t in EXPECTED_TARGETS} == dict.fromkeys(EXPECTED_TARGETS, "up")
    # What the exporters say, not only that they answer: the database is up, both nginx serve their
    # status, every site's php-fpm pool answers, and the textfile collector reads its files cleanly.
    assert query("mysql_up") == {"db1": 1.0}
    assert query("nginx_up") == {"web1": 1.0, "cms1": 1.0}
    pools = {s["metric"]["pool"]: float(s["value"][1]) for s in api("/api/v1/query", query="phpfpm_up")["result"]}
    assert pools == {site["name"]: 1.0 for site in PORTAL["portal_sites"]}
    assert set(query("node_textfile_scrape_error == 0")) == set(ADDRESSES)


def test_every_domain_is_probed_through_the_edge_and_loads(converged: LabConfig) -> None:
    loaded = every_probe_says(1.0, "every domain's probe succeeds")
    assert loaded == dict.fromkeys(DOMAINS, 1.0)
    assert query('probe_http_status_code{job="http_portal"}') == dict.fromkeys(DOMAINS, 200.0)
    # The edge's lab CA signs for 825 days (nginx_portal_tls_cert_not_after): the expiry is read from
    # the served chain, and a lab certificate is far from it.
    days = query("portalops:probe_cert_expiry:days")
    assert set(days) == set(DOMAINS) and all(30 < d <= 826 for d in days.values()), days
    sites = {s["metric"]["site"] for s in api("/api/v1/query", query=PROBES)["result"]}
    assert sites == set(DOMAINS.values())


def test_a_healthy_page_past_its_cache_period_is_rendered_fresh_and_no_probe_fails(converged: LabConfig) -> None:
    """A page that expires on a healthy CMS is answered by the CMS (EXPIRED), never STALE: the probe fails on
    STALE, so a STALE answer from a healthy CMS (nginx's background update answers the request that starts it
    so) counted the site down once per page and cache period (CI: news.lab.test down in `portalops status`)."""
    every_probe_says(1.0, "every domain's probe succeeds")
    started = time.monotonic()
    site = PORTAL["portal_sites"][-1]
    domain, path = site["domains"][0], f"/?portalops-expiry={uuid.uuid4().hex}"  # a cache entry of this test's

    def answer() -> tuple[int, str | None, str]:
        status, headers, body = get(converged, domain, path)
        return status, headers.get("x-cache-status"), body

    answers = [answer()]
    # nginx stored the page before this answer returned: its age counts from here. Counted from the request,
    # a MISS rendered slowly under make test's load left the page young enough for a HIT at the third answer.
    stored = time.monotonic()
    answers.append(answer())
    time.sleep(cache_valid_seconds() + 2 - (time.monotonic() - stored))
    answers += [answer(), answer()]
    assert [a[:2] for a in answers] == [(200, "MISS"), (200, "HIT"), (200, "EXPIRED"), (200, "HIT")]
    assert site["title"] in html.unescape(answers[2][2]), "the refreshed page is the site's"
    # Every probe through the edge since the start passed, though every domain's page expired meanwhile
    # (the probes keep it cached; it lives one cache period).
    window = f"{int(time.monotonic() - started)}s"
    probes = f"{PROBES}[{window}]"
    taken = query(f"count_over_time({probes})")
    failed = query(f"count_over_time({probes}) - sum_over_time({probes})")
    assert set(taken) == set(DOMAINS) and min(taken.values()) >= 3, taken
    assert failed == dict.fromkeys(DOMAINS, 0.0), f"probes of a healthy site failed in the last {window}: {failed}"


def cache_valid_seconds() -> int:
    """The lab edge's cache period (nginx_portal_cache_valid, in minutes on the lab), in seconds."""
    spec = yaml.safe_load((REPO_ROOT / "inventory/lab/group_vars/web/nginx_portal.yml").read_text())
    valid = str(spec["nginx_portal_cache_valid"])
    assert valid.endswith("m") and valid[:-1].isdigit(), f"the lab's cache period is {valid}, not whole minutes"
    return int(valid[:-1]) * 60


def connects(source: str, target: str, port: int) -> bool:
    """Whether `source` opens a TCP connection to `target:port` within 3 s (Python on the lab host)."""
    script = (
        "import socket,sys\n"
        "try:\n"
        f"    socket.create_connection(('{ADDRESSES[target]}', {port}), timeout=3).close()\n"
        "except OSError:\n"
        "    sys.exit(1)\n"
    )
    return on(source, f'python3 -c "{script}"', check=False).returncode == 0


def test_the_exporters_answer_the_monitoring_host_only(converged: LabConfig) -> None:
    for target, port in (("db1", 9104), ("db1", 9100), ("web1", 9113), ("cms1", 9100)):
        assert connects("mon1", target, port), f"mon1 cannot reach {target}:{port}"
        assert not connects("drill1", target, port), f"drill1 reaches {target}:{port}"
    # The status server the exporters read stays on loopback.
    assert not connects("mon1", "web1", 8081)


def test_a_dead_edge_fails_every_probe_and_its_return_is_seen(converged: LabConfig) -> None:
    on("web1", "systemctl stop nginx")
    stopped = time.monotonic()
    try:
        every_probe_says(0.0, "every probe fails while the edge is down", timeout=90)
        detected = time.monotonic() - stopped
    finally:
        on("web1", "systemctl start nginx")
    every_probe_says(1.0, "every probe succeeds again", timeout=90)
    # Within one probe interval (20 s) plus a scrape's lag; printed for the record, not a timing gate.
    print(f"edge down seen by every probe after {detected:.0f} s")


def rule_files() -> str:
    return on("mon1", f"cd {RULES_DIR} && sha256sum *.yml").stdout


def test_an_invalid_rule_file_never_replaces_the_working_one(converged: LabConfig, tmp_path: Path) -> None:
    bad = tmp_path / "portalops-broken.yml"
    bad.write_text("groups:\n  - name: broken\n    rules:\n      - alert: Broken\n        expr: up ==\n")
    before = rule_files()
    groups_before = sorted(g["name"] for g in api("/api/v1/rules")["groups"])
    code, _, output = playbook(
        "playbooks/monitoring.yml",
        "--limit",
        "mon1",
        "--tags",
        "monitoring",
        "-e",
        json.dumps({"monitoring_extra_rule_files": [str(bad)]}),
        log_name="monitoring-bad-rule",
    )
    assert code != 0
    failures = "\n".join(failed_tasks(output))
    assert "Install the extra rule files" in failures and "parse error" in failures, failures
    assert rule_files() == before
    assert "portalops-broken.yml" not in on("mon1", f"ls {RULES_DIR}").stdout
    # Prometheus kept running on the working rules.
    assert sorted(g["name"] for g in api("/api/v1/rules")["groups"]) == groups_before
    assert urllib.request.urlopen(f"{PROMETHEUS}/-/ready", timeout=10).status == 200  # noqa: S310
