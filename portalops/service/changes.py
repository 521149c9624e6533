"""Changes: ``<incidents>/changes/CHG-<year>-<n>.md``, one record per change made to the portal.

A change is written once, by what made it, never typed by a person: a run of a configuring
playbook (site.yml, patch.yml, ...; the Ansible callback ``plugins/callback/portalops_changes.py``),
a destructive act of a runbook (the engine, linked to its incident), and a restore drill (its
report). It says who, what, when, on which hosts, with what result, and links the report or the
incident that tells more. Records share the problems' store (:mod:`portalops.service.records`):
schema-checked, atomic, locked; a malformed one is named and never written over (its number is
never given again).
"""

from __future__ import annotations

import getpass
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from enum import StrEnum
from pathlib import Path
from typing import Any

from portalops.errors import BadInput
from portalops.runbook.journal import parse_stamp, stamp
from portalops.runbook.workcal import TZ, local_text
from portalops.service import records
from portalops.vault import REPO_ROOT

SUBDIR = "changes"
ID = re.compile(r"^CHG-(\d{4})-(\d{3,})$")
RECORDS_VARIABLE = "PORTALOPS_INCIDENTS_DIR"  # the records directory, as for incidents and problems
INCIDENT_VARIABLE = "PORTALOPS_INCIDENT"  # set by a runbook run for the playbooks its steps run


class Kind(StrEnum):
    PLAYBOOK = "playbook"  # a configuring playbook run (the callback)
    RUNBOOK = "runbook"  # a destructive act a runbook did (the engine)
    RESTORE = "restore"  # a restore drill (its report)


class Result(StrEnum):
    OK = "ok"
    FAILED = "failed"


SCHEMA: records.Schema = {
    "id": (str, True),
    "kind": (str, True),
    "title": (str, True),
    "by": (str, True),
    "started": (str, True),
    "ended": (str, True),
    "result": (str, True),
    "hosts": (list, True),  # {host, ok, changed, failed, unreachable} from a playbook; {host, result} from a runbook
    "controller": (str, False),
    "playbook": (str, False),
    "limit": (str, False),
    "tags": (list, False),
    "extra_vars": (list, False),  # their names only: a value may be a secret
    "incident": (str, False),
    "runbook": (str, False),
    "step": (str, False),
    "reports": (list, False),
    "note": (str, False),
}
COUNTS = ("ok", "changed", "failed", "unreachable", "skipped", "rescued")


def check(meta: Mapping[str, Any]) -> list[str]:
    """A change's own rules, beyond the field types."""
    found = []
    if not ID.match(str(meta["id"])):
        found.append(f"id: {meta['id']!r} is not like CHG-2026-007")
    if meta["kind"] not in set(Kind):
        found.append(f"kind: {meta['kind']!r} is none of {', '.join(Kind)}")
    if meta["result"] not in set(Result):
        found.append(f"result: {meta['result']!r} is none of {', '.join(Result)}")
    for name in ("started", "ended"):
        try:
            parse_stamp(str(meta[name]))
        except ValueError:
            found.append(f"{name}: {meta[name]!r} is not a UTC time like 2026-12-03T02:00:00.000Z")
    for host in meta["hosts"]:
        if not isinstance(host, dict) or not isinstance(host.get("host"), str):
            found.append(f"hosts: {host!r} is not a mapping with a host name")
        elif any(not isinstance(host.get(n, 0), int) for n in COUNTS):
            found.append(f"hosts: {host['host']}: its counts are not numbers")
    return found


@dataclass(frozen=True)
class Change(records.Kept):
    @property
    def started(self) -> datetime:
        return parse_stamp(str(self.meta["started"]))

    def host_names(self) -> list[str]:
        return [str(h["host"]) for h in self.meta["hosts"]]

    def as_dict(self) -> dict[str, Any]:
        return {name: self.meta[name] for name in SCHEMA if name in self.meta}


def default_root() -> Path:
    """The records directory: ``$PORTALOPS_INCIDENTS_DIR``, else the checkout's ``incidents/``."""
    return Path(os.environ.get(RECORDS_VARIABLE) or REPO_ROOT / "incidents")


def directory(root: Path) -> Path:
    return root / SUBDIR


def user() -> str:
    """Who made the change: the person behind sudo, else the login user."""
    try:
        return os.environ.get("SUDO_USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def read(path: Path) -> Change:
    return Change(records.read_named(path, SCHEMA, check, "change"))


def get(root: Path, change: str) -> Change:
    if not ID.match(change):
        raise BadInput(f"{change!r} is not a change id: like CHG-2026-007")
    path = directory(root) / f"{change}.md"
    if not path.is_file():
        raise BadInput(f"no change {change} under {directory(root)}: `portalops change list` shows them")
    return read(path)


def load(root: Path, since: datetime | None = None) -> tuple[list[Change], list[str]]:
    """The changes started at or after ``since``, oldest first; and the malformed records, named."""
    found, malformed = [], []
    for path in directory(root).glob("CHG-*.md"):
        try:
            change = read(path)
        except BadInput as exc:
            malformed.append(exc.message)
            continue
        if since is None or change.started >= since:
            found.append(change)
    return sorted(found, key=lambda c: (c.started, c.id)), sorted(malformed)


def _next_id(root: Path, now: datetime) -> str:
    """The next number of the year; a malformed record's file keeps its number (it is never overwritten)."""
    year = f"{now.astimezone(TZ):%Y}"
    numbers = [int(m[2]) for p in directory(root).glob(f"CHG-{year}-*.md") if (m := ID.match(p.stem))]
    return f"CHG-{year}-{max(numbers, default=0) + 1:03d}"


def record(
    root: Path,
    kind: Kind,
    title: str,
    started: datetime,
    ended: datetime,
    result: Result,
    hosts: Sequence[Mapping[str, Any]],
    *,
    by: str = "",
    **fields: Any,
) -> Change:
    """Write a new change record (empty optional fields are left out) and return it."""
    meta: dict[str, Any] = {
        "id": "",
        "kind": str(kind),
        "title": title.strip(),
        "by": by or user(),
        "started": stamp(started),
        "ended": stamp(ended),
        "result": str(result),
        "hosts": [dict(h) for h in hosts],
    }
    meta |= {name: value for name, value in fields.items() if value not in ("", [], (), None)}
    meta |= {name: list(value) for name, value in meta.items() if isinstance(value, tuple)}
    with records.locked(directory(root)):
        meta["id"] = _next_id(root, started)
        change = Change(records.Record(directory(root) / f"{meta['id']}.md", meta, render_body(meta)))
        records.write(change.record, SCHEMA, check, "change")
    return change


def parse_since(text: str) -> datetime:
    """``--since``: a day (its start in Beijing time) or a time with its offset (UTC when none)."""
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return datetime.combine(date.fromisoformat(text), time(0), TZ)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        wanted = "a day like 2026-12-01 nor a time like 2026-12-01T08:00+08:00"
        raise BadInput(f"--since {text!r} is not {wanted}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=TZ)


def host_text(host: Mapping[str, Any]) -> str:
    if "result" in host:
        return f"{host['host']} {host['result']}"
    counts = [f"{name}={host[name]}" for name in COUNTS if host.get(name)]
    return f"{host['host']} ({' '.join(counts) or 'nothing done'})"


def render_body(meta: Mapping[str, Any]) -> str:
    """The Markdown under the front matter: the same facts, for a person reading the file."""
    started, ended = parse_stamp(str(meta["started"])), parse_stamp(str(meta["ended"]))
    lines = [
        f"# {meta['id']} {meta['title']}",
        "",
        "<!-- Written once by what made the change; the front matter is the record. -->",
        "",
        "| | |",
        "|---|---|",
        f"| kind | {meta['kind']} |",
        f"| result | **{meta['result']}** |",
        f"| by | {meta['by']}{' on ' + str(meta['controller']) if meta.get('controller') else ''} |",
        f"| started | {local_text(started)} ({meta['started']}) |",
        f"| ended | {local_text(ended)} ({round((ended - started).total_seconds())} s) |",
    ]
    for name in ("playbook", "limit", "incident", "runbook", "step"):
        if meta.get(name):
            lines.append(f"| {name} | {meta[name]} |")
    for name in ("tags", "extra_vars"):
        if meta.get(name):
            lines.append(f"| {name.replace('_', ' ')} | {', '.join(meta[name])} |")
    lines += ["", "## 主机 Hosts", ""]
    lines += [f"- {host_text(h)}" for h in meta["hosts"]] or ["- none"]
    if meta.get("reports"):
        lines += ["", "## 报告 Reports", "", *[f"- {r}" for r in meta["reports"]]]
    if meta.get("note"):
        lines += ["", "## 说明 Note", "", str(meta["note"])]
    return "\n".join(lines) + "\n"


def format_list(changes: Sequence[Change]) -> str:
    lines = [f"{'CHANGE':<14} {'STARTED (UTC+8)':<16}  {'KIND':<8} {'RESULT':<6} {'BY':<10} {'HOSTS':<24} TITLE"]
    for change in changes:
        hosts = ",".join(change.host_names()) or "-"
        hosts = hosts if len(hosts) <= 24 else hosts[:21] + "..."
        lines.append(
            f"{change.id:<14} {local_text(change.started)[:16]:<16}  {change.meta['kind']:<8} "
            f"{change.meta['result']:<6} {change.meta['by']:<10} {hosts:<24} {change.meta['title']}"
        )
    return "\n".join(lines)


def format_change(change: Change, linked: Sequence[str] = ()) -> str:
    """``portalops change show``; ``linked``: the incidents and problems that link to it."""
    meta = change.meta
    ended = parse_stamp(str(meta["ended"]))
    lines = [
        f"{change.id}: {meta['title']}",
        f"kind       {meta['kind']}",
        f"result     {meta['result']}",
        f"by         {meta['by']}" + (f" on {meta['controller']}" if meta.get("controller") else ""),
        f"started    {local_text(change.started)}",
        f"ended      {local_text(ended)} ({round((ended - change.started).total_seconds())} s)",
    ]
    for name in ("playbook", "limit", "incident", "runbook", "step", "note"):
        if meta.get(name):
            lines.append(f"{name:<10} {meta[name]}")
    for name in ("tags", "extra_vars"):
        if meta.get(name):
            lines.append(f"{name.replace('_', ' '):<10} {', '.join(meta[name])}")
    lines += [f"host       {host_text(h)}" for h in meta["hosts"]]
    lines += [f"report     {r}" for r in meta.get("reports") or []]
    lines += [f"linked     {item}" for item in linked]
    lines.append(f"record     {change.record.path}")
    return "\n".join(lines)


# ----------------------------------------------------------------- playbook runs (the callback)

# The playbooks that configure the portal; the others only read (audit, validate, preflight) or take
# a backup. ``PORTALOPS_CHANGE_PLAYBOOKS`` (comma-separated) or ansible.cfg's
# ``[callback_portalops_changes] playbooks`` replace the list.
PLAYBOOKS = (
    "site.yml",
    "patch.yml",
    "common.yml",
    "web.yml",
    "cms.yml",
    "db.yml",
    "logs.yml",
    "backups.yml",
    "monitoring.yml",
    "restore_drill.yml",
)
RESTORES = frozenset({"restore_drill.yml"})
REPORT_LINE = re.compile(r"^report: (\S+)$")


def report_links(lines: Sequence[Any]) -> list[str]:
    """The reports a task names in its output (``report: PATH``, as patch and drill reports print)."""
    return [m[1] for line in lines if isinstance(line, str) and (m := REPORT_LINE.match(line.strip()))]


def wanted(playbook: str, listed: Sequence[str]) -> bool:
    """Is the playbook one whose runs are changes: its file name (or its path) is listed."""
    path, names = Path(playbook), [item.strip() for item in listed if item.strip()]
    return any(path.name == name or str(path).endswith("/" + name) for name in names)


def host_counts(summary: Mapping[str, int]) -> dict[str, int]:
    """Ansible's per-host summary (``AggregateStats.summarize``) under this record's names."""
    given = {("failed" if name == "failures" else name): int(value) for name, value in summary.items()}
    return {name: given[name] for name in COUNTS if name in given}


def record_playbook(
    root: Path,
    playbooks: str | Sequence[str],
    started: datetime,
    ended: datetime,
    hosts: Mapping[str, Mapping[str, int]],
    *,
    limit: str = "",
    tags: Sequence[str] = (),
    extra_vars: Sequence[str] = (),
    reports: Sequence[str] = (),
    controller: str = "",
    incident: str = "",
    by: str = "",
) -> Change:
    """A playbook run (one command, one or more playbooks) as a change: each host's counts, failed
    when a host failed or was unreachable; a restore when it ran only restore playbooks."""
    paths = [Path(p) for p in ([playbooks] if isinstance(playbooks, str) else playbooks)]
    rows = [{"host": name, **host_counts(counts)} for name, counts in sorted(hosts.items())]
    failed = any(row.get("failed") or row.get("unreachable") for row in rows)
    shown = " ".join(f"playbooks/{p.name}" if p.parent.name == "playbooks" else str(p) for p in paths)
    return record(
        root,
        Kind.RESTORE if paths and all(p.name in RESTORES for p in paths) else Kind.PLAYBOOK,
        f"ansible-playbook {shown}" + (f" --limit {limit}" if limit else ""),
        started,
        ended,
        Result.FAILED if failed else Result.OK,
        rows,
        by=by,
        playbook=shown,
        limit=limit,
        tags=list(tags),
        extra_vars=sorted(set(extra_vars)),
        reports=list(dict.fromkeys(reports)),
        controller=controller,
        incident=incident,
    )
