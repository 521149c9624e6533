"""``portalops content``: the content runbooks' steps, from the inventory to a verdict and its lines.

Each function reads the inventory as ``portalops inspect`` does and returns the lines to print and the
exit code, in the checks' convention: 0 sound, 1 found (or not done), 75 cannot tell (a site or its REST
API did not answer), so a step uses one as its diagnosis, its act's check or its verification alike.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from portalops.errors import BadInput, ExitCode
from portalops.inspect import freshness, sensitive, veto
from portalops.inspect.edge import Edge
from portalops.inspect.report import inspect_inventory, load_sites, push_metrics, write_reports
from portalops.inspect.site import SiteReport
from portalops.inspect.words import WordMatcher
from portalops.inventory import load_inventory
from portalops.resolve import resolve_vars
from portalops.runbook.live import ssh_hosts
from portalops.wpphp import CMS_GROUP

# Whom l2_content_stale tells (the content editors of portalops_contacts) and how (portalops_notify).
EDITOR_VARS = {"contacts": "portalops_contacts | default([])", "notify": "portalops_notify | default(none)"}


@dataclass
class Outcome:
    code: ExitCode
    lines: list[str] = field(default_factory=list)


def _inspect(source: str, site: str, out: Path, metrics: bool, now: dt.datetime) -> list[SiteReport]:
    """The whole inspection (as ``portalops inspect``): its report written, with ``metrics`` its metrics too."""
    reports = inspect_inventory(source, site, now=now)
    write_reports(reports, now, out)
    if metrics:
        push_metrics(source, reports, now)
    return reports


def find_sensitive(source: str, site: str, keep: bool, evidence_dir: str, now: dt.datetime) -> Outcome:
    """Published posts and pages holding a word; with ``keep``, kept in the evidence directory."""
    _, settings, sites = load_sites(source, site)
    found, unread = sensitive.find_in_sites(settings, sites)
    lines = [f.line() for f in found] + unread
    if keep and found:
        directory = sensitive.require_evidence(sensitive.incident_evidence(evidence_dir), "keeping what was found")
        path = sensitive.keep(
            directory, sensitive.FOUND_PREFIX, sensitive.found_document(found, now, len(settings.words)), now
        )
        lines.append(f"evidence: {path}")
    if not settings.words:
        return Outcome(ExitCode.OK, ["portalops_sensitive_words is empty: no word to look for"])
    if found:
        lines.append(f"{len(found)} published posts or pages hold a word of portalops_sensitive_words")
        return Outcome(ExitCode.FAILED, lines)
    if unread:
        return Outcome(ExitCode.UNKNOWN, lines)
    return Outcome(ExitCode.OK, [f"no published post or page holds one of the {len(settings.words)} words"])


def inspection_sensitive(source: str, site: str, out: Path, metrics: bool, now: dt.datetime) -> Outcome:
    """The whole inspection's verdict on sensitive content (``metrics``: and its metrics rewritten, so the
    alert resolves with its cause)."""
    reports = _inspect(source, site, out, metrics, now)
    items = [(r.site, i) for r in reports for i in r.items if i.id == "sensitive_content"]
    lines = [f"{name}: {item.en}: {item.status}: {item.margin}" for name, item in items]
    lines += [f"{name}: {e}" for name, item in items for e in item.evidence]
    statuses = {item.status for _, item in items}
    code = ExitCode.FAILED if veto.FAIL in statuses else ExitCode.UNKNOWN if veto.UNKNOWN in statuses else ExitCode.OK
    return Outcome(code, lines)


def unpublish(source: str, site: str, evidence_dir: str, dry_run: bool, now: dt.datetime) -> Outcome:
    """Every published post holding a word, found again now, kept, then set back to draft on a CMS host."""
    directory = sensitive.require_evidence(sensitive.incident_evidence(evidence_dir), "unpublishing")
    _, settings, sites = load_sites(source, site)
    found, unread = sensitive.find_in_sites(settings, sites)
    lines = [f.line() for f in found] + unread
    if not found:
        return Outcome(ExitCode.UNKNOWN if unread else ExitCode.OK, [*lines, "nothing to unpublish"])
    if dry_run:
        return Outcome(ExitCode.OK, [*lines, f"would set {len(found)} back to draft (dry run)"])
    hosts = sorted(load_inventory(source).groups.get(CMS_GROUP) or [])
    if not hosts:
        raise BadInput(f"the inventory has no host in group {CMS_GROUP!r}: nowhere to unpublish")
    kept = sensitive.keep(
        directory, sensitive.FOUND_PREFIX, sensitive.found_document(found, now, len(settings.words)), now
    )
    host = ssh_hosts(source, hosts[:1])[hosts[0]]
    try:
        records = sensitive.unpublish(host, found)
    finally:
        host.close()
    path = sensitive.keep(
        directory, sensitive.UNPUBLISHED_PREFIX, {"time_utc": now.isoformat(), "host": hosts[0], "posts": records}, now
    )
    done, failed = sensitive.unpublished_lines(records)
    lines += [*done, *(f"FAILED: {line}" for line in failed), f"evidence: {kept}, {path}"]
    return Outcome(ExitCode.FAILED if failed else ExitCode.OK, lines)


def gone(source: str, evidence_dir: str) -> Outcome:
    """Whether any post the evidence names still serves one of its words from outside, through the edge."""
    directory = sensitive.require_evidence(sensitive.incident_evidence(evidence_dir), "checking the posts")
    findings = sensitive.kept_findings(directory) if directory.is_dir() else []
    if not findings:
        return Outcome(ExitCode.OK, [f"no post was found holding a word ({directory}): nothing to check"])
    _, settings, _ = load_sites(source)
    still: list[str] = []
    silent: list[str] = []
    for finding in findings:
        edge = Edge(settings.public_url, finding.domain, settings.cafiles, settings.timeout)
        try:
            shows, quiet = sensitive.served(edge, finding, WordMatcher(finding.words))
        finally:
            edge.close()
        still += shows
        silent += quiet
    lines = [*still, *silent]
    if still:
        return Outcome(ExitCode.FAILED, lines)
    if silent:
        return Outcome(ExitCode.UNKNOWN, lines)
    return Outcome(ExitCode.OK, [f"none of the {len(findings)} posts serves its words any more, cache included"])


def stale(source: str, site: str, out: Path, metrics: bool, tell_editors: bool, now: dt.datetime) -> Outcome:
    """The inspection's early warnings; ``tell_editors``: and the content editors told of them (exit 1 when
    they could not be); ``metrics``: and the inspection's metrics rewritten, so the alerts follow."""
    reports = _inspect(source, site, out, metrics, now)
    found: list[str] = []
    unknown: list[str] = []
    for report in reports:
        lines, untold = freshness.warnings(report)
        found += lines
        unknown += untold
    if not tell_editors:
        if found:
            return Outcome(ExitCode.FAILED, [*found, *unknown, f"{len(found)} warnings of the inspection"])
        return Outcome(ExitCode.UNKNOWN if unknown else ExitCode.OK, unknown or ["the inspection warns of nothing"])
    if not found:
        return Outcome(ExitCode.OK, [*unknown, "the inspection warns of nothing: nothing to tell the editors"])
    # Asked only here: portalops_notify may hold vaulted secrets the inspection itself never needs.
    hostvars = resolve_vars(source, ["all"], EDITOR_VARS, exact=False)
    first = next(iter(hostvars.values()), {})
    people = freshness.editors(first.get("contacts"))
    names = [freshness.who(c) for c in people] or ["none in portalops_contacts (a role_en naming the content editor)"]
    deliveries, why = freshness.tell(first.get("notify"), people, freshness.notice(found, freshness.running_incident()))
    lines = [*found, *(f"content editor: {name}" for name in names)]
    lines += [f"told via {d.channel}" if d.ok else f"NOT told via {d.channel}: {d.error}" for d in deliveries]
    if not any(d.ok for d in deliveries):
        return Outcome(ExitCode.FAILED, [*lines, f"the editors were not told ({why or 'no delivery'}): call them"])
    return Outcome(ExitCode.OK, [*lines, f"the content editors were told of {len(found)} warnings"])
