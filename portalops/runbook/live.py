"""The real :class:`~portalops.runbook.engine.Runtime`: SSH to inventory hosts, notify per inventory."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from portalops.errors import EnvironmentProblem
from portalops.inventory import REPO_ROOT, Inventory
from portalops.runbook.engine import Runtime
from portalops.runbook.hosts import Connection, Host, LocalHost, SshHost, connection_from_vars
from portalops.runbook.notify import Notifier, channels_from_config
from portalops.runbook.planning import PlannedStep
from portalops.runbook.resolve import CONNECTION_VARS, resolve_vars

INCIDENTS_DIR = Path(os.environ.get("PORTALOPS_INCIDENTS_DIR", REPO_ROOT / "incidents"))


def check_connection(connection: Connection) -> None:
    """Fail before an incident opens when this machine lacks the key or known_hosts."""
    hint = "`portalops lab up` creates the lab's" if ".lab" in connection.key_file else "see the inventory"
    if connection.key_file and not Path(connection.key_file).is_file():
        raise EnvironmentProblem(f"{connection.host}: SSH key {connection.key_file} not found ({hint})")
    for path in connection.known_hosts:
        if not Path(os.path.expanduser(path)).is_file():
            raise EnvironmentProblem(f"{connection.host}: known_hosts {path} not found ({hint})")


def live_runtime(
    source: str,
    inventory: Inventory,
    plan: Sequence[PlannedStep],
    context: dict[str, str],
    progress: Callable[[str], None],
    confirm: Callable[[str], bool],
    incidents: Path = INCIDENTS_DIR,
) -> Runtime:
    hosts = list(dict.fromkeys(h for p in plan for h in p.hosts))
    first = hosts[0] if hosts else next(iter(inventory.hostvars))
    expressions = {**CONNECTION_VARS, "notify": "portalops_notify | default(None)"}
    rendered = resolve_vars(source, list(dict.fromkeys([*hosts, first])), expressions)
    connections = {h: connection_from_vars(h, rendered[h]) for h in hosts}
    for connection in connections.values():
        check_connection(connection)

    def ssh(name: str) -> Host:
        return SshHost(connections[name])

    env = {"ANSIBLE_CONFIG": os.environ.get("ANSIBLE_CONFIG", str(REPO_ROOT / "ansible.cfg"))}
    return Runtime(
        hosts=ssh,
        local=LocalHost(REPO_ROOT, env),
        notifier=Notifier(channels_from_config(rendered[first].get("notify"))),
        confirm=confirm,
        progress=progress,
        incidents=incidents,
        context=context,
        inventory_source=source,
    )
