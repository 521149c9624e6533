"""portalops-host: what the runbooks run on a host, as commands instead of Python programs in strings.

    portalops-host check backup-age --hours H [--config FILE]
        every portalops-backup job of this host succeeded in its last run, within H hours
    portalops-host check certificates --days D
        every certificate nginx serves (nginx -T) is valid D more days
    portalops-host check edge-content
        each site nginx serves answers https://127.0.0.1/ with a whole WordPress page
    portalops-host check fpm-saturation --minutes M --pools GLOB --log FILE
        no php-fpm pool runs its pm.max_children, nor logged reaching it in the last M minutes
    portalops-host check slow-queries --log FILE
        MariaDB's slow log holds no query of the last hour
    portalops-host check restore-closed
        no restore-database left MariaDB closed to the network (75: a running restore's, busy)
    portalops-host mariadb reopen-stale
        a stale restore drop-in removed and MariaDB restarted on the network (75: a running restore's, left)
    portalops-host backup status-dir [--config FILE]
        the directory portalops-backup keeps its status in
    portalops-host visits --log FILE --start ISO --end ISO --domains JSON
        visits and unique visitors per site and Beijing day in the access log and its rotations (JSON)

Exit codes: 0 as wanted, 1 not (visits: a log it cannot read), 2 bad arguments, 75 cannot tell (or busy).
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path

from portalops_host.certificates import command_certificates
from portalops_host.checks import command_backup_age, command_status_dir
from portalops_host.closed import command_reopen_stale, command_restore_closed
from portalops_host.config import CONFIG
from portalops_host.edge import command_edge_content
from portalops_host.log import Log
from portalops_host.phpfpm import command_fpm_saturation
from portalops_host.slowlog import command_slow_queries
from portalops_host.visits import command_visits


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="portalops-host", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="a check a runbook runs on this host")
    checks = check.add_subparsers(dest="check", required=True)
    age = checks.add_parser("backup-age", help="every backup job succeeded in its last run, within --hours")
    age.add_argument("--hours", type=float, required=True, help="the oldest a last success may be")
    age.add_argument("--config", default=str(CONFIG), help="portalops-backup's configuration (default %(default)s)")
    certificates = checks.add_parser("certificates", help="every certificate nginx serves is valid --days more")
    certificates.add_argument("--days", type=int, required=True, help="the fewest days a certificate may have left")
    checks.add_parser("edge-content", help="each site's front page through this edge is a whole page")
    fpm = checks.add_parser("fpm-saturation", help="no php-fpm pool at pm.max_children, nor lately")
    fpm.add_argument("--minutes", type=int, required=True, help="how far back the log counts")
    fpm.add_argument("--pools", required=True, help="the pools' files (a glob)")
    fpm.add_argument("--log", required=True, help="php-fpm's log")
    slow = checks.add_parser("slow-queries", help="MariaDB's slow log holds no query of the last hour")
    slow.add_argument("--log", required=True, help="the slow query log")
    checks.add_parser("restore-closed", help="no restore-database left MariaDB closed to the network")
    server = commands.add_parser("mariadb", help="MariaDB on this host")
    server_acts = server.add_subparsers(dest="act", required=True)
    server_acts.add_parser("reopen-stale", help="a stale restore drop-in removed, MariaDB restarted on the network")
    backup = commands.add_parser("backup", help="what portalops-backup's configuration says")
    answers = backup.add_subparsers(dest="answer", required=True)
    status_dir = answers.add_parser("status-dir", help="the directory portalops-backup keeps its status in")
    status_dir.add_argument(
        "--config", default=str(CONFIG), help="portalops-backup's configuration (default %(default)s)"
    )
    visits = commands.add_parser("visits", help="visits per site and day from the edge's access log (JSON)")
    visits.add_argument("--log", required=True, help="the access log; its rotations are read too")
    visits.add_argument("--start", required=True, type=datetime.fromisoformat, help="the period's start")
    visits.add_argument("--end", required=True, type=datetime.fromisoformat, help="the period's end (excluded)")
    visits.add_argument("--domains", required=True, type=json.loads, help="domain -> site, a JSON object")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "backup":
        return command_status_dir(Path(args.config))
    if args.command == "mariadb":
        return command_reopen_stale(Log(None))
    if args.command == "visits":
        return command_visits(args.log, args.start, args.end, args.domains)
    if args.check == "backup-age":
        return command_backup_age(Path(args.config), args.hours)
    if args.check == "certificates":
        return command_certificates(args.days)
    if args.check == "edge-content":
        return command_edge_content()
    if args.check == "restore-closed":
        return command_restore_closed()
    if args.check == "fpm-saturation":
        return command_fpm_saturation(args.pools, Path(args.log), args.minutes)
    return command_slow_queries(Path(args.log))
