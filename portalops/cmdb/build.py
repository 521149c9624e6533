"""Build the CMDB document from the inventory and the recorded answers of playbooks/cmdb.yml.

Pure functions over the JSON callback's document, so unit tests feed them recorded output. A host
that did not answer stays in the document, marked unreachable with the reason: a CMDB that drops
what it cannot see would tell a diff that the host was removed.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from portalops.ansible_json import host_results
from portalops.cmdb.roles import Plays, roles_of
from portalops.errors import BadInput
from portalops.inventory import Inventory

VIEW_TASK = "Report the inventory's view of the host"
COLLECT_TASK = "Describe the host"
SCHEMA = 1


def callback_document(output: str) -> dict[str, Any]:
    """The document the JSON stdout callback printed; it starts a line."""
    start = 0 if output.startswith("{") else output.find("\n{") + 1
    if start == 0 and not output.startswith("{"):
        raise BadInput("ansible-playbook printed no JSON result")
    try:
        data, _ = json.JSONDecoder().raw_decode(output[start:])
    except json.JSONDecodeError as exc:
        raise BadInput(f"ansible-playbook printed no JSON result: {exc}") from exc
    if not isinstance(data, dict):
        raise BadInput("the JSON callback's document is not an object")
    return data


def task_results(document: dict[str, Any], task: str) -> dict[str, dict[str, Any]]:
    """Each host's result of the task named ``task``."""
    return {host: result for name, host, result in host_results(document) if name == task}


def _host_answer(result: dict[str, Any] | None) -> tuple[dict[str, Any], str]:
    """The collector's JSON object, or an empty one and why there is none."""
    if result is None:
        return {}, "no answer (the host left the play before the collector ran)"
    if result.get("unreachable"):
        return {}, f"unreachable: {str(result.get('msg', '')).strip()}"
    if result.get("failed"):
        detail = str(result.get("stderr") or result.get("msg") or "").strip()
        return {}, f"the collector failed (exit {result.get('rc', '?')}): {detail[-300:]}"
    try:
        answer = json.loads(str(result.get("stdout", "")))
    except json.JSONDecodeError as exc:
        return {}, f"the collector printed no JSON: {exc}"
    if not isinstance(answer, dict):
        return {}, "the collector's answer is not a JSON object"
    return answer, ""


def build(
    inventory: Inventory, playbook_output: dict[str, Any], generated: datetime, plays: Plays = ()
) -> dict[str, Any]:
    """The CMDB: every inventory host (with the roles site.yml's ``plays`` give it), sites, backups, contacts."""
    views = task_results(playbook_output, VIEW_TASK)
    answers = task_results(playbook_output, COLLECT_TASK)
    hosts: dict[str, Any] = {}
    jobs: list[dict[str, Any]] = []
    repositories: list[dict[str, Any]] = []
    site_view: dict[str, Any] = {}
    for host in sorted(inventory.hostvars):
        groups = inventory.groups_of(host)
        view = views.get(host, {}).get("msg")
        view = view if isinstance(view, dict) else {}
        site_view = site_view or view
        answer, error = _host_answer(answers.get(host))
        hosts[host] = {
            "groups": groups,
            "roles": roles_of(host, groups, plays),
            "address": str(inventory.hostvars[host].get("ansible_host", host)),
            "reachable": not error,
            "error": error,
            "os": answer.get("os", {}),
            "packages": answer.get("packages", {}),
            "listening": answer.get("listening", []),
            "certificates": answer.get("certificates", []),
            "errors": answer.get("errors", []),
        }
        if "backup_clients" in groups:
            for job in view.get("backup_jobs", []):
                jobs.append({"host": host, "repository": view.get("backup_repository", ""), **job})
        if "backup" in groups:
            repositories.append(
                {
                    "host": host,
                    "root": view.get("repositories_root", ""),
                    "copy_root": view.get("repositories_copy_root", ""),
                    "clients": list(view.get("repository_clients", [])),
                }
            )
    sites = [
        {
            "name": site.get("name", ""),
            "title": site.get("title", ""),
            "domains": list(site.get("domains", [])),
            "database": site.get("db_name", ""),
            "db_user": site.get("db_user", ""),
            "upstream": site.get("upstream", ""),
            "database_hosts": inventory.hosts_in("db"),
        }
        for site in site_view.get("sites", [])
    ]
    return {
        "schema": SCHEMA,
        "generated": generated.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "date": generated.strftime("%Y-%m-%d"),
        "inventory": inventory.source,
        "groups": {g: sorted(m) for g, m in sorted(inventory.groups.items()) if g not in ("all", "ungrouped")},
        "hosts": hosts,
        "sites": sites,
        "backup": {"jobs": jobs, "repositories": repositories},
        "contacts": list(site_view.get("contacts", [])),
    }
