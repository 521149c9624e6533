"""The restore's closed drop-in (portalops_host.closed): a running restore's told from a stale one a SIGKILLed
restore left, by its owner's boot id, pid and the pid's start time; what `portalops-host check restore-closed`
and `portalops-host mariadb reopen-stale` (l1_portal_unreachable's and l1_database_lost's start_mariadb) say
and do with each. The drop-in lives where conftest's closed_dropin puts it, never under /run."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from portalops.runbook.checks import HOST_TOOL, MARIADB_UP, mariadb_restart
from portalops_host import closed
from portalops_host.cli import main
from portalops_host.closed import Found, Owner, dropin_text, judge, owner_of, process_start
from portalops_host.errors import JobError
from tests.unit.hostscripts import replace

BOOT = "acbe39a1-5f74-4a8f-a045-22a1634c1dd5"
# /proc/<pid>/stat of a restore whose command name holds a space and a parenthesis: starttime (field 22) 4242.
STAT = "812 (portalops-b) x) S 1 812 812 0 -1 4194560 900 0 0 0 5 2 0 0 20 0 1 0 4242 20000000 3000 18446744 1 1\n"


def fake_proc(tmp_path: Path, stats: dict[int, str]) -> Path:
    proc = tmp_path / "proc"
    (proc / "sys/kernel/random").mkdir(parents=True)
    (proc / "sys/kernel/random/boot_id").write_text(BOOT + "\n")
    for pid, stat in stats.items():
        (proc / str(pid)).mkdir()
        (proc / str(pid) / "stat").write_text(stat)
    return proc


def test_a_process_start_is_field_22_counted_after_the_command_name(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, {812: STAT, 813: STAT.replace(") S ", ") Z ")})
    assert process_start(812, proc) == 4242
    assert process_start(813, proc) is None  # a zombie: SIGKILLed, not yet reaped, dead all the same
    assert process_start(814, proc) is None
    assert process_start(os.getpid()) == int(
        Path(f"/proc/{os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()[19]
    )


def test_the_dropin_says_what_it_is_how_to_remove_it_and_whose_it_is(closed_dropin: Path) -> None:
    owner = Owner(BOOT, 812, 4242, "2026-12-05T14:00:00Z")
    text = dropin_text(owner)
    assert "portalops-backup restore-database" in text and "portalops-host mariadb reopen-stale" in text
    assert f"rm {closed_dropin} && systemctl daemon-reload && systemctl restart mariadb" in text
    assert text.endswith("[Service]\nEnvironment=MYSQLD_OPTS=--skip-networking\n")
    assert all(line.startswith("#") for line in text.split("[Service]")[0].splitlines())  # systemd: comments
    assert owner_of(text) == owner
    assert owner_of("[Service]\nEnvironment=MYSQLD_OPTS=--skip-networking\n") is None
    assert owner_of("# owner: {not json\n") is None


@pytest.mark.parametrize(
    ("owner", "found"),
    [
        (Owner(BOOT, 812, 4242, "t"), Found.BUSY),  # its restore runs
        (Owner(BOOT, 812, 4100, "t"), Found.STALE),  # pid 812 is another process now
        (Owner(BOOT, 999, 4242, "t"), Found.STALE),  # no process 999: SIGKILLed
        (Owner("another-boot", 812, 4242, "t"), Found.STALE),  # written before a reboot
        (Owner(BOOT, 77, 1, "t"), Found.MINE),  # the restore itself
    ],
    ids=["live", "pid-reused", "gone", "other-boot", "mine"],
)
def test_a_live_restores_dropin_is_busy_and_one_whose_restore_is_gone_stale(owner: Owner, found: Found) -> None:
    starts = {812: 4242, 77: 1}
    assert judge(dropin_text(owner), BOOT, lambda pid: starts.get(pid), 77) == (found, owner)


def test_no_dropin_is_none_and_one_without_an_owner_cannot_be_told() -> None:
    nobody: dict[int, int] = {}
    assert judge(None, BOOT, lambda pid: nobody.get(pid), 77) == (Found.NONE, None)
    unowned = "[Service]\nEnvironment=MYSQLD_OPTS=--skip-networking\n"
    assert judge(unowned, BOOT, lambda pid: nobody.get(pid), 77) == (Found.UNOWNED, None)


@pytest.fixture
def live_process() -> Iterator[int]:
    """A running process that is not this one (a concurrent restore, as far as the drop-in can tell)."""
    sleeper = subprocess.Popen(["sleep", "60"])
    yield sleeper.pid
    sleeper.kill()
    sleeper.wait()


def owned_by(path: Path, pid: int, start: int | None = None) -> None:
    """A drop-in at ``path`` written by ``pid`` (started at ``start``, else its real start time) on this boot."""
    path.parent.mkdir(parents=True, exist_ok=True)
    begun = process_start(pid) if start is None else start
    path.write_text(dropin_text(Owner(closed.boot_id(), pid, begun or 0, "2026-12-05T14:00:00Z")))


class Unit:
    """mariadb.service for reopen-stale: its state, systemctl calls recorded, @@skip_networking as loaded."""

    def __init__(self, dropin: Path, state: str = "active") -> None:
        self.dropin, self.state, self.calls = dropin, state, list[tuple[str, ...]]()
        self.closed = True

    def systemctl(self, *args: str) -> None:
        self.calls.append(args)
        if args[0] == "restart":
            self.state, self.closed = "active", self.dropin.exists()

    def mariadb(self, sql: str, *args: object, **kwargs: object) -> list[list[str]]:
        if self.state != "active":
            raise JobError("mariadb query failed: ERROR 2002")
        return [["1" if self.closed else "0"]]


@pytest.fixture
def unit(monkeypatch: pytest.MonkeyPatch, closed_dropin: Path) -> Unit:
    fake = Unit(closed_dropin)
    replace(monkeypatch, "systemctl", fake.systemctl)
    replace(monkeypatch, "mariadb", fake.mariadb)
    monkeypatch.setattr(closed, "unit_state", lambda name: fake.state)
    return fake


def test_a_stale_dropin_is_named_removed_and_mariadb_restarted_on_the_network(
    closed_dropin: Path, unit: Unit, capsys: pytest.CaptureFixture[str]
) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    owned_by(closed_dropin, gone.pid, start=12345)
    assert main(["check", "restore-closed"]) == 1
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"STALE restore drop-in {closed_dropin} (restore-database pid {gone.pid}, closed at "), line
    assert "that process is gone" in line and "portalops-host mariadb reopen-stale" in line
    assert main(["mariadb", "reopen-stale"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("STALE restore drop-in") and "removed and MariaDB restarted: on the network" in out
    assert not closed_dropin.exists() and not unit.closed
    assert unit.calls == [("daemon-reload",), ("restart", "mariadb")]
    assert main(["check", "restore-closed"]) == 0
    assert capsys.readouterr().out == "no restore drop-in: MariaDB starts on the network\n"


@pytest.mark.parametrize(
    ("state", "code", "line"),
    [
        ("failed", 0, "removed; MariaDB is failed: its next start listens on the network"),
        ("activating", 75, "removed; MariaDB is starting with it loaded: it comes up closed, restart it once it is up"),
    ],
)
def test_a_stale_dropin_of_a_server_not_running_is_removed_and_it_is_not_restarted(
    closed_dropin: Path, unit: Unit, capsys: pytest.CaptureFixture[str], state: str, code: int, line: str
) -> None:
    # Stopped: the runbook's unit_restart starts it next. Starting (a long crash recovery): never restarted.
    owned_by(closed_dropin, os.getppid(), start=1)  # the pid lives on, as another process: reused
    unit.state = state
    assert main(["mariadb", "reopen-stale"]) == code
    assert line in capsys.readouterr().out
    assert not closed_dropin.exists() and unit.calls == [("daemon-reload",)]


def test_a_running_restores_dropin_is_busy_and_never_removed(
    closed_dropin: Path, unit: Unit, live_process: int, capsys: pytest.CaptureFixture[str]
) -> None:
    owned_by(closed_dropin, live_process)
    before = closed_dropin.read_text()
    assert main(["check", "restore-closed"]) == 75
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"busy, not broken: a running restore (restore-database pid {live_process}, "), line
    assert main(["mariadb", "reopen-stale"]) == 75
    assert closed_dropin.read_text() == before and unit.calls == []


def test_a_dropin_without_an_owner_is_unknown_and_left_alone(
    closed_dropin: Path, unit: Unit, capsys: pytest.CaptureFixture[str]
) -> None:
    closed_dropin.parent.mkdir(parents=True)
    closed_dropin.write_text("[Service]\nEnvironment=MYSQLD_OPTS=--skip-networking\n")
    assert main(["mariadb", "reopen-stale"]) == 75
    assert "cannot tell whether its restore still runs" in capsys.readouterr().out
    assert closed_dropin.exists() and unit.calls == []


def test_the_runbooks_check_the_dropin_before_the_unit_and_restart_only_after_reopen_stale() -> None:
    # A running restore's drop-in (75) answers before systemctl: a restore stops MariaDB while it moves data in.
    assert f"{HOST_TOOL} check restore-closed && systemctl is-active mariadb" == MARIADB_UP
    assert mariadb_restart(240).startswith(f"{HOST_TOOL} mariadb reopen-stale && state=$(systemctl is-active mariadb)")
