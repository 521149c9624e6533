"""A runbook reaches a host behind a jump host, through the inventory that tells Ansible the same.

An inventory of its own names backup1 ``backup1``, a name the controller cannot resolve (only the
lab network's DNS knows it), and gives its SSH an ssh config file (``-F``) in which backup1 is
reached through drill1, the lab's jump host (``hardening_ssh_jump_host``: local forwarding to SSH
ports only). Both Ansible and `portalops runbook run` read that inventory; a direct connection
cannot work. backup1's firewall lets drill1 in (SFTP from the drill host), no other lab host's
does. The inventory leaves the lab's vault and its vault-encrypted notification secret out:
portalops refuses any inventory but the lab's that the lab's public password opens, and reaching
hosts needs no secret (the lab notifies no one anyway).

Costs about 8 s on a converged lab (measured 7.9 s): one ad-hoc Ansible command, one runbook of read-only checks.
"""

from __future__ import annotations

import json
import shutil
import socket
import time
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from portalops.inventory import LAB_INVENTORY
from portalops.lab.config import LabConfig
from portalops.runbook.hosts import SshHost
from portalops.runbook.live import ssh_hosts
from tests.integration.helpers import ansible, incident_journal, on, portalops

TARGET, JUMP = "backup1", "drill1"


@pytest.fixture
def behind_jump(converged: LabConfig, tmp_path: Path) -> Path:
    """The lab inventory, less its secrets, with backup1 reached only through drill1."""
    inventory = tmp_path / "inventory"
    shutil.copytree(LAB_INVENTORY, inventory, ignore=shutil.ignore_patterns("vault.yml", "notify.yml"))
    hosts = yaml.safe_load((inventory / "hosts.yml").read_text())
    hosts["all"]["children"]["backup"]["hosts"][TARGET]["ansible_host"] = TARGET
    (inventory / "hosts.yml").write_text(json.dumps(hosts))
    jump = converged.host(JUMP).address
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text(
        f"Host {TARGET}\n  ProxyJump {converged.deploy_user}@{jump}\n"
        # What ssh -J does not pass on to the jump host's connection (-i, -o), the file says.
        f"Host {jump}\n  IdentityFile {converged.ssh_key}\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {converged.known_hosts}\n  StrictHostKeyChecking yes\n"
    )
    (inventory / "host_vars" / f"{TARGET}.yml").write_text(
        "---\nansible_ssh_common_args: >-\n"
        f"  -F {ssh_config} -o UserKnownHostsFile={converged.known_hosts} -o StrictHostKeyChecking=yes\n"
    )
    return inventory


def logins_from(since: float) -> list[str]:
    """Where backup1's sshd accepted deploy's logins from since ``since`` (its journal, as JSON)."""
    journal = on(TARGET, f"journalctl -t sshd --since @{int(since)} -o json --no-pager").stdout
    messages = [json.loads(line).get("MESSAGE", "") for line in journal.splitlines() if line]
    return [m.split(" from ")[1].split()[0] for m in messages if m.startswith("Accepted publickey for deploy from ")]


def test_a_runbook_reaches_a_host_through_the_jump_host_its_inventory_names(
    converged: LabConfig, behind_jump: Path
) -> None:
    with pytest.raises(OSError):
        socket.getaddrinfo(TARGET, 22)  # no direct route: the controller does not know the name
    started = time.time() - 1
    (host,) = ssh_hosts(str(behind_jump), [TARGET]).values()
    assert isinstance(host, SshHost)
    direct = SshHost(replace(host.connection, ssh_config="", proxy_jump="none")).run("true", timeout=10)
    assert direct.unreachable, direct
    jump = converged.host(JUMP).address

    agreed = ansible(TARGET, "ansible.builtin.command", "hostname", "-i", str(behind_jump))
    assert agreed[TARGET].get("stdout") == TARGET, f"Ansible, same inventory: {agreed}"

    result = portalops("runbook", "run", "l3_degraded_services", "-i", str(behind_jump), "--limit", TARGET, "--yes")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    events = incident_journal(result)
    ends = {e["step"]: e for e in events if e.get("event") == "step_end"}
    assert ends["failed_units"]["result"] == "ok", ends["failed_units"]
    assert ends["no_failed_units"]["result"] == "passed", ends["no_failed_units"]
    begun = [e["hosts"] for e in events if e.get("event") == "step_begin" and e["hosts"]]
    assert begun and all(hosts == [TARGET] for hosts in begun), begun

    froms = logins_from(started)
    assert froms and set(froms) == {jump}, f"backup1 saw deploy log in from {froms}, not only from {jump}"
