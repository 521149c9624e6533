"""A thin wrapper over the podman CLI, always with the repository's containers.conf.

The machine's global podman configuration is never touched: every call
passes ``CONTAINERS_CONF`` pointing at ``lab/containers.conf``.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from typing import IO, Any

from portalops.errors import EnvironmentProblem
from portalops.inventory import REPO_ROOT
from portalops.proc import require_tools, run

CONTAINERS_CONF = REPO_ROOT / "lab" / "containers.conf"


@dataclass(frozen=True)
class Container:
    """What ``podman ps`` says about one container."""

    name: str
    id: str
    state: str
    labels: dict[str, str]


def parse_ps(text: str) -> list[Container]:
    """Parse ``podman ps --all --format json``."""
    rows: list[dict[str, Any]] = json.loads(text or "[]") or []
    return [
        Container(
            name=(row.get("Names") or [""])[0],
            id=str(row.get("Id", "")),
            state=str(row.get("State", "")).lower(),
            labels=dict(row.get("Labels") or {}),
        )
        for row in rows
    ]


class Podman:
    """Rootful podman with the lab's configuration."""

    def __init__(self) -> None:
        self.env = dict(os.environ)
        self.env["CONTAINERS_CONF"] = str(CONTAINERS_CONF)

    @staticmethod
    def preflight() -> None:
        """Root and the tools a rootful systemd lab needs, or one line saying what to do."""
        if os.geteuid() != 0:
            raise EnvironmentProblem(
                "the lab needs root (rootful podman with systemd containers); run it as root, e.g. `sudo make lab-up`"
            )
        require_tools(["podman", "runc", "iptables"], "run `make setup` to install podman, runc and iptables")

    def run(
        self, *args: str, check: bool = True, timeout: float = 300, what: str = ""
    ) -> subprocess.CompletedProcess[str]:
        return run(["podman", *args], env=self.env, check=check, timeout=timeout, what=what or f"podman {args[0]}")

    def image_exists(self, tag: str) -> bool:
        return self.run("image", "exists", tag, check=False).returncode == 0

    def import_image(self, stream: IO[bytes] | None, tag: str) -> None:
        result = subprocess.run(
            ["podman", "import", "--change", 'CMD ["/sbin/init"]', "-", tag],
            stdin=stream,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            self.remove_image(tag)
            raise EnvironmentProblem(f"podman import failed: {result.stderr.strip()[-300:]}")

    def tag_image(self, tag: str, alias: str) -> None:
        self.run("tag", tag, alias)

    def remove_image(self, tag: str) -> None:
        self.run("rmi", "--force", tag, check=False)

    def containers(self, label: str) -> list[Container]:
        out = self.run("ps", "--all", "--filter", f"label={label}", "--format", "json").stdout
        return parse_ps(out)

    def container(self, name: str) -> Container | None:
        out = self.run("ps", "--all", "--filter", f"name=^{name}$", "--format", "json").stdout
        found = [c for c in parse_ps(out) if c.name == name]
        return found[0] if found else None

    def network_inspect(self, name: str) -> dict[str, Any] | None:
        result = self.run("network", "inspect", name, check=False)
        if result.returncode != 0:
            return None
        data: list[dict[str, Any]] = json.loads(result.stdout)
        return data[0] if data else None

    def exec(
        self, name: str, *argv: str, env: dict[str, str] | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        env_args = [arg for key, value in (env or {}).items() for arg in ("--env", f"{key}={value}")]
        return self.run("exec", *env_args, name, *argv, check=check, timeout=timeout, what=f"in {name}: {argv[0]}")
