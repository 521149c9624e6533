"""One runbook at a time per host: the lock, its holder's name, the CLI's exit 3, drills, --resume paths."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from portalops import faultdrill
from portalops.cli import main
from portalops.errors import EnvironmentProblem, ExitCode
from portalops.inventory import LAB_INVENTORY, REPO_ROOT
from portalops.runbook.lock import TargetLock
from tests.unit.test_faultdrill import make_drill

LAB = str(LAB_INVENTORY)

# Another process holding hosts of the lab until its stdin closes, as a second responder's run would.
HOLDER = """
import sys
from pathlib import Path
from portalops.runbook.lock import TargetLock
lock = TargetLock(sys.argv[1], sys.argv[3].split(","), "runbook l1_portal_unreachable", directory=Path(sys.argv[2]))
lock.acquire()
lock.note("20261203T010000Z-l1_portal_unreachable")
print("held", flush=True)
sys.stdin.read()
"""


@contextmanager
def held_elsewhere(lock_dir: Path, hosts: str, source: str = LAB) -> Iterator[subprocess.Popen[str]]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, source, str(lock_dir), hosts],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "held"
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_an_overlapping_run_is_refused_naming_the_holder(lock_dir: Path) -> None:
    with held_elsewhere(lock_dir, "web1,cms1") as holder:
        with pytest.raises(EnvironmentProblem) as caught:
            TargetLock(LAB, ["cms1", "db1"], "runbook l1_database_lost").acquire()
        message = caught.value.message
        assert message.startswith(f"cms1 of inventory {LAB} is busy: runbook l1_portal_unreachable by ")
        assert f"pid {holder.pid} (incident 20261203T010000Z-l1_portal_unreachable) since 20" in message
        assert "not starting runbook l1_database_lost" in message
        # Hosts nobody holds are free, and a refused run kept none of its hosts.
        with TargetLock(LAB, ["db1", "backup1"], "runbook l3_backup_stale"):
            pass
        # The same host names in another inventory are other hosts.
        with TargetLock(str(REPO_ROOT / "inventory" / "example"), ["web1"], "runbook x"):
            pass


def test_the_lock_is_freed_when_its_process_dies(lock_dir: Path) -> None:
    with held_elsewhere(lock_dir, "web1") as holder:
        with pytest.raises(EnvironmentProblem):
            TargetLock(LAB, ["web1"], "runbook l1_portal_unreachable").acquire()
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
        with TargetLock(LAB, ["web1"], "runbook l1_portal_unreachable"):
            pass


def test_one_process_may_take_its_own_hosts_again_and_gives_them_up_once_all_are_done(lock_dir: Path) -> None:
    outer = TargetLock(LAB, ["web1", "cms1"], "drill l1_portal_unreachable / nginx_stopped")
    outer.acquire()
    inner = TargetLock(LAB, ["web1"], "runbook l1_portal_unreachable")
    inner.acquire()
    inner.note("i-1")
    holder = (lock_dir / inventory_dir() / "web1.lock").read_text()
    assert '"what": "drill l1_portal_unreachable / nginx_stopped"' in holder and '"incident": "i-1"' in holder
    inner.release()
    with pytest.raises(subprocess.CalledProcessError):  # still held by the outer lock
        take_elsewhere(lock_dir, "web1")
    outer.release()
    take_elsewhere(lock_dir, "web1")


def inventory_dir() -> str:
    return TargetLock(LAB, [], "x", directory=Path("/")).directory.name


def take_elsewhere(lock_dir: Path, hosts: str) -> None:
    """Another process takes ``hosts`` and lets them go (CalledProcessError: they are busy)."""
    code = (
        "import sys; from pathlib import Path; from portalops.runbook.lock import TargetLock;"
        "TargetLock(sys.argv[1], sys.argv[3].split(','), 'x', directory=Path(sys.argv[2])).acquire()"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    subprocess.run(
        [sys.executable, "-c", code, LAB, str(lock_dir), hosts], env=env, check=True, capture_output=True, timeout=60
    )


def test_a_second_runbook_run_exits_3_naming_the_holder(lock_dir: Path, tmp_path: Path) -> None:
    with held_elsewhere(lock_dir, "web1") as holder:
        code, _, err = cli("runbook", "run", "l1_portal_unreachable", "--yes", "--incidents", str(tmp_path))
    assert code == 3 and code == ExitCode.ENVIRONMENT
    assert err.startswith(f"portalops: web1 of inventory {LAB} is busy: runbook l1_portal_unreachable by ")
    assert f"pid {holder.pid} (incident 20261203T010000Z-l1_portal_unreachable)" in err
    assert list(tmp_path.iterdir()) == []  # no incident opened


def test_a_drill_takes_the_same_lock(lock_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log: list[tuple[str, str]] = []
    drill = make_drill(monkeypatch, log)
    with held_elsewhere(lock_dir, "web1"), pytest.raises(EnvironmentProblem, match="not starting drill"):
        drill.run("l1_portal_unreachable", faultdrill.fault("nginx_stopped"), lambda _id: pytest.fail("ran"))
    assert log == []  # nothing injected


@pytest.mark.parametrize("incident", ["../../etc", "/etc", "..", "a/../../b"])
def test_resume_refuses_a_path_outside_the_incidents_directory(incident: str, tmp_path: Path) -> None:
    (tmp_path / "incidents").mkdir()
    code, _, err = cli(
        "runbook", "run", "l1_portal_unreachable", "--resume", incident, "--incidents", str(tmp_path / "incidents")
    )
    assert code == ExitCode.BAD_INPUT
    assert f"{incident!r} is not an incident of {tmp_path / 'incidents'}" in err
