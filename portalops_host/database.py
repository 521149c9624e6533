"""MariaDB through its client: manifests of databases (row counts, CHECKSUM TABLE, newest titles), the
server's state, and the database jobs of the configuration."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from portalops_host.errors import JobError

DUMP_DONE = b"-- Dump completed"


MANIFEST_MARK = "-- portalops-manifest: "


def mariadb(sql: str, database: str | None = None, socket: str | None = None) -> list[list[str]]:
    argv = ["mariadb", "--batch", "--skip-column-names", "--raw"]
    if socket:
        argv.append(f"--socket={socket}")
    if database:
        argv.append(f"--database={database}")
    # On stdin, not -e: a statement may carry a password, which must not show in ps.
    result = subprocess.run(argv, input=sql, capture_output=True, text=True, timeout=3600, check=False)
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        raise JobError(f"mariadb query failed: {lines[-1] if lines else 'no message'}")
    return [line.split("\t") for line in result.stdout.splitlines() if line]


def quote_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def sql_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


# Published content whose mass loss check-database calls "lost" (manifest field 'published', per database).
PUBLISHED_TYPES = ("post", "page")


def database_manifest(
    databases: list[str],
    newest: int = 10,
    socket: str | None = None,
    checksums: bool = True,
    binlog: bool = False,
) -> dict[str, Any]:
    """Per table: row count and CHECKSUM TABLE; per WordPress database: the newest published titles.

    ``checksums=False`` skips CHECKSUM TABLE (it reads every row): a quick health look, not a verification.
    ``binlog=True`` (a backup's manifests): 'binlog' holds the server's binary log position as the manifest
    began and as it ended (None without one): unmoved between a backup's two, nothing was written while it ran.
    """
    started = binlog_position(socket) if binlog else None
    found: dict[str, Any] = {}
    for database in databases:
        tables = [
            row[0]
            for row in mariadb(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = "  # noqa: S608 - quoted
                f"{sql_string(database)} AND table_type = 'BASE TABLE' ORDER BY table_name",
                socket=socket,
            )
        ]
        if not tables:
            exists = mariadb(f"SHOW DATABASES LIKE {sql_string(database)}", socket=socket)
            if not exists:
                raise JobError(f"database {database} does not exist")
        entry: dict[str, Any] = {"tables": {}}
        if tables:
            counts = " UNION ALL ".join(
                f"SELECT {sql_string(t)}, COUNT(*) FROM {quote_ident(database)}.{quote_ident(t)}"  # noqa: S608 - quoted
                for t in tables
            )
            rows = {name: int(count) for name, count in mariadb(counts, socket=socket)}
            listed = ", ".join(f"{quote_ident(database)}.{quote_ident(t)}" for t in tables)
            sums = (
                {name.split(".", 1)[1]: value for name, value in mariadb(f"CHECKSUM TABLE {listed}", socket=socket)}
                if checksums
                else {}
            )
            entry["tables"] = {t: {"rows": rows[t], "checksum": sums.get(t)} for t in tables}
        # The site's own posts table (wp_posts), not a multisite wp_2_posts or a plugin's *_posts.
        candidates = [t for t in tables if t.endswith("_posts")]
        posts = min(candidates, key=len) if candidates else None
        if posts:
            # Published posts and pages by type: check-database tells a mass deletion from editing by them.
            counted = mariadb(
                f"SELECT post_type, COUNT(*) FROM {quote_ident(database)}.{quote_ident(posts)} "  # noqa: S608 - quoted
                f"WHERE post_status = 'publish' AND post_type IN ({', '.join(map(sql_string, PUBLISHED_TYPES))}) "
                "GROUP BY post_type",
                socket=socket,
            )
            entry["published"] = {kind: 0 for kind in PUBLISHED_TYPES} | {k: int(n) for k, n in counted}
        if posts and newest:
            entry["newest_titles"] = [
                row[0] if row else ""
                for row in mariadb(
                    f"SELECT post_title FROM {quote_ident(database)}.{quote_ident(posts)} "  # noqa: S608 - quoted
                    "WHERE post_type = 'post' "
                    f"AND post_status = 'publish' ORDER BY post_date DESC, ID DESC LIMIT {int(newest)}",
                    socket=socket,
                )
            ]
        found[database] = entry
    manifest = {"kind": "mariadb", "databases": found}
    return manifest | {"binlog": [started, binlog_position(socket)]} if binlog else manifest


def binlog_position(socket: str | None = None) -> str | None:
    """'FILE POSITION' of the binary log (every commit moves it), None when the server keeps none."""
    rows = mariadb("SHOW MASTER STATUS", socket=socket)
    return f"{rows[0][0]} {rows[0][1]}" if rows and len(rows[0]) >= 2 else None


def compare_database(
    expected: dict[str, Any], actual: dict[str, Any], rename: dict[str, str] | None = None
) -> list[str]:
    """What differs between a manifest and a restored database ('' list: identical)."""
    problems = []
    for database, want in expected["databases"].items():
        have = actual["databases"].get((rename or {}).get(database, database))
        if have is None:
            problems.append(f"{database}: missing")
            continue
        for table, spec in want["tables"].items():
            got = have["tables"].get(table)
            if got is None:
                problems.append(f"{database}.{table}: missing")
            elif got["rows"] != spec["rows"]:
                problems.append(f"{database}.{table}: {got['rows']} rows, manifest {spec['rows']}")
            elif spec.get("checksum") is not None and got.get("checksum") != spec["checksum"]:
                problems.append(f"{database}.{table}: checksum {got.get('checksum')}, manifest {spec['checksum']}")
        extra = set(have["tables"]) - set(want["tables"])
        if extra:
            problems.append(f"{database}: tables not in the manifest: {', '.join(sorted(extra))}")
    return problems


def stable_database_manifest(databases: list[str], newest: int, before: dict[str, Any]) -> dict[str, Any]:
    """The manifest taken after the backup; 'consistent' when nothing changed during it: the same tables
    before and after, and the binary log where it was (a table written and written back, as WordPress does
    with a transient, looks the same before and after but was not at the backup's moment)."""
    after = database_manifest(databases, newest, binlog=True)
    if after["databases"] == before["databases"] and not binlog_moved(before, after):
        return {**before, "consistent": True}
    # Writes during the backup: keep both; a restore is checked against them (health.manifest_problems).
    return {**before, "consistent": False, "after": after}


def binlog_moved(before: dict[str, Any], after: dict[str, Any]) -> bool | None:
    """Whether anything was committed from the start of ``before`` to the end of ``after``; None when a
    manifest has no binary log position (no binary log, or a manifest older than this field)."""
    start = (before.get("binlog") or [None])[0]
    end = (after.get("binlog") or [None, None])[-1]
    return None if start is None or end is None else start != end


# The physical backup job restores by copy-and-start (fast); the dump is the fallback.
PHYSICAL, LOGICAL = "mariadb-backup", "mariadb-dump"


RESTORE_DIR = "/var/lib/portalops/restore"


def database_jobs(config: dict[str, Any]) -> list[dict[str, Any]]:
    return [j for j in config.get("jobs", []) if j["type"] in (PHYSICAL, LOGICAL)]


def live_manifest(databases: list[str], newest: int, checksums: bool = True) -> dict[str, Any]:
    """database_manifest, one database at a time: an unreadable database is an error, not an exception."""
    found: dict[str, Any] = {"kind": "mariadb", "databases": {}, "errors": []}
    for database in databases:
        try:
            found["databases"].update(database_manifest([database], newest, checksums=checksums)["databases"])
        except (JobError, subprocess.TimeoutExpired, ValueError) as exc:
            found["errors"].append(f"{database}: unreadable: {exc}")
    return found


def manifest_from_dump(tail: bytes) -> dict[str, Any]:
    """The manifest line a mariadb-dump snapshot ends with (see job_mariadb_dump)."""
    marker = tail.rfind(MANIFEST_MARK.encode())
    if marker < 0:
        raise JobError("the dump carries no manifest line")
    found: dict[str, Any] = json.loads(tail[marker + len(MANIFEST_MARK) :].decode().splitlines()[0])
    return found


def systemctl(*args: str) -> None:
    result = subprocess.run(["systemctl", *args], capture_output=True, text=True, check=False, timeout=900)
    if result.returncode != 0:
        raise JobError(f"systemctl {' '.join(args)} failed: {result.stderr.strip() or result.stdout.strip()}")


def server_answers() -> bool:
    try:
        mariadb("SELECT 1")
    except (JobError, subprocess.TimeoutExpired):
        return False
    return True


def newest_titles_count(manifest: dict[str, Any]) -> int:
    first: dict[str, Any] = next(iter(manifest["databases"].values()), {})
    return len(first.get("newest_titles", [])) or 10


def manifest_size(manifest: dict[str, Any]) -> str:
    tables = sum(len(d["tables"]) for d in manifest["databases"].values())
    rows = sum(t["rows"] for d in manifest["databases"].values() for t in d["tables"].values())
    return f"{len(manifest['databases'])} databases, {tables} tables, {rows} rows"
