"""Run a runbook: confirm the plan, execute its steps, journal everything, notify.

Everything the engine touches is injected through :class:`Runtime` (hosts,
the controller, notifications, confirmations, the clock), so unit tests run
whole incidents against fakes. A step never raises for a failing command: the
result is journalled and the verify steps decide the outcome.
"""

from __future__ import annotations

import getpass
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from portalops.errors import BadInput, PortalopsError
from portalops.runbook.hosts import CommandResult, Host, kill_grace
from portalops.runbook.journal import Journal, RunState, excerpt, new_incident_id, open_incident, read_events, utc_now
from portalops.runbook.model import UNKNOWN_INTERVAL, Runbook, StepKind
from portalops.runbook.notify import Notice, Notifier
from portalops.runbook.outcome import RunbookExit
from portalops.runbook.planning import PlannedStep, describe, playbook_command
from portalops.runbook.record import write_record
from portalops.runbook.workcal import WorkCalendar, deadlines, local_text
from portalops.service import changes


@dataclass
class Runtime:
    """The world a run acts on; the CLI builds the real one, tests build fakes."""

    hosts: Callable[[str], Host]
    local: Host
    notifier: Notifier
    confirm: Callable[[str], bool]
    progress: Callable[[str], None]
    incidents: Path
    context: Mapping[str, str]
    inventory_source: str = ""
    calendar: WorkCalendar = field(default_factory=WorkCalendar)
    clock: Callable[[], datetime] = utc_now
    sleep: Callable[[float], None] = time.sleep
    workers: int = 8
    opened: Callable[[str], None] = lambda _incident: None  # told the incident id once it is open or resumed


@dataclass(frozen=True)
class Options:
    yes: bool = False
    limit: tuple[str, ...] = ()
    resume: str = ""
    # No one is there to ask (the responder's automatic runs): the plan counts as confirmed and every
    # destructive act that would act is declined, so the run stops before it and waits for a person
    # (`--resume INCIDENT --yes`).
    unattended: bool = False


@dataclass(frozen=True)
class RunResult:
    exit: RunbookExit
    incident: str
    message: str


@dataclass
class StepOutcome:
    result: str
    summary: str
    findings: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    followups: list[str] = field(default_factory=list)


class Declined(Exception):
    """A person said no to a destructive step."""


def run_runbook(runbook: Runbook, plan: Sequence[PlannedStep], runtime: Runtime, options: Options) -> RunResult:
    """Plan, confirm, execute; the exit code says recovered, escalated or aborted."""
    return _Run(runbook, plan, runtime, options).execute()


class _Run:
    def __init__(self, runbook: Runbook, plan: Sequence[PlannedStep], runtime: Runtime, options: Options) -> None:
        self.runbook = runbook
        self.plan = plan
        self.rt = runtime
        self.options = options
        self.state = RunState()
        self._hosts: dict[str, Host] = {}
        self.journal: Journal | None = None
        self._current = ""
        self._inflight: list[tuple[str, Future[CommandResult]]] = []
        self._grace = 0.0

    # ----------------------------------------------------------------- the run

    def execute(self) -> RunResult:
        if self.options.resume:
            journal = open_incident(self.rt.incidents, self.options.resume, self.rt.clock)
            self.state = RunState.replay(journal.events)
            self.journal = journal
            if self.state.runbook != self.runbook.id:
                raise BadInput(f"incident {journal.incident} ran runbook {self.state.runbook!r}, not {self.runbook.id}")
            if self.state.finished:
                raise BadInput(f"incident {journal.incident} already ended: {self.state.end['outcome']}")
        todo = [p for p in self.plan if not self.state.is_done(p.step.id)]
        acts = any(p.step.kind is StepKind.ACT for p in todo)
        if acts and not (self.options.yes or self.options.unattended):
            self.rt.progress(describe(self.runbook, self.plan, self.rt.context))
            if not self.rt.confirm("Run this plan? [y/N] "):
                if self.options.resume:
                    return RunResult(RunbookExit.ABORTED, self.options.resume, "plan declined; nothing more was done")
                return RunResult(RunbookExit.ABORTED, "", "plan declined; nothing was done, no incident opened")
        if self.options.resume:
            self.rt.opened(self.options.resume)
            self._write("resume", from_step=todo[0].step.id if todo else "", user=_user())
        else:
            self._open()
        try:
            if not self.options.resume:
                self._notify("start", "开始处置 started")
            for planned in todo:
                self._step(planned)
        except Declined as exc:
            return self._finish(RunbookExit.ABORTED, f"declined at {exc}; resume with --resume {self._incident}")
        except KeyboardInterrupt:
            stopped = self._stop_running()
            self._write("interrupted", step=self._current, reason="Ctrl-C", stopped=stopped)
            return self._finish(
                RunbookExit.ABORTED, f"interrupted at {self._current}; resume: --resume {self._incident}"
            )
        except PortalopsError as exc:
            self._write("error", step=self._current, reason=exc.message)
            self._render()
            raise
        finally:
            for host in [*self._hosts.values(), self.rt.local]:
                host.close()  # ends what an interruption left running
        if self.state.recovered:
            self._notify("resolution", "已恢复 recovered")
            return self._finish(RunbookExit.RECOVERED, "recovered: every verify step passed")
        return self._finish(RunbookExit.NOT_RECOVERED, "not recovered: escalated")

    @property
    def _incident(self) -> str:
        return self.journal.incident if self.journal else ""

    def _open(self) -> None:
        started = self.rt.clock()
        incident = new_incident_id(self.runbook.id, started, self.rt.incidents)
        self.journal = Journal(self.rt.incidents / incident, self.rt.clock)
        self.rt.opened(incident)
        level = self.runbook.level
        self._write(
            "start",
            incident=incident,
            runbook=self.runbook.id,
            source=self.runbook.source,
            level=int(level),
            level_zh=level.spec.name_zh,
            title_zh=self.runbook.title_zh,
            title_en=self.runbook.title_en,
            inventory=self.rt.inventory_source,
            limit=list(self.options.limit),
            yes=self.options.yes,
            user=_user(),
            controller=socket.gethostname(),
            in_working_hours=self.rt.calendar.in_working_hours(started),
            calendar=self.rt.calendar.source(started.date()),
            deadlines=[d.as_dict() for d in deadlines(level, started, self.rt.calendar)],
        )
        self.rt.progress(f"incident {incident}: journal {self.journal.path}")

    def _finish(self, code: RunbookExit, message: str) -> RunResult:
        outcome = {RunbookExit.RECOVERED: "recovered", RunbookExit.NOT_RECOVERED: "not_recovered"}.get(code, "aborted")
        self._write("end", outcome=outcome, exit=int(code), summary=message)
        self._render()
        record = self.journal.directory / "incident.md" if self.journal else ""
        return RunResult(code, self._incident, f"{message}; record {record}")

    def _write(self, event: str, **fields: Any) -> None:
        if self.journal is None:
            raise RuntimeError("no incident is open")
        self.state.apply(self.journal.write(event, **fields))

    def _render(self) -> None:
        if self.journal:  # from the file: a grade written meanwhile by `portalops incident grade` stays in it
            write_record(self.journal.directory, read_events(self.journal.path))

    # ----------------------------------------------------------------- notifications

    def _notify(self, event: str, headline: str) -> None:
        rb = self.runbook
        title = f"[L{int(rb.level)} {rb.level.spec.name_zh}] {rb.title_zh} {rb.title_en}: {headline} ({self._incident})"
        start = self.state.start
        lines = [
            f"### {title}",
            f"- incident: {self._incident}",
            f"- level: {rb.level.spec.meaning_zh} / {rb.level.spec.meaning_en}",
            f"- time: {local_text(self.rt.clock())}",
        ]
        lines += [f"- {d['title_en']} due: {d['due']} ({d['rule_en']})" for d in start.get("deadlines", [])]
        lines += [f"- finding: {f}" for f in self.state.findings[:10]]
        lines += [f"- action: {a}" for a in self.state.actions[:10]]
        notice = Notice(event, self._incident, rb.id, int(rb.level), title, "\n".join(lines))
        for delivery in self.rt.notifier.send(notice):
            self._write("notify", notice=event, **delivery.journal_fields())
            verdict = "sent" if delivery.ok else f"FAILED, going on: {delivery.error}"
            self.rt.progress(f"      notify {event} via {delivery.channel}: {verdict}")

    # ----------------------------------------------------------------- steps

    def _step(self, planned: PlannedStep) -> None:
        step = planned.step
        self._current = step.id
        self.rt.progress(
            f"{planned.index:>3}/{len(self.plan)} {step.kind} {step.id}: {step.title_zh} / {step.title_en}"
        )
        self._write("step_begin", step=step.id, kind=str(step.kind), hosts=list(planned.hosts))
        if step.on and not planned.hosts:
            outcome = StepOutcome("skipped", "no host of " + step.where + " selected")
        else:
            handler = {
                StepKind.DIAGNOSE: self._diagnose,
                StepKind.ACT: self._act,
                StepKind.VERIFY: self._verify,
                StepKind.MANUAL: self._manual,
                StepKind.ESCALATE: self._escalate,
            }[step.kind]
            outcome = handler(planned)
        self._write(
            "step_end",
            step=step.id,
            kind=str(step.kind),
            result=outcome.result,
            summary=outcome.summary,
            findings=outcome.findings,
            actions=outcome.actions,
            followups=outcome.followups,
        )
        self.rt.progress(f"      -> {outcome.result}: {outcome.summary}")
        self._render()
        if outcome.result == "declined":
            raise Declined(step.id)

    def _targets(self, planned: PlannedStep) -> list[str]:
        return list(planned.hosts) if planned.remote else [self.rt.local.name]

    def _host(self, name: str) -> Host:
        if name == self.rt.local.name:
            return self.rt.local
        if name not in self._hosts:
            self._hosts[name] = self.rt.hosts(name)
        return self._hosts[name]

    def _commands(
        self, planned: PlannedStep, role: str, command: str, names: Sequence[str]
    ) -> dict[str, CommandResult]:
        """``command`` on every host at once; each result is journalled and shown."""
        hosts = [self._host(name) for name in names]
        timeout = planned.step.timeout
        pool = ThreadPoolExecutor(max_workers=max(1, min(self.rt.workers, len(hosts))))
        try:
            futures = [pool.submit(host.run, command, timeout) for host in hosts]
            self._inflight, self._grace = list(zip(names, futures, strict=True)), kill_grace(timeout)
            results = {name: future.result() for name, future in self._inflight}
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        self._inflight = []
        for name, result in results.items():
            self._write(
                "command",
                step=planned.step.id,
                host=name,
                role=role,
                command=command,
                rc=result.rc,
                duration_s=result.duration_s,
                timed_out=result.timed_out,
                unreachable=result.unreachable,
                stdout=excerpt(result.stdout),
                stderr=excerpt(result.stderr),
            )
            detail = "" if result.ok else f"  {result.last_line()}"
            self.rt.progress(f"      {role:<8} {name:<12} exit {result.rc:<3} {result.duration_s:6.1f} s{detail}")
        return results

    def _stop_running(self) -> list[str]:
        """After Ctrl-C: SIGTERM to what the step still runs on its hosts, then wait for it to end
        within its kill grace (a restore puts the old data back meanwhile); a second Ctrl-C stops
        waiting. Returns what was stopped and how it ended, for the journal."""
        running = [(name, future) for name, future in self._inflight if not future.done()]
        said = [line for host in [*self._hosts.values(), self.rt.local] for line in host.stop()]
        if not running:
            return said
        for line in said:
            self.rt.progress(f"      stop: {line}")
        self.rt.progress(f"      waiting up to {self._grace + 10:g} s for it to end (Ctrl-C again: stop waiting)")
        try:
            wait_for([future for _, future in running], timeout=self._grace + 10)
        except KeyboardInterrupt:
            said.append("stopped waiting for it (a second Ctrl-C)")
        for name, future in running:
            if future.done() and not future.cancelled():
                result = future.result()
                said.append(f"{name}: ended with exit {result.rc}: {result.last_line()}")
            else:
                said.append(f"{name}: still running when the run gave up waiting")
        return said

    def _diagnose(self, planned: PlannedStep) -> StepOutcome:
        results = self._commands(planned, "run", planned.run, self._targets(planned))
        problems = [f"{planned.step.id} on {h}: {_saw(r)}" for h, r in results.items() if not r.ok]
        if problems:
            return StepOutcome("problem", f"{len(problems)} of {len(results)} hosts show a problem", findings=problems)
        return StepOutcome("ok", f"{len(results)} host(s) as expected")

    def _act(self, planned: PlannedStep) -> StepOutcome:
        step = planned.step
        names = self._targets(planned)
        unknown: dict[str, str] = {}
        if planned.check:
            broken, unknown = self._check(planned, names)
            names = broken
        findings = [f"{step.id}: {h} unknown ({why}), not acted on" for h, why in unknown.items()]
        if not names:
            if unknown:
                return StepOutcome("unknown", f"could not tell on {', '.join(unknown)}: not acted on", findings)
            return StepOutcome("not_needed", "state already as wanted")
        if step.destructive and not self.options.yes:
            question = f"{step.title_en} on {', '.join(names)}? [y/N] "
            answer = False if self.options.unattended else self.rt.confirm(question)
            self._write("confirm", step=step.id, question=question, answer="yes" if answer else "no")
            if not answer:
                return StepOutcome("declined", f"not confirmed for {', '.join(names)}", findings)
        began = self.rt.clock()
        if step.playbook:
            command = playbook_command(step, names, self.rt.context)
            ran = self._commands(planned, "playbook", command, [self.rt.local.name])[self.rt.local.name]
            results = dict.fromkeys(names, ran)
        else:
            results = self._commands(planned, "run", planned.run, names)
        failed = [h for h, r in results.items() if not r.ok]
        if step.destructive:
            self._record_change(planned, names, failed, began)
        actions = [f"{step.title_en} on {h}: {'FAILED' if h in failed else 'done'}" for h in names]
        findings += [f"{step.id} failed on {h}: {_saw(results[h])}" for h in failed]
        if failed:
            return StepOutcome("failed", f"failed on {', '.join(failed)}", findings, actions)
        if unknown:
            summary = f"done on {', '.join(names)}; could not tell on {', '.join(unknown)}: not acted on"
            return StepOutcome("unknown", summary, findings, actions)
        return StepOutcome("done", f"done on {', '.join(names)}", findings, actions)

    def _record_change(
        self, planned: PlannedStep, names: Sequence[str], failed: Sequence[str], began: datetime
    ) -> None:
        """A destructive act that was done (or tried: it may have half-changed a host) is a change,
        linked with its incident both ways. Failing to record it never stops the run: it is journalled."""
        step, by = planned.step, _user()
        try:
            change = changes.record(
                self.rt.incidents,
                changes.Kind.RUNBOOK,
                f"runbook {self.runbook.id} {step.id}: {step.title_en}",
                began,
                self.rt.clock(),
                changes.Result.FAILED if failed else changes.Result.OK,
                [{"host": h, "result": "failed" if h in failed else "done"} for h in names],
                by=by,
                controller=socket.gethostname(),
                incident=self._incident,
                runbook=self.runbook.id,
                step=step.id,
            )
        except (PortalopsError, OSError) as exc:
            reason = exc.message if isinstance(exc, PortalopsError) else str(exc)
            self._write("change_not_recorded", step=step.id, reason=reason)
            self.rt.progress(f"      change NOT recorded: {reason}")
            return
        self._write("link", kind="change", target=change.id, by=by)
        self.rt.progress(f"      change {change.id}: {change.record.path}")

    def _check(self, planned: PlannedStep, names: Sequence[str]) -> tuple[list[str], dict[str, str]]:
        """The act's check on ``names``: the hosts it says are broken, and those it cannot tell about
        (host -> why), checked again for up to the step's ``wait`` seconds before they are given up on."""
        step = planned.step
        results = self._commands(planned, "check", planned.check, names)
        broken = [h for h, r in results.items() if not r.ok and not r.unknown]
        unknown = {h: r for h, r in results.items() if r.unknown}
        waited, attempt = 0.0, 1
        if unknown and step.wait > 0:
            self.rt.progress(f"      cannot tell on {', '.join(unknown)}: checking again for up to {step.wait:g} s")
        while unknown and waited < step.wait:
            pause = min(UNKNOWN_INTERVAL, step.wait - waited)
            self.rt.sleep(pause)
            attempt += 1
            again = self._commands(planned, f"check{attempt}", planned.check, list(unknown))
            waited += pause + max(r.duration_s for r in again.values())
            broken += [h for h, r in again.items() if not r.ok and not r.unknown]
            unknown = {h: r for h, r in again.items() if r.unknown}
        reasons = {h: r.why_unknown() + (f", still after {waited:.0f} s" if waited else "") for h, r in unknown.items()}
        return [h for h in names if h in broken], reasons

    def _verify(self, planned: PlannedStep) -> StepOutcome:
        step = planned.step
        for attempt in range(1, step.attempts + 1):
            results = self._commands(planned, f"verify{attempt}", planned.run, self._targets(planned))
            failed = [f"{h}: {_saw(r)}" for h, r in results.items() if not r.ok]
            if not failed:
                return StepOutcome("passed", f"passed (attempt {attempt} of {step.attempts})")
            if attempt < step.attempts:
                self.rt.sleep(step.interval)
        return StepOutcome("failed", "; ".join(failed), findings=[f"{step.id} failed: {f}" for f in failed])

    def _manual(self, planned: PlannedStep) -> StepOutcome:
        step = planned.step
        self.rt.progress(f"      MANUAL: {step.note_zh}\n              {step.note_en}")
        if self.options.yes:
            return StepOutcome("pending", "not confirmed (--yes)", followups=[f"manual step {step.id}: {step.note_en}"])
        began = time.monotonic()
        done = self.rt.confirm(f"Done within {step.timeout:g} s? [y/N] ")
        late = time.monotonic() - began > step.timeout
        self._write("confirm", step=step.id, question="done?", answer="yes" if done else "no")
        if not done:
            return StepOutcome("pending", "not done", followups=[f"manual step {step.id}: {step.note_en}"])
        return StepOutcome("confirmed", "confirmed" + (" after its timeout" if late else ""))

    def _escalate(self, planned: PlannedStep) -> StepOutcome:
        step = planned.step
        if self.state.recovered:
            return StepOutcome("skipped", "recovered: no escalation")
        if planned.run:
            self._commands(planned, "collect", planned.run, self._targets(planned))
        self.rt.progress(f"      ESCALATE to: {step.note_zh} / {step.note_en}")
        if not self.state.escalated:
            self._notify("escalation", f"升级 escalated to {step.note_en}")
        return StepOutcome("escalated", f"to {step.note_en}", followups=[f"escalated to {step.note_en}: not recovered"])


def _saw(result: CommandResult) -> str:
    """What a failing command said; one that could not tell (exit 75, a timeout, unreachable) says so."""
    return f"unknown ({result.why_unknown()})" if result.unknown else result.last_line()


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
