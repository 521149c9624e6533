"""Dependencies honest: what pyproject.toml and the requirements files declare is what the code uses.

- Runtime (pyproject ``dependencies`` = requirements.in): every third-party module imported by the
  code an operator runs (portalops/, runbooks/, scripts/, the Ansible plugins in plugins/) comes
  from a declared distribution, and every declared distribution is imported (or, for the two that
  are not imported, used the way its entry below says).
- Development (requirements-dev.in): the same for the tests and the roles' molecule tests, and every
  tool is run by the Makefile or the scripts.
- Host-side code (portalops_host/, the scripts in roles/*/files) runs on the managed hosts' Debian Python:
  standard library only.
- Both locks pin every package, with hashes, the development lock at the runtime lock's versions.

Distribution names map to import names here by hand (pyyaml gives ``yaml``, chinesecalendar gives
``chinese_calendar``): a new dependency needs an entry, which is the point.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_CODE = ("portalops", "runbooks", "scripts", "plugins")
FIRST_PARTY = {"portalops", "portalops_host", "tests"}
# Modules that exist only for the type checker (``if TYPE_CHECKING:`` imports).
TYPING_ONLY = {"_typeshed"}

# Runtime distributions -> the top-level modules they provide (empty: used without an import).
RUNTIME_IMPORTS: dict[str, set[str]] = {
    "ansible-core": {"ansible"},
    "ansible": set(),  # the collections, see collections_used()
    "mitogen": {"mitogen", "ansible_mitogen"},
    "fabric": {"fabric"},  # portalops.runbook.hosts: the runbooks' SSH connections
    "paramiko": {"paramiko"},
    "pyyaml": {"yaml"},
    "chinesecalendar": {"chinese_calendar"},
    "holidays": {"holidays"},
    "tzdata": set(),  # zoneinfo's database where the system has none, see test below
    "aiohttp": {"aiohttp"},  # portalops.responder's HTTP server and Alertmanager client
}
# Development distributions imported by the tests and the molecule tests.
DEV_IMPORTS: dict[str, set[str]] = {
    "pytest": {"pytest"},
    "pytest-testinfra": {"testinfra"},
    "cryptography": {"cryptography"},
}
# Development tools that are run, not imported: the command that must appear in the Makefile or
# scripts/ (a stub package: the module it types, imported by portalops/, which mypy checks).
DEV_COMMANDS: dict[str, str] = {
    "ruff": "ruff check",
    "mypy": "mypy",
    "yamllint": "yamllint",
    "ansible-lint": "ansible-lint",
    "molecule": "molecule",
}
DEV_STUBS: dict[str, str] = {"types-pyyaml": "yaml", "types-paramiko": "paramiko"}
# molecule's podman driver, named in the base molecule configuration.
DEV_DRIVERS: dict[str, str] = {"molecule-plugins": "name: podman"}


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(line: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line.strip())
    assert match, f"not a requirement: {line!r}"
    return normalize(match.group(0))


def requirement_lines(path: Path) -> list[str]:
    """The requirements of a .in file, without comments and the -r/-c lines."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("-")]


def pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def declared_runtime() -> list[str]:
    project = pyproject()["project"]
    assert isinstance(project, dict)
    return [str(spec) for spec in project["dependencies"]]


def build_requires() -> list[str]:
    system = pyproject()["build-system"]
    assert isinstance(system, dict)
    return [str(spec) for spec in system["requires"]]


def is_python_script(path: Path) -> bool:
    first = path.read_bytes()[:128].split(b"\n", 1)[0]
    return first.startswith(b"#!") and b"python" in first


def python_files(*tops: str) -> Iterator[Path]:
    for top in tops:
        for path in sorted((ROOT / top).rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts:
                continue
            if path.suffix == ".py" or (not path.suffix and is_python_script(path)):
                yield path


def imports(paths: Iterable[Path]) -> dict[str, set[str]]:
    """Top-level module -> the files (relative) that import it, absolute imports only."""
    found: dict[str, set[str]] = {}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    return found


def third_party(found: dict[str, set[str]], local: set[str] = FIRST_PARTY) -> dict[str, set[str]]:
    return {
        module: files
        for module, files in found.items()
        if module not in sys.stdlib_module_names and module not in local and module not in TYPING_ONLY
    }


def molecule_tests() -> list[Path]:
    return sorted(p for p in (ROOT / "roles").glob("*/molecule/**/*.py") if "__pycache__" not in p.parts)


def collections_used() -> set[str]:
    """Collections other than ansible.builtin named by the roles, playbooks and ansible.cfg."""
    texts = [p.read_text() for top in ("roles", "playbooks") for p in (ROOT / top).rglob("*.yml")]
    texts.append((ROOT / "ansible.cfg").read_text())
    fqcn = re.compile(r"(?<![\w.])([a-z_]+\.[a-z_]+)\.[a-z_]+\b")
    names = {m.group(1) for text in texts for m in fqcn.finditer(text)}
    # ansible-core's own namespace is ansible.builtin; community.*, ansible.posix, containers.* ship
    # in the `ansible` package.
    return {n for n in names if n.split(".")[0] in {"community", "containers"} or n == "ansible.posix"}


def lock_pins(path: Path) -> dict[str, str]:
    """name -> version of every package a lock pins; fails on a pin without a hash."""
    pins: dict[str, str] = {}
    text = path.read_text()
    for block in re.split(r"\n(?=\S)", text):
        if block.startswith("#") or not block.strip():
            continue
        match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", block)
        assert match, f"{path.name}: not an exact pin: {block.splitlines()[0]!r}"
        assert "--hash=sha256:" in block, f"{path.name}: {match.group(1)} has no hash"
        pins[normalize(match.group(1))] = match.group(2)
    return pins


# --- runtime -------------------------------------------------------------------------------------


def test_requirements_in_is_pyproject_plus_the_build_backend() -> None:
    want = sorted(declared_runtime() + build_requires())
    assert sorted(requirement_lines(ROOT / "requirements.in")) == want, (
        "requirements.in must list pyproject.toml's dependencies and build-system requires, same specifiers"
    )


def test_every_declared_runtime_dependency_has_a_known_import_mapping() -> None:
    unknown = {requirement_name(spec) for spec in declared_runtime()} - set(RUNTIME_IMPORTS)
    assert not unknown, f"map these distributions to their import names in RUNTIME_IMPORTS: {sorted(unknown)}"


def test_every_third_party_import_of_the_runtime_code_is_declared() -> None:
    declared = {requirement_name(spec) for spec in declared_runtime()}
    provided = {module for dist in declared for module in RUNTIME_IMPORTS.get(dist, set())}
    missing = {m: sorted(f) for m, f in third_party(imports(python_files(*RUNTIME_CODE))).items() if m not in provided}
    assert not missing, f"imported but not in pyproject.toml dependencies: {missing}"


@pytest.mark.parametrize("dist", sorted(RUNTIME_IMPORTS))
def test_every_declared_runtime_dependency_is_used(dist: str) -> None:
    assert dist in {requirement_name(spec) for spec in declared_runtime()}, f"{dist} is mapped but not declared"
    used = imports(python_files(*RUNTIME_CODE))
    if dist == "ansible":
        assert collections_used(), "no collection beyond ansible.builtin is used: ansible-core is enough"
    elif dist == "tzdata":
        # zoneinfo falls back to the tzdata package when the system has no zone database.
        assert "zoneinfo" in used, "nothing uses zoneinfo any more: tzdata is not needed"
    else:
        assert RUNTIME_IMPORTS[dist] & set(used), f"{dist} is declared but nothing imports {RUNTIME_IMPORTS[dist]}"


def test_ansible_cfg_strategy_is_the_declared_mitogen() -> None:
    cfg = (ROOT / "ansible.cfg").read_text()
    assert re.search(r"^strategy\s*=\s*mitogen_", cfg, re.M)
    assert "ansible_mitogen" in imports(python_files("plugins"))


# --- development ---------------------------------------------------------------------------------


def test_requirements_dev_in_builds_on_the_runtime() -> None:
    text = (ROOT / "requirements-dev.in").read_text().splitlines()
    assert "-r requirements.in" in text
    assert "-c requirements.lock" in text, "the development lock must keep the runtime lock's versions"
    dev = {requirement_name(line) for line in requirement_lines(ROOT / "requirements-dev.in")}
    runtime = {requirement_name(line) for line in requirement_lines(ROOT / "requirements.in")}
    assert not dev & runtime, f"declared twice: {sorted(dev & runtime)}"


def test_every_third_party_import_of_the_tests_is_declared() -> None:
    runtime = {requirement_name(spec) for spec in declared_runtime()}
    dev = {requirement_name(line) for line in requirement_lines(ROOT / "requirements-dev.in")}
    provided = {m for d in runtime for m in RUNTIME_IMPORTS.get(d, set())}
    provided |= {m for d in dev for m in DEV_IMPORTS.get(d, set())}
    found = third_party(imports([*python_files("tests"), *molecule_tests()]))
    missing = {m: sorted(f) for m, f in found.items() if m not in provided}
    assert not missing, f"imported by tests but declared nowhere (requirements-dev.in): {missing}"


def test_every_development_requirement_is_used() -> None:
    made = (ROOT / "Makefile").read_text() + "".join(p.read_text() for p in python_files("scripts"))
    tested = imports([*python_files("tests"), *molecule_tests()])
    typed = imports(python_files("portalops"))
    molecule_config = (ROOT / ".config/molecule/config.yml").read_text()
    unused = []
    for line in requirement_lines(ROOT / "requirements-dev.in"):
        dist = requirement_name(line)
        if dist in DEV_IMPORTS:
            ok = bool(DEV_IMPORTS[dist] & set(tested))
        elif dist in DEV_COMMANDS:
            ok = DEV_COMMANDS[dist] in made
        elif dist in DEV_STUBS:
            ok = DEV_STUBS[dist] in typed
        elif dist in DEV_DRIVERS:
            ok = DEV_DRIVERS[dist] in molecule_config
        else:
            pytest.fail(f"{dist}: say how it is used (DEV_IMPORTS, DEV_COMMANDS, DEV_STUBS or DEV_DRIVERS)")
        if not ok:
            unused.append(dist)
    assert not unused, f"declared in requirements-dev.in but not used: {unused}"


# --- host side -----------------------------------------------------------------------------------


def test_host_side_scripts_use_the_standard_library_only() -> None:
    files = [p for p in python_files("roles") if "files" in p.relative_to(ROOT).parts[2:3]]
    files += list(python_files("portalops_host"))
    assert files
    siblings = {p.stem for p in files}
    found = third_party(imports(files), local=siblings | {"portalops_host"})
    assert not found, f"the hosts' Python has the standard library only: {found}"


# --- locks ---------------------------------------------------------------------------------------


def test_locks_pin_every_requirement_with_hashes() -> None:
    runtime = lock_pins(ROOT / "requirements.lock")
    dev = lock_pins(ROOT / "requirements-dev.lock")
    for name in {requirement_name(line) for line in requirement_lines(ROOT / "requirements.in")}:
        assert name in runtime, f"requirements.lock does not pin {name}"
    for name in {requirement_name(line) for line in requirement_lines(ROOT / "requirements-dev.in")}:
        assert name in dev, f"requirements-dev.lock does not pin {name}"
    differ = {name: (v, dev.get(name)) for name, v in runtime.items() if dev.get(name) != v}
    assert not differ, f"requirements-dev.lock must hold the runtime at requirements.lock's versions: {differ}"


def test_locks_carry_setuptools_for_the_editable_install() -> None:
    # `make setup` installs portalops with --no-build-isolation: the build backend comes from the lock.
    for lock in ("requirements.lock", "requirements-dev.lock"):
        assert "setuptools" in lock_pins(ROOT / lock), f"{lock} must pin setuptools"
