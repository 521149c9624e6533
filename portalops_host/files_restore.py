"""`portalops-backup verify-files` and `restore-files`: a files job's live tree against a snapshot's manifest."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from portalops_host.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, ConfigError, JobError
from portalops_host.files import (
    evidence_directory,
    files_diff,
    keep_evidence,
    live_files_manifest,
    quarantine,
    restore_from_snapshot,
)
from portalops_host.log import Log
from portalops_host.restic import run_restic
from portalops_host.snapshots import pick_snapshot
from portalops_host.status import simple_status
from portalops_host.times import now, parse_time, stamp


def files_job(config: dict[str, Any], name: str) -> dict[str, Any]:
    jobs: list[dict[str, Any]] = config.get("jobs", [])
    for job in jobs:
        if job["name"] == name:
            if job["type"] != "files":
                raise ConfigError(f"job {name!r} is a {job['type']} job, not a files job")
            return job
    raise ConfigError(f"no such job: {name}")


def files_state(
    config: dict[str, Any], job: dict[str, Any], wanted: str | None
) -> tuple[dict[str, Any], dict[str, Any], dict[str, list[str]]]:
    """The chosen snapshot, its manifest (read from the repository, not from this host, whose copy an
    intruder could have edited) and how the live tree differs from it. Reads only (--no-lock)."""
    listed = run_restic(
        config, "--no-lock", "snapshots", "--json", "--tag", f"job:{job['name']}", "--host", config["host"]
    )
    snapshot = pick_snapshot(json.loads(listed.stdout or "[]"), job["name"], wanted, "the repository")
    path = Path(config["status_dir"]) / "manifests" / f"{job['name']}.json"
    try:
        manifest: dict[str, Any] = json.loads(run_restic(config, "--no-lock", "dump", snapshot["id"], str(path)).stdout)
    except json.JSONDecodeError:
        raise JobError(f"snapshot {snapshot['short_id']} of {job['name']} carries no readable manifest") from None
    return snapshot, manifest, files_diff(manifest, live_files_manifest(manifest["paths"], job.get("exclude")))


def files_report(
    job: dict[str, Any], snapshot: dict[str, Any], manifest: dict[str, Any], diff: dict[str, list[str]]
) -> dict[str, Any]:
    return {
        "job": job["name"],
        "snapshot": snapshot["short_id"],
        "snapshot_time": stamp(parse_time(snapshot["time"])),
        "manifest_files": manifest.get("count", len(manifest.get("files", {}))),
        **diff,
        "ok": not any(diff.values()),
    }


def log_diff(diff: dict[str, list[str]], log: Log, limit: int = 500) -> None:
    for kind in ("changed", "missing", "added"):
        for path in diff[kind][:limit]:
            log(f"{kind.upper()}: {path}")
        if len(diff[kind]) > limit:
            log(f"{kind.upper()}: ... and {len(diff[kind]) - limit} more")


def command_verify_files(config: dict[str, Any], name: str, wanted: str | None, as_json: bool, log: Log) -> int:
    """Exit 0 only when the live tree is exactly what the snapshot's manifest recorded."""
    job = files_job(config, name)
    snapshot, manifest, diff = files_state(config, job, wanted)
    report = files_report(job, snapshot, manifest, diff)
    if as_json:
        print(json.dumps(report, sort_keys=True), flush=True)
    else:
        log(
            f"verify-files {name}: live files against snapshot {report['snapshot']} taken {report['snapshot_time']} "
            f"({report['manifest_files']} files)"
        )
        log_diff(diff, log)
        counts = ", ".join(f"{len(diff[k])} {k}" for k in ("changed", "missing", "added"))
        log(f"verify-files {name}: {'identical to the manifest' if report['ok'] else counts}")
    return EXIT_OK if report["ok"] else EXIT_FAILED


def command_restore_files(
    config: dict[str, Any], name: str, wanted: str | None, evidence: str | None, yes: bool, log: Log
) -> int:
    """Evidence first (changed and added files as found), then changed and missing files back from the
    snapshot, added files moved into the evidence directory, then verified again."""
    started = now()
    job = files_job(config, name)
    snapshot, manifest, diff = files_state(config, job, wanted)
    report = files_report(job, snapshot, manifest, diff)
    log(f"restore-files {name}: live files against snapshot {report['snapshot']} taken {report['snapshot_time']}")
    log_diff(diff, log)
    if report["ok"]:
        log(f"restore-files {name}: identical to the manifest, nothing to restore")
        print(json.dumps({**report, "evidence": "", "restored": [], "quarantined": [], "problems": []}), flush=True)
        return EXIT_OK
    if not yes:
        print(
            f"portalops-backup: restore-files replaces {len(diff['changed'])} changed and {len(diff['missing'])} "
            f"missing files and moves {len(diff['added'])} added ones into an evidence directory; repeat with --yes",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    directory = evidence_directory(evidence, started)
    details = {**report, "host": config["host"], "taken": stamp(started), "manifest_paths": manifest["paths"]}
    expected = {p: manifest["files"][p]["sha256"] for p in diff["changed"] + diff["missing"] if p in manifest["files"]}
    details["expected_sha256"] = expected
    sums = keep_evidence(diff["changed"] + diff["added"], directory, details)
    log(f"restore-files: evidence of {len(sums) - 1} files kept in {directory} (evidence.tar, SHA256SUMS)")
    problems = restore_from_snapshot(config, snapshot, manifest, diff["changed"] + diff["missing"], log)
    moved = quarantine(diff["added"], directory)
    for path in moved:
        log(f"QUARANTINED: {path} -> {directory / 'quarantine' / path.lstrip('/')}")
    after = files_diff(manifest, live_files_manifest(manifest["paths"], job.get("exclude")))
    remaining = [f"{kind} {path}" for kind in ("changed", "missing", "added") for path in after[kind]]
    problems += [f"still differs: {line}" for line in remaining]
    for problem in problems[:100]:
        log(f"restore-files: PROBLEM: {problem}")
    summary = {
        **report,
        "ok": not problems,
        "evidence": str(directory),
        "restored": [p for p in diff["changed"] + diff["missing"] if not any(x.startswith(p + ":") for x in problems)],
        "quarantined": moved,
        "problems": problems,
        "duration_s": round((now() - started).total_seconds(), 1),
    }
    simple_status(config, "restore-files", started, "; ".join(problems), {"restore_files": summary})
    log(f"restore-files {name}: {'verified, identical to the manifest' if not problems else 'FAILED'}")
    print(json.dumps(summary, sort_keys=True), flush=True)
    return EXIT_OK if not problems else EXIT_FAILED
