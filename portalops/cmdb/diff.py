"""What changed between two CMDB documents: hosts, versions, ports, certificates, sites, jobs."""

from __future__ import annotations

from typing import Any


def port_name(socket: dict[str, Any]) -> str:
    address = str(socket.get("address", ""))
    shown = f"[{address}]" if ":" in address else address
    process = f" ({socket['process']})" if socket.get("process") else ""
    return f"{socket.get('proto', 'tcp')} {shown}:{socket.get('port')}{process}"


def _ports(host: dict[str, Any]) -> dict[tuple[str, str, int], dict[str, Any]]:
    return {(str(s.get("proto")), str(s.get("address")), int(s.get("port", 0))): s for s in host.get("listening", [])}


def _host_changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    was, now = bool(old.get("reachable", True)), bool(new.get("reachable", True))
    if not (was and now):
        # Unreachable then and now: nothing to compare; the top-level "unreachable" list says so.
        if was == now:
            return {}
        then = "reachable" if was else "unreachable"
        return {
            "not_compared": f"{then} then, {'reachable' if now else 'unreachable'} now: {new.get('error', '')}".rstrip(
                ": "
            )
        }
    changes: dict[str, Any] = {}
    old_os, new_os = old.get("os", {}), new.get("os", {})
    os_changed = {
        k: [old_os.get(k), new_os.get(k)] for k in sorted({*old_os, *new_os}) if old_os.get(k) != new_os.get(k)
    }
    if os_changed:
        changes["os"] = os_changed
    old_pkgs, new_pkgs = old.get("packages", {}), new.get("packages", {})
    versions = {
        p: [old_pkgs[p], new_pkgs[p]] for p in sorted(set(old_pkgs) & set(new_pkgs)) if old_pkgs[p] != new_pkgs[p]
    }
    if versions:
        changes["versions_changed"] = versions
    if added := {p: new_pkgs[p] for p in sorted(set(new_pkgs) - set(old_pkgs))}:
        changes["packages_added"] = added
    if removed := {p: old_pkgs[p] for p in sorted(set(old_pkgs) - set(new_pkgs))}:
        changes["packages_removed"] = removed
    old_ports, new_ports = _ports(old), _ports(new)
    if opened := [port_name(new_ports[k]) for k in sorted(set(new_ports) - set(old_ports))]:
        changes["ports_opened"] = opened
    if closed := [port_name(old_ports[k]) for k in sorted(set(old_ports) - set(new_ports))]:
        changes["ports_closed"] = closed
    old_certs = {c["path"]: c for c in old.get("certificates", [])}
    new_certs = {c["path"]: c for c in new.get("certificates", [])}
    renewed = {
        path: [old_certs[path].get("not_after"), new_certs[path].get("not_after")]
        for path in sorted(set(old_certs) & set(new_certs))
        if (old_certs[path].get("sha256"), old_certs[path].get("not_after"))
        != (new_certs[path].get("sha256"), new_certs[path].get("not_after"))
    }
    if renewed:
        changes["certificates_renewed"] = renewed
    if cert_added := sorted(set(new_certs) - set(old_certs)):
        changes["certificates_added"] = cert_added
    if cert_removed := sorted(set(old_certs) - set(new_certs)):
        changes["certificates_removed"] = cert_removed
    return changes


def _named(items: list[dict[str, Any]], *keys: str) -> set[str]:
    return {"/".join(str(item.get(k, "")) for k in keys) for item in items}


def diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The changes from ``old`` to ``new``; ``changed`` says whether there are any."""
    old_hosts, new_hosts = old.get("hosts", {}), new.get("hosts", {})
    hosts = {}
    for host in sorted(set(old_hosts) & set(new_hosts)):
        if changes := _host_changes(old_hosts[host], new_hosts[host]):
            hosts[host] = changes
    result: dict[str, Any] = {
        "from": old.get("generated", ""),
        "to": new.get("generated", ""),
        "hosts_added": sorted(set(new_hosts) - set(old_hosts)),
        "hosts_removed": sorted(set(old_hosts) - set(new_hosts)),
        "hosts": hosts,
    }
    for name, items, keys in (
        ("sites", "sites", ("name",)),
        ("backup_jobs", "jobs", ("host", "name")),
    ):
        before = _named(old.get(items, []) if items == "sites" else old.get("backup", {}).get(items, []), *keys)
        after = _named(new.get(items, []) if items == "sites" else new.get("backup", {}).get(items, []), *keys)
        result[f"{name}_added"] = sorted(after - before)
        result[f"{name}_removed"] = sorted(before - after)
    result["changed"] = any(v for k, v in result.items() if k not in ("from", "to"))
    # Not a change, but what the diff could not see: a host that does not answer now.
    result["unreachable"] = sorted(h for h, found in new_hosts.items() if not found.get("reachable", True))
    return result
