"""`portalops tier-check`: a three-state check run on the hosts of a pattern, from the controller.

A runbook step on the controller often has to ask a tier a question whose answer has three values:
sound (exit 0), broken (1) or unknown (75: the check could not tell right now). ``ansible -o`` loses
the check's own exit code (it exits 2 for any failed host), so the step asks Ansible through its JSON
callback and judges every host's result here: 0 when every host of the pattern says sound, 1 when
one says broken, 75 when none says broken but one could not tell (its exit 75, a timeout, unreachable,
no result at all) or no host answered. Unknown never passes for sound: a step that gates a
destructive act on it (php-fpm started into a database) refuses.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from portalops.ansible_json import JSON_CALLBACK_ENV, callback_document, host_results
from portalops.runbook.hosts import TIMED_OUT, UNKNOWN
from portalops.vault import ansible_env

SOUND, BROKEN = 0, 1  # UNKNOWN (75) and TIMED_OUT (124, coreutils timeout on the host): as the runbooks' hosts say


@dataclass(frozen=True)
class Answer:
    host: str
    rc: int | None  # None: the host gave no exit code (unreachable, the module failed)
    text: str  # what it said, on one line
    unreachable: bool = False


def answers(document: Mapping[str, Any]) -> list[Answer]:
    """Each host's answer in the JSON callback's document of one ad-hoc command."""
    found = []
    for _, host, result in host_results(document):
        said = " ".join(str(result.get(k) or "").strip() for k in ("stdout", "stderr")).strip()
        rc = result.get("rc")
        found.append(
            Answer(
                host,
                rc if isinstance(rc, int) and not isinstance(rc, bool) else None,
                " ".join((said or str(result.get("msg") or "")).split()),
                bool(result.get("unreachable")),
            )
        )
    return found


def verdict(found: Sequence[Answer], ansible_rc: int) -> tuple[int, str]:
    """The three states over every host's answer, and the line that says which."""
    broken = [a.host for a in found if a.rc not in (None, SOUND, UNKNOWN, TIMED_OUT) and not a.unreachable]
    if broken:
        return BROKEN, f"broken on {' '.join(broken)}"
    unknown = [
        f"{a.host} ({'unreachable' if a.unreachable else 'no exit code' if a.rc is None else f'exit {a.rc}'})"
        for a in found
        if a.unreachable or a.rc != SOUND
    ]
    if found and not unknown and ansible_rc == 0:
        return SOUND, "sound"
    if not unknown:
        unknown = [f"(ansible exit {ansible_rc}{', no host answered' if not found else ''})"]
    return UNKNOWN, f"unknown, cannot tell on {' '.join(unknown)}"


def argv(pattern: str, inventory: str, command: str, timeout: int) -> list[str]:
    return [
        "ansible",
        pattern,
        "-i",
        inventory,
        "-m",
        "ansible.builtin.command",
        "-a",
        f"timeout {timeout} {command}",
    ]


def run_check(pattern: str, inventory: str, command: str, timeout: int) -> tuple[int, list[str]]:
    """Run ``command`` on the hosts of ``pattern``; the exit code and the lines to print (each host's
    answer, then the verdict)."""
    try:
        done = subprocess.run(
            argv(pattern, inventory, command, timeout),
            env={**ansible_env(inventory), **JSON_CALLBACK_ENV},
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout + 120,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return UNKNOWN, [f"unknown, cannot tell on {pattern} (ansible: {exc})"]
    try:
        found = answers(callback_document(done.stdout))
    except ValueError:
        found = []
    lines = [f"{a.host} | {'unreachable' if a.unreachable else f'rc={a.rc}'} | {a.text}" for a in found]
    if not found:  # what ansible said instead, e.g. an inventory it could not parse
        lines += (done.stderr.strip().splitlines() or done.stdout.strip().splitlines())[-5:]
    code, line = verdict(found, done.returncode)
    return code, [*lines, line]


def command_line(pattern: str, command: str, timeout: int = 240) -> str:
    """The step command that runs ``command`` as a three-state check on ``pattern``, for a runbook's
    controller step (``{{ inventory }}`` is filled in by the engine)."""
    return (
        f"{{{{ python }}}} -m portalops.cli tier-check {pattern} -i {{{{ inventory }}}} --timeout {timeout} "
        + shlex.quote(command)
    )
