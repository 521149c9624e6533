"""Code finds portalops as installed (`pip install -e .`, make setup), never by editing sys.path, and
nothing outside tests/ imports from tests/ (issue 17).

The hosts' commands likewise import portalops_host from the system Python's path, where the roles install it.
A script that edits sys.path works only from the checkout it sits in and hides a missing install;
a benchmark that imports a test helper breaks when the tests move. Only tests' conftest may touch
sys.path.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from portalops.inventory import REPO_ROOT
from tests.unit.test_dependencies import imports

SYS_PATH = re.compile(r"\bsys\.path\b(?!_)")


def python_files() -> Iterator[Path]:
    """Every Python file of the repository: *.py and extensionless scripts with a python shebang."""
    for directory, subdirectories, names in os.walk(REPO_ROOT):
        subdirectories[:] = sorted(
            d for d in subdirectories if not d.startswith(".") and d not in {"__pycache__", "reports"}
        )
        for name in sorted(names):
            path = Path(directory, name)
            if name.endswith(".py"):
                yield path
            elif "." not in name and path.is_file():
                with path.open("rb") as handle:
                    first = handle.readline(128)
                if first.startswith(b"#!") and b"python" in first:
                    yield path


def relative(path: Path) -> str:
    return path.relative_to(REPO_ROOT).as_posix()


def test_the_walk_sees_the_scripts_and_the_package() -> None:
    found = {relative(p) for p in python_files()}
    assert {"scripts/nightly", "scripts/molecule_all.py", "portalops/cli.py", "tests/unit/conftest.py"} <= found


def test_no_sys_path_edit_outside_tests_conftest() -> None:
    offenders = []
    for path in python_files():
        name = relative(path)
        if (path.name == "conftest.py" and name.startswith("tests/")) or path.resolve() == Path(__file__).resolve():
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if SYS_PATH.search(line):
                offenders.append(f"{name}:{number}: {line.strip()}")
    assert not offenders, "import portalops as installed (the virtualenv's Python), not via sys.path:\n" + "\n".join(
        offenders
    )


def test_nothing_outside_tests_imports_from_tests() -> None:
    offenders = sorted(imports(p for p in python_files() if not relative(p).startswith("tests/")).get("tests", set()))
    assert not offenders, "move what these need into portalops/:\n" + "\n".join(offenders)
