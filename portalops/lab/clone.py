"""``portalops lab clone DIR``: a second lab, started from the snapshot of the first, beside it.

The clone has the same hosts, addresses and published ports as the lab, so the
same inventory and the same tests reach it; what keeps the two apart:

- a network namespace of its own (``/run/netns/<name>``): its podman network,
  its 127.0.0.1 and its gateway (10.89.60.1 in the lab) exist only in there;
  every command for the clone runs inside it (``Clone.argv``); a relay
  (portalops.lab.relay) gives it the lab machine's package cache at the
  clone's own gateway, as the lab's hosts have it at theirs;
- a mount namespace of its own, where /run/containers/networks is the clone's:
  rootful podman keeps its address allocations (ipam.db) and its DNS server's
  (aardvark-dns) state there, at that path, by network name, and the clone's
  network has the lab's name;
- a podman store of its own (graph root under DIR, run root and podman's tmp
  dir under /run), which reads the lab's images (the snapshot) from the lab's
  store as an additional, read-only image store;
- a copy of the repository at DIR (the files git tracks or would track, the
  lab's SSH key and CA, the virtualenv linked), so its state (``.lab``,
  ``incidents/``) and its Ansible SSH control sockets are its own.

`make test` runs a share of the lab test modules on a clone while the lab runs
the rest. Needs root, like the lab; ``--remove`` takes it all away again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from portalops.errors import BadInput, CommandFailed, EnvironmentProblem
from portalops.inventory import REPO_ROOT
from portalops.lab import aptcache, relay
from portalops.lab.podman import CONTAINERS_CONF, Podman
from portalops.proc import run

Progress = Callable[[str], None]
RECORD = Path(".lab") / "clone.json"  # in the clone's DIR: what commands need to reach it
STATE = ("ssh", "tls")  # in .lab: the lab's SSH key and known_hosts, its CA (the clone's hosts are the lab's)
NETNS_DIR = Path("/run/netns")
RUN_DIR = Path("/run/portalops-clones")
RELAY_PID = "aptcache-relay.pid"  # in the clone's run dir
PODMAN_NETWORK_RUN_DIR = "/run/containers/networks"  # rootful podman's, fixed (containers/common)


@dataclass(frozen=True)
class Clone:
    """A clone at ``root``, in network namespace ``netns``."""

    root: Path
    netns: str

    @property
    def run_dir(self) -> Path:
        return RUN_DIR / self.netns

    @property
    def env(self) -> dict[str, str]:
        """What a command needs, besides the namespace, to reach the clone and not the lab."""
        return {
            "CONTAINERS_CONF": str(self.root / "lab" / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(self.root / ".lab" / "storage.conf"),
            "ANSIBLE_CONFIG": str(self.root / "ansible.cfg"),
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(self.run_dir / "ssh-cp"),
            "PORTALOPS_LAB_DIR": str(self.root / ".lab"),
            # the clone's portalops, whatever the directory (the virtualenv's editable install is the lab's)
            "PYTHONPATH": str(self.root),
        }

    @property
    def mount_ns(self) -> Path:
        return self.run_dir / "mnt"

    def argv(self, *command: str) -> list[str]:
        """``command`` inside the clone's network and mount namespaces, in the clone's directory (nsenter:
        `ip netns exec` remounts /sys, and runc then finds no cgroup mount)."""
        return [
            "nsenter",
            f"--net={NETNS_DIR / self.netns}",
            f"--mount={self.mount_ns}",
            f"--wd={self.root}",
            "--",
            *command,
        ]

    def run(self, *command: str, timeout: float = 900, what: str = "") -> None:
        run(self.argv(*command), env={**os.environ, **self.env}, timeout=timeout, what=what or command[0])

    def call(self, command: list[str]) -> int:
        """``command`` in the clone, its output where ours goes; its exit status."""
        return subprocess.run(self.argv(*command), env={**os.environ, **self.env}, check=False).returncode


def running() -> list[str]:
    """The namespaces of the clones on this machine (each runs from the lab's snapshot until removed)."""
    return sorted(path.parent.name for path in RUN_DIR.glob("*/mnt"))


def netns_name(root: Path) -> str:
    return "portalops-" + hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:10]


def load(root: Path) -> Clone | None:
    """The clone at ``root``, or None when there is none."""
    try:
        record = json.loads((root / RECORD).read_text())
        return Clone(root=root.resolve(), netns=str(record["netns"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def tracked_files(repo: Path) -> list[Path]:
    """What the clone copies: the files git tracks, and new ones it does not ignore (a change under test)."""
    listing = run(
        ["git", "-C", str(repo), "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        what="list the repository's files",
    ).stdout
    return [Path(name) for name in sorted(set(listing.split("\0"))) if name and (repo / name).exists()]


def containers_conf(text: str, tmp_dir: Path, network_dir: Path) -> str:
    """The lab's containers.conf with the clone's own podman tmp dir and network configuration directory:
    podman keys networks by name, and the clone's network has the lab's name and subnet."""
    for section in ("[engine]", "[network]"):
        if f"\n{section}\n" not in f"\n{text}":
            raise EnvironmentProblem(f"{CONTAINERS_CONF} has no {section} section to extend for the clone")
    text = text.replace("[engine]\n", f'[engine]\ntmp_dir = "{tmp_dir}"\n', 1)
    return text.replace("[network]\n", f'[network]\nnetwork_config_dir = "{network_dir}"\n', 1)


def storage_conf(driver: str, graph_root: Path, run_root: Path, images_from: str) -> str:
    return (
        "# The clone's own podman store; the lab's images (its snapshot) read from the lab's store.\n"
        "[storage]\n"
        f'driver = "{driver}"\n'
        f'graphroot = "{graph_root}"\n'
        f'runroot = "{run_root}"\n'
        "[storage.options]\n"
        f'additionalimagestores = ["{images_from}"]\n'
    )


def create(root: Path, progress: Progress, podman: Podman | None = None) -> Clone:
    """Copy the repository to ``root``, make the clone's namespace and store, and start its hosts from the
    lab's snapshot (``portalops lab snapshot``). A clone already at ``root`` is removed first."""
    root = root.resolve()
    if root == REPO_ROOT or REPO_ROOT in root.parents:
        raise BadInput(f"{root} is inside the repository; a clone goes outside it (linters would read its copy)")
    if load(root) is not None:
        remove(root, progress)
    elif root.exists() and any(root.iterdir()):
        raise BadInput(f"{root} exists and is not a lab clone; name an empty or new directory")
    podman = podman or Podman()
    podman.preflight()
    store = json.loads(podman.run("info", "--format", "json", what="read the lab's podman store").stdout)["store"]
    clone = Clone(root=root, netns=netns_name(root))
    for name in tracked_files(REPO_ROOT):
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, target, follow_symlinks=False)
    (root / ".venv").symlink_to(REPO_ROOT / ".venv")
    for part in STATE:
        if (REPO_ROOT / ".lab" / part).is_dir():
            shutil.copytree(REPO_ROOT / ".lab" / part, root / ".lab" / part, symlinks=True)
    (root / "lab" / "containers.conf").write_text(
        containers_conf(CONTAINERS_CONF.read_text(), clone.run_dir / "libpod", root / ".lab" / "networks")
    )
    (root / ".lab" / "storage.conf").write_text(
        storage_conf(
            str(store["graphDriverName"]), root / ".lab" / "storage", clone.run_dir / "storage", str(store["graphRoot"])
        )
    )
    (root / ".lab" / "networks").mkdir(parents=True, exist_ok=True)
    (root / RECORD).write_text(json.dumps({"netns": clone.netns}) + "\n")
    try:
        make_namespaces(clone)
        start_relay(clone)
        progress(f"clone {root}: repository copied, namespace {clone.netns}; starting its hosts from the snapshot")
        clone.run(sys.executable, "-m", "portalops.cli", "lab", "up", "--from-snapshot", what="start the clone's hosts")
    except BaseException:
        remove(root, progress)
        raise
    return clone


def make_namespaces(clone: Clone) -> None:
    """The clone's network namespace, and its mount namespace, kept in a file (so every command of the clone
    enters the same one) on a private mount, as the kernel wants it, with its own /run/containers/networks."""
    networks = clone.run_dir / "networks"
    networks.mkdir(parents=True, exist_ok=True)
    if run(["mountpoint", "-q", str(RUN_DIR)], check=False).returncode != 0:
        run(["mount", "--bind", str(RUN_DIR), str(RUN_DIR)], what=f"bind-mount {RUN_DIR}")
        run(["mount", "--make-private", str(RUN_DIR)], what=f"make {RUN_DIR} private")
    clone.mount_ns.touch()
    run(
        ["unshare", f"--mount={clone.mount_ns}", "--propagation", "slave", "true"],
        what="create the clone's mount namespace",
    )
    run(
        [
            "nsenter",
            f"--mount={clone.mount_ns}",
            "--",
            "sh",
            "-c",
            f'mkdir -p "$1" && mount --bind "{networks}" "$1"',
            "mount",
            PODMAN_NETWORK_RUN_DIR,
        ],
        what=f"give the clone its own {PODMAN_NETWORK_RUN_DIR}",
    )
    run(["ip", "netns", "add", clone.netns], what=f"create network namespace {clone.netns}")
    run(clone.argv("ip", "link", "set", "lo", "up"), what=f"bring up the loopback of {clone.netns}")


def start_relay(clone: Clone, port: int = aptcache.PORT) -> int:
    """The lab machine's package cache at ``port`` of the clone's own addresses (its gateway among them, which
    ``base_apt_proxy`` names), through a relay process (portalops.lab.relay) that outlives this command and goes
    with ``remove``. Without it a clone's ``apt-get update`` found no cache, fell back to a mirror it cannot
    reach, and failed after minutes. The pid, kept in the clone's run dir."""
    listener = relay.listen_in(NETNS_DIR / clone.netns, port)
    log = clone.run_dir / "aptcache-relay.log"
    with listener:
        pid = os.posix_spawn(
            sys.executable,
            [sys.executable, "-m", "portalops.lab.relay", "--fd", str(listener.fileno()), "--to", f"127.0.0.1:{port}"],
            os.environ,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600),
                (os.POSIX_SPAWN_DUP2, 1, 2),
            ],
            setsid=True,
        )
    (clone.run_dir / RELAY_PID).write_text(f"{pid} {start_time(pid)}\n")
    return pid


def start_time(pid: int) -> str:
    """When the process started (clock ticks after boot, /proc/PID/stat's 22nd field): with the pid, it names one
    process, since pids are reused. Its command line would not: it is empty while the process is in exec."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2 :].split()[19]


def stop_relay(clone: Clone) -> None:
    """End the clone's relay, if its pid file names one that still runs (the same process: pids are reused)."""
    try:
        pid_text, started = (clone.run_dir / RELAY_PID).read_text().split()
        pid = int(pid_text)
        same = start_time(pid) == started
    except (OSError, ValueError):
        return
    if same:
        os.kill(pid, signal.SIGTERM)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)  # our own child when this process started the clone


def remove(root: Path, progress: Progress, logs_to: Path | None = None) -> None:
    """The clone's hosts, network, namespace, store and copy; the lab and its snapshot stay. ``logs_to``:
    where the clone's .lab/logs (the playbook logs of the tests run in it) are kept first."""
    clone = load(root)
    if clone is None:
        raise BadInput(f"{root} is not a lab clone (no {RECORD})")
    problems: list[str] = []
    if logs_to and (clone.root / ".lab" / "logs").is_dir():
        shutil.rmtree(logs_to, ignore_errors=True)
        shutil.copytree(clone.root / ".lab" / "logs", logs_to, symlinks=True)
        progress(f"clone {root}: its logs are kept in {logs_to}")
    if (NETNS_DIR / clone.netns).exists() and run(
        ["mountpoint", "-q", str(clone.mount_ns)], check=False
    ).returncode == 0:
        try:
            clone.run(sys.executable, "-m", "portalops.cli", "lab", "down", what="remove the clone's hosts")
        except CommandFailed as error:
            problems.append(error.message)
    stop_relay(clone)
    run(["ip", "netns", "delete", clone.netns], check=False, what=f"delete network namespace {clone.netns}")
    # the last process in it gone (podman's store mounts inside go with it)
    run(["umount", str(clone.mount_ns)], check=False, what="drop the clone's mount namespace")
    shutil.rmtree(clone.run_dir, ignore_errors=True)
    try:
        shutil.rmtree(clone.root)
    except OSError as error:
        problems.append(f"could not remove {clone.root}: {error}")
    if problems:
        raise CommandFailed("; ".join(problems))
    progress(f"clone {root}: removed")
