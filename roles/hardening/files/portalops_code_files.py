#!/usr/bin/python3
"""portalops-code-files: files in the code directories that nothing accounts for (standard library only).

A web shell planted in a theme directory is a file no package owns: debsums never sees it, and a
backup manifest of the sites' data does not cover the code tree. This tool walks every code
directory the roles name and sorts each file (and link) into one of:

    owned     a Debian package installed it (dpkg's file lists, diversions, ucf's registry)
    managed   a role renders it (the role lists the paths it templates)
    linked    a link to an owned or managed file (phpenmod's conf.d links): it adds no content
    declared  the inventory declares it site-owned (shell-style patterns, ``*`` also matches ``/``)
    added     none of these: reported, and quarantined on request

The roles write what they know into /etc/portalops/code-files.d/*.json, each a JSON object with any of
``roots`` (directories walked), ``exclude`` (directories skipped: the sites' own data, which the backup
manifest covers), ``managed`` (paths the role renders), ``declared`` (patterns) and ``reload``
(directory -> systemd unit reloaded when a file under it was quarantined, so a running daemon drops an
added configuration file).

    portalops-code-files check                  exit 0: no added file; 1: some (listed); JSON on stdout
    portalops-code-files quarantine [--evidence DIR]
                                                move every added file (never delete) into DIR/quarantine/<path>
                                                with DIR/quarantine.json (path, sha256, size, owner, mode, mtime,
                                                first bytes), reload the daemons concerned, check again

Exit codes: 0 nothing added (or everything quarantined), 1 added files found (or left), 2 bad
configuration, 75 cannot tell right now (dpkg is installing: its lists are changing).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import fcntl
import fnmatch
import glob
import grp
import hashlib
import json
import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONFIG_DIR = Path("/etc/portalops/code-files.d")
DPKG_INFO = Path("/var/lib/dpkg/info")
DPKG_DIVERSIONS = Path("/var/lib/dpkg/diversions")
UCF_REGISTRY = Path("/var/lib/ucf/registry")
DPKG_LOCKS = (Path("/var/lib/dpkg/lock-frontend"), Path("/var/lib/dpkg/lock"))
EVIDENCE_DIR = Path("/var/lib/portalops/evidence")
FIRST_BYTES = 256

EXIT_OK, EXIT_ADDED, EXIT_CONFIG, EXIT_UNKNOWN = 0, 1, 2, 75


class ConfigError(Exception):
    pass


class Busy(Exception):
    pass


@dataclass(frozen=True)
class Config:
    roots: tuple[str, ...]
    exclude: frozenset[str]
    managed: frozenset[str]
    declared: tuple[str, ...]
    reload: dict[str, str]


@dataclass(frozen=True)
class Entry:
    """A non-directory found under a root; ``targets`` are what a link points to (as written and resolved)."""

    path: str
    targets: tuple[str, ...] = ()


# --------------------------------------------------------------------------- the pure part


def merge_config(fragments: Iterable[tuple[str, Any]]) -> Config:
    """The union of the roles' fragments; a fragment that is not what it should be is named."""
    roots: list[str] = []
    exclude: set[str] = set()
    managed: set[str] = set()
    declared: list[str] = []
    reload: dict[str, str] = {}
    for name, data in fragments:
        if not isinstance(data, dict):
            raise ConfigError(f"{name}: not a JSON object")
        for key in ("roots", "exclude", "managed", "declared"):
            value = data.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) and v.startswith("/") for v in value):
                raise ConfigError(f"{name}: {key} must be a list of absolute paths")
        units = data.get("reload", {})
        if not isinstance(units, dict) or not all(isinstance(v, str) for v in units.values()):
            raise ConfigError(f"{name}: reload must map directories to unit names")
        roots += [os.path.normpath(p) for p in data.get("roots", []) if os.path.normpath(p) not in roots]
        exclude |= {os.path.normpath(p) for p in data.get("exclude", [])}
        managed |= {os.path.normpath(p) for p in data.get("managed", [])}
        declared += data.get("declared", [])
        reload.update({os.path.normpath(k): v for k, v in units.items()})
    return Config(tuple(roots), frozenset(exclude), frozenset(managed), tuple(declared), reload)


def parse_dpkg_list(text: str) -> Iterator[str]:
    """Paths of one /var/lib/dpkg/info/*.list (one a line; '/.' is the root)."""
    for line in text.splitlines():
        if line and line != "/.":
            yield line


def parse_diversions(text: str) -> Iterator[str]:
    """The diverted-to paths of /var/lib/dpkg/diversions (triplets: from, to, package): owned too."""
    lines = text.splitlines()
    for i in range(0, len(lines) - 2, 3):
        yield lines[i + 1]


def parse_ucf_registry(text: str) -> Iterator[str]:
    """The files ucf keeps for packages (php.ini is one): "package path" a line."""
    for line in text.splitlines():
        words = line.split()
        if len(words) == 2 and words[1].startswith("/"):
            yield words[1]


def declared_by(path: str, patterns: Iterable[str]) -> str | None:
    for pattern in patterns:
        if fnmatch.fnmatchcase(path, pattern):
            return pattern
    return None


def classify(entries: Iterable[Entry], owned: set[str] | frozenset[str], config: Config) -> dict[str, list[str]]:
    """Each entry's class (see the module's docstring); the lists are sorted paths."""
    known = owned | config.managed
    result: dict[str, list[str]] = {"owned": [], "managed": [], "linked": [], "declared": [], "added": []}
    for entry in entries:
        if entry.path in owned:
            kind = "owned"
        elif entry.path in config.managed:
            kind = "managed"
        elif entry.targets and any(target in known for target in entry.targets):
            kind = "linked"
        elif declared_by(entry.path, config.declared):
            kind = "declared"
        else:
            kind = "added"
        result[kind].append(entry.path)
    return {kind: sorted(paths) for kind, paths in result.items()}


def units_to_reload(moved: Iterable[str], reload: dict[str, str]) -> list[str]:
    """The units whose configuration directory lost a file."""
    units = {
        unit for path in moved for directory, unit in reload.items() if path.startswith(directory.rstrip("/") + "/")
    }
    return sorted(units)


# --------------------------------------------------------------------------- the host


def load_config(directory: Path) -> Config:
    fragments = []
    for path in sorted(directory.glob("*.json")):
        try:
            fragments.append((str(path), json.loads(path.read_text())))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: {exc}") from exc
    if not fragments:
        raise ConfigError(
            f"no code directories configured in {directory} (converge the wordpress or nginx_portal role)"
        )
    config = merge_config(fragments)
    if not config.roots:
        raise ConfigError(f"{directory}: no roots")
    return config


def owned_paths() -> set[str]:
    owned: set[str] = set()
    for name in glob.glob(str(DPKG_INFO / "*.list")):
        owned.update(parse_dpkg_list(Path(name).read_text(encoding="utf-8", errors="surrogateescape")))
    for path, parse in ((DPKG_DIVERSIONS, parse_diversions), (UCF_REGISTRY, parse_ucf_registry)):
        if path.exists():
            owned.update(parse(path.read_text(encoding="utf-8", errors="surrogateescape")))
    return owned


def walk(config: Config) -> Iterator[Entry]:
    """Every non-directory under the roots (links not followed), skipping the excluded directories."""
    for root in config.roots:
        if not os.path.isdir(root) or os.path.islink(root):
            continue
        for directory, dirs, files in os.walk(root):
            names = list(files)
            for name in list(dirs):
                path = os.path.join(directory, name)
                if path in config.exclude:
                    dirs.remove(name)
                elif os.path.islink(path):  # os.walk lists a link to a directory with the directories
                    dirs.remove(name)
                    names.append(name)
            for name in names:
                path = os.path.join(directory, name)
                if os.path.islink(path):
                    written = os.path.normpath(os.path.join(directory, os.readlink(path)))
                    yield Entry(path, (written, os.path.realpath(path)))
                else:
                    yield Entry(path)


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe(path: str) -> dict[str, Any]:
    """The evidence of one file as found: enough to judge it without opening the quarantine."""
    info = os.lstat(path)
    try:
        owner = pwd.getpwuid(info.st_uid).pw_name
    except KeyError:
        owner = str(info.st_uid)
    try:
        group = grp.getgrgid(info.st_gid).gr_name
    except KeyError:
        group = str(info.st_gid)
    record: dict[str, Any] = {
        "path": path,
        "size": info.st_size,
        "owner": owner,
        "group": group,
        "mode": f"{info.st_mode & 0o7777:04o}",
        "mtime": dt.datetime.fromtimestamp(info.st_mtime, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "ctime": dt.datetime.fromtimestamp(info.st_ctime, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if os.path.islink(path):
        record.update(type="link", target=os.readlink(path))
    elif os.path.isfile(path):
        with open(path, "rb") as handle:
            head = handle.read(FIRST_BYTES)
        record.update(
            type="file",
            sha256=sha256_file(path),
            first_bytes=head.decode("utf-8", "replace"),
            first_bytes_base64=base64.b64encode(head).decode("ascii"),
        )
    else:
        record.update(type="other")
    return record


class DpkgLock:
    """dpkg's locks, held while the lists are read and files moved: an install in progress would show
    its unpacked files as added; apt waits for us instead (a few seconds)."""

    def __init__(self) -> None:
        self.handles: list[Any] = []

    def __enter__(self) -> DpkgLock:
        for path in DPKG_LOCKS:
            if not path.exists():
                continue
            handle = open(path, "r+")  # held until __exit__
            try:
                fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                handle.close()
                self.__exit__()
                raise Busy(f"dpkg is busy ({path} locked): cannot tell which files packages own right now") from exc
            self.handles.append(handle)
        return self

    def __exit__(self, *_: object) -> None:
        for handle in self.handles:
            handle.close()
        self.handles = []


def scan(config: Config) -> dict[str, list[str]]:
    with DpkgLock():
        return classify(walk(config), owned_paths(), config)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def report_added(result: dict[str, list[str]], roots: Iterable[str]) -> None:
    for path in result["declared"]:
        log(f"DECLARED: {path}")
    for path in result["added"]:
        log(f"ADDED: {path}")
    counts = ", ".join(f"{len(paths)} {kind}" for kind, paths in result.items())
    where = " ".join(roots)
    if result["added"]:
        names = " ".join(result["added"][:10]) + (" ..." if len(result["added"]) > 10 else "")
        log(f"{len(result['added'])} added files in {where} no package, role or declaration accounts for: {names}")
    else:
        log(f"no added file in {where} ({counts})")


def command_check(config: Config) -> int:
    result = scan(config)
    report_added(result, config.roots)
    print(
        json.dumps(
            {
                "roots": list(config.roots),
                **{k: v for k, v in result.items() if k in ("declared", "added")},
                "counts": {k: len(v) for k, v in result.items()},
            },
            sort_keys=True,
        ),
        flush=True,
    )
    return EXIT_ADDED if result["added"] else EXIT_OK


def unique_directory(root: Path, moment: dt.datetime, suffix: str) -> Path:
    base = root / f"{moment.strftime('%Y%m%dT%H%M%SZ')}-{suffix}"
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def reload_units(units: list[str]) -> list[str]:
    """Reload each active unit (a failed reload keeps the running daemon as it was): the problems."""
    problems = []
    for unit in units:
        if subprocess.run(["systemctl", "is-active", "--quiet", unit], check=False).returncode != 0:
            log(f"{unit} is not running: nothing to reload")
            continue
        done = subprocess.run(["systemctl", "reload", unit], capture_output=True, text=True, check=False)
        log(f"reloaded {unit}" if done.returncode == 0 else f"reload of {unit} FAILED: {done.stderr.strip()}")
        if done.returncode != 0:
            problems.append(f"reload of {unit} failed")
    return problems


def command_quarantine(config: Config, evidence: str | None) -> int:
    started = dt.datetime.now(dt.UTC)
    with DpkgLock():
        result = classify(walk(config), owned_paths(), config)
        added = result["added"]
        if not added:
            report_added(result, config.roots)
            print(json.dumps({"ok": True, "evidence": "", "quarantined": [], "problems": []}), flush=True)
            return EXIT_OK
        if evidence:
            directory = Path(evidence)
        else:
            EVIDENCE_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
            EVIDENCE_DIR.chmod(0o700)
            directory = unique_directory(EVIDENCE_DIR, started, "code")
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        directory.chmod(0o700)
        records, moved, problems = [], [], []
        for path in added:
            record = describe(path)
            target = directory / "quarantine" / path.lstrip("/")
            record["quarantined_to"] = str(target)
            records.append(record)
            # The record is written before each move, so a killed run still says where a file went.
            write_record(directory, started, records)
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                shutil.move(path, target)
            except OSError as exc:
                problems.append(f"{path}: not moved: {exc}")
                record["quarantined_to"] = ""
                continue
            moved.append(path)
            log(f"QUARANTINED: {path} -> {target} (sha256 {record.get('sha256', '-')}, {record['owner']})")
        write_record(directory, started, records)
    problems += reload_units(units_to_reload(moved, config.reload))
    after = scan(config)
    problems += [f"still added: {path}" for path in after["added"]]
    for problem in problems:
        log(f"PROBLEM: {problem}")
    log(f"quarantined {len(moved)} of {len(added)} added files into {directory}")
    summary = {"ok": not problems, "evidence": str(directory), "quarantined": moved, "problems": problems}
    print(json.dumps(summary, sort_keys=True), flush=True)
    return EXIT_OK if not problems else EXIT_ADDED


def write_record(directory: Path, started: dt.datetime, records: list[dict[str, Any]]) -> None:
    path = directory / "quarantine.json"
    taken = started.strftime("%Y-%m-%dT%H:%M:%SZ")
    path.write_text(json.dumps({"taken": taken, "host": os.uname().nodename, "files": records}, indent=2) + "\n")
    path.chmod(0o600)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="portalops-code-files", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config-dir", default=str(CONFIG_DIR), help="the roles' fragments (default %(default)s)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="list added files; exit 1 when there are any")
    quarantine = sub.add_parser("quarantine", help="move added files into an evidence directory")
    quarantine.add_argument("--evidence", help=f"evidence directory (default: {EVIDENCE_DIR}/<UTC time>-code)")
    args = parser.parse_args(argv)
    try:
        config = load_config(Path(args.config_dir))
        if args.command == "check":
            return command_check(config)
        return command_quarantine(config, args.evidence)
    except ConfigError as exc:
        log(f"portalops-code-files: {exc}")
        return EXIT_CONFIG
    except Busy as exc:
        log(f"portalops-code-files: {exc}")
        return EXIT_UNKNOWN


if __name__ == "__main__":
    sys.exit(main())
