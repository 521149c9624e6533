"""Judgements on a database against its manifest: identical, changed by the site's work, or lost (mass loss,
missing or emptied core tables), and whether the server could be read at all."""

from __future__ import annotations

import re
from typing import Any

from portalops_host.database import binlog_moved, compare_database

# check-database: only WordPress core tables (the name after the site's table prefix) count as lost when
# missing or unreadable; a plugin dropping its own table or a purge of spam comments is the site's work.
CORE_TABLES = (
    "posts",
    "postmeta",
    "options",
    "users",
    "usermeta",
    "terms",
    "termmeta",
    "term_taxonomy",
    "term_relationships",
    "comments",
    "commentmeta",
    "links",
)


# ... and these core tables are never empty on a working site: emptied counts as lost.
NEVER_EMPTY = ("posts", "options", "users")


def manifest_problems(manifest: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """Live or restored databases against a manifest ([]: as the backup recorded them).

    A manifest taken while the site wrote ('consistent' false) also holds the state after the backup. A
    table written during the backup had, at the backup's moment, a count neither manifest saw (WordPress
    deletes and sets transients: 134 rows before and after, 132 in the backup): it must be there, and a core
    table not emptied. Only a table that nothing wrote is held to its count: one the same before and after
    while the binary log did not move, or, with no binary log to tell, the same before and after.
    """
    if manifest.get("consistent", True) or "after" not in manifest:
        return compare_database(manifest, actual)
    problems = health_problems(manifest, {**actual, "errors": []})  # the core tables there, none emptied
    written_anywhere = binlog_moved(manifest, manifest["after"]) is True
    for database, want in manifest["databases"].items():
        have = actual["databases"].get(database)
        if have is None:
            continue  # health_problems said so
        after = manifest["after"]["databases"].get(database, {}).get("tables", {})
        core = core_tables(want["tables"])
        for table, spec in want["tables"].items():
            rows = have["tables"].get(table, {}).get("rows")
            if rows is None:
                if table not in core:
                    problems.append(f"{database}.{table}: missing")
            elif not written_anywhere and after.get(table) == spec and rows != spec["rows"]:
                problems.append(f"{database}.{table}: {rows} rows, {spec['rows']} before and after the backup")
    return problems


def table_prefix(tables: list[str] | dict[str, Any]) -> str | None:
    """The site's table prefix (wp_ in the lab): the shortest one before an options, posts or users table
    (a multisite's wp_2_options is longer); None when the database holds no WordPress tables."""
    for suffix in NEVER_EMPTY:
        found = [t[: -len(suffix)] for t in tables if t.endswith(suffix) and len(t) > len(suffix)]
        if found:
            return min(found, key=len)
    return None


def core_tables(tables: list[str] | dict[str, Any]) -> dict[str, str]:
    """The WordPress core tables among ``tables``: table name -> core name (posts, options, ...)."""
    prefix = table_prefix(tables)
    if prefix is None:
        return {}
    return {t: t[len(prefix) :] for t in tables if t.startswith(prefix) and t[len(prefix) :] in CORE_TABLES}


def health_problems(manifest: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """Lost or corrupted, as opposed to changed since the backup: a database of the manifest or a
    WordPress core table of it missing or unreadable (``actual`` lists those under 'errors'), or its
    posts, options or users table emptied. Other tables (plugins') and fewer rows are the site's work
    (changes_since lists them)."""
    problems = list(actual.get("errors", []))
    for database, want in manifest["databases"].items():
        have = actual["databases"].get(database)
        if have is None:
            if not any(p.startswith(f"{database}:") for p in problems):
                problems.append(f"{database}: missing")
            continue
        for table, core in core_tables(want["tables"]).items():
            got = have["tables"].get(table)
            if got is None:
                problems.append(f"{database}.{table}: missing")
            elif core in NEVER_EMPTY and got["rows"] == 0:
                problems.append(f"{database}.{table}: empty, the backup had {want['tables'][table]['rows']} rows")
    return problems


def changes_since(manifest: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """Tables whose row count differs from the manifest, or gone (not a core table's loss, which
    health_problems names): what the site did since (for the record)."""
    changed = []
    for database, want in manifest["databases"].items():
        if database not in actual["databases"]:
            continue
        have = actual["databases"][database].get("tables", {})
        for table, spec in want["tables"].items():
            if table not in have:
                changed.append(f"{database}.{table} gone ({spec['rows']} rows at the backup)")
            elif have[table]["rows"] != spec["rows"]:
                changed.append(f"{database}.{table} {spec['rows']} -> {have[table]['rows']} rows")
    return changed


# Mass loss (check-database, and where the binary log replay stops): more than this percentage of the
# backup's published posts or pages, users or options gone, and at least min_count of them. Configurable
# as 'loss_thresholds' (restic_backup_loss_thresholds); a few deleted posts stay the site's editing.
LOSS_THRESHOLDS = {"published_percent": 20, "users_percent": 20, "options_percent": 50, "min_count": 3}


def loss_thresholds(config: dict[str, Any]) -> dict[str, int]:
    """The configured thresholds over the defaults (an older configuration has none)."""
    found = {**LOSS_THRESHOLDS, **config.get("loss_thresholds", {})}
    return {key: int(found[key]) for key in LOSS_THRESHOLDS}


def is_mass(gone: int, before: int, percent: int, thresholds: dict[str, int]) -> bool:
    """``gone`` of ``before`` items is a mass loss, not editing."""
    return gone >= thresholds["min_count"] and gone * 100 > percent * before


def mass_loss(manifest: dict[str, Any], actual: dict[str, Any], thresholds: dict[str, int]) -> list[str]:
    """Published content, users or options gone in bulk since the backup (net counts: posts written since
    make up for posts deleted). A manifest without published counts (older wrapper) checks users and
    options only."""
    problems = []
    for database, want in manifest["databases"].items():
        have = actual["databases"].get(database)
        if have is None:
            continue
        cores = {core: table for table, core in core_tables(want["tables"]).items()}
        posts = cores.get("posts", "posts")
        for kind, before in sorted(want.get("published", {}).items()):
            now_count = have.get("published", {}).get(kind, 0)
            if is_mass(before - now_count, before, thresholds["published_percent"], thresholds):
                problems.append(
                    f"{database}.{posts}: {before - now_count} of {before} published {kind}s gone since the backup "
                    f"({before} -> {now_count})"
                )
        for core in ("users", "options"):
            table = cores.get(core)
            if table is None or table not in have["tables"]:
                continue  # a missing core table is health_problems' finding
            before, now_count = want["tables"][table]["rows"], have["tables"][table]["rows"]
            if is_mass(before - now_count, before, thresholds[f"{core}_percent"], thresholds):
                problems.append(
                    f"{database}.{table}: {before - now_count} of {before} rows gone since the backup "
                    f"({before} -> {now_count})"
                )
    return problems


# The server not answering, as opposed to data that is not there: refused or gone (2002, 2003, 2006, 2013),
# out of connections (1040, 1203), starting or shutting down (1053, the socket missing), a lock wait or
# deadlock (1205, 1213), a killed connection (1927), a query that timed out.
SERVER_UNAVAILABLE = re.compile(r"\bERROR (2002|2003|2006|2013|1040|1203|1053|1205|1213|1927)\b|timed out")


def unavailable(errors: list[str]) -> list[str]:
    """The errors that say the server could not be read right now, not that something is lost."""
    return [error for error in errors if SERVER_UNAVAILABLE.search(error)]
