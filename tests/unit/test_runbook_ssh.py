"""How a runbook reaches a host: inventory variables and ssh_config made into a Fabric connection.

No network: the connections are built, never opened (test_runbook_hosts.py opens them against an
in-process SSH server, through a jump host too).
"""

from __future__ import annotations

from pathlib import Path

import paramiko
import pytest

from portalops.errors import BadInput, EnvironmentProblem
from portalops.runbook.live import check_connection
from portalops.runbook.ssh import (
    Connection,
    FabricConnection,
    SshConfigFiles,
    connection_from_vars,
    describe,
    fabric_connection,
    hops,
    ssh_options,
)

KEY = "AAAAC3NzaC1lZDI1NTE5AAAAIL8/zHJpkJCDFSaYf8r3dBTfoWIg9pVoiOHQg4Rc8S1f"


@pytest.fixture
def files(tmp_path: Path) -> SshConfigFiles:
    """ssh_config files of this test only: none of the machine's ~/.ssh/config or /etc/ssh/ssh_config."""
    return SshConfigFiles(user=str(tmp_path / "user_config"), system=str(tmp_path / "system_config"))


def known_hosts(tmp_path: Path, *names: str, name: str = "known_hosts") -> str:
    path = tmp_path / name
    path.write_text("".join(f"{host} ssh-ed25519 {KEY}\n" for host in names))
    return str(path)


def chain(made: FabricConnection) -> list[tuple[str, str, int]]:
    return [(c.user, c.host, c.port) for c in hops(made)]


def test_ssh_options_reads_o_j_and_f_in_every_spelling_the_first_value_wins() -> None:
    args = (
        "-o UserKnownHostsFile=/lab/known_hosts -oStrictHostKeyChecking=yes "
        '-o "ProxyCommand ssh -W %h:%p bastion" -J deploy@10.0.0.1:2222 -F ~/.ssh/site_config '
        "-o ProxyJump=ignored -C -i /some/key"
    )
    assert ssh_options(args) == {
        "userknownhostsfile": "/lab/known_hosts",
        "stricthostkeychecking": "yes",
        "proxycommand": "ssh -W %h:%p bastion",
        "proxyjump": "deploy@10.0.0.1:2222",
        "configfile": "~/.ssh/site_config",
    }
    assert ssh_options("-Jjump1,jump2 -Fcfg") == {"proxyjump": "jump1,jump2", "configfile": "cfg"}


def test_connection_from_vars_reads_the_jump_host_and_the_config_file() -> None:
    rendered = {
        "address": "db1",
        "user": "deploy",
        "ssh_args": "-F /site/ssh_config -o ProxyJump=deploy@backup1 -o UserKnownHostsFile=/lab/known_hosts ",
    }
    conn = connection_from_vars("db1", rendered)
    assert (conn.port, conn.ssh_config, conn.proxy_jump, conn.proxy_command) == (
        0,
        "/site/ssh_config",
        "deploy@backup1",
        "",
    )
    assert conn.known_hosts == ("/lab/known_hosts",)
    with pytest.raises(BadInput, match="ansible_port 'ssh' is not a number"):
        connection_from_vars("db1", {"port": "ssh"})


def test_inventory_values_make_the_connection_and_host_keys_are_checked(tmp_path: Path, files: SshConfigFiles) -> None:
    known = known_hosts(tmp_path, "10.89.60.11")
    conn = Connection("web1", "10.89.60.11", 22, "deploy", "/lab/id_ed25519", (known,))
    made = fabric_connection(conn, 10, files)
    assert chain(made) == [("deploy", "10.89.60.11", 22)]
    assert made.gateway is False
    assert made.connect_timeout == 10
    assert made.connect_kwargs["key_filename"] == ["/lab/id_ed25519"]
    assert not made.connect_kwargs["allow_agent"] and not made.connect_kwargs["look_for_keys"]
    assert isinstance(made.client._policy, paramiko.RejectPolicy), "Fabric's AutoAddPolicy would accept any key"
    assert made.client.get_host_keys().lookup("10.89.60.11") is not None
    loose = fabric_connection(Connection("web1", "10.89.60.11", strict=False, known_hosts=(known,)), 10, files)
    assert isinstance(loose.client._policy, paramiko.WarningPolicy)


def test_the_users_ssh_config_fills_what_the_inventory_leaves_open(tmp_path: Path, files: SshConfigFiles) -> None:
    """As ssh: the inventory's values win, ~/.ssh/config gives the rest (HostName, User, Port, the jump)."""
    config_known = known_hosts(tmp_path, "db1.internal", "bastion.example", name="config_known")
    Path(files.user).write_text(
        "Host db1\n  HostName db1.internal\n  User dba\n  Port 2200\n  ProxyJump ops@bastion.example:2222\n"
        f"  UserKnownHostsFile {config_known}\n"
        "Host bastion.example\n  IdentityFile ~/.ssh/bastion\n  IdentitiesOnly yes\n"
    )
    made = fabric_connection(Connection("db1", "db1"), 10, files)
    assert chain(made) == [("dba", "db1.internal", 2200), ("ops", "bastion.example", 2222)]
    jump = made.gateway
    assert jump.connect_kwargs["key_filename"] == [str(Path("~/.ssh/bastion").expanduser())]
    assert not jump.connect_kwargs["allow_agent"], "IdentitiesOnly: only the named key"
    assert made.client.get_host_keys().lookup("db1.internal") is not None, "the config's UserKnownHostsFile"
    assert isinstance(jump.client._policy, paramiko.RejectPolicy), "the jump host's key is checked too"
    assert describe(made) == "dba@db1.internal:2200 via ops@bastion.example:2222"

    inventory = fabric_connection(Connection("db1", "db1", 22, "deploy", proxy_jump="none"), 10, files)
    assert chain(inventory) == [("deploy", "db1.internal", 22)], "the inventory's values win; ProxyJump=none"


def test_a_config_file_named_with_f_replaces_the_users(tmp_path: Path, files: SshConfigFiles) -> None:
    Path(files.user).write_text("Host *\n  ProxyJump never@used\n")
    site = tmp_path / "site_config"
    site.write_text("Host db1\n  ProxyJump deploy@10.89.60.14\n")
    known = known_hosts(tmp_path, "db1", "10.89.60.14")
    conn = Connection("db1", "db1", user="deploy", key_file="/lab/key", known_hosts=(known,), ssh_config=str(site))
    made = fabric_connection(conn, 10, files)
    assert chain(made) == [("deploy", "db1", 22), ("deploy", "10.89.60.14", 22)]
    jump = made.gateway
    assert jump.connect_kwargs["key_filename"] == ["/lab/key"], "the inventory's key reaches the jump host too"
    assert jump.client.get_host_keys().lookup("10.89.60.14") is not None, "and its known_hosts"


def test_jump_hosts_are_connected_in_the_order_ssh_visits_them(tmp_path: Path, files: SshConfigFiles) -> None:
    """ProxyJump a,b: a first, b through a, the target through b (Fabric's own reading reverses them)."""
    conn = Connection("db1", "10.0.2.5", proxy_jump="ssh://ops@outer.example:2022,inner", user="deploy")
    made = fabric_connection(conn, 10, files)
    assert [c.host for c in hops(made)] == ["10.0.2.5", "inner", "outer.example"]
    assert hops(made)[-1].gateway is False
    assert (hops(made)[-1].user, hops(made)[-1].port) == ("ops", 2022)


def test_a_proxy_command_is_handed_to_fabric_and_a_bad_jump_is_named(files: SshConfigFiles) -> None:
    conn = Connection("db1", "10.0.2.5", proxy_command="ssh -W %h:%p bastion", user="deploy")
    made = fabric_connection(conn, 10, files)
    assert made.gateway == "ssh -W %h:%p bastion"
    assert describe(made) == "deploy@10.0.2.5:22 via ProxyCommand 'ssh -W %h:%p bastion'"
    with pytest.raises(BadInput, match="db1: cannot reach 'bastion:ssh'"):
        fabric_connection(Connection("db1", "10.0.2.5", proxy_jump="bastion:ssh"), 10, files)
    with pytest.raises(BadInput, match="empty hop"):
        fabric_connection(Connection("db1", "10.0.2.5", proxy_jump="a,,b"), 10, files)


def test_a_missing_ssh_config_file_stops_the_run_before_an_incident(tmp_path: Path) -> None:
    """Fabric skips a config file it cannot read; ssh -F fails, and so does portalops, before anything runs."""
    conn = Connection("db1", "db1", ssh_config=str(tmp_path / "absent"))
    with pytest.raises(EnvironmentProblem, match=r"db1: ssh config file .*absent \(-F\) not found"):
        check_connection(conn)
