"""Checks the runbooks run on a host (`portalops-host check NAME`): exit 0 when the state is as wanted, 1 when
it is not, one line per finding. Each judges recorded state with a pure function the unit tests call."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

# Where portalops-backup keeps its status when its configuration names none (restic_backup_status_dir).
DEFAULT_STATUS_DIR = "/var/lib/portalops/backup"


def backup_age(status: dict[str, Any], hours: float, moment: float) -> tuple[list[str], bool]:
    """Each job of the last run (``status``, portalops-backup's run.json) as a line, and whether every job
    succeeded in that run and last succeeded at most ``hours`` before ``moment``. No job is not fresh."""
    jobs = status.get("jobs") or []
    lines = []
    fresh_all = bool(jobs)
    for job in jobs:
        ts = job.get("last_success_ts")
        age = (moment - float(ts)) / 3600 if ts else None
        fresh = bool(job.get("ok")) and age is not None and age <= hours
        seen = "never succeeded" if age is None else f"last success {age:.1f} h ago"
        fields = (job.get("name"), "ok" if job.get("ok") else "FAILED", seen, "" if fresh else "STALE")
        lines.append(" ".join(str(field) for field in fields))
        fresh_all = fresh_all and fresh
    return lines, fresh_all


def command_backup_age(config_path: Path, hours: float) -> int:
    """Every backup job of this host succeeded in its last run, within ``hours`` (the l3_backup_stale runbook)."""
    try:
        config = json.loads(config_path.read_text())
        status = json.loads(Path(status_dir(config), "run.json").read_text())
    except (OSError, ValueError) as exc:
        print(f"no backup status: {exc}", file=sys.stderr)
        return 1
    lines, fresh = backup_age(status, hours, time.time())
    for line in lines:
        print(line)
    return 0 if fresh else 1


def status_dir(config: dict[str, Any]) -> str:
    """Where portalops-backup keeps its status (run.json, manifests) by its configuration."""
    return str(config.get("status_dir") or DEFAULT_STATUS_DIR)


def command_status_dir(config_path: Path) -> int:
    """Print the status directory; the default when the configuration cannot be read (a host not backed up
    yet keeps nothing elsewhere)."""
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError):
        config = {}
    print(status_dir(config if isinstance(config, dict) else {}))
    return 0
