"""Fault drills: a fault injected into the converged lab, the runbook run as a responder would.

Runs right after the converge's modules (marked `waits`, see conftest.lab_order). Each drill is
`portalops drill run RUNBOOK`: it breaks something real, runs `portalops runbook run ... --yes`, checks
that the portal answers and no data was lost, undoes what is left and writes the MTTR. The tests then
check the hosts, the exit code and the incident record an auditor reads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from portalops.inventory import REPO_ROOT
from portalops.lab.config import LabConfig
from tests.integration.helpers import on, portalops, read_journal

# Mostly waiting on the hosts, its CPUs idle: it runs right after the converge (conftest.lab_order).
pytestmark = pytest.mark.waits

INCIDENTS = REPO_ROOT / "incidents"
REPORTS = REPO_ROOT / "reports" / "fault-drills"


def journal(incident: Path) -> list[dict[str, Any]]:
    return read_journal(incident / "journal.jsonl")


def test_dry_run_runs_nothing_and_lists_the_commands(converged: LabConfig) -> None:
    on("web1", "systemctl stop nginx")
    try:
        result = portalops("runbook", "run", "l1_portal_unreachable", "--dry-run")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "systemctl" in result.stdout
        assert on("web1", "systemctl is-active nginx", check=False).stdout.strip() != "active"
    finally:
        on("web1", "systemctl start nginx")


def drill(runbook: str, *extra: str) -> dict[str, Any]:
    """`portalops drill run`; its exit code and its report."""
    before = set(REPORTS.glob("*.json")) if REPORTS.is_dir() else set()
    result = portalops("drill", "run", runbook, *extra, timeout=1800)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    (report,) = set(REPORTS.glob("*.json")) - before
    found: dict[str, Any] = json.loads(report.read_text())
    assert found["ok"] and found["portal_ok"] == (found["expected"] == "recovered"), found
    return found


def acted(incident: str) -> dict[str, str]:
    """Each act step of the incident and how it ended: done, not_needed, failed, declined."""
    return {
        str(entry["step"]): str(entry["result"])
        for entry in journal(INCIDENTS / incident)
        if entry.get("event") == "step_end" and entry.get("kind") == "act"
    }


def test_the_fault_catalogue_is_listed(converged: LabConfig) -> None:
    result = portalops("drill", "list")
    assert result.returncode == 0 and "nginx_stopped" in result.stdout


def test_drills_refuse_a_non_lab_inventory(converged: LabConfig) -> None:
    result = portalops("drill", "inject", "nginx_stopped", "-i", "inventory/example")
    assert result.returncode == 2 and "only on the lab inventory" in result.stderr
    assert on("web1", "systemctl is-active nginx").stdout.strip() == "active"


# The stopped edge, the killed php-fpm and the stopped MariaDB are drilled through the monitoring
# (test_site_responder.py): the same runbook run the same way (`portalops runbook run --resume`), after
# the detection; their direct drills here repeated that run and are left to `make bench-drills`.


def test_l1_portal_unreachable_escalates_when_it_cannot_recover(converged: LabConfig) -> None:
    found = drill("l1_portal_unreachable", "--fault", "nginx_masked")
    assert found["outcome"] == "not_recovered"
    record = (INCIDENTS / found["incident"] / "incident.md").read_text().lower()
    assert "escalat" in record and "not recovered" in record
    assert on("web1", "systemctl is-active nginx").stdout.strip() == "active", "the drill undid the mask"


def test_l3_backup_stale_backs_up_the_stale_host_and_verifies(converged: LabConfig) -> None:
    found = drill("l3_backup_stale")
    status = json.loads(on("db1", "cat /var/lib/portalops/backup/run.json").stdout)
    assert status["ok"] and all(job["ok"] for job in status["jobs"])
    assert any("backup.yml" in json.dumps(entry) for entry in journal(INCIDENTS / found["incident"]))


def test_l3_certificate_expiry_renews_the_short_lived_certificates(converged: LabConfig) -> None:
    drill("l3_certificate_expiry")
    days = on("web1", "openssl x509 -enddate -noout -in /etc/nginx/tls/portal.crt").stdout
    left = on("web1", "openssl x509 -checkend $((60 * 86400)) -noout -in /etc/nginx/tls/portal.crt", check=False)
    assert left.returncode == 0, f"still short-lived after the runbook: {days}"


def test_l3_degraded_services_restarts_the_failed_php_fpm(converged: LabConfig) -> None:
    found = drill("l3_degraded_services")
    assert found["fault"] == "php_fpm_killed"
    assert acted(found["incident"])["restart_failed_services"] == "done"
    assert on("cms1", "systemctl is-active php8.2-fpm").stdout.strip() == "active"
    assert on("cms1", "systemctl --failed --no-legend --plain").stdout.strip() == ""


def test_l2_disk_pressure_frees_the_staging_leftover_and_nothing_else(converged: LabConfig) -> None:
    on("db1", "mkdir -p /var/log/portalops-drill && touch /var/log/portalops-drill/young.log.gz")
    try:
        found = drill("l2_disk_pressure")
        assert on("db1", "test -e /var/log/portalops-drill/young.log.gz", check=False).returncode == 0
    finally:
        on("db1", "rm -rf /var/log/portalops-drill", check=False)
    results = acted(found["incident"])
    assert results["staging_leftovers"] == "done", results
    assert results["old_rotated_logs"] == "not_needed", results
    assert on("db1", "mountpoint -q /var/backups/portalops", check=False).returncode != 0, "the drill unmounted it"


def test_l2_slow_response_finds_the_saturated_pool_and_reloads_it(converged: LabConfig) -> None:
    found = drill("l2_slow_response")
    results = acted(found["incident"])
    assert results["reload_php_fpm"] == "done", results
    # The bracket keeps pgrep from finding the shell that runs it.
    assert on("cms1", "pgrep -f '[s]h /root/.drill-load'", check=False).returncode != 0, "the load generator stopped"
