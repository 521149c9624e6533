#!/usr/bin/env python3
"""L3 degraded services and warnings: failed units, restarts pending after upgrades, fail2ban, AIDE and rkhunter.

Acts only on failed portal services (restarted after checking, on each host, that they are failed); the
other warnings are reviewed by a person. Recovered when no host has a failed unit.

Run: portalops runbook run l3_degraded_services [--dry-run] [--yes], or this file directly.
"""

# ruff: noqa: RUF001 - Chinese text keeps its own full-width punctuation on purpose

from __future__ import annotations

import sys

from portalops.runbook import Alert, Level, Runbook, act, diagnose, escalate, manual, verify
from portalops.runbook.checks import PHP_FPM, no_failed_units, restart_failed, units_not_failed

HOSTS = ("all",)
# Portal services restarted when failed, the database first; nftables has its own step (it asks first).
SERVICES = ("mariadb", PHP_FPM, "nginx", "fail2ban")
RKHUNTER_LOG = "/var/log/rkhunter.log"
AIDE_LOG = "/var/log/aide/aide.log"  # what the daily check (dailyaidecheck) last reported

NEEDRESTART = (
    "if ! command -v needrestart >/dev/null 2>&1; then echo 'needrestart not installed here'; exit 0; fi; "
    "out=$(needrestart -b -r l 2>/dev/null); "
    "echo \"$out\" | grep -E '^NEEDRESTART-(KCUR|KEXP|KSTA):'; "
    "svcs=$(echo \"$out\" | awk '$1 == \"NEEDRESTART-SVC:\" { print $2 }' | tr '\\n' ' '); "
    'if [ -n "$svcs" ]; then echo "restart pending after upgrades: $svcs"; exit 1; fi; '
    "echo 'no service needs a restart'"
)

FAIL2BAN = (
    "if ! command -v fail2ban-client >/dev/null 2>&1; then echo 'fail2ban not installed here'; exit 0; fi; "
    "if ! systemctl is-active --quiet fail2ban; then echo 'fail2ban is not running'; exit 1; fi; "
    "jails=$(fail2ban-client status | sed -n 's/.*Jail list:[[:space:]]*//p' | tr ',' ' '); "
    'for jail in $jails; do echo "$jail: $(fail2ban-client status "$jail" | grep -E \'Currently (failed|banned)\' '
    "| sed 's/^[^A-Za-z]*//' | paste -sd ';')\"; done; "
    'echo "fail2ban running, jails: ${jails:-none}"'
)

INTEGRITY = (
    "bad=''; "
    f"if [ -r {RKHUNTER_LOG} ]; then n=$(grep -c 'Warning:' {RKHUNTER_LOG}); "
    f"grep 'Warning:' {RKHUNTER_LOG} | tail -n 5; echo \"rkhunter: $n warning(s) in its last log\"; "
    '[ "$n" -eq 0 ] || bad="$bad rkhunter"; else echo \'rkhunter: no log yet\'; fi; '
    f"if [ -r {AIDE_LOG} ]; then if grep -q 'found differences' {AIDE_LOG}; then "
    f"grep -E '^(Added|Removed|Changed) entries' {AIDE_LOG}; echo 'AIDE: its last check found differences'; "
    "bad=\"$bad AIDE\"; else echo 'AIDE: its last check found no differences'; fi; "
    "else echo 'AIDE: no check log yet'; fi; "
    'if [ -n "$bad" ]; then echo "warnings from:$bad"; exit 1; fi; echo "no AIDE or rkhunter warnings"'
)

# node_exporter's systemd collector (the exporters role switches it on).
ALERTS = (
    Alert(
        name="SystemdUnitFailed",
        expr='node_systemd_unit_state{job="node", state="failed"} == 1',
        summary_zh="主机上有失败的 systemd 单元",
        summary_en="A host has a failed systemd unit",
        duration="1m",
        why="1 min: a unit that systemd restarts by itself (Restart=) is not left failed.",
    ),
)

RUNBOOK = Runbook(
    id="l3_degraded_services",
    title_zh="服务降级与告警",
    title_en="Degraded services and warnings",
    level=Level.L3,
    triggers=(
        ("任一主机有失败的 systemd 单元", "a host has a failed systemd unit"),
        (
            "升级后有服务待重启，或 fail2ban、AIDE、rkhunter 报告告警",
            "services wait for a restart after upgrades, or fail2ban, AIDE or rkhunter warn",
        ),
    ),
    targets=HOSTS,
    alerts=ALERTS,
    steps=(
        diagnose(
            "failed_units", "列出失败的 systemd 单元", "List failed systemd units", on=HOSTS, run=no_failed_units()
        ),
        diagnose(
            "pending_restarts",
            "列出升级后待重启的服务",
            "List services needing a restart after upgrades (needrestart)",
            on=HOSTS,
            run=NEEDRESTART,
            timeout=120,
        ),
        diagnose("fail2ban_jails", "查看 fail2ban 各监狱状态", "Check fail2ban and its jails", on=HOSTS, run=FAIL2BAN),
        diagnose(
            "integrity_warnings",
            "查看 AIDE 与 rkhunter 最近一次的告警",
            "Read the warnings of AIDE's and rkhunter's last runs",
            on=HOSTS,
            run=INTEGRITY,
        ),
        act(
            "restart_failed_services",
            "重启失败的门户服务",
            "Restart the failed portal services (" + ", ".join(SERVICES) + ")",
            on=HOSTS,
            check=units_not_failed(*SERVICES),
            run=restart_failed(*SERVICES),
            timeout=180,
        ),
        act(
            "restart_failed_firewall",
            "重启失败的防火墙（nftables）",
            "Restart nftables where it failed",
            on=HOSTS,
            check=units_not_failed("nftables"),
            run=restart_failed("nftables"),
            destructive=True,  # a broken rules file could cut SSH off: a person says yes
        ),
        manual(
            "review_warnings",
            "复核其余告警",
            "Review the remaining warnings",
            instructions_zh="在维护窗口内重启 needrestart 列出的服务；"
            "核查 AIDE/rkhunter 告警（属篡改时转一级篡改预案）；fail2ban 未运行时查明原因。",
            instructions_en="Restart the services needrestart lists in a maintenance window; investigate AIDE/rkhunter "
            "warnings (tampering goes to the L1 defacement plan); find why fail2ban stopped if it did.",
        ),
        verify(
            "no_failed_units",
            "所有主机无失败的 systemd 单元",
            "No host has a failed systemd unit",
            on=HOSTS,
            run=no_failed_units(),
            attempts=3,
            interval=5,
        ),
        escalate(
            "second_line",
            "升级至二线",
            "Escalate to the second line",
            to_zh="二线工程师（未能恢复的失败单元）",
            to_en="the second-line engineer (units that stay failed)",
            on=HOSTS,
            run="systemctl --failed --no-pager; journalctl -p err --since '-60 min' --no-pager -n 60 || true",
        ),
    ),
)

if __name__ == "__main__":
    from portalops.cli import main

    sys.exit(main(["runbook", "run", RUNBOOK.id, *sys.argv[1:]]))
