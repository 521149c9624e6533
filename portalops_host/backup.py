"""portalops-backup: the host-side backup wrapper (Python standard library only).

Runs the jobs in /etc/portalops/backup.json through restic (Debian 12: 0.14) with
``--json``; every snapshot carries a manifest (database row counts and CHECKSUM TABLE
values, or the sha256 of every file) that a restore drill verifies against.

    portalops-backup run [--job NAME]    back up (all jobs or the named ones), then forget
    portalops-backup maintain            prune, then check a rolling subset of the data
    portalops-backup check [--subset S]  restic check (--read-data-subset S)
    portalops-backup copy                (backup host) copy every source repository into its second copy
    portalops-backup snapshots           the repository's snapshots as JSON
    portalops-backup status              the last run, mass-loss flags and pinned snapshots
    portalops-backup release SNAPSHOT    unpin a snapshot kept after a mass loss (a person's act)
    portalops-backup restore-database [--snapshot ID | --logical] [--until TIME | --until-position FILE:POS]
                                      [--deadline S] --yes
                                         MariaDB from the newest physical backup (the dump if that
                                         fails), verified against its manifest, then the binary log
                                         replayed up to just before the accident; prints the RPO. The
                                         dump loads into new databases, swapped in once verified; the
                                         old tables stay in evidence databases
    portalops-backup restore-database --discard-evidence ID
                                         drop the evidence databases of logical restore ID
    portalops-backup verify-database [--snapshot ID]   live databases identical to a manifest?
    portalops-backup check-database      lost or corrupted? (changes since the backup are fine, mass
                                         loss of published content, users or options is not)
    portalops-backup verify-files JOB [--snapshot ID] [--json]
                                         a files job's live tree against a snapshot's manifest:
                                         changed, missing and added files (exit 0: none)
    portalops-backup restore-files JOB [--snapshot ID] [--evidence DIR] --yes
                                         keep evidence, put changed and missing files back from the
                                         snapshot, move added ones into the evidence, verify again

Every run writes a JSON status file and Prometheus textfile metrics, success or not.
Exit codes: 0 success, 1 a job failed, 2 bad configuration or arguments, 3 environment
(restic missing, another run holds the lock), 75 unknown (check-database: the server cannot be
read right now, so whether anything is lost cannot be told).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
from pathlib import Path

from portalops_host.config import CONFIG, load_config
from portalops_host.errors import (
    EXIT_BAD_INPUT,
    EXIT_ENVIRONMENT,
    EXIT_OK,
    ConfigError,
    JobError,
    LockError,
    Terminated,
    failure,
    terminate,
)
from portalops_host.files import EVIDENCE_DIR
from portalops_host.files_restore import command_restore_files, command_verify_files
from portalops_host.jobs import command_run
from portalops_host.log import Log
from portalops_host.logical import command_discard_evidence
from portalops_host.maintenance import command_check, command_copy
from portalops_host.pins import command_release, command_status
from portalops_host.restic import run_restic
from portalops_host.restore import (
    RESTORE_TIMEOUT,
    command_check_database,
    command_restore_database,
    command_verify_database,
)
from portalops_host.status import run_lock
from portalops_host.times import until_time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="portalops-backup", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(CONFIG), help="configuration file (default %(default)s)")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="back up, then apply the retention policy")
    run.add_argument("--job", action="append", default=[], help="only this job (repeatable)")
    sub.add_parser("maintain", help="prune, then check a rolling subset of the data")
    check = sub.add_parser("check", help="restic check")
    check.add_argument("--subset", help="--read-data-subset value (default: this week's rolling part)")
    sub.add_parser("copy", help="copy the source repositories into their second copies (backup host)")
    sub.add_parser("snapshots", help="list snapshots as JSON")
    sub.add_parser("status", help="the last run, mass-loss flags and pinned snapshots")
    release = sub.add_parser("release", help="remove the pin of a snapshot kept after a mass loss (a person's act)")
    release.add_argument("snapshot", help="the pinned snapshot (id or prefix, or its id before it was pinned)")
    restore = sub.add_parser("restore-database", help="restore MariaDB from the newest database backup, verified")
    restore.add_argument("--snapshot", help="this snapshot (id or prefix) of a database job, no fallback")
    restore.add_argument("--yes", action="store_true", help="really replace the data (without it: refused)")
    restore.add_argument("--logical", action="store_true", help="the newest dump only (no physical backup)")
    restore.add_argument(
        "--deadline",
        type=float,
        help=f"end the whole restore, cleanly, after this many seconds (default {RESTORE_TIMEOUT:.0f})",
    )
    restore.add_argument(
        "--discard-evidence",
        metavar="ID",
        help="drop the evidence databases the logical restore ID kept (ID as it printed it); nothing else",
    )
    until = restore.add_mutually_exclusive_group()
    until.add_argument(
        "--until",
        type=until_time,
        help="replay the binary log up to this time (ISO 8601; local time without a zone) instead of the accident",
    )
    until.add_argument("--until-position", help="replay the binary log up to FILE:POSITION (not including it)")
    verify = sub.add_parser("verify-database", help="the live databases against a snapshot's manifest")
    verify.add_argument("--snapshot", help="this snapshot (default: the newest database backup's manifest)")
    sub.add_parser("check-database", help="lost or corrupted? (changes since the backup are fine)")
    verify_files = sub.add_parser("verify-files", help="a files job's live tree against a snapshot's manifest")
    verify_files.add_argument("job", help="a files job of this host (e.g. cms-files)")
    verify_files.add_argument("--snapshot", help="this snapshot (id or prefix; default: the job's newest)")
    verify_files.add_argument("--json", action="store_true", help="one JSON object instead of lines")
    restore_files = sub.add_parser("restore-files", help="keep evidence, restore changed and missing files")
    restore_files.add_argument("job", help="a files job of this host (e.g. cms-files)")
    restore_files.add_argument("--snapshot", help="this snapshot (id or prefix; default: the job's newest)")
    restore_files.add_argument("--evidence", help=f"evidence directory (default: {EVIDENCE_DIR}/<UTC time>)")
    restore_files.add_argument("--yes", action="store_true", help="really change the files (without it: refused)")
    args = parser.parse_args(argv)
    try:
        config = load_config(Path(args.config))
    except ConfigError as exc:
        print(f"portalops-backup: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if shutil.which(config.get("restic", "restic")) is None:
        print("portalops-backup: restic is not installed", file=sys.stderr)
        return EXIT_ENVIRONMENT
    os.umask(0o077)
    log = Log(config.get("log_file"))
    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        # Read-only: they run while a backup holds the lock (a health check must not fail for that).
        if args.command == "check-database":
            return command_check_database(config, log)
        if args.command == "verify-database":
            return command_verify_database(config, args.snapshot, log)
        if args.command == "verify-files":
            return command_verify_files(config, args.job, args.snapshot, args.json, log)
        if args.command == "status":
            return command_status(config)
        with run_lock(config):
            if args.command == "restore-files":
                return command_restore_files(config, args.job, args.snapshot, args.evidence, args.yes, log)
            if args.command == "restore-database" and args.discard_evidence is not None:
                return command_discard_evidence(config, args.discard_evidence, log)
            if args.command == "restore-database":
                options = {name: getattr(args, name) for name in ("until", "until_position", "logical", "deadline")}
                return command_restore_database(config, args.snapshot, args.yes, log, **options)
            if args.command == "run":
                return command_run(config, args.job, log)
            if args.command == "maintain":
                return command_check(config, None, log, prune=True)
            if args.command == "check":
                return command_check(config, args.subset, log, prune=False)
            if args.command == "copy":
                return command_copy(config, log)
            if args.command == "release":
                return command_release(config, args.snapshot, log)
            print(run_restic(config, "snapshots", "--json").stdout)
            return EXIT_OK
    except (LockError, ConfigError, JobError, Terminated) as exc:
        code, said = failure(exc)
        print(f"portalops-backup: {said}", file=sys.stderr)
        return code
    finally:
        signal.signal(signal.SIGTERM, previous)
