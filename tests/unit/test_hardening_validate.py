"""The hardening role's input check, run by ansible-playbook on this machine: no host, no molecule.

The validate entry point (argument spec, then tasks/validate.yml) is what playbooks/validate.yml runs on
every host before any change; here it runs against localhost with a connection that touches nothing.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from tests.roleplay import role_entry_play, run_play

PLAY = role_entry_play("hardening", "validate", "localhost", local=True)
ADMIN = ["192.0.2.0/24"]


def validate(tmp_path: Path, allow: list[dict[str, Any]], ssh_client: str = "") -> subprocess.CompletedProcess[str]:
    variables = {"hardening_admin_networks": ADMIN, "hardening_nftables_allow": allow}
    # No SSH_CLIENT: the check of the address Ansible connects from has nothing to test on localhost;
    # with ``ssh_client``, as sshd sets it for the account Ansible connects as: address, its port, ours.
    env = {"SSH_CLIENT": f"{ssh_client} 50022 22" if ssh_client else None}
    return run_play(tmp_path, PLAY, variables, "localhost,", env=env)


def test_an_empty_sources_list_is_refused_not_read_as_anywhere(tmp_path: Path) -> None:
    result = validate(tmp_path, [{"port": 443, "proto": "tcp", "sources": [], "comment": "https"}])
    assert result.returncode != 0, result.stdout[-2000:]
    assert "validate | Check the nftables allow list" in result.stdout
    assert "sources a non-empty list" in result.stdout and "0.0.0.0/0 and ::/0" in result.stdout


def test_sources_left_out_are_refused_by_the_argument_spec(tmp_path: Path) -> None:
    result = validate(tmp_path, [{"port": 443, "proto": "tcp", "comment": "https"}])
    assert result.returncode != 0, result.stdout[-2000:]
    assert "missing required arguments: sources" in result.stdout


def test_sources_named_explicitly_pass(tmp_path: Path) -> None:
    allow: list[dict[str, Any]] = [
        {"port": 443, "proto": "tcp", "sources": ["0.0.0.0/0", "::/0"], "comment": "https from anywhere"},
        {"port": 8080, "proto": "tcp", "sources": ["10.89.60.12"], "comment": "one host"},
        {"port": "3306-3307", "proto": "tcp", "sources": ["2001:db8::/32"], "comment": "an IPv6 network"},
    ]
    result = validate(tmp_path, allow)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


HTTPS = [{"port": 443, "proto": "tcp", "sources": ["0.0.0.0/0"], "comment": "https"}]


def test_ansible_connecting_from_an_admin_network_passes(tmp_path: Path) -> None:
    result = validate(tmp_path, HTTPS, ssh_client="192.0.2.77")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "Check the admin networks contain the address Ansible connects from" in result.stdout


def test_ansible_connecting_from_outside_the_admin_networks_is_refused(tmp_path: Path) -> None:
    result = validate(tmp_path, HTTPS, ssh_client="198.51.100.7")
    assert result.returncode != 0, result.stdout[-2000:]
    assert "SSH client 198.51.100.7 is in none of hardening_admin_networks" in result.stdout
    assert "the firewall would lock Ansible out" in result.stdout
