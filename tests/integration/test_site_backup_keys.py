"""One restic repository password per client host, on the converged lab.

The internet-facing web host must not hold the key to the database dumps: each client's
repository opens with that client's password only, a client holds no other client's password
anywhere on its disk, and each repository has exactly one key (a lab that still had the shared
password of before is migrated: its host's key added, the shared one removed, snapshots kept).
The backup host (the second copy) and the drill host read with each repository's own password;
test_site_backup.py's nightly (backup, second copy, restore drill) proves they still can.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from pathlib import Path
from typing import Any

import pytest

from portalops.lab.config import LabConfig
from tests.integration.helpers import ENV, failed_tasks, on, playbook

CLIENTS = ("web1", "cms1", "db1")
PASSWORD_FILE = "/etc/portalops/restic.pass"  # noqa: S105 - a path, not a password
RETIRED_FILE = "/run/portalops-test-retired.pass"  # a test's throwaway password, root only on backup1


def own_password(host: str) -> str:
    """The password the client's backups use (its root-only file)."""
    return on(host, f"cat {PASSWORD_FILE}").stdout.strip()


def restic_on_backup1(client: str, password: str, args: str) -> subprocess.CompletedProcess[str]:
    """restic on the backup host against a client's repository (a local directory there), the password
    given on stdin so it is never on a command line or on backup1's disk."""
    script = f'read -r p; RESTIC_PASSWORD="$p" exec restic --no-cache --no-lock -r /srv/restic/{client}/repo {args}'
    return subprocess.run(
        ["podman", "exec", "-i", "portalops-backup1", "/bin/sh", "-c", script],
        input=password + "\n",
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def passwords(converged: LabConfig) -> dict[str, str]:
    found = {host: own_password(host) for host in CLIENTS}
    assert all(found.values()), "a client has an empty password file"
    return found


@pytest.mark.parametrize("holder", CLIENTS)
def test_a_clients_password_opens_its_own_repository_only(passwords: dict[str, str], holder: str) -> None:
    for client in CLIENTS:
        result = restic_on_backup1(client, passwords[holder], "cat config")
        if client == holder:
            assert result.returncode == 0, result.stderr
        else:
            assert result.returncode != 0, f"{holder}'s password opens {client}'s repository"
            assert "wrong password" in result.stderr, result.stderr


def keys(client: str, password: str) -> list[dict[str, Any]]:
    """The repository's keys, as restic lists them to the holder of one of them."""
    result = restic_on_backup1(client, password, "key list --json")
    assert result.returncode == 0, result.stderr
    listed: list[dict[str, Any]] = json.loads(result.stdout)
    return listed


def test_each_repository_has_exactly_its_own_key(passwords: dict[str, str]) -> None:
    """No second key (such as the shared password of before) opens a repository."""
    for client in CLIENTS:
        found = keys(client, passwords[client])
        assert len(found) == 1 and found[0]["current"], found


@pytest.mark.parametrize("holder", CLIENTS)
def test_no_file_on_a_client_holds_another_clients_password(passwords: dict[str, str], holder: str) -> None:
    others = [passwords[c] for c in CLIENTS if c != holder]
    patterns = " ".join(f"-e '{p}'" for p in others)  # restic passwords from the vault: no quotes in them
    # Every file of the host's own filesystem (-x: not /proc, /sys, /dev, the shared apt cache mount).
    found = on(
        holder,
        f"find / -xdev -type f -size -64M -print0 | xargs -0 -r grep -lF {patterns} 2>/dev/null; true",
    ).stdout.split()
    assert found == [], f"{holder} holds another client's repository password in {found}"


def test_a_retired_passwords_key_is_removed_and_the_own_key_and_snapshots_stay(
    passwords: dict[str, str], tmp_path: Path
) -> None:
    """Rotation away from a retired password: its key goes, nothing else does. With the client's own key the
    only one, the role tries no retired password at all (an idempotent run); here there are two."""
    client = "web1"
    retired = secrets.token_hex(16)
    on("backup1", f"umask 077; printf '%s\\n' {retired} > {RETIRED_FILE}")
    try:
        added = restic_on_backup1(client, passwords[client], f"key add --new-password-file {RETIRED_FILE}")
        assert added.returncode == 0, added.stderr
        snapshots = restic_on_backup1(client, passwords[client], "snapshots --json").stdout
        assert len(keys(client, passwords[client])) == 2

        extra = tmp_path / "retired.json"
        extra.write_text(json.dumps({"portalops_restic_retired_passwords": [retired]}))
        code, stats, output = playbook(
            "playbooks/backups.yml", "--limit", "backup1", "-e", f"@{extra}", log_name="backup-keys-retired"
        )
        assert code == 0, failed_tasks(output)
        assert stats["backup1"]["changed"] >= 1, stats

        own = keys(client, passwords[client])
        assert len(own) == 1 and own[0]["current"], own
        assert restic_on_backup1(client, retired, "cat config").returncode != 0, "the retired password still opens it"
        assert restic_on_backup1(client, passwords[client], "snapshots --json").stdout == snapshots
    finally:
        # Whatever happened, the repository is left with its own key only (the other tests' precondition).
        for key in keys(client, passwords[client]):
            if not key["current"]:
                restic_on_backup1(client, passwords[client], f"key remove {key['id']}")
        on("backup1", f"rm -f {RETIRED_FILE}")


def test_a_key_file_replaced_under_its_name_fails_the_run_though_the_last_run_proved_the_key(
    passwords: dict[str, str],
) -> None:
    """An idempotent run does not pay restic's key derivation again: it keeps the digests of the password
    file and of the only key file its last full check opened, and trusts them while both are unchanged. The
    client's account owns its repository; a key file it replaces under the same name (here with another
    client's key) must send the run through the full check, which fails: a proof of the old file proves
    nothing about the new one."""
    client = "web1"
    keydir = f"/srv/restic/{client}/repo/keys"
    assert on("backup1", f"test -s /etc/portalops/restic-{client}.key-proof", check=False).returncode == 0, (
        "the converge left no proof of web1's key: this test would not exercise it"
    )
    [name] = on("backup1", f"ls {keydir}").stdout.split()
    [other] = on("backup1", "ls /srv/restic/cms1/repo/keys").stdout.split()
    saved = f"/run/portalops-test-key-{name}"
    on("backup1", f"cp -p {keydir}/{name} {saved} && cat /srv/restic/cms1/repo/keys/{other} > {keydir}/{name}")
    try:
        code, _stats, output = playbook("playbooks/backups.yml", "--limit", "backup1", log_name="backup-keys-replaced")
        assert code != 0, "a key file the client's password does not open passed on the last run's proof"
        assert any("Give each repository its client's own key" in failed for failed in failed_tasks(output)), (
            failed_tasks(output)
        )
    finally:
        on("backup1", f"cp -p {saved} {keydir}/{name} && rm -f {saved}")
    own = keys(client, passwords[client])
    assert len(own) == 1 and own[0]["current"], own
