"""One runbook at a time per host, on the lab: a second responder or a drill is turned away naming the holder.

The first responder's run holds web1 from its plan to its end; here it waits at "Run this plan?"
on a terminal (a person reading the plan), then a drill holds it while it breaks and repairs the
edge. Meanwhile a second `portalops runbook run` on the same targets exits 3 naming the holder and
changes nothing; once the holder is gone, the same run recovers.
"""

from __future__ import annotations

import os
import pty
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from portalops.inventory import LAB_INVENTORY, REPO_ROOT
from portalops.lab.config import LabConfig
from portalops.runbook.lock import LOCK_DIR, inventory_key, read_holder
from tests.integration.helpers import ENV, on, portalops

# Mostly waiting on the hosts, its CPUs idle: it runs right after the converge (conftest.lab_order).
pytestmark = pytest.mark.waits

RUNBOOK = "l1_portal_unreachable"
WEB1_LOCK = LOCK_DIR / inventory_key(str(LAB_INVENTORY)) / "web1.lock"


def start(*args: str, stdin: int | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "portalops.cli", *args],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
        cwd=REPO_ROOT,
    )


def read_until(process: subprocess.Popen[bytes], text: str, seconds: float = 180) -> str:
    """The process's stderr up to and including ``text`` (fails when it ends or times out first)."""
    assert process.stderr is not None
    seen = b""
    deadline = time.monotonic() + seconds
    while text.encode() not in seen:
        assert time.monotonic() < deadline, f"no {text!r} after {seconds} s: {seen.decode()[-2000:]}"
        ready, _, _ = select.select([process.stderr], [], [], 1)
        if ready:
            chunk = os.read(process.stderr.fileno(), 65536)
            assert chunk, f"ended (exit {process.wait()}) before {text!r}: {seen.decode()[-2000:]}"
            seen += chunk
    return seen.decode()


def wait_for_holder(pid: int, seconds: float = 180) -> dict[str, object]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        holder = read_holder(WEB1_LOCK) if WEB1_LOCK.exists() else {}
        if holder.get("pid") == pid:
            return holder
        time.sleep(0.2)
    raise AssertionError(f"pid {pid} never held web1 ({WEB1_LOCK})")


def refused_naming(pid: int, what: str) -> str:
    second = portalops("runbook", "run", RUNBOOK, "--yes")
    assert second.returncode == 3, second.stdout[-2000:] + second.stderr[-2000:]
    assert "incident " in second.stderr and "since 20" in second.stderr, second.stderr
    # The first busy host in name order: cms1 or web1 (l1_portal_unreachable targets web, cms and db).
    assert f"1 of inventory {LAB_INVENTORY} is busy: {what} by " in second.stderr, second.stderr
    assert f"@{socket.gethostname()} pid {pid} " in second.stderr, second.stderr
    return second.stderr


def test_a_second_run_on_busy_targets_exits_3_naming_the_holder(converged: LabConfig) -> None:
    controller, terminal = pty.openpty()
    first = start("runbook", "run", RUNBOOK, stdin=terminal)
    try:
        read_until(first, "Run this plan? [y/N] ")
        assert wait_for_holder(first.pid)["what"] == f"runbook {RUNBOOK}"
        refused_naming(first.pid, f"runbook {RUNBOOK}")
        # A drill takes the same lock: it breaks nothing while a responder holds the edge.
        drill = portalops("drill", "run", RUNBOOK, timeout=600)
        assert drill.returncode == 3 and f"pid {first.pid}" in drill.stderr, drill.stderr[-2000:]
        assert on("web1", "systemctl is-active nginx").stdout.strip() == "active"
        os.write(controller, b"n\n")
        assert first.wait(timeout=120) == 4  # declined: aborted, nothing done
    finally:
        if first.poll() is None:
            first.kill()
        first.wait(timeout=60)
        os.close(controller)
        os.close(terminal)

    # A drill in progress holds the edge from the injection to the undo.
    drill_run = start("drill", "run", RUNBOOK)
    try:
        assert wait_for_holder(drill_run.pid)["what"] == f"drill {RUNBOOK} / nginx_stopped"
        refused_naming(drill_run.pid, f"drill {RUNBOOK} / nginx_stopped")
        _, err = drill_run.communicate(timeout=900)
        assert drill_run.returncode == 0, err.decode()[-3000:]
    finally:
        if drill_run.poll() is None:
            drill_run.kill()
            drill_run.wait(timeout=60)
            on("web1", "systemctl start nginx")

    # Once the holder is gone the same run goes ahead and finds the portal well.
    after = portalops("runbook", "run", RUNBOOK, "--yes")
    assert after.returncode == 0, after.stdout[-2000:] + after.stderr[-2000:]
    assert f"{RUNBOOK}: recovered" in after.stderr
    assert Path(WEB1_LOCK).exists()  # the lock file stays; only the flock is gone
