"""What base leaves on a host, observed from inside it."""

import pytest
from testinfra.host import Host

# Talk to the container directly: one podman exec per check, not one Ansible run.
testinfra_hosts = ["podman://base-default"]


@pytest.mark.parametrize("package", ["ca-certificates", "locales", "python3-apt", "sudo", "systemd-timesyncd"])
def test_essential_packages_are_installed(host: Host, package: str) -> None:
    assert host.package(package).is_installed


def test_both_locales_are_generated_and_english_is_the_default(host: Host) -> None:
    available = host.check_output("locale -a").lower()
    assert "en_us.utf8" in available
    assert "zh_cn.utf8" in available
    assert "LANG=en_US.UTF-8" in host.file("/etc/default/locale").content_string


def test_the_journal_is_kept_on_disk(host: Host) -> None:
    journal = host.file("/var/log/journal")
    assert journal.is_directory
    assert journal.group == "systemd-journal"
    assert "Storage=persistent" in host.file("/etc/systemd/journald.conf.d/portalops.conf").content_string


def test_timesyncd_is_configured_with_the_ntp_servers(host: Host) -> None:
    conf = host.file("/etc/systemd/timesyncd.conf.d/portalops.conf").content_string
    assert "0.debian.pool.ntp.org" in conf
    assert host.service("systemd-timesyncd").is_enabled


def test_the_administrator_has_the_admin_group_and_exactly_its_key(host: Host) -> None:
    user = host.user("opsadmin")
    assert user.exists
    assert "portaladm" in user.groups
    keys = host.file("/home/opsadmin/.ssh/authorized_keys")
    assert keys.user == "opsadmin"
    assert keys.mode == 0o600
    assert keys.content_string.count("ssh-ed25519 ") == 1


def test_sudo_logs_every_command_and_the_rules_are_valid(host: Host) -> None:
    logging = host.file("/etc/sudoers.d/10-portalops-logging")
    assert logging.mode == 0o440
    assert 'logfile="/var/log/sudo.log"' in logging.content_string
    assert host.run("visudo -c").rc == 0
    assert "%portaladm" in host.file("/etc/sudoers.d/20-portalops-admins").content_string


def test_the_runbooks_host_checks_are_installed_and_answer(host: Host) -> None:
    tool = host.file("/usr/local/sbin/portalops-host")
    assert tool.mode == 0o755
    assert host.check_output("/usr/local/sbin/portalops-host backup status-dir") == "/var/lib/portalops/backup"
    # No backup has run on this host: the backup check says broken, with its reason.
    result = host.run("/usr/local/sbin/portalops-host check backup-age --hours 26")
    assert result.rc == 1
    assert "no backup status" in result.stderr
