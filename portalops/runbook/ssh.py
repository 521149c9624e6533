"""How to reach an inventory host over SSH, as Ansible's ssh would: a Fabric connection.

The inventory's connection variables come first (ansible_host, ansible_port, ansible_user, the key,
and the ``-o`` / ``-J`` / ``-F`` options of ``ansible_ssh_common_args`` and
``ansible_ssh_extra_args``); then the ssh_config OpenSSH reads (``~/.ssh/config`` and
``/etc/ssh/ssh_config``, or only the file ``-F`` names) fills what the inventory leaves open:
HostName, User, Port, IdentityFile, UserKnownHostsFile, ProxyJump, ProxyCommand. So a host behind
a bastion is reached the way Ansible reaches it.

Host keys are always checked against known_hosts (the inventory's ``UserKnownHostsFile``, else the
ssh_config's, else ``~/.ssh/known_hosts``), jump hosts' too: Fabric itself accepts any host key.
Only the inventory's ``StrictHostKeyChecking=no`` loosens that, never a config file.
"""

from __future__ import annotations

import math
import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import fabric
import paramiko

from portalops.errors import BadInput


@dataclass(frozen=True)
class Connection:
    """How to reach one inventory host, from its (templated) connection variables."""

    host: str
    address: str
    port: int = 0  # 0: the ssh_config's Port, else 22
    user: str = ""  # "": the ssh_config's User, else the local user
    key_file: str = ""
    known_hosts: tuple[str, ...] = ()
    strict: bool = True
    become: bool = False
    become_user: str = "root"
    ssh_config: str = ""  # -F: this file instead of ~/.ssh/config and /etc/ssh/ssh_config
    proxy_jump: str = ""  # -J / ProxyJump: [user@]host[:port], several separated by commas
    proxy_command: str = ""  # ProxyCommand


@dataclass(frozen=True)
class SshConfigFiles:
    """The ssh_config files read when the inventory names none (``-F``), as OpenSSH reads them."""

    user: str = "~/.ssh/config"
    system: str = "/etc/ssh/ssh_config"


def ssh_options(ssh_args: str) -> dict[str, str]:
    """The options of an ssh command line, lowercased: ``-o Key=Value`` (or ``-oKey=Value``,
    ``-o "Key Value"``), ``-J`` as proxyjump and ``-F`` as configfile. As in ssh, the first
    value of an option wins."""
    options: dict[str, str] = {}
    words = shlex.split(ssh_args)
    for i, word in enumerate(words):
        flag, attached = word[:2], word[2:]
        if flag not in ("-o", "-J", "-F"):
            continue
        value = attached or (words[i + 1] if i + 1 < len(words) else "")
        if flag == "-o":
            key, _, value = value.replace("=", " ", 1).partition(" ")
            options.setdefault(key.strip().lower(), value.strip())
        else:
            options.setdefault("proxyjump" if flag == "-J" else "configfile", value)
    return options


def connection_from_vars(host: str, hostvars: Mapping[str, Any]) -> Connection:
    """Read ansible_host/port/user, the key, become and the ssh options that matter here."""
    options = ssh_options(str(hostvars.get("ssh_args") or ""))
    try:
        port = int(hostvars.get("port") or 0)
    except ValueError as exc:
        raise BadInput(f"{host}: ansible_port {hostvars.get('port')!r} is not a number") from exc
    known = tuple(p for p in options.get("userknownhostsfile", "").split() if p.lower() != "/dev/null")
    become = hostvars.get("become")
    return Connection(
        host=host,
        address=str(hostvars.get("address") or host),
        port=port,
        user=str(hostvars.get("user") or ""),
        key_file=str(hostvars.get("key_file") or ""),
        known_hosts=known,
        strict=options.get("stricthostkeychecking", "yes").lower() not in ("no", "off", "accept-new"),
        become=become is True or str(become).lower() in ("true", "yes", "1"),
        become_user=str(hostvars.get("become_user") or "root"),
        ssh_config=options.get("configfile", ""),
        proxy_jump=options.get("proxyjump", ""),
        proxy_command=options.get("proxycommand", ""),
    )


class FabricConnection(fabric.Connection):  # type: ignore[misc]  # fabric ships no type information
    """A Fabric connection whose jump channel opens within the connect timeout: Fabric's waits up to
    an hour when the jump host cannot reach the target."""

    def open_gateway(self) -> Any:
        if isinstance(self.gateway, str):
            return super().open_gateway()
        self.gateway.open()
        return self.gateway.transport.open_channel(
            "direct-tcpip", dest_addr=(self.host, int(self.port)), src_addr=("", 0), timeout=self.connect_timeout
        )


def fabric_connection(
    conn: Connection, connect_timeout: float, files: SshConfigFiles | None = None
) -> FabricConnection:
    """The Fabric connection (not yet open) to ``conn``, through its jump hosts if it has any."""
    files = files or SshConfigFiles()
    timeout = max(1, math.ceil(connect_timeout))
    config = fabric.Config(
        lazy=True,  # no Fabric/Invoke YAML files: only the inventory and ssh_config say how to connect
        overrides={"timeouts": {"connect": timeout}},
        runtime_ssh_path=os.path.expanduser(conn.ssh_config) if conn.ssh_config else None,
        user_ssh_path=files.user,
        system_ssh_path=files.system,
    )
    config.load_ssh_config()
    kwargs: dict[str, Any] = {"banner_timeout": timeout, "auth_timeout": timeout}
    if conn.key_file:
        kwargs |= {"key_filename": [conn.key_file], "allow_agent": False, "look_for_keys": False}
    return _connection(
        conn.address,
        conn,
        config,
        gateway(conn, config, timeout),
        kwargs,
        conn.known_hosts or _config_known_hosts(config, conn.address),
        user=conn.user or None,
        port=conn.port or None,
    )


def gateway(conn: Connection, config: fabric.Config, timeout: int = 10) -> FabricConnection | str | bool:
    """The jump hosts (the first connected first, each later one through the ones before), or a
    ProxyCommand, or none (False). The inventory's setting wins over the ssh_config's; ``none``
    switches one off. A jump host is reached as its own ssh_config entry says, with the inventory's
    key added to the ones it names and, when it names no UserKnownHostsFile, the inventory's."""
    found = config.base_ssh_config.lookup(conn.address)
    for jump, command in ((conn.proxy_jump, conn.proxy_command), (found.get("proxyjump"), found.get("proxycommand"))):
        if jump or command:
            break
    else:
        return False
    if str(jump or command).strip().lower() == "none":
        return False
    if not jump:
        return str(command)
    through: FabricConnection | bool = False
    for hop in str(jump).split(","):
        hop = hop.strip().removeprefix("ssh://")
        if not hop:
            raise BadInput(f"{conn.host}: ProxyJump {jump!r} names an empty hop")
        kwargs: dict[str, Any] = {"banner_timeout": timeout, "auth_timeout": timeout}
        if conn.key_file:
            kwargs["key_filename"] = [conn.key_file]
        try:
            host = fabric.connection.derive_shorthand(hop)["host"] or hop
        except ValueError as exc:  # a port that is not a number
            raise BadInput(f"{conn.host}: cannot reach {hop!r}: {exc}") from exc
        known = _config_known_hosts(config, host) or conn.known_hosts
        through = _connection(hop, conn, config, through, kwargs, known)
    return through


def _connection(
    target: str,
    conn: Connection,
    config: fabric.Config,
    through: FabricConnection | str | bool,
    kwargs: dict[str, Any],
    known: Sequence[str],
    user: str | None = None,
    port: int | None = None,
) -> FabricConnection:
    """One hop, or the target, its host key checked against ``known``."""
    try:
        made = FabricConnection(target, user=user, port=port, config=config, gateway=through, connect_kwargs=kwargs)
    except ValueError as exc:  # a port that is not a number in a ProxyJump
        raise BadInput(f"{conn.host}: cannot reach {target!r}: {exc}") from exc
    if str(made.ssh_config.get("identitiesonly", "")).lower() == "yes":
        made.connect_kwargs |= {"allow_agent": False, "look_for_keys": False}
    # Fabric accepts any host key (AutoAddPolicy): known_hosts, else ~/.ssh/known_hosts, and an
    # unknown key refused unless the inventory says StrictHostKeyChecking=no.
    client = made.client
    client.set_missing_host_key_policy(paramiko.RejectPolicy() if conn.strict else paramiko.WarningPolicy())
    if known:
        for path in known:
            client.load_host_keys(os.path.expanduser(path))
    else:
        client.load_system_host_keys()
    return made


def _config_known_hosts(config: fabric.Config, host: str) -> tuple[str, ...]:
    """The ssh_config's UserKnownHostsFile for ``host``, the files that exist (ssh skips the others)."""
    paths = str(config.base_ssh_config.lookup(host).get("userknownhostsfile") or "").split()
    return tuple(p for p in paths if p.lower() != "/dev/null" and os.path.isfile(os.path.expanduser(p)))


def hops(made: FabricConnection) -> list[FabricConnection]:
    """The target, then its jump hosts from the nearest to the first connected."""
    chain = [made]
    while isinstance(chain[-1].gateway, FabricConnection):
        chain.append(chain[-1].gateway)
    return chain


def describe(made: FabricConnection) -> str:
    """``user@host:port``, and ``via`` the jump hosts or the ProxyCommand: where a failure happened."""
    where = " via ".join(f"{c.user}@{c.host}:{c.port}" for c in hops(made))
    last = hops(made)[-1].gateway
    return f"{where} via ProxyCommand {last!r}" if isinstance(last, str) else where
