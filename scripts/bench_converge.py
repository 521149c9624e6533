#!/usr/bin/env python3
"""`make bench-converge`: site.yml from bare hosts and from the hosts' image, then the idempotent
re-run with our ansible.cfg against stock Ansible settings, measured in one run.

Ours = ansible.cfg: the Mitogen strategy (one Python per host for the whole run),
pipelining, 10 forks, facts gathered only where a play needs them and cached.
Stock = what a fresh `ansible-playbook` does with only the inventory (and its plugin), roles
and the lab's vault id set: linear strategy, no pipelining, 5 forks, implicit fact
gathering, no fact cache, default SSH multiplexing. The lab is rebuilt first and left
converged. The comparison leaves the wordpress role out on both sides: its become_user steps
(unprivileged site users) need pipelining or the acl package, so stock settings fail there.

The converge from bare hosts (`lab up --bare-image`) runs straight from the Debian mirror
(base_apt_proxy emptied; --no-direct skips it) and through the lab machine's package cache
(apt-cacher-ng from scripts/setup-system), with what the cache served and fetched meanwhile. Then
the hosts' image is baked anew (lab/image/bake.yml: the packages every host gets, installed once,
which the lab and `make test` start from) and the lab converges from it: the bake is paid once per
change of the roles' package lists, the converge at every `make test`.

Each step also says where its CPU time went (portalops.lab.cpu): the controller's processes and the lab
hosts' containers, the cores they kept busy, and its floor on this machine (that CPU time spread over every
core: no scheduling, caching or polling makes the step shorter here; only less work or more cores).
"""

from __future__ import annotations

import argparse
import configparser
import dataclasses
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from portalops.inventory import load_inventory
from portalops.lab import aptcache, cpu
from portalops.lab.config import lab_config
from portalops.lab.image import BAKE_RECORD, hosts_image_tag, image_tag
from portalops.lab.podman import Podman
from portalops.vault import LAB_INVENTORY, ansible_env

REPO = Path(__file__).resolve().parent.parent

ENV = {
    **ansible_env(LAB_INVENTORY),  # the lab's vault id, for both configurations
    "CONTAINERS_CONF": str(REPO / "lab" / "containers.conf"),
    "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
}
# Issue 17's targets, for the summary lines (they are printed, never asserted: speed is measured, not timed).
BARE_TARGET_S = 180
RERUN_TARGET_S = 30
# The roles' own actions and modules (portalops_files, ...) are code, not settings: stock Ansible needs their paths.
STOCK_CFG = f"""[defaults]
inventory = {REPO}/inventory/lab
inventory_plugins = {REPO}/plugins/inventory
action_plugins = {REPO}/plugins/action
library = {REPO}/plugins/modules
roles_path = {REPO}/roles
"""


LAB = lab_config(load_inventory())
HOST_OF = {LAB.container(host): host.name for host in LAB.hosts}  # container name: inventory host
# The bare converge's CPU time in the hosts, per task (plugins/callback/portalops_host_cpu.py)
HOST_CPU_LOG = REPO / ".lab" / "logs" / "converge-host-cpu.json"
TOP_TASKS = 12


def with_host_cpu(env: dict[str, str]) -> dict[str, str]:
    """``env`` with the host-CPU callback enabled beside ansible.cfg's own callbacks."""
    config = configparser.ConfigParser()
    config.read(REPO / "ansible.cfg")
    enabled = [*config.get("defaults", "callbacks_enabled", fallback="").split(","), "portalops_host_cpu"]
    return {
        **env,
        "ANSIBLE_CALLBACKS_ENABLED": ",".join(name.strip() for name in enabled if name.strip()),
        "PORTALOPS_HOST_CPU_LOG": str(HOST_CPU_LOG),
        "PORTALOPS_HOST_CPU_PREFIX": LAB.container_prefix,
    }


def task_table(tasks: list[dict[str, Any]], top: int = TOP_TASKS) -> str:
    """The costliest tasks in the hosts: CPU-s over all hosts, wall seconds, and their share of the run's."""
    spent = [sum(task["hosts_cpu_s"].values()) for task in tasks]
    total = sum(spent) or 1.0
    title = "task (the converge from the hosts' image: its costliest in the hosts)"
    rows = [f"{'hosts CPU-s':>11} {'share':>6} {'wall s':>7}  {title}"]
    for task, used in list(zip(tasks, spent, strict=True))[:top]:
        rows.append(f"{used:>11.1f} {used / total:>6.0%} {task['seconds']:>7.1f}  {task['task']}")
    rows.append(f"{total:>11.1f} {'100%':>6} {'':>7}  all {len(tasks)} tasks")
    return "\n".join(rows)


def step(argv: list[str], env: dict[str, str]) -> cpu.Usage:
    before = cpu.read(Podman(), LAB.label)
    result = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, check=False)
    used = cpu.between(before, cpu.read(Podman(), LAB.label))
    if result.returncode != 0:
        sys.exit(f"bench-converge: {' '.join(argv)} failed:\n{(result.stdout + result.stderr)[-3000:]}")
    return used


def row(what: str, used: cpu.Usage) -> cpu.Usage:
    """Print the table's row for ``used`` as soon as it is measured (a run takes ~20 min); return it."""
    hosts = sum(used.hosts.values())
    print(
        f"{what:<52} {used.wall:>8.1f} {used.controller:>11.1f} {hosts:>9.1f} "
        f"{used.busy:>6.2f} of {used.cores} {used.floor_s:>8.1f}",
        flush=True,
    )
    return used


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
    full: cpu.Usage | None = None
    bare: cpu.Usage | None = None
    direct: cpu.Usage | None = None
    bake: cpu.Usage | None = None
    traffic = aptcache.Traffic()
    print(f"{'measure':<52} {'seconds':>8} {'controller':>11} {'hosts':>9} {'cores busy':>11} {'floor s':>8}")
    print(f"{'':<52} {'(wall)':>8} {'(CPU-s)':>11} {'(CPU-s)':>9} {'':>11} {'(CPU/cores)':>8}", flush=True)
    if not args.rerun_only:
        if not aptcache.answers():
            sys.exit(
                f"bench-converge: the package cache (127.0.0.1:{aptcache.PORT}) does not answer; "
                "run scripts/setup-system"
            )
        if not args.no_direct:
            step([*lab, "down"], ENV)
            step([*lab, "up", "--bare-image"], ENV)
            direct = row(
                "site.yml from bare hosts, no package cache", step([*site, "--extra-vars", "base_apt_proxy="], ENV)
            )
        step([*lab, "down"], ENV)
        step([*lab, "up", "--bare-image"], ENV)
        bare = row("site.yml from bare hosts, package cache", step(site, ENV))
        step([*lab, "down"], ENV)
        subprocess.run(["podman", "rmi", "--force", hosts_image_tag(image_tag())], env=ENV, check=False)
        bake = step([*lab, "image"], ENV)
        # The bake's container is no lab host (and is gone when the step ends): it records its own CPU time.
        baked = json.loads((LAB.state_dir / "logs" / BAKE_RECORD).read_text())
        bake = row(
            "bake the hosts' image (once per change of its lists)",
            dataclasses.replace(bake, hosts={"bake": float(baked["container_cpu_s"] or 0.0)}),
        )
        step([*lab, "up"], ENV)
        offset = aptcache.log_size()
        full = row("site.yml from the hosts' image (ours, package cache)", step(site, with_host_cpu(ENV)))
        traffic = aptcache.traffic_since(offset)
    ours_all = row("idempotent re-run, our ansible.cfg", step(site, ENV))
    # Stock Ansible cannot run the wordpress role's become_user steps (an unprivileged user) without
    # pipelining unless the hosts have the acl package, so both sides of the comparison leave it out.
    comparable = [*site, "--skip-tags", "wordpress"]
    ours = row("re-run without the wordpress role, our ansible.cfg", step(comparable, ENV))
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "ansible.cfg"
        cfg.write_text(STOCK_CFG)
        stock_env = {**ENV, "ANSIBLE_CONFIG": str(cfg), "PORTALOPS_LAB_DIR": str(REPO / ".lab")}
        stock = row("re-run without the wordpress role, stock settings", step(comparable, stock_env))
    print(f"\nre-run speed-up, ours vs stock: {stock.wall / ours.wall:.2f}x (target >= 3x)")
    if full:
        print(f"package cache during the converge from the hosts' image: {traffic.describe()}")
        print(
            f"converge: {full.wall:.0f} s against the target of {BARE_TARGET_S} s; its floor on this machine's "
            f"{full.cores} cores is {full.floor_s:.0f} s ({full.total:.0f} CPU-s: controller {full.controller:.0f}, "
            f"hosts {', '.join(f'{HOST_OF.get(n, n)} {s:.0f}' for n, s in sorted(full.hosts.items()))})"
        )
    if bare:
        print(
            f"converge from bare Debian (lab up --bare-image): {bare.wall:.0f} s; its floor on this machine's "
            f"{bare.cores} cores is {bare.floor_s:.0f} s ({bare.total:.0f} CPU-s, "
            f"hosts {sum(bare.hosts.values()):.0f}): "
            "every host runs the maintainer scripts of the packages the hosts' image holds installed"
        )
    print(
        f"idempotent re-run: {ours_all.wall:.0f} s against the target of {RERUN_TARGET_S} s; its floor on this "
        f"machine's {ours_all.cores} cores is {ours_all.floor_s:.0f} s (controller {ours_all.controller:.0f} CPU-s, "
        f"hosts {sum(ours_all.hosts.values()):.0f} CPU-s)"
    )
    if direct and bare:
        print(f"bare converge speed-up, package cache vs none: {direct.wall / bare.wall:.2f}x")
    if bare and full:
        print(
            f"converge speed-up, the hosts' image vs bare hosts: {bare.wall / full.wall:.2f}x in wall time, "
            f"{bare.total / full.total:.2f}x in CPU time"
        )
    if full:
        print("\n" + task_table(json.loads(HOST_CPU_LOG.read_text())))


if __name__ == "__main__":
    main()
