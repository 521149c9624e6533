"""What patching leaves on a host, observed from inside it: apt reads the report settings the
inventory gave, an unattended run accepts them, and needrestart answers the patch run's question
(what must restart) without restarting anything."""

import pytest
from testinfra.host import Host

# Talk to the container directly: one podman exec per check, not one Ansible run.
testinfra_hosts = ["podman://patching"]


@pytest.mark.parametrize("package", ["unattended-upgrades", "needrestart", "apt-listchanges"])
def test_the_patch_runs_tools_are_installed(host: Host, package: str) -> None:
    assert host.package(package).is_installed


def test_apt_reads_the_report_settings_of_the_inventory(host: Host) -> None:
    # apt's own view of its configuration (every apt.conf.d file merged), not the file's text.
    merged = host.check_output("apt-config dump --format '%f=%v%n' Unattended-Upgrade")
    assert "Unattended-Upgrade::Mail=root@localhost" in merged.splitlines(), merged
    assert "Unattended-Upgrade::MailReport=on-change" in merged.splitlines(), merged


def test_an_unattended_run_accepts_the_configuration(host: Host) -> None:
    # A dry run reads the whole configuration and the package lists and changes nothing.
    before = host.check_output("dpkg-query -W --showformat='${Package} ${Version}\\n'")
    run = host.run("unattended-upgrade --dry-run --debug")
    assert run.rc == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "Allowed origins are" in run.stdout + run.stderr
    assert host.check_output("dpkg-query -W --showformat='${Package} ${Version}\\n'") == before


def test_needrestart_names_a_service_running_replaced_code_and_leaves_it_running(host: Host) -> None:
    """The patch run asks needrestart in batch mode which services run outdated code, then restarts
    exactly those: a service whose program was replaced on disk is named, and is not restarted."""
    host.check_output(
        "cp /bin/sleep /usr/local/bin/molecule-outdated"
        " && systemd-run --unit molecule-outdated /usr/local/bin/molecule-outdated 600"
        " && sleep 1 && rm /usr/local/bin/molecule-outdated && cp /bin/sleep /usr/local/bin/molecule-outdated"
    )
    try:
        before = host.check_output("systemctl show --property=MainPID --value molecule-outdated")
        batch = host.check_output("needrestart -b").splitlines()
        assert batch[0].startswith("NEEDRESTART-VER:"), batch
        assert "NEEDRESTART-SVC: molecule-outdated.service" in batch, batch
        assert host.check_output("systemctl show --property=MainPID --value molecule-outdated") == before
    finally:
        host.run("systemctl stop molecule-outdated; rm -f /usr/local/bin/molecule-outdated")
