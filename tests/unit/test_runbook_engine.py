"""Whole incidents against a fake world: check before act, verify, escalate, journal, resume."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from portalops.errors import BadInput
from portalops.inventory import parse_inventory
from portalops.runbook import Level, Runbook, act, diagnose, escalate, manual, verify
from portalops.runbook.engine import Options, RunResult, Runtime, run_runbook
from portalops.runbook.hosts import UNREACHABLE, CommandResult
from portalops.runbook.journal import read_events
from portalops.runbook.model import DESTRUCTIVE_WAIT
from portalops.runbook.notify import Channel, Notifier
from portalops.runbook.outcome import RunbookExit
from portalops.runbook.planning import describe, make_plan
from portalops.runbook.plans import render_plan

START = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)  # Tuesday 10:00 in Beijing

RUNBOOK = Runbook(
    id="t_portal_down",
    title_zh="门户无法访问",
    title_en="Portal down",
    level=Level.L1,
    triggers=(("打不开", "does not load"),),
    targets=("web", "db"),
    steps=(
        diagnose("probe", "探测", "Probe", run="probe"),
        diagnose("nginx", "查 nginx", "Check nginx", on=("web",), run="is-active nginx"),
        act("start_db", "启动数据库", "Start the database", on=("db",), check="is-active db", run="restart db"),
        act("start_nginx", "启动 nginx", "Start nginx", on=("web",), check="is-active nginx", run="restart nginx"),
        act("wipe_cache", "清缓存", "Wipe the cache", on=("web",), check="is-clean", run="wipe", destructive=True),
        verify("back", "恢复", "Back", run="probe", attempts=2, interval=0.5),
        escalate("up", "升级", "Escalate", to_zh="二线", to_en="second line", on=("web",), run="logs"),
    ),
)

INVENTORY = parse_inventory(
    {
        "_meta": {"hostvars": {"web1": {}, "web2": {}, "db1": {}}},
        "web": {"hosts": ["web1", "web2"]},
        "db": {"hosts": ["db1"]},
    },
    "inventory/test",
)


@dataclass
class World:
    """Hosts with services that are up or down; commands observe and change them."""

    up: dict[str, dict[str, bool]] = field(
        default_factory=lambda: {
            "web1": {"nginx": False, "clean": True},
            "web2": {"nginx": True, "clean": True},
            "db1": {"db": True},
        }
    )
    broken: set[str] = field(default_factory=set)  # units that fail to start
    unreachable: set[str] = field(default_factory=set)
    interrupt_on: str = ""
    starting: dict[str, int] = field(default_factory=dict)  # host -> checks that cannot tell yet (-1: all)
    hangs: bool = False  # those checks time out instead of exiting 75
    log: list[tuple[str, str]] = field(default_factory=list)

    def run(self, host: str, command: str) -> CommandResult:
        if command == self.interrupt_on:
            self.interrupt_on = ""
            raise KeyboardInterrupt
        self.log.append((host, command))
        if host in self.unreachable:
            return CommandResult(UNREACHABLE, "", f"{host}: ssh: connection refused", 0.0, unreachable=True)
        verb, _, unit = command.partition(" ")
        if host == "controller":
            rc = 0 if all(self.up[h]["nginx"] for h in ("web1", "web2")) and self.up["db1"]["db"] else 1
            return CommandResult(rc, "portal 200" if rc == 0 else "portal: 502", "", 0.01)
        if verb == "is-active":
            return CommandResult(
                0 if self.up[host][unit] else 3, "active" if self.up[host][unit] else "inactive", "", 0
            )
        if verb == "restart":
            self.up[host][unit] = unit not in self.broken
            return CommandResult(0 if self.up[host][unit] else 1, "", "" if self.up[host][unit] else "failed", 0)
        if verb == "is-clean":
            return CommandResult(0 if self.up[host]["clean"] else 1, "", "", 0)
        if verb == "wipe":
            self.up[host]["clean"] = True
        if verb == "is-sound":  # a database check: unknown while the server is still starting
            if self.starting.get(host, 0):
                self.starting[host] -= 1
                if self.hangs:
                    return CommandResult(124, "", "timed out after 300 s", 300.0, timed_out=True)
                return CommandResult(75, "", "ERROR 2002 (HY000): Can't connect to local server", 2.0)
            return CommandResult(0 if self.up[host]["sound"] else 1, "", "" if self.up[host]["sound"] else "lost", 0)
        if verb == "restore":
            self.up[host]["sound"] = True
        return CommandResult(0, "", "", 0)


@dataclass
class FakeHost:
    name: str
    world: World

    def run(self, command: str, timeout: float) -> CommandResult:
        return self.world.run(self.name, command)

    def stop(self) -> list[str]:
        return []

    def close(self) -> None:
        return None


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def runtime(world: World, tmp_path: Path, answers: list[bool] | None = None, channels: Any = ()) -> Runtime:
    replies = list(answers or [])

    def confirm(question: str) -> bool:
        return replies.pop(0) if replies else False

    return Runtime(
        hosts=lambda name: FakeHost(name, world),
        local=FakeHost("controller", world),
        notifier=Notifier(list(channels)),
        confirm=confirm,
        progress=lambda line: None,
        incidents=tmp_path / "incidents",
        context={"python": "python", "inventory": "inventory/test", "repo": "."},
        inventory_source="inventory/test",
        clock=Clock(),
        sleep=lambda seconds: None,
    )


def run(world: World, tmp_path: Path, options: Options, **kwargs: Any) -> RunResult:
    plan = make_plan(RUNBOOK, INVENTORY, options.limit, {"python": "python", "inventory": "i", "repo": "."})
    return run_runbook(RUNBOOK, plan, runtime(world, tmp_path, **kwargs), options)


def events(tmp_path: Path, incident: str, kind: str = "") -> list[dict[str, Any]]:
    found = read_events(tmp_path / "incidents" / incident / "journal.jsonl")
    return [e for e in found if not kind or e["event"] == kind]


def results(tmp_path: Path, incident: str) -> dict[str, str]:
    return {e["step"]: e["result"] for e in events(tmp_path, incident, "step_end")}


def test_acts_only_where_the_check_fails_and_recovers(tmp_path: Path) -> None:
    world = World()
    result = run(world, tmp_path, Options(yes=True))
    assert result.exit is RunbookExit.RECOVERED
    assert ("web1", "restart nginx") in world.log
    assert ("web2", "restart nginx") not in world.log  # its check passed
    assert not [c for h, c in world.log if c == "restart db"]
    assert results(tmp_path, result.incident) == {
        "probe": "problem",
        "nginx": "problem",
        "start_db": "not_needed",
        "start_nginx": "done",
        "wipe_cache": "not_needed",
        "back": "passed",
        "up": "skipped",
    }
    end = events(tmp_path, result.incident, "end")[0]
    assert end["outcome"] == "recovered"
    assert end["exit"] == 0


def test_every_command_is_journalled_with_output_and_utc_time(tmp_path: Path) -> None:
    result = run(World(), tmp_path, Options(yes=True))
    commands = events(tmp_path, result.incident, "command")
    first = commands[0]
    assert first["step"] == "probe"
    assert first["host"] == "controller"
    assert first["stdout"] == "portal: 502"
    assert first["rc"] == 1
    assert first["ts"].endswith("Z")
    assert {(c["host"], c["role"]) for c in commands if c["step"] == "start_nginx"} == {
        ("web1", "check"),
        ("web2", "check"),
        ("web1", "run"),
    }
    start = events(tmp_path, result.incident, "start")[0]
    assert start["in_working_hours"] is True
    assert [d["name"] for d in start["deadlines"]] == ["respond", "onsite"]


def test_not_recovered_escalates_with_evidence_and_exits_1(tmp_path: Path) -> None:
    world = World(broken={"nginx"})
    result = run(world, tmp_path, Options(yes=True))
    assert result.exit is RunbookExit.NOT_RECOVERED
    assert results(tmp_path, result.incident)["back"] == "failed"
    assert results(tmp_path, result.incident)["up"] == "escalated"
    assert [c for c in world.log if c[1] == "probe"].count(("controller", "probe")) == 3  # diagnose + 2 attempts
    assert ("web1", "logs") in world.log
    record = (tmp_path / "incidents" / result.incident / "incident.md").read_text()
    assert "**not_recovered** (exit 1)" in record
    assert "escalated to second line" in record
    assert "Start nginx on web1: FAILED" in record


def test_unreachable_host_is_a_finding_not_a_crash(tmp_path: Path) -> None:
    world = World(unreachable={"web1"})
    result = run(world, tmp_path, Options(yes=True))
    assert result.exit is RunbookExit.NOT_RECOVERED
    assert results(tmp_path, result.incident)["start_nginx"] == "unknown"
    record = (tmp_path / "incidents" / result.incident / "incident.md").read_text()
    assert "start_nginx: web1 unknown (unreachable: web1: ssh: connection refused), not acted on" in record


def test_declining_the_plan_opens_no_incident(tmp_path: Path) -> None:
    result = run(World(), tmp_path, Options(), answers=[False])
    assert result.exit is RunbookExit.ABORTED
    assert result.incident == ""
    assert not (tmp_path / "incidents").exists()


def test_destructive_step_asks_and_declining_aborts_then_resume_goes_on(tmp_path: Path) -> None:
    world = World()
    world.up["web2"]["clean"] = False
    first = run(world, tmp_path, Options(), answers=[True, False])  # yes to the plan, no to the wipe
    assert first.exit is RunbookExit.ABORTED
    assert results(tmp_path, first.incident)["wipe_cache"] == "declined"
    assert "back" not in results(tmp_path, first.incident)
    assert ("web2", "wipe") not in world.log
    done_before = len(world.log)

    second = run(world, tmp_path, Options(resume=first.incident), answers=[True, True])
    assert second.exit is RunbookExit.RECOVERED
    assert second.incident == first.incident
    resumed = world.log[done_before:]
    assert ("web2", "wipe") in resumed
    assert ("web1", "restart nginx") not in resumed  # done before the interruption
    confirms = events(tmp_path, first.incident, "confirm")
    assert [c["answer"] for c in confirms] == ["no", "yes"]


def test_unattended_runs_the_plan_asks_no_one_and_stops_before_a_destructive_act(tmp_path: Path) -> None:
    world = World()
    world.up["web2"]["clean"] = False  # the destructive wipe would act on web2
    asked: list[bool] = []  # any question would pop from here and fail the test
    first = run(world, tmp_path, Options(unattended=True), answers=asked)
    assert first.exit is RunbookExit.ABORTED
    assert results(tmp_path, first.incident)["start_nginx"] == "done"  # non-destructive acts ran
    assert results(tmp_path, first.incident)["wipe_cache"] == "declined"
    assert ("web2", "wipe") not in world.log
    assert [c["answer"] for c in events(tmp_path, first.incident, "confirm")] == ["no"]

    clean = World()  # no destructive act needed: the unattended run goes through
    second = run(clean, tmp_path, Options(unattended=True))
    assert second.exit is RunbookExit.RECOVERED
    assert not events(tmp_path, second.incident, "confirm")


def test_interrupted_run_resumes_from_the_interrupted_step(tmp_path: Path) -> None:
    world = World(interrupt_on="restart nginx")
    first = run(world, tmp_path, Options(yes=True))
    assert first.exit is RunbookExit.ABORTED
    interrupted = events(tmp_path, first.incident, "interrupted")
    assert interrupted[0]["step"] == "start_nginx"
    assert "resume" in first.message

    second = run(world, tmp_path, Options(yes=True, resume=first.incident))
    assert second.exit is RunbookExit.RECOVERED
    assert events(tmp_path, first.incident, "resume")[0]["from_step"] == "start_nginx"
    assert len([e for e in events(tmp_path, first.incident, "step_end") if e["step"] == "probe"]) == 1


def test_a_finished_incident_or_another_runbooks_does_not_resume(tmp_path: Path) -> None:
    done = run(World(), tmp_path, Options(yes=True))
    with pytest.raises(BadInput, match="already ended: recovered"):
        run(World(), tmp_path, Options(yes=True, resume=done.incident))
    with pytest.raises(BadInput, match="no incident 'nope'"):
        run(World(), tmp_path, Options(yes=True, resume="nope"))
    journal = tmp_path / "incidents" / done.incident / "journal.jsonl"
    lines = journal.read_text().splitlines()
    first = json.loads(lines[0])
    first["runbook"] = "other"
    journal.write_text("\n".join([json.dumps(first), *lines[1:-1]]) + "\n")
    with pytest.raises(BadInput, match="ran runbook 'other'"):
        run(World(), tmp_path, Options(yes=True, resume=done.incident))


def test_a_notification_channel_that_is_down_never_stops_the_runbook(tmp_path: Path) -> None:
    down = Channel("hook", "webhook", {"url": "http://127.0.0.1:9/"}, timeout=1)
    result = run(World(), tmp_path, Options(yes=True), channels=[down])
    assert result.exit is RunbookExit.RECOVERED
    notices = events(tmp_path, result.incident, "notify")
    assert [(n["notice"], n["ok"]) for n in notices] == [("start", False), ("resolution", False)]
    assert "URLError" in notices[0]["error"]
    assert (
        "start notice via hook (webhook): FAILED"
        in (tmp_path / "incidents" / result.incident / "incident.md").read_text()
    )


def test_manual_steps_with_yes_become_follow_ups(tmp_path: Path) -> None:
    rb = Runbook(
        id="t_manual",
        title_zh="人工",
        title_en="Manual",
        level=Level.L3,
        triggers=(("x", "x"),),
        targets=("web",),
        steps=(
            manual("call", "回电", "Call back", instructions_zh="给报告人回电", instructions_en="call the reporter"),
            verify("ok", "好", "OK", run="probe"),
            escalate("up", "升级", "Escalate", to_zh="二线", to_en="second line"),
        ),
    )
    plan = make_plan(rb, INVENTORY, [], {})
    result = run_runbook(rb, plan, runtime(World(up=_all_up()), tmp_path), Options(yes=True))
    assert result.exit is RunbookExit.RECOVERED
    record = (tmp_path / "incidents" / result.incident / "incident.md").read_text()
    assert "manual step call: call the reporter" in record
    assert "record the actual time of 'call back'" in record


def _all_up() -> dict[str, dict[str, bool]]:
    return {"web1": {"nginx": True}, "web2": {"nginx": True}, "db1": {"db": True}}


def test_incident_record_shows_deadlines_and_whether_met(tmp_path: Path) -> None:
    result = run(World(), tmp_path, Options(yes=True))
    record = (tmp_path / "incidents" / result.incident / "incident.md").read_text()
    assert record.startswith(f"# Incident {result.incident}")
    assert "| 响应 respond | 立即 / at once | 2026-03-10 10:05 Tue (UTC+8) | yes: runbook started" in record
    assert "**recovered** (exit 0)" in record
    assert "## Timeline (UTC)" in record
    assert "Start nginx on web1: done" in record


def test_playbook_acts_run_once_limited_to_hosts_whose_check_failed(tmp_path: Path) -> None:
    rb = Runbook(
        id="t_backup",
        title_zh="备份",
        title_en="Backup",
        level=Level.L3,
        triggers=(("x", "x"),),
        targets=("web",),
        steps=(
            act("backup", "备份", "Back up", on=("web",), check="is-active nginx", playbook="playbooks/backup.yml"),
            verify("ok", "好", "OK", run="probe"),
            escalate("up", "升级", "Escalate", to_zh="二线", to_en="second line"),
        ),
    )
    world = World()
    context = {"python": "python", "inventory": "inventory/test", "repo": "."}
    plan = make_plan(rb, INVENTORY, [], context)
    rt = runtime(world, tmp_path)
    run_runbook(rb, plan, rt, Options(yes=True))
    playbooks = [c for h, c in world.log if c.startswith("ansible-playbook")]
    assert playbooks == ["ansible-playbook -i inventory/test playbooks/backup.yml --limit web1"]


def test_limit_narrows_every_step(tmp_path: Path) -> None:
    world = World()
    run(world, tmp_path, Options(yes=True, limit=("web2",)))
    assert {h for h, _ in world.log} == {"controller", "web2"}


def test_a_verify_step_left_without_hosts_by_limit_neither_passes_nor_fails(tmp_path: Path) -> None:
    narrowed = Runbook(
        **{
            **RUNBOOK.__dict__,
            "steps": (
                *RUNBOOK.steps[:-2],
                verify("db_up", "数据库", "Database up", on=("db",), run="is-active db"),
                *RUNBOOK.steps[-2:],
            ),
        }
    )
    world = World()
    world.up["web1"]["nginx"] = True
    plan = make_plan(narrowed, INVENTORY, ("web2",), {"python": "python", "inventory": "i", "repo": "."})
    result = run_runbook(narrowed, plan, runtime(world, tmp_path), Options(yes=True, limit=("web2",)))
    assert results(tmp_path, result.incident)["db_up"] == "skipped"
    assert result.exit is RunbookExit.RECOVERED, "the controller's verify passed; db1 was not in the run"


def test_a_run_whose_every_verify_was_skipped_is_not_called_recovered(tmp_path: Path) -> None:
    only_db = Runbook(
        **{
            **RUNBOOK.__dict__,
            "steps": (verify("db_up", "数据库", "Database up", on=("db",), run="is-active db"), RUNBOOK.steps[-1]),
        }
    )
    plan = make_plan(only_db, INVENTORY, ("web2",), {"python": "python", "inventory": "i", "repo": "."})
    result = run_runbook(only_db, plan, runtime(World(), tmp_path), Options(yes=True, limit=("web2",)))
    assert result.exit is RunbookExit.NOT_RECOVERED


class Hanging(FakeHost):
    """A host whose restart hangs until stop() (what SshHost.stop does with SIGTERM); it then ends 143."""

    stopped = threading.Event()
    hanging = False

    def run(self, command: str, timeout: float) -> CommandResult:
        if command != "restart nginx":
            return super().run(command, timeout)
        self.hanging = True
        time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C on the controller while the step runs on the host
        Hanging.stopped.wait(10)
        return CommandResult(143, "", "put the old state back, then ended on SIGTERM", 0.5)

    def stop(self) -> list[str]:
        if not self.hanging:
            return []
        Hanging.stopped.set()
        return [f"{self.name}: restart nginx: SIGTERM sent to 4242"]


def test_an_interrupt_stops_the_remote_command_waits_for_it_and_journals_it(tmp_path: Path) -> None:
    world = World()
    rt = runtime(world, tmp_path)
    rt.hosts = lambda name: Hanging(name, world)
    plan = make_plan(RUNBOOK, INVENTORY, (), {"python": "python", "inventory": "i", "repo": "."})
    result = run_runbook(RUNBOOK, plan, rt, Options(yes=True))
    assert result.exit is RunbookExit.ABORTED
    (interrupted,) = events(tmp_path, result.incident, "interrupted")
    assert interrupted["step"] == "start_nginx"
    assert interrupted["stopped"] == [
        "web1: restart nginx: SIGTERM sent to 4242",
        "web1: ended with exit 143: put the old state back, then ended on SIGTERM",
    ]
    record = (tmp_path / "incidents" / result.incident / "incident.md").read_text()
    assert "SIGTERM sent to 4242" in record


# --------------------------------------------------------------------------- three-state checks

RESTORE = Runbook(
    id="t_database_lost",
    title_zh="数据库丢失",
    title_en="Database lost",
    level=Level.L1,
    triggers=(("库没了", "database gone"),),
    targets=("db",),
    steps=(
        act("stop", "停写", "Stop writes", on=("db",), check="is-sound db", run="stop writes"),
        act("restore", "恢复", "Restore", on=("db",), check="is-sound db", run="restore db", destructive=True),
        verify("sound", "完好", "Sound", on=("db",), run="is-sound db"),
        escalate("dba", "升级", "Escalate", to_zh="DBA", to_en="the DBA", on=("db",), run="logs"),
    ),
)


def restore_run(world: World, tmp_path: Path, sleeps: list[float]) -> RunResult:
    plan = make_plan(RESTORE, INVENTORY, (), {"python": "python", "inventory": "i", "repo": "."})
    rt = runtime(world, tmp_path)
    rt.sleep = sleeps.append
    return run_runbook(RESTORE, plan, rt, Options(yes=True))


def test_a_check_that_cannot_tell_waits_then_leaves_a_sound_database_alone(tmp_path: Path) -> None:
    """A server still starting (exit 75) is not a lost database: checked again until it answers."""
    world = World(up={"db1": {"sound": True}}, starting={"db1": 3})
    sleeps: list[float] = []
    result = restore_run(world, tmp_path, sleeps)
    assert result.exit is RunbookExit.RECOVERED
    assert ("db1", "restore db") not in world.log and ("db1", "stop writes") not in world.log
    # stop (wait 0) gives up at once; restore (destructive: DESTRUCTIVE_WAIT) checks again 10 s apart.
    assert results(tmp_path, result.incident) == {
        "stop": "unknown",
        "restore": "not_needed",
        "sound": "passed",
        "dba": "skipped",
    }
    assert sleeps == [10.0, 10.0]
    roles = [e["role"] for e in events(tmp_path, result.incident, "command") if e["step"] == "restore"]
    assert roles == ["check", "check2", "check3"]


def test_an_unknown_that_turns_broken_is_acted_on(tmp_path: Path) -> None:
    world = World(up={"db1": {"sound": False}}, starting={"db1": 2})
    result = restore_run(world, tmp_path, [])
    assert ("db1", "restore db") in world.log
    assert results(tmp_path, result.incident)["restore"] == "done"
    assert result.exit is RunbookExit.RECOVERED


@pytest.mark.parametrize("hangs", [False, True], ids=["exit 75", "timed out"])
def test_still_unknown_after_the_wait_never_acts_and_escalates_naming_host_and_why(tmp_path: Path, hangs: bool) -> None:
    world = World(up={"db1": {"sound": False}}, starting={"db1": -1}, hangs=hangs)
    sleeps: list[float] = []
    result = restore_run(world, tmp_path, sleeps)
    assert result.exit is RunbookExit.NOT_RECOVERED
    assert ("db1", "restore db") not in world.log and ("db1", "stop writes") not in world.log
    found = results(tmp_path, result.incident)
    assert found["stop"] == "unknown" and found["restore"] == "unknown" and found["dba"] == "escalated"
    assert sum(sleeps) <= 180  # bounded by the destructive act's wait, check durations included
    why = "timed out after 300 s" if hangs else "exit 75: ERROR 2002 (HY000): Can't connect to local server"
    record = (tmp_path / "incidents" / result.incident / "incident.md").read_text()
    assert f"restore: db1 unknown ({why}, still after " in record
    assert "step `restore` (act): **unknown**" in record
    assert f"sound failed: db1: unknown ({why})" in record
    assert "## Could not tell (unknown, not acted on)" in record


def test_the_plan_says_how_long_an_unknown_is_checked_again() -> None:
    text = describe(RESTORE)
    assert "unknown (exit 75, timeout, unreachable): checked again up to 180 s, never acted on" in text
    assert RESTORE.step("stop").wait == 0 and RESTORE.step("restore").wait == DESTRUCTIVE_WAIT
    assert "unknown" in render_plan(RESTORE).split("### 2.")[1].split("### 3.")[0]
