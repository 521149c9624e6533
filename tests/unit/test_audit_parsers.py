"""Parsers for the audit tools, fed with real output recorded from a plain lab host."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from portalops.audit import lynis, sshaudit, testssl
from portalops.audit.run import AuditReport, HostAudit, markdown

DATA = Path(__file__).parent / "data" / "audit"


def test_lynis_report_of_a_plain_debian12_host() -> None:
    result = lynis.parse_report((DATA / "lynis-report-plain-debian12.dat").read_text())
    assert result.hardening_index == 59
    assert result.tests_performed == 237
    assert result.warnings == ["PKGS-7392: Found one or more vulnerable packages."]
    assert "SSH-7408: Consider hardening SSH configuration (MaxAuthTries (set 6 to 3))" in result.suggestions


def test_an_unfinished_lynis_report_is_an_error_not_zero() -> None:
    with pytest.raises(ValueError, match="no hardening_index"):
        lynis.parse_report("report_version_major=1\nwarning[]=X|y|-|-|\n")


def test_ssh_audit_fail_verdicts_of_a_stock_sshd() -> None:
    findings = sshaudit.parse_output((DATA / "ssh-audit-plain-debian12.txt").read_text())
    fails = sorted(f.name for f in findings if f.level == "fail")
    assert fails == ["ecdh-sha2-nistp256", "ecdh-sha2-nistp384", "ecdh-sha2-nistp521", "ecdsa-sha2-nistp256"]
    assert all(f.why for f in findings)


def test_ssh_audit_clean_output_has_no_findings() -> None:
    assert sshaudit.parse_output("(kex) curve25519-sha256  -- [info] available since OpenSSH 7.4\n") == []


def test_testssl_average_ciphers_are_a_problem() -> None:
    verdict = testssl.judge(json.loads((DATA / "testssl-tls12-13-average.json").read_text()))
    assert verdict.offered_protocols == ["TLS1_2", "TLS1_3"]
    assert verdict.problems == ["AVERAGE ciphers offered"]


def test_testssl_old_protocols_and_missing_tests() -> None:
    findings = [{"id": "TLS1", "finding": "offered (deprecated)"}, {"id": "TLS1_2", "finding": "offered"}]
    verdict = testssl.judge(findings)
    assert "TLS1 offered" in verdict.problems
    assert "cipherlist_NULL: not tested" in verdict.problems
    assert not verdict.ok


def test_report_verdict_and_markdown() -> None:
    report = AuditReport(
        started="20261127T000000Z",
        min_lynis=80,
        hosts=[HostAudit("web1", lynis_index=83), HostAudit("db1", lynis_index=79, ssh_failures=["(kex) x: weak"])],
    )
    assert report.problems() == ["db1: Lynis hardening index 79 < 80", "db1: ssh-audit fail: (kex) x: weak"]
    text = markdown(report)
    assert "Verdict: **FAIL**" in text
    assert "| db1 | 79 | 0 | 1 | 0 |" in text
