"""Helpers of playbooks/patch.yml that are easier to get right (and test) in Python.

python -m portalops.patch_report pending --mode security|full   < apt-get -s output
    the upgrades a run applies, as JSON (name, old, new, origin)
python -m portalops.patch_report report --run-dir DIR --started T [--stopped-at HOST --why TEXT]
    reports/patch/<UTC timestamp>.json and .md from each host's result; exit 1 when a host failed
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# apt-get -s: "Inst openssl [3.0.11-1~deb12u1] (3.0.11-1~deb12u2 Debian-Security:12/stable-security [amd64])"
INST = re.compile(r"^Inst (?P<name>\S+) (?:\[(?P<old>[^\]]+)\] )?\((?P<new>\S+) (?P<origin>[^)]*)\)")


def pending(simulation: str, mode: str) -> list[dict[str, str]]:
    """The upgrades apt would make; security mode keeps those from a Debian-Security origin."""
    found = []
    for line in simulation.splitlines():
        match = INST.match(line)
        if not match:
            continue
        item = {k: v or "" for k, v in match.groupdict().items()}
        if mode == "security" and "Debian-Security" not in item["origin"]:
            continue
        found.append(item)
    return found


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
    pend = sub.add_parser("pending")
    pend.add_argument("--mode", choices=["security", "full"], required=True)
    rep = sub.add_parser("report")
    rep.add_argument("--run-dir", type=Path, required=True)
    rep.add_argument("--started", type=float, required=True)
    rep.add_argument("--stopped-at", default="")
    rep.add_argument("--why", default="")
    args = parser.parse_args(argv)
    if args.command == "pending":
        found = pending(sys.stdin.read(), args.mode)
        lines = [f"{p['name']}: {p['old'] or '(new)'} -> {p['new']}" for p in found] or ["nothing to upgrade"]
        print(json.dumps({"packages": found, "lines": lines}))
        return 0
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
