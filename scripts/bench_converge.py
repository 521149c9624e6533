#!/usr/bin/env python3
"""`make bench-converge`: site.yml from bare hosts, then the idempotent re-run
with our ansible.cfg against stock Ansible settings, measured in one run.

Ours = ansible.cfg: the Mitogen strategy (one Python per host for the whole run),
pipelining, 10 forks, facts gathered only where a play needs them and cached.
Stock = what a fresh `ansible-playbook` does with only the inventory, roles
and the lab's vault id set: linear strategy, no pipelining, 5 forks, implicit fact
gathering, no fact cache, default SSH multiplexing. The lab is rebuilt bare first and left
converged. The comparison leaves the wordpress role out on both sides: its become_user steps
(unprivileged site users) need pipelining or the acl package, so stock settings fail there.

The bare converge runs twice, each time from a fresh lab: straight from the Debian mirror
(base_apt_proxy emptied) and through the lab machine's package cache (apt-cacher-ng from
scripts/setup-system), with what the cache served and fetched meanwhile: cold on the machine's
first run, warm after.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from portalops.lab import aptcache
from portalops.vault import LAB_INVENTORY, ansible_env

REPO = Path(__file__).resolve().parent.parent

ENV = {
    **ansible_env(LAB_INVENTORY),  # the lab's vault id, for both configurations
    "CONTAINERS_CONF": str(REPO / "lab" / "containers.conf"),
    "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
}
STOCK_CFG = f"""[defaults]
inventory = {REPO}/inventory/lab
roles_path = {REPO}/roles
"""


def step(argv: list[str], env: dict[str, str]) -> float:
    started = time.monotonic()
    result = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"bench-converge: {' '.join(argv)} failed:\n{(result.stdout + result.stderr)[-3000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rerun-only", action="store_true", help="skip the converge from bare hosts: the lab is converged already"
    )
    parser.add_argument(
        "--no-direct",
        action="store_true",
        help="skip the bare converge straight from the mirror (the baseline without the package cache)",
    )
    args = parser.parse_args()
    lab = [sys.executable, "-m", "portalops.cli", "lab"]
    site = ["ansible-playbook", "playbooks/site.yml"]
    full = direct = 0.0
    traffic = aptcache.Traffic()
    if not args.rerun_only:
        if not aptcache.answers():
            sys.exit(
                f"bench-converge: the package cache (127.0.0.1:{aptcache.PORT}) does not answer; "
                "run scripts/setup-system"
            )
        if not args.no_direct:
            step([*lab, "down"], ENV)
            step([*lab, "up"], ENV)
            direct = step([*site, "--extra-vars", "base_apt_proxy="], ENV)
        step([*lab, "down"], ENV)
        step([*lab, "up"], ENV)
        offset = aptcache.log_size()
        full = step(site, ENV)
        traffic = aptcache.traffic_since(offset)
    ours_all = step(site, ENV)
    # Stock Ansible cannot run the wordpress role's become_user steps (an unprivileged user) without
    # pipelining unless the hosts have the acl package, so both sides of the comparison leave it out.
    comparable = [*site, "--skip-tags", "wordpress"]
    ours = step(comparable, ENV)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "ansible.cfg"
        cfg.write_text(STOCK_CFG)
        stock_env = {**ENV, "ANSIBLE_CONFIG": str(cfg), "PORTALOPS_LAB_DIR": str(REPO / ".lab")}
        stock = step(comparable, stock_env)
    print(f"{'measure':<52} {'seconds':>8}")
    if direct:
        print(f"{'site.yml from bare hosts, no package cache':<52} {direct:>8.1f}")
    if full:
        print(f"{'site.yml from bare hosts (ours, package cache)':<52} {full:>8.1f}")
    print(f"{'idempotent re-run, our ansible.cfg':<52} {ours_all:>8.1f}")
    print(f"{'re-run without the wordpress role, our ansible.cfg':<52} {ours:>8.1f}")
    print(f"{'re-run without the wordpress role, stock settings':<52} {stock:>8.1f}")
    print(f"\nre-run speed-up, ours vs stock: {stock / ours:.2f}x (target >= 3x)")
    if full:
        print(f"package cache during the bare converge: {traffic.describe()}")
    if direct and full:
        print(f"bare converge speed-up, package cache vs none: {direct / full:.2f}x")


if __name__ == "__main__":
    main()
