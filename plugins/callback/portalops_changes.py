"""Record each run of a configuring playbook as a portalops change (``portalops change list``).

A thin shim over :mod:`portalops.service.changes`, which writes the record: this file only gathers
what Ansible knows (the playbook, the limit, each host's counts, the reports the run names) and
hands it over when the run ends. A ``--check`` run changes nothing and is not recorded. Recording
never fails the play: when it cannot write, it warns. No value of a variable is ever read; of the
extra vars only their names are kept (a value may be a secret).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ansible import context
from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: portalops_changes
    type: aggregate
    short_description: record a run of a configuring playbook as a portalops change
    description:
      - When the playbook is one of O(playbooks) and the run is not in check mode, writes
        INCIDENTS/changes/CHG-<year>-<n>.md at the end of the run (who, what, when, hosts with their
        ok/changed/failed/unreachable counts, result, limit, tags, the reports the run names).
      - A failure to record is a warning, never a failed play.
    requirements:
      - the portalops package of this checkout (plugins/callback/../../portalops) and its dependencies
      - enabled in ansible.cfg callbacks_enabled
    options:
      playbooks:
        description:
          - playbook file names whose runs are changes (comma-separated in the environment)
          - default portalops.service.changes.PLAYBOOKS - site.yml, patch.yml, the tier playbooks,
            monitoring.yml, backups.yml, logs.yml and restore_drill.yml
        type: list
        elements: str
        env:
          - name: PORTALOPS_CHANGE_PLAYBOOKS
        ini:
          - section: callback_portalops_changes
            key: playbooks
      records_dir:
        description: the records directory (changes go to its changes/); default the checkout's incidents/
        type: path
        env:
          - name: PORTALOPS_INCIDENTS_DIR
        ini:
          - section: callback_portalops_changes
            key: records_dir
"""

REPO = Path(__file__).resolve().parents[2]


def _changes() -> Any:
    """portalops.service.changes from this plugin's own checkout (not another portalops on the path)."""
    package = REPO / "portalops" / "__init__.py"
    if "portalops" not in sys.modules and package.is_file():
        spec = importlib.util.spec_from_file_location("portalops", package, submodule_search_locations=[])
        if spec and spec.loader:
            module = importlib.util.module_from_spec(spec)
            module.__path__ = [str(package.parent)]
            sys.modules["portalops"] = module
            spec.loader.exec_module(module)
    return importlib.import_module("portalops.service.changes")


class CallbackModule(CallbackBase):  # type: ignore[misc]
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "portalops_changes"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._playbooks: list[str] = []  # the wanted ones of this command (it may name several)
        self._started = datetime.now(UTC)
        self._extra_vars: set[str] = set()
        self._reports: list[str] = []

    def _recording(self) -> bool:
        return bool(self._playbooks) and not context.CLIARGS.get("check", False)

    def v2_playbook_on_start(self, playbook: Any) -> None:
        if not self._playbooks:
            self._started = datetime.now(UTC)
        try:
            name = str(getattr(playbook, "_file_name", "") or "")
            changes = _changes()
            listed = [str(p).strip() for p in self.get_option("playbooks") or [] if str(p).strip()] or changes.PLAYBOOKS
            if changes.wanted(name, listed):
                self._playbooks.append(name)
        except Exception as exc:  # recording must never fail the play
            self._warn(f"cannot tell whether {getattr(playbook, '_file_name', '?')} is a change: {exc}")

    def v2_playbook_on_play_start(self, play: Any) -> None:
        manager = getattr(play, "_variable_manager", None)
        with contextlib.suppress(Exception):  # only the names, and only when Ansible offers them
            self._extra_vars.update(str(name) for name in getattr(manager, "extra_vars", {}) or {})

    def _collect(self, result: Any) -> None:
        if not self._recording():
            return
        with contextlib.suppress(Exception):  # a report link is a nicety; the record is written anyway
            found = getattr(result, "result", None) or getattr(result, "_result", {})
            self._reports += _changes().report_links(found.get("stdout_lines") or [])

    def v2_runner_on_ok(self, result: Any) -> None:
        self._collect(result)

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._collect(result)

    def v2_playbook_on_stats(self, stats: Any) -> None:
        if not self._recording():
            return
        try:
            changes = _changes()
            root = self.get_option("records_dir") or changes.default_root()
            hosts = {str(host): stats.summarize(host) for host in sorted(stats.processed)}
            change = changes.record_playbook(
                Path(root),
                self._playbooks,
                self._started,
                datetime.now(UTC),
                hosts,
                limit=str(context.CLIARGS.get("subset") or ""),
                tags=[str(t) for t in context.CLIARGS.get("tags") or () if t != "all"],
                extra_vars=sorted(self._extra_vars),
                reports=self._reports,
                controller=socket.gethostname(),
                incident=os.environ.get(changes.INCIDENT_VARIABLE, ""),  # a runbook step's playbook
            )
            # On stderr: stdout may be a JSON callback's document that a program reads.
            self._display.display(f"portalops: change {change.id} recorded ({change.record.path})", stderr=True)
        except Exception as exc:  # recording must never fail the play
            self._warn(f"the change was NOT recorded: {exc}")

    def _warn(self, text: str) -> None:
        self._display.warning(f"portalops_changes: {text}")
