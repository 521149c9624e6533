"""Problems and known errors: ``<incidents>/problems/PRB-<year>-<n>.md``, one record per problem.

A problem is the cause behind one or more incidents. Its states::

    open ──(root cause + workaround)──> known-error ──(fix)──> resolved ──close──> closed
      └──────────────(root cause + fix)────────────────────────┘   │
    open <── known-error, resolved (the cause was wrong, the fix did not hold) ──┘

``known-error`` is ITIL's: the root cause is known and a workaround is written down, so the
service desk can restore service until the fix is in. ``closed`` is final (a problem that comes
back after it is closed is a new problem, linked to the old one's incidents). Every change is
appended to the record's ``history`` with its time and ``--by``; an illegal move writes nothing.

The front matter is the record; the Markdown below it is rendered from the front matter on every
write, so a person reads the same facts the commands do.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from portalops.errors import BadInput
from portalops.runbook import desk, lifecycle
from portalops.runbook.journal import incident_directory, parse_stamp, read_events, stamp
from portalops.runbook.model import ALERT_NAME_RE, ID_RE
from portalops.runbook.workcal import local_text
from portalops.service import kb, records

SUBDIR = "problems"
ID = re.compile(r"^PRB-(\d{4})-(\d{3,})$")


class Status(StrEnum):
    OPEN = "open"
    KNOWN_ERROR = "known-error"
    RESOLVED = "resolved"
    CLOSED = "closed"


MOVES: dict[Status, frozenset[Status]] = {
    Status.OPEN: frozenset({Status.KNOWN_ERROR, Status.RESOLVED}),
    Status.KNOWN_ERROR: frozenset({Status.OPEN, Status.RESOLVED}),
    Status.RESOLVED: frozenset({Status.OPEN, Status.KNOWN_ERROR, Status.CLOSED}),
    Status.CLOSED: frozenset(),
}
NEEDS = {  # the fields a status cannot do without
    Status.KNOWN_ERROR: ("root_cause", "workaround"),
    Status.RESOLVED: ("root_cause", "fix"),
    Status.CLOSED: ("root_cause", "fix"),
}
TEXTS = ("title", "root_cause", "workaround", "fix")
LISTS = {"incidents": "incident", "kb": "kb", "changes": "change"}
SCHEMA: records.Schema = {
    "id": (str, True),
    "title": (str, True),
    "status": (str, True),
    "opened": (str, True),
    "opened_by": (str, True),
    "runbook": (str, False),
    "alert": (str, False),
    "root_cause": (str, False),
    "workaround": (str, False),
    "fix": (str, False),
    "incidents": (list, False),
    "kb": (list, False),
    "changes": (list, False),
    "history": (list, True),
}


def check(meta: Mapping[str, Any]) -> list[str]:
    """The problem's own rules, beyond the field types."""
    found = []
    if not ID.match(str(meta["id"])):
        found.append(f"id: {meta['id']!r} is not like PRB-2026-007")
    if meta["status"] not in set(Status):
        found.append(f"status: {meta['status']!r} is none of {', '.join(Status)}")
    else:
        missing = [name for name in NEEDS.get(Status(meta["status"]), ()) if not str(meta.get(name) or "").strip()]
        found += [f"{name}: needed when {meta['status']}" for name in missing]
    try:
        parse_stamp(str(meta["opened"]))
    except ValueError:
        found.append(f"opened: {meta['opened']!r} is not a UTC time like 2026-12-03T02:00:00.000Z")
    if meta.get("runbook") and not ID_RE.match(str(meta["runbook"])):
        found.append(f"runbook: {meta['runbook']!r} is not a runbook id")
    if meta.get("alert") and not ALERT_NAME_RE.match(str(meta["alert"])):
        found.append(f"alert: {meta['alert']!r} is not an alert name")
    for name in ("incidents", "kb", "changes"):
        found += [f"{name}: {item!r} is not an id" for item in meta.get(name) or [] if not _is_id(name, item)]
    for event in meta["history"]:
        if not isinstance(event, dict) or not {"ts", "by", "event"} <= set(event):
            found.append(f"history: {event!r} lacks ts, by or event")
    return found


def _is_id(name: str, item: Any) -> bool:
    if not isinstance(item, str):
        return False
    if name == "incidents":
        return bool(item) and "/" not in item and item not in (".", "..")
    return bool(lifecycle.LINKS[LISTS[name]].match(item))


@dataclass(frozen=True)
class Problem(records.Kept):
    @property
    def status(self) -> Status:
        return Status(self.meta["status"])

    def listed(self, name: str) -> list[str]:
        return [str(item) for item in self.meta.get(name) or []]

    def as_dict(self) -> dict[str, Any]:
        return {name: self.meta.get(name, [] if name in LISTS or name == "history" else "") for name in SCHEMA}


def directory(root: Path) -> Path:
    return root / SUBDIR


def path_of(root: Path, problem: str) -> Path:
    if not ID.match(problem):
        raise BadInput(f"{problem!r} is not a problem id: like PRB-2026-007")
    return directory(root) / f"{problem}.md"


def read(path: Path) -> Problem:
    return Problem(records.read_named(path, SCHEMA, check, "problem"))


def get(root: Path, problem: str) -> Problem:
    path = path_of(root, problem)
    if not path.is_file():
        raise BadInput(f"no problem {problem} under {directory(root)}: `portalops problem list` shows them")
    return read(path)


def load(root: Path) -> tuple[list[Problem], list[str]]:
    """Every problem, by id; and the malformed records, named with what is wrong."""
    found, malformed = [], []
    for path in sorted(directory(root).glob("PRB-*.md")):
        try:
            found.append(read(path))
        except BadInput as exc:
            malformed.append(exc.message)
    return found, malformed


def linking(root: Path, kind: str, target: str) -> list[str]:
    """The incidents whose journal links to ``target`` (a problem, a change, an article)."""
    paths = sorted(root.glob("*/journal.jsonl")) if root.is_dir() else []
    return [p.parent.name for p in paths if target in lifecycle.links(read_events(p)).get(kind, [])]


def _next_id(root: Path, now: datetime) -> str:
    year = f"{now:%Y}"
    numbers = [int(m[2]) for p in directory(root).glob(f"PRB-{year}-*.md") if (m := ID.match(p.stem)) and m[1] == year]
    return f"PRB-{year}-{max(numbers, default=0) + 1:03d}"


def _incidents(root: Path, incidents: Iterable[str]) -> list[str]:
    """The incidents, each checked to exist under ``root`` (a journal with a start event)."""
    found = []
    for incident in incidents:
        path = incident_directory(root, incident) / "journal.jsonl"
        if not path.is_file():
            raise BadInput(f"no incident {incident!r} under {root} (nothing written)")
        if not any(e.get("event") == "start" for e in read_events(path)):  # its link could not be journalled
            raise BadInput(f"incident {incident!r}: its journal has no start event (corrupt); nothing written")
        found.append(incident)
    return found


def _articles(articles: Iterable[str], kb_dir: Path) -> list[str]:
    return [kb.get(article, kb_dir).id for article in articles]


def _changes(changes: Iterable[str]) -> list[str]:
    return [lifecycle.check_link("change", change) for change in changes]


def _event(now: datetime, by: str, event: str, **fields: Any) -> dict[str, Any]:
    return {"ts": stamp(now), "by": by, "event": event, **{k: v for k, v in fields.items() if v not in ("", [], None)}}


def _save(problem: Problem) -> Path:
    record = records.Record(problem.record.path, problem.meta, render_body(problem.meta))
    return records.write(record, SCHEMA, check, "problem")


def open_problem(
    root: Path,
    title: str,
    by: str,
    now: datetime,
    *,
    runbook: str = "",
    alert: str = "",
    incidents: Sequence[str] = (),
    articles: Sequence[str] = (),
    kb_dir: Path = kb.KB_DIR,
    note: str = "",
) -> Problem:
    """A new problem, ``open``; its incidents get a link to it in their journals."""
    if not title.strip() or not by.strip():
        raise BadInput("--title and --by must not be empty")
    linked = _incidents(root, dict.fromkeys(incidents))
    cited = _articles(dict.fromkeys(articles), kb_dir)
    with records.locked(directory(root)):
        problem = _next_id(root, now)
        meta: dict[str, Any] = {
            "id": problem,
            "title": title.strip(),
            "status": str(Status.OPEN),
            "opened": stamp(now),
            "opened_by": by,
            "runbook": runbook,
            "alert": alert,
            "root_cause": "",
            "workaround": "",
            "fix": "",
            "incidents": linked,
            "kb": cited,
            "changes": [],
            "history": [_event(now, by, "opened", note=note)],
        }
        created = Problem(records.Record(path_of(root, problem), meta, ""))
        _save(created)
    _link_incidents(root, problem, linked, by, now)
    return created


def _link_incidents(root: Path, problem: str, incidents: Sequence[str], by: str, now: datetime) -> None:
    """Each incident's journal links back to the problem (after the problem's lock is released)."""
    for incident in incidents:
        desk.link(root, incident, "problem", problem, by, now)


@dataclass(frozen=True)
class Change:
    problem: Problem
    event: dict[str, Any] | None  # None: nothing to change, nothing written


def update(
    root: Path,
    problem: str,
    by: str,
    now: datetime,
    *,
    status: str = "",
    texts: Mapping[str, str] | None = None,
    note: str = "",
) -> Change:
    """Set the root cause, workaround, fix or title, and move the status, if the move is legal."""
    if not by.strip():
        raise BadInput("--by must not be empty")
    wanted = {name: value.strip() for name, value in (texts or {}).items() if name in TEXTS and value.strip()}
    with records.locked(directory(root)):
        current = get(root, problem)
        _refuse_closed(current, "update")
        meta = dict(current.meta) | wanted
        if status:
            meta["status"] = str(_move(current, status, meta))
        changed = [name for name in TEXTS if meta.get(name, "") != current.meta.get(name, "")]
        moved = meta["status"] != current.meta["status"]
        if not changed and not moved:
            return Change(current, None)
        fields = {"from": str(current.status), "to": meta["status"]} if moved else {}
        event = _event(now, by, "updated", fields=changed, note=note, **fields)
        meta["history"] = [*current.meta["history"], event]
        updated = Problem(records.Record(current.record.path, meta, ""))
        _save(updated)
    return Change(updated, event)


def _move(problem: Problem, status: str, meta: Mapping[str, Any]) -> Status:
    """The new status, if the current one may move there and the record has what it needs."""
    if status not in set(Status):
        raise BadInput(f"no status {status!r}; known: {', '.join(Status)}")
    to = Status(status)
    if to is problem.status:
        return to
    if to is Status.CLOSED:
        raise BadInput(f"close a problem with `portalops problem close {problem.id}` (nothing written)")
    if to not in MOVES[problem.status]:
        allowed = ", ".join(sorted(MOVES[problem.status])) or "nothing"
        raise BadInput(
            f"cannot move problem {problem.id} from {problem.status} to {to}: only to {allowed} (nothing written)"
        )
    missing = [name for name in NEEDS.get(to, ()) if not str(meta.get(name) or "").strip()]
    if missing:
        flags = " ".join(f"--{name.replace('_', '-')} TEXT" for name in missing)
        raise BadInput(
            f"problem {problem.id} cannot be {to} without its {' and '.join(n.replace('_', ' ') for n in missing)}:"
            f" give {flags} (nothing written)"
        )
    return to


def _refuse_closed(problem: Problem, command: str) -> None:
    if problem.status is Status.CLOSED:
        history: list[dict[str, Any]] = problem.meta["history"]
        closed: dict[str, Any] = next((e for e in reversed(history) if e.get("to") == "closed"), {})
        raise BadInput(
            f"cannot {command} problem {problem.id}: it is closed"
            + (f" (by {closed.get('by')} at {closed.get('ts')})" if closed else "")
            + "; a problem that is back is a new one: `portalops problem open` (nothing written)"
        )


def close(root: Path, problem: str, by: str, now: datetime, note: str = "") -> Change:
    """Close a resolved problem: its fix is in and the incidents stopped."""
    if not by.strip():
        raise BadInput("--by must not be empty")
    with records.locked(directory(root)):
        current = get(root, problem)
        _refuse_closed(current, "close")
        if current.status is not Status.RESOLVED:
            raise BadInput(
                f"cannot close problem {problem}: it is {current.status}; resolve it first:"
                f" `portalops problem update {problem} --status resolved --fix TEXT` (nothing written)"
            )
        event = _event(now, by, "closed", note=note, **{"from": str(current.status), "to": str(Status.CLOSED)})
        meta = dict(current.meta) | {"status": str(Status.CLOSED), "history": [*current.meta["history"], event]}
        closed = Problem(records.Record(current.record.path, meta, ""))
        _save(closed)
    return Change(closed, event)


def link(
    root: Path,
    problem: str,
    by: str,
    now: datetime,
    *,
    incidents: Sequence[str] = (),
    articles: Sequence[str] = (),
    changes: Sequence[str] = (),
    kb_dir: Path = kb.KB_DIR,
) -> Change:
    """Link incidents, knowledge articles and changes; each is checked to exist (changes: their shape)."""
    if not by.strip():
        raise BadInput("--by must not be empty")
    if not (incidents or articles or changes):
        raise BadInput("give --incident, --kb or --change to link")
    given = {
        "incidents": _incidents(root, incidents),
        "kb": _articles(articles, kb_dir),
        "changes": _changes(changes),
    }
    with records.locked(directory(root)):
        current = get(root, problem)
        _refuse_closed(current, "link")
        new = {name: [i for i in dict.fromkeys(ids) if i not in current.listed(name)] for name, ids in given.items()}
        if not any(new.values()):
            return Change(current, None)
        event = _event(now, by, "linked", **{name: ids for name, ids in new.items() if ids})
        meta = dict(current.meta) | {name: current.listed(name) + ids for name, ids in new.items()}
        meta["history"] = [*current.meta["history"], event]
        linked = Problem(records.Record(current.record.path, meta, ""))
        _save(linked)
    _link_incidents(root, problem, new["incidents"], by, now)
    return Change(linked, event)


def render_body(meta: Mapping[str, Any]) -> str:
    """The Markdown under the front matter: the same facts, for a person reading the file."""
    opened = parse_stamp(str(meta["opened"]))
    about = [
        f"runbook `{meta['runbook']}`" if meta.get("runbook") else "",
        f"alert {meta.get('alert')}" * bool(meta.get("alert")),
    ]
    lines = [
        f"# {meta['id']} {meta['title']}",
        "",
        "<!-- Rendered from the front matter on every write: change it with `portalops problem`. -->",
        "",
        "| | |",
        "|---|---|",
        f"| status | **{meta['status']}** |",
        f"| opened | {local_text(opened)} by {meta['opened_by']} |",
        *([f"| about | {', '.join(a for a in about if a)} |"] if any(about) else []),
    ]
    for title, name in (
        ("根本原因 Root cause", "root_cause"),
        ("临时解决办法 Workaround", "workaround"),
        ("永久修复 Fix", "fix"),
    ):
        lines += ["", f"## {title}", "", str(meta.get(name) or "").strip() or "_not known yet_"]
    for title, name in (
        ("关联事件 Incidents", "incidents"),
        ("知识库 Knowledge articles", "kb"),
        ("变更 Changes", "changes"),
    ):
        lines += ["", f"## {title}", ""]
        lines += [f"- {item}" for item in meta.get(name) or []] or ["- none"]
    lines += ["", "## 记录 History (UTC)", "", "| time | by | what |", "|---|---|---|"]
    for event in meta["history"]:
        lines.append(f"| {event['ts']} | {event['by']} | {history_text(event).replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def history_text(event: Mapping[str, Any]) -> str:
    what = str(event["event"])
    if "to" in event:
        what += f" {event['from']} -> {event['to']}"
    if event.get("fields"):
        what += f" ({', '.join(event['fields'])})"
    for name in LISTS:
        if event.get(name):
            what += f" {name}: {', '.join(event[name])}"
    return what + (f": {event['note']}" if event.get("note") else "")


def format_list(problems: Sequence[Problem]) -> str:
    lines = [f"{'PROBLEM':<14} {'STATUS':<12} {'OPENED (UTC+8)':<16}  {'INC':>3}  {'ABOUT':<28} TITLE"]
    for problem in problems:
        opened = local_text(parse_stamp(str(problem.meta["opened"])))[:16]
        about = problem.meta.get("runbook") or problem.meta.get("alert") or "-"
        count = len(problem.listed("incidents"))
        lines.append(
            f"{problem.id:<14} {problem.status:<12} {opened:<16}  {count:>3}  {about:<28} {problem.meta['title']}"
        )
    return "\n".join(lines)


def format_problem(problem: Problem, also_linked: Sequence[str] = ()) -> str:
    """``portalops problem show``: the fields, then the history."""
    meta = problem.meta
    lines = [f"{problem.id}: {meta['title']}", f"status     {problem.status}"]
    lines.append(f"opened     {local_text(parse_stamp(str(meta['opened'])))} by {meta['opened_by']}")
    for name in ("runbook", "alert"):
        if meta.get(name):
            lines.append(f"{name:<10} {meta[name]}")
    for name in ("root_cause", "workaround", "fix"):
        text = str(meta.get(name) or "").strip() or "-"
        lines.append(f"{name.replace('_', ' '):<10} " + text.replace("\n", "\n" + " " * 11))
    for name in LISTS:
        for item in problem.listed(name):
            lines.append(f"{LISTS[name]:<10} {item}")
    for incident in also_linked:
        lines.append(f"{'incident':<10} {incident} (its journal links here)")
    for event in meta["history"]:
        lines.append(f"history    {local_text(parse_stamp(str(event['ts'])))}  {event['by']}: {history_text(event)}")
    lines.append(f"record     {problem.record.path}")
    return "\n".join(lines)
