"""Where a step's commands run: a host over SSH (Fabric) or the controller.

The engine sees only the :class:`Host` protocol, so tests hand it fakes.
Remote commands are wrapped in ``timeout`` on the host (a hung command dies
there, not only here) and in ``sudo -n`` when the inventory says become. A
command that outlives its time, or that an interrupted run stops (``stop``),
gets SIGTERM first and SIGKILL only after its grace (:func:`kill_grace`): a
long destructive step has minutes to put the old data back, not seconds.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import paramiko

from portalops.errors import BadInput
from portalops.runbook.ssh import Connection, FabricConnection, SshConfigFiles, describe, fabric_connection, hops

WARNING_LINE = re.compile(r"^\[(DEPRECATION )?WARNING\]")
TIMED_OUT = 124  # the exit status of coreutils timeout
UNREACHABLE = 255  # as ssh reports a connection failure
# A check that cannot tell right now (server starting, refused, too many connections, lock wait):
# sysexits' EX_TEMPFAIL, the team's convention for "unknown" (0 sound, any other exit broken).
UNKNOWN = 75
KILL_GRACE = 5  # the least time between SIGTERM and SIGKILL
MAX_KILL_GRACE = 600  # the most: a 7-hour restore gets 10 minutes to move the old data directory back
STEP_TAG = "portalops-step-"  # in the remote command line of every step, so stop() finds exactly it


def kill_grace(timeout: float) -> float:
    """Seconds between SIGTERM and SIGKILL for a command of ``timeout`` seconds: a tenth of it,
    at least KILL_GRACE and at most MAX_KILL_GRACE. A destructive step runs for hours and needs
    minutes to undo itself cleanly; a check that hangs is dead in seconds."""
    return float(min(MAX_KILL_GRACE, max(KILL_GRACE, round(timeout / 10))))


@dataclass(frozen=True)
class CommandResult:
    rc: int
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool = False
    unreachable: bool = False

    @property
    def ok(self) -> bool:
        return self.rc == 0

    @property
    def unknown(self) -> bool:
        """As a check's answer: it could not tell (exit 75, a timeout, an unreachable host), which is
        neither sound nor broken and never a reason to act."""
        return self.rc in (UNKNOWN, TIMED_OUT) or self.timed_out or self.unreachable

    def why_unknown(self) -> str:
        """Why a check could not tell, for the finding that names the host."""
        if self.unreachable:
            return f"unreachable: {self.last_line()}"
        if self.timed_out or self.rc == TIMED_OUT:
            return f"timed out after {self.duration_s:g} s"
        return f"exit {self.rc}: {self.last_line()}"

    def last_line(self) -> str:
        """The line that says what happened: the last of stderr, else of stdout, never a warning
        (ansible-playbook warns on stderr and reports its failure on stdout)."""
        for text in (self.stderr, self.stdout):
            lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
            lines = [line for line in lines if not WARNING_LINE.match(line)]
            if lines:
                return lines[-1]
        return f"exit {self.rc}"


class Host(Protocol):
    @property
    def name(self) -> str: ...

    def run(self, command: str, timeout: float) -> CommandResult: ...

    def stop(self) -> list[str]:
        """Send SIGTERM to the commands still running for this host (an interrupted run); say which."""
        ...

    def close(self) -> None: ...


class LocalHost:
    """The controller: commands run with bash in the repository, killed as a group on timeout."""

    name = "controller"

    def __init__(self, cwd: Path, env: Mapping[str, str] | None = None) -> None:
        self.cwd = cwd
        self.env = {**os.environ, **(env or {})}
        self._running: set[int] = set()  # process groups, killed by close() after an interruption

    def run(self, command: str, timeout: float) -> CommandResult:
        started = time.monotonic()
        with subprocess.Popen(
            ["bash", "-c", command],
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        ) as proc:
            self._running.add(proc.pid)
            try:
                out, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                out, err = proc.communicate()
                return CommandResult(TIMED_OUT, out, err + f"\ntimed out after {timeout:g} s", _since(started), True)
            finally:
                self._running.discard(proc.pid)
        return CommandResult(proc.returncode, out, err, _since(started))

    def stop(self) -> list[str]:
        stopped = []
        for group in list(self._running):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGTERM)
                stopped.append(f"{self.name}: SIGTERM to process group {group}")
        return stopped

    def close(self) -> None:
        self.stop()


def pid_file(tag: str) -> str:
    return f"/tmp/{tag}.pid"  # noqa: S108 - on the remote host, named by a random tag, removed at the end


def remote_command(command: str, timeout: float, become: bool, become_user: str = "root", tag: str = "") -> str:
    """The shell line sent over SSH: bounded by ``timeout`` on the host, as root when ``become``.

    With ``tag``, ``timeout`` runs in the background of a shell that writes its pid to
    :func:`pid_file` and waits for it, so :func:`stop_command` can signal it (and through it
    the command's whole process group) while the SSH session stays open.
    """
    grace = f"{kill_grace(timeout):g}"
    line = f"timeout --kill-after={grace} {timeout:g} sh -c {shlex.quote(command)}"
    if tag:
        pid = pid_file(tag)
        line = f"{line} {tag} & echo $! > {pid}; wait $!; rc=$?; rm -f {pid}; exit $rc"
    return _as_user(line, become, become_user)


def stop_command(tag: str, become: bool, become_user: str = "root") -> str:
    """SIGTERM to the ``timeout`` of the step tagged ``tag``, after checking the pid is still it."""
    pid = pid_file(tag)
    line = (
        f"pid=$(cat {pid} 2>/dev/null) || {{ echo 'already ended'; exit 0; }}; "
        f"if grep -qa {tag} /proc/$pid/cmdline 2>/dev/null && kill -TERM $pid; "
        "then echo \"SIGTERM sent to $pid\"; else echo 'already ended'; fi"
    )
    return _as_user(line, become, become_user)


def _as_user(line: str, become: bool, become_user: str) -> str:
    if not become:
        return line
    user = "" if become_user == "root" else f"-u {shlex.quote(become_user)} "
    return f"sudo -n {user}-- sh -c {shlex.quote(line)}"


class HostUnreachable(Exception):
    """SSH could not connect or authenticate; a result, not a crash, for the engine."""


class SshHost:
    """One inventory host over SSH (Fabric: ssh_config and jump hosts honoured, see
    :mod:`portalops.runbook.ssh`), connected on first use and kept for the run."""

    def __init__(
        self, connection: Connection, connect_timeout: float = 10, files: SshConfigFiles | None = None
    ) -> None:
        self.connection = connection
        self.connect_timeout = connect_timeout
        self.files = files
        self._fabric: FabricConnection | None = None
        self._running: dict[str, str] = {}  # tag -> command, while it runs

    @property
    def name(self) -> str:
        return self.connection.host

    def _connect(self) -> paramiko.SSHClient:
        if self._fabric is not None:
            return self._fabric.client  # type: ignore[no-any-return]
        made = None
        try:
            made = fabric_connection(self.connection, self.connect_timeout, self.files)
            made.open()
        except (OSError, paramiko.SSHException, BadInput) as exc:
            where = describe(made) if made is not None else self.connection.address
            if made is not None:
                _close(made)
            raise HostUnreachable(f"{self.name}: ssh {where}: {_reason(exc)}") from exc
        self._fabric = made
        return made.client  # type: ignore[no-any-return]

    def run(self, command: str, timeout: float) -> CommandResult:
        started = time.monotonic()
        try:
            client = self._connect()
        except HostUnreachable as exc:
            return CommandResult(UNREACHABLE, "", str(exc), _since(started), unreachable=True)
        tag = STEP_TAG + secrets.token_hex(6)
        line = remote_command(command, timeout, self.connection.become, self.connection.become_user, tag)
        self._running[tag] = command
        try:
            rc, out, err, timed_out = _exec(client, line, timeout + kill_grace(timeout) + 5)
        except (OSError, paramiko.SSHException) as exc:
            self.close()
            return CommandResult(UNREACHABLE, "", f"{self.name}: ssh session lost: {exc}", _since(started), False, True)
        finally:
            self._running.pop(tag, None)
        return CommandResult(rc, out, err, _since(started), timed_out or rc == TIMED_OUT)

    def stop(self) -> list[str]:
        """SIGTERM, over a session of its own, to each command still running here: an interrupted
        run must not leave a restore going on behind a journal that says "interrupted"."""
        stopped = []
        for tag, command in list(self._running.items()):
            first = command.strip().splitlines()[0][:80] if command.strip() else ""
            try:
                rc, out, err, _ = _exec(
                    self._connect(), stop_command(tag, self.connection.become, self.connection.become_user), 30
                )
                said = (out + err).strip().splitlines()
                stopped.append(f"{self.name}: {first}: {said[-1] if said else f'exit {rc}'}")
            except (OSError, paramiko.SSHException, HostUnreachable) as exc:
                stopped.append(f"{self.name}: {first}: could not be stopped: {exc}")
        return stopped

    def close(self) -> None:
        if self._fabric is not None:
            _close(self._fabric)
            self._fabric = None


def _close(made: FabricConnection) -> None:
    """The connection and its jump hosts' (Fabric closes only the first)."""
    for hop in hops(made):
        hop.close()


def _reason(exc: Exception) -> str:
    if isinstance(exc, paramiko.ChannelException):  # the jump host's answer
        return f"the jump host could not connect onward: {exc.text}"
    return str(exc).replace("[Errno None] ", "") or type(exc).__name__


def _exec(client: paramiko.SSHClient, line: str, deadline_s: float) -> tuple[int, str, str, bool]:
    transport = client.get_transport()
    if transport is None or not transport.is_active():
        raise paramiko.SSHException("connection closed")
    channel = transport.open_session(timeout=deadline_s)
    channel.exec_command(line)
    out, err = bytearray(), bytearray()
    deadline = time.monotonic() + deadline_s
    while True:
        busy = False
        while channel.recv_ready():
            out += channel.recv(65536)
            busy = True
        while channel.recv_stderr_ready():
            err += channel.recv_stderr(65536)
            busy = True
        if channel.exit_status_ready() and not busy:
            break
        if time.monotonic() > deadline:
            channel.close()
            return TIMED_OUT, _text(out), _text(err) + "\nno answer from the host in time", True
        if not busy:
            time.sleep(0.02)
    rc = channel.recv_exit_status()
    channel.close()
    return rc, _text(out), _text(err), False


def _text(data: bytes | bytearray) -> str:
    return bytes(data).decode("utf-8", errors="replace")


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)
