"""portalops-backup's configuration (/etc/portalops/backup.json, rendered by the restic_backup role), checked
before any job runs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from portalops_host.errors import ConfigError
from portalops_host.retention import keep_policy

CONFIG = Path("/etc/portalops/backup.json")


JOB_TYPES = ("files", "mariadb-dump", "mariadb-backup")


def load_config(path: Path) -> dict[str, Any]:
    try:
        config: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist (is the restic_backup role applied?)") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from None
    for key in ("host", "repository", "password_file", "status_dir"):
        if not config.get(key):
            raise ConfigError(f"{path}: '{key}' is missing")
    names = set()
    for job in config.get("jobs", []):
        if job.get("type") not in JOB_TYPES:
            raise ConfigError(
                f"{path}: job {job.get('name')!r} has type {job.get('type')!r}, expected one of {JOB_TYPES}"
            )
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", str(job.get("name", ""))):
            raise ConfigError(f"{path}: job name {job.get('name')!r} must be lowercase letters, digits and '-'")
        if job["name"] in names:
            raise ConfigError(f"{path}: job {job['name']!r} appears twice")
        names.add(job["name"])
        if job["type"] == "files" and not job.get("paths"):
            raise ConfigError(f"{path}: files job {job['name']!r} has no paths")
        if job["type"] != "files" and not job.get("databases"):
            raise ConfigError(f"{path}: {job['type']} job {job['name']!r} has no databases")
        for database in job.get("databases", []):
            if not re.fullmatch(r"[A-Za-z0-9_$]+", database):
                raise ConfigError(f"{path}: job {job['name']!r}: {database!r} is not a plain database name")
    if config.get("jobs") and "keep" not in config:
        raise ConfigError(f"{path}: 'keep' (the retention policy) is missing")
    for job in config.get("jobs", []):
        # Checked before any backup: a policy that keeps nothing is refused, not discovered after a snapshot.
        keep_policy({**config.get("keep", {}), **job.get("keep", {})})
    if config.get("copies"):
        # The backup host's second copies: refused before anything is copied or forgotten.
        keep_policy(config.get("keep", {}))
    return config
