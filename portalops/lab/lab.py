"""``portalops lab up | down | status | ssh``: the lab as a whole."""

from __future__ import annotations

import configparser
import hashlib
import os
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from portalops.errors import CommandFailed, EnvironmentProblem
from portalops.inventory import REPO_ROOT
from portalops.lab import hosts
from portalops.lab.config import LabConfig, LabHost, container_args, spec_hash_of
from portalops.lab.image import bake_hosts_image, build_image
from portalops.lab.podman import Podman
from portalops.proc import require_tools, run

Progress = Callable[[str], None]
T = TypeVar("T")


@dataclass(frozen=True)
class HostReport:
    """One line of ``lab status``."""

    host: str
    address: str
    container: str
    systemd: str

    @property
    def good(self) -> bool:
        return self.systemd.split()[0] in hosts.GOOD_STATES


SNAPSHOT_ATTEMPTS = 5
SNAPSHOT_RETRY_S = 1.0


def parallel(items: Sequence[LabHost], work: Callable[[LabHost], T]) -> list[T]:
    """Run ``work`` for every host at once; raise one error naming every host that failed."""
    with ThreadPoolExecutor(max_workers=max(1, len(items))) as pool:
        futures = [(item, pool.submit(work, item)) for item in items]
    results: list[T] = []
    errors: list[str] = []
    details: list[str] = []
    for item, future in futures:
        exc = future.exception()
        if exc is None:
            results.append(future.result())
        else:
            errors.append(f"{item.name}: {getattr(exc, 'message', exc)}")
            details.append(getattr(exc, "detail", ""))
    if errors:
        raise CommandFailed("; ".join(errors), detail="\n".join(d for d in details if d))
    return results


class Lab:
    """The lab described by a :class:`LabConfig`, driven through podman."""

    def __init__(self, config: LabConfig, progress: Progress, podman: Podman | None = None) -> None:
        self.config = config
        self.progress = progress
        self.podman = podman or Podman()

    # -- up -----------------------------------------------------------------

    def up(self, rebuild_image: bool = False, from_snapshot: bool = False, bare_image: bool = False) -> None:
        """Bring every host up, reusing healthy ones and replacing the rest.

        Hosts start from the hosts' image (the bare one with the packages every host gets, ``image.py``),
        or with ``bare_image`` from the bare one, as a freshly installed server would.
        ``from_snapshot``: a host that is created starts from its snapshot (``snapshot``) instead,
        with the same definition, so a later plain ``up`` reuses it (``lab clone``).
        """
        started = time.monotonic()
        self.podman.preflight()
        require_tools(["ssh", "ssh-keygen"], "install openssh-client")
        bare = build_image(self.podman, self.config.state_dir, self.progress, force=rebuild_image)
        image = (
            bare
            if bare_image
            else bake_hosts_image(self.podman, self.config.state_dir, self.progress, bare, force=rebuild_image)
        )
        if from_snapshot:
            tags = [self.snapshot_tag(host) for host in self.config.hosts]
            if missing := [tag for tag in tags if not self.podman.image_exists(tag)]:
                raise EnvironmentProblem(
                    f"no snapshot of the lab: {', '.join(missing)} missing; run `portalops lab snapshot` first"
                )
        pubkey = self._ensure_key()
        self._remove_leftovers()
        self._ensure_network()
        actions = parallel(
            self.config.hosts,
            lambda host: self._ensure_host(host, image, pubkey, self.snapshot_tag(host) if from_snapshot else ""),
        )
        self.config.known_hosts.write_text(
            "".join(
                line + "\n"
                for line in parallel(self.config.hosts, lambda h: hosts.host_key(self.podman, self.config, h))
            )
        )
        parallel(self.config.hosts, self._check_ssh)
        for host, action in zip(self.config.hosts, actions, strict=True):
            self.progress(f"{host.name:<10} {host.address:<15} {action}")
        self.progress(
            f"lab {self.config.name}: {len(self.config.hosts)} hosts up in {time.monotonic() - started:.1f} s"
        )

    def _ensure_key(self) -> str:
        key = self.config.ssh_key
        key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not key.exists():
            run(
                [
                    "ssh-keygen",
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    f"portalops-lab-{self.config.name}",
                    "-f",
                    str(key),
                ],
                what="create the lab SSH key",
            )
        return key.with_suffix(".pub").read_text().strip()

    def _remove_leftovers(self) -> None:
        """Containers of this lab whose host is no longer in the inventory."""
        wanted = {self.config.container(h) for h in self.config.hosts}
        for container in self.podman.containers(self.config.label):
            if container.name not in wanted:
                self.progress(f"removing leftover container {container.name}")
                self.podman.run("rm", "--force", "--time", "3", container.name)

    def _ensure_network(self) -> None:
        net = self.podman.network_inspect(self.config.network)
        if net is not None:
            labels = net.get("labels") or {}
            subnets = [s.get("subnet") for s in net.get("subnets") or []]
            if labels.get("portalops.lab") != self.config.name:
                raise EnvironmentProblem(
                    f"podman network {self.config.network} exists and does not belong to lab "
                    f"{self.config.name}; remove it (podman network rm {self.config.network}) or rename lab_network"
                )
            if subnets == [self.config.subnet]:
                return
            self.progress(f"network {self.config.network}: subnet {subnets} -> {self.config.subnet}, recreating")
            for container in self.podman.containers(self.config.label):
                self.podman.run("rm", "--force", "--time", "3", container.name)
            self.podman.run("network", "rm", "--force", self.config.network)
        self.podman.run(
            "network",
            "create",
            "--subnet",
            self.config.subnet,
            "--label",
            self.config.label,
            self.config.network,
            what=f"create network {self.config.network} ({self.config.subnet})",
        )

    def _ensure_host(self, host: LabHost, image: str, pubkey: str, run_image: str = "") -> str:
        started = time.monotonic()
        name = self.config.container(host)
        args = container_args(self.config, host, image, pubkey, run_image)
        existing = self.podman.container(name)
        action = "created"
        if existing is not None:
            if existing.labels.get("portalops.lab") != self.config.name:
                raise EnvironmentProblem(
                    f"container {name} exists and is not part of lab {self.config.name}; "
                    f"remove it with `podman rm -f {name}`"
                )
            if existing.labels.get("portalops.spec") == spec_hash_of(args) and existing.state == "running":
                state = hosts.health(self.podman, name)
                if not state.good and state.state in ("initializing", "starting"):
                    state = hosts.wait_for_boot(self.podman, self.config, host, timeout=60)
                if state.good:
                    hosts.bootstrap(self.podman, self.config, host, pubkey)
                    return f"reused ({state.describe()})"
                action = f"replaced (was {state.describe()})"
            elif existing.state != "running":
                action = f"replaced (container {existing.state})"
            else:
                action = "replaced (definition changed)"
            self.podman.run("rm", "--force", "--time", "3", name)
        self._forget_facts(host)
        self._forget_connections(host)
        self.podman.run("run", *args, what=f"start lab host {host.name}")
        state = hosts.wait_for_boot(self.podman, self.config, host)
        hosts.bootstrap(self.podman, self.config, host, pubkey)
        return f"{action} in {time.monotonic() - started:.1f} s ({state.describe()})"

    def _forget_facts(self, host: LabHost) -> None:
        """A new container is a new host: Ansible's cached facts about the old one must go."""
        for cache in {self.config.state_dir / "facts", REPO_ROOT / ".lab" / "facts"}:
            # ansible-core names the files <host> or with a format prefix, e.g. s1_<host>.
            for entry in cache.glob(f"*{host.name}"):
                if entry.name == host.name or entry.name.endswith("_" + host.name):
                    entry.unlink(missing_ok=True)

    def _forget_connections(self, host: LabHost) -> None:
        """Drop what the controller remembers of the old container at this address.

        An SSH ControlMaster (ansible.cfg's ControlPersist) to a container that
        was killed never hears a reset and would hang new sessions; the host's
        neighbour entry may still hold the old container's MAC address.
        """
        for control_path in ansible_control_paths(host.address, self.config.deploy_user):
            if control_path.exists():
                run(
                    [
                        "ssh",
                        "-O",
                        "exit",
                        "-o",
                        f"ControlPath={control_path}",
                        f"{self.config.deploy_user}@{host.address}",
                    ],
                    check=False,
                    timeout=10,
                )
        run(["ip", "neigh", "flush", "to", host.address], check=False, timeout=10)

    def ssh_argv(self, host: LabHost, *extra: str) -> list[str]:
        return [
            "ssh",
            "-i",
            str(self.config.ssh_key),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            f"UserKnownHostsFile={self.config.known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "ConnectTimeout=10",
            f"{self.config.deploy_user}@{host.address}",
            *extra,
        ]

    def _check_ssh(self, host: LabHost) -> None:
        deadline = time.monotonic() + 90
        while True:
            result = run(self.ssh_argv(host, "-o", "BatchMode=yes", "sudo", "-n", "true"), check=False, timeout=30)
            if result.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise CommandFailed(
                    f"SSH to {self.config.deploy_user}@{host.address} failed: {result.stderr.strip()[-300:]}"
                )
            time.sleep(0.5)

    # -- snapshot -------------------------------------------------------------

    def snapshot_tag(self, host: LabHost) -> str:
        return f"localhost/{self.config.name}-snapshot:{host.name}"

    def snapshot(self) -> list[str]:
        """Every host's container as it is now, committed to an image (``snapshot_tag``) for ``lab clone``.

        All at once, each container paused only while it is committed, so the hosts' files and databases are
        taken at rest; a host that is not running is an error (its snapshot would not be the lab's state).
        """
        self.podman.preflight()
        started = time.monotonic()

        def commit(host: LabHost) -> str:
            name = self.config.container(host)
            container = self.podman.container(name)
            if container is None or container.state != "running":
                state = container.state if container else "absent"
                raise EnvironmentProblem(f"{name} is {state}, not a running host to snapshot; run `portalops lab up`")
            tag = self.snapshot_tag(host)
            attempt = 1
            while True:
                try:
                    self.podman.run("commit", "--quiet", "--pause", name, tag, timeout=600, what=f"commit {name}")
                    return tag
                except CommandFailed as failed:
                    # runc's cgroup freezer gives up when a process will not freeze in time (seen on a busy machine:
                    # "`runc pause` failed: exit status 1"); the next try usually freezes. Never commit unpaused:
                    # files taken one by one while MariaDB writes are not one moment of the host.
                    if attempt == SNAPSHOT_ATTEMPTS:
                        raise
                    attempt += 1
                    self.progress(f"{name}: {failed.message}; trying again ({attempt} of {SNAPSHOT_ATTEMPTS})")
                    time.sleep(SNAPSHOT_RETRY_S * attempt)

        tags = parallel(self.config.hosts, commit)
        self.progress(f"lab {self.config.name}: {len(tags)} hosts committed in {time.monotonic() - started:.1f} s")
        return tags

    def forget_snapshot(self) -> None:
        """The snapshot's images. Only once no clone runs from them: a clone's store reads them from the lab's,
        and this podman cannot see the clone's containers that use them."""
        for host in self.config.hosts:
            self.podman.remove_image(self.snapshot_tag(host))
        self.progress(f"lab {self.config.name}: snapshot removed")

    # -- down / status / ssh --------------------------------------------------

    def down(self) -> None:
        """Remove this lab's containers and network, and nothing else."""
        self.podman.preflight()
        removed = [c.name for c in self.podman.containers(self.config.label)]
        if removed:
            try:
                self.podman.run("rm", "--force", "--time", "3", *removed, timeout=120)
            except CommandFailed:
                # podman 4.3 fails a container that stopped while it stopped it ("cannot remove container ...
                # could not be stopped: ... container state improper: stopped"); a second rm removes it.
                left = [c.name for c in self.podman.containers(self.config.label)]
                if left:
                    self.podman.run("rm", "--force", "--time", "3", *left, timeout=120)
        net = self.podman.network_inspect(self.config.network)
        if net is not None and (net.get("labels") or {}).get("portalops.lab") == self.config.name:
            self.podman.run("network", "rm", "--force", self.config.network)
            removed.append(f"network {self.config.network}")
        self.progress(f"removed: {', '.join(removed)}" if removed else "nothing to remove")

    def status(self) -> list[HostReport]:
        self.podman.preflight()

        def one(host: LabHost) -> HostReport:
            name = self.config.container(host)
            container = self.podman.container(name)
            if container is None:
                return HostReport(host.name, host.address, "absent", "-")
            if container.state != "running":
                return HostReport(host.name, host.address, container.state, "-")
            return HostReport(host.name, host.address, container.state, hosts.health(self.podman, name).describe())

        return parallel(self.config.hosts, one)

    def ssh(self, host_name: str, command: Sequence[str]) -> None:
        host = self.config.host(host_name)
        if not self.config.ssh_key.exists():
            raise EnvironmentProblem("the lab has no SSH key yet; run `portalops lab up` first")
        argv = self.ssh_argv(host, *command)
        os.execvp(shutil.which("ssh") or "ssh", argv)  # noqa: S606 (replace this process with the interactive ssh)


def ansible_control_paths(address: str, user: str) -> list[Path]:
    """The ControlMaster sockets Ansible's ssh plugin would use for ``user@address``.

    ansible.cfg names the directory (control_path_dir; ANSIBLE_SSH_CONTROL_PATH_DIR
    overrides it, as for Ansible: a lab clone has its own); the file is the first
    ten hex digits of sha1("host-port-user"), the port being unset or 22.
    """
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(REPO_ROOT / "ansible.cfg")
    configured = parser.get("ssh_connection", "control_path_dir", fallback="~/.ansible/cp")
    directory = Path(os.environ.get("ANSIBLE_SSH_CONTROL_PATH_DIR") or configured).expanduser()
    names = [hashlib.sha1(f"{address}-{port}-{user}".encode()).hexdigest()[:10] for port in ("None", "22")]  # noqa: S324 (Ansible's naming, not security)
    return [directory / name for name in names]


def format_status(reports: Sequence[HostReport]) -> str:
    rows = [("HOST", "ADDRESS", "CONTAINER", "SYSTEMD")] + [
        (r.host, r.address, r.container, r.systemd) for r in reports
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:<{widths[2]}}  {d}" for a, b, c, d in rows)
