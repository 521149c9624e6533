"""What a runbook is: a fault level, its triggers, its targets and ordered steps.

Declarations only; :mod:`portalops.runbook.engine` runs them and
:mod:`portalops.runbook.plans` documents them. A malformed runbook is a
programming error and fails when its file is imported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from portalops.runbook.levels import Level

# Steps with no inventory targets run on the controller, the machine running portalops.
CONTROLLER: tuple[str, ...] = ()
# How long an act whose check cannot tell (unknown) checks again before it gives up without acting:
# a destructive act waits out a server that is still starting; any other act does not wait unless it says so.
DESTRUCTIVE_WAIT = 180.0
UNKNOWN_INTERVAL = 10.0  # seconds between those checks
ID_RE = re.compile(r"^[a-z][a-z0-9_]*$")
ALERT_NAME_RE = re.compile(r"^[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)*$")  # CamelCase, as Prometheus alerts are named
# A Prometheus duration as `for:` takes it (units from largest to smallest, each once): 0s, 15s, 1m30s, 2h.
DURATION_RE = re.compile(r"^(?=\d)(?:0|(?:\d+y)?(?:\d+w)?(?:\d+d)?(?:\d+h)?(?:\d+m)?(?:\d+s)?(?:\d+ms)?)$")
LABEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# Labels the rule generator sets from the runbook; an alert may not set them itself.
RESERVED_LABELS = frozenset({"alertname", "runbook", "level", "severity"})
KB_RE = re.compile(r"^KB-[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,62}[A-Za-z0-9])?$")  # an article of kb/ (portalops.service.kb)


class StepKind(StrEnum):
    DIAGNOSE = "diagnose"  # observe; a non-zero exit is a finding, never a stop
    ACT = "act"  # change state, only where its check says the state is not as wanted
    VERIFY = "verify"  # the recovery criterion; any failure means not recovered
    MANUAL = "manual"  # a person does it and confirms
    ESCALATE = "escalate"  # runs only when not recovered: notify, hand over


@dataclass(frozen=True)
class Step:
    """One step. Commands are shell text run on each target host (as root when
    the inventory says become), or on the controller when ``on`` is empty.

    ``check`` exits 0 when the state is already as wanted, so the act is not
    needed on that host, 75 when it cannot tell right now (unknown: a server
    still starting, refused connections, a lock wait; a timeout and an
    unreachable host count as unknown too), anything else when it is broken.
    The act runs only where the check says broken; an unknown host is checked
    again for up to ``wait`` seconds and, still unknown, left alone and named.
    ``playbook`` runs once on the controller, limited to the hosts whose check
    said broken.
    """

    id: str
    kind: StepKind
    title_zh: str
    title_en: str
    on: tuple[str, ...] = CONTROLLER
    run: str = ""
    check: str = ""
    playbook: str = ""
    timeout: float = 60.0
    destructive: bool = False
    attempts: int = 1
    interval: float = 2.0
    wait: float = 0.0
    note_zh: str = ""
    note_en: str = ""
    kb: str = ""  # the knowledge article this step follows (kb/<id>.md); a unit test checks it exists

    @property
    def where(self) -> str:
        return ", ".join(self.on) if self.on else "controller"


def diagnose(
    id: str, zh: str, en: str, *, run: str, on: tuple[str, ...] = CONTROLLER, timeout: float = 60, kb: str = ""
) -> Step:
    return Step(id, StepKind.DIAGNOSE, zh, en, on=on, run=run, timeout=timeout, kb=kb)


def act(
    id: str,
    zh: str,
    en: str,
    *,
    on: tuple[str, ...] = CONTROLLER,
    check: str = "",
    run: str = "",
    playbook: str = "",
    destructive: bool = False,
    timeout: float = 120,
    wait: float | None = None,
    kb: str = "",
) -> Step:
    """``wait``: seconds to check again where the check cannot tell (default: :data:`DESTRUCTIVE_WAIT`
    for a destructive act, 0 for any other); still unknown, the act is not run there."""
    return Step(
        id,
        StepKind.ACT,
        zh,
        en,
        on=on,
        check=check,
        run=run,
        playbook=playbook,
        destructive=destructive,
        timeout=timeout,
        wait=(DESTRUCTIVE_WAIT if destructive else 0.0) if wait is None else wait,
        kb=kb,
    )


def verify(
    id: str,
    zh: str,
    en: str,
    *,
    run: str,
    on: tuple[str, ...] = CONTROLLER,
    timeout: float = 60,
    attempts: int = 1,
    interval: float = 2.0,
    kb: str = "",
) -> Step:
    return Step(
        id, StepKind.VERIFY, zh, en, on=on, run=run, timeout=timeout, attempts=attempts, interval=interval, kb=kb
    )


def manual(
    id: str, zh: str, en: str, *, instructions_zh: str, instructions_en: str, timeout: float = 1800, kb: str = ""
) -> Step:
    """``timeout``: how long the person has; a later confirmation is recorded as late."""
    return Step(id, StepKind.MANUAL, zh, en, timeout=timeout, note_zh=instructions_zh, note_en=instructions_en, kb=kb)


def escalate(
    id: str,
    zh: str,
    en: str,
    *,
    to_zh: str,
    to_en: str,
    run: str = "",
    on: tuple[str, ...] = CONTROLLER,
    timeout: float = 60,
    kb: str = "",
) -> Step:
    """``to_*`` says who takes over; ``run`` may collect evidence for them."""
    return Step(id, StepKind.ESCALATE, zh, en, on=on, run=run, timeout=timeout, note_zh=to_zh, note_en=to_en, kb=kb)


@dataclass(frozen=True)
class Alert:
    """A Prometheus alert that starts its runbook (``portalops.runbook.alerts`` writes the rule file).

    ``expr`` is PromQL over the metrics our exporters and recording rules produce; ``duration`` is the
    rule's ``for:`` (a Prometheus duration); ``level`` is the runbook's own (None) or a lower one
    (a larger number) for an early warning. ``summary_*`` says the condition in words, for people
    and the plans; ``labels`` are extra rule labels (``runbook``, ``level`` and ``severity`` are set
    from the runbook); ``why`` explains the threshold and the ``for:`` in the rule file.
    """

    name: str
    expr: str
    summary_zh: str
    summary_en: str
    duration: str = "0s"
    level: Level | None = None
    labels: tuple[tuple[str, str], ...] = ()
    why: str = ""


@dataclass(frozen=True)
class Runbook:
    id: str
    title_zh: str
    title_en: str
    level: Level
    triggers: tuple[tuple[str, str], ...]  # (中文, English) symptoms that start this runbook
    targets: tuple[str, ...]  # inventory groups or hosts it may act on
    steps: tuple[Step, ...]
    alerts: tuple[Alert, ...] = ()  # the Prometheus alerts that start it (its triggers, as monitoring sees them)
    source: str = field(default="", compare=False)  # the file it came from, relative to the repository

    def __post_init__(self) -> None:
        problems = validate(self)
        if problems:
            raise ValueError(f"runbook {self.id}: " + "; ".join(problems))

    def alert_level(self, alert: Alert) -> Level:
        """The level an alert of this runbook carries: its own, else the runbook's."""
        return self.level if alert.level is None else alert.level

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)


def _step_problems(step: Step, targets: tuple[str, ...]) -> list[str]:
    problems: list[str] = []
    where = f"step {step.id}"
    if not ID_RE.match(step.id):
        problems.append(f"{where}: id must be snake_case")
    if step.timeout <= 0 or step.attempts < 1 or step.wait < 0:
        problems.append(f"{where}: timeout must be > 0, attempts >= 1 and wait >= 0")
    outside = [t for t in step.on if t not in targets]
    if outside:
        problems.append(f"{where}: acts on {', '.join(outside)}, not among the runbook's targets")
    if step.kind in (StepKind.DIAGNOSE, StepKind.VERIFY) and not step.run:
        problems.append(f"{where}: a {step.kind} step needs a command")
    if step.kind is StepKind.ACT and bool(step.run) == bool(step.playbook):
        problems.append(f"{where}: an act runs either a command or a playbook")
    if step.playbook and (step.kind is not StepKind.ACT or not step.on):
        problems.append(f"{where}: a playbook is an act on inventory hosts")
    if step.kind in (StepKind.MANUAL, StepKind.ESCALATE) and not (step.note_zh and step.note_en):
        problems.append(f"{where}: a {step.kind} step says what to do (zh and en)")
    if step.kb and not KB_RE.match(step.kb):
        problems.append(f"{where}: cites {step.kb!r}, not an article id like KB-nginx-502")
    return problems


def _alert_problems(alert: Alert, level: Level) -> list[str]:
    where = f"alert {alert.name}"
    problems: list[str] = []
    if not ALERT_NAME_RE.match(alert.name):
        problems.append(f"{where}: name must be CamelCase")
    if not alert.expr.strip():
        problems.append(f"{where}: needs an expression")
    if not DURATION_RE.match(alert.duration):
        problems.append(f"{where}: for {alert.duration!r} is not a Prometheus duration (e.g. 0s, 15s, 1m30s)")
    if not (alert.summary_zh and alert.summary_en):
        problems.append(f"{where}: says its condition in words (zh and en)")
    if alert.level is not None and (not isinstance(alert.level, Level) or alert.level < level):
        problems.append(f"{where}: level must be the runbook's ({level.name}) or a lower one (early warning)")
    names = [name for name, _ in alert.labels]
    bad = [n for n in names if not LABEL_RE.match(n) or n in RESERVED_LABELS]
    if bad or len(set(names)) != len(names):
        problems.append(f"{where}: labels must be unique names, none of {', '.join(sorted(RESERVED_LABELS))}")
    return problems


def validate(runbook: Runbook) -> list[str]:
    problems: list[str] = []
    if not ID_RE.match(runbook.id):
        problems.append("id must be snake_case")
    if not isinstance(runbook.level, Level):
        problems.append("level must be a Level")
    if not runbook.triggers or not runbook.targets:
        problems.append("triggers and targets must not be empty")
    ids = [s.id for s in runbook.steps]
    if len(set(ids)) != len(ids):
        problems.append("step ids must be unique")
    kinds = [s.kind for s in runbook.steps]
    if StepKind.VERIFY not in kinds or StepKind.ESCALATE not in kinds:
        problems.append("a runbook needs a verify step (its recovery criterion) and an escalate step")
    elif kinds.index(StepKind.ESCALATE) < kinds.index(StepKind.VERIFY):
        problems.append("escalation comes after a verify step")
    for step in runbook.steps:
        problems.extend(_step_problems(step, runbook.targets))
    alert_names = [a.name for a in runbook.alerts]
    if len(set(alert_names)) != len(alert_names):
        problems.append("alert names must be unique")
    if isinstance(runbook.level, Level):
        for alert in runbook.alerts:
            problems.extend(_alert_problems(alert, runbook.level))
    return problems
