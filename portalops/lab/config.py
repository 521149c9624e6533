"""What the lab should look like, read from the lab inventory.

Hosts, addresses and published ports live in ``inventory/lab``; this module
only validates them and derives the container specs.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from portalops.errors import BadInput
from portalops.inventory import REPO_ROOT, Inventory

HOSTNAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
PUBLISH_RE = re.compile(r"^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5}):(\d{1,5})$")
# The lab's containers weigh 8 times a default container (1024) for the CPU: beside them `make test`
# runs every role's molecule scenario in containers of its own, which `nice` does not reach (a
# container's processes are in its own cgroup), and the lab tests are the critical path.
CPU_SHARES = 8192


@dataclass(frozen=True)
class LabHost:
    """One lab host and the container that plays it."""

    name: str
    address: str
    groups: tuple[str, ...]
    publish: tuple[str, ...]
    command: tuple[str, ...]


@dataclass(frozen=True)
class LabConfig:
    """The whole lab: its network, its hosts and where its state lives."""

    name: str
    network: str
    subnet: str
    deploy_user: str
    hosts: tuple[LabHost, ...]
    state_dir: Path

    @property
    def container_prefix(self) -> str:
        """What every host's container name starts with."""
        return f"{self.name}-"

    def container(self, host: LabHost) -> str:
        return f"{self.container_prefix}{host.name}"

    def host(self, name: str) -> LabHost:
        for host in self.hosts:
            if host.name == name:
                return host
        known = ", ".join(h.name for h in self.hosts)
        raise BadInput(f"no lab host named {name!r}; the lab has: {known}")

    @property
    def ssh_key(self) -> Path:
        return self.state_dir / "ssh" / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.state_dir / "ssh" / "known_hosts"

    @property
    def label(self) -> str:
        return f"portalops.lab={self.name}"


def default_state_dir() -> Path:
    return Path(os.environ.get("PORTALOPS_LAB_DIR", REPO_ROOT / ".lab")).resolve()


def _str_list(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise BadInput(f"{what} must be a string or a list of strings, got {value!r}")


def lab_config(inventory: Inventory, state_dir: Path | None = None) -> LabConfig:
    """Validate the lab variables of ``inventory`` and build a :class:`LabConfig`."""
    if not inventory.hostvars:
        raise BadInput(f"inventory {inventory.source} defines no hosts")
    first = next(iter(inventory.hostvars.values()))

    def common(var: str) -> str:
        values = {str(hv.get(var, "")) for hv in inventory.hostvars.values()}
        if len(values) != 1 or "" in values:
            raise BadInput(
                f"inventory {inventory.source}: {var} must be set once for all lab hosts "
                f"(group_vars/all), found {sorted(values)}"
            )
        return values.pop()

    name = common("lab_name")
    network = common("lab_network")
    subnet_text = common("lab_subnet")
    deploy_user = str(first.get("ansible_user", ""))
    if not HOSTNAME_RE.match(name) or not HOSTNAME_RE.match(network):
        raise BadInput(f"lab_name {name!r} and lab_network {network!r} must be lowercase names")
    if not re.match(r"^[a-z_][a-z0-9_-]*$", deploy_user):
        raise BadInput(f"ansible_user {deploy_user!r} is not a valid user name")
    try:
        subnet = ipaddress.ip_network(subnet_text)
    except ValueError as exc:
        raise BadInput(f"lab_subnet {subnet_text!r} is not a network: {exc}") from exc

    hosts: list[LabHost] = []
    seen: dict[str, str] = {}
    for host_name in sorted(inventory.hostvars):
        hv = inventory.hostvars[host_name]
        if not HOSTNAME_RE.match(host_name):
            raise BadInput(f"lab host name {host_name!r} is not a valid hostname")
        address = str(hv.get("ansible_host", ""))
        try:
            ip = ipaddress.ip_address(address)
        except ValueError as exc:
            raise BadInput(f"{host_name}: ansible_host {address!r} is not an address") from exc
        if ip not in subnet or ip in (subnet.network_address, subnet.network_address + 1):
            raise BadInput(f"{host_name}: ansible_host {address} is not a host address in {subnet}")
        if address in seen:
            raise BadInput(f"{host_name}: ansible_host {address} is already used by {seen[address]}")
        seen[address] = host_name
        publish = _str_list(hv.get("lab_publish"), f"{host_name}: lab_publish")
        for spec in publish:
            if not PUBLISH_RE.match(spec):
                raise BadInput(f"{host_name}: lab_publish {spec!r} must look like 127.0.0.1:8443:443")
        command = _str_list(hv.get("lab_command", "/sbin/init"), f"{host_name}: lab_command")
        hosts.append(
            LabHost(
                name=host_name,
                address=address,
                groups=tuple(inventory.groups_of(host_name)),
                publish=publish,
                command=command,
            )
        )
    return LabConfig(
        name=name,
        network=network,
        subnet=str(subnet),
        deploy_user=deploy_user,
        hosts=tuple(hosts),
        state_dir=state_dir or default_state_dir(),
    )


def container_args(config: LabConfig, host: LabHost, image: str, pubkey: str, run_image: str = "") -> list[str]:
    """The ``podman run`` arguments for ``host``, labelled with a hash of themselves.

    The hash lets ``lab up`` reuse a container only when everything that
    defines it (image, address, ports, key) is unchanged. ``run_image``, when
    given, is what the container starts from instead of ``image``: a snapshot
    of this very host (``lab clone``), which keeps the hash of its definition,
    so the clone's own ``lab up`` reuses it.
    """
    args = [
        "--detach",
        "--name",
        config.container(host),
        "--hostname",
        host.name,
        "--network",
        config.network,
        "--ip",
        host.address,
        "--network-alias",
        host.name,
        "--systemd",
        "always",
        "--cpu-shares",
        str(CPU_SHARES),
        "--label",
        config.label,
        "--label",
        f"portalops.host={host.name}",
    ]
    for spec in host.publish:
        args += ["--publish", spec]
    body = [*args, image, *host.command]
    spec_hash = hashlib.sha256(json.dumps([body, pubkey]).encode()).hexdigest()[:16]
    return [*args, "--label", f"portalops.spec={spec_hash}", run_image or image, *host.command]


def spec_hash_of(args: list[str]) -> str:
    """The ``portalops.spec`` label value inside ``container_args`` output."""
    for arg in args:
        if arg.startswith("portalops.spec="):
            return arg.split("=", 1)[1]
    raise ValueError("container arguments carry no portalops.spec label")
