"""Filters of the patching role's patch-run entry points: the judgements of portalops.patch_run in Jinja.

A thin shim: the functions, their messages and their tests live in portalops/patch_run.py
(tests/unit/test_patch_run.py); this file only names them for Jinja and gives the pre-check its
limits and the clock. It is the role's own (roles/patching/filter_plugins), so every play that loads
the role has them, as the hardening role has its filter. portalops.patch_run is loaded from this
plugin's own checkout (roles/patching/filter_plugins/../../../portalops), as the change callback loads
its module, so a run judges with the code next to its playbook, not with another portalops on the path
(under cron, or from a worktree); the module needs only the standard library.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
PRIVATE = "_portalops_patching_filter_patch_run"


def _patch_run() -> Any:
    """portalops.patch_run of this checkout (loaded once), or the installed one where there is no checkout."""
    if PRIVATE in sys.modules:
        return sys.modules[PRIVATE]
    path = REPO / "portalops" / "patch_run.py"
    spec = importlib.util.spec_from_file_location(PRIVATE, path) if path.is_file() else None
    if spec is None or spec.loader is None:
        return importlib.import_module("portalops.patch_run")
    module = importlib.util.module_from_spec(spec)
    sys.modules[PRIVATE] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


def precheck_problems(
    apt: Mapping[str, Any],
    *,
    host_locked: bool,
    disk: str,
    backup_status: str | None,
    min_free_mb: int,
    max_backup_age_hours: float,
    ignore_backup_age: bool,
) -> list[str]:
    """patch_run.precheck_problems with the limits as Jinja has them, judged now."""
    run = _patch_run()
    problems: list[str] = run.precheck_problems(
        host_locked=bool(host_locked),
        apt=apt,
        disk=str(disk),
        backup_status=None if backup_status is None else str(backup_status),
        limits=run.Limits(int(min_free_mb), float(max_backup_age_hours), bool(ignore_backup_age)),
        now=time.time(),
    )
    return problems


class FilterModule:
    """patching_* filters for roles/patching/tasks/{start,precheck,upgrade,gate}.yml."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        run = _patch_run()
        return {
            "patching_rollout": run.rollout,
            "patching_precheck_problems": precheck_problems,
            "patching_pending": run.pending,
            "patching_pending_lines": run.pending_lines,
            "patching_restarts": run.needrestart_services,
            "patching_reboot": run.reboot_verdict,
            "patching_tier": run.tier_of,
            "patching_gate_services": run.gate_services,
            "patching_gate_problems": run.gate_problems,
        }
