#!/usr/bin/env python3
"""`make bench-lab`: how fast the lab builds and comes up, measured in one run.

Prints seconds, the issue's targets, and ratios against a baseline measured
in the same run: five bare `podman run` systemd containers waited on until
systemd reports running (what any lab must at least pay). The lab is left up.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "CONTAINERS_CONF": os.path.join(REPO, "lab", "containers.conf")}
IMAGE = "localhost/portalops-lab:bookworm"


def sh(*argv: str) -> str:
    result = subprocess.run(argv, env=ENV, capture_output=True, text=True, check=False, cwd=REPO)
    if result.returncode != 0:
        sys.exit(f"bench-lab: {' '.join(argv)} failed: {result.stderr.strip()[-500:]}")
    return result.stdout


def portalops(*args: str) -> None:
    sh(sys.executable, "-m", "portalops.cli", *args)


def timed(fn: Callable[[], None]) -> float:
    start = time.monotonic()
    fn()
    return time.monotonic() - start


def baseline() -> None:
    names = [f"bench-bare-{i}" for i in range(5)]
    for name in names:
        sh("podman", "run", "-d", "--name", name, "--systemd", "always", IMAGE, "/sbin/init")
    try:
        for name in names:
            while True:
                state = subprocess.run(
                    ["podman", "exec", name, "systemctl", "is-system-running"],
                    env=ENV,
                    capture_output=True,
                    text=True,
                    check=False,
                ).stdout.strip()
                if state in ("running", "degraded"):
                    break
                time.sleep(0.2)
    finally:
        sh("podman", "rm", "--force", "--time", "2", *names)


def main() -> None:
    portalops("lab", "up")  # make sure the image and the key exist
    rows = []
    build = timed(lambda: portalops("lab", "image", "--rebuild", "--tag", "localhost/portalops-lab:bench"))
    sh("podman", "rmi", "localhost/portalops-lab:bench")
    rows.append(("image build (debootstrap cache warm)", build, 180.0))
    portalops("lab", "down")
    cold = timed(lambda: portalops("lab", "up"))
    rows.append(("cold lab up (image cached)", cold, 60.0))
    warm = timed(lambda: portalops("lab", "up"))
    rows.append(("warm lab up (lab running)", warm, 10.0))
    base = timed(baseline)
    print(f"\nbaseline: 5 bare podman systemd containers booted in {base:.1f} s\n")
    print(f"{'measure':<40} {'seconds':>8} {'target':>8} {'vs target':>10} {'vs baseline':>12}")
    for name, seconds, target in rows:
        print(f"{name:<40} {seconds:>8.1f} {target:>8.0f} {seconds / target:>9.2f}x {seconds / base:>11.2f}x")


if __name__ == "__main__":
    main()
