"""Where commands run: the controller, and SSH against an in-process paramiko server on 127.0.0.1.

The SSH server runs each command with sh on this machine, so the client side
(known_hosts, key authentication, the remote ``timeout``, exit status and
streams) is exercised for real without a lab host.
"""

from __future__ import annotations

import shlex
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest
from paramiko.common import AUTH_FAILED, AUTH_SUCCESSFUL, OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED, OPEN_SUCCEEDED

from portalops.inventory import REPO_ROOT
from portalops.resolve import CONNECTION_VARS, adhoc_argv, parse_adhoc, resolve_vars
from portalops.runbook.hosts import (
    TIMED_OUT,
    UNREACHABLE,
    CommandResult,
    LocalHost,
    SshHost,
    kill_grace,
    remote_command,
)
from portalops.runbook.ssh import Connection, SshConfigFiles, connection_from_vars


class Server(paramiko.ServerInterface):
    """One client connection's server; the commands and forwardings of all are in the shared lists."""

    def __init__(self, client_key: paramiko.PKey, commands: list[str], forwards: list[tuple[str, int]]) -> None:
        self.client_key = client_key
        self.commands = commands
        self.forwards = forwards  # where a jump host's client asked to go (direct-tcpip)
        self.channels: dict[int, tuple[str, int]] = {}
        self.accepted: list[paramiko.Channel] = []

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return OPEN_SUCCEEDED if kind == "session" else OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_direct_tcpip_request(
        self, chanid: int, origin: tuple[str, int], destination: tuple[str, int]
    ) -> int:
        self.forwards.append(destination)
        self.channels[chanid] = destination
        return OPEN_SUCCEEDED

    def forward(self, transport: paramiko.Transport) -> None:
        """As sshd does for ssh -J: each direct-tcpip channel joined to a TCP connection to its destination."""
        while transport.is_active():
            channel = transport.accept(0.2)
            if channel is None:
                continue
            self.accepted.append(channel)  # kept: a dropped paramiko Channel closes itself when collected
            if channel.get_id() not in self.channels:
                continue
            upstream = socket.create_connection(self.channels.pop(channel.get_id()))
            threading.Thread(target=_pump, args=(channel, upstream), daemon=True).start()
            threading.Thread(target=_pump, args=(upstream, channel), daemon=True).start()

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        ok = username == "deploy" and key.get_base64() == self.client_key.get_base64()
        return AUTH_SUCCESSFUL if ok else AUTH_FAILED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        self.commands.append(command.decode())
        threading.Thread(target=self._exec, args=(channel, command.decode()), daemon=True).start()
        return True

    @staticmethod
    def _exec(channel: paramiko.Channel, command: str) -> None:
        proc = subprocess.run(["sh", "-c", command], capture_output=True, check=False)
        channel.sendall(proc.stdout)
        channel.sendall_stderr(proc.stderr)
        channel.send_exit_status(proc.returncode)
        # EOF, and the client closes (as it does after the exit status). Not close(): paramiko answers the exec
        # request only after check_channel_exec_request returns, and a command that ended first (on a loaded
        # machine) closed the channel before that answer: the client's exec_command raised "Channel closed.",
        # which sshd, answering first, never makes it see.
        channel.shutdown_write()


def _pump(source: Any, sink: Any) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        sink.close()


class SshFixture:
    def __init__(self, tmp_path: Path) -> None:
        self.host_key = paramiko.ECDSAKey.generate()
        # The lab's kind of key: ed25519 in OpenSSH format, as `portalops lab up` makes it with ssh-keygen.
        self.key_file = tmp_path / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key_file)], check=True)
        client_key = paramiko.Ed25519Key(filename=str(self.key_file))
        self.client_key = client_key
        self.server = Server(client_key, [], [])
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.port = self.listener.getsockname()[1]
        self.known_hosts = tmp_path / "known_hosts"
        self.known_hosts.write_text(
            f"[127.0.0.1]:{self.port} {self.host_key.get_name()} {self.host_key.get_base64()}\n"
        )
        self.transports: list[paramiko.Transport] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            transport = paramiko.Transport(sock)
            transport.add_server_key(self.host_key)
            server = Server(self.client_key, self.server.commands, self.server.forwards)
            transport.start_server(server=server)
            threading.Thread(target=server.forward, args=(transport,), daemon=True).start()
            self.transports.append(transport)

    def connection(self, **changes: Any) -> Connection:
        base: dict[str, Any] = {
            "host": "web1",
            "address": "127.0.0.1",
            "port": self.port,
            "user": "deploy",
            "key_file": str(self.key_file),
            "known_hosts": (str(self.known_hosts),),
        }
        return Connection(**{**base, **changes})

    def close(self) -> None:
        self.listener.close()
        for transport in self.transports:
            transport.close()


@pytest.fixture
def ssh(tmp_path: Path) -> Iterator[SshFixture]:
    fixture = SshFixture(tmp_path)
    yield fixture
    fixture.close()


def test_ssh_runs_commands_and_returns_status_and_streams(ssh: SshFixture) -> None:
    host = SshHost(ssh.connection())
    result = host.run("echo out; echo err >&2; exit 3", timeout=10)
    again = host.run('printf "it\'s %s" fine', timeout=10)
    host.close()
    assert (result.rc, result.stdout, result.stderr.strip()) == (3, "out\n", "err")
    assert again.ok
    assert again.stdout == "it's fine"
    assert len(ssh.transports) == 1, "one connection per host for the whole run"
    assert ssh.server.commands[0].startswith("timeout --kill-after=5 10 sh -c ")


def test_ssh_command_times_out_on_the_host(ssh: SshFixture) -> None:
    result = SshHost(ssh.connection()).run("sleep 5", timeout=0.5)
    assert result.rc == TIMED_OUT
    assert result.timed_out


def test_unknown_host_key_is_refused(ssh: SshFixture, tmp_path: Path) -> None:
    other = tmp_path / "other_known_hosts"
    other.write_text(f"[127.0.0.1]:{ssh.port} ecdsa-sha2-nistp256 {paramiko.ECDSAKey.generate().get_base64()}\n")
    result = SshHost(ssh.connection(known_hosts=(str(other),))).run("true", timeout=5)
    assert result.unreachable
    assert result.rc == UNREACHABLE
    assert "web1: ssh deploy@127.0.0.1" in result.stderr


def test_wrong_user_and_closed_port_are_unreachable(ssh: SshFixture) -> None:
    assert SshHost(ssh.connection(user="intruder")).run("true", timeout=5).unreachable
    closed = SshHost(ssh.connection(port=9), connect_timeout=2).run("true", timeout=5)
    assert closed.unreachable
    assert closed.stderr == "web1: ssh deploy@127.0.0.1:9: Unable to connect to port 9 on 127.0.0.1"


def test_become_wraps_the_command_in_sudo() -> None:
    assert remote_command("systemctl restart nginx", 60, become=False) == (
        "timeout --kill-after=6 60 sh -c 'systemctl restart nginx'"
    )
    wrapped = remote_command("echo 'a'", 30, become=True)
    assert wrapped.startswith("sudo -n -- sh -c ")
    assert shlex.split(wrapped)[-1] == remote_command("echo 'a'", 30, become=False)
    assert remote_command("id", 5, become=True, become_user="postgres").startswith("sudo -n -u postgres -- sh -c ")


def test_connection_from_rendered_inventory_variables() -> None:
    rendered = {
        "address": "10.89.60.11",
        "port": 22,
        "user": "deploy",
        "key_file": "/lab/ssh/id_ed25519",
        "ssh_args": "-o UserKnownHostsFile=/lab/ssh/known_hosts -o StrictHostKeyChecking=yes ",
        "become": True,
        "become_user": "root",
    }
    assert connection_from_vars("web1", rendered) == Connection(
        "web1", "10.89.60.11", 22, "deploy", "/lab/ssh/id_ed25519", ("/lab/ssh/known_hosts",), True, True, "root"
    )
    loose = connection_from_vars("x", {"ssh_args": "-oStrictHostKeyChecking=no", "become": "false"})
    assert (loose.address, loose.strict, loose.become, loose.known_hosts) == ("x", False, False, ())


def test_local_host_runs_bash_in_the_repository_and_kills_on_timeout(tmp_path: Path) -> None:
    local = LocalHost(REPO_ROOT, {"PORTALOPS_TEST": "yes"})
    result = local.run("pwd; echo $PORTALOPS_TEST; exit 4", timeout=10)
    assert (result.rc, result.stdout.split()) == (4, [str(REPO_ROOT), "yes"])
    slow = local.run("sleep 5 & sleep 5; echo never", timeout=0.3)
    assert slow.timed_out
    assert slow.rc == TIMED_OUT
    assert slow.duration_s < 3


RECORDED = """{
  "plays": [{"play": {"name": "Ansible Ad-Hoc"}, "tasks": [{"hosts": {
    "web1": {"action": "ansible.builtin.debug", "changed": false,
             "msg": {"address": "10.89.60.11", "port": 22, "user": "deploy", "become": true}}}}]}],
  "stats": {}
}"""


def test_parse_adhoc_reads_the_json_callback() -> None:
    assert parse_adhoc("noise before\n" + RECORDED) == {
        "web1": {"address": "10.89.60.11", "port": 22, "user": "deploy", "become": True}
    }
    assert adhoc_argv("inv", ["web1", "db1"], {"a": "x | default(1)"})[3:] == [
        "web1,db1",
        "-m",
        "ansible.builtin.debug",
        "-a",
        'msg={{ {"a": (x | default(1))} }}',
    ]


def test_the_lab_inventory_renders_connection_variables() -> None:
    """Ansible itself renders the lab's templated key path (no host is contacted)."""
    rendered = resolve_vars(REPO_ROOT / "inventory/lab", ["web1"], CONNECTION_VARS)
    connection = connection_from_vars("web1", rendered["web1"])
    assert connection.address == "10.89.60.11"
    assert connection.user == "deploy"
    assert connection.become
    assert connection.strict
    assert connection.key_file.endswith("/ssh/id_ed25519")
    assert connection.known_hosts[0].endswith("/ssh/known_hosts")
    assert "{{" not in connection.key_file


def test_closing_the_local_host_ends_a_running_command(tmp_path: Path) -> None:
    local = LocalHost(tmp_path)
    results: list[Any] = []
    worker = threading.Thread(target=lambda: results.append(local.run("sleep 30", timeout=60)))
    worker.start()
    for _ in range(100):
        if local._running:
            break
        threading.Event().wait(0.02)
    local.close()
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert results[0].rc == -15


def test_the_last_line_is_never_an_ansible_warning() -> None:
    result = CommandResult(
        2,
        "fatal: [db1]: FAILED! => msg: mariadb is not running\n",
        "[DEPRECATION WARNING]: Use of strategy plugins not included in ansible.builtin are deprecated.\n"
        "[WARNING]: Deprecation warnings can be disabled by setting `deprecation_warnings=False`.\n",
        1.0,
    )
    assert result.last_line() == "fatal: [db1]: FAILED! => msg: mariadb is not running"


def test_a_long_step_gets_minutes_to_undo_itself_a_short_one_seconds() -> None:
    assert kill_grace(10) == 5
    assert kill_grace(300) == 30
    assert kill_grace(7 * 3600) == 600
    assert remote_command("restore", 7 * 3600, become=False).startswith("timeout --kill-after=600 25200 sh -c ")


def test_stop_sends_sigterm_to_the_running_command_and_it_ends(ssh: SshFixture, tmp_path: Path) -> None:
    """An interrupted run stops what it started on the host: the command gets SIGTERM (and can clean up)."""
    host = SshHost(ssh.connection())
    cleaned, ready = tmp_path / "cleaned", tmp_path / "ready"
    results: list[CommandResult] = []
    command = f"trap 'touch {cleaned}; exit 143' TERM; touch {ready}; sleep 30 & wait"
    worker = threading.Thread(target=lambda: results.append(host.run(command, timeout=60)))
    worker.start()
    # until the command has its handler: a SIGTERM before `trap` ran ends the shell without it (CI's loaded
    # machine once sent it that early: rc 143, no handler run)
    for _ in range(400):
        if host._running and _pid_written(host) and ready.exists():
            break
        time.sleep(0.05)
    said = host.stop()
    worker.join(20)
    host.close()
    assert len(said) == 1 and "SIGTERM sent to" in said[0], said
    assert results and results[0].rc == 143, results
    assert cleaned.exists(), "the command's own TERM handler ran"
    assert host.stop() == [], "nothing left running"


def test_a_host_behind_a_jump_host_is_reached_through_it(ssh: SshFixture, tmp_path: Path) -> None:
    """ProxyJump from the inventory: the target through the jump host's direct-tcpip channel, both host
    keys checked, and the connection named with its route when the jump host is not trusted."""
    files = SshConfigFiles(user=str(tmp_path / "none"), system=str(tmp_path / "none"))
    jump = f"deploy@127.0.0.1:{ssh.port}"
    host = SshHost(ssh.connection(proxy_jump=jump), files=files)
    result = host.run("echo behind the jump", timeout=10)
    host.close()
    assert (result.rc, result.stdout) == (0, "behind the jump\n"), result
    assert ssh.server.forwards == [("127.0.0.1", ssh.port)]
    assert len(ssh.transports) == 2, "one connection to the jump host, one through it to the target"

    unknown = SshHost(ssh.connection(proxy_jump=f"deploy@localhost:{ssh.port}"), files=files)
    refused = unknown.run("echo never", timeout=10)
    assert refused.unreachable
    assert refused.stderr.startswith(f"web1: ssh deploy@127.0.0.1:{ssh.port} via deploy@localhost:{ssh.port}: ")
    assert "not found in known_hosts" in refused.stderr
    assert ssh.server.commands[1:] == [], "nothing ran past an unknown jump host"


def _pid_written(host: SshHost) -> bool:
    return all(Path(f"/tmp/{tag}.pid").exists() for tag in host._running)
