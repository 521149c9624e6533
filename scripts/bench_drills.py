#!/usr/bin/env python3
"""`make bench-drills`: the MTTR of every runbook's fault drill on the lab, against a baseline.

For each runbook, in one run on the converged lab: the baseline is the same runbook on the healthy
lab (diagnose, checks, verify: what it costs to confirm nothing is wrong), then `portalops drill run`
injects the runbook's fault and measures the runbook from start to end (the MTTR). Printed: MTTR,
baseline, their ratio (the price of the repair itself) and the plan's target where it sets one
(service-level L1 faults: 30 s; the database: the restore drill's RTO from the newest drill report).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from portalops import faultdrill
from portalops.runbook import registry

REPO = Path(__file__).resolve().parent.parent

ENV = {
    **os.environ,
    "CONTAINERS_CONF": str(REPO / "lab" / "containers.conf"),
    "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
}


def portalops(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "portalops.cli", *args]
    return subprocess.run(argv, env=ENV, cwd=REPO, capture_output=True, text=True, check=False, timeout=3600)


def restore_drill_rto() -> float:
    """The RTO of the newest restore drill report (reports/drills/*.json), 0 when there is none."""
    reports = sorted((REPO / "reports" / "drills").glob("*.json"))
    for report in reversed(reports):
        data = json.loads(report.read_text())
        rto = data.get("rto_s") or (data.get("measures") or {}).get("rto_s")
        if rto:
            return float(rto)
    return 0.0


def main() -> int:
    failed = False
    rows = []
    for runbook_id in sorted(registry.discover()):
        item = faultdrill.default_fault(runbook_id)
        started = time.monotonic()
        healthy = portalops("runbook", "run", runbook_id, "--yes")
        baseline = time.monotonic() - started
        if healthy.returncode != 0:
            sys.exit(f"bench-drills: {runbook_id} does not pass on the healthy lab:\n{healthy.stderr[-3000:]}")
        before = set(faultdrill.REPORTS_DIR.glob("*.json")) if faultdrill.REPORTS_DIR.is_dir() else set()
        result = portalops("drill", "run", runbook_id, "--record")
        new = sorted(set(faultdrill.REPORTS_DIR.glob("*.json")) - before)
        if result.returncode != 0 or not new:
            failed = True
            print(f"{runbook_id}: drill FAILED\n{result.stdout[-2000:]}{result.stderr[-2000:]}", file=sys.stderr)
            continue
        report = json.loads(new[-1].read_text())
        target = report["target_s"] or (restore_drill_rto() if runbook_id == "l1_database_lost" else 0.0)
        rows.append((runbook_id, item.id, report["mttr_s"], baseline, target))
    print(f"{'runbook':<24} {'fault':<22} {'MTTR s':>7} {'baseline s':>10} {'ratio':>6} {'target s':>9}  verdict")
    for runbook_id, fault_id, mttr, baseline, target in rows:
        verdict = "-" if not target else ("met" if mttr <= target else "MISSED")
        shown = f"{target:9.1f}" if target else f"{'-':>9}"
        print(f"{runbook_id:<24} {fault_id:<22} {mttr:7.1f} {baseline:10.1f} {mttr / baseline:6.2f} {shown}  {verdict}")
    print("\nMTTR: the runbook from start to end after the fault; baseline: the same runbook on the healthy lab.")
    print("Each drill is recorded as its runbook's latest; `make plans` puts them into docs/emergency_plans/.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
