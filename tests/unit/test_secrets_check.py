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


def test_ansible_connection_and_become_passwords_are_secrets(tmp_path: Path) -> None:
    hosts = write(
        tmp_path,
        "host_vars/web1.yml",
        "---\nansible_ssh_pass: hunter2\nansible_become_pass: hunter3\nansible_password: x\nbypass: on\n",
    )
    names = ["ansible_ssh_pass", "ansible_become_pass", "ansible_password"]
    assert check(tmp_path) == [f"{hosts}: {name}" for name in names]


def test_pw_and_pwd_suffixes_are_secrets(tmp_path: Path) -> None:
    text = "---\nmysql_root_pw: x\nadmin_pwd: y\nsite_pw: '{{ vault_site_pw }}'\n"
    found = write(tmp_path, "group_vars/db.yml", text)
    assert check(tmp_path) == [f"{found}: mysql_root_pw", f"{found}: admin_pwd"]


def test_credentials_in_webhook_urls_are_secrets_whatever_the_name(tmp_path: Path) -> None:
    found = write(
        tmp_path,
        "group_vars/all/notify.yml",
        "---\nchannels:\n"
        "  - url: https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7xxx\n"
        "  - url: https://oapi.dingtalk.com/robot/send?access_token=abcdef\n"
        "  - url: https://hooks.slack.com/services/T000/B000/XXXX\n"
        "  - url: https://ops:s3cret@alerts.example.org/hook\n"
        "  - url: https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={{ vault_wecom_key }}\n"
        "  - url: http://127.0.0.1:8026/cgi-bin/webhook/send?key=lab\n"
        "  - url: https://alerts.example.org/hook?severity=high\n",
    )
    assert check(tmp_path) == [f"{found}: channels[{i}].url" for i in range(4)]


def test_ini_inventories_are_scanned(tmp_path: Path) -> None:
    hosts = write(
        tmp_path,
        "hosts.ini",
        "[web]\nweb1 ansible_host=10.0.0.1 ansible_ssh_pass=hunter2\n"
        "web2 ansible_host=10.0.0.2 ansible_become_pass='{{ vault_become }}'\n\n"
        "[db:vars]\ndb_root_password=plain  # comment\nbackup_days=7\n",
    )
    plain = write(tmp_path, "hosts", "# prod\n[cms]\ncms1 api_token=abc\n")
    assert check(tmp_path) == [
        f"{plain}: [cms] line 3: api_token",
        f"{hosts}: [web] line 2: ansible_ssh_pass",
        f"{hosts}: [db:vars] line 6: db_root_password",
    ]
