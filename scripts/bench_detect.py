#!/usr/bin/env python3
"""`make bench-detect`: how fast the monitoring sees and repairs each L1 fault, ours against the defaults.

On the converged lab, in one run: a responder is started with the lab's configuration (its incidents
under .lab/bench-detect/), then every L1 fault below is drilled with `portalops drill run
--via-monitoring` twice: first with mon1 as site.yml leaves it (15 s scrapes and evaluations, 20 s
probes, 5 s group_wait), then with Prometheus' and Alertmanager's stock timing (1 min scrape and
evaluation, 1 min probes, 30 s group_wait, 5 min group_interval) applied by playbooks/monitoring.yml
with extra vars, and back. Printed per fault and setting: the alert's firing, the incident opened
(MTTD) and the recovery verified (MTTR), in seconds from the injection, and the defaults / ours ratio;
then mon1's Prometheus memory and its disk growth per day, projected for 50 sites by series.
Usage: scripts/bench_detect.py [FAULT ...] (default: the four L1 faults below)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from portalops.vault import lab_secret  # the virtualenv has portalops installed (make setup)

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / ".lab" / "bench-detect"
PROMETHEUS = "http://127.0.0.1:9090"
ENV = {
    **os.environ,
    "CONTAINERS_CONF": str(REPO / "lab" / "containers.conf"),
    "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
    "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
}
FAULTS = {
    "nginx_stopped": ("l1_portal_unreachable", []),
    "php_fpm_killed": ("l1_portal_unreachable", []),
    "mariadb_stopped": ("l1_portal_unreachable", []),
    "site_defaced": ("l1_defacement", ["--confirm-destructive"]),
}
STOCK = {  # Prometheus' and Alertmanager's own defaults
    "monitoring_scrape_interval_seconds": 60,
    "monitoring_probe_interval_seconds": 60,
    "monitoring_alertmanager_group_wait": "30s",
    "monitoring_alertmanager_group_interval": "5m",
}
SITES_PROJECTED = 50


def run(*argv: str, timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=ENV, cwd=REPO, capture_output=True, text=True, check=False, timeout=timeout)


def monitoring(extra: dict[str, Any]) -> None:
    """playbooks/monitoring.yml on the monitoring hosts, with ``extra`` vars (none: as site.yml leaves it)."""
    argv = ["ansible-playbook", "playbooks/monitoring.yml", "--limit", "monitoring"]
    if extra:
        argv += ["-e", json.dumps(extra)]
    done = run(*argv)
    if done.returncode != 0:
        sys.exit(f"bench-detect: {' '.join(argv)} failed:\n{done.stdout[-3000:]}")


def query(expr: str) -> float:
    url = f"{PROMETHEUS}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    with urllib.request.urlopen(url, timeout=30) as answer:  # noqa: S310 - fixed loopback URL
        result = json.load(answer)["data"]["result"]
    return float(result[0]["value"][1]) if result else 0.0


def start_responder() -> subprocess.Popen[bytes]:
    WORK.mkdir(parents=True, exist_ok=True)
    token = WORK / "token"
    token.touch(mode=0o600)
    token.write_text(lab_secret("vault_alertmanager_webhook_token"))
    config = yaml.safe_load((REPO / "contrib" / "portalops-responder-lab.yml").read_text())
    config.update(incidents=str(WORK / "incidents"), token_file=str(token))
    (WORK / "responder.yml").write_text(yaml.safe_dump(config))
    log = (WORK / "responder.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "portalops.cli", "responder", "--config", str(WORK / "responder.yml")],
        cwd=REPO,
        env=ENV,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    for _ in range(60):
        try:
            with urllib.request.urlopen("http://10.89.60.1:9099/healthz", timeout=5) as answer:
                if json.load(answer).get("status") == "ok":
                    return process
        except OSError:
            pass
        if process.poll() is not None:
            break
        time.sleep(1)
    process.terminate()
    sys.exit(f"bench-detect: the responder did not start; see {WORK / 'responder.log'}")


def drill(fault: str) -> dict[str, Any]:
    runbook, extra = FAULTS[fault]
    done = run(
        sys.executable, "-m", "portalops.cli", "drill", "run", runbook, "--fault", fault, "--via-monitoring",
        "--responder-config", str(WORK / "responder.yml"), *extra,
    )  # fmt: skip
    print(done.stdout.rstrip(), flush=True)
    report = next((line.split("report: ", 1)[1] for line in done.stdout.splitlines() if "report: " in line), "")
    if not report:
        return {"ok": False, "notes": [done.stderr.strip()[-500:]]}
    result: dict[str, Any] = json.loads((REPO / report.strip()).read_text())
    return result


def shown(value: float | None) -> str:
    return f"{value:7.1f}" if isinstance(value, int | float) else f"{'-':>7}"


def main() -> int:
    faults = sys.argv[1:] or list(FAULTS)
    unknown = [f for f in faults if f not in FAULTS]
    if unknown:
        sys.exit(f"bench-detect: unknown fault(s) {', '.join(unknown)}; known: {', '.join(FAULTS)}")
    results: dict[tuple[str, str], dict[str, Any]] = {}
    responder = start_responder()
    try:
        for setting, extra in (("ours", {}), ("defaults", STOCK)):
            print(f"== {setting}: {extra or 'mon1 as site.yml leaves it'}", flush=True)
            monitoring(extra)
            for fault in faults:
                results[(fault, setting)] = drill(fault)
    finally:
        print("== back to ours", flush=True)
        monitoring({})
        responder.terminate()
        responder.wait(timeout=60)
    print(f"\n{'fault':<16} {'setting':<9} {'firing':>7} {'MTTD':>7} {'MTTR':>7} {'closed':>7}  result")
    for fault in faults:
        for setting in ("ours", "defaults"):
            r = results[(fault, setting)]
            verdict = "ok" if r.get("ok") else "FAILED " + "; ".join(r.get("notes", []))[:80]
            print(
                f"{fault:<16} {setting:<9} {shown(r.get('firing_s'))} {shown(r.get('mttd_s'))} "
                f"{shown(r.get('mttr_s'))} {shown(r.get('closed_s'))}  {verdict}"
            )
        ours, stock = results[(fault, "ours")].get("mttd_s"), results[(fault, "defaults")].get("mttd_s")
        if ours and stock:
            print(f"{fault:<16} {'ratio':<9} MTTD defaults / ours = {stock / ours:.1f}x")
    memory = query('process_resident_memory_bytes{job="prometheus"}')
    series = query("prometheus_tsdb_head_series")
    per_day = query("rate(prometheus_tsdb_head_samples_appended_total[1h])") * 86400
    sites = max(1.0, query("count(count by (site) (probe_success))"))
    # ~1.5 bytes per compressed sample (Prometheus' own sizing rule of 1-2 bytes)
    print(f"\nmon1 Prometheus: {memory / 2**20:.0f} MiB resident, {series:.0f} series, {sites:.0f} site(s) probed")
    print(f"  disk per day ~{per_day * 1.5 / 2**20:.1f} MiB ({per_day:.0f} samples/day at ~1.5 bytes each)")
    scale = SITES_PROJECTED / sites
    print(
        f"  projected for {SITES_PROJECTED} sites (probe series scale with sites, host series do not; upper bound):"
        f" ~{memory * scale / 2**20:.0f} MiB, ~{per_day * scale * 1.5 / 2**20:.0f} MiB/day,"
        f" ~{per_day * scale * 1.5 * 400 / 2**30:.1f} GiB for the 400 days kept"
    )
    print("\nSeconds from the injection. MTTD: incident opened; MTTR: the runbook verified recovery.")
    return 0 if all(r.get("ok") for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
