"""What logrotate leaves on a host, observed from inside it: policies, forced rotations, journald."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import testinfra
from testinfra.host import Host

# Talk to the container directly: one podman exec per check, not one Ansible run.
testinfra_hosts = ["podman://logrotate-default"]

RETENTION = 180
POLICIES = ["nginx", "php-fpm", "wordpress", "mariadb", "backup", "fail2ban", "sudo", "syslog"]
# The first log path of each policy, as logrotate -d names its pattern.
FIRST_PATHS = [
    "/var/log/nginx/*.log",
    "/var/log/php*-fpm.log",
    "/var/log/php*-fpm-wordpress-*.log",
    "/var/log/mysql/*.log",
    "/var/log/portalops/*.log",
    "/var/log/fail2ban.log",
    "/var/log/sudo.log",
    "/var/log/syslog",
]
DIVERTED = ["nginx", "php8.2-fpm", "mariadb", "fail2ban", "rsyslog"]
ACCESS_LOG = "/var/log/nginx/access.log"
SLOW_LOG = "/var/log/mysql/mariadb-slow.log"
ERROR_LOG = "/var/log/mysql/error.log"
# A rotated file: the log, then logrotate_dateformat (-%Y%m%d-%H%M%S).
STAMP = r"-\d{8}-\d{6}"
ROLES = Path(__file__).resolve().parents[4]


def rotated(host: Host, log: str) -> list[str]:
    """Rotated files of a log, oldest first (the date stamp sorts by age)."""
    out = host.check_output(f"ls -1 {log}-* 2>/dev/null || true")
    return sorted(line for line in out.splitlines() if re.fullmatch(re.escape(log) + STAMP + r"(\.gz)?", line))


def write_lines(host: Host) -> None:
    """A line in each watched log: a request to nginx, a query to MariaDB (every query is slow in
    prepare.yml) and MariaDB's status dump into its error log (mariadb-admin debug)."""
    host.check_output("python3 -c \"import urllib.request; urllib.request.urlopen('http://127.0.0.1/').read()\"")
    host.check_output("mariadb -N -B -e 'SELECT 1'")
    host.check_output("mariadb-admin debug")


def attributes(host: Host, log: str) -> tuple[str, str, int]:
    """Owner, group and mode of a file, as they are now."""
    owner = host.file(log)
    return owner.user, owner.group, owner.mode


def grows(host: Host, log: str, timeout: float = 10.0) -> bool:
    """Whether the log gets bytes after write_lines (the service reopens it asynchronously)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        write_lines(host)
        if host.file(log).size > 0:
            return True
        time.sleep(0.5)
    return False


@pytest.fixture(scope="module")
def rotations() -> dict[str, dict[str, Any]]:
    """Two forced rotations a second apart, with lines written before and after each."""
    host = testinfra.get_host(testinfra_hosts[0])
    seen: dict[str, dict[str, Any]] = {}
    write_lines(host)
    host.check_output("logrotate -f /etc/logrotate.conf")
    seen["first"] = {log: rotated(host, log) for log in (ACCESS_LOG, SLOW_LOG, ERROR_LOG)}
    # host.file() reads lazily: take owner and mode now, before anything else touches the files.
    seen["new_files"] = {log: attributes(host, log) for log in (ACCESS_LOG, SLOW_LOG, ERROR_LOG)}
    seen["grew"] = {log: grows(host, log) for log in (ACCESS_LOG, SLOW_LOG, ERROR_LOG)}
    time.sleep(1.1)  # the next stamp differs by at least a second
    write_lines(host)
    host.check_output("logrotate -f /etc/logrotate.conf")
    seen["second"] = {log: rotated(host, log) for log in (ACCESS_LOG, SLOW_LOG, ERROR_LOG)}
    seen["grew_again"] = {log: grows(host, log) for log in (ACCESS_LOG, SLOW_LOG, ERROR_LOG)}
    return seen


def test_logrotate_runs_daily(host: Host) -> None:
    assert host.package("logrotate").is_installed
    assert host.service("logrotate.timer").is_enabled
    assert host.service("logrotate.timer").is_running


@pytest.mark.parametrize("name", POLICIES)
def test_policy_rotates_daily_and_keeps_six_months(host: Host, name: str) -> None:
    policy = host.file(f"/etc/logrotate.d/portalops-{name}")
    assert policy.user == "root"
    assert policy.mode == 0o644
    lines = {line.strip() for line in policy.content_string.splitlines()}
    wanted = {"daily", f"rotate {RETENTION}", "dateext", "dateformat -%Y%m%d-%H%M%S", "compress", "delaycompress"}
    assert wanted | {"missingok", "notifempty"} <= lines


def test_owners_and_reopen_per_service(host: Host) -> None:
    nginx = host.file("/etc/logrotate.d/portalops-nginx").content_string
    assert "create 0640 www-data adm" in nginx
    assert 'kill -USR1 "$(cat /run/nginx.pid)"' in nginx
    mariadb = host.file("/etc/logrotate.d/portalops-mariadb").content_string
    assert "su mysql adm" in mariadb
    assert "create 0640 mysql adm" in mariadb
    assert "mariadb-admin --local flush-error-log flush-slow-log" in mariadb
    # Per-site pool users under one glob: the new file keeps the rotated one's owner and mode.
    assert re.search(r"^\s*create\s*$", host.file("/etc/logrotate.d/portalops-wordpress").content_string, re.M)


@pytest.mark.parametrize("name", DIVERTED)
def test_packaged_rotation_is_diverted(host: Host, name: str) -> None:
    assert f"local diversion of /etc/logrotate.d/{name} to /etc/logrotate.d/{name}.disabled" in host.check_output(
        "dpkg-divert --list"
    )
    assert not host.file(f"/etc/logrotate.d/{name}").exists


def test_installed_packages_config_is_set_aside(host: Host) -> None:
    # nginx and MariaDB are installed: their files are kept, where logrotate skips them.
    assert host.file("/etc/logrotate.d/nginx.disabled").exists
    assert host.file("/etc/logrotate.d/mariadb.disabled").exists


def test_the_whole_configuration_passes_a_dry_run(host: Host) -> None:
    dry_run = host.run("logrotate -d /etc/logrotate.conf")
    assert dry_run.rc == 0, dry_run.stderr
    assert not re.findall(r"^error:.*$", dry_run.stderr, re.M)


def test_every_policy_keeps_the_retention_in_rotations(host: Host) -> None:
    dry_run = host.run("logrotate -d /etc/logrotate.conf").stderr
    patterns = re.findall(r"rotating pattern: (.*?)\s+after 1 days \((\d+) rotations\)", dry_run, re.S)
    counts = {path: count for path in FIRST_PATHS for pattern, count in patterns if f'"{path}"' in pattern}
    assert counts == dict.fromkeys(FIRST_PATHS, str(RETENTION)), patterns


def test_forced_rotation_renames_nginx_and_mariadb_logs(rotations: dict[str, dict[str, Any]]) -> None:
    for log, files in rotations["first"].items():
        assert len(files) == 1, (log, files)
        # delaycompress: the newest rotated file stays plain, in case a late line reaches it.
        assert not files[0].endswith(".gz"), files


def test_new_logs_are_created_with_the_services_owner_and_mode(rotations: dict[str, dict[str, Any]]) -> None:
    assert rotations["new_files"] == {
        ACCESS_LOG: ("www-data", "adm", 0o640),
        SLOW_LOG: ("mysql", "adm", 0o640),
        ERROR_LOG: ("mysql", "adm", 0o640),
    }


def test_services_keep_writing_to_the_new_files(rotations: dict[str, dict[str, Any]]) -> None:
    """The new, empty file gets the next lines: the service reopened it (no line went to the old one only)."""
    assert rotations["grew"] == dict.fromkeys((ACCESS_LOG, SLOW_LOG, ERROR_LOG), True)
    assert rotations["grew_again"] == dict.fromkeys((ACCESS_LOG, SLOW_LOG, ERROR_LOG), True)


def test_old_files_are_kept_and_compressed(host: Host, rotations: dict[str, dict[str, Any]]) -> None:
    for log, files in rotations["second"].items():
        first = rotations["first"][log][0]
        assert len(files) == 2, (log, files)
        assert files[0] == first + ".gz", files
        assert not files[1].endswith(".gz"), files
        # The compressed file holds what the service wrote before the first rotation.
        assert host.run(f"gzip -t {files[0]}").rc == 0
        assert host.check_output(f"gzip -dc {files[0]} | wc -l") != "0"


def test_only_the_retention_is_kept(host: Host, rotations: dict[str, dict[str, Any]]) -> None:
    """With more rotated files than the retention, a rotation deletes the oldest down to it."""
    log = "/var/log/nginx/error.log"
    stamp = '$(date -u -d "2020-01-01 + $day days" +%Y%m%d)-000000'
    host.check_output(f'for day in $(seq 0 {RETENTION + 4}); do touch "{log}-{stamp}.gz"; done')
    host.check_output(f"echo molecule-line >> {log}")
    host.check_output("logrotate -f /etc/logrotate.d/portalops-nginx")
    files = rotated(host, log)
    assert len(files) == RETENTION, len(files)
    # The seeded files of 2020-01-01 .. 2020-01-06 (at least) are gone, the newest is today's plain file.
    assert files[0] >= f"{log}-20200107-000000.gz", files[0]
    assert not files[-1].endswith(".gz")


def test_the_journal_keeps_the_retention_and_wins_over_base(host: Host) -> None:
    dropin = host.file("/etc/systemd/journald.conf.d/zz-portalops-retention.conf").content_string
    assert "Storage=persistent" in dropin
    assert f"MaxRetentionSec={RETENTION}day" in dropin
    assert "SystemMaxUse=2G" in dropin
    # Files are read in name order and the last value wins: ours sorts after base's portalops.conf.
    merged = host.check_output("systemd-analyze cat-config systemd/journald.conf")
    assert re.findall(r"^MaxRetentionSec=(.*)$", merged, re.M)[-1] == f"{RETENTION}day"
    assert re.findall(r"^SystemMaxUse=(.*)$", merged, re.M)[-1] == "2G"
    assert host.run("ls /var/log/journal/*/system.journal").rc == 0


def test_the_daily_service_runs_in_its_sandbox(host: Host) -> None:
    started = host.run("systemctl start logrotate.service")
    assert started.rc == 0, started.stderr
    assert host.check_output("systemctl show -P Result logrotate.service") == "success"


EVIDENCE = "/var/lib/prometheus/node-exporter/portalops_logs.prom"


def test_the_evidence_says_how_far_back_the_logs_and_the_journal_go(host: Host) -> None:
    """Written at converge, again by its service (sandboxed), and daily by its timer."""
    assert host.service("portalops-log-evidence.timer").is_enabled
    started = host.run("systemctl start portalops-log-evidence.service")
    assert started.rc == 0, started.stderr
    text = host.file(EVIDENCE).content_string
    samples = dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    assert samples["portalops_log_retention_days"] == str(RETENTION)
    first = host.check_output("journalctl -o json --output-fields=__REALTIME_TIMESTAMP -q | head -n1")
    journal = float(samples['portalops_log_oldest_timestamp_seconds{log="journal"}'])
    stamp = re.search(r'"__REALTIME_TIMESTAMP"\s*:\s*"(\d+)"', first)
    assert stamp, first
    expected = int(stamp.group(1)) / 1e6
    assert abs(journal - expected) < 0.001, (journal, expected)  # written to the millisecond
    # The oldest kept nginx file (the forced rotations above left dated ones): its mtime (stat: whole seconds).
    oldest = min(int(x) for x in host.check_output("stat -c %Y /var/log/nginx/*.log*").split())
    assert int(float(samples['portalops_log_oldest_timestamp_seconds{log="nginx"}'])) == oldest


PLAY = """\
- name: Validate the logrotate role's input
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Check the input
      ansible.builtin.include_role:
        name: logrotate
        tasks_from: validate
"""


def validate(tmp_path: Path, retention: int, acknowledged: str) -> subprocess.CompletedProcess[str]:
    """The role's validate entry point with the given retention, on the controller (no host needed)."""
    playbook = tmp_path / "validate.yml"
    playbook.write_text(PLAY)
    env = dict(os.environ, ANSIBLE_ROLES_PATH=str(ROLES), ANSIBLE_CACHE_PLUGIN="memory")
    env["ANSIBLE_CALLBACK_RESULT_FORMAT"] = "json"
    return subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook),
         "-e", f"logrotate_retention_days={retention}",
         "-e", f"logrotate_retention_acknowledged_below_minimum={acknowledged}"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_a_retention_under_six_months_stops_the_play_naming_the_variable(tmp_path: Path) -> None:
    refused = validate(tmp_path, 90, "false")
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0
    assert "logrotate_retention_days is 90" in output
    assert "logrotate_retention_acknowledged_below_minimum: true" in output


def test_a_shorter_retention_passes_only_when_acknowledged(tmp_path: Path) -> None:
    acknowledged = validate(tmp_path, 90, "true")
    assert acknowledged.returncode == 0, acknowledged.stdout
    default = validate(tmp_path, RETENTION, "false")
    assert default.returncode == 0, default.stdout
