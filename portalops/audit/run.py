"""Run the three audits and write ``reports/audit/<UTC timestamp>.json`` and ``.md``."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from portalops.audit import lynis, sshaudit, testssl
from portalops.errors import CommandFailed
from portalops.inventory import REPO_ROOT, Inventory
from portalops.proc import last_line, require_tools, run
from portalops.vault import ansible_env

Progress = Callable[[str], None]


@dataclass
class HostAudit:
    host: str
    lynis_index: int | None = None
    lynis_warnings: list[str] = field(default_factory=list)
    lynis_suggestions: list[str] = field(default_factory=list)
    ssh_failures: list[str] = field(default_factory=list)
    ssh_warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass
class AuditReport:
    started: str
    min_lynis: int
    hosts: list[HostAudit]
    tls_target: str = ""
    tls_protocols: list[str] = field(default_factory=list)
    tls_problems: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        found = list(self.tls_problems)
        for h in self.hosts:
            found += [f"{h.host}: {e}" for e in h.errors]
            if h.lynis_index is not None and h.lynis_index < self.min_lynis:
                found.append(f"{h.host}: Lynis hardening index {h.lynis_index} < {self.min_lynis}")
            found += [f"{h.host}: ssh-audit fail: {f}" for f in h.ssh_failures]
        return found


def _lynis(inventory: Inventory, fetch_dir: Path, progress: Progress) -> dict[str, lynis.LynisResult | str]:
    progress(f"audit: Lynis on {len(inventory.hostvars)} hosts (playbooks/audit.yml)")
    fetch_dir.mkdir(parents=True, exist_ok=True)
    env = ansible_env(inventory.source)
    result = run(
        [
            "ansible-playbook",
            "-i",
            inventory.source,
            str(REPO_ROOT / "playbooks/audit.yml"),
            "-e",
            f"audit_fetch_dir={fetch_dir}",
        ],
        env=env,
        check=False,
        timeout=1800,
        what="Lynis playbook",
    )
    found: dict[str, lynis.LynisResult | str] = {}
    for host in inventory.hostvars:
        report = fetch_dir / f"{host}-lynis-report.dat"
        if not report.exists():
            found[host] = f"no Lynis report (playbook exit {result.returncode}: {last_line(result.stdout)})"
            continue
        try:
            found[host] = lynis.parse_report(report.read_text(errors="replace"))
        except ValueError as exc:
            found[host] = str(exc)
    return found


def _ssh_audit(address: str, port: int) -> tuple[list[str], list[str], str]:
    result = run(["ssh-audit", "-n", "-p", str(port), address], check=False, timeout=120)
    findings = sshaudit.parse_output(result.stdout)
    if not findings and result.returncode >= 3:
        return [], [], f"ssh-audit could not connect to {address}:{port}: {last_line(result.stdout + result.stderr)}"
    fails = [f"({f.kind}) {f.name}: {f.why}" for f in findings if f.level == "fail"]
    warns = [f"({f.kind}) {f.name}: {f.why}" for f in findings if f.level == "warn"]
    return fails, warns, ""


def _testssl(url: str, work: Path) -> testssl.TlsVerdict:
    out = work / "testssl.json"
    run(
        ["testssl", "--quiet", "--color", "0", "--warnings", "off", "-p", "-s", "--jsonfile", str(out), url],
        check=False,
        timeout=600,
        what="testssl",
    )
    if not out.exists():
        raise CommandFailed(f"testssl wrote no result for {url}")
    data: list[dict[str, Any]] = json.loads(out.read_text())
    return testssl.judge(data)


def run_audit(inventory: Inventory, out_dir: Path, min_lynis: int, progress: Progress) -> tuple[AuditReport, Path]:
    """Lynis runs on the hosts (a playbook) while ssh-audit and testssl.sh run here against them: the
    three read only, so they overlap, and the audit takes about as long as its longest part."""
    require_tools(
        ["ansible-playbook", "ssh-audit", "testssl"], "run `make setup` (apt-get install ssh-audit testssl.sh)"
    )
    started = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report = AuditReport(started=started, min_lynis=min_lynis, hosts=[])
    with tempfile.TemporaryDirectory(prefix="portalops-audit-") as tmp, ThreadPoolExecutor(max_workers=1) as pool:
        work = Path(tmp)
        lynis_done = pool.submit(_lynis, inventory, work / "lynis", progress)
        ssh_results: dict[str, tuple[list[str], list[str], str]] = {}
        for host in sorted(inventory.hostvars):
            hv = inventory.hostvars[host]
            progress(f"audit: ssh-audit {host}")
            ssh_results[host] = _ssh_audit(str(hv.get("ansible_host", host)), int(hv.get("ansible_port", 22)))
        urls = {str(hv["portal_public_url"]) for hv in inventory.hostvars.values() if hv.get("portal_public_url")}
        for url in sorted(urls):
            progress(f"audit: testssl {url}")
            verdict = _testssl(url, work)
            report.tls_target = url
            report.tls_protocols = verdict.offered_protocols
            report.tls_problems = [f"TLS {url}: {p}" for p in verdict.problems]
        lynis_results = lynis_done.result()
        for host in sorted(inventory.hostvars):
            audit = HostAudit(host)
            found = lynis_results[host]
            if isinstance(found, str):
                audit.errors.append(found)
            else:
                audit.lynis_index = found.hardening_index
                audit.lynis_warnings = found.warnings
                audit.lynis_suggestions = found.suggestions
            fails, warns, error = ssh_results[host]
            audit.ssh_failures, audit.ssh_warnings = fails, warns
            if error:
                audit.errors.append(error)
            report.hosts.append(audit)
    out_dir.mkdir(parents=True, exist_ok=True)
    base = out_dir / started
    base.with_suffix(".json").write_text(json.dumps(asdict(report), indent=2, ensure_ascii=False) + "\n")
    base.with_suffix(".md").write_text(markdown(report))
    return report, base.with_suffix(".md")


def markdown(report: AuditReport) -> str:
    problems = report.problems()
    lines = [
        f"# Security audit {report.started}",
        "",
        f"Verdict: **{'PASS' if not problems else 'FAIL'}** (Lynis index >= {report.min_lynis}, "
        "no ssh-audit failure, no SSLv3/TLS 1.0/1.1, no weak cipher)",
        "",
        "| host | Lynis index | Lynis warnings | ssh-audit fail | ssh-audit warn |",
        "|---|---|---|---|---|",
    ]
    for h in report.hosts:
        index = "-" if h.lynis_index is None else str(h.lynis_index)
        lines.append(
            f"| {h.host} | {index} | {len(h.lynis_warnings)} | {len(h.ssh_failures)} | {len(h.ssh_warnings)} |"
        )
    if report.tls_target:
        lines += ["", f"TLS ({report.tls_target}): offered {', '.join(report.tls_protocols) or 'nothing'}"]
    if problems:
        lines += ["", "## Problems", "", *[f"- {p}" for p in problems]]
    for h in report.hosts:
        if h.lynis_warnings or h.lynis_suggestions:
            lines += ["", f"## {h.host}: Lynis", ""]
            lines += [f"- warning {w}" for w in h.lynis_warnings]
            lines += [f"- {s}" for s in h.lynis_suggestions]
    return "\n".join(lines) + "\n"
