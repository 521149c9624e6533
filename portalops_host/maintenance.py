"""`portalops-backup check`, `maintain` and (on the backup host) `copy` into the second copy."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time
from typing import Any

from portalops_host.errors import ConfigError, JobError
from portalops_host.log import Log
from portalops_host.restic import restic_env, rolling_subset, run_restic
from portalops_host.retention import PIN_TAG, keep_policy
from portalops_host.status import simple_status
from portalops_host.times import now, parse_time, stamp


def command_check(config: dict[str, Any], subset: str | None, log: Log, prune: bool) -> int:
    started = now()
    error = ""
    subset = subset or rolling_subset(started.date(), int(config.get("check_subsets", 7)))
    # Every client's repository has the same address on the backup host (its chroot), so the
    # failure names the client too.
    name = f"{config['host']}'s repository {config['repository']}"
    try:
        run_restic(config, "unlock", name=name)
        if prune:
            log("prune: removing data no snapshot needs any more")
            run_restic(config, "prune", name=name)
        log(f"check: repository structure and data subset {subset}")
        run_restic(config, "check", "--read-data-subset", subset, name=name)
    except (JobError, subprocess.TimeoutExpired) as exc:
        error = str(exc)
        log(f"check FAILED: {error}")
    else:
        log("check: no errors were found")
    return simple_status(config, "maintain" if prune else "check", started, error, {"subset": subset})


# A client's clock may run a little ahead of the backup host's; a snapshot dated further ahead is forged.
FUTURE_TOLERANCE = dt.timedelta(hours=1)


def future_snapshots(
    snapshots: list[dict[str, Any]], moment: dt.datetime, tolerance: dt.timedelta = FUTURE_TOLERANCE
) -> list[str]:
    """Snapshots dated after ``moment`` (beyond ``tolerance``), as "id time host". Their time is what the
    client said (restic backup --time), and retention counts from the newest snapshot (keep-within) or
    keeps the newest ones (keep-last, -daily): one forged date far ahead would let the second copy's
    forget prune every real snapshot. The second copy is never pruned while one is there."""
    return [
        f"{s.get('short_id', s['id'][:8])} {stamp(parse_time(s['time']))} {s.get('hostname', '?')}"
        for s in sorted(snapshots, key=lambda s: parse_time(s["time"]))
        if parse_time(s["time"]) > moment + tolerance
    ]


def command_copy(config: dict[str, Any], log: Log) -> int:
    """Backup host: copy each source repository's snapshots into its second copy, then forget there."""
    started = now()
    results = []
    keep = config.get("keep", {})
    for copy in config.get("copies", []):
        begin = time.monotonic()
        env = restic_env(config, copy["to_repo"], copy["password_file"])
        env["RESTIC_FROM_REPOSITORY"] = copy["from_repo"]
        env["RESTIC_FROM_PASSWORD_FILE"] = copy["from_password_file"]
        entry: dict[str, Any] = {"name": copy["name"]}
        try:
            log(f"copy {copy['name']}: {copy['from_repo']} -> {copy['to_repo']}")
            run_restic({**config, "sftp_command": ""}, "copy", env=env)
            listed = run_restic({**config, "sftp_command": ""}, "snapshots", "--json", env=env)
            future = future_snapshots(json.loads(listed.stdout or "[]"), now())
            if future:
                raise JobError(
                    f"{len(future)} snapshots dated in the future ({', '.join(future[:3])}): the second copy "
                    "is not pruned until a person checks them (restic forget ID on this host)"
                )
            # restic copy keeps tags: a snapshot a client pinned stays pinned here too.
            forget = [
                "forget",
                "--prune",
                "--json",
                "--group-by",
                "host,tags",
                *keep_policy(keep),
                "--keep-tag",
                PIN_TAG,
            ]
            run_restic({**config, "sftp_command": ""}, *forget, env=env)
            entry.update(ok=True, last_success_ts=time.time())
        except (JobError, ConfigError, subprocess.TimeoutExpired) as exc:
            entry.update(ok=False, error=str(exc))
            log(f"copy {copy['name']}: FAILED: {exc}")
        entry["duration_s"] = round(time.monotonic() - begin, 3)
        results.append(entry)
    error = "; ".join(f"{r['name']}: {r['error']}" for r in results if not r["ok"])
    return simple_status(config, "copy", started, error, {"jobs": results})
