"""The firewall that is loaded is the one we manage: web1's nftables ruleset replaced by one that drops
HTTPS (SSH still open), answered by l1_portal_unreachable.

Runs after test_site_runbooks.py (file order), on the converged lab.
"""

from __future__ import annotations

import json
import socket

import pytest

from portalops.lab.config import LabConfig
from tests.integration.helpers import on, portalops
from tests.integration.test_site_runbooks import INCIDENTS, acted, drill, journal

# Mostly waiting on the hosts, its CPUs idle: it runs right after the converge (conftest.lab_order).
pytestmark = pytest.mark.waits

TOOL = "/usr/local/sbin/portalops-nftables"


def https_answers(timeout: float = 5) -> bool:
    """A TCP connection to web1's 443 through its published port 127.0.0.1:8443 (a dropped SYN times out)."""
    try:
        with socket.create_connection(("127.0.0.1", 8443), timeout=timeout):
            return True
    except OSError:
        return False


def loaded_tables() -> set[str]:
    entries = json.loads(on("web1", "nft -j list tables").stdout)["nftables"]
    return {f"{e['table']['family']} {e['table']['name']}" for e in entries if "table" in e}


def test_a_replaced_ruleset_is_named_restored_and_https_answers_again(converged: LabConfig) -> None:
    assert portalops("drill", "inject", "ruleset_replaced").returncode == 0
    try:
        assert not https_answers(), "the fault should drop HTTPS"
        seen = on("web1", f"{TOOL} check", check=False)
        assert seen.returncode == 1, seen.stdout
        assert json.loads(seen.stdout)["differences"] == [
            "table inet portalops: not loaded",
            "table inet filter: unmanaged with base chain input (hook input, priority 0, policy accept)",
        ]
        result = portalops("runbook", "run", "l1_portal_unreachable", "--yes", timeout=900)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
        # Before any undo: what the runbook left.
        assert https_answers(), "HTTPS still dropped after the runbook"
        matched = on("web1", f"{TOOL} check", check=False)
        assert matched.returncode == 0, matched.stdout
        assert loaded_tables() <= {"inet portalops", "inet f2b-table"}
    finally:
        portalops("drill", "undo", "ruleset_replaced")
    assert https_answers()


def test_the_ruleset_replaced_drill_recovers_through_the_firewall_act(converged: LabConfig) -> None:
    found = drill("l1_portal_unreachable", "--fault", "ruleset_replaced")
    assert found["outcome"] == "recovered"
    assert acted(found["incident"])["reload_firewall"] == "done"
    outputs = [
        json.dumps(entry)
        for entry in journal(INCIDENTS / found["incident"])
        if entry.get("step") == "firewall" and "web1" in json.dumps(entry)
    ]
    assert any("table inet portalops: not loaded" in text for text in outputs), outputs[-3:]
