"""Log rotation on the converged lab: forced rotations lose nothing, keep six months, compress.

Runs after the other test_site* modules (file order) on the lab site.yml built (logs.yml
is part of it).
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
import uuid

import pytest

from portalops.lab.config import LabConfig
from tests.integration.helpers import changed_tasks, failed_tasks, on, playbook

HOSTS = ("web1", "cms1", "db1", "backup1", "drill1")
LOG_HOST, LOG_HOST_ADDRESS, CENTRAL = "mon1", "10.89.60.16", "/var/log/central"
LOGS = "playbooks/logs.yml"
ACK = "logrotate_retention_acknowledged_below_minimum"


def request_portal(marker: str) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    connection = http.client.HTTPSConnection("127.0.0.1", 8443, context=context, timeout=30)
    connection.request("GET", f"/?probe={marker}", headers={"Host": "portal.lab.test"})
    connection.getresponse().read()
    connection.close()


def slow_alias(marker: str) -> str:
    """A column alias unique to this run, so the slow log's lines are this run's."""
    return "slow_" + marker.replace("-", "_")


def force_rotation(host: str) -> None:
    result = on(host, "logrotate -f /etc/logrotate.conf", check=False)
    assert result.returncode == 0, f"{host}: logrotate -f failed: {result.stderr}"


@pytest.fixture(scope="module")
def markers(converged: LabConfig) -> dict[str, str]:
    """Traffic before the first forced rotation, more after it, and a second rotation."""
    before, after = f"before-{uuid.uuid4().hex[:8]}", f"after-{uuid.uuid4().hex[:8]}"
    request_portal(before)
    on("db1", f"mariadb -e 'SELECT SLEEP(1.2) AS {slow_alias(before)}'")
    for host in HOSTS:
        force_rotation(host)
    request_portal(after)
    on("db1", f"mariadb -e 'SELECT SLEEP(1.2) AS {slow_alias(after)}'")
    return {"before": before, "after": after}


def test_every_policy_keeps_six_months(converged: LabConfig) -> None:
    for host in HOSTS:
        rotations = on(host, "grep -hE '^[[:space:]]*rotate ' /etc/logrotate.d/portalops-*").stdout.split()
        assert rotations and set(rotations) == {"rotate", "180"}, f"{host}: {rotations}"
        assert on(host, "logrotate -d /etc/logrotate.conf", check=False).returncode == 0


def test_nginx_rotates_and_keeps_writing_to_the_new_file(markers: dict[str, str]) -> None:
    rotated = on("web1", "cat $(ls -t /var/log/nginx/access.log-* | grep -v '.gz$' | head -1)").stdout
    current = on("web1", "cat /var/log/nginx/access.log").stdout
    assert markers["before"] in rotated and markers["after"] not in rotated
    assert markers["after"] in current


def test_mariadb_rotates_its_slow_log_and_keeps_writing(markers: dict[str, str]) -> None:
    before, after = slow_alias(markers["before"]), slow_alias(markers["after"])
    rotated = on("db1", "cat /var/log/mysql/mariadb-slow.log-* | zcat -f").stdout
    current = on("db1", "cat /var/log/mysql/mariadb-slow.log").stdout
    assert before in rotated and before not in current
    assert after in current
    owner = on("db1", "stat -c '%U:%G %a' /var/log/mysql/mariadb-slow.log").stdout.strip()
    assert owner == "mysql:adm 640"


def test_a_second_rotation_compresses_and_keeps_the_older_files(markers: dict[str, str]) -> None:
    force_rotation("web1")
    files = on("web1", "ls /var/log/nginx/").stdout.split()
    compressed = [f for f in files if f.startswith("access.log-") and f.endswith(".gz")]
    assert compressed, files
    # The first rotation's file (holding the request made before it) is now compressed and kept.
    old = on("web1", "zcat /var/log/nginx/access.log-*.gz").stdout
    assert markers["before"] in old


def retentions(host: str) -> set[str]:
    return set(on(host, "grep -hE '^[[:space:]]*rotate ' /etc/logrotate.d/portalops-*").stdout.split()) - {"rotate"}


def test_a_retention_under_six_months_is_refused_before_any_change(converged: LabConfig) -> None:
    code, stats, output = playbook(LOGS, "-e", "logrotate_retention_days=30", log_name="logs-short-retention")
    kept = {host: retentions(host) for host in HOSTS}
    if code == 0 or any(stats.get(h, {}).get("changed") for h in HOSTS) or any(r != {"180"} for r in kept.values()):
        # The refusal failed somewhere and hosts may keep 30 days now: put the six months back first.
        restored, _, restore_output = playbook(LOGS, log_name="logs-restore")
        assert restored == 0, failed_tasks(restore_output)
    assert code != 0, "a 30-day retention without the acknowledgement must stop the play"
    failed = failed_tasks(output)
    for host in HOSTS:
        assert any(
            line.startswith(f"{host}: ")
            and "validate | Check the retention is at least six months" in line
            and "logrotate_retention_days is 30" in line
            and ACK in line
            for line in failed
        ), failed
    assert {h: stats[h]["changed"] for h in HOSTS} == dict.fromkeys(HOSTS, 0), changed_tasks(output)
    assert kept == {host: {"180"} for host in HOSTS}


def test_an_acknowledged_short_retention_would_pass(converged: LabConfig) -> None:
    """With the acknowledgement the same run goes through (--check, one host: nothing changes)."""
    code, stats, output = playbook(
        LOGS,
        "--check",
        "--limit",
        "drill1",
        "-e",
        "logrotate_retention_days=30",
        "-e",
        f"{ACK}=true",
        log_name="logs-short-retention-acknowledged",
    )
    assert code == 0, failed_tasks(output)
    assert stats["drill1"]["changed"] > 0, "--check should show the policies it would rewrite to 30 days"
    assert retentions("drill1") == {"180"}


def central(token: str) -> str:
    """The central log host's lines holding token, each prefixed with its file ('' when none)."""
    return on(LOG_HOST, f"grep -r -- {token} {CENTRAL} || true").stdout


def test_every_hosts_log_is_kept_on_the_log_host_and_outlives_its_deletion_on_the_host(converged: LabConfig) -> None:
    """A line logged on each host is on mon1 within seconds, in that host's own file; then root on db1
    deletes db1's local log files (as an intruder covering tracks would): mon1's copy is unchanged."""
    tokens = {host: f"central-{host}-{uuid.uuid4().hex[:12]}" for host in HOSTS}
    for host, token in tokens.items():
        on(host, f"logger -t portalops-test {token}")
    deadline = time.monotonic() + 60
    while (missing := [h for h, t in tokens.items() if not central(t)]) and time.monotonic() < deadline:
        time.sleep(2)
    assert not missing, f"not on {LOG_HOST} after 60 s: {missing}"
    for host, token in tokens.items():
        assert central(token).startswith(f"{CENTRAL}/{host}/syslog.log:"), (host, central(token))
    lines = int(on(LOG_HOST, f"wc -l < {CENTRAL}/db1/syslog.log").stdout)
    on("db1", "rm -f /var/log/syslog /var/log/user.log && systemctl kill -s HUP rsyslog")
    assert on("db1", f"grep -r -- {tokens['db1']} /var/log || true").stdout == ""
    assert tokens["db1"] in central(tokens["db1"])
    assert int(on(LOG_HOST, f"wc -l < {CENTRAL}/db1/syslog.log").stdout) >= lines


def test_the_log_host_takes_lines_only_from_certified_senders_behind_its_firewall(converged: LabConfig) -> None:
    """The controller is no sender: mon1's firewall does not let it reach the port. web1 reaches it, but a
    TLS client without a certificate of the log CA (the CA trusted, so the handshake itself is fine) gets
    nothing written: rsyslog refuses the peer before it reads a line."""
    with pytest.raises(OSError):
        socket.create_connection((LOG_HOST_ADDRESS, 6514), timeout=3).close()
    token = f"intruder-{uuid.uuid4().hex[:12]}"
    line = f"<13>1 2026-12-04T00:00:00Z web1 intruder - - - {token}"
    on(
        "web1",
        f"printf '%s %s' {len(line)} '{line}' | timeout 10 openssl s_client -quiet "
        f"-connect {LOG_HOST_ADDRESS}:6514 -CAfile /etc/portalops-logs/ca.crt",
        check=False,
    )
    time.sleep(3)
    assert central(token) == ""
    refused = on(LOG_HOST, "journalctl -u rsyslog --since -3min --no-pager").stdout
    assert "did not provide a certificate" in refused, refused[-2000:]
