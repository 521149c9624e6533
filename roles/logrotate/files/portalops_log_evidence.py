#!/usr/bin/python3
"""Evidence of log retention for node_exporter's textfile collector: how far back each log goes.

Per rotation policy of the host (its paths, the rotated files beside them included) the
modification time of the oldest file kept: that file's lines are all older, so "kept back to at
least" this time is a safe statement; and the journal's first entry. Written atomically as
``portalops_logs.prom``; the service report reads it from Prometheus ("the oldest log kept per
host"). Standard library only (Python 3.11, Debian 12).

Usage: portalops_log_evidence.py --config /etc/portalops/log-evidence.json --out DIR
Exit codes: 0 written; 2 bad configuration; 3 the output could not be written.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

FILE = "portalops_logs.prom"


def oldest_file(patterns: Iterable[str]) -> float | None:
    """The oldest modification time among the files of ``patterns`` and their rotations (``<file>-*``)."""
    times = []
    for pattern in patterns:
        for path in {*glob.glob(pattern), *glob.glob(pattern + "-*"), *glob.glob(pattern + ".*")}:
            try:
                if os.path.isfile(path):
                    times.append(os.stat(path).st_mtime)
            except OSError:
                continue  # rotated away meanwhile
    return min(times) if times else None


def first_journal_entry(journalctl: Sequence[str] = ("journalctl",)) -> float | None:
    """The journal's first entry (``__REALTIME_TIMESTAMP``, microseconds), or None without a journal."""
    try:
        with subprocess.Popen(
            [*journalctl, "--output=json", "--quiet", "--no-pager", "--output-fields=__REALTIME_TIMESTAMP"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        ) as process:
            line = process.stdout.readline() if process.stdout else ""
            process.terminate()
    except OSError:
        return None
    try:
        return int(json.loads(line)["__REALTIME_TIMESTAMP"]) / 1e6
    except (ValueError, KeyError, TypeError):
        return None


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(retention_days: int, oldest: dict[str, float | None], now: float) -> str:
    """The metrics: each policy's oldest kept file (a policy with no file yet is left out), the journal's."""
    lines = [
        "# HELP portalops_log_oldest_timestamp_seconds How far back a log is kept: the oldest kept file's mtime "
        "(journal: its first entry).",
        "# TYPE portalops_log_oldest_timestamp_seconds gauge",
    ]
    lines += [
        f'portalops_log_oldest_timestamp_seconds{{log="{_label(name)}"}} {value:.3f}'
        for name, value in sorted(oldest.items())
        if value is not None
    ]
    lines += [
        "# HELP portalops_log_retention_days The retention the host's rotation policies promise.",
        "# TYPE portalops_log_retention_days gauge",
        f"portalops_log_retention_days {retention_days}",
        "# HELP portalops_log_evidence_timestamp_seconds When this evidence was collected.",
        "# TYPE portalops_log_evidence_timestamp_seconds gauge",
        f"portalops_log_evidence_timestamp_seconds {now:.3f}",
    ]
    return "\n".join(lines) + "\n"


def load(path: Path) -> tuple[int, dict[str, list[str]], bool]:
    """``{"retention_days": N, "policies": [{"name", "paths"}], "journal": bool}``; ValueError names what is wrong."""
    data: Any = json.loads(path.read_text())
    if not isinstance(data, dict) or not str(data.get("retention_days", "")).isdigit():
        raise ValueError("needs retention_days (an integer)")
    policies: dict[str, list[str]] = {}
    for policy in data.get("policies", []):
        if not isinstance(policy, dict) or not isinstance(policy.get("name"), str):
            raise ValueError(f"a policy without a name: {policy!r}")
        paths = policy.get("paths")
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise ValueError(f"policy {policy['name']}: paths is a list of globs")
        policies[policy["name"]] = paths
    return int(data["retention_days"]), policies, str(data.get("journal", True)).lower() == "true"


def write_atomically(directory: Path, text: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=directory, prefix=".portalops_logs.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.chmod(tmp, 0o644)  # node_exporter reads it as its own user
        os.replace(tmp, directory / FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="node_exporter's textfile directory")
    args = parser.parse_args(argv)
    try:
        retention, policies, journal = load(args.config)
    except (OSError, ValueError) as exc:
        print(f"portalops_log_evidence: {args.config}: {exc}", file=sys.stderr)
        return 2
    oldest = {name: oldest_file(paths) for name, paths in policies.items()}
    if journal:
        oldest["journal"] = first_journal_entry()
    try:
        write_atomically(args.out, render(retention, oldest, time.time()))
    except OSError as exc:
        print(f"portalops_log_evidence: {args.out}: {exc}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
