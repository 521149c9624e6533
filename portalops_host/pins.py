"""Pins: a database snapshot whose predecessor shows mass loss keeps that predecessor from every forget until a
person releases it; `portalops-backup status` and `release`."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from portalops_host.errors import EXIT_BAD_INPUT, EXIT_OK, JobError
from portalops_host.health import mass_loss
from portalops_host.log import Log
from portalops_host.restic import run_restic
from portalops_host.retention import PIN_TAG
from portalops_host.snapshots import job_of
from portalops_host.status import previous_status, record, write_atomic
from portalops_host.times import now, parse_time, stamp


def kept_manifest(config: dict[str, Any], job_name: str) -> dict[str, Any] | None:
    """The job's kept manifest (keep_manifest): read before the job's new snapshot replaces it."""
    try:
        found: dict[str, Any] = json.loads((Path(config["status_dir"]) / "manifests" / f"{job_name}.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return found


def loss_against(
    previous: dict[str, Any] | None, current: dict[str, Any] | None, thresholds: dict[str, int]
) -> list[str]:
    """Mass loss from the predecessor's manifest to the new snapshot's (nothing to compare: none)."""
    if not previous or not current or not previous.get("snapshot_id") or "databases" not in previous:
        return []
    if previous.get("snapshot_id") == current.get("snapshot_id"):
        return []
    return mass_loss(previous, current, thresholds)


def pins_path(config: dict[str, Any]) -> Path:
    return Path(config["status_dir"]) / "pins.json"


def read_pins(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The pins this host made, with why (the repository's tags are the truth of what is pinned)."""
    try:
        found: list[dict[str, Any]] = json.loads(pins_path(config).read_text())
    except (OSError, json.JSONDecodeError):
        return []
    return found


def write_pins(config: dict[str, Any], pins: list[dict[str, Any]]) -> None:
    write_atomic(pins_path(config), json.dumps(pins, indent=2, sort_keys=True) + "\n")


def same_snapshot(snapshot: dict[str, Any], wanted: str) -> bool:
    """``wanted`` (an id or prefix) names this snapshot, or the one it was before restic tag rewrote it."""
    return bool(wanted) and (snapshot["id"].startswith(wanted) or str(snapshot.get("original", "")).startswith(wanted))


def pin_record(
    job_name: str, snapshot: dict[str, Any], flagged: str, problems: list[str], moment: dt.datetime
) -> dict[str, Any]:
    return {
        "job": job_name,
        "id": snapshot["id"],
        "short_id": snapshot.get("short_id", snapshot["id"][:8]),
        "original": snapshot.get("original") or snapshot["id"],
        "time": stamp(parse_time(snapshot["time"])),
        "pinned": stamp(moment),
        "flagged_snapshot": flagged,
        "problems": problems,
    }


def mass_loss_entry(pin: dict[str, Any]) -> dict[str, Any]:
    """A job status's ``mass_loss`` item: what is gone, in which snapshot, and which snapshot is pinned."""
    return {
        "snapshot": pin["flagged_snapshot"],
        "problems": pin["problems"],
        "pinned_snapshot": pin["short_id"],
        "pinned_snapshot_id": pin["id"],
        "pinned": pin["pinned"],
        "release": f"portalops-backup release {pin['short_id']}",
    }


def pinned_in(forget_stdout: str) -> set[str] | None:
    """Ids of the snapshots restic forget --json kept because they carry PIN_TAG (None: unreadable)."""
    try:
        groups = json.loads(forget_stdout or "[]")
        return {s["id"] for g in groups or [] for s in g.get("keep") or [] if PIN_TAG in (s.get("tags") or [])}
    except (json.JSONDecodeError, TypeError, KeyError, AttributeError):
        return None


def pin_snapshot(
    config: dict[str, Any], job_name: str, previous: dict[str, Any], flagged: str, problems: list[str], log: Log
) -> dict[str, Any]:
    """Tag the predecessor so no forget removes it; its pin record (the new id restic tag gave it)."""
    wanted = str(previous["snapshot_id"])
    log(f"{job_name}: MASS LOSS against snapshot {wanted[:8]}: {'; '.join(problems)}; pinning {wanted[:8]}")
    run_restic(config, "tag", "--add", PIN_TAG, wanted)
    listed = run_restic(config, "snapshots", "--json", "--tag", PIN_TAG, "--host", config["host"])
    found = [s for s in json.loads(listed.stdout or "[]") if same_snapshot(s, wanted)]
    if not found:
        raise JobError(f"snapshot {wanted[:8]} does not carry the tag {PIN_TAG} after restic tag")
    pin = pin_record(job_name, found[0], flagged, problems, now())
    write_pins(config, [p for p in read_pins(config) if p["id"] != pin["id"]] + [pin])
    log(f"{job_name}: snapshot {wanted[:8]} pinned as {pin['short_id']} until a person releases it")
    return pin


def pin_reason(pin: dict[str, Any] | None) -> str:
    if pin is None:
        return "pinned by hand (no record on this host)"
    return f"pinned {pin['pinned']}: snapshot {pin['flagged_snapshot']} showed {'; '.join(pin['problems'])}"


def command_release(config: dict[str, Any], wanted: str, log: Log) -> int:
    """A person's act: remove a pin (after saying what it releases); retention may then forget the snapshot."""
    pinned = json.loads(run_restic(config, "snapshots", "--json", "--tag", PIN_TAG).stdout or "[]")
    chosen = [s for s in pinned if same_snapshot(s, wanted)]
    if len(chosen) != 1:
        known = ", ".join(s.get("short_id", s["id"][:8]) for s in pinned) or "none"
        print(
            f"portalops-backup: {'more than one' if chosen else 'no'} pinned snapshot {wanted} "
            f"(pinned: {known}); nothing released",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    snapshot = chosen[0]
    pins = read_pins(config)
    pin = next((p for p in pins if p["id"] == snapshot["id"]), None)
    message = (
        f"releasing snapshot {snapshot.get('short_id', snapshot['id'][:8])} of {job_of(snapshot) or '?'} taken "
        f"{stamp(parse_time(snapshot['time']))} ({pin_reason(pin)}); retention may now forget it"
    )
    print(message, flush=True)
    log(message)
    run_restic(config, "tag", "--remove", PIN_TAG, snapshot["id"])
    write_pins(config, [p for p in pins if p["id"] != snapshot["id"]])
    # The last run's status and metrics lose the flag now, not at the next run.
    status = previous_status(Path(config["status_dir"]) / "run.json")
    if status.get("jobs") is not None:
        for job in status["jobs"] + status.get("not_run", []):
            flags = [f for f in job.get("mass_loss", []) if f.get("pinned_snapshot_id") != snapshot["id"]]
            if flags:
                job["mass_loss"] = flags
            else:
                job.pop("mass_loss", None)
        record(config, status)
    return EXIT_OK


def command_status(config: dict[str, Any]) -> int:
    """The last run's jobs, mass-loss flags and the pinned snapshots (read-only)."""
    status = previous_status(Path(config["status_dir"]) / "run.json")
    lines = []
    if status:
        lines.append(
            f"last run {status.get('run_id')}: {'ok' if status.get('ok') else 'FAILED'}, {status.get('finished')}"
        )
    for job in status.get("jobs", []) + status.get("not_run", []):
        state = "ok" if job.get("ok") else f"FAILED: {job.get('error')}"
        lines.append(f"  {job['name']}: {state}, snapshot {str(job.get('snapshot_id') or '-')[:8]}")
        for flag in job.get("mass_loss", []):
            pinned = flag.get("pinned_snapshot") or f"nothing (pin failed: {flag.get('pin_error')})"
            lines.append(
                f"    MASS LOSS in snapshot {flag['snapshot']}: {'; '.join(flag['problems'])}; pinned {pinned}"
            )
    pins = {p["id"]: p for p in read_pins(config)}
    try:
        pinned = json.loads(run_restic(config, "snapshots", "--json", "--tag", PIN_TAG).stdout or "[]")
    except (JobError, json.JSONDecodeError, subprocess.TimeoutExpired) as exc:
        lines.append(f"repository not readable ({exc}): the pins recorded on this host")
        pinned = [
            {"id": p["id"], "short_id": p["short_id"], "time": p["time"], "tags": [f"job:{p['job']}"]}
            for p in pins.values()
        ]
    lines.append(
        f"pinned snapshots: {len(pinned)}" + (" (release with: portalops-backup release ID)" if pinned else "")
    )
    for snapshot in pinned:
        lines.append(
            f"  {snapshot.get('short_id', snapshot['id'][:8])} {job_of(snapshot) or '?'} taken "
            f"{stamp(parse_time(snapshot['time']))}: {pin_reason(pins.get(snapshot['id']))}"
        )
    print("\n".join(lines))
    return EXIT_OK
