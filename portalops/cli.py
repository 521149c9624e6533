"""The ``portalops`` command: a thin layer over the library.

This is the only module that turns exceptions into exit codes and prints
them; see :class:`portalops.errors.ExitCode` for the codes.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from portalops import __version__, faultdrill
from portalops.audit.run import run_audit
from portalops.cmdb import diff as cmdb_diff
from portalops.cmdb import markdown as cmdb_markdown
from portalops.cmdb import run as cmdb_run
from portalops.drillwatch import ResponderWatch
from portalops.errors import BadInput, EnvironmentProblem, ExitCode, PortalopsError
from portalops.inspect import content
from portalops.inspect import report as inspection
from portalops.inventory import LAB_INVENTORY, REPO_ROOT, load_inventory
from portalops.lab import clone
from portalops.lab.config import lab_config
from portalops.lab.image import bake_hosts_image, build_image
from portalops.lab.lab import Lab, format_status
from portalops.lab.podman import Podman
from portalops.monitoring import deadman as monitoring_deadman
from portalops.monitoring import endpoints as monitoring_endpoints
from portalops.monitoring import status as monitoring_status
from portalops.monitoring.api import Alertmanager, Prometheus
from portalops.probe import PROBE_VARS, format_results, probe_inventory, to_json, within
from portalops.resolve import resolve_together
from portalops.responder.config import load_config
from portalops.runbook import desk, lifecycle, registry, tiercheck
from portalops.runbook.engine import Options
from portalops.runbook.grading import WARN_FRACTION, grade_key, grade_label, suggest
from portalops.runbook.journal import open_incident, start_of, utc_now
from portalops.runbook.levels import Level
from portalops.runbook.live import INCIDENTS_DIR, RUN_VARS, run_live
from portalops.runbook.outcome import RunbookExit
from portalops.runbook.overall import load_inputs
from portalops.runbook.planning import context_for, describe, make_plan
from portalops.runbook.regreport import draft
from portalops.runbook.reporting import (
    STAGES,
    describe_incident,
    due_warnings,
    notifier_for,
    open_graded,
    record_grade,
    record_sent,
    warn,
)
from portalops.runbook.workcal import local_text
from portalops.service import annual, annual_render, changes, kb, problems
from portalops.service import report as service_report
from portalops.service import suggest as repeats
from portalops.service.pdf import write_pdf
from portalops.service.period import parse_period
from portalops.service.render import markdown as report_markdown
from portalops.service.render import to_html as report_html
from portalops.vault import use_vault_ids


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
        ("image", "build the lab images, bare and the hosts' (only when their recipes changed, unless --rebuild)"),
        ("snapshot", "commit every lab host, as it is now, to an image that `lab clone` starts from"),
        ("clone", "a second lab from the snapshot, in its own network namespace, with a copy of the repository"),
    ):
        sub = lab_cmds.add_parser(name, help=text, description=text)
        sub.add_argument("-i", "--inventory", help="lab inventory (default: inventory/lab)")
        if name == "up":
            sub.add_argument("--rebuild-image", action="store_true", help="rebuild the images first")
            sub.add_argument(
                "--bare-image",
                action="store_true",
                help="hosts that are created start from the bare Debian image, without the packages every host gets",
            )
            sub.add_argument(
                "--from-snapshot", action="store_true", help="hosts that are created start from `lab snapshot`"
            )
        if name == "snapshot":
            sub.add_argument("--remove", action="store_true", help="remove the snapshot's images instead")
        if name == "clone":
            sub.add_argument("dir", type=Path, help="where the copy of the repository goes (outside the repository)")
            sub.add_argument("--remove", action="store_true", help="remove the clone at DIR instead")
            sub.add_argument(
                "run_command",
                nargs=argparse.REMAINDER,
                help="-- COMMAND: run COMMAND in the clone (in DIR, in its namespace), then remove the clone;"
                " the exit status is COMMAND's",
            )
        if name == "image":
            sub.add_argument("--rebuild", action="store_true", help="build even if the image exists")
            sub.add_argument("--tag", help="import under this tag instead of the recipe's")
        if name == "ssh":
            sub.add_argument("host", help="lab host name, e.g. web1")
            sub.add_argument("remote_command", nargs=argparse.REMAINDER, help="command to run instead of a shell")
    nightly = commands.add_parser(
        "nightly",
        help="back up every host, restore the newest backups on the drill host, verify; reports/nightly/ (cron)",
        epilog="exit codes: 0 backups and drill succeeded; 1 a backup or the drill failed (reports/nightly/<UTC>.md);"
        " 2 bad input; 3 environment (another nightly run holds the lock, ansible-playbook missing)",
    )
    nightly.add_argument("-i", "--inventory", help="inventory (default: ansible.cfg's, the lab)")
    add_vault_id(nightly)
    audit = commands.add_parser(
        "audit",
        help="Lynis on every host, ssh-audit on every sshd, testssl.sh on the portal; report under reports/audit/",
    )
    audit.add_argument("-i", "--inventory", help="inventory (default: inventory/lab)")
    audit.add_argument("--min-lynis", type=int, default=80, help="lowest acceptable Lynis hardening index")
    audit.add_argument("--out", default=str(REPO_ROOT / "reports" / "audit"), help="report directory")
    add_vault_id(audit)
    add_runbook_parser(commands)
    add_incident_parser(commands)
    add_problem_parser(commands)
    add_change_parser(commands)
    add_kb_parser(commands)
    add_drill_parser(commands)
    tier = commands.add_parser(
        "tier-check",
        help="a check on the hosts of a pattern: 0 all sound, 1 one broken, 75 one could not tell (runbook steps)",
        epilog="exit codes: 0 every host of the pattern says sound (exit 0); 1 one says broken (any other exit);"
        " 75 none says broken but one could not tell (exit 75, a timeout, unreachable) or no host answered",
    )
    tier.add_argument("pattern", help="Ansible host pattern, e.g. db")
    tier.add_argument("check", help="the command each host runs, one argument (quoted)")
    tier.add_argument("-i", "--inventory", help="inventory (default: inventory/lab)")
    tier.add_argument("--timeout", type=int, default=240, help="seconds the command may run on a host")
    probe = commands.add_parser("probe", help="fetch every portal site from outside; status and per-phase timings")
    probe.add_argument("-i", "--inventory", help="inventory (default: inventory/lab)")
    probe.add_argument("--json", action="store_true", help="JSON instead of a table")
    probe.add_argument("--cafile", action="append", default=[], help="also trust this CA (repeatable)")
    probe.add_argument("--timeout", type=float, default=10.0, help="seconds per site and phase")
    add_vault_id(probe)
    probe_check = commands.add_parser(
        "probe-check",
        help="judge `portalops probe --json` on stdin: every site up, each within --within seconds (runbook steps)",
        epilog="exit codes: 0 every site answered in time; 1 one failed or was slow, no result or no site",
    )
    probe_check.add_argument("--within", type=float, required=True, help="the longest a site's total may take, seconds")
    responder = commands.add_parser(
        "responder",
        help="Alertmanager's webhook receiver: opens the incident, notifies, starts the runbook (a service)",
        description="Serve POST /alerts (Alertmanager webhook, bearer token) and GET /healthz until stopped;"
        " contrib/portalops-responder.yml is an example configuration.",
    )
    responder.add_argument("--listen", help="HOST:PORT (default: the config's, else 127.0.0.1:9099)")
    responder.add_argument("--config", type=Path, help="responder configuration (YAML)")
    add_vault_id(responder)
    add_inspect_parser(commands)
    add_content_parser(commands)
    add_monitoring_parsers(commands)
    add_report_parser(commands)
    add_cmdb_parser(commands)
    return parser


def add_report_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = commands.add_parser(
        "report",
        help="the service report of a month, quarter or year: availability, incidents, problems, patches, backups,"
        " drills, audit (JSON, Markdown, HTML and PDF under reports/service/); or with --annual the year's"
        " 政府网站工作年度报表 of each site",
        description="Built from what portalops records: the incident journals and problems under incidents/, the"
        " reports under reports/ and Prometheus' HTTP API (found as `portalops status` finds it). A source with"
        " nothing for the period is said to be so; no figure is made up. The PDF is the HTML printed by Debian's"
        " weasyprint; without it the other formats are still written, and stderr says so. --annual also reads"
        " each site's REST API through the edge and the web hosts' access logs over SSH.",
        epilog="exit codes: 0 written; 2 bad input (a period like 2026-13 or 2026-Q5, --annual not a year)",
    )
    which = report.add_mutually_exclusive_group(required=True)
    which.add_argument("--period", help="a month (2026-11), a quarter (2026-Q4) or a year (2026)")
    which.add_argument(
        "--annual",
        metavar="YEAR",
        help="the year's form named by --form instead: 政府网站工作年度报表 of each site (<year>-gov-website-<site>.*)",
    )
    report.add_argument(
        "--form",
        choices=(annual.FORM,),
        default=annual.FORM,
        help="with --annual: gov-website, 国办函〔2018〕12号's form, filled from the sites, the edge's logs and the"  # noqa: RUF001
        " records; what only people know is marked 由人工填写 / to be filled by staff",
    )
    report.add_argument("--site", default="", help="with --annual: this site of portal_sites only")
    report.add_argument("--json", action="store_true", help="with --annual: print the JSON document on stdout")
    report.add_argument("--lang", choices=("zh", "en"), default="zh", help="language of the Markdown and HTML")
    report.add_argument("-i", "--inventory", help="inventory (default: inventory/lab): the sites and the monitoring")
    report.add_argument("--prometheus", default="", metavar="URL", help="Prometheus' URL (default: the inventory's)")
    report.add_argument("--timeout", type=float, default=10.0, help="seconds per Prometheus query (default 10)")
    report.add_argument("--incidents", type=Path, default=INCIDENTS_DIR, help="journal directory (default: incidents/)")
    report.add_argument("--reports", type=Path, default=REPO_ROOT / "reports", help="where the other reports are")
    report.add_argument(
        "--out", type=Path, default=REPO_ROOT / "reports" / "service", help="report directory (<period>.json ...)"
    )
    add_vault_id(report)


def add_cmdb_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmdb = commands.add_parser(
        "cmdb",
        help="the CMDB from the inventory and the hosts (playbooks/cmdb.yml); dated snapshots under reports/cmdb/",
        epilog="exit codes: 0 every host answered; 1 a host did not answer (it is listed as unreachable);"
        " 2 bad input (e.g. no snapshot of the --diff date)",
    )
    cmdb.add_argument("-i", "--inventory", help="inventory (default: inventory/lab)")
    shown = cmdb.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true", help="print the document (or the diff) as JSON")
    shown.add_argument("--md", action="store_true", help="print the document (or the diff) as Markdown")
    cmdb.add_argument(
        "--diff",
        metavar="DATE",
        help="what changed since the snapshot of DATE (YYYY-MM-DD); writes no snapshot, so the baseline stays",
    )
    cmdb.add_argument(
        "--out", default=str(REPO_ROOT / "reports" / "cmdb"), help="snapshot directory (<date>.json, .md)"
    )
    add_vault_id(cmdb)


def add_inspect_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    inspect = commands.add_parser(
        "inspect",
        help="the government-website inspection self-check: freshness, blank sections, serious errors, links",
        epilog="exit codes: 0 no veto item failed; 1 a veto item failed; 75 cannot tell (a site unreachable,"
        " its REST API unreadable, Prometheus not answering); 2 bad input",
    )
    inspect.add_argument("-i", "--inventory", help="inventory (default: inventory/lab)")
    inspect.add_argument("--site", default="", help="only this site of portal_sites")
    inspect.add_argument("--json", action="store_true", help="JSON instead of the Markdown table")
    inspect.add_argument("--depth", type=int, default=2, help="link levels below the home page to check (default 2)")
    inspect.add_argument("--max-requests", type=int, default=300, help="request budget per site (default 300)")
    inspect.add_argument("--time-budget", type=float, default=120.0, help="seconds per site for the crawl")
    inspect.add_argument("--cafile", action="append", default=[], help="also trust this CA (repeatable)")
    inspect.add_argument(
        "--prometheus",
        default="",
        metavar="URL",
        help="Prometheus' URL for the 7-day availability (default: the inventory's monitoring host, as status's)",
    )
    inspect.add_argument(
        "--out", default=str(REPO_ROOT / "reports" / "inspect"), help="report directory (<UTC>.md and .json)"
    )
    inspect.add_argument(
        "--metrics",
        action="store_true",
        help="also write each site's metrics to the monitoring hosts' textfile collector (over SSH), for the alerts",
    )
    add_vault_id(inspect)


def add_content_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = commands.add_parser(
        "content",
        help="the content runbooks' steps: sensitive words found, kept and unpublished; sections going stale",
        epilog="exit codes: 0 sound (nothing found, done); 1 found or not done; 75 cannot tell (a site or its"
        " REST API did not answer); 2 bad input",
    )
    cmds = group.add_subparsers(dest="content_command", required=True)
    evidence_help = "evidence directory (default: the running incident's, incidents/$PORTALOPS_INCIDENT/evidence)"
    found = cmds.add_parser("sensitive", help="published posts and pages holding a word of portalops_sensitive_words")
    found.add_argument("--keep", action="store_true", help="keep what is found (JSON) in the evidence directory")
    found.add_argument(
        "--inspect",
        action="store_true",
        help="judge by the whole inspection instead (its report written; with --metrics its metrics too)",
    )
    gone = cmds.add_parser("gone", help="no post the evidence names still serves its words from outside")
    drafts = cmds.add_parser("unpublish", help="every published post holding a word kept, then set back to draft")
    drafts.add_argument("--dry-run", action="store_true", help="only list them")
    stale = cmds.add_parser("stale", help="the inspection's early warnings: dynamic sections aging, blank sections")
    stale.add_argument("--tell-editors", action="store_true", help="and e-mail them to portalops_contacts' editors")
    for sub in (found, gone, drafts, stale):
        sub.add_argument("-i", "--inventory", help="inventory (default: inventory/lab)")
        add_vault_id(sub)
    for sub in (found, stale):
        sub.add_argument("--metrics", action="store_true", help="also rewrite the inspection's metrics (as inspect's)")
        sub.add_argument(
            "--out", default=str(REPO_ROOT / "reports" / "inspect"), help="inspection report directory (<UTC>.md, json)"
        )
    for sub in (found, drafts, stale):
        sub.add_argument("--site", default="", help="only this site of portal_sites")
    for sub in (found, gone, drafts):
        sub.add_argument("--evidence-dir", default="", help=evidence_help)


def run_content_command(args: argparse.Namespace, out: TextIO) -> int:
    source = args.inventory or str(LAB_INVENTORY)
    now = inspection.utc_now()
    if args.content_command == "sensitive" and args.inspect:
        outcome = content.inspection_sensitive(source, args.site, Path(args.out), args.metrics, now)
    elif args.content_command == "sensitive":
        if args.metrics:
            raise BadInput("--metrics needs --inspect: metrics come from the whole inspection")
        outcome = content.find_sensitive(source, args.site, args.keep, args.evidence_dir, now)
    elif args.content_command == "unpublish":
        outcome = content.unpublish(source, args.site, args.evidence_dir, args.dry_run, now)
    elif args.content_command == "gone":
        outcome = content.gone(source, args.evidence_dir)
    else:
        outcome = content.stale(source, args.site, Path(args.out), args.metrics, args.tell_editors, now)
    print("\n".join(outcome.lines), file=out)
    return int(outcome.code)


def add_runbook_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    runbook = commands.add_parser("runbook", help="emergency plans that run: diagnose, act, verify, escalate")
    runbook_cmds = runbook.add_subparsers(dest="runbook_command", required=True)
    runbook_cmds.add_parser("list", help="every runbook with its level")
    show = runbook_cmds.add_parser("show", help="a runbook's steps and commands")
    show.add_argument("id")
    run = runbook_cmds.add_parser(
        "run",
        help="plan, confirm, execute, journal under incidents/",
        epilog="exit codes: " + "; ".join(f"{int(c)} {c.meaning}" for c in RunbookExit),
    )
    run.add_argument("id")
    run.add_argument("--dry-run", action="store_true", help="print every command it would run and run none")
    run.add_argument(
        "--yes",
        action="store_true",
        default=os.environ.get("PORTALOPS_YES", "").lower() in ("1", "yes", "true"),
        help="confirm the plan and destructive steps (also PORTALOPS_YES=1)",
    )
    run.add_argument(
        "--unattended",
        action="store_true",
        help="no one to ask (the responder): run the plan, decline every destructive act that would act"
        " (the run stops there; `--resume INCIDENT --yes` goes on)",
    )
    run.add_argument("--limit", action="append", default=[], help="only these hosts or groups (comma-separated)")
    run.add_argument("-i", "--inventory", help="inventory (default: inventory/lab)")
    run.add_argument("--resume", metavar="INCIDENT", default="", help="continue an interrupted incident")
    run.add_argument("--incidents", type=Path, default=INCIDENTS_DIR, help="journal directory (default: incidents/)")
    add_vault_id(run)


def add_incident_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    incident = commands.add_parser(
        "incident",
        help="incidents: open, lifecycle and response deadlines, national grade, reports",
        description="Lifecycle: new -ack-> acknowledged -resolve-> resolved -close-> closed; reopen goes back to"
        " acknowledged. callback and onsite are recorded while acknowledged or resolved, workaround while"
        " acknowledged. Each deadline's met/breached/pending flag is computed from these events.",
    )
    cmds = incident.add_subparsers(dest="incident_command", required=True)
    show = cmds.add_parser("show", help="the incident, its grade and how long is left to report it")
    grade = cmds.add_parser(
        "grade", help="suggest a national grade (without --grade) or record the one a person decided"
    )
    grade.add_argument("--grade", help="特别重大|重大|较大|一般, I-IV, or especially-major|major|significant|general")
    grade.add_argument("--by", default="", help="who decided the grade")
    grade.add_argument("--reason", default="", help="why")
    report = cmds.add_parser(
        "report", help="draft a report to the regulator for a person to send, or record that it was sent"
    )
    report.add_argument("--regulator", action="store_true", required=True, help="the report to the regulator")
    report.add_argument("--stage", choices=STAGES, default="initial", help="initial, follow-up or final (总结报告)")
    report.add_argument("--out", type=Path, help="write the draft here (never over a file) instead of stdout")
    report.add_argument("--sent", action="store_true", help="record that a person sent this stage's report")
    report.add_argument("--by", default="", help="who sent it (with --sent)")
    clocks = cmds.add_parser(
        "clocks",
        help="incidents whose report is nearly or over due (cron-able)",
        epilog="exit 1 when a report is overdue",
    )
    clocks.add_argument("--warn-at", type=float, default=WARN_FRACTION, help="share of the clock left (default 0.25)")
    clocks.add_argument("--notify", action="store_true", help="warn through portalops_notify, once per state")
    for sub in (show, grade, report):
        sub.add_argument("id", metavar="INCIDENT", help="a name under incidents/")
    add_days(show, "incidents of its runbook or alert within this many days of it suggest a problem")
    for sub in (show, grade, report, clocks):
        sub.add_argument(
            "--incidents", type=Path, default=INCIDENTS_DIR, help="journal directory (default: incidents/)"
        )
    for sub in (grade, report, clocks):
        sub.add_argument("-i", "--inventory", help="inventory (default: the incident's, else inventory/lab)")
        add_vault_id(sub)
    add_lifecycle_parsers(cmds)


def add_lifecycle_parsers(cmds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """open, list, the lifecycle's transitions and links (portalops.runbook.lifecycle has the states)."""
    opened = cmds.add_parser(
        "open",
        help="open an incident a person reports (a phone call...), with its level's deadlines",
        description="The deadlines count from --at (the call), else now; run a runbook in it with"
        " `portalops runbook run RB --resume INCIDENT` when opened with --runbook RB.",
    )
    opened.add_argument("--level", required=True, type=str.upper, choices=["L1", "L2", "L3"], help="fault level")
    opened.add_argument("--title", required=True, metavar="TEXT", help="what is wrong, in the reporter's words")
    opened.add_argument("--reported-by", required=True, metavar="WHO", help="who reported it (name, unit, phone)")
    opened.add_argument("--channel", default="phone", choices=desk.CHANNELS, help="how it was reported")
    opened.add_argument(
        "--at", default="", metavar="TIME", help="when it was reported: ISO time, Beijing time without an offset"
    )
    opened.add_argument("--runbook", default="", metavar="RB", help="the runbook that answers it, to run with --resume")
    listing = cmds.add_parser("list", help="incidents: level, state, next deadline and its time left or breached")
    listing.add_argument("--open", action="store_true", help="only those not closed")
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    steps = [opened]
    for command, step in lifecycle.TRANSITIONS.items():
        sub = cmds.add_parser(
            command,
            help=f"record that {step.help} (allowed when {' or '.join(sorted(step.allowed))})",
            epilog="exit 2 and nothing written when the incident's state does not allow it",
        )
        sub.add_argument("id", metavar="INCIDENT", help="a name under incidents/")
        note = "--reason" if command == "reopen" else "--note"
        sub.add_argument(note, required=command in ("workaround", "resolve", "reopen"), default="", help="what and why")
        if command == "onsite":
            sub.add_argument("--remote", action="store_true", help="handled remotely instead of on site")
        steps.append(sub)
    link = cmds.add_parser("link", help="link the incident to a problem, a change or a knowledge article")
    link.add_argument("id", metavar="INCIDENT", help="a name under incidents/")
    targets = link.add_mutually_exclusive_group(required=True)
    for kind, example in lifecycle.LINK_EXAMPLES.items():
        targets.add_argument(f"--{kind}", metavar="ID", help=f"like {example}")
    for sub in [*steps, link]:
        sub.add_argument("--by", default=_login(), metavar="WHO", help="who does it (default: the login user)")
    for sub in [*steps, listing, link]:
        sub.add_argument(
            "--incidents", type=Path, default=INCIDENTS_DIR, help="journal directory (default: incidents/)"
        )


def _days(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of days, 1 or more")
    return int(text)


def add_days(parser: argparse.ArgumentParser, text: str) -> None:
    parser.add_argument(
        "--days",
        type=_days,
        default=repeats.default_days(),
        metavar="N",
        help=f"{text} (default: ${repeats.DAYS_VARIABLE}, else {repeats.DEFAULT_DAYS})",
    )


def add_problem_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    problem = commands.add_parser(
        "problem",
        help="problems and known errors: root cause, workaround, fix, linked incidents",
        description="Status: open -> known-error (root cause and workaround known) -> resolved (fix in)"
        " -> closed; open may go straight to resolved; known-error and resolved may go back to open."
        " Records: INCIDENTS/problems/PRB-<year>-<n>.md.",
    )
    cmds = problem.add_subparsers(dest="problem_command", required=True)
    opened = cmds.add_parser("open", help="open a problem (a person decides; `problem suggest` only suggests)")
    opened.add_argument("--title", required=True, metavar="TEXT", help="the problem in a line")
    opened.add_argument("--runbook", default="", metavar="RB", help="the runbook whose incidents it causes")
    opened.add_argument("--alert", default="", metavar="NAME", help="the alert whose incidents it causes")
    opened.add_argument("--note", default="", metavar="TEXT", help="why it is opened")
    show = cmds.add_parser("show", help="a problem: status, root cause, workaround, fix, links, history")
    listing = cmds.add_parser("list", help="problems: status, incidents, what they are about")
    listing.add_argument("--open", action="store_true", help="only those not closed")
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    update = cmds.add_parser(
        "update",
        help="record the root cause, workaround or fix, and move the status",
        epilog="exit 2 and nothing written when the move is illegal or lacks what the status needs",
    )
    update.add_argument(
        "--status",
        choices=[s for s in problems.Status if s is not problems.Status.CLOSED],
        help="move it (known-error needs a root cause and workaround, resolved a root cause and fix)",
    )
    update.add_argument("--title", default="", metavar="TEXT", help="a better title")
    update.add_argument("--root-cause", default="", metavar="TEXT", help="why the incidents happen")
    update.add_argument("--workaround", default="", metavar="TEXT", help="how service is restored meanwhile")
    update.add_argument("--fix", default="", metavar="TEXT", help="what removes the cause")
    update.add_argument("--note", default="", metavar="TEXT", help="a word for the history")
    link = cmds.add_parser("link", help="link incidents, knowledge articles or changes (each must exist)")
    close = cmds.add_parser("close", help="close a resolved problem", epilog="exit 2 unless it is resolved")
    close.add_argument("--note", default="", metavar="TEXT", help="a word for the history")
    for sub in (opened, link):
        sub.add_argument("--incident", action="append", default=[], metavar="INCIDENT", help="repeatable")
        sub.add_argument("--kb", action="append", default=[], metavar="KB-ID", help="an article (repeatable)")
    link.add_argument("--change", action="append", default=[], metavar="CHG-ID", help="a change (repeatable)")
    for sub in (show, update, link, close):
        sub.add_argument("id", metavar="PROBLEM", help="like PRB-2026-007")
    for sub in (opened, update, link, close):
        sub.add_argument("--by", default=_login(), metavar="WHO", help="who does it (default: the login user)")
    suggested = cmds.add_parser(
        "suggest", help="runbooks and alerts whose incidents repeat: a problem to open (nothing is created)"
    )
    add_days(suggested, "incidents detected in the last N days")
    suggested.add_argument("--json", action="store_true", help="JSON instead of text")
    for sub in (opened, show, listing, update, link, close, suggested):
        sub.add_argument(
            "--incidents", type=Path, default=INCIDENTS_DIR, help="records directory (default: incidents/)"
        )
    for sub in (opened, show, link):
        sub.add_argument("--kb-dir", type=Path, default=kb.KB_DIR, help="knowledge base (default: kb/)")


def add_change_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    change = commands.add_parser(
        "change",
        help="changes: each run of a configuring playbook, destructive runbook act and restore drill",
        description="Written by what made the change, never typed: the Ansible callback portalops_changes"
        " (site.yml, patch.yml, ... not in --check), the runbook engine (a destructive act, linked to its"
        " incident) and the restore drill (linked to its report). Records: INCIDENTS/changes/CHG-<year>-<n>.md.",
        epilog="exit 2 for an unknown change or a malformed record (named; the others are still listed)",
    )
    cmds = change.add_subparsers(dest="change_command", required=True)
    listing = cmds.add_parser("list", help="changes, oldest first: when, what, who, hosts, result")
    listing.add_argument(
        "--since", default="", metavar="DATE", help="from this day (UTC+8) or time on, e.g. 2026-12-01"
    )
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    show = cmds.add_parser("show", help="a change: who, what, when, hosts with their counts, result, reports")
    show.add_argument("id", metavar="CHANGE", help="like CHG-2026-007")
    show.add_argument("--json", action="store_true", help="JSON instead of text")
    for sub in (listing, show):
        sub.add_argument(
            "--incidents", type=Path, default=INCIDENTS_DIR, help="records directory (default: incidents/)"
        )


def add_kb_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    base = commands.add_parser("kb", help="the knowledge base: articles with symptoms, cause and resolution")
    cmds = base.add_subparsers(dest="kb_command", required=True)
    search = cmds.add_parser(
        "search",
        help="articles ranked by the words they contain (Chinese or English)",
        epilog="exit 1 when no article matches",
    )
    search.add_argument("words", nargs="+", metavar="WORD", help="e.g. php-fpm 满  or  数据库 连接 refused")
    search.add_argument("--json", action="store_true", help="JSON instead of a table")
    show = cmds.add_parser("show", help="an article, and the runbook steps and problems that cite it")
    show.add_argument("id", metavar="KB-ID", help="like KB-php-fpm-pool-saturated")
    show.add_argument("--incidents", type=Path, default=INCIDENTS_DIR, help="records directory, for its problems")
    cmds.add_parser("list", help="every article")
    for sub in cmds.choices.values():
        sub.add_argument("--kb-dir", type=Path, default=kb.KB_DIR, help="knowledge base (default: kb/)")


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


def add_vault_id(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--vault-id",
        action="append",
        default=[],
        metavar="LABEL@SOURCE",
        help="vault identity of a non-lab inventory, passed to every Ansible command (repeatable;"
        " also ANSIBLE_VAULT_IDENTITY_LIST); the lab's is added for the lab inventory only",
    )


def add_drill_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    drill = commands.add_parser("drill", help="fault-injection drills on the lab: break it, run the runbook, prove it")
    drill_cmds = drill.add_subparsers(dest="drill_command", required=True)
    drill_cmds.add_parser("list", help="every fault, the runbook that answers it and what that runbook must achieve")
    for name, text in (("inject", "break the lab in the named way (nothing else)"), ("undo", "undo a fault")):
        sub = drill_cmds.add_parser(name, help=text, description=text)
        sub.add_argument("fault")
        sub.add_argument("-i", "--inventory", help="inventory (only the lab's is accepted)")
    run = drill_cmds.add_parser(
        "run",
        help="inject the runbook's fault, run it with --yes, check recovery and data; report the MTTR",
        epilog="exit 0: the runbook ended as the drill expects, the portal answers and no data was lost",
    )
    run.add_argument("runbook")
    run.add_argument("--fault", help="another fault than the runbook's default")
    run.add_argument(
        "--record",
        action="store_true",
        help="keep it as the runbook's latest drill in the emergency plans (another fault's: beside it)",
    )
    run.add_argument("-i", "--inventory", help="inventory (only the lab's is accepted)")
    via = run.add_argument_group("through the monitoring (issue 14: inject, then no human command)")
    via.add_argument(
        "--via-monitoring",
        action="store_true",
        help="only inject: mon1 must detect it, the responder open the incident, run the runbook and close it",
    )
    via.add_argument(
        "--responder-config",
        type=Path,
        default=REPO_ROOT / "contrib" / "portalops-responder-lab.yml",
        metavar="FILE",
        help="the running responder's configuration: where it listens and keeps incidents (default: the lab's)",
    )
    via.add_argument(
        "--confirm-destructive",
        action="store_true",
        help="confirm a destructive step the unattended run waits for, as the person on duty would",
    )
    via.add_argument(
        "--timeout", type=float, default=600, metavar="S", help="seconds from injection to closed (default 600)"
    )


def run_drill_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.drill_command == "list":
        for item in faultdrill.FAULTS:
            answered = ",".join(item.runbooks)
            print(f"{item.id:<22} {answered:<44} expect {item.expect.name.lower():<14} {item.title}", file=out)
        return ExitCode.OK
    progress, _confirm = terminal(err)
    drill = faultdrill.Drill(str(args.inventory or LAB_INVENTORY), progress)
    # What the drill and the run it starts will ask of the inventory, in one Ansible process.
    resolve_together(drill.source, PROBE_VARS, faultdrill.SITE_VARS, RUN_VARS)
    if args.drill_command == "inject":
        host = drill.inject(faultdrill.fault(args.fault))
        print(f"{args.fault} injected on {host}; `portalops drill undo {args.fault}` undoes it", file=out)
        return ExitCode.OK
    if args.drill_command == "undo":
        return ExitCode.OK if drill.undo(faultdrill.fault(args.fault)) else ExitCode.FAILED
    item = faultdrill.fault(args.fault) if args.fault else faultdrill.default_fault(args.runbook)
    if args.via_monitoring:
        if args.record:
            raise BadInput(
                "--record keeps the runbook's own drill for the plans; a drill via the monitoring is "
                "reported in reports/fault-drills only"
            )
        watch = ResponderWatch(load_config(args.responder_config), progress)
        result = drill.run_via_monitoring(args.runbook, item, watch, args.timeout, args.confirm_destructive)
    else:
        result = drill.run(args.runbook, item)
    report = faultdrill.write_report(result)
    print(faultdrill.summary(result), file=out)
    print(f"  report: {report.relative_to(REPO_ROOT)}", file=out)
    if args.record:
        kept = faultdrill.record(result)
        if result.fault == faultdrill.default_fault(args.runbook).id:
            print(f"  recorded in {kept.relative_to(REPO_ROOT)}; `make plans` shows it in the plans", file=out)
        else:
            print(
                f"  recorded in {kept.relative_to(REPO_ROOT)} as {args.runbook}:{result.fault}, beside the"
                " runbook's own drill, which the plans keep showing",
                file=out,
            )
    return ExitCode.OK if result.ok else ExitCode.FAILED


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
        lab.up(rebuild_image=args.rebuild_image, from_snapshot=args.from_snapshot, bare_image=args.bare_image)
        print(format_status(lab.status()), file=out)
    elif args.lab_command == "snapshot" and args.remove:
        if clones := clone.running():
            # their stores read the snapshot's layers from the lab's: removed, they would lose their disks
            raise EnvironmentProblem(f"clones run from the snapshot ({', '.join(clones)}); remove them first")
        lab.forget_snapshot()
    elif args.lab_command == "snapshot":
        print("\n".join(lab.snapshot()), file=out)
    elif args.lab_command == "clone" and args.remove:
        clone.remove(args.dir, progress)
    elif args.lab_command == "clone" and (command := [c for c in args.run_command if c != "--"]):
        made = clone.create(args.dir, progress, lab.podman)
        try:
            return made.call(command)
        finally:
            # by the clone's directory's name: clones side by side keep their logs apart
            clone.remove(made.root, progress, logs_to=lab.config.state_dir / "logs" / f"clone-{made.root.name}")
    elif args.lab_command == "clone":
        made = clone.create(args.dir, progress, lab.podman)
        enter = made.argv("env", *(f"{key}={value}" for key, value in made.env.items()))
        print(f"commands reach the clone from {made.root} this way: {shlex.join(enter)} COMMAND", file=out)
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
        image = build_image(lab.podman, lab.config.state_dir, progress, force=args.rebuild, tag=args.tag)
        print(image, file=out)
        if not args.tag:  # a bare image under another tag is a benchmark's, not the lab's
            print(bake_hosts_image(lab.podman, lab.config.state_dir, progress, image, force=args.rebuild), file=out)
    return ExitCode.OK


def run_runbook_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.runbook_command == "list":
        for runbook in sorted(registry.discover().values(), key=lambda r: (int(r.level), r.id)):
            print(f"{runbook.id:<28} L{int(runbook.level)}  {runbook.title_zh} / {runbook.title_en}", file=out)
        return ExitCode.OK
    runbook = registry.get(args.id)
    if args.runbook_command == "show":
        print(describe(runbook), file=out)
        return ExitCode.OK
    limit = tuple(name for item in args.limit for name in item.split(",") if name)
    source = str(args.inventory or LAB_INVENTORY)
    if args.resume:  # the incident goes on where and on what it started, unless told otherwise
        start = start_of(args.incidents, args.resume)
        source = str(args.inventory or start.get("inventory") or source)
        limit = limit or tuple(start.get("limit") or ())
    if args.dry_run:
        context = context_for(source)
        plan = make_plan(runbook, load_inventory(source), limit, context)
        print(describe(runbook, plan, context), file=out)
        print("dry run: nothing was run, no incident opened", file=err)
        return RunbookExit.RECOVERED
    progress, confirm = terminal(err)
    options = Options(yes=args.yes, limit=limit, resume=args.resume, unattended=args.unattended)
    result = run_live(runbook, source, progress, confirm, options, args.incidents)
    print(f"{runbook.id}: {result.message}", file=err)
    return int(result.exit)


def incident_inventory(args: argparse.Namespace, events: Sequence[Mapping[str, Any]] = ()) -> str:
    """-i, else the inventory the incident ran on, else the lab's."""
    start = next((e for e in events if e.get("event") == "start"), {})
    source = str(args.inventory or start.get("inventory") or LAB_INVENTORY)
    if not Path(source).exists():
        raise BadInput(f"inventory {source} does not exist here: pass -i INVENTORY")
    return source


def run_incident_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    now = utc_now()
    if args.incident_command == "clocks":
        warnings = due_warnings(now, args.incidents, args.warn_at)
        notifier = notifier_for(incident_inventory(args)) if args.notify and warnings else None
        for clock in warnings:
            print(f"{clock.incident}  {grade_label(clock.grade)}  {clock.status(now)}", file=out)
            for line in warn(clock, now, notifier, args.incidents) if notifier else []:
                print(f"  notify {line}", file=err)
        late = any(clock.overdue(now) for clock in warnings)
        return ExitCode.FAILED if late else ExitCode.OK
    if args.incident_command in ("open", "list", "link", *lifecycle.TRANSITIONS):
        return run_lifecycle_command(args, out, err, now)
    journal = open_graded(args.incidents, args.id, lambda: now)
    if args.incident_command == "show":
        print(describe_incident(journal.events, now), file=out)
        found, malformed = problems.load(args.incidents)
        for line in repeats.incident_lines(args.incidents, args.id, found, args.days, repeats.drilled()):
            print(line, file=out)
        for line in malformed:
            print(f"portalops: {line}", file=err)
        return ExitCode.OK
    if args.incident_command == "grade":
        grade = grade_key(args.grade) if args.grade else ""  # a typo fails before the inventory is read
        inputs = load_inputs(incident_inventory(args, journal.events))
        if not grade:
            suggestion = suggest(journal.events, inputs.grading, now)
            verdict = grade_label(suggestion.grade) if suggestion.grade else "none: a person grades it"
            print(f"suggested: {verdict}\n  {suggestion.why}", file=out)
            print(f"confirm: portalops incident grade {args.id} --grade GRADE --by NAME [--reason TEXT]", file=out)
            return ExitCode.OK
        clock = record_grade(journal, grade, args.by, args.reason, inputs.cii_operator)
        print(f"{args.id}: graded {grade_label(clock.grade)}; {clock.status(now)}", file=out)
        return ExitCode.OK
    if args.sent:
        clock = record_sent(journal, args.stage, args.by)
        print(f"{args.id}: {args.stage} report marked sent; {clock.status(now)}", file=out)
        return ExitCode.OK
    if args.out and args.out.exists():
        raise BadInput(f"{args.out} exists: a draft is never written over a file (someone may have edited it)")
    text = draft(journal.events, load_inputs(incident_inventory(args, journal.events)), args.stage, now)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
        print(f"draft written to {args.out}: review it, fill the blanks, have it approved, send it by hand", file=err)
    else:
        out.write(text)
    return ExitCode.OK


def run_lifecycle_command(args: argparse.Namespace, out: TextIO, err: TextIO, now: datetime) -> int:
    command = args.incident_command
    if command == "list":
        rows, skipped = desk.summaries(args.incidents, now, only_open=args.open)
        print(desk.to_json(rows, now) if args.json else desk.format_list(rows, now), file=out)
        for line in skipped:
            print(f"portalops: {line}", file=err)
        return ExitCode.OK
    if command == "open":
        detected = desk.parse_at(args.at, now) if args.at else now
        runbook = registry.get(args.runbook) if args.runbook else None
        level = Level(int(args.level[1]))
        journal = desk.open_reported(
            args.incidents, level, args.title, args.reported_by, args.channel, args.by, detected, now, runbook
        )
        print(f"opened {journal.incident}: L{int(level)}, detected {local_text(detected)}", file=out)
        for flag in lifecycle.flags(journal.events, now):
            print(f"  {flag.title:<12} due {local_text(flag.due)}", file=out)
        return ExitCode.OK
    if command == "link":
        kind = next(k for k in lifecycle.LINKS if getattr(args, k))
        if kind == "problem":  # the records exist now; a change is only checked for its shape
            problems.get(args.incidents, args.problem)
        elif kind == "kb":
            kb.get(args.kb)
        linked = desk.link(args.incidents, args.id, kind, getattr(args, kind), args.by, now)
        print(f"{args.id}: {'linked to' if linked else 'already linked to'} {kind} {getattr(args, kind)}", file=out)
        return ExitCode.OK
    fields = {"note": getattr(args, "note", ""), "reason": getattr(args, "reason", "")}
    event = desk.transition(
        args.incidents, args.id, command, args.by, now, remote=getattr(args, "remote", False), **fields
    )
    events = open_incident(args.incidents, args.id).events
    print(f"{args.id}: {event['event']} by {event['by']}; now {lifecycle.state_of(events)}", file=out)
    for flag in lifecycle.flags(events, now):
        print(f"  {flag.title:<12} {flag.text(now)}", file=out)
    return ExitCode.OK


def run_problem_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    now, command = utc_now(), args.problem_command
    if command in ("list", "suggest"):
        found, malformed = problems.load(args.incidents)
        if command == "list":
            rows = [p for p in found if not (args.open and p.status is problems.Status.CLOSED)]
            text = json.dumps([p.as_dict() for p in rows], ensure_ascii=False, indent=2)
            print(text if args.json else problems.format_list(rows), file=out)
        else:
            drills = repeats.drilled()
            made = repeats.suggestions(repeats.occurrences(args.incidents, drills), found, now, args.days)
            if args.json:
                print(json.dumps([s.as_dict() for s in made], ensure_ascii=False, indent=2), file=out)
            for item in [] if args.json else made:
                print(f"{item.text()}\n  open it: {item.command()}", file=out)
            if not made and not args.json:
                print(f"no runbook or alert repeated within {args.days} days without a problem", file=out)
        for line in malformed:
            print(f"portalops: {line}", file=err)
        return ExitCode.BAD_INPUT if malformed else ExitCode.OK
    if command == "show":
        problem = problems.get(args.incidents, args.id)
        back = problems.linking(args.incidents, "problem", problem.id)
        print(problems.format_problem(problem, [i for i in back if i not in problem.listed("incidents")]), file=out)
        return ExitCode.OK
    if command == "open":
        if args.runbook:
            registry.get(args.runbook)
        created = problems.open_problem(
            args.incidents,
            args.title,
            args.by,
            now,
            runbook=args.runbook,
            alert=args.alert,
            incidents=args.incident,
            articles=args.kb,
            kb_dir=args.kb_dir,
            note=args.note,
        )
        print(f"opened {created.id}: {created.meta['title']} ({created.record.path})", file=out)
        return ExitCode.OK
    if command == "update":
        texts = {"title": args.title, "root_cause": args.root_cause, "workaround": args.workaround, "fix": args.fix}
        change = problems.update(
            args.incidents, args.id, args.by, now, status=args.status or "", texts=texts, note=args.note
        )
    elif command == "link":
        change = problems.link(
            args.incidents,
            args.id,
            args.by,
            now,
            incidents=args.incident,
            articles=args.kb,
            changes=args.change,
            kb_dir=args.kb_dir,
        )
    else:
        change = problems.close(args.incidents, args.id, args.by, now, args.note)
    if change.event is None:
        print(f"{args.id}: nothing to change; {change.problem.status}", file=out)
    else:
        what = problems.history_text(change.event)
        print(f"{args.id}: {what} by {change.event['by']}; now {change.problem.status}", file=out)
    return ExitCode.OK


def run_change_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.change_command == "show":
        change = changes.get(args.incidents, args.id)
        known, _ = problems.load(args.incidents)
        linked = [f"incident {i}" for i in problems.linking(args.incidents, "change", change.id)]
        linked += [f"problem {p.id} ({p.status})" for p in known if change.id in p.listed("changes")]
        text = json.dumps(change.as_dict() | {"linked": linked}, ensure_ascii=False, indent=2)
        print(text if args.json else changes.format_change(change, linked), file=out)
        return ExitCode.OK
    since = changes.parse_since(args.since) if args.since else None
    found, malformed = changes.load(args.incidents, since)
    text = json.dumps([c.as_dict() for c in found], ensure_ascii=False, indent=2)
    print(text if args.json else changes.format_list(found), file=out)
    for line in malformed:
        print(f"portalops: {line}", file=err)
    return ExitCode.BAD_INPUT if malformed else ExitCode.OK


def run_kb_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.kb_command == "show":
        article = kb.get(args.id, args.kb_dir)
        cited = kb.citations(registry.discover().values()).get(article.id, [])
        found, _ = problems.load(args.incidents)
        cited += [f"problem {p.id} ({p.status})" for p in found if article.id in p.listed("kb")]
        cited += [f"incident {i}" for i in problems.linking(args.incidents, "kb", article.id)]
        print(kb.format_article(article, cited), file=out)
        return ExitCode.OK
    articles, malformed = kb.load(args.kb_dir)
    for line in malformed:
        print(f"portalops: {line}", file=err)
    if args.kb_command == "list":
        print(kb.format_list(articles), file=out)
        return ExitCode.BAD_INPUT if malformed else ExitCode.OK
    query = " ".join(args.words)
    hits = kb.search(articles, query)
    if args.json:
        rows = [
            {"id": h.article.id, "title": h.article.title, "terms": h.matched, "score": h.score, "where": list(h.where)}
            for h in hits
        ]
        print(json.dumps({"terms": kb.terms(query), "hits": rows}, ensure_ascii=False, indent=2), file=out)
    elif hits:
        print(kb.format_hits(hits, query), file=out)
    else:
        print(f"no article contains any of: {' '.join(kb.terms(query))}", file=err)
    if malformed:
        return ExitCode.BAD_INPUT
    return ExitCode.OK if hits else ExitCode.FAILED


def terminal(err: TextIO) -> tuple[Callable[[str], None], Callable[[str], bool]]:
    """Progress lines on stderr; confirmations read from a terminal, refused without one."""

    def progress(line: str) -> None:
        print(line, file=err, flush=True)

    def confirm(question: str) -> bool:
        err.write(question)
        err.flush()
        if not sys.stdin.isatty():
            print("no (not a terminal: pass --yes)", file=err)
            return False
        return sys.stdin.readline().strip().lower() in ("y", "yes")

    return progress, confirm


def run_cmdb_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    directory = Path(args.out)
    baseline = cmdb_run.load_snapshot(directory, args.diff) if args.diff else None  # before asking any host
    doc = cmdb_run.gather(load_inventory(args.inventory))
    silent = sorted(host for host, found in doc["hosts"].items() if not found["reachable"])
    if baseline is not None:
        changes = cmdb_diff.diff(baseline, doc)
        print(
            json.dumps(changes, indent=2, ensure_ascii=False) if args.json else cmdb_markdown.render_diff(changes),
            file=out,
        )
    else:
        paths = cmdb_run.write_snapshot(doc, directory)
        if args.json:
            print(json.dumps(doc, indent=2, ensure_ascii=False), file=out)
        elif args.md:
            print(cmdb_markdown.render(doc), file=out)
        else:
            print("\n".join(str(p) for p in paths), file=out)
        print(f"cmdb: snapshot {paths[0]} (+ .md)", file=err)
    if silent:
        print(f"cmdb: no answer from {', '.join(silent)} (listed as unreachable)", file=err)
    return ExitCode.FAILED if silent else ExitCode.OK


def run_tier_check_command(args: argparse.Namespace, out: TextIO) -> int:
    code, lines = tiercheck.run_check(args.pattern, str(args.inventory or LAB_INVENTORY), args.check, args.timeout)
    print("\n".join(lines), file=out)
    return code


def run_probe_command(args: argparse.Namespace, out: TextIO) -> int:
    results = probe_inventory(args.inventory or LAB_INVENTORY, args.timeout, args.cafile)
    print(to_json(results) if args.json else format_results(results), file=out)
    return ExitCode.OK if all(r.ok for r in results) else ExitCode.FAILED


def run_probe_check_command(args: argparse.Namespace, stdin: TextIO, out: TextIO, err: TextIO) -> int:
    try:
        results = json.loads(stdin.read())
    except ValueError:
        print("the probe gave no result", file=err)
        return ExitCode.FAILED
    lines, ok = within(results, args.within)
    if not results:
        print("the probe found no site", file=err)
        return ExitCode.FAILED
    print("\n".join(lines), file=out)
    return ExitCode.OK if ok else ExitCode.FAILED


def run_inspect_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.depth < 0 or args.max_requests < 1 or args.time_budget <= 0:
        raise BadInput("--depth must be 0 or more, --max-requests and --time-budget above 0")
    now = inspection.utc_now()
    reports = inspection.inspect_inventory(
        args.inventory or LAB_INVENTORY,
        args.site,
        args.depth,
        args.max_requests,
        args.time_budget,
        args.cafile,
        now,
        args.prometheus,
    )
    path = inspection.write_reports(reports, now, Path(args.out))
    print(inspection.to_json(reports, now) if args.json else inspection.markdown(reports, now), file=out)
    code = inspection.exit_code(reports)
    said = {ExitCode.OK: "no veto item failed", ExitCode.FAILED: "a veto item failed"}.get(code, "cannot tell")
    print(f"inspect: {said}; report {path}", file=err)
    if args.metrics:
        where = inspection.push_metrics(args.inventory or LAB_INVENTORY, reports, now)
        print(f"inspect: metrics written to {', '.join(where)}", file=err)
    return int(code)


def add_monitoring_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    status = commands.add_parser(
        "status",
        help="each site now, its 24 h and 7-day availability (15 s rule), open incidents, firing alerts",
        description="Reads Prometheus and Alertmanager on the monitoring host through their HTTP APIs, and the"
        " incidents under incidents/. Where they answer: --prometheus/--alertmanager, else the lab's loopback"
        " (lab_publish of the monitoring host), else the monitoring host's ansible_host and the role's ports.",
        epilog="exit codes: 0 all well; 1 a site down, defaced or under the veto line, an alert firing or an"
        " open incident owing a deadline already past; 75 cannot tell (Prometheus or Alertmanager not answering,"
        " no probe); 2 bad input",
    )
    status.add_argument("--json", action="store_true", help="JSON instead of a table")
    status.add_argument("--incidents", type=Path, default=INCIDENTS_DIR, help="journal directory (default: incidents/)")
    deadman = commands.add_parser(
        "deadman",
        help="is the monitoring itself alive: Prometheus ready, Alertmanager answering, its Watchdog fresh (cron-able)",
        description="Run it every minute (contrib/systemd/portalops-deadman.timer). Prometheus or Alertmanager"
        " down is told on the next run (<= 60 s); Prometheus no longer sending alerts when the Watchdog is older"
        " than --max-age (default 180 s: <= 4 min with the timer). With --notify the duty contacts"
        " (portalops_notify, event monitoring, level 1) hear once when it dies and once when it is back.",
        epilog="exit codes: 0 alive; 1 dead (what is dead on stdout); 2 bad input",
    )
    deadman.add_argument("--notify", action="store_true", help="notify on each change of state, once")
    deadman.add_argument(
        "--state",
        type=Path,
        default=monitoring_deadman.STATE_FILE,
        help="the last state told (default: incidents/.deadman.json)",
    )
    deadman.add_argument(
        "--max-age",
        type=float,
        default=monitoring_deadman.MAX_AGE_S,
        help="seconds the Watchdog may go un-updated (default 180)",
    )
    for sub in (status, deadman):
        sub.add_argument("-i", "--inventory", help="inventory (default: inventory/lab)")
        sub.add_argument(
            "--prometheus", default="", metavar="URL", help="Prometheus' URL (default: from the inventory)"
        )
        sub.add_argument(
            "--alertmanager", default="", metavar="URL", help="Alertmanager's URL (default: the inventory's)"
        )
        sub.add_argument("--timeout", type=float, default=5.0, help="seconds per HTTP request (default 5)")
        add_vault_id(sub)


def run_monitoring_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.timeout <= 0:
        raise BadInput("--timeout must be above 0")
    source = str(args.inventory or LAB_INVENTORY)
    inventory = load_inventory(source) if args.inventory or not (args.prometheus and args.alertmanager) else None
    where = (
        monitoring_endpoints.from_inventory(inventory, args.prometheus, args.alertmanager)
        if inventory
        else monitoring_endpoints.Endpoints(args.prometheus, args.alertmanager)
    )
    prometheus = Prometheus(where.prometheus, args.timeout)
    alertmanager = Alertmanager(where.alertmanager, args.timeout)
    now = utc_now()
    if args.command == "status":
        sites = monitoring_endpoints.inventory_sites(inventory) if inventory else []
        found = monitoring_status.collect(prometheus, alertmanager, args.incidents, now, sites)
        print(monitoring_status.to_json(found) if args.json else monitoring_status.format_table(found), file=out)
        return int(monitoring_status.verdict(found)[1])
    dead = monitoring_deadman.check(prometheus, alertmanager, now, args.max_age)
    print("\n".join(f"DEAD: {item}" for item in dead) if dead else "alive: Prometheus ready, Watchdog fresh", file=out)
    if args.notify:
        outcome = monitoring_deadman.step(dead, args.state, notifier_for(source), now)
        for delivery in outcome.deliveries:
            said = "sent" if delivery.ok else "FAILED " + delivery.error
            print(f"notify {delivery.channel}: {outcome.state.state} {said}", file=err)
        if not outcome.state.notified:
            print(
                f"notify: nobody told yet that the monitoring is {outcome.state.state}; tried again next run", file=err
            )
    return ExitCode.FAILED if dead else ExitCode.OK


def run_annual_report(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    period = parse_period(args.annual)
    if period.kind != "year":
        raise BadInput(f"--annual {args.annual!r}: wanted a year (2026)")
    document = annual.from_inventory(
        str(args.inventory or LAB_INVENTORY),
        period,
        utc_now(),
        args.reports,
        args.incidents,
        args.prometheus,
        args.timeout,
        args.site,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    base = args.out / f"{period.id}-{args.form}"
    text = json.dumps(document, ensure_ascii=False, indent=2) + "\n"
    Path(f"{base}.json").write_text(text, encoding="utf-8")
    written = [f"{base}.json"]
    for form in document["sites"]:
        page = Path(f"{base}-{form['site']}")
        Path(f"{page}.md").write_text(annual_render.markdown(document, form), encoding="utf-8")
        Path(f"{page}.html").write_text(annual_render.to_html(document, form), encoding="utf-8")
        written += [f"{page}.md", f"{page}.html"]
        why = write_pdf(Path(f"{page}.html"), Path(f"{page}.pdf"))
        if why:
            print(f"portalops: {why}", file=err)
        else:
            written.append(f"{page}.pdf")
    for said in [*document["logs"]["errors"], document["monitoring"]["error"]]:
        if said:
            print(f"portalops: {said}", file=err)
    print(text.rstrip("\n") if args.json else "\n".join(written), file=out)
    if args.json:
        print("\n".join(written), file=err)
    return ExitCode.OK


def run_report_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.annual:
        return run_annual_report(args, out, err)
    period = parse_period(args.period)
    if args.timeout <= 0:
        raise BadInput("--timeout must be above 0")
    inventory = load_inventory(str(args.inventory or LAB_INVENTORY))
    url = args.prometheus
    if not url:
        try:
            url = monitoring_endpoints.from_inventory(inventory, "", "-").prometheus
        except BadInput as exc:
            print(f"portalops: {exc.message}; the report says availability is unknown", file=err)
    prometheus = Prometheus(url, args.timeout) if url else None
    sites = monitoring_endpoints.inventory_sites(inventory)
    document = service_report.build(period, utc_now(), args.incidents, args.reports, prometheus, sites)
    document["lang"] = args.lang
    args.out.mkdir(parents=True, exist_ok=True)
    base = args.out / period.id
    Path(f"{base}.json").write_text(json.dumps(document, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    Path(f"{base}.md").write_text(report_markdown(document, args.lang), encoding="utf-8")
    Path(f"{base}.html").write_text(report_html(document, args.lang), encoding="utf-8")
    written = [f"{base}.{suffix}" for suffix in ("json", "md", "html")]
    why = write_pdf(Path(f"{base}.html"), Path(f"{base}.pdf"))
    if why:
        print(f"portalops: {why}", file=err)
    else:
        written.append(f"{base}.pdf")
    for key in ("availability", "backups"):
        if document[key]["error"]:
            print(f"portalops: {document[key]['error']}", file=err)
    print("\n".join(written), file=out)
    return ExitCode.OK


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    args = build_parser().parse_args(argv)
    use_vault_ids(getattr(args, "vault_id", []))
    try:
        if args.command == "lab":
            return run_lab(args, out, err)
        if args.command == "audit":
            return run_audit_command(args, out, err)
        if args.command == "runbook":
            return run_runbook_command(args, out, err)
        if args.command == "incident":
            return run_incident_command(args, out, err)
        if args.command == "problem":
            return run_problem_command(args, out, err)
        if args.command == "change":
            return run_change_command(args, out, err)
        if args.command == "kb":
            return run_kb_command(args, out, err)
        if args.command == "tier-check":
            return run_tier_check_command(args, out)
        if args.command == "probe":
            return run_probe_command(args, out)
        if args.command == "probe-check":
            return run_probe_check_command(args, sys.stdin, out, err)
        if args.command == "drill":
            return run_drill_command(args, out, err)
        if args.command == "responder":
            from portalops.responder.main import run_responder  # aiohttp only where it serves

            run_responder(args.config, args.listen)
            return ExitCode.OK
        if args.command == "inspect":
            return run_inspect_command(args, out, err)
        if args.command == "content":
            return run_content_command(args, out)
        if args.command == "cmdb":
            return run_cmdb_command(args, out, err)
        if args.command in ("status", "deadman"):
            return run_monitoring_command(args, out, err)
        if args.command == "report":
            return run_report_command(args, out, err)
        if args.command == "nightly":
            from portalops import nightly

            return nightly.run(args.inventory, out)
    except PortalopsError as exc:
        print(f"portalops: {exc.message}", file=err)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("portalops: interrupted", file=err)
        return int(ExitCode.INTERRUPTED)
    return int(ExitCode.BAD_INPUT)


if __name__ == "__main__":
    sys.exit(main())
