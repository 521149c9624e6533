#!/usr/bin/env python3
"""L3 certificate near expiry: renew through the nginx_portal role, verify, escalate.

Run: portalops runbook run l3_certificate_expiry [--dry-run] [--yes], or this file directly.
"""

# ruff: noqa: RUF001 - Chinese text keeps its own full-width punctuation on purpose

from __future__ import annotations

import sys

from portalops.runbook import Alert, Level, Runbook, act, diagnose, escalate, manual, verify
from portalops.runbook.checks import PROBE, certificates_valid_for

# The nginx_portal role's nginx_portal_tls_renew_before: lab certificates are issued again within it.
RENEW_DAYS = 30

# The monitoring role's recording rule of the probes' certificate expiry, in days.
ALERTS = (
    Alert(
        name="CertificateExpiring",
        expr=f"portalops:probe_cert_expiry:days < {RENEW_DAYS}",
        summary_zh=f"站点证书剩余有效期不足 {RENEW_DAYS} 天",
        summary_en=f"A site certificate expires within {RENEW_DAYS} days",
        duration="10m",
        why="Days ahead, so 10 min of for: costs nothing and rides out a probe through a changing edge.",
    ),
)

RUNBOOK = Runbook(
    id="l3_certificate_expiry",
    title_zh="证书即将过期",
    title_en="Certificate near expiry",
    level=Level.L3,
    triggers=(
        (f"站点证书剩余有效期不足 {RENEW_DAYS} 天", f"a site certificate expires within {RENEW_DAYS} days"),
        ("探测或 testssl.sh 报告证书即将过期", "the probe or testssl.sh reports the certificate expiring"),
    ),
    targets=("web",),
    alerts=ALERTS,
    steps=(
        diagnose("probe", "从外部查看证书剩余天数", "See the certificate's days left from outside", run=PROBE),
        diagnose(
            "served_certificates",
            "列出 nginx 使用的证书及到期时间",
            "List the certificates nginx serves and when they expire",
            on=("web",),
            run=certificates_valid_for(RENEW_DAYS),
        ),
        manual(
            "provided_certificate",
            "准备新证书（仅 provided 模式）",
            "Have the renewed certificate ready (provided mode only)",
            instructions_zh="生产环境（nginx_portal_tls_mode: provided）：向 CA 申请新证书并更新清单中的 "
            "nginx_portal_tls_certificates；实验环境（selfsigned_ca）无需操作。",
            instructions_en="Production (nginx_portal_tls_mode: provided): get the renewed certificate from the CA and "
            "update nginx_portal_tls_certificates in the inventory; the lab (selfsigned_ca) needs nothing.",
        ),
        act(
            "renew",
            "通过 nginx_portal 角色部署新证书",
            "Deploy the renewed certificate with the nginx_portal role",
            on=("web",),
            check=certificates_valid_for(RENEW_DAYS),
            playbook="playbooks/web.yml",
            timeout=600,
        ),
        verify(
            "certificates_renewed",
            f"证书有效期超过 {RENEW_DAYS} 天",
            f"Every served certificate is valid for more than {RENEW_DAYS} days",
            on=("web",),
            run=certificates_valid_for(RENEW_DAYS),
        ),
        verify(
            "portal_up", "从外部确认各站点正常", "Every site answers from outside", run=PROBE, attempts=3, interval=3
        ),
        escalate(
            "certificate_owner",
            "升级至证书管理负责人",
            "Escalate to the certificate owner",
            to_zh="证书管理负责人（向 CA 续期）",
            to_en="the certificate owner (renewal with the CA)",
        ),
    ),
)

if __name__ == "__main__":
    from portalops.cli import main

    sys.exit(main(["runbook", "run", RUNBOOK.id, *sys.argv[1:]]))
