"""Issue 17's rule: no Python program in a string longer than one line. A program sent to a host belongs in
portalops_host (a ``portalops-host`` command), one the controller runs in portalops or a filter plugin: where
ruff, mypy and the unit tests see it. A one-line ``python3 -c "import json; print(...)"`` is still allowed."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from portalops.inventory import REPO_ROOT

WHERE = ("portalops", "runbooks", "roles", "playbooks", "scripts")
# `python3 -c "..."` (any python, `{{ python }}` too, either quote) whose quoted program holds a newline.
INLINE = re.compile(r"python[0-9.]*(?:\s*\}\})?\s+-c\s+([\"'])(?:(?!\1).)*\n", re.S)
# A Python program fed on stdin: `python3 - <<EOF`, `python3 <<'EOF'`.
HEREDOC = re.compile(r"python[0-9.]*(\s*\}\})?(\s+-)?\s*<<-?\s*['\"]?\w+")
# A string whose first line starts a Python program and which goes on: what the two above would send.
PROGRAM = re.compile(r"\A\s*(import \w|from [\w.]+ import )[^\n]*\n\s*\S")


def offending(text: str) -> bool:
    return bool(INLINE.search(text) or HEREDOC.search(text) or PROGRAM.search(text))


def python_strings(path: Path) -> Iterator[tuple[int, str]]:
    """Each string literal of ``path`` (implicit concatenations joined, f-strings' literal parts with their
    fields as ``{}``) and its line; docstrings too (a docstring holding a program is one)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value
        elif isinstance(node, ast.JoinedStr):
            parts = [v.value if isinstance(v, ast.Constant) else "{}" for v in node.values]
            yield node.lineno, "".join(str(part) for part in parts)


def yaml_strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from yaml_strings(key)
            yield from yaml_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from yaml_strings(item)


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads Ansible's ``!vault`` and ``!unsafe`` tags as the plain strings they wrap."""


_Loader.add_constructor("!vault", lambda loader, node: loader.construct_scalar(node))  # type: ignore[arg-type]
_Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))  # type: ignore[arg-type]


def findings() -> list[str]:
    found = []
    for top in WHERE:
        for path in sorted((REPO_ROOT / top).rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts:
                continue
            where = path.relative_to(REPO_ROOT)
            if path.suffix == ".py":
                found += [f"{where}:{line}" for line, text in python_strings(path) if offending(text)]
            elif path.suffix in (".yml", ".yaml"):
                for document in yaml.load_all(path.read_text(), Loader=_Loader):
                    found += [
                        f"{where}: {text.splitlines()[0][:60]!r}" for text in yaml_strings(document) if offending(text)
                    ]
            elif path.suffix in (".j2", ".sh", "") and path.stat().st_size < 1_000_000:
                text = path.read_text(errors="replace")
                if INLINE.search(text) or HEREDOC.search(text):
                    found.append(str(where))
    return found


def test_no_python_program_in_a_string_longer_than_one_line() -> None:
    assert findings() == []


@pytest.mark.parametrize(
    "text",
    [
        'python3 -c "import json, sys\nprint(1)\n"',
        '{{ python }} -c "import json\nsys.exit(0)"',
        "tail log | python3 -c '\nimport sys\n'",
        "python3 - <<'EOF'\nprint(1)\nEOF\n",
        "python3 <<EOF\nprint(1)\nEOF",
        "import ipaddress, sys\nclient = ipaddress.ip_address(sys.argv[1])\n",
        "from cryptography import x509\npaths = []\n",
    ],
)
def test_programs_of_more_than_one_line_are_found(text: str) -> None:
    assert offending(text)


@pytest.mark.parametrize(
    "text",
    [
        "python3 -c \"import json; print(json.load(open('/x'))['a'])\"",
        "/usr/local/sbin/portalops-host check certificates --days 7",
        "status_dir=$(/usr/local/sbin/portalops-host backup status-dir); \nnext",
        "nft -f - <<'EOF'\nflush ruleset\nEOF\n",
        "importance: high\nfrom here on",
    ],
)
def test_one_line_programs_and_other_text_are_not(text: str) -> None:
    assert not offending(text)
