"""What backup_repository and restic_backup do together, observed from inside both hosts: the client's
nightly run puts its data into its own repository on the repository host over SFTP, says so in its
status and metrics, and fails visibly when the repository host is down; its account reaches nothing
but its own repository; and the second copy keeps its snapshots when the client wipes them."""

import json
import shlex
import uuid
from typing import Any

import testinfra

# Talk to the containers directly: one podman exec per check, not one Ansible run.
REPOSITORY = testinfra.get_host("podman://backup-repository")
CLIENT = testinfra.get_host("podman://backup-client")
DATA = "/srv/molecule-data"
METRICS = "/var/lib/prometheus/node-exporter/portalops_backup_run.prom"
# The client's own repository and its second copy on the repository host (backup_repository's defaults).
SOURCE = "/srv/restic/backup-client/repo"
COPY = "/srv/restic-copy/backup-client"
SFTP = "sftp -F /etc/portalops/backup-ssh.conf -b - portalops-backup-repository"


def client_restic(args: str) -> str:
    """restic on the client, as the wrapper calls it (backup.json: repository, SFTP command, password)."""
    config = json.loads(CLIENT.check_output("cat /etc/portalops/backup.json"))
    out: str = CLIENT.check_output(
        f"restic --no-cache -r {config['repository']} -o sftp.command={shlex.quote(config['sftp_command'])} "
        f"--password-file {config['password_file']} {args}"
    )
    return out


def repository_snapshots(repository: str, password_file: str) -> list[dict[str, Any]]:
    """Snapshots of a repository read on the repository host itself, with root's password file."""
    out = REPOSITORY.check_output(
        f"restic --no-cache --no-lock -r {repository} --password-file {password_file} snapshots --json"
    )
    snapshots: list[dict[str, Any]] = json.loads(out or "[]")
    return snapshots


def metrics(host: testinfra.host.Host, path: str) -> dict[str, str]:
    """Prometheus text samples (name{labels} -> value)."""
    lines = host.file(path).content_string.splitlines()
    return dict(line.rsplit(" ", 1) for line in lines if line and not line.startswith("#"))


def back_up() -> tuple[str, dict[str, Any]]:
    """New data on the client and a run of the nightly command: the token written and the new snapshot."""
    token = uuid.uuid4().hex
    CLIENT.check_output(f"mkdir -p {DATA} && echo {token} > {DATA}/{token}.txt")
    run = CLIENT.run("portalops-backup run")
    assert run.rc == 0, run.stdout + run.stderr
    listed = json.loads(CLIENT.check_output("portalops-backup snapshots"))
    return token, max(listed, key=lambda s: s["time"])


def test_a_run_puts_the_clients_data_into_its_own_repository_on_the_repository_host() -> None:
    token, snapshot = back_up()
    assert snapshot["hostname"] == "backup-client"
    assert "job:files" in snapshot["tags"]
    assert DATA in snapshot["paths"]
    # The same snapshot, read where it is stored: the client's repository on the repository host.
    stored = repository_snapshots(SOURCE, "/etc/portalops/restic-backup-client.pass")
    assert snapshot["id"] in [s["id"] for s in stored]
    # And its content is the client's data, read back through the repository.
    assert client_restic(f"dump {snapshot['id']} {DATA}/{token}.txt").strip() == token
    status = json.loads(CLIENT.check_output("cat /var/lib/portalops/backup/run.json"))
    assert status["ok"] is True
    assert [(j["name"], j["ok"], j["snapshot_id"]) for j in status["jobs"]] == [("files", True, snapshot["short_id"])]


def test_the_metrics_say_the_run_and_its_job_succeeded_with_its_snapshot() -> None:
    _, snapshot = back_up()
    samples = metrics(CLIENT, METRICS)
    assert samples['portalops_backup_last_run_success{host="backup-client",command="run"}'] == "1"
    assert samples['portalops_backup_job_success{host="backup-client",job="files"}'] == "1"
    info = (
        f'portalops_backup_job_snapshot_info{{host="backup-client",job="files",snapshot_id="{snapshot["short_id"]}"}}'
    )
    assert samples[info] == "1"
    # The live tree is what the newest snapshot's manifest recorded.
    verified = CLIENT.run("portalops-backup verify-files files --json")
    assert verified.rc == 0, verified.stdout + verified.stderr


def test_the_clients_account_reaches_its_own_repository_over_sftp_and_nothing_else() -> None:
    command = CLIENT.run("ssh -F /etc/portalops/backup-ssh.conf portalops-backup-repository id </dev/null")
    assert command.rc != 0
    assert "uid=" not in command.stdout
    assert "sftp connections only" in command.stdout + command.stderr
    # Chrooted: its repository is all there is; the other repositories, the copies and /etc are not.
    listing = CLIENT.check_output(f"echo 'ls -1a /' | {SFTP}").split()
    assert sorted(set(listing) - {"sftp>", "ls", "-1a", "/"}) == ["/.", "/..", "/repo"], listing
    for path in ("/srv/restic", "/srv/restic-copy", "/etc/passwd"):
        assert CLIENT.run(f"echo 'ls {path}' | {SFTP}").rc != 0, path
    # No forwarding and no terminal (restrict in authorized_keys, the sshd Match block).
    forward = CLIENT.run(
        "timeout 20 ssh -F /etc/portalops/backup-ssh.conf -W 127.0.0.1:22 portalops-backup-repository </dev/null"
    )
    assert forward.rc != 0
    assert "administratively prohibited" in forward.stderr
    tty = CLIENT.run("timeout 20 ssh -tt -F /etc/portalops/backup-ssh.conf portalops-backup-repository </dev/null")
    assert "PTY allocation request failed" in tty.stderr


def test_a_run_while_the_repository_host_is_down_fails_and_the_metrics_say_so() -> None:
    REPOSITORY.check_output("systemctl stop ssh")
    try:
        failed = CLIENT.run("portalops-backup run")
        status = json.loads(CLIENT.check_output("cat /var/lib/portalops/backup/run.json"))
        samples = metrics(CLIENT, METRICS)
    finally:
        REPOSITORY.check_output("systemctl start ssh")
    assert failed.rc != 0
    assert status["ok"] is False
    # One line a person can act on: refused, or (restic relays ssh's message only sometimes) unreachable.
    assert status["errors"][0].startswith(("files: backup host refused", "files: backup host unreachable")), status
    assert samples['portalops_backup_last_run_success{host="backup-client",command="run"}'] == "0"
    assert samples['portalops_backup_job_success{host="backup-client",job="files"}'] == "0"
    # The next run, with the host back, succeeds and says so.
    back_up()
    assert metrics(CLIENT, METRICS)['portalops_backup_last_run_success{host="backup-client",command="run"}'] == "1"


def test_the_second_copy_keeps_the_snapshots_a_client_wipes_from_its_repository() -> None:
    """The client owns its repository and can destroy it (a compromised web host would); the copy,
    made on the repository host where no client account reaches, still holds every snapshot."""
    _, snapshot = back_up()
    copied = REPOSITORY.run("portalops-backup copy")
    assert copied.rc == 0, copied.stdout + copied.stderr
    CLIENT.check_output(f"echo 'rm /repo/snapshots/*' | {SFTP}")
    assert json.loads(client_restic("snapshots --json") or "[]") == []
    kept = repository_snapshots(COPY, "/etc/portalops/restic-copy.pass")
    # restic copy gives the copied snapshot a new id and keeps the source's as 'original'.
    assert snapshot["id"] in [s.get("original") for s in kept], kept
    assert (
        metrics(REPOSITORY, "/var/lib/prometheus/node-exporter/portalops_backup_copy.prom")[
            'portalops_backup_last_run_success{host="backup-repository",command="copy"}'
        ]
        == "1"
    )
