"""Fault drills: the catalogue, the lab-only guard and the inject → runbook → check → undo order."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from portalops import faultdrill
from portalops.cli import main
from portalops.drillwatch import Watched
from portalops.errors import BadInput, EnvironmentProblem
from portalops.inventory import LAB_INVENTORY, REPO_ROOT
from portalops.probe import ProbeResult
from portalops.responder.config import Config
from portalops.runbook import lock, registry
from portalops.runbook.hosts import CommandResult, Host
from portalops.runbook.outcome import RunbookExit


class RecordingHost:
    def __init__(self, name: str, log: list[tuple[str, str]], failing: Sequence[str]) -> None:
        self.name = name
        self.log = log
        self.failing = failing

    def run(self, command: str, timeout: float) -> CommandResult:
        self.log.append((self.name, command))
        rc = 1 if any(text in command for text in self.failing) else 0
        return CommandResult(rc, "output", "", 0.1)

    def stop(self) -> list[str]:
        return []

    def close(self) -> None:
        pass


def make_drill(
    monkeypatch: pytest.MonkeyPatch,
    log: list[tuple[str, str]],
    failing: Sequence[str] = (),
    portal: bool = True,
    incidents: Path | None = None,
) -> faultdrill.Drill:
    monkeypatch.setattr(faultdrill, "first_host", lambda _source, group: f"{group}1")
    monkeypatch.setattr(faultdrill, "drill_hosts", lambda _source, _runbook, group: [f"{group}1"])

    def hosts(_source: str, names: Sequence[str]) -> dict[str, Host]:
        return {name: RecordingHost(name, log, failing) for name in names}

    def probe(_source: str) -> list[ProbeResult]:
        return [ProbeResult("portal", "portal.lab.test", "https://web1/", ok=portal, status=200 if portal else None)]

    return faultdrill.Drill(
        str(LAB_INVENTORY),
        progress=lambda _line: None,
        hosts=hosts,
        probe=probe,
        site=lambda _source: {"domain": "portal.lab.test", "cms_port": "8080"},
        incidents=incidents or Path("/nonexistent"),
    )


def journal_with(incidents: Path, incident: str, **acts: str) -> str:
    """An incident journal whose act steps ended as given; returns the incident id."""
    (incidents / incident).mkdir(parents=True)
    lines = [json.dumps({"event": "step_end", "kind": "act", "step": step, "result": r}) for step, r in acts.items()]
    (incidents / incident / "journal.jsonl").write_text("\n".join(lines) + "\n")
    return incident


def test_every_runbook_has_a_drill_and_every_fault_names_known_runbooks() -> None:
    runbooks = registry.discover()
    for runbook_id in runbooks:
        assert runbook_id in faultdrill.default_fault(runbook_id).runbooks
    for item in faultdrill.FAULTS:
        assert set(item.runbooks) <= set(runbooks), item.id
    assert len({item.id for item in faultdrill.FAULTS}) == len(faultdrill.FAULTS)


def test_an_unknown_fault_or_runbook_is_bad_input_naming_the_known_ones() -> None:
    with pytest.raises(BadInput, match="known: nginx_stopped"):
        faultdrill.fault("nginx_on_fire")
    with pytest.raises(BadInput, match="no runbook 'l9_nothing'"):
        faultdrill.default_fault("l9_nothing")


def test_drills_refuse_any_inventory_but_the_lab(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="only on the lab inventory"):
        faultdrill.Drill(str(REPO_ROOT / "inventory" / "example"))


def test_a_drill_injects_runs_checks_and_undoes_in_that_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    log: list[tuple[str, str]] = []
    drill = make_drill(monkeypatch, log, incidents=tmp_path)
    item = faultdrill.fault("nginx_stopped")
    incident = journal_with(tmp_path, "20261127T000000Z-l1_portal_unreachable", start_web_nginx="done")

    def runbook(runbook_id: str) -> tuple[RunbookExit, str]:
        log.append(("runbook", runbook_id))
        return RunbookExit.RECOVERED, incident

    result = drill.run("l1_portal_unreachable", item, runbook)
    assert log == [
        ("web1", "systemctl stop nginx"),
        ("runbook", "l1_portal_unreachable"),
        ("web1", "systemctl start nginx"),
    ]
    assert result.ok and result.outcome == "recovered" and result.portal_ok and result.data_intact is None
    assert result.incident.endswith("l1_portal_unreachable")
    assert "PASS" in faultdrill.summary(result)


def test_a_fault_gone_without_the_runbooks_repair_fails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    incident = journal_with(tmp_path, "i1", start_web_nginx="not_needed")
    result = make_drill(monkeypatch, [], incidents=tmp_path).run(
        "l1_portal_unreachable", faultdrill.fault("nginx_stopped"), lambda _id: (RunbookExit.RECOVERED, incident)
    )
    assert not result.ok and "start_web_nginx not done" in " ".join(result.notes)


def test_a_failed_undo_fails_the_drill(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    incident = journal_with(tmp_path, "i2", start_web_nginx="done")
    result = make_drill(monkeypatch, [], failing=("systemctl start nginx",), incidents=tmp_path).run(
        "l1_portal_unreachable", faultdrill.fault("nginx_stopped"), lambda _id: (RunbookExit.RECOVERED, incident)
    )
    assert not result.ok and "the undo failed" in " ".join(result.notes)


def test_the_fault_is_undone_even_when_the_runbook_blows_up(monkeypatch: pytest.MonkeyPatch) -> None:
    log: list[tuple[str, str]] = []
    drill = make_drill(monkeypatch, log)

    def runbook(_runbook_id: str) -> tuple[RunbookExit, str]:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        drill.run("l1_portal_unreachable", faultdrill.fault("nginx_stopped"), runbook)
    assert log[-1] == ("web1", "systemctl start nginx")


def test_a_drill_fails_on_the_wrong_outcome_a_dead_portal_or_lost_data(monkeypatch: pytest.MonkeyPatch) -> None:
    escalated = make_drill(monkeypatch, []).run(
        "l1_portal_unreachable", faultdrill.fault("nginx_stopped"), lambda _id: (RunbookExit.NOT_RECOVERED, "x")
    )
    assert not escalated.ok and escalated.expected == "recovered" and escalated.outcome == "not_recovered"

    masked = make_drill(monkeypatch, [], portal=True).run(
        "l1_portal_unreachable", faultdrill.fault("nginx_masked"), lambda _id: (RunbookExit.NOT_RECOVERED, "x")
    )
    assert masked.ok, "escalating is what the masked edge expects"

    lossy = faultdrill.Fault("lossy", "t", "db", inject="break", runbooks=("l1_portal_unreachable",), intact="check")
    lost = make_drill(monkeypatch, [], failing=("check",)).run(
        "l1_portal_unreachable", lossy, lambda _id: (RunbookExit.RECOVERED, "x")
    )
    assert lost.data_intact is False and not lost.ok


def test_a_fault_that_cannot_be_injected_is_undone_and_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    log: list[tuple[str, str]] = []
    drill = make_drill(monkeypatch, log, failing=("systemctl stop nginx",))
    with pytest.raises(BadInput, match="could not inject nginx_stopped on web1"):
        drill.inject(faultdrill.fault("nginx_stopped"))
    assert log[-1] == ("web1", "systemctl start nginx")


def test_a_drill_refuses_to_start_on_a_portal_that_is_already_down(monkeypatch: pytest.MonkeyPatch) -> None:
    log: list[tuple[str, str]] = []
    drill = make_drill(monkeypatch, log, portal=False)
    with pytest.raises(BadInput, match="does not answer before the drill"):
        drill.run("l1_portal_unreachable", faultdrill.fault("nginx_stopped"), lambda _id: (RunbookExit.RECOVERED, ""))
    assert log == [], "nothing injected"


def test_fault_commands_get_the_site_and_port_filled_in(monkeypatch: pytest.MonkeyPatch) -> None:
    log: list[tuple[str, str]] = []
    make_drill(monkeypatch, log).inject(faultdrill.fault("fpm_saturated"))
    command = log[0][1]
    assert "Host: portal.lab.test" in command and "127.0.0.1:8080/?s=drill" in command
    assert "{" + "domain}" not in command and "/var/log/php8.2-fpm.log" in command


def test_the_data_check_gets_the_site_and_word_filled_in_like_the_injection(monkeypatch: pytest.MonkeyPatch) -> None:
    """On the lab, sensitive_word_published's data check ran unfilled and asked for the user wp-{site}."""
    log: list[tuple[str, str]] = []
    drill = make_drill(monkeypatch, log)
    monkeypatch.setattr(drill, "_site", lambda _source: {"site": "portal", "domain": "portal.lab.test", "word": "zz"})
    fault = faultdrill.fault("sensitive_word_published")
    drill.run("l1_sensitive_content", fault, lambda _id: (RunbookExit.RECOVERED, ""))
    [check] = [command for _host, command in log if " kept " in command.splitlines()[0]]
    assert check.startswith("cd /tmp && runuser -u wp-portal -- /usr/bin/php8.2 -- 'portal.lab.test' kept 'zz'"), check


def test_a_report_is_written_per_drill(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    result = make_drill(monkeypatch, []).run(
        "l1_portal_unreachable", faultdrill.fault("nginx_stopped"), lambda _id: (RunbookExit.RECOVERED, "inc")
    )
    path = faultdrill.write_report(result, tmp_path)
    assert path.name.endswith("-l1_portal_unreachable-nginx_stopped.json")
    assert '"mttr_s"' in path.read_text()


def test_the_cli_lists_faults_and_refuses_a_drill_on_another_inventory() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert main(["drill", "list"], out, err) == 0
    assert "fpm_saturated" in out.getvalue() and "l2_slow_response" in out.getvalue()
    code = main(["drill", "run", "l1_portal_unreachable", "-i", "inventory/example"], out, err)
    assert code == 2 and "only on the lab inventory" in err.getvalue()
    code = main(["drill", "run", "l9_nothing"], out, err)
    assert code == 2 and "no runbook 'l9_nothing'" in err.getvalue()


def test_only_the_runbooks_own_fault_stands_as_its_latest_drill(tmp_path: Path) -> None:
    def result(fault: str, mttr: float) -> faultdrill.DrillResult:
        return faultdrill.DrillResult(
            "l1_portal_unreachable", fault, "web1", "recovered", "recovered", "inc", mttr, 30, True, None, True, "t"
        )

    own = faultdrill.default_fault("l1_portal_unreachable").id
    other = next(f.id for f in faultdrill.FAULTS if "l1_portal_unreachable" in f.runbooks and f.id != own)
    faultdrill.record(result(own, 5.0), tmp_path)
    faultdrill.record(result(other, 9.0), tmp_path)
    drills = json.loads((tmp_path / "drills.json").read_text())
    assert drills["l1_portal_unreachable"]["fault"] == own
    assert drills["l1_portal_unreachable"]["mttr_s"] == 5.0
    assert drills[f"l1_portal_unreachable:{other}"]["mttr_s"] == 9.0


def test_a_drill_checks_the_host_after_the_runbook_and_what_it_must_never_do(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """mariadb_disabled: recovered is not enough, the unit must be enabled for the next boot."""
    item = faultdrill.fault("mariadb_disabled")
    incident = journal_with(tmp_path, "i3", start_mariadb="done")
    log: list[tuple[str, str]] = []
    passed = make_drill(monkeypatch, log, incidents=tmp_path).run(
        "l1_portal_unreachable", item, lambda _id: (RunbookExit.RECOVERED, incident)
    )
    assert passed.ok
    assert [c for _h, c in log] == [item.inject, item.after, item.undo]
    still_disabled = make_drill(monkeypatch, [], failing=("is-enabled mariadb);",), incidents=tmp_path).run(
        "l1_portal_unreachable", item, lambda _id: (RunbookExit.RECOVERED, incident)
    )
    assert not still_disabled.ok and "after the runbook, db1 is not as expected" in " ".join(still_disabled.notes)

    slow = faultdrill.fault("mariadb_slow_start")
    assert slow.expect is RunbookExit.RECOVERED
    restored = journal_with(tmp_path, "i4", start_mariadb="done", stop_writes="done", restore_database="done")
    result = make_drill(monkeypatch, [], incidents=tmp_path).run(
        "l1_database_lost", slow, lambda _id: (RunbookExit.RECOVERED, restored)
    )
    assert not result.ok
    assert "must not for this fault: stop_writes, restore_database done" in " ".join(result.notes)


class FakeWatch:
    """The responder as the drill sees it: answers /healthz, and reports what it did about the fault."""

    def __init__(self, root: Path, seen: Watched, log: list[tuple[str, str]] | None = None) -> None:
        self.config = Config(incidents=root)
        self.seen = seen
        self.log = log if log is not None else []
        self.calls: list[object] = []

    def require_running(self) -> None:
        self.calls.append("healthz")

    def wait_quiet(self, timeout: float, settle: float) -> None:
        self.calls.append(("quiet", settle, list(self.log)))  # what was injected by then

    def watch(self, runbook: str, since: object, timeout: float, confirm: object) -> Watched:
        # the injection's lock is released: the responder's run needs the hosts
        self.calls.append(("watch", runbook, timeout, confirm is not None, dict(lock._HELD)))
        return self.seen


def test_via_the_monitoring_the_drill_only_injects_and_times_what_the_responder_did(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    log: list[tuple[str, str]] = []
    drill = make_drill(monkeypatch, log)
    journal_with(tmp_path, "first", start_web_nginx="not_needed")
    journal_with(tmp_path, "second", start_web_nginx="done")  # the other alert's run got the lock first
    seen = Watched(
        incident="first", incidents=["first", "second"], alert="PortalSiteDown", level=1,
        exit=RunbookExit.RECOVERED, firing_s=14.0, opened_s=18.5, recovered_s=33.0, closed_s=61.0,
    )  # fmt: skip
    watch = FakeWatch(tmp_path, seen, log)
    result = drill.run_via_monitoring("l1_portal_unreachable", faultdrill.fault("nginx_stopped"), watch, 300)  # type: ignore[arg-type]
    # quiet first (nothing injected yet; settled over one reconciliation), then only watched
    assert watch.calls == ["healthz", ("quiet", 30.0, []), ("watch", "l1_portal_unreachable", 300, False, {})]
    assert log == [("web1", "systemctl stop nginx"), ("web1", "systemctl start nginx")]  # no runbook run of its own
    assert result.ok, result
    assert (result.via, result.alert, result.mttd_s, result.mttr_s, result.closed_s) == (
        "monitoring", "PortalSiteDown", 18.5, 33.0, 61.0,
    )  # fmt: skip
    assert "via the monitoring: PortalSiteDown; incident opened after 18.5 s (MTTD), closed after 61.0 s" in (
        faultdrill.summary(result)
    )


def test_via_the_monitoring_an_incident_left_open_or_never_opened_fails_the_drill(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    journal_with(tmp_path, "first", start_web_nginx="done")
    item = faultdrill.fault("nginx_stopped")
    open_left = Watched(incident="first", incidents=["first"], exit=RunbookExit.RECOVERED, opened_s=9.0, notes=["x"])
    result = make_drill(monkeypatch, []).run_via_monitoring(
        "l1_portal_unreachable",
        item,
        FakeWatch(tmp_path, open_left),  # type: ignore[arg-type]
    )
    assert not result.ok and result.notes[0] == "x"
    never = Watched(notes=["no incident for the runbook opened within 600 s of the injection"])
    result = make_drill(monkeypatch, []).run_via_monitoring("l1_portal_unreachable", item, FakeWatch(tmp_path, never))  # type: ignore[arg-type]
    assert not result.ok and result.outcome == "not_recovered" and result.mttd_s is None
    assert "incident opened never (MTTD)" in faultdrill.summary(result)


def test_via_the_monitoring_an_incident_left_to_a_person_is_reported_waiting_or_run_by_the_drill(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """l1_database_lost is not the responder's to run: its incident waits for the command of the notice."""
    item = faultdrill.fault("posts_table_dropped")
    command = "portalops runbook run l1_database_lost --resume first --yes -i inventory/lab"
    journal_with(tmp_path, "first")
    waits = Watched(
        incident="first", incidents=["first"], exit=RunbookExit.ABORTED, opened_s=20.0, person_command=command
    )
    log: list[tuple[str, str]] = []
    result = make_drill(monkeypatch, log).run_via_monitoring("l1_database_lost", item, FakeWatch(tmp_path, waits))  # type: ignore[arg-type]
    assert not result.ok and result.outcome == "aborted" and result.mttd_s == 20.0
    assert f"waited for a person: {command} (NOT run: the incident waits)" in " ".join(result.notes)
    assert [c for _h, c in log][-1] == item.undo  # the drill undoes the fault itself
    run = Watched(
        incident="first", incidents=["first"], exit=RunbookExit.RECOVERED, opened_s=20.0, recovered_s=80.0,
        closed_s=95.0, person_command=command, confirmed=True,
    )  # fmt: skip
    watch = FakeWatch(tmp_path, run)
    result = make_drill(monkeypatch, []).run_via_monitoring("l1_database_lost", item, watch, confirm=True)  # type: ignore[arg-type]
    assert result.ok and (result.mttd_s, result.mttr_s, result.closed_s) == (20.0, 80.0, 95.0), result
    assert watch.calls[-1][3] is True  # type: ignore[index]  # the watch got the person's command to run
    assert f"waited for a person: {command} (run by the drill)" in " ".join(result.notes)


def test_a_drill_via_the_monitoring_is_not_recorded_for_the_plans() -> None:
    out, err = io.StringIO(), io.StringIO()
    code = main(["drill", "run", "l1_portal_unreachable", "--via-monitoring", "--record"], out, err)
    assert code == 2 and "--record keeps the runbook's own drill" in err.getvalue()


def test_a_drill_tries_busy_hosts_again_every_second_and_anything_else_not_at_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another run holding the hosts is waited out, one try a second, said once; any other problem is raised."""
    said: list[str] = []
    slept: list[float] = []
    monkeypatch.setattr("portalops.faultdrill.time.sleep", slept.append)
    drill = make_drill(monkeypatch, [])
    drill.progress = said.append
    busy = "web1 of inventory lab is busy: runbook x"
    answers: list[str | None] = [busy, busy, None]

    def take() -> str:
        problem = answers.pop(0)
        if problem is not None:
            raise EnvironmentProblem(problem)
        return "taken"

    assert drill._when_busy_retry(take, wait=60) == "taken"
    assert slept == [1.0, 1.0]
    assert said == [f"drill: {busy}; trying again every 1 s"]

    def broken() -> str:
        raise EnvironmentProblem("ssh: connection refused")

    with pytest.raises(EnvironmentProblem, match="connection refused"):
        drill._when_busy_retry(broken, wait=60)
    assert slept == [1.0, 1.0]
