"""Database drill: a WordPress table dropped on db1, `l1_database_lost` run as a responder would.

Takes its own fresh backup of db1 first (so it depends on no other module's order), then checks the
table is back with the manifest's rows, the portal serves the newest articles again, writes resumed,
and the incident journal carries the data-loss window (RPO). A healthy database is never restored.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from typing import Any

import pytest

from portalops.lab.config import LabConfig
from portalops.runbook.journal import parse_stamp
from tests.integration.helpers import incident_journal, on, portalops, runbook_said
from tests.integration.test_site import SITES, get

# Mostly waiting on the hosts, its CPUs idle: it runs right after the converge (conftest.lab_order).
pytestmark = pytest.mark.waits

SITE = SITES[0]
TABLE = f"{SITE['db_name']}.wp_posts"
BACKUP = "/usr/local/sbin/portalops-backup"
MANIFEST = "/var/lib/portalops/backup/manifests/db-physical.json"
ASIDE = "ls -d /var/lib/mysql.before-restore-* /var/lib/mysql.failed-restore-* 2>/dev/null || true"


def rows(table: str) -> int:
    return int(on("db1", f"mariadb --batch --skip-column-names -e 'SELECT COUNT(*) FROM {table}'").stdout)


def kept_aside() -> set[str]:
    """Data directories and (a logical restore's) evidence databases a restore kept."""
    databases = on("db1", "mariadb --batch --skip-column-names -e 'SHOW DATABASES'").stdout.split()
    return set(on("db1", ASIDE).stdout.split()) | {d for d in databases if "__portalops_" in d}


def step_results(events: list[dict[str, Any]]) -> dict[str, str]:
    return {str(e["step"]): str(e["result"]) for e in events if e["event"] == "step_end"}


@pytest.fixture
def fresh_backup(converged: LabConfig) -> Iterator[dict[str, Any]]:
    """A backup of db1 taken now; yields its physical manifest. Afterwards: writes on, the lab as it was."""
    before = kept_aside()
    backup = on("db1", f"{BACKUP} run", check=False)
    assert backup.returncode == 0, backup.stdout[-3000:] + backup.stderr[-2000:]
    manifest: dict[str, Any] = json.loads(on("db1", f"cat {MANIFEST}").stdout)
    yield manifest
    if on("db1", f"mariadb -e 'SELECT 1 FROM {TABLE} LIMIT 1'", check=False).returncode != 0:
        on("db1", f"{BACKUP} restore-database --yes", check=False)  # the runbook did not: undo the fault
    on("cms1", "systemctl start php8.2-fpm", check=False)
    for path in kept_aside() - before:  # the evidence this drill made; the tool itself never deletes it
        on("db1", f"mariadb -e 'DROP DATABASE `{path}`'" if "__portalops_" in path else f"rm -rf {path}")


def test_a_healthy_database_is_never_restored(fresh_backup: dict[str, Any]) -> None:
    before = kept_aside()
    result = portalops("runbook", "run", "l1_database_lost", "--yes", timeout=1200)
    assert result.returncode == 0, runbook_said(result)
    assert kept_aside() == before, "the data directory was moved aside on a healthy database"
    results = step_results(incident_journal(result))
    assert results["stop_writes"] == "not_needed" and results["restore_database"] == "not_needed", results
    assert on("cms1", "systemctl is-active php8.2-fpm").stdout.strip() == "active"


def test_the_portal_runbook_never_starts_writes_into_a_lost_database(fresh_backup: dict[str, Any]) -> None:
    """Writes stopped over a lost database (as l1_database_lost's stop_writes leaves them while a person decides
    on the restore): l1_portal_unreachable, which an alert may run unattended, sees php-fpm stopped and leaves it
    stopped, saying why, rather than open a WordPress without its posts table (its installer) to anyone."""
    on("db1", f"mariadb -e 'DROP TABLE {TABLE}'")
    on("cms1", "systemctl stop php8.2-fpm")
    result = portalops("runbook", "run", "l1_portal_unreachable", "--yes", timeout=900)
    assert result.returncode == 1, runbook_said(result)  # not recovered: escalated
    assert on("cms1", "systemctl is-active php8.2-fpm", check=False).stdout.strip() == "inactive"
    events = incident_journal(result)
    results = step_results(events)
    assert results["start_php_fpm"] == "failed" and results["portal_back"] == "failed", results
    [said] = [e for e in events if e["event"] == "step_end" and e["step"] == "start_php_fpm"]
    assert any("php8.2-fpm stays stopped: the database tier does not say sound" in f for f in said["findings"]), said


def test_a_dropped_posts_table_is_restored_verified_and_served(
    fresh_backup: dict[str, Any], converged: LabConfig
) -> None:
    want = fresh_backup["databases"][SITE["db_name"]]
    domain = SITE["domains"][0]
    on("db1", f"mariadb -e 'DROP TABLE {TABLE}'")
    get(converged, domain)  # a visitor meanwhile: the edge may now hold a page rendered without the posts

    result = portalops("runbook", "run", "l1_database_lost", "--yes", timeout=1800)
    assert result.returncode == 0, runbook_said(result)

    # The table exactly as backed up (other tables may already hold the site's new work: page views
    # write transients into wp_options once writes resume, so they are compared by the restore itself).
    assert rows(TABLE) == want["tables"]["wp_posts"]["rows"]
    checksum = on("db1", f"mariadb --batch --skip-column-names -e 'CHECKSUM TABLE {TABLE}'").stdout.split()[-1]
    assert checksum == want["tables"]["wp_posts"]["checksum"]
    sound = on("db1", f"{BACKUP} check-database", check=False)
    assert sound.returncode == 0, sound.stdout[-3000:]
    assert on("cms1", "systemctl is-active php8.2-fpm").stdout.strip() == "active"
    status, _, body = get(converged, domain)
    assert status == 200
    served = html.unescape(body)
    assert all(title in served for title in want["newest_titles"][:3]), (want["newest_titles"][:3], body[:1500])

    events = incident_journal(result)
    results = step_results(events)
    assert results["stop_writes"] == "done" and results["restore_database"] == "done", results
    assert results["database_sound"] == "passed" and results["resume_writes"] == "done", results
    restore = next(
        e for e in events if e["event"] == "command" and e["step"] == "restore_database" and e["role"] == "run"
    )
    assert "RPO (data-loss window):" in restore["stdout"], restore["stdout"]
    outcome = json.loads(restore["stdout"].splitlines()[-1])
    assert outcome["path"] == "physical" and outcome["problems"] == [], outcome
    assert outcome["rpo_s"] > 0 and outcome["datadir_before"].startswith("/var/lib/mysql.before-restore-")
    started, ended = (parse_stamp(e["ts"]) for e in events if e["event"] in ("start", "end"))
    print(  # the measured MTTR, for the drill report (`pytest -rP`)
        f"l1_database_lost MTTR {(ended - started).total_seconds():.1f} s "
        f"(restore {restore['duration_s']:.1f} s, RPO {outcome['rpo_s']:.0f} s)"
    )


def test_the_dump_restores_too_when_chosen_or_when_the_physical_path_fails(fresh_backup: dict[str, Any]) -> None:
    """The fallback path on its own: the newest dump loaded into the running server, verified."""
    dump = json.loads(on("db1", "cat /var/lib/portalops/backup/manifests/db-dump.json").stdout)
    table = f"{SITES[-1]['db_name']}.wp_posts"
    want = dump["databases"][SITES[-1]["db_name"]]["tables"]["wp_posts"]["rows"]
    on("db1", f"mariadb -e 'DROP TABLE {table}'")
    restore = on("db1", f"{BACKUP} restore-database --snapshot {dump['snapshot_id'][:8]} --yes", check=False)
    assert restore.returncode == 0, restore.stdout[-3000:] + restore.stderr[-1000:]
    outcome = json.loads(restore.stdout.splitlines()[-1])
    assert outcome["path"] == "logical" and outcome["problems"] == [], outcome
    assert rows(table) == want
    assert on("db1", f"{BACKUP} check-database", check=False).returncode == 0


PUBLISHED = "post_type = 'post' AND post_status = 'publish'"
LATER = "pitr-later-"


def published(database: str) -> list[str]:
    """Every published post title of a site database, sorted."""
    query = f"SELECT post_title FROM {database}.wp_posts WHERE {PUBLISHED} ORDER BY post_title"
    return sorted(
        on(
            "db1", f'mariadb --default-character-set=utf8mb4 --batch --skip-column-names -e "{query}"'
        ).stdout.splitlines()
    )


def add_post(database: str, slug: str, title: str) -> None:
    """A published post written straight into the database (what an editor's 'Publish' stores)."""
    insert = (
        f"INSERT INTO {database}.wp_posts (post_author, post_date, post_date_gmt, post_content, post_title, "
        "post_excerpt, post_status, post_name, to_ping, pinged, post_modified, post_modified_gmt, "
        "post_content_filtered, guid, post_type) VALUES (1, NOW(), UTC_TIMESTAMP(), "
        f"'<p>{title}</p>', '{title}', '', 'publish', '{slug}', '', '', NOW(), UTC_TIMESTAMP(), '', '', 'post')"
    )
    on("db1", f'mariadb -e "{insert}"')


def test_mass_deleted_posts_come_back_with_the_posts_written_after_the_backup(
    fresh_backup: dict[str, Any], converged: LabConfig
) -> None:
    """Point-in-time recovery: every published post deleted after new ones were written since the backup;
    the runbook sees the mass deletion, restores the backup and replays the binary log up to just before
    the DELETE, so the backed-up and the later posts are both back and the RPO is seconds."""
    database, domain = SITE["db_name"], SITE["domains"][0]
    backed_up = published(database)
    assert backed_up, f"no published posts in {database}"
    later = [f"PITR later post {n}" for n in range(3)]
    try:
        for n, title in enumerate(later):
            add_post(database, f"{LATER}{n}", title)
            status, _, body = get(converged, domain, f"/?s={title.replace(' ', '+')}")  # searches skip the edge cache
            assert status == 200 and title in html.unescape(body), (status, body[:1500])
        wanted = published(database)
        assert wanted == sorted(backed_up + later)
        on("db1", f"mariadb -e \"DELETE FROM {database}.wp_posts WHERE post_type = 'post'\"")
        assert published(database) == []

        result = portalops("runbook", "run", "l1_database_lost", "--yes", timeout=1800)
        assert result.returncode == 0, runbook_said(result)
        assert published(database) == wanted, "the backed-up and the later posts are not all back"
        status, _, body = get(converged, domain)
        assert status == 200 and all(title in html.unescape(body) for title in later), body[:1500]

        events = incident_journal(result)
        results = step_results(events)
        assert results["db_health"] == "problem" and results["restore_database"] == "done", results
        restore = next(
            e for e in events if e["event"] == "command" and e["step"] == "restore_database" and e["role"] == "run"
        )
        outcome = json.loads(restore["stdout"].splitlines()[-1])
        assert outcome["path"] == "physical" and outcome["problems"] == [], outcome
        assert outcome["replay"]["stopped_before"], outcome  # found in the binary log, not given
        assert 0 <= outcome["rpo_s"] < 900, outcome  # seconds: the accident until the restore, not the backup's age
        assert "RPO (data-loss window):" in restore["stdout"] and "binary log" in restore["stdout"], restore["stdout"]
        print(f"l1_database_lost point-in-time recovery: RPO {outcome['rpo_s']:.0f} s, {outcome['replay']}")
    finally:
        if len(published(database)) < len(backed_up):  # the runbook did not bring them back: the backup does
            on("db1", f"{BACKUP} restore-database --yes", check=False)
        on("db1", f"mariadb -e \"DELETE FROM {database}.wp_posts WHERE post_name LIKE '{LATER}%'\"")
