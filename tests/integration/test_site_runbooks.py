"""Fault drills: a fault injected into the converged lab, the runbook run as a responder would.

Runs after the other test_site* modules (file order). Each drill breaks something real,
runs `portalops runbook run ... --yes`, and checks the outcome on the hosts, the exit code
and the incident record an auditor reads.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from portalops.inventory import REPO_ROOT
from portalops.lab.config import LabConfig
from tests.integration.helpers import on, portalops


def newest_incident() -> Path:
    incidents = sorted((REPO_ROOT / "incidents").iterdir(), key=lambda p: p.stat().st_mtime)
    assert incidents, "no incident recorded"
    return incidents[-1]


def journal(incident: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (incident / "journal.jsonl").read_text().splitlines() if line]


def test_dry_run_runs_nothing_and_lists_the_commands(converged: LabConfig) -> None:
    on("web1", "systemctl stop nginx")
    try:
        result = portalops("runbook", "run", "l1_portal_unreachable", "--dry-run")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "systemctl" in result.stdout
        assert on("web1", "systemctl is-active nginx", check=False).stdout.strip() != "active"
    finally:
        on("web1", "systemctl start nginx")


@pytest.fixture
def nginx_stopped_on_web1(converged: LabConfig) -> Iterator[None]:
    on("web1", "systemctl stop nginx")
    yield
    on("web1", "systemctl start nginx", check=False)


def test_l1_portal_unreachable_finds_the_stopped_edge_restarts_it_and_verifies(nginx_stopped_on_web1: None) -> None:
    result = portalops("runbook", "run", "l1_portal_unreachable", "--yes", timeout=1200)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert on("web1", "systemctl is-active nginx").stdout.strip() == "active"
    probe = portalops("probe", "--json")
    assert probe.returncode == 0, probe.stdout + probe.stderr
    incident = newest_incident()
    record = (incident / "incident.md").read_text()
    assert "l1_portal_unreachable" in record or "Portal unreachable" in record
    assert "recovered" in record.lower()
    steps = journal(incident)
    assert any("nginx" in json.dumps(entry) and entry.get("kind") == "act" for entry in steps), steps[-5:]


@pytest.fixture
def nginx_masked_on_web1(converged: LabConfig) -> Iterator[None]:
    on("web1", "systemctl stop nginx && systemctl mask nginx")
    yield
    on("web1", "systemctl unmask nginx && systemctl start nginx", check=False)


def test_l1_portal_unreachable_escalates_when_it_cannot_recover(nginx_masked_on_web1: None) -> None:
    result = portalops("runbook", "run", "l1_portal_unreachable", "--yes", timeout=1200)
    assert result.returncode == 1, result.stdout[-4000:] + result.stderr[-2000:]
    record = (newest_incident() / "incident.md").read_text().lower()
    assert "escalat" in record and "not recovered" in record


@pytest.fixture
def stale_db1_backup(converged: LabConfig) -> Iterator[None]:
    on("db1", "cp -p /var/lib/portalops/backup/run.json /root/run.json.keep")
    on(
        "db1",
        "python3 -c \"import json,time; p='/var/lib/portalops/backup/run.json'; d=json.load(open(p)); "
        "[j.update(last_success_ts=time.time()-40*3600) for j in d['jobs']]; json.dump(d, open(p,'w'))\"",
    )
    yield
    on("db1", "rm -f /root/run.json.keep", check=False)


def test_l3_backup_stale_backs_up_the_stale_host_and_verifies(stale_db1_backup: None) -> None:
    result = portalops("runbook", "run", "l3_backup_stale", "--yes", timeout=1800)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    status = json.loads(on("db1", "cat /var/lib/portalops/backup/run.json").stdout)
    assert status["ok"] and all(job["ok"] for job in status["jobs"])
    steps = journal(newest_incident())
    assert any("backup.yml" in json.dumps(entry) for entry in steps)
