"""A logical restore (the dump) that can always go back, on db1.

Killed mid-load (SIGTERM, then SIGKILL), the live site databases are exactly as before: the load goes
into new databases, and only a verified load is swapped in. A full logical restore swaps the dump's
tables in, keeps the live ones as evidence databases, and `--discard-evidence ID` removes those.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from typing import Any

import pytest

from portalops.faultdrill import DUMP_MANIFEST, kill_logical_restore
from portalops.lab.config import LabConfig
from tests.integration.helpers import on
from tests.integration.test_site import SITES, get
from tests.integration.test_site_runbooks import acted, drill

# Mostly waiting on the hosts, its CPUs idle: it runs right after the converge (conftest.lab_order).
pytestmark = pytest.mark.waits

BACKUP = "/usr/local/sbin/portalops-backup"
STATUS = "/var/lib/portalops/backup/restore-database.json"
SITE = SITES[0]
DB = SITE["db_name"]
LATER = "restore5-written-after-the-dump"
MARK = "__portalops_"


def sql(query: str) -> list[list[str]]:
    out = on("db1", f'mariadb --default-character-set=utf8mb4 --batch --skip-column-names -e "{query}"').stdout
    return [line.split("\t") for line in out.splitlines() if line]


def ours() -> set[str]:
    """The new and evidence databases of logical restores."""
    return {row[0] for row in sql("SHOW DATABASES") if MARK in row[0]}


def contents(database: str) -> dict[str, Any]:
    """Every table's row count (not the options table: page views write transients into it) and the newest titles."""
    tables = [
        row[0]
        for row in sql(
            f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{database}' "
            "AND table_type = 'BASE TABLE' ORDER BY table_name"
        )
    ]
    counts = " UNION ALL ".join(f"SELECT '{t}', COUNT(*) FROM \\`{database}\\`.\\`{t}\\`" for t in tables)
    rows = {name: int(count) for name, count in sql(counts) if not name.endswith("_options")}
    titles = sql(
        f"SELECT post_title FROM \\`{database}\\`.wp_posts WHERE post_type = 'post' AND post_status = 'publish' "
        "ORDER BY post_date DESC, ID DESC LIMIT 5"
    )
    return {"rows": rows, "titles": [t[0] for t in titles]}


def write_later_post() -> None:
    """A post published after the dump: what a restore would lose, and a killed restore must not."""
    sql(
        f"INSERT INTO \\`{DB}\\`.wp_posts (post_author, post_date, post_date_gmt, post_content, post_title, "
        "post_excerpt, post_status, post_name, to_ping, pinged, post_modified, post_modified_gmt, "
        "post_content_filtered, guid, post_type) VALUES (1, NOW() + INTERVAL 1 DAY, UTC_TIMESTAMP() + INTERVAL 1 DAY, "
        f"'<p>{LATER}</p>', '{LATER}', '', 'publish', '{LATER}', '', '', NOW(), UTC_TIMESTAMP(), '', '', 'post')"
    )


def start_and_kill(signal: str) -> str:
    """restore-database of the fixture's dump started on db1 and sent ``signal`` as soon as its load has begun
    (or, with a wrapper that drops first, a site database is gone): the drill's own script."""
    return on("db1", kill_logical_restore(signal), check=False).stdout


ASIDE = "ls -d /var/lib/mysql.before-restore-* /var/lib/mysql.failed-restore-* 2>/dev/null || true"


@pytest.fixture
def dumped(converged: LabConfig) -> Iterator[dict[str, Any]]:
    """A dump of db1 taken now, then a post written after it; yields the dump's manifest. Afterwards the
    post is gone, and so is what the restores kept (databases, data directories set aside)."""
    before = ours()
    assert not before, f"databases of an earlier restore are left on db1: {before}"
    aside = set(on("db1", ASIDE).stdout.split())
    backup = on("db1", f"{BACKUP} run --job db-dump", check=False)
    assert backup.returncode == 0, backup.stdout[-3000:] + backup.stderr[-2000:]
    manifest: dict[str, Any] = json.loads(on("db1", f"cat {DUMP_MANIFEST}").stdout)
    write_later_post()
    yield manifest
    if on("db1", f"{BACKUP} check-database", check=False).returncode != 0:  # a wrapper that dropped first
        on("db1", f"{BACKUP} restore-database --snapshot {manifest['snapshot_id'][:8]} --yes", check=False)
    sql(f"DELETE FROM \\`{DB}\\`.wp_posts WHERE post_name = '{LATER}'")
    for database in ours() - before:
        sql(f"DROP DATABASE \\`{database}\\`")
    for path in set(on("db1", ASIDE).stdout.split()) - aside:
        on("db1", f"rm -rf {path}")


def assert_untouched(before: dict[str, Any], converged: LabConfig) -> None:
    assert contents(DB) == before
    assert LATER in before["titles"]
    sound = on("db1", f"{BACKUP} check-database", check=False)
    assert sound.returncode == 0, sound.stdout[-3000:]
    status, _, body = get(converged, SITE["domains"][0])
    assert status == 200 and "Error establishing a database connection" not in body


@pytest.mark.parametrize("signal", ["TERM", "KILL"])
def test_a_logical_restore_killed_mid_load_leaves_the_live_databases_as_they_were(
    dumped: dict[str, Any], converged: LabConfig, signal: str
) -> None:
    before = contents(DB)
    output = start_and_kill(signal)
    assert "never began loading" not in output, output[-3000:]
    assert_untouched(before, converged)
    status = json.loads(on("db1", f"cat {STATUS}").stdout)
    assert status["ok"] is False and status["restore"]["live_changed"] is False, status
    assert status["restore"]["phase"] == "loading", status
    if signal == "TERM":
        # Its clean-up ran: the new databases are dropped, and it said so.
        assert "mid-load: exit 143" in output and "the live databases were not touched" in output, output[-3000:]
        assert ours() == set() and status["restore"]["leftovers"] == [], status
        assert status["errors"] == ["stopped during loading: stopped by signal 15"], status
    else:
        # No clean-up: the new databases stay, named in the status written as the load began, until discarded.
        left = set(status["restore"]["leftovers"])
        assert ours() <= left and all(MARK + "restore_" in d for d in left), (ours(), status)
        discard = on("db1", f"{BACKUP} restore-database --discard-evidence {status['restore']['id']}", check=False)
        assert discard.returncode in (0, 1) and ours() == set(), discard.stdout
    assert contents(DB) == before


def test_a_logical_restore_swaps_the_dump_in_and_keeps_the_old_tables_until_discarded(
    dumped: dict[str, Any], converged: LabConfig
) -> None:
    before = contents(DB)
    want = dumped["databases"][DB]
    restore = on("db1", f"{BACKUP} restore-database --snapshot {dumped['snapshot_id'][:8]} --yes", check=False)
    assert restore.returncode == 0, restore.stdout[-3000:] + restore.stderr[-1000:]
    outcome = json.loads(restore.stdout.splitlines()[-1])
    assert outcome["path"] == "logical" and outcome["problems"] == [] and outcome["live_changed"] is True, outcome
    rid = outcome["id"]
    evidence = outcome["evidence"]["databases"]
    assert set(evidence) == set(dumped["databases"]) and evidence[DB] == f"{DB}{MARK}before_{rid}", outcome
    assert ours() == set(evidence.values())
    # The live name holds the dump (the later post is gone), the evidence what was live (it has the post).
    after = contents(DB)
    assert after["rows"]["wp_posts"] == want["tables"]["wp_posts"]["rows"] and LATER not in after["titles"]
    assert after["titles"] == want["newest_titles"][:5]
    assert contents(evidence[DB]) == before
    # The site users' grants name the live database: the swapped-in tables serve the site.
    assert on("db1", f"{BACKUP} check-database", check=False).returncode == 0
    status, _, body = get(converged, SITE["domains"][0])
    assert status == 200
    assert all(t in html.unescape(body) for t in want["newest_titles"][:3]), body[:1500]

    for bad in ("all", f"{rid}x", rid.replace("T", " "), "'*'"):
        refused = on("db1", f"{BACKUP} restore-database --discard-evidence {bad}", check=False)
        assert refused.returncode == 2, (bad, refused.stdout, refused.stderr)
    assert ours() == set(evidence.values())
    discard = on("db1", f"{BACKUP} restore-database --discard-evidence {rid}", check=False)
    assert discard.returncode == 0, discard.stdout + discard.stderr
    assert ours() == set()
    assert on("db1", f"{BACKUP} restore-database --discard-evidence {rid}", check=False).returncode == 1


def test_the_killed_logical_restore_drill_finds_nothing_to_restore(converged: LabConfig) -> None:
    """`portalops drill run l1_database_lost --fault logical_restore_killed`: a dump, a post written since, a
    logical restore killed mid-load; the drill checks the post is still there and no restore database is left."""
    assert not ours()
    found = drill("l1_database_lost", "--fault", "logical_restore_killed")
    assert found["outcome"] == "recovered"
    results = acted(found["incident"])
    assert results["restore_database"] == "not_needed" and results["stop_writes"] == "not_needed", results
    assert not ours()
