"""MariaDB closed to the network while a physical restore checks the restored data: the runtime drop-in that
does it, the restore that owns it, and what anyone else may do with it.

While a physical restore verifies the restored data exactly, MariaDB listens on its unix socket only: the
site (cms1) cannot write it between the start and the checksums (WordPress writes transients on any page
view). A runtime drop-in, not `systemctl set-environment`: it applies to mariadb.service alone (the
manager's environment is every unit's, and a unit's own Environment= would silently override it), and
`systemctl status mariadb` shows it while it is there; /run is empty after a reboot. Debian's unit runs
`mariadbd $MYSQLD_OPTS ...`; 'zz-' sorts it after any other drop-in, so its Environment= wins. The restore
writes it before it stops MariaDB: while the server is stopped and its data directory moved, the drop-in says
a restore runs (busy), so no runbook takes the stopped server for a broken one and starts it under the move.

A restore that is SIGKILLed (or a host that stops it without rebooting) leaves the drop-in behind, and
MariaDB, restarted by hand or by a runbook, comes back closed: the site is down and nothing says why. So
the drop-in names its owner (boot id, pid and the pid's start time, /proc/<pid>/stat field 22: a pid
reused by a later process does not match) and anyone can tell a live restore's drop-in (busy: it reopens
MariaDB itself) from a stale one (its restore is gone: remove it, restart MariaDB).
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import signal
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from portalops_host.database import mariadb, systemctl
from portalops_host.errors import EXIT_FAILED, EXIT_OK, EXIT_UNKNOWN, JobError, LockError
from portalops_host.log import Log
from portalops_host.times import now, stamp

CLOSED_DROPIN = Path("/run/systemd/system/mariadb.service.d/zz-portalops-restore-closed.conf")
PROC = Path("/proc")
# The drop-in's comment line that names its owner, as JSON.
OWNER_MARK = "# owner: "


@dataclass(frozen=True)
class Owner:
    """The restore that closed MariaDB: ``pid`` on boot ``boot_id``, started ``pid_start`` clock ticks after
    boot (/proc/<pid>/stat field 22), closing it at ``since`` (UTC, for people)."""

    boot_id: str
    pid: int
    pid_start: int
    since: str


class Found(enum.Enum):
    """What the drop-in is to someone who finds it."""

    NONE = "none"  # no drop-in: MariaDB starts on the network
    MINE = "mine"  # this process's own (the restore reopening it)
    BUSY = "busy"  # a running restore's: it reopens MariaDB itself; not broken, never removed by others
    STALE = "stale"  # its restore is gone: MariaDB starts closed until it is removed
    UNOWNED = "unowned"  # no owner recorded (an older portalops-backup's): whose it is cannot be told


def process_start(pid: int, proc: Path = PROC) -> int | None:
    """/proc/<pid>/stat field 22 (starttime), None when there is no such live process (a zombie is dead).
    The command name (field 2) may hold spaces and parentheses: the fields are counted after its last ')'."""
    try:
        text = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text[text.rfind(")") + 1 :].split()  # field 3 (state) onwards
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    try:
        return int(fields[19])
    except ValueError:
        return None


def boot_id(proc: Path = PROC) -> str:
    return (proc / "sys/kernel/random/boot_id").read_text().strip()


def this_process(proc: Path = PROC) -> Owner:
    pid = os.getpid()
    return Owner(boot_id(proc), pid, process_start(pid, proc) or 0, stamp(now()))


def dropin_text(owner: Owner) -> str:
    """The drop-in: what it is, who wrote it and how to remove it, then the setting."""
    return (
        "# portalops-backup restore-database: MariaDB closed to the network (--skip-networking) while the\n"
        "# restored data is moved in and checked exactly; the restore removes it (and restarts MariaDB) when done.\n"
        f"# Written by pid {owner.pid} at {owner.since}. If that restore is gone (SIGKILL, a crash), this file is\n"
        "# stale and keeps MariaDB off the network at every start: `portalops-host mariadb reopen-stale`, or\n"
        f"# rm {CLOSED_DROPIN} && systemctl daemon-reload && systemctl restart mariadb\n"
        f"{OWNER_MARK}{json.dumps(asdict(owner), sort_keys=True)}\n"
        "[Service]\n"
        "Environment=MYSQLD_OPTS=--skip-networking\n"
    )


def owner_of(text: str) -> Owner | None:
    """The owner the drop-in's text names, None when it names none (or not readably)."""
    for line in text.splitlines():
        if line.startswith(OWNER_MARK):
            try:
                data = json.loads(line[len(OWNER_MARK) :])
                return Owner(str(data["boot_id"]), int(data["pid"]), int(data["pid_start"]), str(data["since"]))
            except (ValueError, KeyError, TypeError):
                return None
    return None


def judge(text: str | None, boot: str, start_of: Callable[[int], int | None], me: int) -> tuple[Found, Owner | None]:
    """What a drop-in of text ``text`` (None: there is none) is on boot ``boot`` to process ``me``;
    ``start_of`` gives a live pid's start time (None: no such process)."""
    if text is None:
        return Found.NONE, None
    owner = owner_of(text)
    if owner is None:
        return Found.UNOWNED, None
    if owner.boot_id != boot or start_of(owner.pid) != owner.pid_start:
        return Found.STALE, owner
    return (Found.MINE if owner.pid == me else Found.BUSY), owner


def found_dropin(proc: Path = PROC) -> tuple[Found, Owner | None]:
    """The drop-in on this host, judged (OSError: it cannot be read)."""
    try:
        text: str | None = CLOSED_DROPIN.read_text()
    except FileNotFoundError:
        text = None
    return judge(text, boot_id(proc), lambda pid: process_start(pid, proc), os.getpid())


def said(found: Found, owner: Owner | None) -> str:
    """One line for a person: what the drop-in is and what to do."""
    if found is Found.NONE:
        return "no restore drop-in: MariaDB starts on the network"
    who = f"restore-database pid {owner.pid}, closed at {owner.since}" if owner else "no owner recorded"
    if found in (Found.BUSY, Found.MINE):
        return (
            f"busy, not broken: a running restore ({who}) holds MariaDB closed to the network ({CLOSED_DROPIN}) "
            "while it moves the restored data in and checks it; it reopens it when done: leave it alone"
        )
    remove = f"rm {CLOSED_DROPIN} && systemctl daemon-reload && systemctl restart mariadb"
    if found is Found.STALE:
        return (
            f"STALE restore drop-in {CLOSED_DROPIN} ({who}: that process is gone): MariaDB starts closed to the "
            f"network (--skip-networking) until it is removed: portalops-host mariadb reopen-stale, or {remove}"
        )
    return (
        f"restore drop-in {CLOSED_DROPIN} with {who} (an older portalops-backup wrote it): cannot tell whether its "
        f"restore still runs; if `pgrep -af 'portalops-backup restore-database'` shows none: {remove}"
    )


def close_network() -> None:
    """MariaDB's next start listens on its unix socket only (root's checks over it still work); the drop-in
    names this process as its owner."""
    CLOSED_DROPIN.parent.mkdir(parents=True, exist_ok=True)
    CLOSED_DROPIN.write_text(dropin_text(this_process()))
    systemctl("daemon-reload")


def open_network() -> bool:
    """The drop-in gone (MariaDB's next start listens on the network again); whether there was one. A running
    restore's other than this process's is never removed."""
    if not CLOSED_DROPIN.exists() or found_dropin()[0] is Found.BUSY:
        return False
    CLOSED_DROPIN.unlink()
    with contextlib.suppress(OSError):  # the directory too, unless another drop-in is in it
        CLOSED_DROPIN.parent.rmdir()
    systemctl("daemon-reload")
    return True


def networking_off() -> bool | None:
    """Whether the running server listens on its socket only (None: it does not say)."""
    try:
        rows = mariadb("SELECT @@skip_networking")
    except (JobError, subprocess.SubprocessError):
        return None
    return bool(rows) and rows[0][0] == "1"


def reopen(log: Log) -> str:
    """MariaDB back on the network after a physical restore's closed check: the drop-in removed and the
    server restarted (started if it was stopped). Safe to call again: without the drop-in nothing was
    left closed (put_back already started the server normally, or no restore started it) and nothing is done.
    SIGTERM and the deadline wait until it is done, so they never leave it half way. '' or what failed."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGALRM, signal.SIGINT})
    try:
        try:
            if not open_network():
                return ""
            log("physical: reopening MariaDB to the network (restart without --skip-networking)")
            systemctl("restart", "mariadb")
        except (JobError, OSError, subprocess.SubprocessError) as exc:
            log(f"physical: MariaDB could NOT be reopened to the network: {exc}")
            return f"MariaDB could not be reopened to the network: {exc}"
        log("physical: MariaDB reopened to the network")
        return ""
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def before_restore(log: Log) -> None:
    """A restore starts with no drop-in but its own: a running restore's refuses this one (LockError, before
    anything is touched or any status written); a stale one, or one without an owner (the run lock, held
    by every restore, says no restore of this configuration runs), is removed and MariaDB reopened. A reopen
    that fails here is logged and the restore goes on: it stops and starts MariaDB itself (physical), or
    fails on a server it cannot reach (logical), and says so then."""
    try:
        found, owner = found_dropin()
    except OSError as exc:
        raise JobError(f"cannot read {CLOSED_DROPIN}: {exc}; whether a restore runs cannot be told") from exc
    if found is Found.BUSY:
        raise LockError(f"refused: {said(found, owner)}")
    if found in (Found.STALE, Found.UNOWNED):
        log(f"restore-database: removing the {found.value} drop-in a previous restore left: {said(found, owner)}")
        reopen(log)


def unit_state(unit: str) -> str:
    """`systemctl is-active`'s word for ``unit`` (active, activating, inactive, failed, ...)."""
    result = subprocess.run(["systemctl", "is-active", unit], capture_output=True, text=True, check=False, timeout=60)
    return result.stdout.strip()


def command_restore_closed() -> int:
    """`portalops-host check restore-closed`: 0 no drop-in, 1 a stale one (MariaDB starts closed and nobody will
    reopen it), 75 a running restore's (busy) or one whose owner cannot be told."""
    try:
        found, owner = found_dropin()
    except OSError as exc:
        print(f"cannot read {CLOSED_DROPIN}: {exc}")
        return EXIT_UNKNOWN
    print(said(found, owner))
    if found is Found.NONE:
        return EXIT_OK
    return EXIT_FAILED if found is Found.STALE else EXIT_UNKNOWN


def command_reopen_stale(log: Log) -> int:
    """`portalops-host mariadb reopen-stale`: a stale drop-in removed and, if MariaDB runs (closed, since it
    started with it), MariaDB restarted on the network; a stopped one is left for the caller to start. 0 done
    or nothing to do, 75 left alone (a running restore's, or whose cannot be told), 1 failed."""
    code = command_restore_closed()
    if code != EXIT_FAILED:
        return code
    running = unit_state("mariadb")
    try:
        if running == "activating":  # never restarted while it starts (a long crash recovery)
            open_network()
            print("removed; MariaDB is starting with it loaded: it comes up closed, restart it once it is up")
            return EXIT_UNKNOWN
        if running != "active":
            open_network()
            print(f"removed; MariaDB is {running or 'not running'}: its next start listens on the network")
            return EXIT_OK
    except (JobError, OSError) as exc:
        print(f"could not remove {CLOSED_DROPIN}: {exc}")
        return EXIT_FAILED
    failed = reopen(log)
    if failed:
        print(failed)
        return EXIT_FAILED
    closed = networking_off()
    if closed is None:
        print("removed and MariaDB restarted; it does not say whether it listens on the network")
        return EXIT_UNKNOWN
    print("removed and MariaDB restarted: " + ("STILL closed to the network" if closed else "on the network"))
    return EXIT_FAILED if closed else EXIT_OK
