#!/usr/bin/env python3
"""L2 slow response: measure with the probe, find the cause, reload saturated php-fpm pools, verify, escalate.

Causes looked at: php-fpm pool saturation, slow queries in MariaDB's slow log, CPU/memory/IO pressure,
and requests bypassing the web tier's cache. The only action is a php-fpm reload (graceful, not a
restart); nothing destructive. Everything else goes to the escalation with the evidence.

Run: portalops runbook run l2_slow_response [--dry-run] [--yes], or this file directly.
"""

# ruff: noqa: RUF001 - Chinese text keeps its own full-width punctuation on purpose

from __future__ import annotations

import sys

from portalops.runbook import Alert, Level, Runbook, act, diagnose, escalate, verify
from portalops.runbook.checks import (
    HOST_TOOL,
    MARIADB_SLOW_LOG,
    NGINX_ACCESS_LOG,
    PHP_FPM,
    PHP_FPM_LOG,
    fpm_pools_not_saturated,
    probe_within,
    unit_reload,
)

SECONDS = 2.0  # a site's total response time (the probe's "total") above this is slow
CACHE_MISS_PERCENT = 50  # MISS + BYPASS share of the last 1000 requests above this is a finding
TIERS = ("web", "cms", "db")

SLOW_QUERIES = (
    f"[ -r {MARIADB_SLOW_LOG} ] || {{ echo 'no slow log at {MARIADB_SLOW_LOG}'; exit 0; }}; "
    f"tail -n 12 {MARIADB_SLOW_LOG}; echo '---'; "
    f"{HOST_TOOL} check slow-queries --log {MARIADB_SLOW_LOG}"
)

PRESSURE = (
    "free -m; n=$(nproc); set -- $(cat /proc/loadavg); bad=''; "
    'echo "load average $1 $2 $3 on $n CPU(s)"; '
    'if awk -v l="$1" -v n="$n" \'BEGIN { exit !(l > n) }\'; then bad="$bad load-above-$n-CPUs"; fi; '
    "for r in cpu memory io; do [ -r /proc/pressure/$r ] || continue; "
    'some=$(awk \'$1 == "some" { split($2, a, "="); print a[2] }\' /proc/pressure/$r 2>/dev/null); '
    '[ -n "$some" ] || continue; '
    'echo "pressure $r: some avg10=$some%"; '
    'if awk -v s="$some" \'BEGIN { exit !(s >= 25) }\'; then bad="$bad $r-pressure"; fi; done; '
    'if [ -n "$bad" ]; then echo "under pressure:$bad"; exit 1; fi; echo "no CPU, memory or IO pressure"'
)

CACHE = (
    f"tail -n 1000 {NGINX_ACCESS_LOG} | awk -v limit={CACHE_MISS_PERCENT} -v slow={SECONDS:g} '"
    '{ cs = "-"; rt = 0; for (i = 1; i <= NF; i++) { if ($i ~ /^cs=/) cs = substr($i, 4); '
    "else if ($i ~ /^rt=/) rt = substr($i, 4) + 0 } "
    'n++; seen[cs]++; if (cs == "MISS" || cs == "BYPASS") missed++; if (rt > slow) over++ } '
    'END { if (!n) { print "no requests logged"; exit 0 } for (s in seen) print "cs=" s, seen[s]; '
    'share = int(missed * 100 / n); print over + 0 " of " n " requests took over " slow " s (rt)"; '
    'note = ""; if (share > limit) note = " (over " limit "%)"; '
    'print "cache MISS/BYPASS: " share "% of the last " n " requests" note; exit (share > limit) }\''
)

# The inspection's veto line (the monitoring role's monitoring_availability_target); tests/unit/test_alert_rules.py
# keeps the two equal.
AVAILABILITY_TARGET = 0.95
# Burn rate: how many times faster than the week's error budget (5 % of probes) the site fails. At 3 the
# budget lasts 56 h, so the alert comes days before the 7-day figure crosses the line.
# No alert on the recorded 7-day margin itself: over a young series (a new host, a week of drills) a few
# minutes of failure cross it; the two burn windows do not.
BURN_RATE = 3


def _failing(window: str) -> str:
    return f"1 - avg by (site) (avg_over_time(portalops:probe_loaded:15s[{window}]))"


ALERTS = (
    Alert(
        name="PortalSlowResponse",
        expr=f'quantile_over_time(0.5, probe_duration_seconds{{job="http_portal"}}[5m]) > {SECONDS:g}',
        summary_zh=f"站点 5 分钟内探测响应时间中位数超过 {SECONDS:g} 秒",
        summary_en=f"A site's median probe time over 5 min is above {SECONDS:g} s",
        duration="2m",
        why="The median of 15 probes, held for 2 min: one slow page is not slow service (L2 has 15 min to call back).",
    ),
    Alert(
        name="PhpFpmSaturated",
        expr="""
phpfpm_listen_queue{job="node"} > 0
or increase(phpfpm_max_children_reached{job="node"}[5m]) > 0
""",
        summary_zh="php-fpm 进程池饱和（请求排队，或达到 pm.max_children）",
        summary_en="A php-fpm pool is saturated: requests wait for a worker, or it reached pm.max_children",
        duration="1m",
        why="php-fpm status via the textfile collector (portalops-phpfpm-metrics, every 15 s); 1 min of queueing "
        "or a new max_children hit in 5 min.",
    ),
    Alert(
        name="PortalAvailabilityBurn",
        expr=f"""
{_failing("1h")} > {BURN_RATE} * (1 - {AVAILABILITY_TARGET})
and {_failing("6h")} > {BURN_RATE} * (1 - {AVAILABILITY_TARGET})
and on (site) count by (site) (count_over_time(portalops:probe_loaded:15s[5m] offset 1h)) > 0
""",
        summary_zh=f"站点按 15 秒规则的不可用比例在 1 小时与 6 小时窗口均超过预算的 {BURN_RATE} 倍，"
        f"正趋向 {AVAILABILITY_TARGET:.0%} 一票否决线",
        summary_en=f"A site fails the 15-second rule at over {BURN_RATE}x its error budget in both the last 1 h and "
        f"6 h: heading for the {AVAILABILITY_TARGET:.0%} veto line",
        duration="5m",
        why="Burn-rate style on the 7-day inspection ratio: the 6 h window says it lasts, the 1 h window that it "
        "is still going on; the alert comes long before the week's figure crosses the line. Only for a site probed "
        "an hour ago already: on a young series (a new site, a rebuilt lab) a minute's outage is a large share of "
        "the few samples there are (on the lab, a 20 s stop of the edge fired it).",
    ),
)

RUNBOOK = Runbook(
    id="l2_slow_response",
    title_zh="门户响应缓慢",
    title_en="Slow response",
    level=Level.L2,
    triggers=(
        (f"站点可以访问，但响应时间超过 {SECONDS:g} 秒", f"the sites load, but take over {SECONDS:g} s"),
        ("探测或用户报告页面缓慢", "the probe or users report slow pages"),
    ),
    targets=TIERS,
    alerts=ALERTS,
    steps=(
        diagnose(
            "probe",
            "从外部测量各站点响应时间",
            "Measure every site's response time from outside",
            run=probe_within(SECONDS),
            timeout=120,
        ),
        diagnose(
            "fpm_pools",
            "检查 php-fpm 进程池是否饱和",
            "Check the php-fpm pools for saturation (children vs pm.max_children)",
            on=("cms",),
            run=fpm_pools_not_saturated(),
        ),
        diagnose("slow_queries", "查看数据库慢查询", "Read MariaDB's slow query log", on=("db",), run=SLOW_QUERIES),
        diagnose("pressure", "检查 CPU、内存、IO 压力", "Check CPU, memory and IO pressure", on=TIERS, run=PRESSURE),
        diagnose(
            "cache_bypass",
            "检查 web 层缓存命中情况",
            "Check how many requests miss or bypass the web tier's cache",
            on=("web",),
            run=CACHE,
        ),
        act(
            "reload_php_fpm",
            "平滑重载饱和的 php-fpm",
            "Reload php-fpm where a pool is saturated (graceful, not a restart)",
            on=("cms",),
            check=fpm_pools_not_saturated(),
            run=unit_reload(PHP_FPM),
            kb="KB-php-fpm-pool-saturated",
        ),
        verify(
            "fast_again",
            f"各站点响应时间回到 {SECONDS:g} 秒以内",
            f"Every site answers within {SECONDS:g} s again",
            run=probe_within(SECONDS),
            timeout=120,
            attempts=5,
            interval=10,
        ),
        escalate(
            "performance_owner",
            "升级至二线并附诊断证据",
            "Escalate to the second line with the evidence",
            to_zh="二线工程师（数据库慢查询、容量或缓存配置）",
            to_en="the second-line engineer (slow queries, capacity or cache configuration)",
            on=TIERS,
            run=f"uptime; free -m; tail -n 20 {PHP_FPM_LOG} {MARIADB_SLOW_LOG} 2>/dev/null; true",
        ),
    ),
)

if __name__ == "__main__":
    from portalops.cli import main

    sys.exit(main(["runbook", "run", RUNBOOK.id, *sys.argv[1:]]))
