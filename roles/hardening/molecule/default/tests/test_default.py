"""What hardening leaves on a host, observed from inside it."""

import pytest
from testinfra.host import Host

# Talk to the container directly: one podman exec per check, not one Ansible run.
testinfra_hosts = ["podman://hardening-default"]


def sshd_settings(host: Host) -> list[str]:
    settings: list[str] = host.check_output("/usr/sbin/sshd -T").splitlines()
    return settings


@pytest.mark.parametrize(
    "setting",
    [
        "permitrootlogin no",
        "passwordauthentication no",
        "kbdinteractiveauthentication no",
        "authenticationmethods publickey",
        "maxauthtries 3",
        "maxsessions 2",
        "x11forwarding no",
        "allowtcpforwarding no",
        "banner /etc/issue.net",
    ],
)
def test_sshd_runs_with_the_hardened_setting(host: Host, setting: str) -> None:
    assert setting in sshd_settings(host)


def test_sshd_offers_no_ecdsa_nist_or_sha1_algorithms(host: Host) -> None:
    # Only what sshd offers and accepts; sshd -T also prints unused defaults (e.g. CASignatureAlgorithms).
    offered = ("hostkey ", "kexalgorithms ", "ciphers ", "macs ", "hostkeyalgorithms ", "pubkeyacceptedalgorithms ")
    settings = " ".join(line for line in sshd_settings(host) if line.startswith(offered))
    for weak in ("ecdsa", "nistp", "-sha1", "hmac-sha1", "umac-64", "cbc"):
        assert weak not in settings
    assert host.service("ssh").is_running


def test_the_firewall_drops_inbound_and_opens_ssh_to_the_admin_network_only(host: Host) -> None:
    ruleset = host.check_output("nft list table inet portalops")
    assert "policy drop" in ruleset
    assert "ip saddr 127.0.0.1 tcp dport 22 accept" in ruleset
    assert "tcp dport 443 accept" in ruleset


def test_fail2ban_watches_sshd(host: Host) -> None:
    assert host.service("fail2ban").is_running
    assert "sshd" in host.check_output("fail2ban-client status")


def test_pam_locks_out_and_checks_password_quality(host: Host) -> None:
    auth = host.file("/etc/pam.d/common-auth").content_string
    assert "pam_faillock.so" in auth
    assert "pam_pwquality.so" in host.file("/etc/pam.d/common-password").content_string
    assert "pam_tmpdir.so" in host.file("/etc/pam.d/common-session").content_string


def test_login_defs_ages_passwords_and_sets_the_umask(host: Host) -> None:
    defs = host.file("/etc/login.defs").content_string
    for line in ("PASS_MAX_DAYS\t90", "PASS_MIN_DAYS\t1", "UMASK\t027"):
        assert line in defs


def test_idle_shells_time_out(host: Host) -> None:
    assert "readonly TMOUT" in host.file("/etc/profile.d/portalops-tmout.sh").content_string


@pytest.mark.parametrize(
    "path",
    [
        "/etc/sysctl.d/90-portalops-hardening.conf",
        "/etc/audit/rules.d/90-portalops.rules",
        "/etc/modprobe.d/portalops-blacklist.conf",
        "/etc/security/limits.d/90-portalops-coredump.conf",
    ],
)
def test_kernel_controls_are_rendered_for_a_real_host(host: Host, path: str) -> None:
    assert host.file(path).exists


def test_usb_storage_cannot_be_loaded(host: Host) -> None:
    assert "install usb-storage /bin/true" in host.file("/etc/modprobe.d/portalops-blacklist.conf").content_string


def test_unattended_upgrades_take_only_debian_security(host: Host) -> None:
    conf = host.file("/etc/apt/apt.conf.d/52portalops-unattended-upgrades").content_string
    assert "label=Debian-Security" in conf


@pytest.mark.parametrize("package", ["telnet", "rsh-client", "nis"])
def test_insecure_packages_are_absent(host: Host, package: str) -> None:
    assert not host.package(package).is_installed


def test_the_banner_warns_in_both_languages(host: Host) -> None:
    for path in ("/etc/issue", "/etc/issue.net"):
        banner = host.file(path).content_string
        assert "授权" in banner
        assert "authorized" in banner


def test_sensitive_files_and_homes_are_restricted(host: Host) -> None:
    assert host.file("/etc/shadow").mode == 0o640
    crontab = host.file("/etc/crontab")
    if crontab.exists:
        assert crontab.mode == 0o600
    for home in host.check_output("find /home -mindepth 1 -maxdepth 1 -type d").split():
        assert host.file(home).mode & 0o027 == 0


def test_package_audit_tools_list_but_never_restart(host: Host) -> None:
    for package in ("apt-show-versions", "apt-listchanges", "debsums", "needrestart"):
        assert host.package(package).is_installed
    assert "$nrconf{restart} = 'l';" in host.file("/etc/needrestart/conf.d/portalops.conf").content_string


def test_sysstat_collects(host: Host) -> None:
    assert 'ENABLED="true"' in host.file("/etc/default/sysstat").content_string
    assert host.service("sysstat-collect.timer").is_enabled


def test_aide_hashes_with_sha2_and_builds_its_first_database(host: Host) -> None:
    assert "Checksums = sha256+sha512" in host.file("/etc/aide/aide.conf").content_string
    assert host.service("portalops-aide-init").is_enabled
    # Built in the background: wait for it (seconds in a container).
    assert host.run("timeout 300 sh -c 'until test -e /var/lib/aide/aide.db; do sleep 2; done'").rc == 0
    assert host.file("/var/lib/aide/aide.db").user == "_aide"


def test_rkhunter_has_a_baseline_and_runs_daily(host: Host) -> None:
    assert host.file("/var/lib/rkhunter/db/rkhunter.dat").exists
    assert 'CRON_DAILY_RUN="true"' in host.file("/etc/default/rkhunter").content_string


def test_compilers_are_for_root_only(host: Host) -> None:
    real = host.check_output("readlink -f /usr/bin/as")
    assembler = host.file(real)
    assert assembler.user == "root"
    assert assembler.mode == 0o750
