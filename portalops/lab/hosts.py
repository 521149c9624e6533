"""One lab host's life: boot, health, bootstrap for SSH."""

from __future__ import annotations

import time
from dataclasses import dataclass

from portalops.errors import CommandFailed
from portalops.lab.config import LabConfig, LabHost
from portalops.lab.podman import Podman

GOOD_STATES = ("running", "degraded")
# States systemd does not leave by itself: rescue/emergency mode, shutting down.
# ("offline" is not one: systemctl reports it while PID 1 is still coming up.)
DEAD_STATES = ("maintenance", "stopping")

# Like cloud-init on a real server: the deploy user Ansible connects as, with
# the lab's key and passwordless sudo. Idempotent, so a reused host can be
# repaired by running it again.
BOOTSTRAP = r"""
set -eu
id "$LAB_USER" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash --groups sudo "$LAB_USER"
home=$(getent passwd "$LAB_USER" | cut -d: -f6)
install -d -m 0700 -o "$LAB_USER" -g "$LAB_USER" "$home/.ssh"
printf '%s\n' "$LAB_PUBKEY" > "$home/.ssh/authorized_keys"
chown "$LAB_USER:$LAB_USER" "$home/.ssh/authorized_keys"
chmod 0600 "$home/.ssh/authorized_keys"
printf '%s ALL=(ALL) NOPASSWD: ALL\n' "$LAB_USER" > /etc/sudoers.d/90-lab-deploy.tmp
chmod 0440 /etc/sudoers.d/90-lab-deploy.tmp
visudo -cqf /etc/sudoers.d/90-lab-deploy.tmp
mv /etc/sudoers.d/90-lab-deploy.tmp /etc/sudoers.d/90-lab-deploy
"""


@dataclass(frozen=True)
class Health:
    """systemd's view of a host: its overall state and the units that failed."""

    state: str
    failed: tuple[str, ...] = ()

    @property
    def good(self) -> bool:
        return self.state in GOOD_STATES

    def describe(self) -> str:
        if self.failed:
            return f"{self.state} (failed: {', '.join(self.failed)})"
        return self.state


def parse_failed_units(text: str) -> tuple[str, ...]:
    """Unit names from ``systemctl --failed --no-legend --plain``."""
    return tuple(line.split()[0] for line in text.splitlines() if line.strip())


def health(podman: Podman, container: str) -> Health:
    result = podman.exec(container, "systemctl", "is-system-running", check=False, timeout=20)
    state = result.stdout.strip() or "unreachable"
    if result.returncode != 0 and not result.stdout.strip():
        return Health("unreachable")
    failed: tuple[str, ...] = ()
    if state == "degraded":
        listing = podman.exec(container, "systemctl", "--failed", "--no-legend", "--plain", check=False)
        failed = parse_failed_units(listing.stdout)
    return Health(state, failed)


def _meaningful(text: str) -> bool:
    return bool(text.strip()) and "No entries" not in text and "No journal files" not in text


def last_journal(podman: Podman, container: str, lines: int = 20) -> str:
    """The host's last journal lines, or its console output, or systemd's status: the first that says something."""
    found = podman.exec(container, "journalctl", "--no-pager", "-n", str(lines), check=False, timeout=20)
    if found.returncode == 0 and _meaningful(found.stdout):
        return found.stdout.strip()
    logs = podman.run("logs", "--tail", str(lines), container, check=False)
    if _meaningful(logs.stdout + logs.stderr):
        return (logs.stdout + logs.stderr).strip()
    status = podman.exec(container, "systemctl", "--no-pager", "status", check=False, timeout=20)
    text = "\n".join((status.stdout + status.stderr).strip().splitlines()[:lines])
    return text or "(the host wrote nothing: no journal, no console output)"


def wait_for_boot(podman: Podman, config: LabConfig, host: LabHost, timeout: float = 120) -> Health:
    """Wait until systemd says the host is up; fail naming it with its last journal lines."""
    name = config.container(host)
    deadline = time.monotonic() + timeout
    seen = Health("starting")
    while time.monotonic() < deadline:
        container = podman.container(name)
        if container is None or container.state not in ("running", "created", "configured"):
            state = container.state if container else "gone"
            journal = last_journal(podman, name)
            raise CommandFailed(
                f"lab host {host.name} failed to boot (container {state}); last lines:\n{journal}", detail=journal
            )
        seen = health(podman, name)
        if seen.good:
            return seen
        if seen.state in DEAD_STATES:
            journal = last_journal(podman, name)
            raise CommandFailed(
                f"lab host {host.name} failed to boot (systemd: {seen.state}); last lines:\n{journal}", detail=journal
            )
        time.sleep(0.3)
    journal = last_journal(podman, name)
    raise CommandFailed(
        f"lab host {host.name} did not finish booting within {timeout:.0f} s "
        f"(systemd: {seen.describe()}); last lines:\n{journal}",
        detail=journal,
    )


def bootstrap(podman: Podman, config: LabConfig, host: LabHost, pubkey: str) -> None:
    podman.exec(
        config.container(host),
        "/bin/sh",
        "-c",
        BOOTSTRAP,
        env={"LAB_USER": config.deploy_user, "LAB_PUBKEY": pubkey},
    )


def host_key(podman: Podman, config: LabConfig, host: LabHost) -> str:
    """The host's ed25519 public key, read through podman (a channel we trust)."""
    name = config.container(host)
    deadline = time.monotonic() + 30
    while True:
        found = podman.exec(name, "cat", "/etc/ssh/ssh_host_ed25519_key.pub", check=False)
        if found.returncode == 0:
            keytype, key = found.stdout.split()[:2]
            return f"{host.name},{host.address} {keytype} {key}"
        if time.monotonic() > deadline:
            raise CommandFailed(f"lab host {host.name} has no SSH host key: {found.stderr.strip()}")
        time.sleep(0.3)
