"""plugins/inventory/portalops_lab.py: the lab's state directory and connection settings, rendered once per run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ansible.errors import AnsibleParserError

from tests.unit.hostscripts import load

REPO = Path(__file__).resolve().parents[2]
plugin = load("portalops_lab_inventory_under_test", "plugins/inventory/portalops_lab.py")


def test_the_state_directory_is_the_environments_else_next_to_ansible_cfg() -> None:
    assert plugin.lab_state_dir({"PORTALOPS_LAB_DIR": "/var/tmp/clone/.lab"}, "/repo/ansible.cfg") == (
        "/var/tmp/clone/.lab"
    )
    assert plugin.lab_state_dir({}, "/repo/ansible.cfg") == "/repo/.lab"
    with pytest.raises(AnsibleParserError, match=r"PORTALOPS_LAB_DIR, or \.lab next to an ansible\.cfg"):
        plugin.lab_state_dir({}, None)


def test_a_setting_is_rendered_over_the_state_directory_alone() -> None:
    assert plugin.render("key", "{{ lab_state_dir }}/ssh/id_ed25519", "/s") == "/s/ssh/id_ed25519"
    assert plugin.render("become", True, "/s") is True
    with pytest.raises(AnsibleParserError, match=r"ssh_args: only \{\{ lab_state_dir \}\} can be used here"):
        plugin.render("ssh_args", "{{ inventory_dir }}/ssh_config", "/s")


def inventory_host(host: str, **env: str) -> dict[str, object]:
    """The variables of ``host`` as ``ansible-inventory --list`` prints them for the lab's inventory (as
    portalops.inventory reads it); the implicit localhost's as ``--host`` does."""
    environ = {k: v for k, v in os.environ.items() if k not in ("PORTALOPS_LAB_DIR", "ANSIBLE_CONFIG")}
    environ |= {"ANSIBLE_VAULT_IDENTITY_LIST": f"lab@{REPO}/inventory/vault-password.LAB-ONLY", **env}
    found = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-inventory"),
            *(["--host", host] if host == "localhost" else ["--list"]),
        ],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        check=False,
    )
    assert found.returncode == 0, found.stderr
    printed = json.loads(found.stdout)
    variables: dict[str, object] = printed if host == "localhost" else printed["_meta"]["hostvars"][host]
    return variables


def test_the_labs_hosts_get_plain_connection_settings_that_follow_the_state_directory() -> None:
    # Rendered when the inventory is read: the values are the paths, not templates a task would render again,
    # and plain strings to the reader of the JSON, not {"__ansible_unsafe": ...}
    default = inventory_host("web1")
    assert default["lab_state_dir"] == str(REPO / ".lab")
    assert default["ansible_ssh_private_key_file"] == f"{REPO}/.lab/ssh/id_ed25519"
    assert default["ansible_ssh_common_args"] == (
        f"-o UserKnownHostsFile={REPO}/.lab/ssh/known_hosts -o StrictHostKeyChecking=yes"
    )
    assert (default["ansible_user"], default["ansible_become"]) == ("deploy", True)
    clone = inventory_host("db1", PORTALOPS_LAB_DIR="/var/tmp/portalops-lab-clone/.lab")
    assert clone["ansible_ssh_private_key_file"] == "/var/tmp/portalops-lab-clone/.lab/ssh/id_ed25519"
    # the controller runs plays as the person running them: its host_vars still win over group all
    assert inventory_host("localhost")["ansible_become"] is False
