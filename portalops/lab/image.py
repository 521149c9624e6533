"""The lab image: Debian 12 built locally with debootstrap, imported into podman.

No registry is reachable, Debian's mirror is. The image tag carries a hash of
its recipe, so it is rebuilt exactly when the recipe changes, and an image is
tagged only after every build step succeeded.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from portalops.errors import CommandFailed, EnvironmentProblem
from portalops.inventory import REPO_ROOT
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


def _logged(argv: list[str], log: TextIO, log_path: Path, what: str, stdin: TextIO | None = None) -> None:
    """Run one build step with its output in the build log; on failure show the log's tail."""
    result = subprocess.run(argv, stdin=stdin, stdout=log, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        tail = log_path.read_text(errors="replace").splitlines()[-15:]
        raise CommandFailed(
            f"image: {what} failed (exit {result.returncode}): {last_line(chr(10).join(tail))}; full log: {log_path}",
            detail="\n".join(tail),
        )
