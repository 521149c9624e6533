"""The backup_repository role's input check, run by ansible-playbook on this machine: no host, no molecule.

The validate entry point (argument spec, then tasks/validate.yml) is what playbooks/validate.yml runs on the
backup hosts before any change; here it runs against an inventory's backup hosts with a local connection
that touches nothing (every task of it is an assert, evaluated on the controller).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from portalops.ansible_json import JSON_CALLBACK_ENV, callback_document, host_results
from portalops.inventory import REPO_ROOT
from tests.roleplay import role_entry_play, run_play

PLAY = role_entry_play("backup_repository", "validate", "backup")
TASK = "backup_repository : validate | Check the repository host is not also a backup client or drill host"
# Test data, not the vault's: one password per client host, all different, and the copy's.
SECRETS = {
    "portalops_restic_passwords": {"web1": "pw-web1", "cms1": "pw-cms1", "db1": "pw-db1", "backup1": "pw-backup1"},
    "portalops_restic_copy_password": "pw-copy",
    "portalops_restic_retired_passwords": [],
}


def validate(tmp_path: Path, inventory: Path) -> subprocess.CompletedProcess[str]:
    # Local connection and no become: nothing reaches a host, even with the lab's inventory.
    variables = {**SECRETS, "ansible_connection": "local", "ansible_become": False}
    # The lab's vault opens with its committed lab-only password, named here rather than taken from the shell;
    # the lab's cached facts are neither read nor written.
    env: dict[str, str | None] = {"ANSIBLE_VAULT_IDENTITY_LIST": None, "ANSIBLE_CACHE_PLUGIN": "memory"}
    env.update(JSON_CALLBACK_ENV)
    vault = f"lab@{REPO_ROOT / 'inventory/vault-password.LAB-ONLY'}"
    return run_play(tmp_path, PLAY, variables, inventory, "--vault-id", vault, env=env)


def check_result(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """backup1's result of the check, from the JSON callback's document."""
    found = [
        res for task, host, res in host_results(callback_document(result.stdout)) if (task, host) == (TASK, "backup1")
    ]
    assert len(found) == 1, result.stdout[-3000:] + result.stderr[-2000:]
    return found[0]


def inventory_with(tmp_path: Path, group: str) -> Path:
    """The example inventory's hosts.yml with backup1 also in ``group``."""
    hosts = yaml.safe_load((REPO_ROOT / "inventory/example/hosts.yml").read_text())
    children = hosts["all"]["children"]
    children[group].setdefault("hosts", {})["backup1"] = None
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(hosts))
    return path


@pytest.mark.parametrize("group", ["backup_clients", "drill"])
def test_a_repository_host_that_is_also_a_client_or_drill_host_is_refused(tmp_path: Path, group: str) -> None:
    result = validate(tmp_path, inventory_with(tmp_path, group))
    assert result.returncode != 0, result.stdout[-3000:]
    check = check_result(result)
    assert check.get("failed") is True
    assert check["msg"].startswith(f"backup1 is the backup repository host and also in the inventory group {group}")
    assert "/etc/portalops/backup.json" in check["msg"]


@pytest.mark.parametrize("inventory", ["lab", "example"])
def test_the_shipped_inventories_pass(tmp_path: Path, inventory: str) -> None:
    result = validate(tmp_path, REPO_ROOT / "inventory" / inventory / "hosts.yml")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert not check_result(result).get("failed")
