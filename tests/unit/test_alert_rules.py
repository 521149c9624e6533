"""The alert rules are the runbooks' triggers: generated from the runbooks, current, and over real metrics.

Issue 14: every runbook has an alert and every alert names a runbook and its level; the rule file the
monitoring role installs is the generated one; every expression reads only what our exporters, the
backup wrapper and the monitoring role's recording rules produce.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from portalops.inspect import metrics as inspect_metrics_module
from portalops.inventory import REPO_ROOT
from portalops.runbook import Alert, Level, Runbook, alerts, diagnose, escalate, plans, verify
from portalops.runbook.registry import discover
from portalops_host.health import CORE_TABLES
from portalops_host.status import metrics
from tests.unit.hostscripts import load

RUNBOOKS = discover()
RULES: dict[str, Any] = yaml.safe_load(alerts.RULE_FILE.read_text())
ALL_RULES = [rule for group in RULES["groups"] for rule in group["rules"]]
MONITORING = REPO_ROOT / "roles" / "monitoring"
EXPORTERS = REPO_ROOT / "roles" / "exporters"

# Metrics the third-party exporters produce (Debian 12 packages; the monitoring role's molecule scenario
# sees the blackbox ones): name -> the scrape job it comes from. Our own metrics are read from their sources
# below, not listed here.
THIRD_PARTY = {
    "probe_success": "blackbox",
    "probe_failed_due_to_regex": "blackbox",
    "probe_duration_seconds": "blackbox",
    "mysql_up": "mysqld",
    "mysql_info_schema_table_rows": "mysqld",
    "nginx_up": "nginx",
    "node_filesystem_avail_bytes": "node",
    "node_filesystem_size_bytes": "node",
    "node_systemd_unit_state": "node",
}
# Labels the expressions may match or group on: Prometheus's (job, instance), the probe jobs' (site,
# domain), node_exporter's (fstype, state), the textfile metrics' (command, pool, the inspection's item and
# a section's class), mysqld_exporter's tables collector (schema, table) and what label_replace makes of
# them (prefix).
LABELS = {
    "job",
    "instance",
    "site",
    "domain",
    "fstype",
    "state",
    "command",
    "pool",
    "item",
    "class",
    "schema",
    "table",
    "prefix",
}
KEYWORDS = {"and", "or", "unless", "on", "ignoring", "by", "without", "bool", "group_left", "group_right", "offset"}


def recorded() -> set[str]:
    template = (MONITORING / "templates/etc/prometheus/rules/portalops-recording.yml.j2").read_text()
    return set(re.findall(r"record:\s*(\S+)", template))


def phpfpm_metrics() -> set[str]:
    module = load("portalops_phpfpm_metrics", "roles/exporters/files/portalops_phpfpm_metrics.py")
    return {"phpfpm_up", *(field[0] for field in module.FIELDS)}


def backup_metrics() -> set[str]:
    job = {"name": "etc", "ok": True, "last_success_ts": 1.0, "duration_s": 1.0, "snapshot_id": "abc"}
    status = {"host": "h", "command": "run", "finished_ts": 1.0, "ok": True, "exit_code": 0, "jobs": [job]}
    return set(re.findall(r"^(portalops_backup_\w+)\{", metrics(status), re.M))


def inspect_metrics() -> set[str]:
    """What portalops inspect --metrics writes to the monitoring host's textfile collector."""
    return set(inspect_metrics_module.HELP)


def scrape_jobs() -> set[str]:
    """The jobs the monitoring role configures: its exporters (defaults) and the probe jobs (filter plugin)."""
    defaults = yaml.safe_load((MONITORING / "defaults/main.yml").read_text())
    plugin = (MONITORING / "filter_plugins/monitoring_targets.py").read_text()
    probes = re.findall(r'^(?:PROBE_JOB|DEFACEMENT_JOB) = "(\w+)"', plugin, re.M)
    return {e["name"] for e in defaults["monitoring_exporters"]} | set(probes)


def parse(expr: str) -> tuple[set[str], set[str], set[str]]:
    """(metric names, label names, job values) of a PromQL expression: enough PromQL for our rules."""
    labels: set[str] = set()
    jobs: set[str] = set()
    for matchers in re.findall(r"\{([^}]*)\}", expr):
        for name, value in re.findall(r'(\w+)\s*(?:=~|!~|!=|=)\s*"([^"]*)"', matchers):
            labels.add(name)
            if name == "job":
                jobs.add(value)
    rest = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\boffset\s+\w+", " ", expr)  # no durations: `offset 1h`
    # label_replace's arguments: the label it writes is one an expression may use, its regex names nothing
    for name in re.findall(r'\blabel_replace\s*\(.*?,\s*"(\w+)"', rest, re.S):
        labels.add(name)
    rest = re.sub(r'"[^"]*"', " ", rest)
    for names in re.findall(r"\b(?:by|on|without|ignoring)\s*\(([^)]*)\)", rest):
        labels |= {n.strip() for n in names.split(",") if n.strip()}
    rest = re.sub(r"\b(?:by|on|without|ignoring)\s*\([^)]*\)", " ", rest)
    metrics = set()
    for token in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", rest):
        followed = rest[token.end() :].lstrip()[:1]
        if token.group() not in KEYWORDS and followed != "(":  # a name before "(" is a function
            metrics.add(token.group())
    return metrics, labels, jobs


def test_every_runbook_has_an_alert_and_every_alert_names_its_runbook_and_level() -> None:
    assert all(rb.alerts for rb in RUNBOOKS.values()), [rb.id for rb in RUNBOOKS.values() if not rb.alerts]
    named = {rule["labels"].get("runbook") for rule in ALL_RULES}
    assert named == set(RUNBOOKS) | {None}, "every runbook is some alert's, and none names an unknown runbook"
    for rule in ALL_RULES:
        if rule["alert"] == alerts.WATCHDOG.name:
            assert "runbook" not in rule["labels"] and rule["labels"]["severity"] == "none"
            continue
        runbook = RUNBOOKS[rule["labels"]["runbook"]]
        level = Level[rule["labels"]["level"]]
        assert level >= runbook.level, f"{rule['alert']}: the runbook's level or a lower one (early warning)"
        assert rule["labels"]["severity"] == alerts.SEVERITY[level]
        assert rule["annotations"]["runbook_command"] == f"portalops runbook run {runbook.id}"
        assert rule["annotations"]["summary"] and rule["annotations"]["summary_zh"]
    assert [r["alert"] for r in ALL_RULES if "runbook" not in r["labels"]] == ["Watchdog"], "only the watchdog"


def test_the_committed_rule_file_is_the_generated_one() -> None:
    assert not alerts.stale(), (
        f"{alerts.RULE_FILE.relative_to(REPO_ROOT)} is stale: run `python -m portalops.runbook.alerts` "
        "(or `python -m portalops.runbook.plans`) and commit it"
    )
    assert alerts.main(["--check"]) == 0


def test_check_reports_a_changed_runbook(tmp_path: Path) -> None:
    out = tmp_path / "alerts.yml"
    assert alerts.main(["--out", str(out)]) == 0
    assert alerts.main(["--check", "--out", str(out)]) == 0
    out.write_text(out.read_text().replace("for: 15s", "for: 5m"))
    assert alerts.main(["--check", "--out", str(out)]) == 1


def test_the_rule_file_has_prometheus_rule_schema() -> None:
    assert set(RULES) == {"groups"}
    names = [group["name"] for group in RULES["groups"]]
    assert len(set(names)) == len(names)
    for group in RULES["groups"]:
        assert set(group) == {"name", "rules"} and group["rules"]
        for rule in group["rules"]:
            assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule
            assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", rule["alert"])
            assert re.fullmatch(r"\d+[smhdwy]", rule["for"]), rule["for"]
            assert all(isinstance(v, str) for v in (*rule["labels"].values(), *rule["annotations"].values()))
    alert_names = [rule["alert"] for rule in ALL_RULES]
    assert len(set(alert_names)) == len(alert_names), "alert names are unique"


def test_the_issue_s_alerts_are_there() -> None:
    by_name = {rule["alert"]: rule for rule in ALL_RULES}
    wanted = {
        "PortalSiteDown": ("l1_portal_unreachable", "L1"),
        "PortalWrongContent": ("l1_portal_unreachable", "L1"),
        "PortalBackendDown": ("l1_portal_unreachable", "L1"),
        "PortalDefaced": ("l1_defacement", "L1"),
        "DatabaseDown": ("l1_portal_unreachable", "L1"),
        "DatabaseTableLost": ("l1_database_lost", "L1"),
        "PortalSlowResponse": ("l2_slow_response", "L2"),
        "PhpFpmSaturated": ("l2_slow_response", "L2"),
        "PortalAvailabilityBurn": ("l2_slow_response", "L2"),
        "DiskPressure": ("l2_disk_pressure", "L2"),
        "BackupFailed": ("l3_backup_stale", "L3"),
        "BackupStale": ("l3_backup_stale", "L3"),
        "BackupSecondCopyStale": ("l3_backup_stale", "L3"),
        "CertificateExpiring": ("l3_certificate_expiry", "L3"),
        "SystemdUnitFailed": ("l3_degraded_services", "L3"),
    }
    for name, (runbook, level) in wanted.items():
        assert (by_name[name]["labels"]["runbook"], by_name[name]["labels"]["level"]) == (runbook, level), name
    # L1 alerts fire on the failed probe or scrape: any for: costs a probe interval (MTTD <= 30 s); only
    # PortalWrongContent waits one, for the defacement probe to speak first.
    assert {by_name[n]["for"] for n in ("PortalSiteDown", "PortalDefaced", "PortalBackendDown")} == {"0s"}
    assert by_name["PortalWrongContent"]["for"] == "20s"


def test_expressions_read_only_metrics_and_labels_we_produce() -> None:
    produced = set(THIRD_PARTY) | recorded() | phpfpm_metrics() | backup_metrics() | inspect_metrics()
    jobs = scrape_jobs()
    assert {"http_portal", "http_portal_defacement", "node", "mysqld"} <= jobs
    for rule in ALL_RULES:
        metrics, labels, job_values = parse(rule["expr"])
        assert metrics <= produced, f"{rule['alert']}: no exporter or recording rule produces {metrics - produced}"
        assert labels <= LABELS, f"{rule['alert']}: unknown labels {labels - LABELS}"
        assert job_values <= jobs, f"{rule['alert']}: no scrape job {job_values - jobs}"
        for metric in metrics & set(THIRD_PARTY):
            source = THIRD_PARTY[metric]
            assert source == "blackbox" or source in job_values, f"{rule['alert']}: {metric} is job {source}'s"


def test_the_parser_reads_label_replace_as_a_label_it_makes() -> None:
    metrics, labels, _ = parse(
        'count by (p) (label_replace(\n  m{job="mysqld", table=~"a_(x|y)"}, "p", "$1", "table", "(a_)(x|y)")) < 2'
    )
    assert (metrics, labels) == ({"m"}, {"job", "table", "p"})


def test_the_parser_finds_metrics_labels_and_jobs() -> None:
    metrics, labels, jobs = parse(
        "1 - avg by (site) (avg_over_time(portalops:probe_loaded:15s[1h])) > 3 * (1 - 0.95)\n"
        'and on (instance) rate(x_total{job="node", state=~"a|b"}[5m]) unless vector(1)'
    )
    assert metrics == {"portalops:probe_loaded:15s", "x_total"}
    assert labels == {"site", "instance", "job", "state"}
    assert jobs == {"node"}


def test_the_sources_the_rules_rely_on() -> None:
    """node_exporter's systemd collector is on, the burn rate's target is the role's veto line, and the
    lost-table alert counts check-database's core tables of every site database the exporter lists."""
    exporters = yaml.safe_load((EXPORTERS / "defaults/main.yml").read_text())
    database_lost = load("portalops_runbooks_l1_database_lost", "runbooks/l1_database_lost.py")
    assert database_lost.CORE_TABLES == CORE_TABLES
    assert f"< {len(CORE_TABLES)} >=" in database_lost.TABLE_LOST
    assert "portal_sites" in exporters["exporters_mysqld_table_schemas"]
    assert "systemd" in exporters["exporters_node_collectors_enabled"]
    assert "filesystem" not in exporters["exporters_node_collectors_disabled"]
    defaults = yaml.safe_load((MONITORING / "defaults/main.yml").read_text())
    module = load("portalops_runbooks_l2_slow_response", "runbooks/l2_slow_response.py")
    assert defaults["monitoring_availability_target"] == module.AVAILABILITY_TARGET
    assert defaults["monitoring_probe_interval_seconds"] <= 20 and defaults["monitoring_scrape_interval_seconds"] <= 15


def test_the_monitoring_role_installs_the_rule_file_through_promtool() -> None:
    tasks = yaml.safe_load((MONITORING / "tasks/prometheus.yml").read_text())
    install = next(t for t in tasks if t.get("ansible.builtin.copy", {}).get("src") == alerts.RULE_FILE.name)
    assert install["ansible.builtin.copy"]["validate"] == "promtool check rules %s"
    assert alerts.RULE_FILE.parent == MONITORING / "files"


def _runbook(*alert_list: Alert, level: Level = Level.L2) -> Runbook:
    return Runbook(
        id="x",
        title_zh="x",
        title_en="x",
        level=level,
        triggers=(("x", "x"),),
        targets=("web",),
        steps=(
            diagnose("d", "x", "x", run="true"),
            verify("v", "x", "x", run="true"),
            escalate("e", "x", "x", to_zh="x", to_en="x"),
        ),
        alerts=alert_list,
    )


@pytest.mark.parametrize(
    ("alert", "problem"),
    [
        (Alert("site_down", "up == 0", "x", "x"), "CamelCase"),
        (Alert("SiteDown", "up == 0", "x", "x", duration="5 minutes"), "Prometheus duration"),
        (Alert("SiteDown", "up == 0", "x", "x", duration=""), "Prometheus duration"),
        (Alert("SiteDown", "up == 0", "x", "x", level=Level.L1), "or a lower one"),
        (Alert("SiteDown", "", "x", "x"), "expression"),
        (Alert("SiteDown", "up == 0", "", "x"), "in words"),
        (Alert("SiteDown", "up == 0", "x", "x", labels=(("runbook", "y"),)), "labels"),
    ],
)
def test_a_malformed_alert_is_refused(alert: Alert, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        _runbook(alert)


def test_alert_names_are_unique_within_a_runbook_and_across_runbooks() -> None:
    one = Alert("SiteDown", "up == 0", "x", "x")
    with pytest.raises(ValueError, match="unique"):
        _runbook(one, one)
    with pytest.raises(ValueError, match="used twice: SiteDown"):
        alerts.render([_runbook(one), _runbook(one)])
    early = _runbook(Alert("SiteSlow", "up == 0", "x", "x", duration="1m30s", level=Level.L3))
    assert "level: L3" in alerts.render([early]) and "for: 1m30s" in alerts.render([early])


def test_the_plans_list_the_alerts() -> None:
    overall = (plans.PLANS_DIR / plans.OVERALL).read_text()
    for rule in ALL_RULES:
        assert f"`{rule['alert']}`" in overall, rule["alert"]
    for runbook in RUNBOOKS.values():
        plan = (plans.PLANS_DIR / f"{runbook.id}.md").read_text()
        assert all(f"`{a.name}`" in plan for a in runbook.alerts), runbook.id
