"""The lab image: Debian 12 built locally with debootstrap, imported into podman.

No registry is reachable, Debian's mirror is. The image tag carries a hash of
its recipe, so it is rebuilt exactly when the recipe changes, and an image is
tagged only after every build step succeeded.

Two layers: the bare image (molecule's instances start from it, so each role
proves its install from bare Debian) and the hosts' image, the bare one with
the packages every lab host gets installed once (``lab/image/bake.yml``, the
roles' own lists), which the lab's hosts start from.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import yaml

from portalops.errors import CommandFailed, EnvironmentProblem
from portalops.inventory import REPO_ROOT
from portalops.lab import aptcache, cpu
from portalops.lab.podman import Podman
from portalops.proc import last_line, require_tools

IMAGE_REPO = "localhost/portalops-lab"
STABLE_TAG = f"{IMAGE_REPO}:bookworm"  # the newest good build, for molecule
SUITE = "bookworm"
VARIANT = "minbase"
PACKAGES = (
    "systemd",
    "systemd-sysv",
    "openssh-server",
    "python3",
    "sudo",
    "dbus",
    "iproute2",
    "ca-certificates",
)
CUSTOMIZE = REPO_ROOT / "lab" / "image" / "customize.sh"
RECIPE_VERSION = "1"
HOSTS_REPO = "localhost/portalops-lab-hosts"
BAKE_PLAYBOOK = REPO_ROOT / "lab" / "image" / "bake.yml"
BAKE_RECORD = "image-bake.json"  # in the state directory's logs/: the last bake's time and its container's CPU

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Mirrors:
    """Where the image (and so the lab hosts) get Debian packages from."""

    main: str
    security: str

    def sources_list(self) -> str:
        return (
            f"deb {self.main} {SUITE} main\n"
            f"deb {self.main} {SUITE}-updates main\n"
            f"deb {self.security} {SUITE}-security main\n"
        )


def recipe_hash(customize_text: str) -> str:
    """A short hash of everything that defines the image's content."""
    recipe = "\n".join([RECIPE_VERSION, SUITE, VARIANT, ",".join(PACKAGES), customize_text])
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def image_tag() -> str:
    return f"{IMAGE_REPO}:{recipe_hash(CUSTOMIZE.read_text())}"


def bake_inputs(playbook: Path = BAKE_PLAYBOOK) -> list[Path]:
    """The bake play and the role files it reads its package lists from (its plays' ``vars_files``)."""
    plays = yaml.safe_load(playbook.read_text()) or []
    files = [playbook]
    for play in plays:
        for name in play.get("vars_files") or []:
            path = (playbook.parent / name).resolve()
            if not path.is_file():
                raise EnvironmentProblem(f"{playbook}: vars_files names {name}, which does not exist")
            files.append(path)
    return files


def hosts_image_tag(base_tag: str, inputs: Iterable[Path] | None = None) -> str:
    """The hosts' image tag: a hash of the bare image's tag and of the bake's inputs (their contents)."""
    digest = hashlib.sha256(base_tag.encode())
    for path in inputs if inputs is not None else bake_inputs():
        digest.update(b"\0" + path.name.encode() + b"\0" + path.read_bytes())
    return f"{HOSTS_REPO}:{digest.hexdigest()[:12]}"


_URI_RE = re.compile(r"(?:^URIs:\s*|^deb\s+(?:\[[^\]]*\]\s+)?)(\S+)", re.MULTILINE)


def discover_mirrors(source_texts: Iterable[str]) -> Mirrors | None:
    """Find the Debian and Debian-Security mirrors in apt source files.

    The machine already knows which mirror works here; reusing it keeps the
    lab on the same path to Debian as the machine itself.
    """
    main = security = ""
    for text in source_texts:
        for uri in _URI_RE.findall(text):
            uri = uri.rstrip("/")
            if uri.endswith("/debian-security") and not security:
                security = uri
            elif uri.endswith("/debian") and not main:
                main = uri
    if not main:
        return None
    return Mirrors(main=main, security=security or main + "-security")


def machine_mirrors() -> Mirrors:
    override = os.environ.get("PORTALOPS_MIRROR", "").rstrip("/")
    if override:
        security = os.environ.get("PORTALOPS_SECURITY_MIRROR", "").rstrip("/")
        return Mirrors(main=override, security=security or override + "-security")
    paths = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    texts = [p.read_text(errors="replace") for p in paths if p.is_file() and p.suffix in ("", ".list", ".sources")]
    found = discover_mirrors(texts)
    if found is None:
        raise EnvironmentProblem(
            "no Debian mirror found in /etc/apt sources; set PORTALOPS_MIRROR to one (the URL that ends in /debian)"
        )
    return found


def check_mirror(mirrors: Mirrors, timeout: float = 15) -> None:
    """Fail fast, with one clear line, when the mirror cannot be reached."""
    url = f"{mirrors.main}/dists/{SUITE}/Release"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (http mirror by design)
            response.read(64)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise EnvironmentProblem(
            f"Debian mirror unreachable: {url}: {reason}; check the network, or set "
            "PORTALOPS_MIRROR to a reachable mirror"
        ) from exc


def build_image(
    podman: Podman,
    state_dir: Path,
    progress: Progress,
    *,
    force: bool = False,
    tag: str | None = None,
) -> str:
    """Build and import the lab image unless a good one with this recipe exists."""
    recipe_tag = image_tag()
    tag = tag or recipe_tag
    if not force and podman.image_exists(tag):
        if tag == recipe_tag and not podman.image_exists(STABLE_TAG):
            podman.tag_image(tag, STABLE_TAG)
        return tag
    require_tools(["debootstrap", "tar", "chroot"], "run `make setup` (apt-get install debootstrap)")
    mirrors = machine_mirrors()
    check_mirror(mirrors)
    work = state_dir / "image-build"
    cache = state_dir / "cache" / "debootstrap"
    log_path = state_dir / "logs" / "image-build.log"
    for path in (cache, log_path.parent):
        path.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(work, ignore_errors=True)
    rootfs = work / "rootfs"
    rootfs.mkdir(parents=True)
    try:
        with log_path.open("w") as log:
            progress(f"image: debootstrap {SUITE} ({VARIANT} + {len(PACKAGES)} packages) from {mirrors.main}")
            _logged(
                [
                    "debootstrap",
                    f"--variant={VARIANT}",
                    f"--include={','.join(PACKAGES)}",
                    f"--cache-dir={cache}",
                    SUITE,
                    str(rootfs),
                    mirrors.main,
                ],
                log,
                log_path,
                "debootstrap",
            )
            (rootfs / "etc/apt/sources.list").write_text(mirrors.sources_list())
            progress("image: customise (updates, per-host SSH host keys, container units)")
            # Package scripts run by the upgrade need /proc.
            _logged(["mount", "-t", "proc", "proc", str(rootfs / "proc")], log, log_path, "mount /proc")
            try:
                with CUSTOMIZE.open() as script:
                    _logged(["chroot", str(rootfs), "/bin/sh", "-s"], log, log_path, "customise", stdin=script)
            finally:
                subprocess.run(["umount", "--lazy", str(rootfs / "proc")], check=False)
            progress(f"image: import into podman as {tag}")
            tar = subprocess.Popen(["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
            try:
                podman.import_image(tar.stdout, tag)
            finally:
                if tar.stdout is not None:
                    tar.stdout.close()
                if tar.wait() != 0:
                    podman.remove_image(tag)
                    raise CommandFailed("image: tar of the root file system failed")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if tag == recipe_tag:
        podman.tag_image(tag, STABLE_TAG)
    return tag


def bake_hosts_image(podman: Podman, state_dir: Path, progress: Progress, base_tag: str, *, force: bool = False) -> str:
    """Build the hosts' image from the bare one unless it exists: ``lab/image/bake.yml`` in a container
    of the bare image (through ansible's podman connection, no systemd running), then ``podman commit``."""
    tag = hosts_image_tag(base_tag)
    if not force and podman.image_exists(tag):
        return tag
    require_tools(["ansible-playbook"], "run `make setup` (the virtualenv's bin on PATH)")
    name = "portalops-bake-" + tag.rsplit(":", 1)[1]
    log_path = state_dir / "logs" / "image-bake.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    podman.run("rm", "--force", "--time", "0", name, check=False)
    started = time.monotonic()
    podman.run("run", "--detach", "--name", name, base_tag, "sleep", "infinity", what="start the bake container")
    try:
        proxy = f"http://host.containers.internal:{aptcache.PORT}" if aptcache.answers() else ""
        progress(
            f"image: install every host's packages once ({BAKE_PLAYBOOK.relative_to(REPO_ROOT)}"
            f"{', through the package cache' if proxy else ''}); log: {log_path}"
        )
        inventory = state_dir / "image-bake.ini"
        inventory.write_text(
            f"bake ansible_connection=containers.podman.podman ansible_host={name} "
            "ansible_python_interpreter=/usr/bin/python3\n"
        )
        env = {**podman.env, "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
        with log_path.open("w") as log:
            _logged(
                ["ansible-playbook", "-i", str(inventory), str(BAKE_PLAYBOOK), "-e", f"bake_apt_proxy={proxy}"],
                log,
                log_path,
                "bake",
                env=env,
            )
        cgroup = cpu.cgroup_paths(podman, [name]).get(name)
        used = cpu.cgroup_cpu_seconds(cgroup) if cgroup else None
        baked = {"tag": tag, "seconds": round(time.monotonic() - started, 1), "container_cpu_s": used}
        (state_dir / "logs" / BAKE_RECORD).write_text(json.dumps(baked, indent=2) + "\n")
        progress(
            f"image: baked in {baked['seconds']:.0f} s"
            f"{f', {used:.0f} CPU-s in its container' if used is not None else ''}; commit as {tag}"
        )
        podman.run("stop", "--time", "0", name, what="stop the bake container")
        podman.run("commit", "--quiet", "--change", 'CMD ["/sbin/init"]', name, tag, what="commit the hosts' image")
    finally:
        podman.run("rm", "--force", "--time", "0", name, check=False)
    return tag


def _logged(
    argv: list[str],
    log: TextIO,
    log_path: Path,
    what: str,
    stdin: TextIO | None = None,
    env: dict[str, str] | None = None,
) -> None:
    """Run one build step with its output in the build log; on failure show the log's tail."""
    result = subprocess.run(argv, stdin=stdin, stdout=log, stderr=subprocess.STDOUT, env=env, check=False)
    if result.returncode != 0:
        tail = log_path.read_text(errors="replace").splitlines()[-15:]
        raise CommandFailed(
            f"image: {what} failed (exit {result.returncode}): {last_line(chr(10).join(tail))}; full log: {log_path}",
            detail="\n".join(tail),
        )
