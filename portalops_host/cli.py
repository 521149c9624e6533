"""portalops-host: what the runbooks run on a host, as commands instead of Python programs in strings.

    portalops-host check backup-age --hours H [--config FILE]
        every portalops-backup job of this host succeeded in its last run, within H hours

Exit codes: 0 as wanted, 1 not, 2 bad arguments.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from portalops_host.checks import command_backup_age
from portalops_host.config import CONFIG


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="portalops-host", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="a check a runbook runs on this host")
    checks = check.add_subparsers(dest="check", required=True)
    age = checks.add_parser("backup-age", help="every backup job succeeded in its last run, within --hours")
    age.add_argument("--hours", type=float, required=True, help="the oldest a last success may be")
    age.add_argument("--config", default=str(CONFIG), help="portalops-backup's configuration (default %(default)s)")
    args = parser.parse_args(argv)
    return command_backup_age(Path(args.config), args.hours)
