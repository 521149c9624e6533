"""Inventory variables as Ansible renders them (templates, lookups, vault).

``ansible-inventory --list`` prints variables unrendered (a site's
``-F {{ inventory_dir }}/ssh_config``), so connection settings and
``portalops_notify`` are asked of Ansible itself: one ad-hoc ``debug`` task,
which runs on the controller and touches no host, printing a dict per host
through the JSON callback.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from portalops.ansible_json import JSON_CALLBACK_ENV, callback_document, host_results
from portalops.errors import BadInput, PortalopsError
from portalops.inventory import RESOLVED
from portalops.proc import run
from portalops.vault import ansible_env, refuse_lab_password

# What SshHost needs (portalops.runbook.ssh), as Jinja expressions over a host's variables.
CONNECTION_VARS: dict[str, str] = {
    "address": "ansible_host | default(inventory_hostname)",
    "port": "ansible_port | default(0)",  # 0: the ssh_config's Port, else 22
    "user": "ansible_user | default('')",
    "key_file": "ansible_ssh_private_key_file | default(ansible_private_key_file | default(''))",
    "ssh_args": "(ansible_ssh_common_args | default('')) ~ ' ' ~ (ansible_ssh_extra_args | default(''))",
    "become": "ansible_become | default(false)",
    "become_user": "ansible_become_user | default('root')",
}


def adhoc_argv(source: str, hosts: Sequence[str], expressions: Mapping[str, str]) -> list[str]:
    body = ", ".join(f"{json.dumps(name)}: ({expr})" for name, expr in expressions.items())
    return ["ansible", "-i", source, ",".join(hosts), "-m", "ansible.builtin.debug", "-a", f"msg={{{{ {{{body}}} }}}}"]


def parse_adhoc(text: str) -> dict[str, dict[str, Any]]:
    """The ``msg`` dict of every host in the JSON callback's output."""
    try:
        data = callback_document(text)
    except ValueError as exc:
        raise BadInput(f"ansible printed no JSON result: {exc}") from exc
    found: dict[str, dict[str, Any]] = {}
    for _, host, result in host_results(data):
        if result.get("failed") or not isinstance(result.get("msg"), dict):
            raise BadInput(f"{host}: its variables do not render: {result.get('msg')}")
        found[host] = result["msg"]
    return found


def _render(source: str | Path, hosts: Sequence[str], expressions: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    env = {
        **ansible_env(source),
        **JSON_CALLBACK_ENV,
    }
    result = run(
        adhoc_argv(str(source), hosts, expressions), env=env, what=f"render variables of {source}", timeout=120
    )
    return parse_adhoc(result.stdout)


def resolve_vars(
    source: str | Path, hosts: Sequence[str], expressions: Mapping[str, str], exact: bool = True
) -> dict[str, dict[str, Any]]:
    """Render ``expressions`` for each of ``hosts`` (host patterns unless ``exact``) of the inventory at ``source``;
    asked of Ansible once per process while the inventory is unchanged (:class:`portalops.inventory.Resolved`).

    Named hosts are answered from one render of every host: a drill connects to one host, then
    another, then the runbook's targets, and each list would otherwise be a new Ansible process."""
    if not hosts:
        return {}
    refuse_lab_password(source)
    patterns = ["all"] if exact else list(hosts)
    found = RESOLVED.get(
        source, _question(source, patterns, expressions), lambda: _render(source, patterns, expressions)
    )
    if not exact:
        if not found:
            raise BadInput(f"inventory {source} has no host {', '.join(hosts)}")
        return found
    missing = sorted(set(hosts) - set(found))
    if missing:
        raise BadInput(f"inventory {source} has no host {', '.join(missing)}")
    return {host: found[host] for host in hosts}


def _question(source: str | Path, patterns: Sequence[str], expressions: Mapping[str, str]) -> tuple[object, ...]:
    return ("vars", str(Path(source).resolve()), tuple(patterns), tuple(expressions.items()))


def resolve_together(source: str | Path, *sets: Mapping[str, str]) -> None:
    """Ask Ansible once for several sets of expressions of every host, and keep each set's answer as
    ``resolve_vars`` would have got it alone: a drill needs the probe's, the first site's and the run's
    variables, each otherwise its own Ansible process. Sets already answered are not asked again.

    When the joint render fails (one expression fails on one host), nothing is kept: each set, asked
    alone later, then gets its own answer or its own error."""
    refuse_lab_password(source)
    wanted = [dict(s) for s in dict.fromkeys(tuple(s.items()) for s in sets)]
    wanted = [s for s in wanted if not RESOLVED.holds(source, _question(source, ["all"], s))]
    if len(wanted) < 2:
        return
    joint = {f"{i}.{name}": expr for i, one in enumerate(wanted) for name, expr in one.items()}
    try:
        found = _render(source, ["all"], joint)
    except PortalopsError:
        return
    for i, one in enumerate(wanted):
        answer = {host: {name: values[f"{i}.{name}"] for name in one} for host, values in found.items()}
        RESOLVED.put(source, _question(source, ["all"], one), answer)


def shared_answers(source: str | Path, *sets: Mapping[str, str]) -> dict[str, str]:
    """The environment that hands this process's answers for ``sets`` (of every host) on to the portalops
    commands it starts. Only for sets that hold no secret."""
    return RESOLVED.export(source, [_question(source, ["all"], s) for s in sets])
