"""The runbook engine records a destructive act it did as a change, linked with its incident.

The fake world of test_runbook_engine: ``wipe_cache`` is the runbook's destructive act.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from portalops import cli
from portalops.runbook import lifecycle
from portalops.runbook.engine import Options, RunResult, run_runbook
from portalops.runbook.hosts import CommandResult
from portalops.runbook.live import controller
from portalops.runbook.outcome import RunbookExit
from portalops.runbook.planning import make_plan
from portalops.service import changes
from tests.unit.test_runbook_engine import INVENTORY, RUNBOOK, World, events, results, run, runtime


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


def run_telling(world: World, tmp_path: Path, options: Options, answers: list[bool], told: list[str]) -> RunResult:
    told_runtime = runtime(world, tmp_path, answers=answers)
    told_runtime.opened = told.append
    plan = make_plan(RUNBOOK, INVENTORY, options.limit, {"python": "python", "inventory": "i", "repo": "."})
    return run_runbook(RUNBOOK, plan, told_runtime, options)


def test_the_controller_tells_its_playbooks_the_incident_once_open_or_resumed(tmp_path: Path) -> None:
    local, opened = controller({"PATH": os.environ["PATH"]})
    assert local.run(f"echo ${{{changes.INCIDENT_VARIABLE}:-none}}", 10).stdout.strip() == "none"
    told: list[str] = []
    world = dirty_web2()
    first = run_telling(world, tmp_path, Options(), [True, False], told)  # declined at the wipe
    again = run_telling(world, tmp_path, Options(resume=first.incident), [True, True], told)
    assert again.exit is RunbookExit.RECOVERED and told == [first.incident, first.incident]
    opened(first.incident)
    assert local.run(f"echo ${changes.INCIDENT_VARIABLE}", 10).stdout.strip() == first.incident
