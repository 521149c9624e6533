"""site.yml on the lab: converge, idempotence, check mode, and a portal that works and is hardened."""

from __future__ import annotations

import base64
import http.client
import re
import socket
import ssl
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from portalops.inventory import REPO_ROOT
from portalops.lab.config import LabConfig
from tests.integration.helpers import ENV, ansible, changed_tasks, failed_tasks, playbook, portalops

SITE = "playbooks/site.yml"
PORTAL = yaml.safe_load((REPO_ROOT / "inventory/lab/group_vars/all/portal.yml").read_text())
SITES: list[dict[str, Any]] = PORTAL["portal_sites"]


def test_second_run_changes_nothing(converged: LabConfig) -> None:
    code, stats, output = playbook(SITE, log_name="site-rerun")
    assert code == 0, "\n".join(failed_tasks(output))
    assert {h: s["changed"] for h, s in stats.items()} == dict.fromkeys(stats, 0), changed_tasks(output)


def test_check_diff_on_the_converged_lab_reports_nothing(converged: LabConfig) -> None:
    code, stats, output = playbook(SITE, "--check", "--diff", log_name="site-check")
    assert code == 0, "\n".join(failed_tasks(output))
    assert {h: (s["changed"], s["failures"]) for h, s in stats.items()} == dict.fromkeys(stats, (0, 0)), changed_tasks(
        output
    )


# -- the portal, from the controller, over TLS ------------------------------


def tls_context(lab: LabConfig, version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(lab.state_dir / "tls" / "web1-ca.crt"))
    if version is not None:
        context.minimum_version = context.maximum_version = version
    return context


def get(
    lab: LabConfig, host: str, path: str = "/", method: str = "GET", agent: str = "portalops-test"
) -> tuple[int, dict[str, str], str]:
    """GET (or ``method``) https://<host><path> through web1's published port 127.0.0.1:8443, checking the
    certificate, as the client ``agent``."""
    with socket.create_connection(("127.0.0.1", 8443), timeout=15) as raw:
        conn = http.client.HTTPSConnection(host, 8443, context=tls_context(lab), timeout=30)
        conn.sock = tls_context(lab).wrap_socket(raw, server_hostname=host)
        conn.request(method, path, headers={"Host": host, "User-Agent": agent})
        response = conn.getresponse()
        body = response.read().decode("utf-8", "replace")
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body


def published_titles(site: dict[str, Any], limit: int = 5) -> list[str]:
    """The newest published post titles, straight from the database on db1."""
    query = (
        f"SELECT post_title FROM {site['db_name']}.wp_posts WHERE post_status='publish' AND post_type='post' "
        f"ORDER BY post_date DESC, ID DESC LIMIT {limit}"
    )
    result = ansible("db1", "ansible.builtin.command", f'mariadb --batch --skip-column-names -e "{query}"')["db1"]
    titles = [t for t in result["stdout"].splitlines() if t]
    assert titles, f"no published posts in {site['db_name']}: {result}"
    return titles


def test_portal_home_page_over_tls_with_security_headers(converged: LabConfig) -> None:
    site = SITES[0]
    status, headers, body = get(converged, site["domains"][0])
    assert status == 200
    assert headers["strict-transport-security"].startswith("max-age=")
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"].upper() == "SAMEORIGIN"
    assert "default-src" in headers["content-security-policy"]
    assert headers["referrer-policy"]
    assert headers["server"] == "nginx"  # server_tokens off: no version
    for title in published_titles(site):
        assert title in body or title.replace("&", "&amp;") in body, title


def test_the_lab_url_serves_the_default_site(converged: LabConfig) -> None:
    status, _, body = get(converged, "127.0.0.1")
    assert status == 200
    assert published_titles(SITES[0])[0] in body


def test_a_seeded_article_with_its_image(converged: LabConfig) -> None:
    site = SITES[0]
    query = (
        f"SELECT p.ID, p.post_title FROM {site['db_name']}.wp_posts p WHERE p.post_status='publish' "
        "AND p.post_type='post' ORDER BY p.ID LIMIT 1"
    )
    row = ansible("db1", "ansible.builtin.command", f'mariadb --batch --skip-column-names -e "{query}"')["db1"][
        "stdout"
    ]
    post_id, title = row.split("\t", 1)
    status, _, body = get(converged, site["domains"][0], f"/?p={post_id}")
    assert status == 200
    assert title in body
    images = re.findall(r'src="https?://[^"/]+(/wp-content/uploads/[^"]+\.(?:png|jpe?g))"', body)
    assert images, "the seeded article shows no uploaded image"
    status, headers, _ = get(converged, site["domains"][0], images[0])
    assert status == 200 and headers["content-type"].startswith("image/")


@pytest.mark.parametrize("domain", [d for s in SITES for d in s["domains"]])
def test_every_site_answers_on_its_own_domain(converged: LabConfig, domain: str) -> None:
    site = next(s for s in SITES if domain in s["domains"])
    status, _, body = get(converged, domain)
    assert status == 200
    assert published_titles(site)[0] in body
    others = [s for s in SITES if s is not site]
    for other in others:
        assert published_titles(other)[0] not in body or published_titles(other)[0] in published_titles(site)


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls_12_and_13_are_offered(converged: LabConfig, version: ssl.TLSVersion) -> None:
    context = tls_context(converged, version)
    with (
        socket.create_connection(("127.0.0.1", 8443), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=SITES[0]["domains"][0]) as tls,
    ):
        assert tls.version() == version.name.replace("_", ".")


@pytest.mark.parametrize("flag", ["-tls1", "-tls1_1"])
def test_tls_10_and_11_are_refused(converged: LabConfig, flag: str) -> None:
    # SECLEVEL=0 lets the client try the old protocol; only the server can say no.
    result = subprocess.run(
        [
            "openssl",
            "s_client",
            flag,
            "-cipher",
            "DEFAULT@SECLEVEL=0",
            "-connect",
            "127.0.0.1:8443",
            "-servername",
            SITES[0]["domains"][0],
        ],
        input="",
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert result.returncode != 0
    assert "Cipher is (NONE)" in result.stdout or "alert protocol version" in result.stderr + result.stdout


def test_http_redirects_to_https(converged: LabConfig) -> None:
    web1 = converged.host("web1")
    conn = http.client.HTTPConnection(web1.address, 80, timeout=10)
    conn.request("GET", "/some/page?x=1", headers={"Host": SITES[0]["domains"][0]})
    response = conn.getresponse()
    assert response.status in (301, 308)
    assert response.getheader("Location") == f"https://{SITES[0]['domains'][0]}/some/page?x=1"


# -- network: only what each tier's allow list names --------------------------

CONNECT = "python3 -c 'import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 3)' {host} {port}"


def can_connect(from_host: str, to_address: str, port: int) -> bool:
    result = ansible(
        from_host, "ansible.builtin.command", CONNECT.format(host=to_address, port=port), "-e", "ansible_become=false"
    )[from_host]
    return result.get("rc") == 0


def test_database_port_refused_from_web_open_from_cms(converged: LabConfig) -> None:
    db1 = converged.host("db1").address
    assert not can_connect("web1", db1, 3306)
    assert can_connect("cms1", db1, 3306)


def test_cms_port_open_only_to_the_web_tier(converged: LabConfig) -> None:
    cms1 = converged.host("cms1").address
    assert can_connect("web1", cms1, PORTAL["portal_cms_port"])
    assert not can_connect("db1", cms1, PORTAL["portal_cms_port"])


@pytest.fixture
def listener_on_db1() -> Iterator[int]:
    """A service on a port no allow list names."""
    unit = f"lab-test-port-{uuid.uuid4().hex[:6]}"
    ansible("db1", "ansible.builtin.command", f"systemd-run --unit {unit} python3 -m http.server 9999")
    yield 9999
    ansible("db1", "ansible.builtin.command", f"systemctl stop {unit}")


def test_a_port_not_on_the_allow_list_is_closed(converged: LabConfig, listener_on_db1: int) -> None:
    assert can_connect("db1", "127.0.0.1", listener_on_db1)  # it listens...
    assert not can_connect("cms1", converged.host("db1").address, listener_on_db1)  # ...and is filtered


# -- SSH ------------------------------------------------------------------------


def ssh(lab: LabConfig, user: str, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "ssh",
            "-i",
            str(lab.ssh_key),
            "-o",
            f"UserKnownHostsFile={lab.known_hosts}",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
            *options,
            f"{user}@{lab.host('drill1').address}",
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=ENV,
    )


def test_ssh_offers_public_key_only(converged: LabConfig) -> None:
    result = ssh(
        converged,
        "deploy",
        "-o",
        "PubkeyAuthentication=no",
        "-o",
        "PreferredAuthentications=password,keyboard-interactive",
    )
    assert result.returncode == 255
    assert "Permission denied (publickey)" in result.stderr


def test_root_login_is_refused_even_with_an_authorized_key(converged: LabConfig) -> None:
    pubkey = converged.ssh_key.with_suffix(".pub").read_text().strip()
    install = f"install -d -m 0700 /root/.ssh && echo '{pubkey}' > /root/.ssh/authorized_keys"
    ansible("drill1", "ansible.builtin.shell", install)
    try:
        assert ssh(converged, "deploy").returncode == 0
        result = ssh(converged, "root")
        assert result.returncode == 255
        assert "Permission denied" in result.stderr
    finally:
        ansible("drill1", "ansible.builtin.file", "path=/root/.ssh/authorized_keys state=absent")


def test_effective_sshd_settings_on_every_host(converged: LabConfig) -> None:
    results = ansible("all", "ansible.builtin.command", "sshd -T")
    for host, result in results.items():
        settings = dict(line.split(" ", 1) for line in result["stdout"].splitlines() if " " in line)
        assert settings["permitrootlogin"] == "no", host
        assert settings["passwordauthentication"] == "no", host
        assert settings["kbdinteractiveauthentication"] == "no", host
        assert int(settings["maxauthtries"]) <= 4, host
        assert int(settings["clientaliveinterval"]) > 0, host
        assert settings.get("allowgroups"), host


# -- host controls (等保 2.0 level 3), on every host ---------------------------------

# path -> text it must contain. Kernel-facing controls (sysctl, auditd rules,
# module blacklist) cannot act in a container: their rendered files are checked.
RENDERED = {
    "/etc/security/faillock.conf": "deny =",
    "/etc/pam.d/common-auth": "pam_faillock.so",
    "/etc/security/pwquality.conf.d/portalops.conf": "minlen",
    "/etc/profile.d/portalops-tmout.sh": "readonly TMOUT",
    "/etc/audit/rules.d/90-portalops.rules": "-w /etc/sudoers -p wa -k sudoers",
    "/etc/sysctl.d/90-portalops-hardening.conf": "net.ipv4.tcp_syncookies",
    "/etc/modprobe.d/portalops-blacklist.conf": "blacklist usb-storage",
    "/etc/security/limits.d/90-portalops-coredump.conf": "core",
    "/etc/apt/apt.conf.d/52portalops-unattended-upgrades": "label=Debian-Security",
    "/etc/issue.net": "authorized",
    "/etc/systemd/journald.conf.d/portalops.conf": "Storage=persistent",
}


@pytest.mark.parametrize("path", sorted(RENDERED))
def test_host_control_is_in_place_on_every_host(converged: LabConfig, path: str) -> None:
    results = ansible("all", "ansible.builtin.slurp", f"src={path}")
    for host, result in results.items():
        assert not result.get("failed"), f"{host}: {path}: {result.get('msg')}"
        text = base64.b64decode(result["content"]).decode("utf-8", "replace")
        assert RENDERED[path].lower() in text.lower(), f"{host}: {path} lacks {RENDERED[path]!r}"


def test_insecure_packages_are_absent_and_the_journal_persists(converged: LabConfig) -> None:
    packages = "telnet rsh-client rsh-server nis talk"
    probe = f"dpkg-query -W -f='${{Status}}\\n' {packages} 2>/dev/null | grep -c '^install ok' || true"
    results = ansible("all", "ansible.builtin.shell", probe)
    assert {h: r["stdout"] for h, r in results.items()} == dict.fromkeys(results, "0")
    journal = ansible("all", "ansible.builtin.stat", "path=/var/log/journal")
    assert all(r["stat"]["isdir"] for r in journal.values())


def test_sudo_use_is_logged(converged: LabConfig) -> None:
    marker = f"portalops-test-{uuid.uuid4().hex[:8]}"
    # An administrator's sudo over SSH (Ansible's own become wraps every module in the same command).
    assert portalops("lab", "ssh", "drill1", "--", "sudo", "-n", "/bin/echo", marker).returncode == 0
    logged = ansible("drill1", "ansible.builtin.command", f"grep -c {marker} /var/log/sudo.log")["drill1"]
    assert int(logged["stdout"] or 0) >= 1


# -- bad input: nothing changes ---------------------------------------------------


def file_hash(host: str, path: str) -> str:
    stat = ansible(host, "ansible.builtin.stat", f"path={path} checksum_algorithm=sha256")[host]["stat"]
    checksum: str = stat["checksum"]
    return checksum


def test_a_missing_or_ill_typed_variable_stops_before_any_change(converged: LabConfig) -> None:
    code, stats, output = playbook(SITE, "-e", '{"nginx_portal_sites": "not-a-list"}', log_name="site-badvar")
    assert code != 0
    assert "nginx_portal_sites" in output
    assert all(s["changed"] == 0 for s in stats.values())


def test_a_plaintext_secret_is_refused_before_any_host(converged: LabConfig, tmp_path: Path) -> None:
    inventory = tmp_path / "inventory"
    subprocess.run(["cp", "-r", str(REPO_ROOT / "inventory/lab"), str(inventory)], check=True)
    (inventory / "group_vars/all/oops.yml").write_text("---\nmariadb_root_password: hunter2\n")
    code, stats, output = playbook(SITE, "-i", str(inventory), log_name="site-plaintext")
    assert code != 0
    assert "plaintext secret in inventory" in output and "oops.yml: mariadb_root_password" in output
    assert set(stats) == {"localhost"}


def test_an_invalid_sshd_config_never_replaces_the_working_one(converged: LabConfig) -> None:
    dropin = "/etc/ssh/sshd_config.d/00-portalops-hardening.conf"
    before = file_hash("drill1", dropin)
    code, _, output = playbook(
        SITE,
        "--limit",
        "drill1",
        "--tags",
        "hardening_ssh",
        "-e",
        '{"hardening_ssh_ciphers": ["no-such-cipher@invalid"]}',
        log_name="site-badsshd",
    )
    assert code != 0, "an sshd config that fails sshd -t was accepted"
    assert "Bad SSH2 cipher spec" in output  # sshd -t said why
    assert file_hash("drill1", dropin) == before
    assert ssh(converged, "deploy").returncode == 0


def test_a_firewall_that_would_shut_ansible_out_is_refused_before_it_is_written(converged: LabConfig) -> None:
    """The address the hosts see Ansible connect from (SSH_CLIENT of the connecting account's login) must be in
    hardening_admin_networks, or the nftables ruleset would lock the next run out: refused, nothing written."""
    before = file_hash("web1", "/etc/nftables.conf")
    code, stats, output = playbook(
        SITE,
        "--limit",
        "web1",
        "--tags",
        "hardening_nftables",
        "-e",
        '{"hardening_admin_networks": ["192.0.2.0/24"]}',
        log_name="site-lockout",
    )
    assert code != 0, "a firewall without the connecting address was accepted"
    assert "is in none of hardening_admin_networks" in output and "would lock Ansible out" in output
    assert re.search(r"SSH client \d+\.\d+\.\d+\.\d+ is in none", output), output[-2000:]
    assert stats["web1"]["changed"] == 0
    assert file_hash("web1", "/etc/nftables.conf") == before
    assert ssh(converged, "deploy").returncode == 0


def test_an_invalid_nginx_config_never_replaces_the_working_one(converged: LabConfig) -> None:
    before = file_hash("web1", "/etc/nginx/nginx.conf")
    code, _, output = playbook(
        SITE,
        "--limit",
        "web1",
        "--tags",
        "nginx_portal",
        "-e",
        '{"nginx_portal_client_max_body_size": "64 megabytes"}',
        log_name="site-badnginx",
    )
    assert code != 0, "an nginx config that fails nginx -t was accepted"
    assert "test failed" in output and "client_max_body_size" in output  # nginx -t said why
    assert file_hash("web1", "/etc/nginx/nginx.conf") == before
    assert get(converged, SITES[0]["domains"][0])[0] == 200
