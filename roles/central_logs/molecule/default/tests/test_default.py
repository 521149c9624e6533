"""What central_logs does between two hosts, observed from inside them: a line logged on the sender is
on the log host; a peer without a certificate of the log CA gets nothing written; a line logged while
the log host is down arrives when it is back; the sender's own deletion leaves the central copy."""

import time
import uuid

import testinfra

# Talk to the containers directly: one podman exec per check, not one Ansible run.
SERVER = testinfra.get_host("podman://logs-server")
CLIENT = testinfra.get_host("podman://logs-client")
CENTRAL = "/var/log/central"


def central_grep(token: str) -> str:
    """The central copy's lines holding token ('' when none)."""
    lines: str = SERVER.run(f"grep -rh -- {token} {CENTRAL}").stdout
    return lines


def arrives(token: str, timeout: float = 40.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := central_grep(token):
            return found
        time.sleep(1)
    return ""


def test_a_line_logged_on_the_sender_is_kept_on_the_log_host_under_its_name() -> None:
    token = f"central-{uuid.uuid4().hex}"
    CLIENT.check_output(f"logger -t molecule-central {token}")
    line = arrives(token)
    assert "molecule-central" in line, SERVER.run(f"find {CENTRAL} -type f").stdout
    paths = SERVER.check_output(f"grep -rl -- {token} {CENTRAL}").split()
    assert paths == [f"{CENTRAL}/logs-client/syslog.log"], paths
    assert SERVER.file(f"{CENTRAL}/logs-client").mode == 0o750
    assert SERVER.file(paths[0]).mode == 0o640


def test_the_senders_own_deletion_leaves_the_central_copy() -> None:
    token = f"deleted-{uuid.uuid4().hex}"
    CLIENT.check_output(f"logger -t molecule-central {token}")
    assert arrives(token)
    CLIENT.check_output("rm -f /var/log/syslog /var/log/user.log && systemctl restart rsyslog")
    assert central_grep(token)


def test_a_peer_without_a_certificate_of_the_log_ca_gets_nothing_written() -> None:
    """The same TLS port, spoken to with the log CA trusted but no client certificate; and plain TCP."""
    token = f"intruder-{uuid.uuid4().hex}"
    address = SERVER.check_output("hostname -I").split()
    line = f"<13>1 2026-12-04T00:00:00Z logs-client intruder - - - {token}"
    CLIENT.run(
        f"printf '%s %s' {len(line)} '{line}' | timeout 10 openssl s_client -quiet -connect {address[0]}:6514 "
        "-CAfile /etc/portalops-logs/ca.crt"
    )
    CLIENT.run(f"printf '%s\\n' '{line}' | timeout 5 bash -c 'cat > /dev/tcp/{address[0]}/6514'")
    time.sleep(3)
    assert central_grep(token) == ""
    refused = SERVER.check_output("journalctl -u rsyslog --since -2min --no-pager")
    assert "not permitted to talk" in refused or "did not provide a certificate" in refused, refused[-2000:]


def test_a_line_logged_while_the_log_host_is_down_arrives_when_it_is_back() -> None:
    token = f"queued-{uuid.uuid4().hex}"
    SERVER.check_output("systemctl stop rsyslog")
    try:
        CLIENT.check_output(f"logger -t molecule-central {token}")
        time.sleep(2)
    finally:
        SERVER.check_output("systemctl start rsyslog")
    assert arrives(token, timeout=60), CLIENT.run("journalctl -u rsyslog --since -3min --no-pager").stdout[-2000:]


def test_the_server_forwards_nothing_and_the_sender_receives_nothing() -> None:
    assert not SERVER.file("/etc/rsyslog.d/90-portalops-forward.conf").exists
    assert not CLIENT.file("/etc/rsyslog.d/10-portalops-central.conf").exists
    assert CLIENT.file("/etc/portalops-logs/host.key").mode == 0o600
    assert not CLIENT.file("/etc/portalops-logs/ca/ca.key").exists  # the CA's key stays on the log host
