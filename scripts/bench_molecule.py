#!/usr/bin/env python3
"""One role's whole `molecule test` through Mitogen against Ansible's stock linear strategy.

The scenarios converge with `strategy: mitogen_linear`: one Python per instance for
the whole run, instead of a `podman exec` for every step of every task (the podman
connection cannot pipeline). The baseline is the same scenario with that one line
taken out (a copy under molecule/bench-stock, removed afterwards), measured in the
same run on the same machine, one after the other. Both read the warm package cache.
Usage: scripts/bench_molecule.py [ROLE ...]   (default: base)
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STRATEGY = "  strategy: mitogen_linear\n"
STOCK = "bench-stock"


def molecule_test(role: Path, scenario: str) -> float:
    started = time.monotonic()
    result = subprocess.run(["molecule", "test", "-s", scenario], cwd=role, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"bench-molecule: {role.name}/{scenario} failed:\n{(result.stdout + result.stderr)[-3000:]}")
    return time.monotonic() - started


def stock_copy(role: Path) -> Path:
    """The default scenario without its strategy line: Ansible's linear strategy, the podman connection."""
    scenario = role / "molecule" / "default"
    if not any(STRATEGY in p.read_text() for p in scenario.glob("*.yml")):
        sys.exit(f"bench-molecule: {role.name}'s scenario does not converge through Mitogen; nothing to compare")
    copy = role / "molecule" / STOCK
    shutil.copytree(scenario, copy)
    for playbook in copy.glob("*.yml"):
        playbook.write_text(playbook.read_text().replace(STRATEGY, ""))
    return copy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roles", nargs="*", default=["base"])
    args = parser.parse_args()
    rows: list[tuple[str, float, float]] = []
    for name in args.roles:
        role = REPO / "roles" / name
        copy = stock_copy(role)
        try:
            print(f"bench-molecule: {name}: molecule test, stock linear strategy ...", flush=True)
            stock = molecule_test(role, STOCK)
        finally:
            shutil.rmtree(copy)
        print(f"bench-molecule: {name}: molecule test, through Mitogen ...", flush=True)
        ours = molecule_test(role, "default")
        rows.append((name, stock, ours))
    print("\n| role | stock linear (s) | Mitogen (s) | ratio |\n|---|---:|---:|---:|")
    for name, stock, ours in rows:
        print(f"| {name} | {stock:.0f} | {ours:.0f} | {ours / stock:.2f} |")


if __name__ == "__main__":
    main()
