"""The lab's committed vault password opens the lab's vault and nothing else."""

from __future__ import annotations

import configparser
import io
import shutil
import subprocess
from pathlib import Path

import pytest

from portalops import secrets_check
from portalops.cli import main
from portalops.errors import BadInput, ExitCode
from portalops.inventory import LAB_INVENTORY, REPO_ROOT
from portalops.vault import (
    IDENTITY_LIST,
    LAB_PASSWORD_FILE,
    LAB_VAULT_ID,
    ansible_env,
    is_lab,
    opened_by_lab_password,
    refuse_lab_password,
    vaults_in,
)

EXAMPLE = REPO_ROOT / "inventory" / "example"


def site_inventory(tmp_path: Path, password_file: Path, label: str = "site") -> Path:
    """The example inventory with its vault.yml written and encrypted as its README says."""
    inventory = tmp_path / "site"
    shutil.copytree(EXAMPLE, inventory)
    vault = inventory / "group_vars" / "all" / "vault.yml"
    shutil.copy(vault.with_name("vault.yml.example"), vault)
    ansible("ansible-vault", "encrypt", "--vault-id", f"{label}@{password_file}", str(vault), check=True)
    return inventory


def password(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text + "\n")
    return path


def ansible(*argv: str, check: bool = False, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in ansible_env(EXAMPLE).items() if k != IDENTITY_LIST}
    return subprocess.run(
        list(argv), env={**base, **(env or {})}, cwd=REPO_ROOT, capture_output=True, text=True, check=check, timeout=300
    )


def test_ansible_cfg_names_no_vault_password_and_matches_vault_labels() -> None:
    config = configparser.ConfigParser()
    config.read(REPO_ROOT / "ansible.cfg")
    assert "vault_password_file" not in config["defaults"]
    assert "vault_identity_list" not in config["defaults"]
    assert config["defaults"].getboolean("vault_id_match")


def test_every_lab_vault_is_labelled_lab_and_opens_with_the_lab_password() -> None:
    found = list(vaults_in(LAB_INVENTORY))
    assert {path.name for path, _ in found} == {"vault.yml", "notify.yml"}
    assert all(text.strip().startswith("$ANSIBLE_VAULT;1.2;AES256;lab") for _, text in found)
    assert set(opened_by_lab_password(LAB_INVENTORY)) == {path for path, _ in found}


def test_the_lab_identity_is_added_for_the_lab_only_and_keeps_the_operators() -> None:
    assert is_lab(LAB_INVENTORY) and is_lab(LAB_INVENTORY / "hosts.yml") and not is_lab(EXAMPLE)
    assert IDENTITY_LIST not in ansible_env(EXAMPLE, {})
    assert ansible_env(EXAMPLE, {IDENTITY_LIST: "site@/p"})[IDENTITY_LIST] == "site@/p"
    assert ansible_env(LAB_INVENTORY, {})[IDENTITY_LIST] == LAB_VAULT_ID
    both = ansible_env(LAB_INVENTORY, {IDENTITY_LIST: f"site@/p,{LAB_VAULT_ID}"})
    assert both[IDENTITY_LIST] == f"site@/p,{LAB_VAULT_ID}"


def test_a_wrong_vault_password_fails_with_a_clear_message(tmp_path: Path) -> None:
    right = password(tmp_path, "right", "site-secret-1")
    wrong = password(tmp_path, "wrong", "nope")
    inventory = site_inventory(tmp_path, right)
    ok = ansible("ansible-inventory", "-i", str(inventory), "--list", "--vault-id", f"site@{right}")
    assert ok.returncode == 0, ok.stderr
    for flags in (["--vault-id", f"site@{wrong}"], ["--vault-password-file", str(wrong)], []):
        failed = ansible("ansible-playbook", "-i", str(inventory), "playbooks/preflight.yml", *flags)
        assert failed.returncode != 0
        assert "Decryption failed" in failed.stderr or "no vault secrets found" in failed.stderr, failed.stderr
    # The lab's identity, even when set, is never tried on a vault labelled otherwise.
    lab = ansible("ansible-inventory", "-i", str(inventory), "--list", env={IDENTITY_LIST: LAB_VAULT_ID})
    assert lab.returncode != 0 and "Decryption failed" in lab.stderr


def test_a_site_vault_the_lab_password_opens_is_refused_everywhere(tmp_path: Path) -> None:
    inventory = site_inventory(tmp_path, LAB_PASSWORD_FILE)
    with pytest.raises(BadInput, match="is not the lab but its vault opens with the lab's public password"):
        refuse_lab_password(inventory)
    err = io.StringIO()
    code = main(["runbook", "run", "l1_portal_unreachable", "--dry-run", "-i", str(inventory)], io.StringIO(), err)
    assert code == ExitCode.BAD_INPUT and "vault.yml (label site)" in err.getvalue()
    assert secrets_check.main([str(inventory)]) == 1
    # preflight.yml refuses it too, even when the operator's password (the lab's) opens it.
    preflight = ansible(
        "ansible-playbook", "-i", str(inventory), "playbooks/preflight.yml", "--vault-id", f"site@{LAB_PASSWORD_FILE}"
    )
    assert preflight.returncode != 0
    assert "is not the lab but its vault opens with the lab's public password" in preflight.stdout


def test_an_inline_vault_value_the_lab_password_opens_is_refused(tmp_path: Path) -> None:
    inventory = site_inventory(tmp_path, password(tmp_path, "right", "site-secret-2"))
    inline = ansible(
        "ansible-vault", "encrypt_string", "--vault-id", f"site@{LAB_PASSWORD_FILE}", "s3cret", "--name", "token"
    )
    (inventory / "group_vars" / "all" / "notify.yml").write_text("---\n" + inline.stdout)
    with pytest.raises(BadInput, match=r"notify\.yml \(label site\)"):
        refuse_lab_password(inventory)


def test_a_site_inventory_with_its_own_password_passes() -> None:
    refuse_lab_password(EXAMPLE)
    refuse_lab_password(LAB_INVENTORY)  # the lab is the lab password's own
