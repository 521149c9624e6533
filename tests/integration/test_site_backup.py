"""Backups and restore drills on the converged lab: what the hosts really do.

Runs after test_site.py and test_site_audit.py (file order) on the lab site.yml built
(backups.yml is part of it). The nightly entry point runs first, once, against a
marker article and upload that are deleted from production before the drill, so the
drill has to bring them back from the snapshots.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from portalops.inventory import REPO_ROOT
from portalops.lab.config import LabConfig
from tests.integration.helpers import ENV, on, podman

CLIENTS = ("web1", "cms1", "db1")
UPLOADS = "/var/lib/wordpress/sites/portal/wp-content/uploads"


def sql(host: str, statement: str) -> str:
    return on(host, f"mariadb --batch --skip-column-names -e {shlex.quote(statement)}").stdout.strip()


def nightly() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts/nightly")],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
        cwd=REPO_ROOT,
    )


def newest_drill_report() -> dict[str, Any]:
    reports = sorted((REPO_ROOT / "reports/drills").glob("*.json"))
    assert reports, "no drill report under reports/drills"
    data: dict[str, Any] = json.loads(reports[-1].read_text())
    return data


def run_wrapper(host: str, *args: str, env: str = "") -> subprocess.CompletedProcess[str]:
    return on(host, f"{env} /usr/local/sbin/portalops-backup {' '.join(args)}", check=False)


def status(host: str, command: str = "run") -> dict[str, Any]:
    data: dict[str, Any] = json.loads(on(host, f"cat /var/lib/portalops/backup/{command}.json").stdout)
    return data


def metrics(host: str, command: str = "run") -> str:
    return on(host, f"cat /var/lib/prometheus/node-exporter/portalops_backup_{command}.prom").stdout


def snapshot_ids(host: str, job: str) -> list[str]:
    listed = json.loads(run_wrapper(host, "snapshots").stdout or "[]")
    return [s["id"] for s in listed if f"job:{job}" in s.get("tags", [])]


@pytest.fixture(scope="module")
def marker(converged: LabConfig) -> dict[str, str]:
    """A published article and an upload that exist at backup time only."""
    title = f"Drill marker {uuid.uuid4().hex[:8]}"
    name = f"drill-marker-{uuid.uuid4().hex[:8]}.txt"
    sql(
        "db1",
        "INSERT INTO wp_portal.wp_posts (post_author, post_date, post_date_gmt, post_content, post_title, "
        "post_excerpt, post_status, post_name, to_ping, pinged, post_modified, post_modified_gmt, "
        "post_content_filtered, post_type) VALUES (1, NOW() + INTERVAL 1 DAY, UTC_TIMESTAMP() + INTERVAL 1 DAY, "
        f"'restore me', '{title}', '', 'publish', 'drill-marker', '', '', NOW(), UTC_TIMESTAMP(), '', 'post')",
    )
    content = uuid.uuid4().hex * 100
    on("cms1", f"printf %s {content} > {UPLOADS}/{name} && chown wp-portal:wp-portal {UPLOADS}/{name}")
    return {"title": title, "file": name, "sha256": hashlib.sha256(content.encode()).hexdigest()}


@pytest.fixture(scope="module")
def first_night(marker: dict[str, str]) -> Iterator[subprocess.CompletedProcess[str]]:
    """backup.yml, then the marker deleted from production, then restore_drill.yml (kept for a look)."""
    from tests.integration.helpers import playbook

    code, _, output = playbook("playbooks/backup.yml", log_name="backup")
    assert code == 0, output[-3000:]
    sql("db1", f"DELETE FROM wp_portal.wp_posts WHERE post_title = '{marker['title']}'")
    on("cms1", f"rm {UPLOADS}/{marker['file']}")
    code, _, output = playbook("playbooks/restore_drill.yml", "-e", "restore_drill_keep=true", log_name="drill")
    yield subprocess.CompletedProcess(["restore_drill.yml"], code, output, "")
    on("drill1", "python3 /usr/local/lib/portalops/portalops_drill.py clean", check=False)


def test_every_client_backed_up_every_job_with_status_and_metrics(first_night: Any) -> None:
    for host in CLIENTS:
        found = status(host)
        assert found["ok"], found["errors"]
        assert all(job["ok"] and job["snapshot_id"] for job in found["jobs"]), found["jobs"]
        assert f'portalops_backup_last_run_success{{host="{host}",command="run"}} 1' in metrics(host)
    assert {job["name"] for job in status("db1")["jobs"]} == {"etc", "db-dump", "db-physical"}


def test_the_drill_restores_data_deleted_in_production_after_the_backup(
    first_night: subprocess.CompletedProcess[str], marker: dict[str, str]
) -> None:
    assert first_night.returncode == 0, first_night.stdout[-4000:]
    assert sql("db1", f"SELECT COUNT(*) FROM wp_portal.wp_posts WHERE post_title = '{marker['title']}'") == "0"
    # Kept on drill1 (restore_drill_keep): the physically restored database and the uploads.
    assert sql("drill1", f"SELECT post_content FROM wp_portal.wp_posts WHERE post_title = '{marker['title']}'") == (
        "restore me"
    )
    restored = on("drill1", f"sha256sum {UPLOADS}/{marker['file']}").stdout.split()[0]
    assert restored == marker["sha256"]
    served = on(
        "drill1",
        "curl -s -H 'Host: portal.lab.test' -H 'X-Forwarded-Proto: https' "
        "'http://127.0.0.1:8080/?rest_route=/wp/v2/posts&per_page=1&_fields=title'",
    ).stdout
    assert marker["title"] in served


def test_the_drill_report_has_rto_rpo_and_every_check(first_night: Any, marker: dict[str, str]) -> None:
    report = newest_drill_report()
    assert marker["title"] in json.dumps(report["result"]["titles"], ensure_ascii=False), "not this drill's report"
    summary, checks = report["summary"], report["result"]["checks"]
    assert summary["ok"] and summary["checks_passed"] == summary["checks_total"] >= 5, checks
    assert summary["rto_s"] > 0 and summary["rpo_s"] is not None and summary["rpo_s"] >= 0
    names = {c["name"] for c in checks}
    assert {"database (physical backup)", "database (logical dump)", "files cms1:cms-files"} <= names
    markdown = sorted((REPO_ROOT / "reports/drills").glob("*.md"))[-1].read_text()
    assert "Verdict: **PASS**" in markdown and "RTO" in markdown and "RPO" in markdown


def sftp(host: str, batch: str) -> subprocess.CompletedProcess[str]:
    """SFTP to the repository host with the host's own backup account, as restic does."""
    return on(
        host,
        f"printf '%s\\n' {shlex.quote(batch)} | sftp -b - -F /etc/portalops/backup-ssh.conf "
        "portalops-backup-repository",
        check=False,
    )


def test_a_client_sees_only_its_own_repository_and_gets_no_shell(first_night: Any) -> None:
    listing = sftp("web1", "ls /")
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.split()[-1] == "/repo"
    assert sftp("web1", "get /etc/passwd /tmp/x").returncode != 0
    shell = on("web1", "ssh -F /etc/portalops/backup-ssh.conf portalops-backup-repository id", check=False)
    assert shell.returncode != 0
    assert "uid=" not in shell.stdout


def test_the_drill_account_reads_every_repository_and_writes_none(first_night: Any) -> None:
    listing = sftp("drill1", "ls /")
    assert {"/cms1", "/db1", "/web1"} <= set(listing.stdout.split()), listing.stdout + listing.stderr
    assert sftp("drill1", "ls /db1/repo/snapshots").returncode == 0
    denied = sftp("drill1", "put /etc/hostname /db1/repo/snapshots/evil")
    assert denied.returncode != 0
    assert "denied" in (denied.stdout + denied.stderr).lower()


def test_the_second_copy_has_the_snapshots_and_not_the_clients_password(first_night: Any) -> None:
    copy = "restic --no-cache -r /srv/restic-copy/db1 snapshots --json --password-file"
    listed = json.loads(on("backup1", f"{copy} /etc/portalops/restic-copy.pass").stdout)
    dumps = [s for s in listed if "job:db-dump" in s["tags"]]
    assert dumps, listed
    newest_source = max(json.loads(run_wrapper("db1", "snapshots").stdout), key=lambda s: s["time"])
    assert any(s["time"] == newest_source["time"] for s in listed)
    refused = on("backup1", f"{copy} /etc/portalops/restic-db1.pass", check=False)
    assert refused.returncode != 0 and "wrong password" in refused.stderr
    # Only root on backup1 reaches the copies.
    assert on("backup1", "stat -c %a:%U /srv/restic-copy").stdout.strip() == "700:root"


def client_command(args: str) -> str:
    """The shell command that runs restic on a client with its own repository, password and SFTP account."""
    settings = (
        "import json, shlex; c = json.load(open('/etc/portalops/backup.json')); "
        "print('export RESTIC_REPOSITORY=%s RESTIC_PASSWORD_FILE=%s; sftp=%s' % "
        "tuple(shlex.quote(c[k]) for k in ('repository', 'password_file', 'sftp_command')))"
    )
    return f'eval "$(python3 -c {shlex.quote(settings)})" && restic --no-cache -o sftp.command="$sftp" {args}'


def client_restic(host: str, args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """restic itself on a client."""
    return on(host, client_command(args), check)


def test_the_second_copy_keeps_a_snapshot_the_client_forgot(first_night: Any) -> None:
    tag = f"portalops-test-{uuid.uuid4().hex[:8]}"  # this test's snapshot only
    copy = "restic --no-cache -r /srv/restic-copy/web1 --password-file /etc/portalops/restic-copy.pass"

    def copied() -> list[str]:
        listed = json.loads(on("backup1", f"{copy} snapshots --json --tag {tag}").stdout or "[]")
        return [s["id"] for s in listed]

    def second_copy() -> None:
        result = run_wrapper("backup1", "copy")
        assert result.returncode == 0, result.stdout + result.stderr

    backup = client_restic("web1", f"backup --json --host web1 --tag {tag} /etc/hostname").stdout
    made = json.loads(backup.strip().splitlines()[-1])["snapshot_id"]
    try:
        second_copy()
        kept = copied()
        assert len(kept) == 1, kept
        # The client (or whoever holds its credentials) deletes its history.
        client_restic("web1", f"forget --prune {made}")
        assert json.loads(client_restic("web1", f"snapshots --json --tag {tag}").stdout or "[]") == []
        second_copy()
        assert copied() == kept, "the second copy lost a snapshot the client forgot"
    finally:
        # By id: restic forget with only --tag and no policy removes nothing.
        if json.loads(client_restic("web1", f"snapshots --json --tag {tag}").stdout or "[]"):
            client_restic("web1", f"forget {made}")
        left = copied()
        if left:
            on("backup1", f"{copy} forget {' '.join(left)}")
            assert not copied()


def assert_failed_run(host: str, result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert message in result.stdout, result.stdout
    found = status(host)
    assert not found["ok"] and found["exit_code"] == 1
    assert all(not job["ok"] for job in found["jobs"])
    assert any(message in error for error in found["errors"]), found["errors"]
    prom = metrics(host)
    assert f'portalops_backup_last_run_success{{host="{host}",command="run"}} 0' in prom
    assert "portalops_backup_job_snapshot_info{" not in prom


@pytest.mark.parametrize(
    ("host", "args"),
    [("web1", "run"), ("db1", "run --job db-dump")],
    ids=["files-job", "dump-streaming-into-restic"],
)
def test_a_wrong_repository_password_fails_clearly(first_night: Any, host: str, args: str) -> None:
    # The dump job: restic gives up before it reads the stream; its reason, not "stopped reading".
    before = snapshot_ids(host, "db-dump")
    on(host, "cp -p /etc/portalops/restic.pass /root/restic.pass.keep && echo wrong > /etc/portalops/restic.pass")
    try:
        result = run_wrapper(host, args)
    finally:
        on(host, "mv /root/restic.pass.keep /etc/portalops/restic.pass")
    assert_failed_run(host, result, "wrong repository password")
    assert snapshot_ids(host, "db-dump") == before


def repository_locks(client: str) -> list[str]:
    return on("backup1", f"ls /srv/restic/{client}/repo/locks").stdout.split()


def test_a_crashed_runs_lock_is_removed_and_a_live_runs_lock_kept(first_night: Any) -> None:
    """A restic backup on web1 that holds its lock (it waits for input that never ends): the
    wrapper's run fails naming the lock and leaves it. Then that restic is killed (SIGKILL, as a
    crash or the OOM killer would): its lock stays in the repository, stale, and the next run
    removes it and passes."""
    tag = f"portalops-test-lock-{uuid.uuid4().hex[:8]}"
    hold = client_command(f"backup --stdin --stdin-filename {tag} --tag {tag}")
    # [x] in the patterns: the shell running pkill has them in its own command line.
    kill = f"pkill -KILL -f -- '--stdin-filenam[e] {tag}'; pkill -f 'slee[p] 600'"
    assert repository_locks("web1") == []
    on("web1", f"setsid sh -c {shlex.quote(f'sleep 600 | {{ {hold}; }}')} >/dev/null 2>&1 &")
    try:
        for _ in range(100):
            if repository_locks("web1"):
                break
            time.sleep(0.2)
        held = repository_locks("web1")
        assert len(held) == 1, "the holding restic made no lock in 20 s"

        live = run_wrapper("web1", "run")
        # The backup itself shares the lock; forget needs it alone, so the job fails there.
        assert live.returncode == 1, live.stdout + live.stderr
        assert "removing stale locks" in live.stdout, live.stdout
        found = status("web1")
        assert not found["ok"] and len(found["errors"]) == 1, found["errors"]
        assert found["errors"][0].startswith("etc: repository is locked by another process ("), found["errors"]
        assert 'portalops_backup_last_run_success{host="web1",command="run"} 0' in metrics("web1")
        assert repository_locks("web1") == held, "a live run's lock was removed"

        on("web1", kill, check=False)
        crashed = run_wrapper("web1", "run")
        assert crashed.returncode == 0, crashed.stdout + crashed.stderr
        assert "removing stale locks" in crashed.stdout, crashed.stdout
        assert repository_locks("web1") == []
        assert status("web1")["ok"]
    finally:
        on("web1", kill, check=False)
        client_restic("web1", "unlock", check=False)
    assert not [s for s in json.loads(client_restic("web1", "snapshots --json").stdout) if tag in s.get("tags", [])]


def test_backup_host_down_fails_clearly(first_night: Any) -> None:
    podman("pause", "portalops-backup1")
    try:
        result = run_wrapper("web1", "run")
    finally:
        podman("unpause", "portalops-backup1")
    assert_failed_run("web1", result, "backup host unreachable")


def test_a_read_only_repository_fails_clearly(first_night: Any) -> None:
    repo = "/srv/restic/web1/repo"
    on("backup1", f"chmod -R a-w {repo}")
    try:
        result = run_wrapper("web1", "run")
    finally:
        on("backup1", f"find {repo} -type d -exec chmod 2750 {{}} + && find {repo} -type f -exec chmod 0440 {{}} +")
    assert_failed_run("web1", result, "not writable")
    assert run_wrapper("web1", "run").returncode == 0, "web1 should back up again once the repository is writable"


@contextlib.contextmanager
def full_repository(client: str) -> Iterator[str]:
    """The client's repository on backup1 copied onto a tmpfs a few MiB larger than it, filled to
    ~100 KiB free: a full backup disk without filling this machine's. The tmpfs is mounted in
    backup1's mount namespace, entered from the lab host (as faultdrill's staging_full does); the
    repository underneath is untouched and is back once it is unmounted."""
    repo = f"/srv/restic/{client}/repo"
    pid = podman("inspect", "-f", "{{.State.Pid}}", "portalops-backup1").stdout.strip()
    size_kib = int(on("backup1", f"du -sk {repo}").stdout.split()[0]) + 4096
    keep = f"/root/.{client}-repo-under-tmpfs"

    def inside(script: str) -> subprocess.CompletedProcess[str]:
        # Its pid namespace too: mount, umount and df read /proc/self/mountinfo from the container's /proc.
        return subprocess.run(
            ["nsenter", "-t", pid, "-m", "-p", "sh", "-c", script],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    mounted = inside(
        f"set -e; mkdir -p {keep}; mount --bind {repo} {keep}; "
        f"mount -t tmpfs -o size={size_kib}k,mode=$(stat -c %a {repo}),uid=$(stat -c %u {repo}),"
        f"gid=$(stat -c %g {repo}) portalops-test-full {repo}; "
        f"cp -a {keep}/. {repo}/; umount {keep}; rmdir {keep}; "
        f"free=$(df -Pk {repo} | awk 'NR == 2 {{print $4}}'); fallocate -l $(( (free - 100) * 1024 )) {repo}/.fill; "
        f"df -Pk {repo}"
    )
    try:
        assert mounted.returncode == 0, mounted.stdout + mounted.stderr
        yield repo
    finally:
        # The failed run's SFTP session may still hold a pack open for a moment: retry, then detach.
        # mountpoint (util-linux 2.38) exits 32 for "not a mount point"; 1 is an error, not "unmounted".
        undone = inside(
            'release() { [ -e "$1" ] || return 0; for i in $(seq 20); do mountpoint -q "$1"; rc=$?; '
            '[ $rc -eq 32 ] && return 0; [ $rc -ne 0 ] && return $rc; umount "$1" 2>/dev/null || sleep 0.5; done; '
            'umount -l "$1"; mountpoint -q "$1"; [ $? -eq 32 ]; }; '
            f"release {repo} && release {keep} && {{ rmdir {keep} 2>/dev/null; true; }}"
        )
        assert undone.returncode == 0, f"{repo} may still be a tmpfs on backup1: " + undone.stdout + undone.stderr


def test_a_full_repository_fails_clearly(first_night: Any) -> None:
    # web1's repository (its /etc) is the smallest, so the tmpfs standing in for a full disk is too.
    added = "/etc/portalops-test-repository-full.bin"
    try:
        with full_repository("web1"):
            on("web1", f"head -c 6M /dev/urandom > {added}")
            result = run_wrapper("web1", "run")
    finally:
        on("web1", f"rm -f {added}")
    assert_failed_run("web1", result, "repository full: no space left on the backup host")
    assert run_wrapper("web1", "run").returncode == 0, "web1 should back up again once the repository has room"


@pytest.mark.parametrize(
    ("shim", "message"),
    [
        ('/usr/bin/mariadb-dump "$@" | head -c 20000; exit 2', "mariadb-dump failed (exit 2)"),
        ('/usr/bin/mariadb-dump "$@" | head -c 20000; exit 0', "truncated"),
    ],
    ids=["dump-fails-midway", "dump-truncated"],
)
def test_a_failed_dump_never_becomes_a_snapshot(first_night: Any, shim: str, message: str) -> None:
    before = snapshot_ids("db1", "db-dump")
    on("db1", f"mkdir -p /root/shim && printf '#!/bin/sh\\n%s\\n' {shlex.quote(shim)} > /root/shim/mariadb-dump")
    on("db1", "chmod +x /root/shim/mariadb-dump")
    try:
        result = run_wrapper("db1", "run", "--job", "db-dump", env="PATH=/root/shim:/usr/sbin:/usr/bin:/sbin:/bin")
    finally:
        on("db1", "rm -rf /root/shim")
    assert result.returncode == 1, result.stdout + result.stderr
    assert message in result.stdout and "no snapshot kept" in result.stdout, result.stdout
    assert snapshot_ids("db1", "db-dump") == before
    assert not status("db1")["ok"]


def test_a_drill_outside_the_drill_group_is_refused(first_night: Any) -> None:
    from tests.integration.helpers import playbook

    code, _, output = playbook("playbooks/restore_drill.yml", "-e", "drill_host=db1")
    assert code != 0
    assert "not in the drill inventory group" in output
    assert on("db1", "systemctl is-active mariadb").stdout.strip() == "active"
    assert on("db1", "test -e /usr/local/lib/portalops/portalops_drill.py", check=False).returncode != 0


@pytest.fixture
def corrupted_db1_repository() -> Iterator[str]:
    """Every pack of db1's repository overwritten with zeros (same size), so every blob in it is damaged; put back
    afterwards. Bytes flipped at one offset per pack damaged one blob per pack: once, none of those was one the
    newest snapshots still needed (the night's backup had rewritten them), and the drill restored cleanly."""
    repo = "/srv/restic/db1/repo"
    on("backup1", f"rm -rf /root/db1-data.keep && cp -a {repo}/data /root/db1-data.keep")
    on(
        "backup1",
        f"for f in $(find {repo}/data -type f); do "
        "chmod u+w $f; size=$(stat -c %s $f); head -c $size /dev/zero > $f; "
        "chmod 0440 $f; done",
    )
    try:
        yield repo
    finally:
        # Copy the originals back over; packs written meanwhile (they may refer to blobs in them) stay.
        on("backup1", f"cp -a /root/db1-data.keep/. {repo}/data/ && rm -rf /root/db1-data.keep")


def test_a_corrupted_pack_fails_check_drill_and_nightly(first_night: Any, corrupted_db1_repository: str) -> None:
    check = run_wrapper("db1", "check", "--subset", "100%")
    assert check.returncode == 1
    # Named as configured: every client's repository is /repo in its own chroot on backup1.
    named = f"db1's repository {json.loads(on('db1', 'cat /etc/portalops/backup.json').stdout)['repository']}"
    assert f"check FAILED: {named} contains errors: " in check.stdout, check.stdout
    # ...and then restic's first problem, not the backup host's login banner ssh relayed.
    assert "contains errors: subprocess ssh" not in check.stdout, check.stdout
    found = status("db1", "check")
    assert not found["ok"] and found["errors"][0].startswith(f"{named} contains errors: "), found["errors"]

    night = nightly()
    assert night.returncode == 1, night.stdout + night.stderr
    assert "FAIL" in night.stdout
    report = newest_drill_report()
    assert not report["summary"]["ok"]
    problems = " ".join(p for c in report["result"]["checks"] for p in c["problems"])
    assert "db1/repo" in problems, problems


PACKAGE_PLAY = """\
- name: Install the host-side package
  hosts: web1
  gather_facts: false
  tasks:
    - name: Install the host-side package
      ansible.builtin.include_role:
        name: restic_backup
        tasks_from: package
"""


def installed_modules(host: str, package: str) -> dict[str, str]:
    """name: "sha1 mode owner:group" of each module of the installed package."""
    listed = on(
        host,
        f"cd {package} && for f in *.py; do echo $f $(sha1sum < $f | cut -d' ' -f1) $(stat -c '%a %U:%G' $f); done",
    )
    return {name: rest for name, rest in (line.split(" ", 1) for line in listed.stdout.splitlines())}


def test_the_host_package_is_put_right_and_then_left_alone(converged: LabConfig, tmp_path: Path) -> None:
    """A module changed, its mode changed, a module the package no longer has: one run puts them right, check
    mode first only reports them, and a run after that changes nothing."""
    from tests.integration.helpers import changed_tasks, playbook

    play = tmp_path / "package.yml"
    play.write_text(PACKAGE_PLAY)
    package = on("web1", "python3 -c \"import sysconfig; print(sysconfig.get_path('purelib'))\"").stdout.strip()
    package += "/portalops_host"
    wanted = {
        path.name: f"{hashlib.sha1(path.read_bytes(), usedforsecurity=False).hexdigest()} 644 root:root"
        for path in sorted((REPO_ROOT / "portalops_host").glob("*.py"))
    }
    assert installed_modules("web1", package) == wanted
    on("web1", f"echo '# drift' >> {package}/times.py && chmod 0600 {package}/log.py && touch {package}/retired.py")
    try:
        code, stats, output = playbook(str(play), "--check", "--diff")
        assert code == 0, output[-3000:]
        assert sorted(changed_tasks(output)) == [
            "web1: base : portalops_host | Install the portalops_host modules that differ",
            "web1: base : portalops_host | Remove the modules the package no longer has",
        ]
        assert set(installed_modules("web1", package)) == set(wanted) | {"retired.py"}  # check mode changed nothing

        code, stats, output = playbook(str(play))
        assert code == 0, output[-3000:]
        assert stats["web1"]["changed"] == 2, changed_tasks(output)
        assert installed_modules("web1", package) == wanted
    finally:
        # Whatever failed above, the lab is left with the package as the checkout has it.
        on("web1", f"rm -f {package}/retired.py")
        playbook(str(play))
    for extra in ((), ("--check", "--diff")):
        code, stats, output = playbook(str(play), *extra)
        assert code == 0 and stats["web1"]["changed"] == 0, changed_tasks(output)


def test_nightly_passes_on_a_healthy_lab(first_night: Any) -> None:
    night = nightly()
    assert night.returncode == 0, night.stdout + night.stderr
    assert "PASS: RTO" in night.stdout
    report = sorted(Path(REPO_ROOT / "reports/nightly").glob("*.md"))[-1].read_text()
    assert "Verdict: **PASS**" in report and "db1: db-dump: ok" in report
