"""Turn a restore drill's result into ``reports/drills/<UTC timestamp>.json`` and ``.md``.

Run by playbooks/restore_drill.yml on the controller; prints the summary and exits 1
when any check failed, so the playbook (and scripts/nightly) fail with it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def parse_restic_time(text: str) -> datetime:
    """restic's RFC 3339 times carry nanoseconds, which datetime does not parse."""
    text = re.sub(r"\.(\d{6})\d*", r".\1", text)
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def summarise(result: dict[str, Any], started: float) -> dict[str, Any]:
    """RTO (restore start to verified site), RPO (drill start minus the oldest snapshot used), bytes,
    throughput. RTO runs from the drill host's restore start (``started_ts``) to its site check, both on
    the drill host's clock: the drill host's preparation (packages, configuration: what a warm standby
    already has) is not part of recovering the data."""
    ended = float(result.get("site_verified_ts") or result.get("finished_ts") or started)
    restore_started = float(result.get("started_ts") or started)
    snapshot_times = [parse_restic_time(s["time"]).timestamp() for s in result.get("snapshots", {}).values()]
    restored_bytes = sum(int(v) for v in result.get("bytes", {}).values())
    restore_seconds = sum(float(v) for v in result.get("phases_s", {}).values())
    checks = list(result.get("checks", []))
    if float(result.get("started_ts", 0)) < started - 60:
        checks.append(
            {"name": "result belongs to this drill", "ok": False, "problems": ["the result is older than the drill"]}
        )
    if not result.get("site_verified_ts") and not result.get("error"):
        checks.append({"name": "site verified", "ok": False, "problems": ["the restored site was never checked"]})
    failed = [c for c in checks if not c["ok"]]
    return {
        "started": datetime.fromtimestamp(started, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "ok": bool(checks) and not failed and not result.get("error"),
        "rto_s": round(ended - restore_started, 1),
        "rpo_s": round(started - min(snapshot_times), 1) if snapshot_times else None,
        "restored_bytes": restored_bytes,
        "restore_s": round(restore_seconds, 1),
        "throughput_mib_s": round(restored_bytes / restore_seconds / 2**20, 1) if restore_seconds else None,
        "checks_passed": len(checks) - len(failed),
        "checks_total": len(checks),
        "failed_checks": failed,
    }


def human_bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{size:.1f} GiB"


def markdown(report: dict[str, Any]) -> str:
    summary = report["summary"]
    result = report["result"]
    lines = [
        f"# Restore drill {summary['started']}",
        "",
        f"Verdict: **{'PASS' if summary['ok'] else 'FAIL'}** - "
        f"{summary['checks_passed']}/{summary['checks_total']} checks passed",
        "",
        "| measure | value |",
        "|---|---|",
        f"| RTO (restore start to verified site) | {summary['rto_s']} s |",
        f"| RPO (drill start minus oldest snapshot used) | {summary['rpo_s']} s |",
        f"| restored | {human_bytes(summary['restored_bytes'])} in {summary['restore_s']} s |",
        f"| throughput | {summary['throughput_mib_s']} MiB/s |",
        "",
        "## Snapshots",
        "",
        "| host | job | snapshot | taken |",
        "|---|---|---|---|",
    ]
    for snap in result.get("snapshots", {}).values():
        lines.append(f"| {snap['host']} | {snap['job']} | {snap['id'][:8]} | {snap['time'][:19]}Z |")
    lines += ["", "## Checks", "", "| check | result | detail |", "|---|---|---|"]
    listed = result.get("checks", []) + [c for c in summary["failed_checks"] if c not in result.get("checks", [])]
    for check in listed:
        detail = check.get("detail", "") if check["ok"] else "; ".join(check["problems"][:5])
        lines.append(f"| {check['name']} | {'ok' if check['ok'] else 'FAIL'} | {detail.replace('|', '/')} |")
    if result.get("phases_s"):
        lines += ["", "## Phases", "", "| phase | seconds |", "|---|---|"]
        lines += [f"| {name} | {seconds} |" for name, seconds in result["phases_s"].items()]
    if result.get("error"):
        lines += ["", f"Error: {result['error']}"]
    return "\n".join(lines) + "\n"


def verdict_line(summary: dict[str, Any]) -> str:
    """The drill's one-line verdict (stdout of this module, the nightly report's restore-drill line)."""
    return (
        f"{'PASS' if summary['ok'] else 'FAIL'}: RTO {summary['rto_s']} s, RPO {summary['rpo_s']} s, "
        f"{summary['checks_passed']}/{summary['checks_total']} checks passed, "
        f"{human_bytes(summary['restored_bytes'])} restored at {summary['throughput_mib_s']} MiB/s"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m portalops.drill_report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--result", required=True, type=Path, help="the drill host's result (fetched)")
    parser.add_argument("--started", required=True, type=float, help="UNIX time the drill started (controller)")
    parser.add_argument("--out-dir", required=True, type=Path)
    args = parser.parse_args(argv)
    try:
        result = json.loads(args.result.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        print(f"FAIL: no drill result ({exc})")
        return 1
    summary = summarise(result, args.started)
    report = {"summary": summary, "result": result}
    stamp = datetime.fromtimestamp(args.started, UTC).strftime("%Y%m%dT%H%M%SZ")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    base = args.out_dir / stamp
    base.with_suffix(".json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    base.with_suffix(".md").write_text(markdown(report))
    print(verdict_line(summary))
    for check in summary["failed_checks"]:
        print(f"FAIL {check['name']}: {'; '.join(check['problems'][:3])}")
    print(f"report: {base.with_suffix('.md')}")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
