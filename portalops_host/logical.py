"""The logical database restore: the dump loaded into new databases, verified, then swapped in by one RENAME
TABLE; the live tables stay as evidence until `portalops-backup restore-database --discard-evidence ID`."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from portalops_host.database import (
    DUMP_DONE,
    MANIFEST_MARK,
    RESTORE_DIR,
    database_jobs,
    live_manifest,
    manifest_from_dump,
    manifest_size,
    mariadb,
    newest_titles_count,
    quote_ident,
    server_answers,
    sql_string,
    systemctl,
)
from portalops_host.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, JobError, Untouched
from portalops_host.health import manifest_problems
from portalops_host.log import Log
from portalops_host.pitr import BINLOG_INDEX
from portalops_host.restic import explain, restic_argv, restic_env, run_restic
from portalops_host.streams import CHUNK, Deadline, stream_timeout

# A logical restore never touches the live databases until the dump has loaded into new ones and they
# verify: the dump's databases are renamed on the stream (restore_line) into "<db>__portalops_restore_<ID>",
# then ONE RENAME TABLE statement (atomic in MariaDB) moves every live table into "<db>__portalops_before_<ID>"
# (the evidence, until restore-database --discard-evidence ID) and every loaded table into the live name.
# Tables, not databases, move: the site users' grants name their own database only.
RESTORE_ID = re.compile(r"\d{8}T\d{6}Z")


MAX_NAME = 64  # MariaDB's longest database name


# mariadb-dump --databases names each database twice: "CREATE DATABASE /*!32312 IF NOT EXISTS*/ `db` ...;" and
# "USE `db`;" (statements on lines of their own; data lines start with INSERT, so never match).
CREATE_LINE = re.compile(rb"^CREATE DATABASE (?:/\*!32312 IF NOT EXISTS\*/ )?`((?:[^`]|``)+)`(.*)$", re.DOTALL)


USE_LINE = re.compile(rb"^USE `((?:[^`]|``)+)`;\s*$")


# Any other statement on a database (ALTER DATABASE, which mariadb-dump writes around routines, DROP, an
# unquoted USE) would reach past the new databases: refused.
DATABASE_LINE = re.compile(rb"^\s*(?:/\*!\d+\s*)?(?:(?:ALTER|CREATE|DROP)\s+(?:DATABASE|SCHEMA)\b|USE\b|\\u)", re.I)


# Room a logical restore keeps free beyond what it writes, and its margin on the loaded size (InnoDB pages
# and indexes of a freshly loaded table can take more than the dump's text).
LOAD_RESERVE = 256 << 20


LOAD_MARGIN_PERCENT = 50


def restore_id(moment: dt.datetime) -> str:
    """The id a restore names its new and evidence databases with (its start, UTC)."""
    return moment.strftime("%Y%m%dT%H%M%SZ")


def side_database(database: str, role: str, rid: str) -> str:
    """``database``'s companion of a restore: role 'restore' (the load) or 'before' (the evidence).
    A name too long for MariaDB keeps its start and a digest of the whole."""
    suffix = f"__portalops_{role}_{rid}"
    if len(database) + len(suffix) <= MAX_NAME:
        return database + suffix
    digest = hashlib.sha256(database.encode()).hexdigest()[:8]
    return f"{database[: MAX_NAME - len(suffix) - len(digest) - 1]}_{digest}{suffix}"


def restore_line(line: bytes, names: dict[str, str]) -> bytes:
    """One line of a mariadb-dump --databases stream, its databases renamed (``names``: dump's -> new).
    CREATE DATABASE loses IF NOT EXISTS (a clash fails the load, nothing is reused); any other database
    statement, or a database the restore does not rename, raises Untouched."""
    if not DATABASE_LINE.match(line):
        return line
    found = CREATE_LINE.match(line) or USE_LINE.match(line)
    name = found.group(1).decode().replace("``", "`") if found else None
    if found is None or name not in names:
        shown = line[:120].decode(errors="replace").strip()
        raise Untouched(f"the dump holds a statement this restore does not carry out: {shown}")
    new = quote_ident(names[name]).encode()
    if line.startswith(b"USE"):
        return b"USE " + new + b";\n"
    return b"CREATE DATABASE " + new + found.group(2)


def swap_statement(tables: dict[str, tuple[list[str], list[str]]], names: dict[str, tuple[str, str]]) -> str:
    """The one RENAME TABLE of a logical restore: per database (``tables``: its live tables, the loaded
    ones; ``names``: its new and evidence database), every live table into the evidence first, then every
    loaded table into the live name. MariaDB runs the renames in order and all or none."""
    moves = []
    for database, (live, _) in sorted(tables.items()):
        evidence = quote_ident(names[database][1])
        moves += [f"{quote_ident(database)}.{quote_ident(t)} TO {evidence}.{quote_ident(t)}" for t in sorted(live)]
    for database, (_, loaded) in sorted(tables.items()):
        new = quote_ident(names[database][0])
        moves += [f"{new}.{quote_ident(t)} TO {quote_ident(database)}.{quote_ident(t)}" for t in sorted(loaded)]
    return f"RENAME TABLE {', '.join(moves)}" if moves else ""


def logical_needs(dump_bytes: int, live_bytes: int) -> dict[str, int]:
    """Bytes a logical restore writes, by what: the dump file; the new databases (the dump's text or the
    live databases' size, whichever is larger, plus a margin); the binary log of the load (about the dump)."""
    loaded = max(dump_bytes, live_bytes)
    return {
        "dump file": dump_bytes,
        "new databases": loaded * (100 + LOAD_MARGIN_PERCENT) // 100,
        "binary log": dump_bytes,
    }


def space_refusal(needs: dict[str, int], where: dict[str, tuple[int, str]], free: dict[int, int]) -> str:
    """Why a logical restore is refused for room ('' when every filesystem holds what it will write plus
    LOAD_RESERVE). ``where``: need -> (device, path); ``free``: device -> free bytes. Needs on one
    filesystem add up."""
    refusals = []
    for device in sorted({device for device, _ in where.values()}):
        mine = [what for what in needs if where[what][0] == device]
        total = sum(needs[what] for what in mine) + LOAD_RESERVE
        if total > free[device]:
            parts = ", ".join(f"{what} {needs[what] >> 20} MiB in {where[what][1]}" for what in mine)
            refusals.append(
                f"{total >> 20} MiB needed ({parts}, {LOAD_RESERVE >> 20} MiB kept free), {free[device] >> 20} MiB free"
            )
    if not refusals:
        return ""
    return "not enough room for a logical restore, nothing changed: " + "; ".join(refusals)


def snapshot_size(config: dict[str, Any], snapshot: dict[str, Any]) -> int:
    """Bytes a snapshot restores to (a dump snapshot: the dump's size)."""
    stats = json.loads(run_restic(config, "stats", "--json", "--mode", "restore-size", snapshot["id"]).stdout)
    return int(stats["total_size"])


def schema_bytes(databases: list[str]) -> int:
    listed = ", ".join(map(sql_string, databases))
    found = mariadb(
        "SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables "  # noqa: S608 - quoted
        f"WHERE table_schema IN ({listed})"
    )
    return int(found[0][0]) if found else 0


def check_room(config: dict[str, Any], snapshot: dict[str, Any], databases: list[str], datadir: Path) -> str:
    """space_refusal for this host: the dump's size from the repository, the live databases' from the server."""
    dump_bytes = snapshot_size(config, snapshot)
    needs = logical_needs(dump_bytes, schema_bytes(databases))
    staging = Path(config.get("restore_dir", RESTORE_DIR))
    while not staging.exists():  # made by the restore: its nearest existing parent's filesystem
        staging = staging.parent
    binlogs = Path(config.get("binlog_index", BINLOG_INDEX)).parent
    paths = {"dump file": staging, "new databases": datadir, "binary log": binlogs}
    if not binlogs.is_dir():
        del needs["binary log"], paths["binary log"]
    where = {what: (path.stat().st_dev, str(path)) for what, path in paths.items()}
    free = {where[what][0]: shutil.disk_usage(path).free for what, path in paths.items()}
    return space_refusal(needs, where, free)


def other_objects(databases: list[str]) -> list[str]:
    """Views, triggers, routines and events in ``databases``: a table swap would leave them behind."""
    listed = ", ".join(map(sql_string, databases))
    return [
        f"{kind} {schema}.{name}"
        for kind, schema, name in mariadb(
            "SELECT 'view', table_schema, table_name FROM information_schema.views "  # noqa: S608 - quoted
            f"WHERE table_schema IN ({listed}) UNION ALL "
            "SELECT 'trigger', trigger_schema, trigger_name FROM information_schema.triggers "
            f"WHERE trigger_schema IN ({listed}) UNION ALL "
            "SELECT 'routine', routine_schema, routine_name FROM information_schema.routines "
            f"WHERE routine_schema IN ({listed}) UNION ALL "
            "SELECT 'event', event_schema, event_name FROM information_schema.events "
            f"WHERE event_schema IN ({listed})"
        )
    ]


def table_names(database: str) -> list[str]:
    """Every table of ``database`` (views are other_objects' and refused)."""
    return [
        row[0]
        for row in mariadb(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = "  # noqa: S608 - quoted
            f"{sql_string(database)} AND table_type <> 'VIEW' ORDER BY table_name"
        )
    ]


def existing_databases() -> set[str]:
    return {row[0] for row in mariadb("SHOW DATABASES")}


def load_dump(dump_file: Path, names: dict[str, str]) -> None:
    """The dump through restore_line into the mariadb client (which stops at the first error)."""
    with tempfile.TemporaryFile() as load_err:
        load = subprocess.Popen(
            ["mariadb", "--default-character-set=utf8mb4"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=load_err,
        )
        try:
            try:
                with dump_file.open("rb") as dump:
                    for line in dump:
                        load.stdin.write(restore_line(line, names))  # type: ignore[union-attr]
                load.stdin.close()  # type: ignore[union-attr]
            except BrokenPipeError:
                pass  # the client stopped at an error: its stderr says which
            code = load.wait()
        except BaseException:
            load.kill()
            load.wait()
            raise
        if code != 0:
            load_err.seek(0)
            lines = load_err.read().decode(errors="replace").strip().splitlines()
            raise Untouched(f"loading the dump failed: {lines[-1] if lines else 'no message'}")


def drop_new(new: list[str], log: Log) -> list[str]:
    """Drop a failed logical restore's new databases, SIGTERM and the deadline held off meanwhile; those left."""
    left = []
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGALRM})
    try:
        for database in new:
            try:
                mariadb(f"DROP DATABASE IF EXISTS {quote_ident(database)}")
            except (JobError, subprocess.TimeoutExpired) as exc:
                left.append(database)
                log(f"logical: could not drop the new database {database} ({exc}); drop it by hand")
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
    return left


def stopped(made: list[str], log: Log) -> None:
    """A logical restore stopped before its swap: its databases go, the live ones were not touched."""
    left = drop_new(made, log)
    gone = [d for d in made if d not in left]
    log(
        f"logical: stopped before the swap, the live databases were not touched; dropped {', '.join(gone) or 'nothing'}"
        + (f", left {', '.join(left)}" if left else "")
    )


Progress = Callable[..., None]


def no_progress(phase: str, live_changed: bool | None, **extra: Any) -> None:
    """restore_logical's progress when nobody records it."""


def restore_logical(
    config: dict[str, Any],
    snapshot: dict[str, Any],
    databases: list[str],
    datadir: Path,
    moment: dt.datetime,
    log: Log,
    progress: Progress = no_progress,
) -> dict[str, Any]:
    """Load the dump into new databases, verify them against its manifest, then swap their tables in
    (swap_statement); the live tables stay as evidence. Until the swap the live databases are not
    touched: a failure raises Untouched, and a failure or SIGTERM drops the new databases."""
    if not server_answers():
        with contextlib.suppress(JobError):
            systemctl("start", "mariadb")
        if not server_answers():
            raise Untouched("MariaDB does not answer: a dump can only be loaded into a running server")
    rid = restore_id(moment)
    staging = Path(config.get("restore_dir", RESTORE_DIR))
    refused = check_room(config, snapshot, databases, datadir)
    if refused:
        raise Untouched(refused)
    staging.mkdir(parents=True, mode=0o700, exist_ok=True)
    dump_file = staging / f"{snapshot['short_id']}.sql"
    made: list[str] = []  # databases of this restore to drop when it stops before the swap
    swapped = False
    try:
        log(f"logical: reading snapshot {snapshot['short_id']} ({snapshot['paths'][0]}) into {dump_file}")
        manifest = fetch_dump(config, snapshot, dump_file)
        restored = sorted(manifest["databases"])
        names = {d: side_database(d, "restore", rid) for d in restored}
        evidence = {d: side_database(d, "before", rid) for d in restored}
        clash = (set(names.values()) | set(evidence.values())) & existing_databases()
        if clash:
            raise Untouched(f"databases of a restore {rid} exist already: {', '.join(sorted(clash))}")
        made += names.values()
        progress("loading", False, leftovers=sorted(names.values()))
        log(f"logical: loading the dump into new databases {', '.join(names.values())}; the live ones stay as they are")
        load_dump(dump_file, names)
        others = other_objects(restored + list(names.values()))
        if others:
            raise Untouched(
                f"the databases hold {', '.join(others[:10])}: this restore swaps tables only, restore those by hand"
            )
        progress("verifying", False, leftovers=sorted(names.values()))
        loaded = live_manifest(list(names.values()), newest_titles_count(manifest))
        found = {d: loaded["databases"][names[d]] for d in restored if names[d] in loaded["databases"]}
        problems = loaded["errors"] + manifest_problems(manifest, {"databases": found})
        if problems:
            raise Untouched(f"the loaded databases differ from the snapshot's manifest: {'; '.join(problems[:5])}")
        log(f"logical: the new databases match the snapshot's manifest ({manifest_size(manifest)})")
        live = existing_databases()
        tables = {d: (table_names(d) if d in live else [], table_names(names[d])) for d in restored}
        for database in restored:
            charset, collation = mariadb(
                "SELECT default_character_set_name, default_collation_name FROM information_schema.schemata "  # noqa: S608 - quoted
                f"WHERE schema_name = {sql_string(names[database])}"
            )[0]
            defaults = f"CHARACTER SET {charset} COLLATE {collation}"
            if database not in live:
                mariadb(f"CREATE DATABASE {quote_ident(database)} {defaults}")
            if tables[database][0]:
                made.append(evidence[database])
                mariadb(f"CREATE DATABASE {quote_ident(evidence[database])} {defaults}")
        statement = swap_statement(tables, {d: (names[d], evidence[d]) for d in restored})
        kept = {d: evidence[d] for d in restored if tables[d][0]}
        log(f"logical: swapping the tables in (one RENAME TABLE), the live ones into {', '.join(kept.values())}")
        # SIGTERM and the deadline wait for the rename (all or nothing, at most the lock wait): what it did is known.
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGALRM})
        try:
            progress("swapping", None, leftovers=sorted(names.values()), evidence=kept)
            mariadb(f"SET SESSION lock_wait_timeout = 60;\n{statement}")
            swapped = True
            progress("swapped", True, evidence=kept)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
        log(f"logical: swapped; the data as it was is kept in {', '.join(kept.values()) or 'nothing (no live tables)'}")
        drop_new(list(names.values()), log)
        manifest["evidence"] = {"id": rid, "databases": kept}
        return manifest
    except Exception as exc:
        if swapped:
            raise
        stopped(made, log)
        if isinstance(exc, Untouched):
            raise
        raise Untouched(str(exc)) from exc
    except BaseException:
        if not swapped:
            stopped(made, log)
        raise
    finally:
        dump_file.unlink(missing_ok=True)


def fetch_dump(config: dict[str, Any], snapshot: dict[str, Any], target: Path) -> dict[str, Any]:
    """restic dump a mariadb-dump snapshot into ``target``; its manifest, once the file is known complete
    (restic succeeded, mariadb-dump's 'Dump completed' line, then the manifest line job_mariadb_dump adds)."""
    with tempfile.TemporaryFile() as dump_err, target.open("wb") as sink, Deadline(stream_timeout(config)) as deadline:
        dump = subprocess.Popen(
            restic_argv(config, "dump", snapshot["id"], snapshot["paths"][0]),
            stdout=subprocess.PIPE,
            stderr=dump_err,
            env=restic_env(config),
        )
        deadline.watch(dump)
        tail = b""
        try:
            for block in iter(lambda: dump.stdout.read(CHUNK), b""):  # type: ignore[union-attr]
                sink.write(block)
                tail = (tail + block)[-(4 << 20) :]
        except BaseException:
            dump.kill()
            dump.wait()
            raise
        code = dump.wait()
        if code != 0 and deadline.expired:
            raise JobError(f"restic dump of snapshot {snapshot['short_id']} timed out after {deadline.seconds:.0f} s")
        if code != 0:
            dump_err.seek(0)
            raise JobError(explain(dump_err.read().decode(errors="replace"), config["repository"]))
    marker = tail.rfind(MANIFEST_MARK.encode())
    if marker < 0 or DUMP_DONE not in tail[:marker]:
        raise JobError(f"the dump of snapshot {snapshot['short_id']} is incomplete (no 'Dump completed' and manifest)")
    manifest = manifest_from_dump(tail)
    if not tail.endswith(b"\n"):
        raise JobError(f"the dump of snapshot {snapshot['short_id']} is incomplete (its manifest line is cut)")
    return manifest


def command_discard_evidence(config: dict[str, Any], rid: str, log: Log) -> int:
    """Drop the evidence databases a logical restore kept (and new databases it left), named by its id."""
    if not RESTORE_ID.fullmatch(rid):
        print(
            f"portalops-backup: {rid!r} is not a restore id (UTC time as YYYYMMDDTHHMMSSZ, as the restore printed it)",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    databases = sorted({d for j in database_jobs(config) for d in j["databases"]})
    wanted = [side_database(d, role, rid) for d in databases for role in ("before", "restore")]
    found = [d for d in wanted if d in existing_databases()]
    if not found:
        log(f"restore-database: no evidence of restore {rid} on this host (looked for {', '.join(wanted)})")
        return EXIT_FAILED
    for database in found:
        log(f"restore-database: dropping {database} ({len(table_names(database))} tables)")
        mariadb(f"DROP DATABASE {quote_ident(database)}")
    log(f"restore-database: the evidence of restore {rid} is discarded")
    return EXIT_OK
