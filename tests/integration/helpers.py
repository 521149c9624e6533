"""Helpers for lab tests: run portalops, podman and Ansible as a person would."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from portalops.ansible_json import callback_document
from portalops.inventory import REPO_ROOT
from portalops.vault import LAB_INVENTORY, ansible_env

ENV = {
    **ansible_env(LAB_INVENTORY),  # Ansible as the lab's entry points run it: with the lab's vault id
    "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
    "CONTAINERS_CONF": str(REPO_ROOT / "lab/containers.conf"),
}


def portalops(*args: str, env: dict[str, str] | None = None, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run the real ``portalops`` command, as a person or cron would."""
    return subprocess.run(
        [sys.executable, "-m", "portalops.cli", *args],
        env={**ENV, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=REPO_ROOT,
    )


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], env=ENV, capture_output=True, text=True, check=check, timeout=300)


# A running container's init: (process id, container id, the environment `podman exec` gives a command).
_RUNNING: dict[str, tuple[int, str, list[str]]] = {}


def _running(container: str) -> tuple[int, list[str]] | None:
    """The init process and exec environment of ``container`` when it runs, else None; asked of podman once
    per start (a cached process that no longer belongs to the container's cgroup is asked again)."""
    known = _RUNNING.get(container)
    if known is not None:
        pid, container_id, environment = known
        with contextlib.suppress(OSError):
            if container_id in Path(f"/proc/{pid}/cgroup").read_text():
                return pid, environment
    found = podman("inspect", "-f", "{{.State.Pid}} {{.Id}} {{json .Config.Env}}", container, check=False)
    if found.returncode != 0:
        return None
    pid_text, container_id, env_json = found.stdout.strip().split(" ", 2)
    if int(pid_text) <= 0:
        return None
    # container_uuid is systemd's, for the container's init; `podman exec` does not pass it on.
    environment = [entry for entry in json.loads(env_json) if not entry.startswith("container_uuid=")]
    _RUNNING[container] = (int(pid_text), container_id, environment)
    return int(pid_text), environment


def on(host: str, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """A shell command on a lab host as root (for setting up faults and reading state).

    It enters the running container's namespaces (nsenter: its mounts, network, processes, hostname)
    with the environment `podman exec` would give it: the same command on the same host, at ~3 ms of
    CPU instead of the ~100 ms of podman's, runc's and conmon's start per call (make test calls this
    thousands of times). A container that does not run gets `podman exec` and its error.
    """
    container = f"portalops-{host}"
    running = _running(container)
    if running is None:
        return podman("exec", container, "/bin/sh", "-c", command, check=check)
    pid, environment = running
    argv = [
        "nsenter",
        f"--target={pid}",
        "--all",
        "--root",
        "--wd",
        "env",
        "-i",
        *environment,
        "/bin/sh",
        "-c",
        command,
    ]
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=check, timeout=300)


def task_result(output: str, task: str, host: str) -> dict[str, Any]:
    """One host's result of a named task in JSON-callback output."""
    for play in callback_document(output)["plays"]:
        for item in play["tasks"]:
            if item["task"]["name"] == task and host in item["hosts"]:
                result: dict[str, Any] = item["hosts"][host]
                return result
    raise AssertionError(f"no result of {task!r} on {host}")


def ansible(pattern: str, module: str, args: str = "", *extra: str) -> dict[str, dict[str, Any]]:
    """Run an ad-hoc Ansible module over SSH and return each host's result."""
    argv = ["ansible", pattern, "-m", module, *extra]
    if args:
        argv += ["-a", args]
    env = {
        **ENV,
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
    }
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, timeout=300, cwd=REPO_ROOT)
    try:
        data = callback_document(result.stdout)
    except ValueError:
        pytest.fail(
            f"ansible printed no JSON (exit {result.returncode}): {result.stdout[-800:]} {result.stderr[-800:]}"
        )
    hosts: dict[str, dict[str, Any]] = {}
    for play in data["plays"]:
        for task in play["tasks"]:
            hosts.update(task["hosts"])
    return hosts


def one_host_lab(directory: Path, host_vars: dict[str, object]) -> Path:
    """A one-host lab of its own (own name, network, subnet) for fault tests."""
    inv = directory / "inventory"
    inv.mkdir()
    (inv / "hosts.yml").write_text(
        json.dumps(
            {
                "all": {
                    "hosts": {"broken1": {"ansible_host": "10.89.61.11", **host_vars}},
                    "vars": {
                        "lab_name": "portalops-t",
                        "lab_network": "portalops-t",
                        "lab_subnet": "10.89.61.0/24",
                        "ansible_user": "deploy",
                    },
                }
            }
        )
    )
    return inv


def playbook(path: str, *extra: str, log_name: str = "") -> tuple[int, dict[str, dict[str, int]], str]:
    """Run a playbook with the JSON callback; return its exit code, per-host stats and output.

    The full output is also kept under .lab/logs/ so a failure can be read whole.
    """
    env = {**ENV, "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json"}
    result = subprocess.run(
        ["ansible-playbook", path, *extra],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
        cwd=REPO_ROOT,
    )
    if log_name:
        logs = REPO_ROOT / ".lab" / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        (logs / f"{log_name}.json").write_text(result.stdout + result.stderr)
    try:
        data = callback_document(result.stdout)
    except ValueError:
        return result.returncode, {}, result.stdout + result.stderr
    return result.returncode, data.get("stats", {}), result.stdout + result.stderr


def failed_tasks(output: str) -> list[str]:
    """Names and messages of the failed tasks in JSON-callback output, for assertion messages."""
    try:
        data = callback_document(output)
    except ValueError:
        return [output[-2000:]]
    found = []
    for play in data.get("plays", []):
        for task in play.get("tasks", []):
            for host, res in task.get("hosts", {}).items():
                if res.get("failed") or res.get("unreachable"):
                    found.append(f"{host}: {task['task']['name']}: {str(res.get('msg', ''))[:500]}")
                    # A loop's reason is in its failed items (e.g. a validate command's stderr).
                    found += [
                        f"  item: {str(item.get('msg', ''))[:200]} {str(item.get('stderr', ''))[:500]}".rstrip()
                        for item in res.get("results", [])
                        if isinstance(item, dict) and item.get("failed")
                    ]
    return found


def changed_tasks(output: str) -> list[str]:
    """Host: task name of every task that reported a change."""
    try:
        data = callback_document(output)
    except ValueError:
        return []
    return [
        f"{host}: {task['task']['name']}"
        for play in data.get("plays", [])
        for task in play.get("tasks", [])
        for host, res in task.get("hosts", {}).items()
        if res.get("changed")
    ]


def read_journal(path: Path) -> list[dict[str, Any]]:
    """The events of an incident journal (journal.jsonl), in order."""
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def incident_journal(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    """The events of the incident a `portalops runbook run` opened (it prints its journal's path)."""
    found = re.search(r"^incident \S+: journal (\S+)$", result.stdout + "\n" + result.stderr, re.MULTILINE)
    assert found, result.stdout[-2000:] + result.stderr[-2000:]
    return read_journal(REPO_ROOT / found.group(1))  # as printed: absolute, or relative to the repository


def runbook_said(result: subprocess.CompletedProcess[str]) -> str:
    """For a failed assertion on a runbook run: its output's end, then what each of its commands that did
    not exit 0 printed, from the journal (the output shows only their last lines)."""
    said = [result.stdout[-3000:], result.stderr[-1500:]]
    try:
        events = incident_journal(result)
    except (AssertionError, OSError, ValueError):
        return "\n".join(said)
    for e in events:
        if e.get("event") == "command" and e.get("rc") != 0:
            said.append(f"--- {e['step']} {e['role']} on {e['host']}: exit {e['rc']}")
            said += [str(e.get("stdout") or "")[-1500:], str(e.get("stderr") or "")[-800:]]
    return "\n".join(said)


@contextmanager
def running_responder(work: Path, config: dict[str, Any], url: str) -> Iterator[Path]:
    """`portalops responder --config` with ``config`` (written to ``work``), as a service would run it,
    until ``url``/healthz says ok; stopped on leaving. Yields its log."""
    (work / "responder.yml").write_text(yaml.safe_dump(config))
    log_path = work / "responder.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            ["portalops", "responder", "--config", str(work / "responder.yml")],
            cwd=REPO_ROOT,
            env=ENV,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 90
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/healthz", timeout=5) as answer:  # noqa: S310 - a test's URL
                        if json.load(answer)["status"] == "ok":
                            break
                except OSError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"the responder did not start: {log_path.read_text()[-2000:]}")
                time.sleep(1)
            yield log_path
        finally:
            process.terminate()
            process.wait(timeout=60)
