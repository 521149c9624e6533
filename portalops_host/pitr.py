"""Point-in-time recovery: the binary log read for the accident (a destructive transaction) and replayed up to
just before it."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from portalops_host.database import PUBLISHED_TYPES
from portalops_host.errors import JobError
from portalops_host.health import core_tables, is_mass, loss_thresholds
from portalops_host.log import Log
from portalops_host.times import parse_time, stamp


def pitr_rpo_seconds(replay: dict[str, Any], moment: dt.datetime) -> float | None:
    """The data-loss window of a point-in-time recovery: writes from the accident on (none when the
    whole binary log was replayed; unknown when stopped at a given position)."""
    if replay.get("to") == "end":
        return 0.0
    if replay.get("accident_time"):
        return round(max(0.0, (moment - parse_time(replay["accident_time"])).total_seconds()), 1)
    return None


def pitr_rpo_line(snapshot: dict[str, Any], replay: dict[str, Any], moment: dt.datetime) -> str:
    seconds = pitr_rpo_seconds(replay, moment)
    window = "unknown (stopped at a given position)" if seconds is None else f"{seconds:.0f} s = {seconds / 60:.1f} min"
    restored = (
        f"snapshot {snapshot.get('short_id', snapshot['id'][:8])} of {stamp(parse_time(snapshot['time']))} "
        f"restored and the binary log replayed from {replay['from']}"
    )
    if replay.get("to") == "end":
        return f"RPO (data-loss window): {window}; {restored} to its end (no destructive transaction in it)"
    return (
        f"RPO (data-loss window): {window}; {restored} up to {replay['to']}, stopping before the transaction of "
        f"{replay.get('accident_time') or 'the given position'} ({replay['how']}: {replay['stopped_before']}); "
        "writes from it on are not in the restored database"
    )


# Where the server keeps its binary log index (roles/mariadb: mariadb_binlog_basename + .index), outside
# the data directory a physical restore moves aside; config 'binlog_index' overrides it.
BINLOG_INDEX = "/var/log/mysql/mariadb-bin.index"


# wp_posts' columns in a row event (binlog_row_metadata NO_LOG: by position, WordPress's schema since 2.x).
POST_CONTENT, POST_TITLE, POST_STATUS, POST_TYPE = "@5", "@6", "@8", "@21"


EVENT_HEAD = re.compile(r"^#(\d{6})\s+(\d{1,2}:\d\d:\d\d)\s+server id \d+\s+end_log_pos (\d+)")


ROW_EVENT = re.compile(r"^### (INSERT INTO|UPDATE|DELETE FROM) `([^`]+)`\.`([^`]+)`")


ROW_VALUE = re.compile(r"^###\s+(@\d+)=(.*?)(?: /\* .* \*/)?$")


USE_DB = re.compile(r"^use `([^`]+)`", re.IGNORECASE)


DROPPING = re.compile(r"^(DROP\s+TABLE|TRUNCATE(?:\s+TABLE)?|DROP\s+(?:DATABASE|SCHEMA))\b(.*)", re.IGNORECASE)


IDENT = re.compile(r"`([^`]+)`(?:\.`([^`]+)`)?|\b(?!IF\b|EXISTS\b)([A-Za-z0-9_$]+)(?:\.([A-Za-z0-9_$]+))?")


def binlog_files(index: Path) -> list[Path]:
    """The binary log files the server's index lists, oldest first."""
    return [
        path if path.is_absolute() else index.parent / path
        for path in (Path(line.strip()) for line in index.read_text().splitlines() if line.strip())
    ]


def new_transaction(file: str, start: int, when: dt.datetime | None) -> dict[str, Any]:
    """One transaction of the binary log: where it starts, when, and what it did to which table."""
    return {"file": file, "start": start, "time": when, "tables": {}, "dropped": []}


def table_counts(txn: dict[str, Any], database: str, table: str) -> dict[str, Any]:
    key = f"{database}.{table}"
    if key not in txn["tables"]:
        txn["tables"][key] = {"insert": 0, "update": 0, "delete": 0, "published": {}, "changed": {}}
    counts: dict[str, Any] = txn["tables"][key]
    return counts


def count_row(
    txn: dict[str, Any], verb: str, database: str, table: str, before: dict[str, str], after: dict[str, str]
) -> None:
    """One row of a row event: counted per table; for a posts table also published rows gained or lost
    (deleted, unpublished, published) and published rows whose title or content changed, per post type."""
    counts = table_counts(txn, database, table)
    counts[verb] += 1
    if not table.endswith("posts"):
        return
    old, new = before.get(POST_STATUS) == "'publish'", after.get(POST_STATUS) == "'publish'"
    kind = (after.get(POST_TYPE) or before.get(POST_TYPE) or "''").strip("'")
    gained = int(new) - int(old)
    if gained:
        counts["published"][kind] = counts["published"].get(kind, 0) + gained
    elif verb == "update" and old and new and any(before.get(c) != after.get(c) for c in (POST_CONTENT, POST_TITLE)):
        counts["changed"][kind] = counts["changed"].get(kind, 0) + 1


def event_time(day: str, clock: str) -> dt.datetime:
    """An event header's time, as mariadb-binlog prints it (this host's local time), made aware."""
    return dt.datetime.strptime(f"{day} {clock}", "%y%m%d %H:%M:%S").astimezone()


def dropped_tables(statement: str, database: str) -> list[str]:
    """database.table (or database.* for a whole database) that a DROP/TRUNCATE statement removes."""
    found = DROPPING.match(statement.strip())
    if not found:
        return []
    verb, rest = found.group(1).upper(), found.group(2).split("/*")[0]
    names = []
    for quoted_a, quoted_b, plain_a, plain_b in IDENT.findall(rest):
        first, second = quoted_a or plain_a, quoted_b or plain_b
        if not first:
            continue
        if verb.startswith("DROP") and ("DATABASE" in verb or "SCHEMA" in verb):
            names.append(f"{first}.*")
        else:
            names.append(f"{first}.{second}" if second else f"{database}.{first}")
    return names


def parse_binlog(lines: Iterator[str], file: str) -> Iterator[dict[str, Any]]:
    """Transactions of ``mariadb-binlog --base64-output=decode-rows -vv`` output of one file, in order.

    A transaction starts at its GTID event ('# at N' before it: the position to stop before); row
    events count rows per table (and published posts, see count_row); DROP/TRUNCATE statements name
    what they drop.
    """
    txn: dict[str, Any] | None = None
    at, database, when = 0, "", None
    row: tuple[str, str, str] | None = None
    images: dict[str, dict[str, str]] = {"before": {}, "after": {}}
    section = "before"

    def flush_row() -> None:
        nonlocal row
        if row is not None and txn is not None:
            verb, db, table = row
            count_row(txn, verb, db, table, images["before"], images["after"])
        row = None

    for raw in lines:
        line = raw.rstrip("\n")
        if line.startswith("### "):
            event = ROW_EVENT.match(line)
            if event:
                flush_row()
                verb = event.group(1).split()[0].lower()
                row = (verb, event.group(2), event.group(3))
                images = {"before": {}, "after": {}}
                section = "after" if verb == "insert" else "before"
            elif line.startswith("### SET"):
                section = "after"
            elif line.startswith("### WHERE"):
                section = "before"
            else:
                value = ROW_VALUE.match(line)
                if value and value.group(1) in (POST_CONTENT, POST_TITLE, POST_STATUS, POST_TYPE):
                    images[section][value.group(1)] = value.group(2)
            continue
        flush_row()
        if line.startswith("# at "):
            with contextlib.suppress(ValueError):
                at = int(line[5:].strip())
            continue
        head = EVENT_HEAD.match(line)
        if head:
            with contextlib.suppress(ValueError):
                when = event_time(head.group(1), head.group(2))
            if "\tGTID " in line or " GTID " in line:
                if txn is not None:
                    yield txn
                txn = new_transaction(file, at, when)
            continue
        used = USE_DB.match(line)
        if used:
            database = used.group(1)
            continue
        if txn is not None and not line.startswith("#"):
            txn["dropped"] += dropped_tables(line, database)
    flush_row()
    if txn is not None:
        yield txn


def destructive(
    txn: dict[str, Any], manifest: dict[str, Any], running: dict[str, int], thresholds: dict[str, int]
) -> str:
    """Why ``txn`` is the accident ('' when it is not): it drops or truncates a WordPress core table or a
    site database of the manifest, or it (or it together with all before it since the backup: ``running``,
    updated here, holds the net change per database.table:type) takes published posts or pages, users or
    options past the thresholds check-database uses, or changes the title or content of more than that
    share of the published posts."""
    reasons = []
    for name in txn["dropped"]:
        database, table = name.split(".", 1)
        want = manifest["databases"].get(database)
        if want is not None and (table == "*" or table in core_tables(want["tables"])):
            reasons.append(f"dropped {name}")
    for name, counts in sorted(txn["tables"].items()):
        database, table = name.split(".", 1)
        want = manifest["databases"].get(database)
        core = core_tables(want["tables"]).get(table) if want is not None else None
        if want is None or core is None:
            continue
        if core == "posts":
            published = want.get("published") or {}
            for kind in PUBLISHED_TYPES:
                before = published.get(kind, want["tables"][table]["rows"])
                gained, changed = counts["published"].get(kind, 0), counts["changed"].get(kind, 0)
                key = f"{name}:{kind}"
                current = before + running.get(key, 0)  # published just before this transaction
                running[key] = running.get(key, 0) + gained
                percent = thresholds["published_percent"]
                if is_mass(-gained, current, percent, thresholds):
                    reasons.append(f"deleted or unpublished {-gained} of {current} published {kind}s of {name}")
                elif is_mass(-running[key], before, percent, thresholds):
                    reasons.append(f"took the published {kind}s of {name} {-running[key]} below the backup's {before}")
                if is_mass(changed, current, percent, thresholds):
                    reasons.append(
                        f"changed the title or content of {changed} of {current} published {kind}s of {name}"
                    )
        elif core in ("users", "options"):
            before = want["tables"][table]["rows"]
            current = before + running.get(name, 0)
            running[name] = running.get(name, 0) + counts["insert"] - counts["delete"]
            percent = thresholds[f"{core}_percent"]
            if is_mass(counts["delete"] + counts["update"], current, percent, thresholds):
                reasons.append(f"deleted {counts['delete']} and changed {counts['update']} of {current} rows of {name}")
            elif is_mass(-running[name], before, percent, thresholds):
                reasons.append(f"took {name} {-running[name]} rows below the backup's {before}")
    return "; ".join(reasons)


NO_PITR = "point-in-time: NOT DONE, the database is the backup alone (writes since it are lost)"


def parse_position(text: str) -> tuple[str, int]:
    """'mariadb-bin.000002 4567 [GTID]' (a backup's) or 'mariadb-bin.000002:4567' (--until-position)."""
    found = re.match(r"\s*([^\s:]+)[\s:]+(\d+)(?:\s|$)", text)
    if not found:
        raise ValueError(f"{text!r} is not a binary log position (FILE:POSITION)")
    return Path(found.group(1)).name, int(found.group(2))


def files_from(binlogs: list[Path], first: str, last: str | None = None) -> list[Path]:
    """The binary log files from ``first`` through ``last`` (default: the newest); an error when
    ``first`` is gone (purged, or never there): the replay would leave a hole."""
    names = [p.name for p in binlogs]
    if first not in names:
        raise JobError(f"binary log {first} (the backup's position) is not in the index: purged or lost")
    end = names.index(last) + 1 if last in names else len(names)
    return binlogs[names.index(first) : end]


def scan_binlog(
    files: list[Path], start: int, manifest: dict[str, Any], thresholds: dict[str, int], until: dt.datetime | None
) -> dict[str, Any]:
    """Read the binary log from the backup on: the first transaction that is the accident (destructive),
    or with ``until`` the first at or after it. Raises JobError when mariadb-binlog cannot read a file."""
    running: dict[str, int] = {}
    seen, last_time = 0, None
    for number, path in enumerate(files):
        argv = [
            "mariadb-binlog",
            "--base64-output=decode-rows",
            "-vv",
            *([f"--start-position={start}"] if number == 0 else []),
            str(path),
        ]
        with tempfile.TemporaryFile() as err:
            reader = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, text=True, errors="replace")
            try:
                for txn in parse_binlog(iter(reader.stdout), path.name):  # type: ignore[arg-type]
                    seen += 1
                    if until is None:
                        why = destructive(txn, manifest, running, thresholds)
                    else:  # a person's choice: exactly there, whatever the log holds before it
                        late = txn["time"] is not None and txn["time"] >= until
                        why = f"the first transaction at or after --until {stamp(until)}" if late else ""
                    if why:
                        return {
                            "stop": (path.name, txn["start"]),
                            "reason": why,
                            "time": txn["time"],
                            "transactions": seen - 1,
                        }
                    last_time = txn["time"] or last_time
            finally:
                if reader.poll() is None:
                    reader.kill()
                code = reader.wait()
            if code not in (0, -signal.SIGKILL):
                err.seek(0)
                lines = err.read().decode(errors="replace").strip().splitlines()
                raise JobError(f"mariadb-binlog cannot read {path}: {lines[-1] if lines else f'exit {code}'}")
    return {"stop": None, "reason": "", "time": last_time, "transactions": seen}


def replay_binlog(files: list[Path], start: int, stop: tuple[str, int] | None) -> None:
    """mariadb-binlog from the backup's position up to (not including) ``stop``, piped into the server."""
    argv = ["mariadb-binlog", f"--start-position={start}"]
    if stop is not None:
        argv.append(f"--stop-position={stop[1]}")  # mariadb-binlog applies it to the last file
    with tempfile.TemporaryFile() as reader_err, tempfile.TemporaryFile() as load_err:
        reader = subprocess.Popen([*argv, *map(str, files)], stdout=subprocess.PIPE, stderr=reader_err)
        try:
            load = subprocess.run(
                ["mariadb", "--binary-mode", "--default-character-set=utf8mb4"],
                stdin=reader.stdout,
                stdout=subprocess.DEVNULL,
                stderr=load_err,
                check=False,
                timeout=6 * 3600,
            )
            code = reader.wait(timeout=600)
        finally:
            if reader.stdout is not None:
                reader.stdout.close()
            if reader.poll() is None:
                reader.kill()
                reader.wait()
        for name, rc, stream in (("loading it", load.returncode, load_err), ("mariadb-binlog", code, reader_err)):
            if rc != 0:
                stream.seek(0)
                lines = stream.read().decode(errors="replace").strip().splitlines()
                raise JobError(f"binary log replay: {name} failed: {lines[-1] if lines else f'exit {rc}'}")


def point_in_time(
    config: dict[str, Any],
    manifest: dict[str, Any],
    binlogs: list[Path],
    until: dt.datetime | None,
    until_position: str | None,
    log: Log,
) -> dict[str, Any]:
    """Replay the binary log onto the restored backup up to just before the accident. The outcome for
    the record: 'replayed' false (and 'error') when the binary log is missing or broken, so the database
    stays as the backup left it."""
    found: dict[str, Any] = {"replayed": False, "from": "", "to": "", "stopped_before": "", "how": "", "error": ""}
    try:
        if not manifest.get("binlog_position"):
            raise JobError("the backup recorded no binary log position (binary log off when it was taken?)")
        first, start = parse_position(manifest["binlog_position"])
        found["from"] = f"{first}:{start}"
        if until_position:
            last, stop_at = parse_position(until_position)
            files = files_from(binlogs, first, last)
            if files[-1].name != last:
                raise JobError(f"binary log {last} (--until-position) is not in the index")
            scan: dict[str, Any] = {
                "stop": (last, stop_at),
                "reason": f"--until-position {last}:{stop_at}",
                "time": None,
            }
            found["how"] = "given (--until-position)"
        else:
            files = files_from(binlogs, first)
            log(f"point-in-time: reading the binary log from {first}:{start} ({len(files)} files) for the accident")
            scan = scan_binlog(files, start, manifest, loss_thresholds(config), until)
            found["how"] = "given (--until)" if until is not None else "found in the binary log"
        stop = scan["stop"]
        if stop is not None:
            files = files_from(files, files[0].name, stop[0])
            found["stopped_before"] = scan["reason"]
            found["to"] = f"{stop[0]}:{stop[1]}"
            found["accident_time"] = stamp(scan["time"]) if scan["time"] is not None else ""
            log(f"point-in-time: stopping before {stop[0]}:{stop[1]} ({found['how']}): {scan['reason']}")
        else:
            found["to"] = "end"
            log("point-in-time: no destructive transaction in the binary log since the backup; replaying all of it")
        replay_binlog(files, start, stop)
        found["replayed"] = True
        log(f"point-in-time: replayed the binary log {found['from']} -> {found['to']}")
    except (JobError, OSError, ValueError, subprocess.SubprocessError) as exc:
        found["error"] = str(exc)
        log(f"{NO_PITR}: {exc}")
    return found
