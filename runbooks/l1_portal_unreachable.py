#!/usr/bin/env python3
"""L1 portal unreachable: find the failing tier, restart what stopped, verify from outside, escalate.

Run: portalops runbook run l1_portal_unreachable [--dry-run] [--yes], or this file directly.
"""

# ruff: noqa: RUF001 - Chinese text keeps its own full-width punctuation on purpose

from __future__ import annotations

import sys

from portalops.runbook import Level, Runbook, act, diagnose, escalate, verify
from portalops.runbook.checks import (
    NFTABLES_MANAGED,
    NFTABLES_RESTORE,
    PHP_FPM,
    PROBE,
    certificates_valid_for,
    disk_below,
    recent_logs,
    unit_active,
    unit_restart,
)

TIERS = ("web", "cms", "db")

RUNBOOK = Runbook(
    id="l1_portal_unreachable",
    title_zh="门户网站无法访问",
    title_en="Portal unreachable",
    level=Level.L1,
    triggers=(
        ("门户网站或任一子站打不开、报错或超时", "the portal or one of its sites does not load, errors or times out"),
        ("外部探测失败（portalops probe）", "the external probe fails (portalops probe)"),
    ),
    targets=TIERS,
    steps=(
        diagnose("probe", "从外部探测各站点", "Probe every site from outside", run=PROBE),
        diagnose(
            "web_nginx", "检查 web 层 nginx", "Check nginx on the web tier", on=("web",), run=unit_active("nginx")
        ),
        diagnose(
            "cms_services",
            "检查 CMS 层 php-fpm 与 nginx",
            "Check php-fpm and nginx on the CMS tier",
            on=("cms",),
            run=unit_active(PHP_FPM, "nginx"),
        ),
        diagnose(
            "db_mariadb",
            "检查数据库 MariaDB",
            "Check MariaDB on the database tier",
            on=("db",),
            run=unit_active("mariadb"),
        ),
        diagnose(
            "firewall",
            "检查已加载的防火墙规则即受管规则",
            "Check the loaded nftables ruleset is the managed one",
            on=TIERS,
            run=NFTABLES_MANAGED,
        ),
        diagnose("disk", "检查磁盘空间", "Check disk space on / and /var", on=TIERS, run=disk_below(95)),
        diagnose(
            "certificates",
            "检查证书是否过期",
            "Check the served certificates have not expired",
            on=("web",),
            run=certificates_valid_for(1),
        ),
        act(
            "start_mariadb",
            "重启 MariaDB",
            "Restart MariaDB",
            on=("db",),
            check=unit_active("mariadb"),
            run=unit_restart("mariadb", wait=240),  # a server still starting is waited for, never restarted
            timeout=300,
        ),
        act(
            "start_php_fpm",
            "重启 php-fpm",
            "Restart php-fpm",
            on=("cms",),
            check=unit_active(PHP_FPM),
            run=unit_restart(PHP_FPM),
        ),
        act(
            "start_cms_nginx",
            "重启 CMS 层 nginx",
            "Restart nginx on the CMS tier",
            on=("cms",),
            check=unit_active("nginx"),
            run=unit_restart("nginx"),
        ),
        act(
            "start_web_nginx",
            "重启 web 层 nginx",
            "Restart nginx on the web tier",
            on=("web",),
            check=unit_active("nginx"),
            run=unit_restart("nginx"),
        ),
        act(
            "reload_firewall",
            "恢复受管防火墙规则",
            "Restore the managed nftables ruleset",
            on=TIERS,
            check=NFTABLES_MANAGED,
            run=NFTABLES_RESTORE,
            destructive=True,  # a broken rules file could cut SSH off: a person says yes
        ),
        verify(
            "portal_back",
            "从外部确认各站点恢复",
            "Every site answers from outside again",
            run=PROBE,
            attempts=5,
            interval=3,
        ),
        escalate(
            "second_line",
            "升级至二线并保留现场",
            "Escalate to the second line, keeping the evidence",
            to_zh="二线工程师与信息中心值班负责人",
            to_en="the second-line engineer and the information centre's duty manager",
            on=TIERS,
            run=recent_logs("nginx", PHP_FPM, "mariadb", "nftables"),
        ),
    ),
)

if __name__ == "__main__":
    from portalops.cli import main

    sys.exit(main(["runbook", "run", RUNBOOK.id, *sys.argv[1:]]))
