"""A command's status file (JSON) and its Prometheus textfile metrics, written atomically, success or not."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from portalops_host.errors import EXIT_FAILED, EXIT_OK, LockError
from portalops_host.times import now, stamp


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, prefix=f".{path.name}.") as handle:
        handle.write(text)
    os.chmod(handle.name, mode)
    os.replace(handle.name, path)


def previous_status(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        return data
    except (OSError, json.JSONDecodeError):
        return {}


def number(value: float) -> str:
    """A sample value as Prometheus text: integers without a fraction, others to the millisecond."""
    value = float(value)
    return str(int(value)) if value.is_integer() else f"{value:.3f}"


def metrics(status: dict[str, Any]) -> str:
    """Prometheus text exposition of a run's status (node_exporter's textfile collector)."""
    host = status["host"]
    command = status["command"]
    lines = [
        "# HELP portalops_backup_last_run_timestamp_seconds When the last run of this command ended.",
        "# TYPE portalops_backup_last_run_timestamp_seconds gauge",
        f'portalops_backup_last_run_timestamp_seconds{{host="{host}",command="{command}"}} {status["finished_ts"]:.0f}',
        "# HELP portalops_backup_last_run_success 1 when every job of the last run succeeded.",
        "# TYPE portalops_backup_last_run_success gauge",
        f'portalops_backup_last_run_success{{host="{host}",command="{command}"}} {1 if status["ok"] else 0}',
        "# HELP portalops_backup_exit_code Exit code of the last run.",
        "# TYPE portalops_backup_exit_code gauge",
        f'portalops_backup_exit_code{{host="{host}",command="{command}"}} {status["exit_code"]}',
    ]
    series: dict[str, tuple[str, Callable[[dict[str, Any]], float]]] = {
        "portalops_backup_job_success": ("1 when the job succeeded in the last run.", lambda j: 1 if j["ok"] else 0),
        "portalops_backup_job_last_success_timestamp_seconds": (
            "When the job last succeeded.",
            lambda j: j.get("last_success_ts") or 0,
        ),
        "portalops_backup_job_duration_seconds": ("Duration of the job in the last run.", lambda j: j["duration_s"]),
        "portalops_backup_job_bytes_added": (
            "Bytes the job added to the repository.",
            lambda j: j.get("bytes_added", 0),
        ),
        "portalops_backup_job_files": ("Files in the job's snapshot.", lambda j: j.get("files", 0)),
        "portalops_backup_mass_loss": (
            "1 while a snapshot of the job showed mass loss against its predecessor, which stays pinned "
            "until a person runs portalops-backup release.",
            lambda j: 1 if j.get("mass_loss") else 0,
        ),
    }
    carried = ("portalops_backup_job_last_success_timestamp_seconds", "portalops_backup_mass_loss")
    for name, (help_text, value) in series.items():
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
        jobs = status["jobs"] + (status.get("not_run", []) if name in carried else [])
        for job in jobs:
            lines.append(f'{name}{{host="{host}",job="{job["name"]}"}} {number(value(job))}')
    lines += [
        "# HELP portalops_backup_job_snapshot_info The job's newest snapshot.",
        "# TYPE portalops_backup_job_snapshot_info gauge",
    ]
    for job in status["jobs"]:
        if job.get("snapshot_id"):
            labels = f'host="{host}",job="{job["name"]}",snapshot_id="{job["snapshot_id"]}"'
            lines.append(f"portalops_backup_job_snapshot_info{{{labels}}} 1")
    return "\n".join(lines) + "\n"


def record(config: dict[str, Any], status: dict[str, Any]) -> None:
    status_dir = Path(config["status_dir"])
    name = status["command"]
    write_atomic(status_dir / f"{name}.json", json.dumps(status, indent=2, sort_keys=True) + "\n")
    if config.get("metrics_dir"):
        write_atomic(Path(config["metrics_dir"]) / f"portalops_backup_{name}.prom", metrics(status))


@contextlib.contextmanager
def run_lock(config: dict[str, Any]) -> Iterator[None]:
    path = Path(config.get("lock_file", "/run/lock/portalops-backup.lock"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockError(f"another portalops-backup run holds {path}") from None
        yield


def simple_status(config: dict[str, Any], command: str, started: dt.datetime, error: str, extra: dict[str, Any]) -> int:
    finished = now()
    status = {
        "command": command,
        "host": config["host"],
        "repository": config["repository"],
        "started": stamp(started),
        "finished": stamp(finished),
        "finished_ts": finished.timestamp(),
        "duration_s": round((finished - started).total_seconds(), 3),
        "ok": not error,
        "exit_code": EXIT_FAILED if error else EXIT_OK,
        "jobs": [],
        "errors": [error] if error else [],
        **extra,
    }
    record(config, status)
    return int(status["exit_code"])
