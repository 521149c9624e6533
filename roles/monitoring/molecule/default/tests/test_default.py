"""What monitoring leaves on a host, observed from inside it."""

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from testinfra.host import Host

# Talk to the container directly: one podman exec per check, not one Ansible run.
testinfra_hosts = ["podman://monitoring"]

SERVICES = ["prometheus", "prometheus-alertmanager", "prometheus-blackbox-exporter"]
# The alert rules generated from the runbooks (python -m portalops.runbook.alerts), as the role installs them.
ALERT_RULES = yaml.safe_load((Path(__file__).resolve().parents[3] / "files" / "portalops-alerts.yml").read_text())
ALERT_TESTS = Path(__file__).resolve().parents[1] / "rules" / "alert-tests.yml"


def put(host: Host, path: str, text: str) -> None:
    """Write a file on the host (one command, no shell quoting of its text)."""
    encoded = base64.b64encode(text.encode()).decode()
    host.check_output(f"echo {encoded} | base64 -d > {path}")


def get_json(host: Host, url: str) -> Any:
    return json.loads(host.check_output(f"curl -fsS '{url}'"))


def query(host: Host, promql: str) -> list[dict[str, Any]]:
    out = host.check_output(f"curl -fsS --get --data-urlencode 'query={promql}' http://127.0.0.1:9090/api/v1/query")
    result: list[dict[str, Any]] = json.loads(out)["data"]["result"]
    return result


def probe(host: Host, domain: str) -> str:
    """blackbox's verdict on one domain, asked directly (module and target as Prometheus sends them)."""
    url = f"http://127.0.0.1:9115/probe?module=http_portal_{domain}&target=https://127.0.0.1/&debug=true"
    verdict: str = host.check_output(f"curl -fsS '{url}'")
    return verdict


@pytest.mark.parametrize("service", SERVICES)
def test_services_run_and_are_enabled(host: Host, service: str) -> None:
    assert host.service(service).is_running
    assert host.service(service).is_enabled


def test_prometheus_and_alertmanager_are_ready(host: Host) -> None:
    assert host.run("curl -fsS http://127.0.0.1:9090/-/ready").rc == 0
    assert host.run("curl -fsS http://127.0.0.1:9093/-/ready").rc == 0


def test_blackbox_listens_on_loopback_only(host: Host) -> None:
    assert host.socket("tcp://127.0.0.1:9115").is_listening
    assert not host.socket("tcp://0.0.0.0:9115").is_listening


def test_retention_is_thirteen_months_or_more(host: Host) -> None:
    flags = get_json(host, "http://127.0.0.1:9090/api/v1/status/flags")["data"]
    assert flags["storage.tsdb.retention.time"] == "400d"


def test_prometheus_lists_the_configured_targets(host: Host) -> None:
    active = get_json(host, "http://127.0.0.1:9090/api/v1/targets")["data"]["activeTargets"]
    by_job: dict[str, set[str]] = {}
    for target in active:
        by_job.setdefault(target["labels"]["job"], set()).add(target["labels"]["instance"])
    assert by_job["mysqld"] == {"db-standin"}
    assert by_job["node"] == {"db-standin", "monitoring"}
    assert by_job["http_portal"] == {"portal.test", "news.test", "stale.test"}
    # portal_probe_forbidden is set: each domain has its defacement probe too.
    assert by_job["http_portal_defacement"] == {"portal.test", "news.test", "stale.test"}
    assert {"prometheus", "alertmanager", "blackbox"} <= set(by_job)
    portal = next(t for t in active if t["labels"]["instance"] == "portal.test")
    assert portal["scrapeUrl"].startswith("http://127.0.0.1:9115/probe?")
    assert "module=http_portal_portal.test" in portal["scrapeUrl"]
    assert portal["labels"]["site"] == "portal"
    # The scrape timeout leaves blackbox the whole 15 s.
    assert portal["scrapeTimeout"] == "16s"
    mysqld = next(t for t in active if t["labels"]["job"] == "mysqld")
    assert mysqld["scrapeUrl"] == "http://127.0.0.2:9104/metrics"


def test_blackbox_passes_a_page_with_the_title_through_the_edge(host: Host) -> None:
    out = probe(host, "portal.test")
    assert "probe_success 1" in out, out
    # SNI: the certificate was verified against the edge's CA for the domain's name.
    assert "probe_ssl_earliest_cert_expiry" in out


def test_blackbox_fails_a_defaced_page(host: Host) -> None:
    out = probe(host, "news.test")
    assert "probe_success 0" in out
    assert "Body matched regular expression" in out, out


def test_blackbox_fails_a_stale_page(host: Host) -> None:
    out = probe(host, "stale.test")
    assert "probe_success 0" in out
    assert "X-Cache-Status" in out, out


def test_the_defacement_probe_fails_only_a_defaced_page(host: Host) -> None:
    verdicts = {}
    for domain in ("portal.test", "news.test", "stale.test"):
        url = f"http://127.0.0.1:9115/probe?module=http_portal_defacement_{domain}&target=https://127.0.0.1/"
        out = host.check_output(f"curl -fsS '{url}'")
        verdicts[domain] = ("probe_success 1" in out, "probe_failed_due_to_regex 1" in out)
    # A stale page or a page without its title is not defaced; the defaced one fails on the regexp.
    assert verdicts == {"portal.test": (True, False), "news.test": (False, True), "stale.test": (True, False)}


def test_prometheus_records_the_probes_and_the_availability(host: Host) -> None:
    # Each site's series appears at the first once-a-minute evaluation after its first probe, and
    # the probes are spread over the interval: wait for every series the test reads.
    deadline = time.monotonic() + 150
    while True:
        loaded = {r["metric"]["domain"]: r["value"][1] for r in query(host, "portalops:probe_loaded:15s")}
        ratio = query(host, 'portalops:site_availability:ratio_7d{site="portal"}')
        margin = query(host, 'portalops:site_availability:veto_margin_7d{site="news"}')
        if (len(loaded) == 3 and ratio and margin) or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert loaded == {"portal.test": "1", "news.test": "0", "stale.test": "0"}
    assert ratio and float(ratio[0]["value"][1]) == 1.0
    assert margin and float(margin[0]["value"][1]) == pytest.approx(-0.95)


def test_recording_and_extra_rules_are_loaded(host: Host) -> None:
    groups = get_json(host, "http://127.0.0.1:9090/api/v1/rules")["data"]["groups"]
    names = {rule["name"] for group in groups for rule in group["rules"]}
    assert "portalops:site_availability:veto_margin_7d" in names
    assert "portalops:probe_duration_seconds:p95_24h" in names
    assert "MoleculeGoodRule" in names


def test_a_broken_rule_file_did_not_replace_the_working_one(host: Host) -> None:
    # side_effect.yml offered a broken version; promtool refused it and the good one stayed.
    installed = host.file("/etc/prometheus/rules/portalops-extra.yml")
    assert installed.contains("MoleculeGoodRule")
    assert not installed.contains("MoleculeBrokenRule")
    assert host.run("curl -fsS http://127.0.0.1:9090/-/ready").rc == 0
    assert host.run("promtool check rules /etc/prometheus/rules/portalops-extra.yml").rc == 0


def test_alertmanager_sends_to_the_webhook_with_the_token_kept_apart(host: Host) -> None:
    status = get_json(host, "http://127.0.0.1:9093/api/v2/status")
    config = status["config"]["original"]
    assert "http://127.0.0.1:9099/alerts" in config
    assert "molecule-webhook-token" not in config
    assert "credentials_file: /etc/prometheus/alertmanager-webhook.token" in config
    token = host.file("/etc/prometheus/alertmanager-webhook.token")
    assert token.mode == 0o640
    assert token.user == "root"
    assert token.group == "prometheus"
    assert token.content_string == "molecule-webhook-token"
    assert "group_wait: 5s" in config


def test_the_alert_rules_from_the_runbooks_are_loaded(host: Host) -> None:
    assert host.run("promtool check rules /etc/prometheus/rules/portalops-alerts.yml").rc == 0
    groups = get_json(host, "http://127.0.0.1:9090/api/v1/rules?type=alert")["data"]["groups"]
    loaded = {group["name"]: [rule["name"] for rule in group["rules"]] for group in groups}
    wanted = {group["name"]: [rule["alert"] for rule in group["rules"]] for group in ALERT_RULES["groups"]}
    assert {name: loaded.get(name) for name in wanted} == wanted
    for group in groups:
        for rule in group["rules"]:
            assert rule["health"] == "ok", rule


def test_the_probe_alerts_fire_for_the_broken_pages_and_reach_alertmanager(host: Host) -> None:
    """news.test is defaced (PortalDefaced, not also PortalWrongContent), stale.test is stale
    (PortalWrongContent), portal.test is sound (no alert); the Watchdog reaches Alertmanager."""
    probe_alerts = {"PortalSiteDown", "PortalWrongContent", "PortalDefaced"}
    wanted = {("PortalDefaced", "news.test"), ("PortalWrongContent", "stale.test")}
    deadline = time.monotonic() + 120
    while True:
        alerts = get_json(host, "http://127.0.0.1:9090/api/v1/alerts")["data"]["alerts"]
        # Pending too: a defaced page must never start PortalWrongContent's clock long enough to fire.
        active = {(a["labels"]["alertname"], a["labels"].get("instance", "")) for a in alerts}
        firing = {(a["labels"]["alertname"], a["labels"].get("instance", "")) for a in alerts if a["state"] == "firing"}
        if ({(n, i) for n, i in firing if n in probe_alerts} == wanted and ("Watchdog", "") in firing) or (
            time.monotonic() > deadline
        ):
            break
        time.sleep(5)
    assert {(n, i) for n, i in firing if n in probe_alerts} == wanted, active
    assert ("Watchdog", "") in firing
    defaced = next(a for a in alerts if a["labels"]["alertname"] == "PortalDefaced")
    assert defaced["labels"]["runbook"] == "l1_defacement"
    assert defaced["labels"]["level"] == "L1"
    assert defaced["labels"]["site"] == "news"
    assert defaced["annotations"]["runbook_command"] == "portalops runbook run l1_defacement"
    deadline = time.monotonic() + 60
    while True:
        received = {a["labels"]["alertname"] for a in get_json(host, "http://127.0.0.1:9093/api/v2/alerts")}
        if {"Watchdog", "PortalDefaced"} <= received or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert {"Watchdog", "PortalDefaced"} <= received


def test_the_alert_rules_fire_as_promtool_tests_say(host: Host) -> None:
    """The rules' semantics, with the host's promtool: which alert fires, when, with which labels
    (alert-tests.yml). The annotations are left out of the copy under test (they hold templates)."""
    stripped = {
        "groups": [
            {"name": g["name"], "rules": [{k: v for k, v in r.items() if k != "annotations"} for r in g["rules"]]}
            for g in ALERT_RULES["groups"]
        ]
    }
    host.check_output("mkdir -p /root/alert-tests")
    put(host, "/root/alert-tests/portalops-alerts-labels.yml", yaml.safe_dump(stripped, sort_keys=False))
    put(host, "/root/alert-tests/alert-tests.yml", ALERT_TESTS.read_text())
    result = host.run("promtool test rules /root/alert-tests/alert-tests.yml")
    assert result.rc == 0, result.stdout + result.stderr
