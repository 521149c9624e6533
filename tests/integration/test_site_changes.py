"""The session's site.yml converge (the ``converged`` fixture) is recorded as a change by the callback
(plugins/callback/portalops_changes.py, enabled in ansible.cfg), read back with `portalops change`.

Converges nothing new: it only reads the record the fixture's run left. The module is imported at
collection, before any fixture runs, so a record started after ``COLLECTED`` is this session's.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from portalops.lab.config import LabConfig
from portalops.service import changes
from tests.integration.helpers import portalops

COLLECTED = datetime.now(UTC)


def test_the_sessions_converge_is_a_change_with_every_lab_host(converged: LabConfig) -> None:
    shown = portalops("change", "list", "--json", "--since", COLLECTED.isoformat())
    assert shown.returncode == 0, shown.stderr
    # Runbooks' and restores' changes may come first (the modules that wait run right after the converge): a
    # runbook's record has no playbook. The oldest site.yml run since collection is the converge's.
    runs = [c for c in json.loads(shown.stdout) if c.get("playbook") == "playbooks/site.yml"]
    assert runs, f"no change for playbooks/site.yml since {COLLECTED.isoformat()}: {shown.stdout[-2000:]}"
    change = runs[0]
    assert change["kind"] == "playbook" and change["result"] == "ok" and change["by"] == changes.user()
    hosts = {h["host"]: h for h in change["hosts"]}
    assert {h.name for h in converged.hosts} <= set(hosts)
    assert all(h["failed"] == 0 and h["unreachable"] == 0 and h["ok"] > 0 for h in hosts.values())
    assert not [name for name in change.get("extra_vars", []) if "=" in name]  # names, never values
