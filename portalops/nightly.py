"""``portalops nightly``: back up every host, restore the newest backups on the drill host, verify, report.

The cron/CI entry point (contrib/systemd/portalops-nightly.*; ``scripts/nightly`` is a shim to it). No
TTY needed; one exit code: 0 backups and drill succeeded; 1 a backup or the drill failed (see
reports/nightly/<UTC>.md); 2 bad input (a non-lab inventory whose vault the lab's public password
opens); 3 environment (another nightly run holds the lock, ansible-playbook is missing).

What the hosts say is read as data: backup.yml and restore_drill.yml run with Ansible's JSON callback;
each backup client's run status (the wrapper's ``run.json``, which the play reads back) gives the job
lines, and the drill's verdict comes from the report ``portalops.drill_report`` wrote for this run.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from portalops.ansible_json import JSON_CALLBACK_ENV, callback_document, host_results
from portalops.drill_report import verdict_line
from portalops.errors import EnvironmentProblem
from portalops.inventory import REPO_ROOT
from portalops.vault import LAB_INVENTORY, ansible_env, refuse_lab_password

REPORTS = REPO_ROOT / "reports"
STATUS_TASK = "Read the run's status"  # playbooks/backup.yml: the wrapper's run.json, slurped


@dataclass
class Played:
    """One playbook run: its exit code, the JSON callback's document (empty when it printed none)."""

    code: int
    document: dict[str, Any] = field(default_factory=dict)


def ansible_playbook() -> str:
    """The ansible-playbook beside this Python (the virtualenv's), else the one on PATH."""
    beside = Path(sys.executable).parent / "ansible-playbook"
    found = str(beside) if beside.exists() else shutil.which("ansible-playbook")
    if not found:
        raise EnvironmentProblem("ansible-playbook is missing; run `make setup`")
    return found


def play(name: str, inventory: str | None, log: Path) -> Played:
    """``playbooks/<name>`` with the JSON callback (the change records' callback still on); all of it logged."""
    argv = [ansible_playbook(), str(REPO_ROOT / "playbooks" / name), *(["-i", inventory] if inventory else [])]
    env = {
        # The lab's vault id for the lab only; another inventory's comes from ANSIBLE_VAULT_IDENTITY_LIST.
        **ansible_env(inventory or LAB_INVENTORY),
        "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
        "PATH": f"{Path(argv[0]).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        **JSON_CALLBACK_ENV,
        # portalops_changes records the run as a change, as it does for a person's run.
        "ANSIBLE_CALLBACKS_ENABLED": JSON_CALLBACK_ENV["ANSIBLE_CALLBACKS_ENABLED"] + ",portalops_changes",
    }
    result = subprocess.run(argv, env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    with log.open("a") as handle:
        handle.write(f"$ {' '.join(argv)}\n{result.stdout}{result.stderr}\n(exit {result.returncode})\n\n")
    try:
        return Played(result.returncode, callback_document(result.stdout))
    except ValueError:
        return Played(result.returncode)


def job_line(job: Mapping[str, Any]) -> str:
    """One job of the wrapper's run status, as the report lists it."""
    if job.get("ok"):
        done = f"ok, snapshot {str(job.get('snapshot_id', ''))[:8]}, {job.get('files')} files, "
        done += f"{job.get('bytes_added')} bytes added"
    else:
        done = f"FAILED: {job.get('error', 'no error recorded')}"
    return f"{job.get('name')}: {done} ({job.get('duration_s')} s)"


def backup_lines(played: Played) -> list[str]:
    """Each client's jobs from its run status, then every failed or unreachable host with its message."""
    lines, failed = [], []
    for task, host, result in host_results(played.document):
        if task == STATUS_TASK and result.get("content"):
            status = json.loads(base64.b64decode(str(result["content"])))
            lines += [f"{host}: {job_line(job)}" for job in status.get("jobs", [])]
        if result.get("failed") or result.get("unreachable"):
            failed.append(f"FAILED {host}: {task}: {result.get('msg', '')}".rstrip(": "))
    if not played.document:
        failed.append(f"FAILED: backup.yml printed no result (exit {played.code})")
    return lines + failed


def drill_verdict(since: float, played: Played, log: Path) -> tuple[str, Path | None]:
    """The verdict of the drill report this run wrote (reports/drills/<UTC>.json), and its Markdown."""
    written = [p for p in (REPORTS / "drills").glob("*.json") if p.stat().st_mtime >= since]
    if not written:
        return f"FAIL: the drill did not finish (exit {played.code}); see {log}", None
    newest = max(written, key=lambda p: p.stat().st_mtime)
    summary = json.loads(newest.read_text())["summary"]
    return verdict_line(summary), newest.with_suffix(".md")


@contextmanager
def one_at_a_time(directory: Path) -> Iterator[None]:
    with (directory / ".lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise EnvironmentProblem(
                "another nightly run is in progress (reports/nightly/.lock); not starting"
            ) from None
        yield


def run(inventory: str | None, out: TextIO, clock: Callable[[], float] = time.time) -> int:
    refuse_lab_password(inventory or LAB_INVENTORY)
    ansible_playbook()  # missing: say so before taking the lock
    out_dir = REPORTS / "nightly"
    out_dir.mkdir(parents=True, exist_ok=True)
    with one_at_a_time(out_dir):
        began = clock()
        stamp = datetime.fromtimestamp(began, UTC).strftime("%Y%m%dT%H%M%SZ")
        log = out_dir / f"{stamp}.log"

        print(f"nightly {stamp}: backing up every host (playbooks/backup.yml)", file=out, flush=True)
        backup = play("backup.yml", inventory, log)
        lines = backup_lines(backup)
        for line in lines:
            print(f"  {line}", file=out, flush=True)

        # The drill runs even after a failed backup: it then proves what the last good backups restore.
        print("nightly: restore drill on the drill host (playbooks/restore_drill.yml)", file=out, flush=True)
        drill_started = clock()
        drill = play("restore_drill.yml", inventory, log)
        drill_line, drill_report = drill_verdict(drill_started - 1, drill, log)
        print(f"  {drill_line}", file=out, flush=True)

        ok = backup.code == 0 and drill.code == 0
        report = [
            f"# Nightly run {stamp}",
            "",
            f"Verdict: **{'PASS' if ok else 'FAIL'}** in {clock() - began:.0f} s",
            "",
            f"## Backups (exit {backup.code})",
            "",
            *[f"- {line}" for line in lines],
            "",
            f"## Restore drill (exit {drill.code})",
            "",
            f"- {drill_line}",
            *([f"- report: {drill_report}"] if drill_report else []),
            "",
            f"Full log: {log}",
        ]
        (out_dir / f"{stamp}.md").write_text("\n".join(report) + "\n")
        print(f"nightly: {'PASS' if ok else 'FAIL'}; report {out_dir / (stamp + '.md')}", file=out, flush=True)
        return 0 if ok else 1
