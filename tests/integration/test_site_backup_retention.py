"""Retention on the converged lab: the last good backup survives later backups of a damaged site.

A responder's "back up now" after an unnoticed mass deletion, or a re-run of the nightly, takes
more snapshots the same day; with one snapshot kept per day they pruned the day's earlier, good
one and nothing good was left to restore. Takes its own backups of db1 (depends on no other
module's order) and leaves the site's posts as they were. The second copy on the backup host is
never pruned while a client has dated a snapshot in the future. A backup whose manifest shows mass
loss against its predecessor flags the job and pins the predecessor until a person releases it.
A physical restore checks the restored data with MariaDB closed to the network; a SIGKILLed restore's closed
drop-in is found, named and removed by l1_portal_unreachable, a running restore's left alone, also while the
restore has MariaDB stopped.
"""

from __future__ import annotations

import base64
import json
import shlex
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from portalops.lab.config import LabConfig
from portalops_host.closed import CLOSED_DROPIN, Owner, dropin_text, owner_of
from portalops_host.times import now, stamp
from tests.integration.helpers import ENV, incident_journal, on, portalops, runbook_said
from tests.integration.test_site import SITES
from tests.integration.test_site_backup import client_restic

DATABASE = SITES[0]["db_name"]
BACKUP = "/usr/local/sbin/portalops-backup"
SAVED = "/root/portalops-test-retention-posts.sql"
ASIDE = "ls -d /var/lib/mysql.before-restore-* /var/lib/mysql.failed-restore-* 2>/dev/null || true"
PIN = "portalops-pinned"
POSTS = f"SELECT COUNT(*) FROM {DATABASE}.wp_posts WHERE post_type = 'post'"


def sql(statement: str) -> str:
    return on("db1", f"mariadb --batch --skip-column-names -e {shlex.quote(statement)}").stdout.strip()


def backup() -> dict[str, Any]:
    """One `portalops-backup run` on db1; its status (each job's new snapshot id)."""
    result = on("db1", f"{BACKUP} run", check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    status: dict[str, Any] = json.loads(on("db1", "cat /var/lib/portalops/backup/run.json").stdout)
    return status


def snapshot_of(status: dict[str, Any], job: str) -> str:
    """The job's new snapshot (restic 0.14's backup summary gives its short id)."""
    return str(next(j["snapshot_id"] for j in status["jobs"] if j["name"] == job))


def listed() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(on("db1", f"{BACKUP} snapshots").stdout or "[]")
    return found


def snapshots() -> set[str]:
    """Every snapshot id in db1's repository, short and long, and the ids pinned ones had before
    restic tag gave them new ones."""
    found = listed()
    originals = {s.get("original", "") for s in found} - {""}
    return {s["id"] for s in found} | {s["short_id"] for s in found} | originals | {o[:8] for o in originals}


def now_known_as(snapshot_id: str) -> dict[str, Any]:
    """The snapshot that was ``snapshot_id`` (restic tag rewrites a snapshot under a new id)."""
    return next(s for s in listed() if s["id"].startswith(snapshot_id) or s.get("original", "").startswith(snapshot_id))


def pinned() -> set[str]:
    return {s["id"] for s in listed() if PIN in (s.get("tags") or [])}


@pytest.fixture
def posts_saved(converged: LabConfig) -> Iterator[int]:
    """The first site's posts, saved on db1 apart from any backup; afterwards they are put back if a
    test left them gone, the restore's evidence directories are removed and a backup of the site as
    it was is taken."""
    aside = set(on("db1", ASIDE).stdout.split())
    pins = pinned()
    on("db1", f"mariadb-dump --no-create-info --where=\"post_type = 'post'\" {DATABASE} wp_posts > {SAVED}")
    count = int(sql(POSTS))
    assert count > 0, "the lab's first site has no posts to lose"
    yield count
    if int(sql(POSTS)) != count:
        sql(f"DELETE FROM {DATABASE}.wp_posts WHERE post_type = 'post'")
        on("db1", f"mariadb {DATABASE} < {SAVED}")
    on("db1", f"rm -f {SAVED}")
    for path in set(on("db1", ASIDE).stdout.split()) - aside:  # this test's restore evidence
        on("db1", f"rm -rf {path}")
    for made in pinned() - pins:  # this test's mass loss pinned the good snapshots
        on("db1", f"{BACKUP} release {made}")
    assert int(sql(POSTS)) == count
    # The newest snapshot is the one a drill or a restore takes: not one of the site without its posts.
    backup()


def test_the_good_snapshot_survives_two_more_backups_the_same_day_and_restores(posts_saved: int) -> None:
    good = backup()
    physical, dump = snapshot_of(good, "db-physical"), snapshot_of(good, "db-dump")
    sql(f"DELETE FROM {DATABASE}.wp_posts WHERE post_type = 'post'")
    assert int(sql(POSTS)) == 0
    later = [backup(), backup()]
    assert all(snapshot_of(s, "db-physical") != physical for s in later)
    kept = snapshots()
    assert physical in kept, "the day's good physical backup was pruned by a later backup the same day"
    assert dump in kept, "the day's good dump was pruned by a later backup the same day"
    # Restorable: the good snapshot brings the posts back, verified against its manifest (pinned by
    # the mass loss, it has a new id).
    current = now_known_as(physical)["id"]
    restore = on("db1", f"{BACKUP} restore-database --snapshot {current[:8]} --yes", check=False)
    assert restore.returncode == 0, restore.stdout[-3000:] + restore.stderr[-2000:]
    assert json.loads(restore.stdout.strip().splitlines()[-1])["snapshot"].startswith(current)
    assert int(sql(POSTS)) == posts_saved


# The site writing wp_options over the network as WordPress does (mysqli, the site's wp-config, TLS), every
# 0.1 s, until argv[2] exists or argv[3] seconds passed: one line per attempt, "<time> written", "<time> failed
# <errno>" or "<time> refused <errno>" (no connection). argv[1]: the site's config file.
WRITER = r"""
mysqli_report(MYSQLI_REPORT_OFF);
require $argv[1];
[$host, $port] = explode(':', DB_HOST);
$end = microtime(true) + (float) $argv[3];
while (!file_exists($argv[2]) && microtime(true) < $end) {
    $at = sprintf('%.3f', microtime(true));
    $db = mysqli_init();
    $db->options(MYSQLI_OPT_CONNECT_TIMEOUT, 2);
    if (@mysqli_real_connect($db, $host, DB_USER, DB_PASSWORD, DB_NAME, (int) $port, null, MYSQL_CLIENT_FLAGS)) {
        $ok = $db->query("INSERT INTO {$table_prefix}options (option_name, option_value, autoload) VALUES "
            . "('portalops_race_probe', '$at', 'no') ON DUPLICATE KEY UPDATE option_value = VALUES(option_value)");
        echo $at, $ok ? ' written' : ' failed ' . $db->errno, "\n";
        $db->close();
    } else {
        echo $at, ' refused ', mysqli_connect_errno(), "\n";
    }
    usleep(100000);
}
"""
WRITES = "/root/portalops-test-race-writes.log"
WRITES_STOP = "/root/portalops-test-race-writes.stop"
PROBE = f"SELECT option_value FROM {DATABASE}.wp_options WHERE option_name = 'portalops_race_probe'"
# Rows that make the exact check of the first site take a while before it reaches wp_options (CHECKSUM
# TABLE goes in name order), as a real site's posts and meta do; outside the binary log, so that no
# point-in-time recovery of another test replays them.
BULK = f"{DATABASE}.wp_bulk_portalops_test"
UNLOGGED = "SET SESSION sql_log_bin = 0; "


def writer_command(seconds: float) -> str:
    code = base64.b64encode(WRITER.encode()).decode()
    config = f"/etc/wordpress/config-{SITES[0]['domains'][0]}.php"
    return f'php -r "$(echo {code} | base64 -d)" {config} {WRITES_STOP} {seconds}'


def attempts() -> list[tuple[float, str]]:
    lines = on("cms1", f"cat {WRITES}", check=False).stdout.splitlines()
    return [(float(at), outcome) for at, outcome in (line.split(" ", 1) for line in lines if " " in line)]


@pytest.fixture
def site_writer(converged: LabConfig) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """Starts cms1 writing wp_options over the network every 0.1 s (once it has written). Also 600,000 rows in
    a table of the first site that the exact check reads before wp_options. Afterwards the writer is stopped,
    its option and the table deleted, the restore's evidence removed and a backup of the site as it was taken."""
    aside = set(on("db1", ASIDE).stdout.split())
    writers: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        on("cms1", f"rm -f {WRITES} {WRITES_STOP}")
        command = f"{writer_command(900)} > {WRITES}"
        writers.append(subprocess.Popen(["podman", "exec", "portalops-cms1", "/bin/sh", "-c", command], env=ENV))
        for _ in range(100):
            if any(outcome == "written" for _, outcome in attempts()):
                break
            time.sleep(0.1)
        assert any(outcome == "written" for _, outcome in attempts()), attempts()[-5:]
        return writers[-1]

    try:
        sql(f"{UNLOGGED}DROP TABLE IF EXISTS {BULK}; CREATE TABLE {BULK} (id INT PRIMARY KEY, body VARCHAR(200)); "
            f"INSERT INTO {BULK} SELECT seq, REPEAT(MD5(seq), 4) FROM {DATABASE}.seq_1_to_600000")  # fmt: skip
        yield start
    finally:
        on("cms1", f"touch {WRITES_STOP}")
        for writer in writers:
            try:
                writer.wait(timeout=30)
            except subprocess.TimeoutExpired:
                writer.kill()
        on("cms1", f"rm -f {WRITES} {WRITES_STOP}")
        sql(f"DELETE FROM {DATABASE}.wp_options WHERE option_name = 'portalops_race_probe'")
        sql(f"{UNLOGGED}DROP TABLE IF EXISTS {BULK}")
        for path in set(on("db1", ASIDE).stdout.split()) - aside:  # this test's restore evidence
            on("db1", f"rm -rf {path}")
        # The newest snapshot is the one a drill or a restore takes: the site without the test's table.
        backup()


def stamped_restore(snapshot: str) -> tuple[int, list[tuple[float, str]], str]:
    """restore-database of ``snapshot`` on db1, each line of its output with the time it was printed."""
    stamp = 'while IFS= read -r line; do printf "%s %s\\n" "$(date +%s.%N)" "$line"; done'
    command = f"{BACKUP} restore-database --snapshot {snapshot} --yes | {stamp}"
    result = on("db1", f"bash -o pipefail -c {shlex.quote(command)}", check=False)
    lines = [line.split(" ", 1) for line in result.stdout.splitlines()]
    return result.returncode, [(float(at), text) for at, text in lines], result.stderr


def printed(lines: list[tuple[float, str]], text: str) -> float:
    found = [at for at, line in lines if text in line]
    assert found, f"the restore did not say {text!r}: " + "\n".join(line for _, line in lines)[-3000:]
    return found[0]


def test_a_physical_restore_is_verified_while_the_site_writes_and_the_site_writes_again_after(
    site_writer: Callable[[], subprocess.Popen[bytes]],
) -> None:
    # CI: the monitoring's page views wrote wp_options between MariaDB's start on the restored data and the
    # exact check, and a good restore said FAILED. Here a backup of the quiet site (its manifest exact), then
    # cms1 writes every 0.1 s from just before the restore to after it, and the check takes long enough to
    # reach wp_options after the site's next attempt.
    physical = snapshot_of(backup(), "db-physical")
    writer = site_writer()
    code, lines, stderr = stamped_restore(physical)
    output = "\n".join(line for _, line in lines)
    assert code == 0, output[-3000:] + stderr[-2000:]
    result = json.loads(lines[-1][1])
    assert result["path"] == "physical" and result["problems"] == [], result
    assert result["snapshot"].startswith(physical)
    closed = printed(lines, "physical: MariaDB started with networking off for the exact check")
    checked = printed(lines, "verify: ok, ")
    reopening = printed(lines, "physical: reopening MariaDB to the network")
    reopened = printed(lines, "physical: MariaDB reopened to the network")
    assert closed < checked < reopening < reopened
    time.sleep(2)  # the writer's attempts after the reopen
    tried = attempts()
    during = [(at, outcome) for at, outcome in tried if closed <= at <= reopening]
    assert during, f"cms1 tried no write while the exact check ran: {tried[-40:]}"
    assert all(outcome.startswith("refused") for _, outcome in during), during
    after = [(at, outcome) for at, outcome in tried if at > reopened]
    assert after and all(outcome == "written" for _, outcome in after), after[:20]
    # The server is on the network again: a new connection from cms1 writes, and db1 holds what it wrote.
    on("cms1", f"touch {WRITES_STOP}")
    writer.wait(timeout=30)
    last = on("cms1", f"rm -f {WRITES_STOP} && {writer_command(0.05)}").stdout.split()  # one attempt
    assert last[1:] == ["written"], last
    assert sql(PROBE) == last[0]


# A restore's closed drop-in as portalops_host.closed writes it (its owner in a comment line).
DROPIN = str(CLOSED_DROPIN)
SKIP_NETWORKING = "SELECT @@skip_networking"


def site_write() -> list[str]:
    """One write of the first site over the network, as WordPress does: ['<time>', 'written'] or refused."""
    return on("cms1", f"rm -f {WRITES_STOP} && {writer_command(0.05)}").stdout.split()


def closed_by(pid: int, start: int) -> str:
    """db1's MariaDB restarted closed by a restore drop-in that names ``pid`` (started at ``start``) as its owner,
    as a restore leaves it; its text."""
    boot = on("db1", "cat /proc/sys/kernel/random/boot_id").stdout.strip()
    text = dropin_text(Owner(boot, pid, start, stamp(now())))
    on("db1", f"mkdir -p {CLOSED_DROPIN.parent} && printf %s {shlex.quote(text)} > {DROPIN}")
    on("db1", "systemctl daemon-reload && systemctl restart mariadb")
    assert sql(SKIP_NETWORKING) == "1"
    return text


def step_events(events: list[dict[str, Any]], step: str) -> tuple[str, str, list[str]]:
    """How the runbook's ``step`` ended, what its commands printed, and its findings."""
    [end] = [e for e in events if e["event"] == "step_end" and e["step"] == step]
    said = "\n".join(str(e.get("stdout", "")) for e in events if e["event"] == "command" and e.get("step") == step)
    return str(end["result"]), said, [str(f) for f in end["findings"]]


@pytest.fixture
def restore_dropin(converged: LabConfig) -> Iterator[list[int]]:
    """db1 without a restore drop-in afterwards, on the network, the processes the test started (pids in the
    list) gone and the site's test writes deleted."""
    started: list[int] = []
    yield started
    for pid in started:
        on("db1", f"kill {pid}", check=False)
    on("db1", f"rm -f {DROPIN}; rmdir {CLOSED_DROPIN.parent} 2>/dev/null; systemctl daemon-reload")
    if sql(SKIP_NETWORKING) != "0":
        on("db1", "systemctl restart mariadb")
    sql(f"DELETE FROM {DATABASE}.wp_options WHERE option_name = 'portalops_race_probe'")
    assert sql(SKIP_NETWORKING) == "0"


def test_the_runbook_removes_a_killed_restores_drop_in_and_leaves_a_running_restores(
    restore_dropin: list[int],
) -> None:
    # A SIGKILLed restore's drop-in (its pid gone), then MariaDB restarted as a person would: active, and
    # closed to the network, so the site cannot reach it and `systemctl is-active` says all is well.
    dead = int(on("db1", "sh -c 'echo $$'").stdout)
    closed_by(dead, 1)
    assert site_write()[1] == "refused", "the site reached a MariaDB closed to the network"
    result = portalops("runbook", "run", "l1_portal_unreachable", "--yes", timeout=900)
    assert result.returncode == 0, runbook_said(result)  # recovered
    events = incident_journal(result)
    stale = f"STALE restore drop-in {DROPIN} (restore-database pid {dead}, closed at "
    diagnosed, _, findings = step_events(events, "db_mariadb")
    assert diagnosed == "problem" and any(stale in finding for finding in findings), findings
    acted, said, _ = step_events(events, "start_mariadb")
    assert acted == "done" and stale in said and "removed and MariaDB restarted: on the network" in said, said
    assert on("db1", f"test -e {DROPIN}", check=False).returncode == 1
    assert sql(SKIP_NETWORKING) == "0" and site_write()[1] == "written"

    # A running restore's drop-in (a live process's pid and start time): busy, not broken. The runbook names
    # it and leaves it and MariaDB alone: the restore reopens it when its check is done.
    live = int(on("db1", "setsid sleep 900 > /dev/null 2>&1 < /dev/null & echo $!").stdout)
    restore_dropin.append(live)
    text = closed_by(live, int(on("db1", f"cut -d ' ' -f 22 /proc/{live}/stat").stdout))
    invocation = on("db1", "systemctl show -p InvocationID --value mariadb").stdout
    result = portalops("runbook", "run", "l1_portal_unreachable", "--yes", timeout=900)
    events = incident_journal(result)
    busy = f"busy, not broken: a running restore (restore-database pid {live}, closed at "
    acted, _, findings = step_events(events, "start_mariadb")
    assert acted == "unknown" and any(busy in finding for finding in findings), findings
    assert on("db1", f"cat {DROPIN}").stdout == text
    assert on("db1", "systemctl show -p InvocationID --value mariadb").stdout == invocation  # not restarted
    assert sql(SKIP_NETWORKING) == "1"


RESTORE_OUT = "/root/portalops-test-frozen-restore.out"
RESTORE_RC = "/root/portalops-test-frozen-restore.rc"
RESTORE_STATUS = "/var/lib/portalops/backup/restore-database.json"


def mariadb_state() -> str:
    return on("db1", "systemctl is-active mariadb", check=False).stdout.strip()


def to_group(group: int, signal: str) -> subprocess.CompletedProcess[str]:
    """``signal`` (STOP, CONT, 0) to db1's process group ``group`` (bash's kill: dash's takes no '--')."""
    return on("db1", f"bash -c 'kill -{signal} -- -{group}'", check=False)


def restore_running(group: int) -> bool:
    return to_group(group, "0").returncode == 0


@pytest.fixture
def frozen_restore(restore_dropin: list[int]) -> Iterator[Callable[[str], tuple[int, int]]]:
    """Starts a physical `restore-database --yes` of a snapshot on db1 in a process group of its own and freezes
    it (SIGSTOP to the group) as soon as MariaDB is no longer active: the restore in its stopped phase. Gives
    the group and the restore's pid. Afterwards a restore still there is never left frozen: SIGTERM (it unwinds:
    its own data back, MariaDB reopened), SIGCONT, waited for; its evidence directory is removed."""
    aside = set(on("db1", ASIDE).stdout.split())
    groups: list[int] = []

    def start(snapshot: str) -> tuple[int, int]:
        run = f"{BACKUP} restore-database --snapshot {snapshot} --yes > {RESTORE_OUT} 2>&1; echo $? > {RESTORE_RC}"
        # Polled on db1 itself (every 20 ms): the stop takes seconds, the restore is frozen inside it.
        script = (
            f"rm -f {RESTORE_OUT} {RESTORE_RC}; setsid sh -c {shlex.quote(run)} < /dev/null > /dev/null 2>&1 & "
            "group=$!; end=$(($(date +%s) + 600)); "
            'while [ "$(systemctl is-active mariadb)" = active ] && kill -0 $group && [ $(date +%s) -lt $end ]; '
            "do sleep 0.02; done; kill -STOP -- -$group; echo $group"
        )
        group = int(on("db1", f"bash -c {shlex.quote(script)}").stdout)
        groups.append(group)
        restore = on("db1", f"pgrep -P {group}", check=False).stdout.split()
        assert restore_running(group) and len(restore) == 1, on("db1", f"cat {RESTORE_OUT}", check=False).stdout
        return group, int(restore[0])

    yield start
    for group in groups:
        if restore_running(group):
            on("db1", f"pkill -TERM -P {group}", check=False)
            to_group(group, "CONT")
            end = time.monotonic() + 600
            while restore_running(group) and time.monotonic() < end:
                time.sleep(1)
            assert not restore_running(group), "the test's restore did not end after SIGTERM"
    on("db1", f"rm -f {RESTORE_OUT} {RESTORE_RC}")
    for path in set(on("db1", ASIDE).stdout.split()) - aside:  # this test's restore evidence
        on("db1", f"rm -rf {path}")


def test_the_runbook_never_starts_mariadb_a_running_restore_has_stopped(
    frozen_restore: Callable[[str], tuple[int, int]],
) -> None:
    # The restore wrote its drop-in only after the move-back: between its stop and then, the runbook saw a stopped
    # MariaDB and no drop-in, broken, and started MariaDB under the restore (on a half-moved data directory, on
    # the network). The drop-in exists from before the stop now: busy, unknown, and nothing is started.
    physical = snapshot_of(database_backup(), "db-physical")
    group, restore = frozen_restore(physical[:8])
    end = time.monotonic() + 120
    while mariadb_state() not in ("inactive", "failed") and time.monotonic() < end:
        time.sleep(0.5)  # the stop job goes on in systemd while the restore is frozen
    assert mariadb_state() == "inactive"
    invocation = on("db1", "systemctl show -p InvocationID --value mariadb").stdout
    try:
        result = portalops("runbook", "run", "l1_portal_unreachable", "--yes", timeout=900)
        events = incident_journal(result)
        busy = f"busy, not broken: a running restore (restore-database pid {restore}, closed at "
        _, _, findings = step_events(events, "db_mariadb")  # a diagnosis is a problem when any host's is not ok
        assert any(f"unknown (exit 75: {busy}" in finding for finding in findings), findings
        acted, said, findings = step_events(events, "start_mariadb")
        assert acted == "unknown" and any(busy in finding for finding in findings), [*findings, said]
        assert mariadb_state() == "inactive", "the runbook started MariaDB under a running restore"
        assert on("db1", "systemctl show -p InvocationID --value mariadb").stdout == invocation  # never started
        owner = owner_of(on("db1", f"cat {DROPIN}").stdout)
        assert owner is not None and owner.pid == restore
    finally:
        to_group(group, "CONT")  # never left frozen, whatever failed above (the fixture checks it ended)
    end = time.monotonic() + 900
    while restore_running(group) and time.monotonic() < end:
        time.sleep(2)
    output = on("db1", f"cat {RESTORE_OUT}").stdout
    assert on("db1", f"cat {RESTORE_RC}").stdout.strip() == "0", output[-4000:]
    assert output.index("physical: closing MariaDB to the network for the restore") < output.index(
        "physical: stopping MariaDB"
    )
    finished = json.loads(output.strip().splitlines()[-1])
    assert finished["path"] == "physical" and finished["problems"] == [], finished
    assert finished["snapshot"].startswith(physical)
    status = json.loads(on("db1", f"cat {RESTORE_STATUS}").stdout)
    assert status["ok"] is True and status["restore"]["phase"] == "finished", status
    assert "restore-database: verified in " in output
    # Reopened: on the network, no drop-in, and the site writes.
    assert on("db1", f"test -e {DROPIN}", check=False).returncode == 1
    assert sql(SKIP_NETWORKING) == "0" and site_write()[1] == "written"


CONFIG = "/etc/portalops/backup.json"
DATABASE_JOBS = ("db-physical", "db-dump")


def job_entry(status: dict[str, Any], job: str) -> dict[str, Any]:
    return next(j for j in status["jobs"] + status.get("not_run", []) if j["name"] == job)


def database_backup() -> dict[str, Any]:
    """`portalops-backup run` of the database jobs only (their forget only)."""
    result = on("db1", f"{BACKUP} run " + " ".join(f"--job {job}" for job in DATABASE_JOBS), check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    status: dict[str, Any] = json.loads(on("db1", "cat /var/lib/portalops/backup/run.json").stdout)
    return status


def test_a_mass_loss_pins_the_good_snapshot_until_a_person_releases_it(posts_saved: int) -> None:
    good = backup()
    before = {job: snapshot_of(good, job) for job in DATABASE_JOBS}
    # The flag counts published posts: the lab's scheduled post (status future) is among the saved ones.
    published = int(sql(f"{POSTS} AND post_status = 'publish'"))
    assert 0 < published <= posts_saved
    sql(f"DELETE FROM {DATABASE}.wp_posts WHERE post_type = 'post'")
    flagged = backup()
    for job, good_id in before.items():
        entry = job_entry(flagged, job)
        assert entry["ok"], entry
        assert entry.get("mass_loss"), f"{job}: a backup without the site's posts is not flagged: {entry}"
        flag = entry["mass_loss"][0]
        gone = f"{DATABASE}.wp_posts: {published} of {published} published posts gone"
        assert any(problem.startswith(gone) for problem in flag["problems"]), flag
        assert flag["snapshot"] == snapshot_of(flagged, job)[:8]
        pin = now_known_as(good_id)
        assert PIN in pin["tags"], f"{job}: the good snapshot {good_id[:8]} is not pinned"
        assert flag["pinned_snapshot_id"] == pin["id"]
    metrics_dir = json.loads(on("db1", f"cat {CONFIG}").stdout)["metrics_dir"]
    metrics = on("db1", f"cat {metrics_dir}/portalops_backup_run.prom").stdout
    for job in DATABASE_JOBS:
        assert f'portalops_backup_mass_loss{{host="db1",job="{job}"}} 1' in metrics, metrics
    shown = on("db1", f"{BACKUP} status").stdout
    assert "MASS LOSS in snapshot" in shown and "pinned snapshots: 2" in shown, shown

    # More backups of the damaged site under a policy that keeps only the newest: the pins survive.
    on("db1", f"cp -p {CONFIG} {CONFIG}.pin-test")
    try:
        on(
            "db1",
            'python3 -c \'import json, sys; c = json.load(open(sys.argv[1])); c["keep"] = {"last": 1}; '
            f'[j.pop("keep", None) for j in c["jobs"]]; json.dump(c, open(sys.argv[1], "w"))\' {CONFIG}',
        )
        later = [database_backup() for _ in range(3)]
    finally:
        on("db1", f"mv {CONFIG}.pin-test {CONFIG}")
    kept = snapshots()
    for job, good_id in before.items():
        assert good_id in kept, f"{job}: the pinned good snapshot {good_id[:8]} was forgotten"
        assert snapshot_of(later[0], job) not in kept, f"{job}: keep-last 1 did not apply to the others"
        assert job_entry(later[-1], job).get("mass_loss"), f"{job}: the flag went while the pin stays"

    # Only a person releases a pin, after being told what it releases; an unknown id is refused.
    refused = on("db1", f"{BACKUP} release 0123abcd", check=False)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "no pinned snapshot 0123abcd" in refused.stderr
    for job, good_id in before.items():
        released = on("db1", f"{BACKUP} release {good_id[:8]}", check=False)
        assert released.returncode == 0, released.stdout + released.stderr
        assert released.stdout.startswith("releasing snapshot ") and f" of {job} " in released.stdout
        assert PIN not in (now_known_as(good_id).get("tags") or [])
        status = json.loads(on("db1", "cat /var/lib/portalops/backup/run.json").stdout)
        assert "mass_loss" not in job_entry(status, job)
    metrics = on("db1", f"cat {metrics_dir}/portalops_backup_run.prom").stdout
    assert 'portalops_backup_mass_loss{host="db1",job="db-physical"} 0' in metrics, metrics


COPY = "restic --no-cache -r /srv/restic-copy/web1 --password-file /etc/portalops/restic-copy.pass"


def copied() -> list[dict[str, Any]]:
    """web1's second copy on backup1."""
    listed: list[dict[str, Any]] = json.loads(on("backup1", f"{COPY} snapshots --json").stdout or "[]")
    return listed


def test_the_second_copy_is_not_pruned_while_a_client_dates_a_snapshot_in_the_future(converged: LabConfig) -> None:
    # Whoever holds web1's credentials saves a snapshot dated 2099 in its job's group: retention counts
    # from the newest snapshot, so a forget would then treat every real snapshot as old.
    forged = client_restic(
        "web1", 'backup --json --host web1 --tag portalops,job:etc --time "2099-01-01 00:00:00" /etc/hostname'
    )
    made = json.loads(forged.stdout.strip().splitlines()[-1])["snapshot_id"]
    try:
        before = {s["id"] for s in copied()}
        result = on("backup1", f"{BACKUP} copy", check=False)
        assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
        errors = json.loads(on("backup1", "cat /var/lib/portalops/backup/copy.json").stdout)["errors"]
        assert any("web1: 1 snapshots dated in the future" in e and "2099-01-01" in e for e in errors), errors
        after = {s["id"] for s in copied()}
        assert before <= after, "the second copy was pruned with a snapshot dated in the future in it"
    finally:
        client_restic("web1", f"forget {made}", check=False)
        future = [s["id"] for s in copied() if s["time"].startswith("2099")]
        if future:
            on("backup1", f"{COPY} forget {' '.join(future)}")
        again = on("backup1", f"{BACKUP} copy", check=False)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
