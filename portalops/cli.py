"""The ``portalops`` command: a thin layer over the library.

This is the only module that turns exceptions into exit codes and prints
them; see :class:`portalops.errors.ExitCode` for the codes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from portalops import __version__
from portalops.audit.run import run_audit
from portalops.errors import ExitCode, PortalopsError
from portalops.inventory import REPO_ROOT, load_inventory
from portalops.lab.config import lab_config
from portalops.lab.image import build_image
from portalops.lab.lab import Lab, format_status
from portalops.lab.podman import Podman


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="portalops", description="Operations suite for the county web portal.")
    parser.add_argument("--version", action="version", version=f"portalops {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    lab = commands.add_parser("lab", help="the lab of Debian 12 hosts on this machine")
    lab_cmds = lab.add_subparsers(dest="lab_command", required=True)
    for name, text in (
        ("up", "build the image if needed and bring every lab host up (idempotent)"),
        ("down", "remove the lab's containers and network, nothing else"),
        ("status", "each host, its address and its systemd state"),
        ("ssh", "open an SSH session to a lab host as the deploy user"),
        ("image", "build the lab image (only when its recipe changed, unless --rebuild)"),
    ):
        sub = lab_cmds.add_parser(name, help=text, description=text)
        sub.add_argument("-i", "--inventory", help="lab inventory (default: inventory/lab)")
        if name == "up":
            sub.add_argument("--rebuild-image", action="store_true", help="rebuild the image first")
        if name == "image":
            sub.add_argument("--rebuild", action="store_true", help="build even if the image exists")
            sub.add_argument("--tag", help="import under this tag instead of the recipe's")
        if name == "ssh":
            sub.add_argument("host", help="lab host name, e.g. web1")
            sub.add_argument("remote_command", nargs=argparse.REMAINDER, help="command to run instead of a shell")
    audit = commands.add_parser(
        "audit",
        help="Lynis on every host, ssh-audit on every sshd, testssl.sh on the portal; report under reports/audit/",
    )
    audit.add_argument("-i", "--inventory", help="inventory (default: inventory/lab)")
    audit.add_argument("--min-lynis", type=int, default=80, help="lowest acceptable Lynis hardening index")
    audit.add_argument("--out", default=str(REPO_ROOT / "reports" / "audit"), help="report directory")
    return parser


def run_audit_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    report, path = run_audit(
        load_inventory(args.inventory), Path(args.out), args.min_lynis, lambda line: print(line, file=err, flush=True)
    )
    print(path.read_text(), file=out)
    problems = report.problems()
    print(f"audit: {'PASS' if not problems else 'FAIL'}; report {path} (+ .json)", file=err)
    return ExitCode.OK if not problems else ExitCode.FAILED


def run_lab(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    def progress(line: str) -> None:
        print(line, file=err, flush=True)

    Podman.preflight()  # root and podman first: nothing else works without them
    lab = Lab(lab_config(load_inventory(args.inventory)), progress)
    if args.lab_command == "up":
        lab.up(rebuild_image=args.rebuild_image)
        print(format_status(lab.status()), file=out)
    elif args.lab_command == "down":
        lab.down()
    elif args.lab_command == "status":
        reports = lab.status()
        print(format_status(reports), file=out)
        return ExitCode.OK if all(r.good for r in reports) else ExitCode.FAILED
    elif args.lab_command == "ssh":
        command = [c for c in args.remote_command if c != "--"] if args.remote_command else []
        lab.ssh(args.host, command)
    elif args.lab_command == "image":
        print(build_image(lab.podman, lab.config.state_dir, progress, force=args.rebuild, tag=args.tag), file=out)
    return ExitCode.OK


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "lab":
            return run_lab(args, out, err)
        if args.command == "audit":
            return run_audit_command(args, out, err)
    except PortalopsError as exc:
        print(f"portalops: {exc.message}", file=err)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("portalops: interrupted", file=err)
        return int(ExitCode.INTERRUPTED)
    return int(ExitCode.BAD_INPUT)


if __name__ == "__main__":
    sys.exit(main())
