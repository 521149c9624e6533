#!/usr/bin/env python3
"""L3 backups stale or failing: read each client's last run, back up the stale ones now, verify, escalate.

Run: portalops runbook run l3_backup_stale [--dry-run] [--yes], or this file directly.
"""

# ruff: noqa: RUF001 - Chinese text keeps its own full-width punctuation on purpose

from __future__ import annotations

import sys

from portalops.runbook import Alert, Level, Runbook, act, diagnose, escalate, verify
from portalops.runbook.checks import backups_younger_than, disk_below

# The nightly backup plus two hours of slack.
MAX_AGE_HOURS = 26

# The backup wrapper's textfile metrics (portalops-backup, read by node_exporter: job node, the wrapper's own
# label job becomes exported_job). command is run (nightly backup), check (repository check) or copy
# (the backup host's second copy, whose exported_job is the copy's name).
ALERTS = (
    Alert(
        name="BackupFailed",
        expr='portalops_backup_last_run_success{job="node", command=~"run|check|copy"} == 0',
        summary_zh="最近一次备份、仓库检查或第二副本复制失败",
        summary_en="The last backup, repository check or second-copy run failed",
        duration="5m",
        why="The metric changes once a run; 5 min lets a manual rerun that already fixed it win.",
    ),
    Alert(
        name="BackupStale",
        expr=f'time() - portalops_backup_job_last_success_timestamp_seconds{{job="node"}} > {MAX_AGE_HOURS} * 3600',
        summary_zh=f"备份作业（或第二副本）超过 {MAX_AGE_HOURS} 小时没有成功",
        summary_en=f"A backup job (or a second copy) has not succeeded for over {MAX_AGE_HOURS} h",
        duration="10m",
        why=f"{MAX_AGE_HOURS} h: the nightly backup plus two hours of slack, as the runbook's own check.",
    ),
    Alert(
        name="BackupSecondCopyStale",
        expr='time() - portalops_backup_last_run_timestamp_seconds{job="node", command="copy"}'
        f" > {MAX_AGE_HOURS} * 3600",
        summary_zh=f"备份主机的第二副本超过 {MAX_AGE_HOURS} 小时未运行",
        summary_en=f"The backup host's second copy has not run for over {MAX_AGE_HOURS} h",
        duration="10m",
        why="The copy timer itself stopped (a failed copy is BackupFailed).",
    ),
)

RUNBOOK = Runbook(
    id="l3_backup_stale",
    title_zh="备份过期或失败",
    title_en="Backups stale or failing",
    level=Level.L3,
    triggers=(
        (
            f"任一主机最近一次成功备份超过 {MAX_AGE_HOURS} 小时",
            f"a host's newest successful backup is older than {MAX_AGE_HOURS} h",
        ),
        ("夜间备份或 scripts/nightly 报告失败", "the nightly backup or scripts/nightly reports a failure"),
    ),
    targets=("backup_clients", "backup"),
    alerts=ALERTS,
    steps=(
        diagnose(
            "backup_status",
            "读取各客户端最近一次备份状态",
            "Read each client's last backup run",
            on=("backup_clients",),
            run=backups_younger_than(MAX_AGE_HOURS),
        ),
        diagnose(
            "repository_disk",
            "检查备份主机磁盘空间",
            "Check disk space on the backup host",
            on=("backup",),
            run=disk_below(90),
        ),
        act(
            "back_up_now",
            "对过期的主机立即备份",
            "Back up the stale hosts now",
            on=("backup_clients",),
            check=backups_younger_than(MAX_AGE_HOURS),
            playbook="playbooks/backup.yml",
            timeout=1800,
            kb="KB-restic-repository-locked",
        ),
        verify(
            "backups_fresh",
            f"各客户端备份均在 {MAX_AGE_HOURS} 小时内成功",
            f"Every client has a successful backup younger than {MAX_AGE_HOURS} h",
            on=("backup_clients",),
            run=backups_younger_than(MAX_AGE_HOURS),
        ),
        escalate(
            "backup_owner",
            "升级至备份负责人",
            "Escalate to the backup owner",
            to_zh="备份负责人（检查备份仓库与 restic 日志）",
            to_en="the backup owner (repository and restic logs)",
        ),
    ),
)

if __name__ == "__main__":
    from portalops.cli import main

    sys.exit(main(["runbook", "run", RUNBOOK.id, *sys.argv[1:]]))
