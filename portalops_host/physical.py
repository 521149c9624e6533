"""The physical database restore: a prepared mariadb-backup moved in, the old data directory kept aside."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from portalops_host import closed
from portalops_host.closed import close_network, networking_off, open_network
from portalops_host.database import RESTORE_DIR, systemctl
from portalops_host.errors import JobError
from portalops_host.log import Log
from portalops_host.restic import run_restic


def aside_path(datadir: Path, moment: dt.datetime, what: str = "before-restore") -> Path:
    """Where the data directory a restore replaces is kept, as evidence (the tool never deletes it)."""
    return datadir.with_name(f"{datadir.name}.{what}-{moment.strftime('%Y%m%dT%H%M%SZ')}")


def binlog_position(prepared: Path) -> str:
    """Where the binary log stood at the backup: a DBA replays from here to narrow the loss."""
    for name in ("mariadb_backup_binlog_info", "xtrabackup_binlog_info"):
        path = prepared / name
        if path.is_file():
            return " ".join(path.read_text().split()[:2])
    return ""


def move_back(prepared: Path, datadir: Path) -> None:
    """A prepared mariadb-backup moved into ``datadir`` (absent or empty) and handed to mysql."""
    result = subprocess.run(
        ["mariadb-backup", "--move-back", f"--target-dir={prepared}", f"--datadir={datadir}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=6 * 3600,
    )
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        raise JobError(f"mariadb-backup --move-back failed: {lines[-1] if lines else 'no message'}")
    subprocess.run(["chown", "-R", "mysql:mysql", str(datadir)], check=True, timeout=3600)


def is_mount(path: Path) -> bool:
    return os.path.ismount(path)


def same_filesystem(path: Path, other: Path) -> bool:
    return path.stat().st_dev == other.stat().st_dev


def tree_size(path: Path) -> int:
    """Bytes under ``path`` (files as stored, links not followed)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def room_aside(datadir: Path, aside: Path) -> str:
    """Why the data directory cannot be moved aside ('' when it can): a mount point's entries are copied
    into ``aside`` on another filesystem, which must have room for them (a rename needs none)."""
    if not datadir.exists() or same_filesystem(datadir, aside.parent):
        return ""
    needed, free = tree_size(datadir), shutil.disk_usage(aside.parent).free
    if needed > free:
        return (
            f"not enough room in {aside.parent} to keep {datadir} aside ({needed >> 20} MiB needed, "
            f"{free >> 20} MiB free): physical path refused"
        )
    return ""


def move_aside(datadir: Path, aside: Path) -> None:
    """Rename the data directory; a mount point cannot be renamed, so its entries are moved instead.
    The caller records ``aside`` before calling: a move that fails half-way is undone by put_back."""
    if not is_mount(datadir):
        try:
            datadir.rename(aside)
            return
        except OSError:
            pass
    aside.mkdir(mode=0o700, exist_ok=True)
    for entry in datadir.iterdir():
        shutil.move(str(entry), str(aside / entry.name))


def restore_physical(
    config: dict[str, Any], snapshot: dict[str, Any], datadir: Path, moment: dt.datetime, log: Log
) -> dict[str, Any]:
    """restic restore the prepared backup, close MariaDB to the network (close_network: its next start), stop it,
    keep the data directory aside, move the backup in, start it closed. The caller checks the data exactly and then
    calls reopen, always."""
    work = Path(config.get("restore_dir", RESTORE_DIR)) / snapshot["short_id"]
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, mode=0o700)
    try:
        log(f"physical: restic restore of snapshot {snapshot['short_id']} into {work}")
        run_restic(config, "restore", snapshot["id"], "--target", str(work))
        prepared = work / snapshot["paths"][0].lstrip("/")
        manifest: dict[str, Any] = json.loads((prepared / "portalops-manifest.json").read_text())
        # Not a file of the server's: it must not end up in the data directory.
        (prepared / "portalops-manifest.json").rename(work / "portalops-manifest.json")
        position = binlog_position(prepared)
        if position:
            log(f"physical: binary log position at the backup: {position}")
        aside = aside_path(datadir, moment)
        refused = room_aside(datadir, aside)
        if refused:
            raise JobError(refused)
        # Closed before the stop, not at the start: from here until reopen the drop-in names this restore, so
        # `portalops-host check restore-closed` says busy (75) and no runbook starts MariaDB on a half-moved data
        # directory while it is stopped. The daemon-reload does not touch the running server.
        log(f"physical: closing MariaDB to the network for the restore (drop-in {closed.CLOSED_DROPIN}, owner pid "
            f"{os.getpid()}) before stopping it: until it reopens, a runbook sees a running restore")  # fmt: skip
        try:
            close_network()
        except BaseException:
            with contextlib.suppress(JobError, OSError):
                open_network()  # not stopped yet: the server runs on the network with its own data, as before
            raise
        log("physical: stopping MariaDB")
        systemctl("stop", "mariadb")
        moved: Path | None = None
        complete = False
        try:
            if datadir.exists():
                mode = datadir.stat().st_mode & 0o7777
                moved = aside  # recorded before the move: put_back also undoes a move that stopped half-way
                move_aside(datadir, aside)
                complete = True
                log(f"physical: the data directory as it was is kept as evidence in {aside}")
            else:
                mode = 0o755
                log(f"physical: there was no data directory {datadir}")
            datadir.mkdir(mode=mode, exist_ok=True)
            move_back(prepared, datadir)
            datadir.chmod(mode)
            log("physical: starting MariaDB on the restored data, networking off (--skip-networking)")
            systemctl("start", "mariadb")
            if networking_off():
                log("physical: MariaDB started with networking off for the exact check")
            else:  # the drop-in did not apply (another MYSQLD_OPTS?): the check may see the site's writes
                log("physical: WARNING: MariaDB started but does not say its networking is off")
        except BaseException:
            # Also on Ctrl-C or SIGTERM (Terminated): never leave MariaDB stopped on a half-restored datadir.
            put_back(datadir, moved, moment, log, restored=complete)
            raise
        manifest["binlog_position"] = position
        return manifest
    finally:
        shutil.rmtree(work, ignore_errors=True)


def put_back(datadir: Path, aside: Path | None, moment: dt.datetime, log: Log, restored: bool = True) -> None:
    """A physical restore failed half-way: the server gets its own data (and grants) back for the fallback.

    ``restored``: the move aside finished (what the data directory holds now is the restore's, kept as
    failed-restore); otherwise it holds the entries the move did not reach, which stay. A mount point
    gets its entries back one by one. MariaDB is started normally, on the network: the restore's drop-in stays
    while the data moves (a runbook sees a running restore, not a stopped server to start) and goes just before.
    """
    with contextlib.suppress(JobError):
        systemctl("stop", "mariadb")
    try:
        if aside is not None and aside.exists():
            if restored and datadir.exists():
                failed = aside_path(datadir, moment, "failed-restore")
                move_aside(datadir, failed)
                log(f"physical: the half-restored data directory is kept in {failed}")
            if datadir.exists():
                for entry in aside.iterdir():
                    shutil.move(str(entry), str(datadir / entry.name))
                aside.rmdir()
            else:
                aside.rename(datadir)
            log(f"physical: {aside} put back as {datadir}")
    finally:
        with contextlib.suppress(JobError, OSError):
            open_network()  # its own data back: on the network as before the restore
    with contextlib.suppress(JobError):
        systemctl("start", "mariadb")
