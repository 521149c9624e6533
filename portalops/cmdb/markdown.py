"""The CMDB and its diff as Markdown for people (the JSON is the record)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from portalops.cmdb.diff import port_name


def days_left(not_after: str, generated: str) -> int | None:
    """Whole days from the document's time to a certificate's notAfter (openssl's iso_8601 form)."""
    try:
        end = datetime.strptime(not_after, "%Y-%m-%d %H:%M:%SZ")
        now = datetime.strptime(generated, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return None
    return (end - now).days


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def render(doc: dict[str, Any]) -> str:
    hosts: dict[str, Any] = doc.get("hosts", {})
    lines = [
        f"# CMDB {doc.get('date', '')}",
        "",
        f"Generated {doc.get('generated', '')} from the inventory `{doc.get('inventory', '')}` and the hosts' answers.",
        "",
        "## Hosts",
        "",
        "| host | address | groups | roles | OS | kernel | answered |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, host in hosts.items():
        os_info = host.get("os", {})
        answered = "yes" if host.get("reachable") else f"**no**: {host.get('error', '')}"
        lines.append(
            f"| {name} | {host.get('address', '')} | {', '.join(host.get('groups', []))} | "
            f"{', '.join(host.get('roles', []))} | "
            f"{_cell(os_info.get('name', '-'))} | {os_info.get('kernel', '-')} | {_cell(answered)} |"
        )
    for name, host in hosts.items():
        if not host.get("reachable"):
            continue
        lines += ["", f"## {name}", "", "| package | version |", "|---|---|"]
        lines += [f"| {p} | {v} |" for p, v in sorted(host.get("packages", {}).items())]
        lines += ["", "Listening: " + (", ".join(port_name(s) for s in host.get("listening", [])) or "nothing")]
        certs = host.get("certificates", [])
        if certs:
            lines += ["", "| certificate | subject | expires | days left |", "|---|---|---|---|"]
            for cert in certs:
                left = days_left(str(cert.get("not_after", "")), str(doc.get("generated", "")))
                lines.append(
                    f"| {cert.get('path')} | {_cell(cert.get('subject', ''))} | {cert.get('not_after')} | "
                    f"{'-' if left is None else left} |"
                )
        lines += [f"- collector: {e}" for e in host.get("errors", [])]
    lines += ["", "## Sites", "", "| site | domains | database | on | upstream |", "|---|---|---|---|---|"]
    for site in doc.get("sites", []):
        lines.append(
            f"| {site['name']} | {', '.join(site['domains'])} | {site['database']} (user {site['db_user']}) | "
            f"{', '.join(site['database_hosts'])} | {site['upstream']} |"
        )
    backup = doc.get("backup", {})
    lines += ["", "## Backup jobs", "", "| host | job | type | what | repository |", "|---|---|---|---|---|"]
    for job in backup.get("jobs", []):
        what = ", ".join(job.get("paths", []) or job.get("databases", []))
        lines.append(f"| {job['host']} | {job.get('name')} | {job.get('type')} | {what} | {job.get('repository')} |")
    lines += ["", "## Backup repositories", ""]
    lines += [
        f"- {r['host']}: {r['root']}/<client> for {', '.join(r['clients'])}; second copy {r['copy_root']}"
        for r in backup.get("repositories", [])
    ]
    lines += ["", "## Contacts", "", "| role | who | phone | email | levels |", "|---|---|---|---|---|"]
    for c in doc.get("contacts", []):
        role = f"{c.get('role_zh', '')} / {c.get('role_en', '')}"
        levels = ", ".join(str(x) for x in c.get("levels", [1, 2, 3]))
        lines.append(
            f"| {_cell(role)} | {_cell(c.get('who', ''))} | {c.get('phone', '')} | {c.get('email', '')} | {levels} |"
        )
    return "\n".join(lines) + "\n"


def render_diff(changes: dict[str, Any]) -> str:
    lines = [f"# CMDB changes from {changes['from']} to {changes['to']}", ""]
    if changes.get("unreachable"):
        lines += [f"Not compared, no answer now: {', '.join(changes['unreachable'])}", ""]
    if not changes["changed"]:
        return "\n".join([*lines, "No change.", ""])
    for key, title in (
        ("hosts_added", "Hosts added"),
        ("hosts_removed", "Hosts removed"),
        ("sites_added", "Sites added"),
        ("sites_removed", "Sites removed"),
        ("backup_jobs_added", "Backup jobs added"),
        ("backup_jobs_removed", "Backup jobs removed"),
    ):
        if changes.get(key):
            lines.append(f"- {title}: {', '.join(changes[key])}")
    for host, found in changes["hosts"].items():
        lines += ["", f"## {host}", ""]
        if "not_compared" in found:
            lines.append(f"- not compared: {found['not_compared']}")
        for what, (before, after) in found.get("os", {}).items():
            lines.append(f"- {what}: {before} -> {after}")
        for package, (before, after) in found.get("versions_changed", {}).items():
            lines.append(f"- {package}: {before} -> {after}")
        lines += [f"- installed {p} {v}" for p, v in found.get("packages_added", {}).items()]
        lines += [f"- removed {p} {v}" for p, v in found.get("packages_removed", {}).items()]
        lines += [f"- port opened: {p}" for p in found.get("ports_opened", [])]
        lines += [f"- port closed: {p}" for p in found.get("ports_closed", [])]
        for path, (before, after) in found.get("certificates_renewed", {}).items():
            lines.append(f"- certificate renewed: {path}, expiry {before} -> {after}")
        lines += [f"- certificate added: {p}" for p in found.get("certificates_added", [])]
        lines += [f"- certificate removed: {p}" for p in found.get("certificates_removed", [])]
    return "\n".join(lines) + "\n"
