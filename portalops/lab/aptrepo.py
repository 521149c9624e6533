"""A local apt repository of a canary package, in the versions a patch test or bench-patch chooses.

Built on the controller with dpkg-deb, copied into each lab host (podman cp) and used
there as a flat file: repository, so no host needs any network for it.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

PACKAGE = "portalops-canary"
REMOTE = "/srv/portalops-test-repo"
SOURCES = "/etc/apt/sources.list.d/portalops-test.list"


def deb_name(version: str) -> str:
    """The canary's package file in this version (in the repository, and under REMOTE on a host)."""
    return f"{PACKAGE}_{version}_all.deb"


def build_deb(out: Path, version: str) -> Path:
    root = out / f"build-{version}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "usr/share/portalops-canary").mkdir(parents=True)
    (root / "usr/share/portalops-canary/VERSION").write_text(version + "\n")
    # dpkg-deb wants DEBIAN/ 0755..0775 whatever the caller's umask (the backup wrapper sets 077)
    for directory in (root, root / "DEBIAN", root / "usr", root / "usr/share", root / "usr/share/portalops-canary"):
        directory.chmod(0o755)
    (root / "DEBIAN/control").write_text(
        f"Package: {PACKAGE}\nVersion: {version}\nArchitecture: all\nMaintainer: portalops tests <ops@lab.test>\n"
        "Section: misc\nPriority: optional\nDescription: canary package for the patch-run tests\n"
    )
    deb = out / deb_name(version)
    built = subprocess.run(
        ["dpkg-deb", "--root-owner-group", "--build", str(root), str(deb)], check=False, capture_output=True, text=True
    )
    if built.returncode != 0:
        raise RuntimeError(f"dpkg-deb --build {root} failed (exit {built.returncode}): {built.stderr.strip()}")
    shutil.rmtree(root)
    return deb


def control_of(deb: Path) -> str:
    return subprocess.run(["dpkg-deb", "-f", str(deb)], check=True, capture_output=True, text=True).stdout.strip()


def index(repo: Path) -> None:
    """Packages and Release for a flat repository of the .deb files in ``repo``."""
    stanzas = []
    for deb in sorted(repo.glob("*.deb")):
        data = deb.read_bytes()
        stanzas.append(
            f"{control_of(deb)}\nFilename: ./{deb.name}\nSize: {len(data)}\n"
            f"MD5sum: {hashlib.md5(data).hexdigest()}\nSHA256: {hashlib.sha256(data).hexdigest()}\n"  # noqa: S324
        )
    packages = "\n".join(stanzas).encode()
    (repo / "Packages").write_bytes(packages)
    (repo / "Release").write_text(
        "Origin: portalops-lab\nLabel: portalops-lab\nSuite: lab\nCodename: lab\nArchitectures: all amd64\n"
        f"SHA256:\n {hashlib.sha256(packages).hexdigest()} {len(packages)} Packages\n"
    )


def publish(repo: Path, versions: list[str]) -> None:
    """The repository offers exactly these versions."""
    repo.mkdir(parents=True, exist_ok=True)
    for old in repo.glob("*.deb"):
        old.unlink()
    for version in versions:
        build_deb(repo, version)
    index(repo)
