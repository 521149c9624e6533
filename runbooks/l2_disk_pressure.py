#!/usr/bin/env python3
"""L2 disk pressure: find the full filesystem and what grew, free space only within the retention rules, verify.

Only what can go without breaking a rule is freed, and only where the filesystem holding it is above the limit:
the apt package cache, the restic cache, backup staging leftovers (never while a backup run holds its lock),
the journal and compressed rotated logs older than the retention (never a log younger than it). Backup
repositories (/srv/restic) and databases are never touched: their growth is escalated.

Run: portalops runbook run l2_disk_pressure [--dry-run] [--yes], or this file directly.
"""

# ruff: noqa: RUF001 - Chinese text keeps its own full-width punctuation on purpose

from __future__ import annotations

import sys

from portalops.runbook import Alert, Level, Runbook, act, diagnose, escalate, verify
from portalops.runbook.checks import filesystems_below

LIMIT = 85  # percent used
# The logrotate role's floor (logrotate_retention_days >= 180); a host whose policies keep longer keeps longer.
RETENTION_DAYS = 180
POLICIES = "/etc/logrotate.d/portalops-*"
BACKUP_LOCK = "/run/lock/portalops-backup.lock"
RESTIC_CACHE = "/var/cache/portalops-restic"
STAGING = "/var/backups/portalops"
HOSTS = ("all",)

# Sets $ret: the longest `rotate N` (daily rotation: N days) of the host's portalops policies, never under 180.
RETENTION = (
    f"ret=$(awk '$1 == \"rotate\" && $2 + 0 > r {{ r = $2 + 0 }} END {{ print r + 0 }}' {POLICIES} 2>/dev/null); "
    f'[ "${{ret:-0}}" -ge {RETENTION_DAYS} ] 2>/dev/null || ret={RETENTION_DAYS}; '
)
OLD_LOGS = "/var/log -xdev -type f -name '*.gz' -mtime +\"$ret\""
OLD_JOURNAL = "/var/log/journal -type f -name '*@*.journal*' -mtime +\"$ret\""


def unless_full(path: str, nothing_left: str, what: str) -> str:
    """A check: passes when the filesystem holding ``path`` is below the limit, or nothing of ``what`` is left."""
    empty = (
        f'if [ -n "$(find {nothing_left} -print -quit 2>/dev/null)" ]; then echo "{what}: some to free"; exit 1; fi; '
        f'echo "{what}: nothing to free"'
    )
    return f"{filesystems_below(LIMIT, path)} || {{ {empty}; }}"


def under_backup_lock(command: str, what: str) -> str:
    """Run ``command`` holding the backup lock, so no portalops-backup run starts or is running meanwhile."""
    return (
        f"flock -n -E 75 {BACKUP_LOCK} {command}; rc=$?; "
        f'if [ $rc -eq 75 ]; then echo "a portalops-backup run holds {BACKUP_LOCK}: {what} left alone"; fi; exit $rc'
    )


def clear(directory: str) -> str:
    return f"find {directory} -mindepth 1 -maxdepth 1 -print -exec rm -rf {{}} +"


# node_exporter (job node) on every host; pseudo and in-memory filesystems left out.
FILESYSTEMS = 'job="node", fstype!~"tmpfs|devtmpfs|ramfs|squashfs|nsfs|fuse.*"'
ALERTS = (
    Alert(
        name="DiskPressure",
        expr=f"""
100 * (1 - node_filesystem_avail_bytes{{{FILESYSTEMS}}}
         / node_filesystem_size_bytes{{{FILESYSTEMS}}})
> {LIMIT}
""",
        summary_zh=f"文件系统使用率超过 {LIMIT}%",
        summary_en=f"A filesystem is more than {LIMIT} % full",
        duration="5m",
        why=f"The runbook's own limit ({LIMIT} %), held for 5 min so a passing staging file does not open an incident.",
    ),
    Alert(
        name="DiskFillingUp",
        expr=f"""
predict_linear(node_filesystem_avail_bytes{{{FILESYSTEMS}}}[6h], 24 * 3600) < 0
and 100 * (1 - node_filesystem_avail_bytes{{{FILESYSTEMS}}}
             / node_filesystem_size_bytes{{{FILESYSTEMS}}}) > 50
""",
        summary_zh="文件系统按近 6 小时的增长趋势将在 24 小时内写满（提前预警）",
        summary_en="A filesystem will be full within 24 h at the last 6 h's growth (early warning)",
        duration="30m",
        level=Level.L3,
        why="An early warning, one level lower (L3): the trend of 6 h held for 30 min, on a filesystem already "
        "half full, so a nightly staging burst does not page.",
    ),
)

RUNBOOK = Runbook(
    id="l2_disk_pressure",
    title_zh="磁盘空间不足",
    title_en="Disk pressure",
    level=Level.L2,
    triggers=(
        (f"任一主机的文件系统使用率达到 {LIMIT}%", f"a filesystem on any host is {LIMIT}% full or more"),
        (
            "写入失败、日志或备份报告 No space left on device",
            "writes, logs or backups fail with 'No space left on device'",
        ),
    ),
    targets=HOSTS,
    alerts=ALERTS,
    steps=(
        diagnose(
            "usage",
            f"找出使用率达到 {LIMIT}% 的文件系统",
            f"Find the filesystems {LIMIT}% full or more",
            on=HOSTS,
            run=filesystems_below(LIMIT),
        ),
        diagnose(
            "what_grew",
            "查看占用空间的内容",
            "See what takes the space",
            on=HOSTS,
            run=(
                "du -xh --max-depth=2 /var 2>/dev/null | sort -rh | head -n 12; "
                "echo '--- files over 100 MB changed in the last 2 days'; "
                "find / -xdev -type f -size +100M -mtime -2 -exec du -h {} + 2>/dev/null | sort -rh | head -n 10; "
                "echo '--- caches, staging, backup repositories'; "
                f"du -sh /var/cache/apt/archives {RESTIC_CACHE} {STAGING} /srv/restic 2>/dev/null; "
                "journalctl --disk-usage; "
                f'{RETENTION}echo "retention: $ret days; compressed logs older: $(find {OLD_LOGS} | wc -l)"; '
                f"flock -n {BACKUP_LOCK} true && echo 'no backup run holds the lock' "
                "|| echo 'a portalops-backup run is in progress'"
            ),
            timeout=300,
        ),
        act(
            "apt_clean",
            "清理 apt 软件包缓存",
            "Clean the apt package cache",
            on=HOSTS,
            check=unless_full("/var/cache/apt/archives", "/var/cache/apt/archives -name '*.deb'", "apt cache"),
            run="apt-get clean && du -sh /var/cache/apt",
        ),
        act(
            "restic_cache",
            "清理 restic 缓存（备份未运行时）",
            "Empty the restic cache (no backup running)",
            on=HOSTS,
            check=unless_full(RESTIC_CACHE, f"{RESTIC_CACHE} -mindepth 1", "restic cache"),
            run=under_backup_lock(clear(RESTIC_CACHE), "the restic cache"),
            timeout=300,
        ),
        act(
            "staging_leftovers",
            "删除备份暂存残留（备份未运行时）",
            "Remove backup staging leftovers (no backup running)",
            on=HOSTS,
            check=unless_full(STAGING, f"{STAGING} -mindepth 1", "backup staging"),
            run=under_backup_lock(clear(STAGING), "staging"),
            destructive=True,  # a leftover may be a prepared backup that never reached the repository
            timeout=300,
        ),
        act(
            "journal_vacuum",
            "清理超过保留期的系统日志（journal）",
            "Vacuum journal entries older than the retention",
            on=HOSTS,
            check=RETENTION + unless_full("/var/log/journal", OLD_JOURNAL, "journal beyond retention"),
            run=RETENTION + 'journalctl --vacuum-time="${ret}d"',
            destructive=True,
            timeout=300,
        ),
        act(
            "old_rotated_logs",
            "删除超过保留期的已压缩轮转日志",
            "Delete compressed rotated logs older than the retention",
            on=HOSTS,
            check=RETENTION + unless_full("/var/log", OLD_LOGS, "compressed logs beyond retention"),
            run=RETENTION + f'echo "retention $ret days; deleting:"; find {OLD_LOGS} -print -delete',
            destructive=True,
            timeout=300,
        ),
        verify(
            "below_limit",
            f"所有文件系统使用率低于 {LIMIT}%",
            f"Every filesystem below {LIMIT}%",
            on=HOSTS,
            run=filesystems_below(LIMIT),
            attempts=2,
            interval=5,
        ),
        escalate(
            "storage_owner",
            "升级至系统管理员（扩容或迁移数据）",
            "Escalate to the system administrator (grow the volume or move data)",
            to_zh="系统管理员：扩容磁盘、迁移数据，或按备份策略调整 restic 保留（forget/prune）",
            to_en="the system administrator: grow the disk, move data, or adjust restic retention (forget/prune)",
            on=HOSTS,
            run="df -hP -l -x tmpfs -x devtmpfs; du -xh --max-depth=3 /var /srv 2>/dev/null | sort -rh | head -n 20",
            timeout=300,
        ),
    ),
)

if __name__ == "__main__":
    from portalops.cli import main

    sys.exit(main(["runbook", "run", RUNBOOK.id, *sys.argv[1:]]))
