"""An interrupted run stops what it started on the host: a real SSH session, sudo and timeout on db1.

A responder's Ctrl-C used to close the SSH session and leave the remote command (a restore, say)
running while the journal said "interrupted". The step now gets SIGTERM on the host, and its own
handler runs (the backup wrapper puts the old data directory back on SIGTERM) within the kill grace.
"""

from __future__ import annotations

import threading
import time

from portalops.inventory import LAB_INVENTORY
from portalops.lab.config import LabConfig
from portalops.runbook.hosts import CommandResult
from portalops.runbook.live import ssh_hosts
from tests.integration.helpers import on

MARK = "/tmp/portalops-test-stopped"
STEP = f"rm -f {MARK}; trap 'echo cleaned up > {MARK}; exit 143' TERM; sleep 900 & wait"


def test_an_interrupted_step_is_stopped_on_the_host_and_cleans_up(converged: LabConfig) -> None:
    host = ssh_hosts(str(LAB_INVENTORY), ["db1"])["db1"]
    results: list[CommandResult] = []
    worker = threading.Thread(target=lambda: results.append(host.run(STEP, 3600)))
    worker.start()
    try:
        for _ in range(100):
            if on("db1", "pgrep -f 'sleep [9]00'", check=False).returncode == 0:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the step never started on db1")
        said = host.stop()
        worker.join(60)
    finally:
        on("db1", "pkill -f 'sleep [9]00'", check=False)
        host.close()
    assert len(said) == 1 and "SIGTERM sent to" in said[0], said
    assert results and results[0].rc == 143, results
    assert on("db1", f"cat {MARK}").stdout.strip() == "cleaned up", "the step's own TERM handler ran"
    assert on("db1", "pgrep -f 'sleep [9]00'", check=False).returncode == 1, "nothing of the step is left running"
    assert on("db1", "ls /tmp/portalops-step-*.pid 2>/dev/null || true").stdout.strip() == "", "pid file removed"
