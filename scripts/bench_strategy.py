#!/usr/bin/env python3
"""`make bench-strategy`: the controller's CPU per task under ansible.cfg's strategy plugin against
Mitogen's own, measured in one run.

Ours is plugins/strategy/mitogen_linear.py: Mitogen, CPU pinning off, the installed collections
listed once per run in the controller, and each worker's inherited objects frozen out of its garbage
collector. The baseline is the same Mitogen strategy with pinning off only (what the plugin was before):
its workers list and parse every installed collection for each task whose module comes from a
collection, and collect what they inherited. Both run the same playbooks on three inventory hosts that are this
machine (Mitogen's local connection), so no lab is needed and all CPU is the controller's: N tasks of a
builtin module (ansible.builtin.stat), then N of a collection's (community.general.read_csv on a small
file). Each playbook runs ROUNDS times per side, the sides alternated; the median counts.
Usage: scripts/bench_strategy.py [--tasks N] [--rounds R]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from portalops.lab import cpu

REPO = Path(__file__).resolve().parent.parent
# The plugin as it was before the collection list: Mitogen's strategy with pinning off (see plugins/strategy).
BASELINE_PLUGINS = REPO / "scripts" / "bench_strategy_baseline"
HOSTS = 3  # inventory hosts, all this machine
MODULES = {
    "builtin module (ansible.builtin.stat)": "ansible.builtin.stat:\n        path: {csv}",
    "collection module (community.general.read_csv)": "community.general.read_csv:\n        path: {csv}",
}


def write_files(directory: Path, tasks: int) -> dict[str, Path]:
    """The inventory, the CSV file the tasks read and one playbook per module."""
    (directory / "hosts.yml").write_text(
        "all:\n  hosts:\n"
        + "".join(f"    local{n}:\n" for n in range(1, HOSTS + 1))
        + f"  vars:\n    ansible_connection: local\n    ansible_python_interpreter: {sys.executable}\n"
    )
    csv = directory / "sites.csv"
    csv.write_text("name,url\nportal,https://www.example.gov.cn/\n")
    playbooks = {}
    for n, (what, task) in enumerate(MODULES.items()):
        body = "".join(f"    - {task.format(csv=csv)}\n" for _ in range(tasks))
        playbooks[what] = directory / f"play{n}.yml"
        playbooks[what].write_text(f"- hosts: all\n  gather_facts: false\n  tasks:\n{body}")
    return playbooks


def controller_seconds(playbook: Path, directory: Path, plugins: Path) -> float:
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_STRATEGY_PLUGINS": str(plugins)}
    before = cpu.children_cpu_seconds()
    argv = ["ansible-playbook", "-i", str(directory / "hosts.yml"), str(playbook)]
    result = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"bench-strategy: {' '.join(argv)} failed:\n{(result.stdout + result.stderr)[-3000:]}")
    return cpu.children_cpu_seconds() - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=40, help=f"tasks per playbook (default 40, on {HOSTS} hosts)")
    parser.add_argument("--rounds", type=int, default=3, help="runs per playbook and side (default 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-strategy-") as tmp:
        directory = Path(tmp)
        playbooks = write_files(directory, args.tasks)
        sides = {"baseline": BASELINE_PLUGINS, "ours": REPO / "plugins" / "strategy"}
        rows = []
        for what, playbook in playbooks.items():
            seconds: dict[str, list[float]] = {side: [] for side in sides}
            for round_ in range(1, args.rounds + 1):
                for side, plugins in sides.items():
                    print(f"bench-strategy: {what}, {side}, round {round_} of {args.rounds} ...", flush=True)
                    seconds[side].append(controller_seconds(playbook, directory, plugins))
            rows.append((what, statistics.median(seconds["baseline"]), statistics.median(seconds["ours"])))
    host_tasks = HOSTS * args.tasks
    print(
        f"\ncontroller CPU seconds, {args.tasks} tasks on {HOSTS} hosts ({host_tasks} host-tasks), "
        f"median of {args.rounds}"
    )
    print("| tasks of a | Mitogen's own (s) | ours (s) | ours / Mitogen's | saved per host-task (ms) |")
    print("|---|---:|---:|---:|---:|")
    for what, baseline, ours in rows:
        saved_ms = (baseline - ours) / host_tasks * 1000
        print(f"| {what} | {baseline:.1f} | {ours:.1f} | {ours / baseline:.2f} | {saved_ms:.0f} |")


if __name__ == "__main__":
    main()
