from __future__ import annotations

from pathlib import Path

from portalops.inventory import REPO_ROOT
from portalops.secrets_check import check, main


def write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_the_committed_inventories_are_clean() -> None:
    assert check(REPO_ROOT / "inventory" / "lab") == []
    assert check(REPO_ROOT / "inventory" / "example") == []


def test_plaintext_secrets_are_named_by_file_and_path(tmp_path: Path) -> None:
    bad = write(
        tmp_path,
        "group_vars/all/bad.yml",
        "---\nmariadb_root_password: hunter2\nsites:\n  - name: portal\n    db_password: s3cret\n"
        "portalops_wordpress_salts:\n  auth_key: abc\n",
    )
    assert check(tmp_path) == [
        f"{bad}: mariadb_root_password",
        f"{bad}: sites[0].db_password",
        f"{bad}: portalops_wordpress_salts.auth_key",
    ]


def test_vault_references_inline_vault_and_vault_files_are_accepted(tmp_path: Path) -> None:
    write(
        tmp_path, "group_vars/all/secrets.yml", '---\ndb_password: "{{ vault_db_password }}"\nflag_password_set: true\n'
    )
    write(tmp_path, "group_vars/all/inline.yml", "---\ntoken: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  3132\n")
    write(tmp_path, "group_vars/all/vault.yml", "$ANSIBLE_VAULT;1.1;AES256\n3132\n")
    write(tmp_path, "group_vars/all/other.yml", "---\npassword_max_days: 90\nssh_private_key_file: ~/.ssh/id\n")
    assert check(tmp_path) == []


def test_main_exit_code_and_message(tmp_path: Path, capsys: object) -> None:
    write(tmp_path, "hosts.yml", "all:\n  vars:\n    restic_password: plain\n")
    assert main([str(tmp_path)]) == 1
    assert main([str(REPO_ROOT / "inventory" / "lab")]) == 0
