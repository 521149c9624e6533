"""Plain-file records: YAML front matter and Markdown, one file per record, fit for a git repository.

An auditor reads them with any editor, and ``git log`` is their history. Every write is checked
against the record's schema first, goes to a temporary file in the same directory and replaces the
record atomically, under an exclusive lock on the directory, so two writers (a person and the
responder, two people) never lose each other's change. A record that does not parse or fails its
schema on disk is named with exit 2 and never written over: a person mends it by hand.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from portalops.errors import BadInput

FENCE = "---"
# A schema: field -> (accepted type, required). A list field holds strings unless said otherwise.
Schema = Mapping[str, tuple[type, bool]]
Check = Callable[[Mapping[str, Any]], list[str]]


class _Dumper(yaml.SafeDumper):
    """Multi-line texts as ``|`` blocks, so a root cause reads as written and diffs line by line."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


@dataclass(frozen=True)
class Record:
    path: Path
    meta: dict[str, Any]
    body: str


@dataclass(frozen=True)
class Kept:
    """A kind of record (a problem, a change) seen through its front matter."""

    record: Record

    @property
    def meta(self) -> dict[str, Any]:
        return self.record.meta

    @property
    def id(self) -> str:
        return str(self.meta["id"])


def split(text: str) -> tuple[dict[str, Any], str]:
    """The front matter and the body; ValueError when the file is not a record."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].rstrip("\r\n") != FENCE:
        raise ValueError("it does not start with a '---' line (YAML front matter)")
    end = next((n for n, line in enumerate(lines[1:], 1) if line.rstrip("\r\n") == FENCE), None)
    if end is None:
        raise ValueError("its front matter has no closing '---' line")
    try:
        meta = yaml.safe_load("".join(lines[1:end]))
    except yaml.YAMLError as exc:
        raise ValueError(f"its front matter is not YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(meta, dict):
        raise ValueError("its front matter is not a mapping of fields")
    return meta, "".join(lines[end + 1 :]).lstrip("\n")


def render(meta: Mapping[str, Any], body: str) -> str:
    front = yaml.dump(dict(meta), Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=100)
    return f"{FENCE}\n{front}{FENCE}\n\n{body.rstrip()}\n"


def problems(meta: Mapping[str, Any], schema: Schema, check: Check | None = None) -> list[str]:
    """What is wrong with a record's fields: missing, unknown, of the wrong type; then ``check``'s."""
    found = [f"{name}: missing" for name, (_, required) in schema.items() if required and name not in meta]
    found += [f"{name}: unknown field" for name in meta if name not in schema]
    for name, value in meta.items():
        if name not in schema:
            continue
        kind = schema[name][0]
        if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
            found.append(f"{name}: a {kind.__name__} is wanted, not {type(value).__name__} {value!r}")
        elif isinstance(value, list) and not all(isinstance(item, str | dict) for item in value):
            found.append(f"{name}: a list of texts is wanted")
    if not found and check:
        found += check(meta)
    return found


def read(path: Path, schema: Schema, check: Check | None = None, what: str = "record") -> Record:
    """The record at ``path``; a BadInput naming the file when it is malformed (it is not touched)."""
    try:
        meta, body = split(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(f"{what} {path} is malformed: {exc}; mend it by hand (nothing written)") from None
    wrong = problems(meta, schema, check)
    if wrong:
        raise BadInput(f"{what} {path} is malformed: {'; '.join(wrong)}; mend it by hand (nothing written)")
    return Record(path, meta, body)


def read_named(path: Path, schema: Schema, check: Check | None, what: str) -> Record:
    """:func:`read`, and the record's id must be its file name (``<id>.md``)."""
    record = read(path, schema, check, what)
    if path.name != f"{record.meta['id']}.md":
        raise BadInput(f"{what} {path} is malformed: its id {record.meta['id']} is not its file name")
    return record


def write(record: Record, schema: Schema, check: Check | None = None, what: str = "record") -> Path:
    """Check the record against its schema, then replace the file atomically (fsync'd)."""
    wrong = problems(record.meta, schema, check)
    if wrong:
        raise BadInput(f"{what} {record.meta.get('id', record.path.name)} would be invalid: {'; '.join(wrong)}")
    path = record.path
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("w", encoding="utf-8") as handle:
            handle.write(render(record.meta, record.body))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return path


@contextmanager
def locked(directory: Path) -> Iterator[Path]:
    """An exclusive lock on a records directory (its ``.lock`` file), held until the change is written."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("a", encoding="utf-8") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        yield directory
