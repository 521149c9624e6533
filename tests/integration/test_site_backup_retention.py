"""Retention on the converged lab: the last good backup survives later backups of a damaged site.

A responder's "back up now" after an unnoticed mass deletion, or a re-run of the nightly, takes
more snapshots the same day; with one snapshot kept per day they pruned the day's earlier, good
one and nothing good was left to restore. Takes its own backups of db1 (depends on no other
module's order) and leaves the site's posts as they were. The second copy on the backup host is
never pruned while a client has dated a snapshot in the future.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from typing import Any

import pytest

from portalops.lab.config import LabConfig
from tests.integration.helpers import on
from tests.integration.test_site import SITES
from tests.integration.test_site_backup import client_restic

DATABASE = SITES[0]["db_name"]
BACKUP = "/usr/local/sbin/portalops-backup"
SAVED = "/root/portalops-test-retention-posts.sql"
ASIDE = "ls -d /var/lib/mysql.before-restore-* /var/lib/mysql.failed-restore-* 2>/dev/null || true"
POSTS = f"SELECT COUNT(*) FROM {DATABASE}.wp_posts WHERE post_type = 'post'"


def sql(statement: str) -> str:
    return on("db1", f"mariadb --batch --skip-column-names -e {shlex.quote(statement)}").stdout.strip()


def backup() -> dict[str, Any]:
    """One `portalops-backup run` on db1; its status (each job's new snapshot id)."""
    result = on("db1", f"{BACKUP} run", check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    status: dict[str, Any] = json.loads(on("db1", "cat /var/lib/portalops/backup/run.json").stdout)
    return status


def snapshot_of(status: dict[str, Any], job: str) -> str:
    """The job's new snapshot (restic 0.14's backup summary gives its short id)."""
    return str(next(j["snapshot_id"] for j in status["jobs"] if j["name"] == job))


def snapshots() -> set[str]:
    """Every snapshot id in db1's repository, short and long."""
    listed = json.loads(on("db1", f"{BACKUP} snapshots").stdout or "[]")
    return {s["id"] for s in listed} | {s["short_id"] for s in listed}


@pytest.fixture
def posts_saved(converged: LabConfig) -> Iterator[int]:
    """The first site's posts, saved on db1 apart from any backup; afterwards they are put back if a
    test left them gone, the restore's evidence directories are removed and a backup of the site as
    it was is taken."""
    aside = set(on("db1", ASIDE).stdout.split())
    on("db1", f"mariadb-dump --no-create-info --where=\"post_type = 'post'\" {DATABASE} wp_posts > {SAVED}")
    count = int(sql(POSTS))
    assert count > 0, "the lab's first site has no posts to lose"
    yield count
    if int(sql(POSTS)) != count:
        sql(f"DELETE FROM {DATABASE}.wp_posts WHERE post_type = 'post'")
        on("db1", f"mariadb {DATABASE} < {SAVED}")
    on("db1", f"rm -f {SAVED}")
    for path in set(on("db1", ASIDE).stdout.split()) - aside:  # this test's restore evidence
        on("db1", f"rm -rf {path}")
    assert int(sql(POSTS)) == count
    # The newest snapshot is the one a drill or a restore takes: not one of the site without its posts.
    backup()


def test_the_good_snapshot_survives_two_more_backups_the_same_day_and_restores(posts_saved: int) -> None:
    good = backup()
    physical, dump = snapshot_of(good, "db-physical"), snapshot_of(good, "db-dump")
    sql(f"DELETE FROM {DATABASE}.wp_posts WHERE post_type = 'post'")
    assert int(sql(POSTS)) == 0
    later = [backup(), backup()]
    assert all(snapshot_of(s, "db-physical") != physical for s in later)
    kept = snapshots()
    assert physical in kept, "the day's good physical backup was pruned by a later backup the same day"
    assert dump in kept, "the day's good dump was pruned by a later backup the same day"
    # Restorable: the good snapshot brings the posts back, verified against its manifest.
    restore = on("db1", f"{BACKUP} restore-database --snapshot {physical[:8]} --yes", check=False)
    assert restore.returncode == 0, restore.stdout[-3000:] + restore.stderr[-2000:]
    assert json.loads(restore.stdout.strip().splitlines()[-1])["snapshot"].startswith(physical)
    assert int(sql(POSTS)) == posts_saved


COPY = "restic --no-cache -r /srv/restic-copy/web1 --password-file /etc/portalops/restic-copy.pass"


def copied() -> list[dict[str, Any]]:
    """web1's second copy on backup1."""
    listed: list[dict[str, Any]] = json.loads(on("backup1", f"{COPY} snapshots --json").stdout or "[]")
    return listed


def test_the_second_copy_is_not_pruned_while_a_client_dates_a_snapshot_in_the_future(converged: LabConfig) -> None:
    # Whoever holds web1's credentials saves a snapshot dated 2099 in its job's group: retention counts
    # from the newest snapshot, so a forget would then treat every real snapshot as old.
    forged = client_restic(
        "web1", 'backup --json --host web1 --tag portalops,job:etc --time "2099-01-01 00:00:00" /etc/hostname'
    )
    made = json.loads(forged.stdout.strip().splitlines()[-1])["snapshot_id"]
    try:
        before = {s["id"] for s in copied()}
        result = on("backup1", f"{BACKUP} copy", check=False)
        assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
        errors = json.loads(on("backup1", "cat /var/lib/portalops/backup/copy.json").stdout)["errors"]
        assert any("web1: 1 snapshots dated in the future" in e and "2099-01-01" in e for e in errors), errors
        after = {s["id"] for s in copied()}
        assert before <= after, "the second copy was pruned with a snapshot dated in the future in it"
    finally:
        client_restic("web1", f"forget {made}", check=False)
        future = [s["id"] for s in copied() if s["time"].startswith("2099")]
        if future:
            on("backup1", f"{COPY} forget {' '.join(future)}")
        again = on("backup1", f"{BACKUP} copy", check=False)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
