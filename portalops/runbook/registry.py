"""Find the runbooks: every ``runbooks/*.py`` defining ``RUNBOOK``, named after its id."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from portalops.errors import BadInput
from portalops.inventory import REPO_ROOT
from portalops.runbook.model import ID_RE, Runbook

RUNBOOKS_DIR = REPO_ROOT / "runbooks"


def load_file(path: Path) -> Runbook:
    spec = importlib.util.spec_from_file_location(f"portalops_runbooks.{path.stem}", path)
    if spec is None or spec.loader is None:
        raise BadInput(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ValueError as exc:
        raise BadInput(f"{path}: {exc}") from exc
    runbook = getattr(module, "RUNBOOK", None)
    if not isinstance(runbook, Runbook):
        raise BadInput(f"{path}: defines no RUNBOOK")
    if runbook.id != path.stem:
        raise BadInput(f"{path}: RUNBOOK.id is {runbook.id!r}; the file must be named after it")
    try:
        source = str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        source = str(path)
    return Runbook(**{**runbook.__dict__, "source": source})


def discover(root: Path = RUNBOOKS_DIR) -> dict[str, Runbook]:
    return {path.stem: load_file(path) for path in sorted(root.glob("[a-z]*.py"))}


def get(runbook_id: str, root: Path = RUNBOOKS_DIR) -> Runbook:
    path = root / f"{runbook_id}.py"
    if not ID_RE.match(runbook_id) or not path.is_file():
        known = ", ".join(sorted(discover(root))) or "none"
        raise BadInput(f"no runbook {runbook_id!r}; known: {known}")
    return load_file(path)
