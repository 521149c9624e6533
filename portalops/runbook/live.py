"""The real :class:`~portalops.runbook.engine.Runtime`: SSH to inventory hosts, notify per inventory."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from portalops.errors import EnvironmentProblem
from portalops.inventory import REPO_ROOT, Inventory, load_inventory
from portalops.probe import PROBE_VARS
from portalops.resolve import CONNECTION_VARS, resolve_together, resolve_vars, shared_answers
from portalops.runbook.engine import Options, RunResult, Runtime, run_runbook
from portalops.runbook.hosts import Host, LocalHost, SshHost
from portalops.runbook.lock import TargetLock
from portalops.runbook.model import Runbook
from portalops.runbook.notify import Notifier, channels_from_config
from portalops.runbook.planning import PlannedStep, context_for, expand, make_plan
from portalops.runbook.ssh import Connection, connection_from_vars
from portalops.service.changes import INCIDENT_VARIABLE, RECORDS_VARIABLE
from portalops.vault import ansible_env

INCIDENTS_DIR = Path(os.environ.get("PORTALOPS_INCIDENTS_DIR", REPO_ROOT / "incidents"))


def check_connection(connection: Connection) -> None:
    """Fail before an incident opens when this machine lacks the key, known_hosts or the ssh config file."""
    hint = "`portalops lab up` creates the lab's" if ".lab" in connection.key_file else "see the inventory"
    if connection.key_file and not Path(connection.key_file).is_file():
        raise EnvironmentProblem(f"{connection.host}: SSH key {connection.key_file} not found ({hint})")
    for path in connection.known_hosts:
        if not Path(os.path.expanduser(path)).is_file():
            raise EnvironmentProblem(f"{connection.host}: known_hosts {path} not found ({hint})")
    if connection.ssh_config and not Path(os.path.expanduser(connection.ssh_config)).is_file():
        raise EnvironmentProblem(f"{connection.host}: ssh config file {connection.ssh_config} (-F) not found ({hint})")


def connections_for(rendered: dict[str, dict[str, object]], hosts: Sequence[str]) -> dict[str, Connection]:
    connections = {h: connection_from_vars(h, rendered[h]) for h in hosts}
    for connection in connections.values():
        check_connection(connection)
    return connections


# What a run renders of every host, once (portalops.resolve): how to connect, and whom to tell. The
# drills' own connections ask the same question, so a drill and the run it starts share one answer.
RUN_VARS: dict[str, str] = {**CONNECTION_VARS, "notify": "portalops_notify | default(None)"}


def ssh_hosts(source: str, hosts: Sequence[str]) -> dict[str, Host]:
    """Root shells on inventory hosts, connected as runbook steps connect."""
    connections = connections_for(resolve_vars(source, list(hosts), RUN_VARS), hosts)
    return {name: SshHost(connection) for name, connection in connections.items()}


def run_live(
    runbook: Runbook,
    source: str,
    progress: Callable[[str], None],
    confirm: Callable[[str], bool],
    options: Options,
    incidents: Path = INCIDENTS_DIR,
) -> RunResult:
    """A runbook against real hosts: plan from the inventory, then run it holding its targets."""
    inventory = load_inventory(source)
    context = context_for(source)
    plan = make_plan(runbook, inventory, options.limit, context)
    hosts = expand(inventory, options.limit or runbook.targets)
    with TargetLock(source, hosts, f"runbook {runbook.id}", options.resume) as lock:
        runtime = live_runtime(source, inventory, plan, context, progress, confirm, incidents)
        told = runtime.opened

        def opened(incident: str) -> None:
            lock.note(incident)
            told(incident)

        runtime.opened = opened
        return run_runbook(runbook, plan, runtime, options)


def controller(env: dict[str, str]) -> tuple[LocalHost, Callable[[str], None]]:
    """The controller's shell, and what tells it the incident once it is open (or resumed): the
    playbooks its steps run then record their changes naming the incident (``$PORTALOPS_INCIDENT``)."""
    local = LocalHost(REPO_ROOT, env)

    def opened(name: str) -> None:
        local.env[INCIDENT_VARIABLE] = name

    return local, opened


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
    # One Ansible process for the run's variables and the probe's; the probe steps' `portalops probe`
    # gets the probe's from this run (shared_answers) instead of asking Ansible again.
    resolve_together(source, RUN_VARS, PROBE_VARS)
    rendered = resolve_vars(source, list(dict.fromkeys([*hosts, first])), RUN_VARS)
    connections = connections_for(rendered, hosts)

    def ssh(name: str) -> Host:
        return SshHost(connections[name])

    # The runbooks' own ansible and ansible-playbook steps open the vault as portalops does; the steps'
    # records (changes, an incident's evidence) go where this run's incident is.
    local, opened = controller(
        {**ansible_env(source), RECORDS_VARIABLE: str(incidents), **shared_answers(source, PROBE_VARS)}
    )
    return Runtime(
        hosts=ssh,
        local=local,
        opened=opened,
        notifier=Notifier(channels_from_config(rendered[first].get("notify"))),
        confirm=confirm,
        progress=progress,
        incidents=incidents,
        context=context,
        inventory_source=source,
    )
