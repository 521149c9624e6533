"""The runbook engine records a destructive act it did as a change, linked with its incident.

The fake world of test_runbook_engine: ``wipe_cache`` is the runbook's destructive act.
"""

from __future__ import annotations

import io
from pathlib import Path

from portalops import cli
from portalops.runbook import lifecycle
from portalops.runbook.engine import Options
from portalops.runbook.hosts import CommandResult
from portalops.runbook.outcome import RunbookExit
from portalops.service import changes
from tests.unit.test_runbook_engine import World, events, results, run


def dirty_web2() -> World:
    world = World()
    world.up["web2"]["clean"] = False
    return world


def test_a_destructive_act_done_is_a_change_linked_both_ways(tmp_path: Path) -> None:
    result = run(dirty_web2(), tmp_path, Options(yes=True))
    assert result.exit is RunbookExit.RECOVERED
    found, malformed = changes.load(tmp_path / "incidents")
    assert [c.id for c in found] == ["CHG-2026-001"] and not malformed  # not the restart: it is not destructive
    change = found[0]
    assert change.meta["kind"] == "runbook" and change.meta["result"] == "ok"
    assert change.meta["title"] == "runbook t_portal_down wipe_cache: Wipe the cache"
    assert change.meta["incident"] == result.incident and change.meta["step"] == "wipe_cache"
    assert change.meta["hosts"] == [{"host": "web2", "result": "done"}]  # only where its check failed
    assert change.meta["started"] < change.meta["ended"]
    journal = events(tmp_path, result.incident)
    assert lifecycle.links(journal)["change"] == ["CHG-2026-001"]
    record = (tmp_path / "incidents" / result.incident / "incident.md").read_text()
    assert "linked to change CHG-2026-001" in record
    out, err = io.StringIO(), io.StringIO()
    assert cli.main(["change", "show", change.id, "--incidents", str(tmp_path / "incidents")], out=out, err=err) == 0
    assert (
        f"incident   {result.incident}" in out.getvalue() and f"linked     incident {result.incident}" in out.getvalue()
    )


class WipeFails(World):
    def run(self, host: str, command: str) -> CommandResult:
        if command == "wipe":
            return CommandResult(1, "", "rm: cannot remove: Read-only file system", 0.0)
        return super().run(host, command)


def test_a_destructive_act_that_failed_is_a_failed_change(tmp_path: Path) -> None:
    world = WipeFails()
    world.up["web2"]["clean"] = False
    result = run(world, tmp_path, Options(yes=True))
    assert results(tmp_path, result.incident)["wipe_cache"] == "failed"
    change = changes.load(tmp_path / "incidents")[0][0]
    assert change.meta["result"] == "failed" and change.meta["hosts"] == [{"host": "web2", "result": "failed"}]


def test_no_change_when_the_act_was_not_needed_or_declined(tmp_path: Path) -> None:
    run(World(), tmp_path, Options(yes=True))  # every cache clean: nothing to wipe
    declined = run(dirty_web2(), tmp_path, Options(), answers=[True, False])
    assert results(tmp_path, declined.incident)["wipe_cache"] == "declined"
    assert changes.load(tmp_path / "incidents") == ([], [])


def test_a_change_that_cannot_be_recorded_is_journalled_and_the_run_goes_on(tmp_path: Path) -> None:
    (tmp_path / "incidents").mkdir()
    (tmp_path / "incidents" / "changes").write_text("not a directory")
    result = run(dirty_web2(), tmp_path, Options(yes=True))
    assert result.exit is RunbookExit.RECOVERED
    missed = events(tmp_path, result.incident, "change_not_recorded")
    assert [e["step"] for e in missed] == ["wipe_cache"] and missed[0]["reason"]
    assert not lifecycle.links(events(tmp_path, result.incident))["change"]
