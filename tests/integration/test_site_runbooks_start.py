"""Three-state checks and units that must start at boot, on the lab's real hosts.

A database that cannot be read right now (MariaDB stopped, or still starting) is "unknown" (exit 75),
never "lost": through the runbook's own path (Ansible on the controller) too, so nothing stops writes
or restores. A server that takes 60 s to start is waited for, not restarted, and nothing is restored;
MariaDB stopped and disabled is started and enabled again for the next boot.
"""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from portalops.inventory import LAB_INVENTORY, REPO_ROOT
from portalops.lab.config import LabConfig
from portalops.runbook import registry
from portalops.runbook.planning import context_for, fill
from tests.integration.helpers import ENV, on
from tests.integration.test_site_runbooks import INCIDENTS, acted, drill, journal

# Mostly waiting on the hosts, its CPUs idle: it runs right after the converge (conftest.lab_order).
pytestmark = pytest.mark.waits

BACKUP = "/usr/local/sbin/portalops-backup"


def step_output(incident: str, step: str, role: str = "run") -> str:
    return "\n".join(
        str(e.get("stdout", "")) + str(e.get("stderr", ""))
        for e in journal(INCIDENTS / incident)
        if e.get("event") == "command" and e.get("step") == step and e.get("role") == role
    )


def test_a_stopped_database_is_unknown_not_lost_on_the_host_and_through_ansible(converged: LabConfig) -> None:
    check = fill(registry.get("l1_database_lost").step("stop_writes").check, context_for(str(LAB_INVENTORY)))
    on("db1", "systemctl stop mariadb")
    try:
        direct = on("db1", f"{BACKUP} check-database", check=False)
        controller = subprocess.run(
            ["bash", "-c", check], cwd=REPO_ROOT, env=ENV, capture_output=True, text=True, timeout=300, check=False
        )
    finally:
        on("db1", "systemctl start mariadb")
    assert direct.returncode == 75, direct.stdout[-2000:] + direct.stderr[-1000:]
    last = direct.stdout.strip().splitlines()[-1]
    assert last.startswith("check-database: unknown, the server cannot be read right now (not lost):"), last
    assert "ERROR 2002" in last and "LOST" not in direct.stdout
    assert controller.returncode == 75, controller.stdout[-2000:] + controller.stderr[-1000:]
    assert controller.stdout.strip().splitlines()[-1] == "unknown, cannot tell on db1 (exit 75)"
    assert on("db1", f"{BACKUP} check-database", check=False).returncode == 0


def test_mariadb_stopped_and_disabled_is_started_and_enabled_again(converged: LabConfig) -> None:
    found: dict[str, Any] = drill("l1_portal_unreachable", "--fault", "mariadb_disabled")
    # drill() asserted the report ok: recovered, start_mariadb done and, before the undo, is-enabled = enabled.
    assert found["outcome"] == "recovered"
    assert "mariadb was disabled: enabled again, it starts at boot" in step_output(found["incident"], "start_mariadb")
    assert on("db1", "systemctl is-enabled mariadb").stdout.strip() == "enabled"


def test_a_slow_starting_database_is_waited_for_and_nothing_is_restored(converged: LabConfig) -> None:
    aside = "ls -d /var/lib/mysql.*-restore-* 2>/dev/null || true"
    before = set(on("db1", aside).stdout.split())
    found: dict[str, Any] = drill("l1_database_lost", "--fault", "mariadb_slow_start")
    # Expected and checked by the drill: recovered once the server was up, the same systemd invocation of
    # MariaDB throughout (waited for, not restarted), no data directory set aside.
    assert found["outcome"] == "recovered"
    results = acted(found["incident"])
    assert results["restore_database"] == "not_needed" and results["stop_writes"] == "not_needed", results
    assert results["start_mariadb"] == "done", results
    assert "mariadb is starting: waiting up to 240 s for it, not restarting it" in step_output(
        found["incident"], "start_mariadb"
    )
    assert "check-database: unknown" in step_output(found["incident"], "db_health")
    assert set(on("db1", aside).stdout.split()) == before
    assert not on("db1", "ls /etc/systemd/system/mariadb.service.d/ 2>/dev/null || true").stdout.strip()
    assert on("db1", "systemctl is-active mariadb").stdout.strip() == "active"
