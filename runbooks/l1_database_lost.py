#!/usr/bin/env python3
"""L1 database lost or corrupted: stop writes, restore the newest verified backup, verify, resume, escalate.

Lost or corrupted means a database or a WordPress core table (posts, postmeta, options, users, usermeta,
terms, termmeta, term_taxonomy, term_relationships, comments, commentmeta, links after the site's table
prefix) of the newest backup's manifest is missing or unreadable, or posts, options or users emptied, or
published posts or pages, users or options gone in bulk since the backup (more than the
restic_backup_loss_thresholds: by default 20 % of the published posts), or the last restore did not
verify (`portalops-backup check-database`); rows written or deleted since the backup in smaller numbers
and plugin tables dropped are normal work, listed as changes, so a healthy database is never restored.
A database that cannot be read right now (the server starting or shutting down, refusing connections or
out of them, a lock wait, a timeout) is unknown, not lost: nothing is stopped or restored while it is, the
check is repeated for a bounded time and, still unknown, the DBA is called. The restore takes the physical
backup first (copy-and-start), the dump if that fails, keeps the replaced data directory as
/var/lib/mysql.before-restore-<UTC> (evidence, never deleted), verifies against the snapshot's manifest,
then replays the binary log from the backup's position up to just before the accident it finds there
(point-in-time recovery: the work since the backup survives), and prints the data-loss window (RPO: the
time since the accident, or since the backup when the binary log could not be used, which it says) into
the journal.

Run: portalops runbook run l1_database_lost [--dry-run] [--yes], or this file directly.
"""

# ruff: noqa: RUF001 - Chinese text keeps its own full-width punctuation on purpose

from __future__ import annotations

import sys

from portalops.runbook import Alert, Level, Runbook, act, diagnose, escalate, verify
from portalops.runbook.checks import (
    BACKUP_TOOL,
    CHECK_DATABASE,
    DATABASE_SOUND,
    FPM_ACTIVE,
    MARIADB_UP,
    PHP_FPM,
    PROBE,
    mariadb_restart,
    recent_logs,
    writes_into_a_sound_database,
)

# CHECK_DATABASE: healthy (exit 0), lost/corrupted (exit 1) or unknown (exit 75: the server does not answer
# right now, e.g. still in crash recovery, too many connections, a lock wait), which never stops writes nor
# restores.
# The web tier's proxy cache (nginx_portal_cache_dir).
EDGE_CACHE = "/var/cache/nginx/portal"

# Writes are the sites' php-fpm pools (one service on the CMS tier). Whether to stop or start them is
# the database tier's answer, so these steps run on the controller through Ansible: writes stop only
# when the database is really lost (never on a false alarm, never while it cannot be read), and start again
# only into a sound one (a WordPress without its tables offers its installer to anyone): DATABASE_SOUND.
# A server that is still starting (a long InnoDB crash recovery) is waited for, never restarted.
MARIADB_START_WAIT = 240


def fpm(action: str) -> str:
    # command, not systemd_service: one line in the journal, where the module prints the unit's whole status.
    return f"ansible cms -i {{{{ inventory }}}} -m ansible.builtin.command -a 'systemctl {action} {PHP_FPM}' -o"


# Then the edge forgets the pages rendered from the broken database (a 200 "nothing found" is cached
# like any page); only here, so a failed restore leaves the readers the edge's stale copies.
PURGE_EDGE_CACHE = (
    f"ansible web -i {{{{ inventory }}}} -m ansible.builtin.command -a 'find {EDGE_CACHE} -type f -delete' -o"
)
RESUME_WRITES = writes_into_a_sound_database(f"{fpm('start')} && {PURGE_EDGE_CACHE}", "for the DBA")
EVIDENCE = (
    f"{recent_logs('mariadb')}; ls -ld /var/lib/mysql /var/lib/mysql.*-restore-* 2>&1; "
    "cat /var/lib/portalops/backup/restore-database.json 2>&1"
)

# WordPress's core tables, after the site's table prefix: check-database's CORE_TABLES (a unit test keeps
# the two the same).
CORE_TABLES: tuple[str, ...] = ("posts", "postmeta", "options", "users", "usermeta", "terms", "termmeta")
CORE_TABLES += ("term_taxonomy", "term_relationships", "comments", "commentmeta", "links")
_CORE = "|".join(CORE_TABLES)
# Each site's tables as mysqld_exporter lists them (exporters_mysqld_table_schemas), grouped by database and
# table prefix: a prefix with at least half of the core tables is a WordPress site, and one with fewer than
# all of them has lost one. No history needed: it fires as long as the table is missing, whenever it went.
TABLE_LOST = f"""
count by (instance, schema, prefix) (
  label_replace(
    mysql_info_schema_table_rows{{
      job="mysqld",
      table=~".+_({_CORE})"
    }},
    "prefix", "$1", "table",
    "(.+_)({_CORE})"
  )
) < {len(CORE_TABLES)} >= {len(CORE_TABLES) // 2}
"""

# mysqld_exporter (job mysqld) on the database tier: mysql_up is 0 when the server does not answer it.
ALERTS = (
    Alert(
        name="DatabaseTableLost",
        expr=TABLE_LOST,
        summary_zh="站点数据库缺少 WordPress 核心表（表被删除或丢失）",
        summary_en="A site database lacks a WordPress core table (dropped or lost)",
        duration="30s",
        why="for: 30s, two scrapes: a restore swapping tables in or a site being installed lacks some for "
        "seconds; a server that does not answer lists no tables at all (DatabaseDown's case, "
        "l1_portal_unreachable's). A prefix with fewer than half the core tables is a plugin's, not a site's.",
    ),
)

RUNBOOK = Runbook(
    id="l1_database_lost",
    title_zh="数据库丢失或损坏",
    title_en="Database lost or corrupted",
    level=Level.L1,
    triggers=(
        (
            "站点报数据库错误，或文章、页面整体消失",
            "sites report database errors, or articles and pages are gone",
        ),
        ("MariaDB 报表损坏或无法启动", "MariaDB reports corrupted tables or does not start"),
        (
            "portalops-backup check-database 报告库表丢失、被清空，或已发布内容被大批删除",
            "portalops-backup check-database reports lost or emptied tables, or published content deleted in bulk",
        ),
    ),
    targets=("web", "cms", "db"),
    alerts=ALERTS,
    steps=(
        diagnose(
            "db_mariadb",
            "检查数据库 MariaDB",
            "Check MariaDB on the database tier",
            on=("db",),
            run=MARIADB_UP,
        ),
        diagnose(
            "db_health",
            "对照最新备份清单检查各站点库表",
            "Check each site database against the newest backup's manifest",
            on=("db",),
            run=CHECK_DATABASE,
            timeout=300,
        ),
        act(
            "start_mariadb",
            "先重启 MariaDB（停止的服务不等于数据丢失；先移除已中断的恢复遗留的禁网配置）",
            "Restart MariaDB first (a stopped server is not lost data; a stale restore drop-in removed first)",
            on=("db",),
            check=MARIADB_UP,
            run=mariadb_restart(MARIADB_START_WAIT),
            timeout=MARIADB_START_WAIT + 60,
            kb="KB-mariadb-starting-refuses-connections",
        ),
        act(
            "stop_writes",
            "数据库确已丢失时停止写入（停止 CMS 层 php-fpm；web 层以缓存页面继续服务）",
            "Stop writes when the database is really lost (php-fpm on the CMS tier; the edge serves cached pages)",
            check=DATABASE_SOUND,
            run=fpm("stop"),
            timeout=300,
            wait=180,  # a database that cannot be read right now is waited for before writes stop
        ),
        act(
            "restore_database",
            "从最新且经验证的备份恢复数据库（先物理备份，失败再用逻辑备份），再重放二进制日志至事故语句之前，"
            "并记录数据丢失窗口（RPO）",
            "Restore the newest verified backup (physical first, then the dump), replay the binary log up to just "
            "before the accident, and record the RPO",
            on=("db",),
            check=CHECK_DATABASE,
            run=f"{BACKUP_TOOL} restore-database --yes",
            destructive=True,
            wait=60,  # stop_writes has already waited for a database that could not be read
            # Longer than any limit of the wrapper's own (6 h: restic restore, mariadb-backup --move-back,
            # loading the dump), so those fire first; a SIGTERM still puts the old data directory back.
            timeout=7 * 3600,
        ),
        verify(
            "database_sound",
            "对照备份清单确认各库及 WordPress 核心表完整（最近一次恢复已通过校验）",
            "Every database and WordPress core table of the manifest is back and readable (the last restore verified)",
            on=("db",),
            run=CHECK_DATABASE,
            timeout=300,
        ),
        act(
            "resume_writes",
            "数据库完好后恢复写入（启动 php-fpm），并清除 web 层缓存的错误页面",
            "Resume writes once the database is sound (start php-fpm), then purge the edge cache",
            check=FPM_ACTIVE,
            run=RESUME_WRITES,
            timeout=300,
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
            "dba",
            "升级至数据库管理员并保留现场",
            "Escalate to the DBA, keeping the evidence",
            to_zh=(
                "数据库管理员（替换下的数据目录 /var/lib/mysql.before-restore-* 与二进制日志保留待查；"
                "恢复后请立即重新备份）"
            ),
            to_en=(
                "the DBA (the replaced data directory /var/lib/mysql.before-restore-* and the binary logs are kept; "
                "take a new backup now)"
            ),
            on=("db",),
            run=EVIDENCE,
        ),
    ),
)

if __name__ == "__main__":
    from portalops.cli import main

    sys.exit(main(["runbook", "run", RUNBOOK.id, *sys.argv[1:]]))
