"""The report of a patch run (playbooks/patch.yml; its judgements are portalops.patch_run).

python -m portalops.patch_report report --run-dir DIR --started T [--stopped-at HOST --why TEXT]
    reports/patch/<UTC timestamp>.json and .md from each host's result; exit 1 when a host failed
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def host_packages(result: dict[str, Any]) -> list[dict[str, str]]:
    """old -> new per package, new as dpkg reports it after the upgrade."""
    installed = dict(line.split(" ", 1) for line in result.get("installed", []) if " " in line)
    return [
        {"name": p["name"], "old": p.get("old", ""), "new": installed.get(p["name"], p.get("new", ""))}
        for p in result.get("pending", [])
    ]


def build(run_dir: Path, started: float, stopped_at: str = "", why: str = "") -> dict[str, Any]:
    hosts = []
    for path in sorted(run_dir.glob("*.json"), key=lambda p: p.stat().st_mtime):
        result = json.loads(path.read_text())
        hosts.append(
            {
                "host": result["host"],
                "tier": result.get("tier", ""),
                "duration_s": round(float(result["finished"]) - float(result["started"]), 1),
                "packages": host_packages(result),
                "restarted": result.get("restarted", []),
                "reboot": result.get("reboot", ""),
                "gate": result.get("gate", []),
                "ok": not result.get("gate"),
            }
        )
    finished = datetime.now(UTC).timestamp()
    ok = not stopped_at and all(h["ok"] for h in hosts)
    return {
        "run": datetime.fromtimestamp(started, UTC).strftime("%Y%m%dT%H%M%SZ"),
        "ok": ok,
        "duration_s": round(finished - started, 1),
        "stopped_at": stopped_at,
        "why": why,
        "hosts": hosts,
    }


def markdown(report: dict[str, Any]) -> str:
    upgraded = sum(len(h["packages"]) for h in report["hosts"])
    lines = [
        f"# Patch run {report['run']}",
        "",
        f"Verdict: **{'PASS' if report['ok'] else 'FAIL'}** - {len(report['hosts'])} hosts patched, "
        f"{upgraded} package upgrades, {report['duration_s']} s",
    ]
    if report["stopped_at"]:
        lines += ["", f"The rollout stopped at **{report['stopped_at']}**: {report['why']}", ""]
        lines += ["Hosts after it in the rollout order were not touched."]
    lines += ["", "| host | tier | packages | restarted | reboot | gate | seconds |", "|---|---|---|---|---|---|---|"]
    for h in report["hosts"]:
        packages = ", ".join(f"{p['name']} {p['old']} -> {p['new']}" for p in h["packages"]) or "none"
        gate = "ok" if h["ok"] else "FAIL: " + "; ".join(h["gate"])
        lines.append(
            f"| {h['host']} | {h['tier']} | {packages} | {', '.join(h['restarted']) or '-'} | {h['reboot']} "
            f"| {gate} | {h['duration_s']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m portalops.patch_report")
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("report")
    rep.add_argument("--run-dir", type=Path, required=True)
    rep.add_argument("--started", type=float, required=True)
    rep.add_argument("--stopped-at", default="")
    rep.add_argument("--why", default="")
    args = parser.parse_args(argv)
    report = build(args.run_dir, args.started, args.stopped_at, args.why)
    out_dir = args.run_dir.parent
    base = out_dir / report["run"]
    base.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    base.with_suffix(".md").write_text(markdown(report))
    print(markdown(report).splitlines()[2])
    for h in report["hosts"]:
        print(f"{h['host']}: {'ok' if h['ok'] else 'gate FAILED'}, {len(h['packages'])} upgrades, reboot {h['reboot']}")
    if report["stopped_at"]:
        print(f"stopped at {report['stopped_at']}: {report['why']}")
    print(f"report: {base.with_suffix('.md')}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
