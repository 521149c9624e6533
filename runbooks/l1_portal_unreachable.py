#!/usr/bin/env python3
"""L1 portal unreachable: find the failing tier, restart what stopped, verify from outside, escalate.

Run: portalops runbook run l1_portal_unreachable [--dry-run] [--yes], or this file directly.
"""

# ruff: noqa: RUF001 - Chinese text keeps its own full-width punctuation on purpose

from __future__ import annotations

import shlex
import sys

from portalops.runbook import Alert, Level, Runbook, act, diagnose, escalate, verify
from portalops.runbook.checks import (
    FPM_ACTIVE,
    MARIADB_UP,
    NFTABLES_MANAGED,
    NFTABLES_RESTORE,
    PHP_FPM,
    PROBE,
    certificates_valid_for,
    disk_below,
    mariadb_restart,
    recent_logs,
    unit_active,
    unit_restart,
    writes_into_a_sound_database,
)

TIERS = ("web", "cms", "db")

# php-fpm is the sites' writes. A stopped php-fpm is restarted only when the database tier says sound: started
# into a lost database (l1_database_lost stopped writes and waits for a person to restore, or the table went
# with the crash), WordPress offers its installer to anyone. Run from the controller, where the database's
# answer is; the restart itself on every host of the CMS tier (unit_restart: waits for one still starting).
START_PHP_FPM = writes_into_a_sound_database(
    f"ansible cms -i {{{{ inventory }}}} -m ansible.builtin.shell -a {shlex.quote(unit_restart(PHP_FPM))} -o",
    "l1_database_lost decides, with a person, and restores it",
)

# Its triggers as monitoring sees them: the blackbox probe of every domain through the edge (job http_portal,
# labels site and domain; the monitoring role). A failed probe says why only in probe_failed_due_to_regex:
# 0 = no page (no answer, an error status, a TLS failure, over 15 s), 1 = a page without the site's title,
# stale (the edge covering for a dead CMS) or defaced; a defaced page is l1_defacement's, not this one's.
ALERTS = (
    Alert(
        name="PortalSiteDown",
        expr='probe_success{job="http_portal"} == 0 and probe_failed_due_to_regex{job="http_portal"} == 0',
        summary_zh="站点域名经边缘节点无法访问（无应答、错误状态码、TLS 失败或超过 15 秒）",
        summary_en="A site's domain fails through the edge: no answer, an error status, a TLS failure or over 15 s",
        duration="0s",
        why="for: 0s on the failed probe itself: one probe every 20 s, so any for: waits a probe interval "
        "without a second probe behind it and MTTD would pass 30 s; the runbook probes again first.",
    ),
    Alert(
        name="PortalWrongContent",
        expr="""
probe_failed_due_to_regex{job="http_portal"} == 1
unless on (instance) probe_failed_due_to_regex{job="http_portal_defacement"} == 1
""",
        summary_zh="站点返回的页面不含站点标题或为过期缓存（CMS 或数据库失效时边缘节点提供的旧页面）",
        summary_en="A site answers without its title, or with a stale page the edge serves while the CMS or "
        "database fails",
        duration="20s",
        why="for: 20s, one probe interval: a defaced page fails this probe too, and the defacement probe (its own "
        "20 s cycle) must have had its turn, so a defacement opens one incident (PortalDefaced, l1_defacement), "
        "not two. A dead CMS is seen sooner by PortalBackendDown.",
    ),
    Alert(
        name="PortalBackendDown",
        expr="""
phpfpm_up{job="node"} == 0
or nginx_up{job="nginx"} == 0
""",
        summary_zh="CMS 层 php-fpm 进程池或 nginx 无应答（边缘节点此时可能仍以缓存页面服务）",
        summary_en="A php-fpm pool or nginx does not answer (the edge may still serve cached pages meanwhile)",
        duration="0s",
        why="for: 0s: php-fpm's status answers on its own socket even with every worker busy, so 0 is a dead pool; "
        "the pool status is written every 15 s and scraped every 15 s, ~22 s on average, where the edge's "
        "cached pages would hide the fault from the probes for as long as they last.",
    ),
    Alert(
        name="DatabaseDown",
        expr='mysql_up{job="mysqld"} == 0',
        summary_zh="数据库无法连接或无法读取（mysqld_exporter 连接失败）",
        summary_en="The database does not answer or cannot be read (mysqld_exporter cannot connect)",
        duration="15s",
        why="for: 15s, two scrapes: a single refused connection (too many connections, a restart) is not a dead "
        "server. This runbook's: it starts a stopped MariaDB (the edge's cached pages hid a stopped database "
        "from the probes for over a minute on the lab); a lost database is DatabaseTableLost's "
        "(l1_database_lost, whose restore waits for a person and holds the hosts' lock while the server is down).",
    ),
)

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
    alerts=ALERTS,
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
            run=MARIADB_UP,
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
            "重启 MariaDB（先移除已中断的恢复遗留的禁网配置）",
            "Restart MariaDB (a stale restore drop-in that keeps it off the network removed first)",
            on=("db",),
            check=MARIADB_UP,
            run=mariadb_restart(240),  # a server still starting is waited for, never restarted
            timeout=300,
            kb="KB-mariadb-starting-refuses-connections",
        ),
        act(
            "start_php_fpm",
            "数据库完好时重启 php-fpm（数据库丢失或无法判断时保持停止写入）",
            "Restart php-fpm, into a sound database only (lost or unknown: writes stay stopped)",
            check=FPM_ACTIVE,
            run=START_PHP_FPM,
            timeout=360,  # the database's check (up to 240 s) and then the restart
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
            kb="KB-nginx-config-refused",
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
