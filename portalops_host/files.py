"""Files manifests (sha256 of every file) and what a files restore needs: the diff, evidence, files read back
from a snapshot and put in place atomically, quarantine."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from portalops_host.errors import JobError
from portalops_host.log import Log
from portalops_host.restic import run_restic
from portalops_host.streams import CHUNK


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def files_manifest(
    paths: list[str], exclude: list[str] | None = None, cache: dict[str, list[Any]] | None = None
) -> dict[str, Any]:
    """sha256 and size of every regular file under ``paths`` (symlinks recorded by target).

    ``cache`` maps a path to [size, mtime_ns, sha256] from the previous run: an unchanged file
    (same size and modification time) is not read again. It is updated in place.
    """
    import fnmatch

    known = cache if cache is not None else {}

    files: dict[str, dict[str, Any]] = {}
    links: dict[str, str] = {}
    for top in paths:
        root = Path(top)
        if not root.exists():
            raise JobError(f"path to back up does not exist: {top}")
        walker = [(str(root.parent), [], [root.name])] if root.is_file() else os.walk(root)
        for directory, dirnames, filenames in walker:
            dirnames[:] = [d for d in dirnames if not any(fnmatch.fnmatch(d, p) for p in exclude or [])]
            for name in filenames:
                if any(fnmatch.fnmatch(name, p) for p in exclude or []):
                    continue
                full = Path(directory) / name
                if full.is_symlink():
                    links[str(full)] = os.readlink(full)
                elif full.is_file():
                    info = full.stat()
                    seen = known.get(str(full))
                    if seen and seen[0] == info.st_size and seen[1] == info.st_mtime_ns:
                        digest = str(seen[2])
                    else:
                        digest = sha256_file(full)
                        known[str(full)] = [info.st_size, info.st_mtime_ns, digest]
                    files[str(full)] = {"sha256": digest, "size": info.st_size}
            for name in dirnames:
                if (Path(directory) / name).is_symlink():
                    links[str(Path(directory) / name)] = os.readlink(Path(directory) / name)
    return {
        "kind": "files",
        "paths": paths,
        "files": files,
        "links": links,
        "count": len(files),
        "bytes": sum(f["size"] for f in files.values()),
    }


def compare_files(expected: dict[str, Any], root: Path) -> list[str]:
    """Restored files under ``root`` against a files manifest (paths as they were on the host)."""
    problems = []
    for path, spec in expected["files"].items():
        restored = root / path.lstrip("/")
        if not restored.is_file():
            problems.append(f"{path}: not restored")
        elif sha256_file(restored) != spec["sha256"]:
            problems.append(f"{path}: sha256 differs from the manifest")
    for path, target in expected.get("links", {}).items():
        restored = root / path.lstrip("/")
        if not restored.is_symlink() or os.readlink(restored) != target:
            problems.append(f"{path}: symlink to {target} not restored")
    return problems


EVIDENCE_DIR = Path("/var/lib/portalops/evidence")


def files_diff(expected: dict[str, Any], actual: dict[str, Any]) -> dict[str, list[str]]:
    """A files manifest against one of the live tree: what changed, went missing or was added.

    Regular files compare by sha256, symlinks by target, and a file that became a link (or the
    other way round) is changed. ``added`` is what the backup never saw: an upload made since,
    or a dropped web shell; only a person can tell which, so a restore keeps them as evidence.
    """
    want_files, want_links = expected.get("files", {}), expected.get("links", {})
    have_files, have_links = actual.get("files", {}), actual.get("links", {})
    changed, missing = [], []
    for path, spec in want_files.items():
        if path in have_files:
            if have_files[path]["sha256"] != spec["sha256"]:
                changed.append(path)
        elif path in have_links:
            changed.append(path)
        else:
            missing.append(path)
    for path, target in want_links.items():
        if path in have_links:
            if have_links[path] != target:
                changed.append(path)
        elif path in have_files:
            changed.append(path)
        else:
            missing.append(path)
    known = set(want_files) | set(want_links)
    added = [path for path in [*have_files, *have_links] if path not in known]
    return {"changed": sorted(changed), "missing": sorted(missing), "added": sorted(added)}


def live_files_manifest(paths: list[str], exclude: list[str] | None) -> dict[str, Any]:
    """The live tree as a manifest, every file read again (no hash cache: tampering can keep size and mtime).

    A top path that is gone entirely is no error here: its files are then all missing."""
    return files_manifest([p for p in paths if os.path.lexists(p)], exclude, cache={})


def restic_include(path: str) -> str:
    """A path as a restic --include pattern that matches only itself (glob characters escaped)."""
    return re.sub(r"([\\*?\[\]])", r"\\\1", path)


def keep_evidence(paths: list[str], directory: Path, details: dict[str, Any]) -> dict[str, str]:
    """Before anything is touched: a tar of ``paths`` as found (links as links, owners and modes kept),
    the sha256 of each regular file and of the tar, and ``details`` (what differed, from which snapshot).
    Root only; the directory is returned in the summary so it can be copied off the host."""
    directory.mkdir(parents=True, mode=0o700, exist_ok=True)
    directory.chmod(0o700)
    tar_path = directory / "evidence.tar"
    sums: dict[str, str] = {}
    with tarfile.open(tar_path, "w") as tar:
        for path in paths:
            if os.path.lexists(path):
                tar.add(path, recursive=False)
                if Path(path).is_file() and not Path(path).is_symlink():
                    sums[path] = sha256_file(Path(path))
    sums["evidence.tar"] = sha256_file(tar_path)
    (directory / "SHA256SUMS").write_text("".join(f"{digest}  {name}\n" for name, digest in sums.items()))
    (directory / "details.json").write_text(json.dumps(details, indent=2, sort_keys=True) + "\n")
    for name in ("evidence.tar", "SHA256SUMS", "details.json"):
        (directory / name).chmod(0o600)
    return sums


def unique_directory(root: Path, moment: dt.datetime) -> Path:
    base = root / moment.strftime("%Y%m%dT%H%M%SZ")
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def evidence_directory(evidence: str | None, moment: dt.datetime) -> Path:
    """``evidence`` when given, else a new directory named by ``moment`` under EVIDENCE_DIR (root only)."""
    if evidence:
        return Path(evidence)
    EVIDENCE_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
    EVIDENCE_DIR.chmod(0o700)
    return unique_directory(EVIDENCE_DIR, moment)


def put_in_place(source: Path, destination: Path, staging: Path) -> None:
    """One file or link restored into ``staging`` replaces ``destination`` atomically, with the owner,
    group and mode the snapshot recorded; missing parent directories are made as the snapshot had them."""
    missing = []
    parent = destination.parent
    while not parent.exists():
        missing.append(parent)
        parent = parent.parent
    for directory in reversed(missing):
        directory.mkdir()
        recorded = staging / str(directory).lstrip("/")
        if recorded.is_dir():
            info = recorded.stat()
            os.chown(directory, info.st_uid, info.st_gid)
            directory.chmod(info.st_mode & 0o7777)
    temporary = destination.with_name(f".{destination.name}.portalops-restore")
    if os.path.lexists(temporary):
        temporary.unlink()
    info = source.lstat()
    if source.is_symlink():
        os.symlink(os.readlink(source), temporary)
    else:
        shutil.copy2(source, temporary)
        temporary.chmod(info.st_mode & 0o7777)
    if os.geteuid() == 0:
        os.lchown(temporary, info.st_uid, info.st_gid)
        if not source.is_symlink():
            temporary.chmod(info.st_mode & 0o7777)  # chown clears setuid bits
    os.replace(temporary, destination)


def quarantine(paths: list[str], directory: Path) -> list[str]:
    """Files the backup never saw, moved (never deleted) under ``directory``/quarantine with their path."""
    moved = []
    for path in paths:
        if not os.path.lexists(path):
            continue
        target = directory / "quarantine" / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        shutil.move(path, target)
        moved.append(path)
    return moved


def restore_from_snapshot(
    config: dict[str, Any], snapshot: dict[str, Any], manifest: dict[str, Any], paths: list[str], log: Log
) -> list[str]:
    """``paths`` restored from the snapshot into a staging directory, each checked against the manifest,
    then put in place; returns what could not be restored."""
    if not paths:
        return []
    root = Path(config.get("staging_dir", "/var/backups/portalops"))
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    staging = Path(tempfile.mkdtemp(prefix="restore-files-", dir=root))
    problems = []
    try:
        includes = [arg for path in paths for arg in ("--include", restic_include(path))]
        log(f"restore-files: restic restore of {len(paths)} paths from snapshot {snapshot['short_id']}")
        run_restic(config, "--no-lock", "restore", snapshot["id"], "--target", str(staging), *includes)
        for path in paths:
            source = staging / path.lstrip("/")
            spec = manifest.get("files", {}).get(path)
            if spec is not None and (
                not source.is_file() or source.is_symlink() or sha256_file(source) != spec["sha256"]
            ):
                problems.append(f"{path}: the snapshot's copy is missing or does not match the manifest")
                continue
            if spec is None and (not source.is_symlink() or os.readlink(source) != manifest["links"].get(path)):
                problems.append(f"{path}: the snapshot's link is missing or does not match the manifest")
                continue
            try:
                put_in_place(source, Path(path), staging)
            except OSError as exc:
                problems.append(f"{path}: could not be put in place: {exc}")
                continue
            log(f"RESTORED: {path}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return problems
