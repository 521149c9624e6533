#!/usr/bin/python3
"""Print one JSON object describing this host for the CMDB (playbooks/cmdb.yml ships and runs it).

Standard library only (Debian 12's Python 3.11); it reads and changes nothing else: dpkg-query for
package versions, /proc/net/tcp{,6} for listening sockets (mapped to processes through /proc/*/fd
when readable), openssl for the certificates under the given directories, /etc/os-release and
uname. Each part that fails is named under "errors" instead of stopping the others.

    cmdb_collect.py --packages 'nginx*,restic' --cert-dir /etc/nginx/tls [--cert-dir ...]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's st column
CERT_SUFFIXES = (".crt", ".pem")


def parse_dpkg(text: str) -> dict[str, str]:
    """Installed packages from ``dpkg-query -W -f '${Package}\\t${Version}\\t${db:Status-Abbrev}\\n'``."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[2].startswith("ii") and parts[1]:
            found[parts[0]] = parts[1]
    return found


def hex_address(text: str, family: int) -> str:
    """The address of a /proc/net/tcp{,6} field: 32-bit words in host (little-endian) order."""
    raw = bytes.fromhex(text)
    swapped = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return socket.inet_ntop(family, swapped)


def parse_proc_net_tcp(text: str, family: int) -> list[tuple[str, int, str]]:
    """(address, port, inode) of each listening socket in a /proc/net/tcp{,6} table."""
    found = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != LISTEN:
            continue
        address, port = fields[1].split(":")
        found.append((hex_address(address, family), int(port, 16), fields[9]))
    return found


def socket_owners(proc: Path) -> dict[str, str]:
    """Socket inode -> process name, for every process whose fds we may read."""
    owners: dict[str, str] = {}
    for pid in proc.iterdir():
        if not pid.name.isdigit():
            continue
        try:
            name = (pid / "comm").read_text().strip()
            for fd in (pid / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    owners.setdefault(target[8:-1], name)
        except OSError:
            continue  # gone, or not ours to read
    return owners


def listening(proc: Path) -> list[dict[str, Any]]:
    owners = socket_owners(proc)
    found = []
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        path = proc / "net" / table
        if not path.exists():
            continue
        for address, port, inode in parse_proc_net_tcp(path.read_text(), family):
            found.append({"proto": table, "address": address, "port": port, "process": owners.get(inode, "")})
    unique = {(s["proto"], s["address"], s["port"]): s for s in found}
    return sorted(unique.values(), key=lambda s: (s["port"], s["proto"], s["address"]))


def parse_openssl(text: str) -> dict[str, str]:
    """``openssl x509 -noout -subject -enddate -fingerprint -sha256 -dateopt iso_8601`` lines."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        if key == "notAfter":
            found["not_after"] = value.strip()
        elif key == "subject":
            found["subject"] = value.strip()
        elif key.endswith("Fingerprint"):
            found["sha256"] = value.strip()
    return found


def certificates(directories: list[str]) -> tuple[list[dict[str, str]], list[str]]:
    found: list[dict[str, str]] = []
    errors: list[str] = []
    for directory in directories:
        base = Path(directory)
        if not base.is_dir():
            continue  # this host does not run the role that deploys it
        for path in sorted(p for p in base.rglob("*") if p.suffix in CERT_SUFFIXES and p.is_file()):
            argv = ["openssl", "x509", "-noout", "-subject", "-enddate", "-fingerprint", "-sha256"]
            result = subprocess.run(
                [*argv, "-dateopt", "iso_8601", "-in", str(path)],
                capture_output=True,
                text=True,
                check=False,
                timeout=30,
            )
            parsed = parse_openssl(result.stdout)
            if result.returncode != 0 or "not_after" not in parsed:
                errors.append(f"certificate {path}: openssl exit {result.returncode}: {result.stderr.strip()[-200:]}")
                continue
            found.append({"path": str(path), **parsed})
    return found, errors


def parse_os_release(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.startswith("#"):
            found[key.strip()] = value.strip().strip('"')
    return found


def packages(patterns: list[str]) -> tuple[dict[str, str], list[str]]:
    if not patterns:
        return {}, []
    # dpkg-query exits 1 when a pattern matches nothing; the rest is still printed.
    result = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Package}\t${Version}\t${db:Status-Abbrev}\n", *patterns],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    errors = [] if result.returncode in (0, 1) else [f"dpkg-query exit {result.returncode}: {result.stderr.strip()}"]
    return parse_dpkg(result.stdout), errors


def collect(package_patterns: list[str], cert_dirs: list[str], proc: Path = Path("/proc")) -> dict[str, Any]:
    errors: list[str] = []
    uname = os.uname()
    try:
        release = parse_os_release(Path("/etc/os-release").read_text())
    except OSError as exc:
        release, errors = {}, [f"/etc/os-release: {exc}"]
    versions, package_errors = packages(package_patterns)
    try:
        ports = listening(proc)
    except OSError as exc:
        ports = []
        errors.append(f"listening sockets: {exc}")
    certs, cert_errors = certificates(cert_dirs)
    return {
        "hostname": socket.gethostname(),
        "os": {
            "name": release.get("PRETTY_NAME", ""),
            "id": release.get("ID", ""),
            "version_id": release.get("VERSION_ID", ""),
            "kernel": uname.release,
            "machine": uname.machine,
        },
        "packages": versions,
        "listening": ports,
        "certificates": certs,
        "errors": errors + package_errors + cert_errors,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="describe this host for the CMDB, as one JSON object")
    parser.add_argument("--packages", default="", help="comma-separated dpkg-query patterns")
    parser.add_argument("--cert-dir", action="append", default=[], help="directory of certificates (repeatable)")
    args = parser.parse_args(argv)
    patterns = [p for p in args.packages.split(",") if p]
    print(json.dumps(collect(patterns, args.cert_dir), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
