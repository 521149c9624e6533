#!/usr/bin/env python3
"""`make bench-patch`: playbooks/patch.yml over the five lab hosts against a plain apt upgrade.

On the converged lab, in one run: the rolling, health-gated patch run (`-e patch_mode=full`:
pre-checks on every host, then host by host, tier by tier, each gated) with nothing to upgrade
and with one package to upgrade, and the baseline measured in the same run: a plain, ungated
`ansible all -m ansible.builtin.apt -a 'upgrade=dist update_cache=true'` (all hosts at once, no
pre-check, no gate, no report) over the same hosts and the same upgrade. The one package is the
canary of the patch tests (portalops/lab/aptrepo.py): a local flat apt repository copied into
each host offers 1.0 and 1.1; every host is put back on 1.0 before each timed upgrade to 1.1.

The pre-check wants a backup younger than patch_max_backup_age_hours (26 h) on every backup
client; when one is older than 24 h (or missing), playbooks/backup.yml runs first (not timed).
Afterwards the canary is purged and the repository, its apt source and its package lists are
removed from every host, as the converged lab has them; reports/patch/ keeps the runs' reports.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from portalops.ansible_json import callback_document
from portalops.inventory import load_inventory
from portalops.lab import aptrepo
from portalops.lab.config import lab_config
from portalops.patch_run import BACKUP_STATUS, backup_age_hours
from portalops.vault import LAB_INVENTORY, ansible_env

REPO = Path(__file__).resolve().parent.parent

ENV = {
    **ansible_env(LAB_INVENTORY),  # the lab's vault id
    "CONTAINERS_CONF": str(REPO / "lab" / "containers.conf"),
    "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
    # Both sides print the same way: one JSON document with per-host stats.
    "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
    "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
}
INVENTORY = load_inventory()
LAB = lab_config(INVENTORY)
HOSTS = [h.name for h in LAB.hosts]
REPORTS = REPO / "reports" / "patch"
# Refresh the backups when the oldest is this close to patch.yml's 26 h limit.
BACKUP_FRESH_HOURS = 24.0
PATCH = ["ansible-playbook", "playbooks/patch.yml", "-e", "patch_mode=full"]
PLAIN = ["ansible", "all", "-m", "ansible.builtin.apt", "-a", "upgrade=dist update_cache=true"]


def on(host: str, command: str, check: bool = True) -> str:
    """A shell command on a lab host as root, through podman (set-up and clean-up, not timed)."""
    result = subprocess.run(
        ["podman", "exec", LAB.container(LAB.host(host)), "/bin/sh", "-c", command],
        env=ENV,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if check and result.returncode != 0:
        sys.exit(f"bench-patch: {host}: {command} failed: {(result.stdout + result.stderr)[-1500:]}")
    return result.stdout


def timed(argv: list[str]) -> tuple[float, dict[str, dict[str, int]]]:
    """Seconds an Ansible command takes, and its per-host stats; a failure ends the bench."""
    started = time.monotonic()
    result = subprocess.run(argv, env=ENV, cwd=REPO, capture_output=True, text=True, check=False, timeout=3600)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"bench-patch: {' '.join(argv)} failed:\n{(result.stdout + result.stderr)[-3000:]}")
    stats: dict[str, dict[str, int]] = callback_document(result.stdout).get("stats", {})
    return seconds, stats


def canary_versions() -> dict[str, str]:
    return {h: on(h, f"dpkg-query -W -f '${{Version}}' {aptrepo.PACKAGE}", check=False).strip() for h in HOSTS}


def expect_versions(version: str, after: str) -> None:
    found = canary_versions()
    if set(found.values()) != {version}:
        sys.exit(f"bench-patch: after {after} every host should have {aptrepo.PACKAGE} {version}: {found}")


def oldest_backup_hours(host: str) -> float:
    """Hours since the oldest job of the host last succeeded, as patch.yml's pre-check counts them
    (portalops.patch_run.backup_age_hours on the host's status file); inf when none or unreadable."""
    try:
        status = json.loads(on(host, f"cat {BACKUP_STATUS}", check=False) or "{}")
    except ValueError:
        return math.inf
    age = backup_age_hours(status, time.time()) if isinstance(status, dict) else None
    return math.inf if age is None else age


def fresh_backups() -> None:
    ages = {h: oldest_backup_hours(h) for h in INVENTORY.hosts_in("backup_clients")}
    if max(ages.values(), default=0.0) <= BACKUP_FRESH_HOURS:
        return
    print(f"bench-patch: backups too old for patch.yml's pre-check ({ages}); running playbooks/backup.yml", flush=True)
    timed(["ansible-playbook", "playbooks/backup.yml"])


def offer(local: Path, versions: list[str]) -> None:
    """Every host's local repository offers exactly these canary versions, and apt knows it."""
    aptrepo.publish(local, versions)
    for host in HOSTS:
        on(host, f"rm -rf {aptrepo.REMOTE}")
        subprocess.run(
            ["podman", "cp", str(local), f"{LAB.container(LAB.host(host))}:{aptrepo.REMOTE}"],
            env=ENV,
            check=True,
            capture_output=True,
        )
        on(host, f"echo 'deb [trusted=yes] file:{aptrepo.REMOTE} ./' > {aptrepo.SOURCES}")
        on(host, "apt-get update -q >/dev/null")


def install_canary(version: str) -> None:
    for host in HOSTS:
        on(
            host,
            "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --allow-downgrades "
            f"{aptrepo.PACKAGE}={version} >/dev/null",
        )


def clean_up() -> None:
    for host in HOSTS:
        on(
            host,
            f"apt-get purge -y -q {aptrepo.PACKAGE} >/dev/null 2>&1; rm -rf {aptrepo.SOURCES} {aptrepo.REMOTE}",
            False,
        )
        on(host, "apt-get update -q >/dev/null 2>&1", check=False)


def patch_run(upgrades: int) -> float:
    """patch.yml, timed; its report must pass with ``upgrades`` package upgrades on each of the five hosts."""
    before = set(REPORTS.glob("*.json")) if REPORTS.is_dir() else set()
    seconds, _ = timed(PATCH)
    new = sorted(set(REPORTS.glob("*.json")) - before)
    if not new:
        sys.exit("bench-patch: patch.yml wrote no report")
    report: dict[str, Any] = json.loads(new[-1].read_text())
    counts = {h["host"]: len(h["packages"]) for h in report["hosts"]}
    if not report["ok"] or sorted(counts) != sorted(HOSTS):
        sys.exit(f"bench-patch: patch run {new[-1].name} is not a clean pass over the five hosts: {report}")
    if set(counts.values()) != {upgrades}:
        sys.exit(f"bench-patch: expected {upgrades} upgrade(s) per host, the report says {counts}")
    return seconds


def plain_run(upgrades: int) -> float:
    """The plain apt upgrade, timed; it must change ``upgrades`` (0 or 1) on every host."""
    seconds, stats = timed(PLAIN)
    changed = {h: min(stats.get(h, {}).get("changed", 0), 1) for h in HOSTS}
    if set(changed.values()) != {upgrades}:
        sys.exit(f"bench-patch: the plain upgrade changed {changed}, expected {upgrades} on every host")
    return seconds


def main() -> int:
    rows: list[tuple[str, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "repo"
        try:
            fresh_backups()
            offer(local, ["1.0"])
            install_canary("1.0")
            # Nothing to upgrade: the canary is at the newest version offered.
            plain = plain_run(0)
            gated = patch_run(0)
            rows.append(("nothing to upgrade", gated, plain))
            # One package: 1.0 -> 1.1 on every host, once each way.
            offer(local, ["1.0", "1.1"])
            plain = plain_run(1)
            expect_versions("1.1", "the plain upgrade")
            install_canary("1.0")
            gated = patch_run(1)
            expect_versions("1.1", "patch.yml")
            rows.append((f"one package ({aptrepo.PACKAGE} 1.0 -> 1.1)", gated, plain))
        finally:
            clean_up()
    print(f"\n{'five lab hosts':<40} {'patch.yml s':>11} {'plain apt s':>11} {'ratio':>6}")
    for name, gated, plain in rows:
        print(f"{name:<40} {gated:>11.1f} {plain:>11.1f} {gated / plain:>6.2f}")
    print(
        "\npatch.yml: -e patch_mode=full, pre-checks on every host, then host by host (serial 1) with a health gate"
        " and a report;\nplain apt: `ansible all -m ansible.builtin.apt -a 'upgrade=dist update_cache=true'`,"
        " all hosts at once, no checks.\nratio: patch.yml seconds / plain apt seconds, measured in the same run."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
