"""From a runbook and an inventory to the exact commands a run would execute.

Commands may use ``{{ python }}`` (this Python), ``{{ inventory }}`` (the
inventory path) and ``{{ repo }}`` (the repository); they are filled in, shell
quoted, here, so ``--dry-run`` shows what will really run.
"""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from portalops.errors import BadInput
from portalops.inventory import REPO_ROOT, Inventory
from portalops.runbook.model import Runbook, Step, StepKind

PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def context_for(inventory_source: str) -> dict[str, str]:
    return {"python": sys.executable, "inventory": inventory_source, "repo": str(REPO_ROOT)}


def fill(text: str, context: Mapping[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in context:
            raise BadInput(f"unknown placeholder {{{{ {name} }}}} in {text!r}; known: {', '.join(sorted(context))}")
        return shlex.quote(context[name])

    return PLACEHOLDER.sub(value, text)


def expand(inventory: Inventory, names: Sequence[str]) -> list[str]:
    """Hosts of inventory groups or host names, in inventory order, each once."""
    hosts: list[str] = []
    for name in names:
        if name in inventory.groups:
            hosts += inventory.hosts_in(name)
        elif name in inventory.hostvars:
            hosts.append(name)
        else:
            raise BadInput(f"inventory {inventory.source} has no host or group {name!r}")
    return list(dict.fromkeys(hosts))


@dataclass(frozen=True)
class PlannedStep:
    index: int
    step: Step
    hosts: tuple[str, ...]  # empty: the controller
    run: str
    check: str

    @property
    def remote(self) -> bool:
        return bool(self.step.on)


def make_plan(
    runbook: Runbook, inventory: Inventory, limit: Sequence[str], context: Mapping[str, str]
) -> list[PlannedStep]:
    """Every step with its hosts (narrowed by ``limit``) and filled-in commands."""
    targets = set(expand(inventory, runbook.targets))
    allowed = targets
    if limit:
        chosen = expand(inventory, limit)
        outside = [h for h in chosen if h not in targets]
        if outside:
            raise BadInput(f"{', '.join(outside)} not among the targets of {runbook.id} ({', '.join(runbook.targets)})")
        allowed = set(chosen)
    planned = []
    for index, step in enumerate(runbook.steps, 1):
        hosts = tuple(h for h in expand(inventory, step.on) if h in allowed)
        planned.append(PlannedStep(index, step, hosts, fill(step.run, context), fill(step.check, context)))
    return planned


def playbook_command(step: Step, hosts: Sequence[str], context: Mapping[str, str]) -> str:
    argv = ["ansible-playbook", "-i", context["inventory"], step.playbook, "--limit", ",".join(hosts)]
    return shlex.join(argv)


def describe(
    runbook: Runbook, planned: Sequence[PlannedStep] | None = None, context: Mapping[str, str] | None = None
) -> str:
    """The plan as a person reads it before saying yes; with ``planned``, on real hosts and commands."""
    level = runbook.level
    lines = [
        f"{runbook.id}: L{int(level)} {level.spec.name_zh} · {runbook.title_zh} / {runbook.title_en}",
        f"  level: {level.spec.meaning_en}",
        f"  response: {level.spec.response_en}",
        f"  targets: {', '.join(runbook.targets)}",
    ]
    for number, step in enumerate(runbook.steps, 1):
        entry = planned[number - 1] if planned else None
        where = (", ".join(entry.hosts) or "(no host selected)") if entry and step.on else step.where
        flags = [f"timeout {step.timeout:g} s"] + (["destructive: asks first"] if step.destructive else [])
        if step.attempts > 1:
            flags.append(f"{step.attempts} attempts")
        if step.kind is StepKind.ACT and step.check:
            again = f"checked again up to {step.wait:g} s, " if step.wait else ""
            flags.append(f"unknown (exit 75, timeout, unreachable): {again}never acted on")
        lines.append(f"{number:>3}. {step.kind:<9} {step.id}: {step.title_zh} / {step.title_en}")
        lines.append(f"       on {where}; {'; '.join(flags)}")
        check = entry.check if entry else step.check
        run = entry.run if entry else step.run
        if check:
            lines.append(f"       check: {_indent(check)}")
        if run:
            lines.append(f"       {'run' if step.kind is not StepKind.ESCALATE else 'collect'}: {_indent(run)}")
        if step.playbook:
            hosts = ["<hosts whose check failed>"]
            text = playbook_command(step, hosts, context) if context else f"ansible-playbook {step.playbook}"
            lines.append(f"       run: {text}")
        if step.note_en:
            lines.append(f"       {'to' if step.kind is StepKind.ESCALATE else 'do'}: {step.note_zh} / {step.note_en}")
        if step.kb:
            lines.append(f"       kb: {step.kb} (`portalops kb show {step.kb}`)")
    return "\n".join(lines)


def _indent(command: str) -> str:
    return command.strip().replace("\n", "\n" + " " * 14)
