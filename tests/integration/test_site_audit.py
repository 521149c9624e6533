"""`portalops audit` on the converged lab: Lynis >= 80 everywhere, no ssh-audit failure, TLS without old protocols.

Runs after test_site.py (file order), on the lab that site.yml converged, so the scores are
those of the hosts the portal actually runs on — with every service still working.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from portalops.lab.config import LabConfig
from tests.integration.helpers import portalops


@pytest.fixture(scope="module")
def audit(converged: LabConfig, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict[str, Any], str]:
    out = tmp_path_factory.mktemp("audit")
    result = portalops("audit", "--out", str(out), timeout=2400)
    reports = sorted(out.glob("*.json"))
    assert reports, f"portalops audit wrote no report (exit {result.returncode}):\n{result.stderr[-3000:]}"
    markdown = reports[-1].with_suffix(".md").read_text()
    return result.returncode, json.loads(reports[-1].read_text()), markdown


def test_every_host_scores_at_least_80_in_lynis(converged: LabConfig, audit: tuple[int, dict[str, Any], str]) -> None:
    _, report, markdown = audit
    scores = {h["host"]: h["lynis_index"] for h in report["hosts"]}
    assert set(scores) == {h.name for h in converged.hosts}
    low = {host: score for host, score in scores.items() if score is None or score < 80}
    assert not low, f"Lynis hardening index below 80: {low}\n{markdown}"


def test_ssh_audit_finds_no_failure(audit: tuple[int, dict[str, Any], str]) -> None:
    _, report, markdown = audit
    failures = {h["host"]: h["ssh_failures"] + h["errors"] for h in report["hosts"] if h["ssh_failures"] or h["errors"]}
    assert not failures, markdown


def test_testssl_finds_only_tls12_and_13_and_no_weak_cipher(audit: tuple[int, dict[str, Any], str]) -> None:
    _, report, markdown = audit
    assert report["tls_target"] == "https://127.0.0.1:8443"
    assert set(report["tls_protocols"]) <= {"TLS1_2", "TLS1_3"}, report["tls_protocols"]
    assert "TLS1_3" in report["tls_protocols"]
    assert not report["tls_problems"], markdown


def test_the_audit_verdict_is_pass_and_the_portal_still_works(audit: tuple[int, dict[str, Any], str]) -> None:
    code, _, markdown = audit
    assert code == 0, markdown
    assert "Verdict: **PASS**" in markdown
