"""A role's entry point run by ansible-playbook on this machine, for unit tests: no host, no molecule.

:func:`role_entry_play` writes the play (one task including the role's ``tasks_from``, and what the test
adds after it), :func:`run_play` runs a play with the test's variables (``-e @vars.json``) against the
test's inventory, from the repository with its ansible.cfg, and returns what ansible-playbook did.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from portalops.inventory import REPO_ROOT


def role_entry_play(
    role: str,
    tasks_from: str,
    hosts: str,
    *,
    name: str = "",
    local: bool = False,
    public: bool = False,
    then: str = "",
) -> str:
    """A play on ``hosts`` without facts whose task "Check the input" includes ``role``'s ``tasks_from``
    (``public``: its variables stay visible to later tasks); ``local``: the play connects locally;
    ``then``: further tasks, YAML indented as the play's tasks (four spaces)."""
    title = name or f"Check the {role} role's input"
    lines = [
        f"- name: {title}",
        f"  hosts: {hosts}",
        *(["  connection: local"] if local else []),
        "  gather_facts: false",
        "  tasks:",
        "    - name: Check the input",
        "      ansible.builtin.include_role:",
        f"        name: {role}",
        f"        tasks_from: {tasks_from}",
        *(["        public: true"] if public else []),
    ]
    return "\n".join(lines) + "\n" + then


def run_play(
    directory: Path,
    play: str,
    variables: Mapping[str, Any],
    inventory: str | Path,
    *options: str,
    env: Mapping[str, str | None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``play`` (written to ``directory``/play.yml) with ``variables`` (``directory``/vars.json, as extra
    vars) against ``inventory`` (a file, or a list such as ``localhost,``); ``options`` go to ansible-playbook
    before the play, ``env`` changes the environment (None removes a variable). The repository's
    ansible.cfg, from the repository; a run over 120 s fails the test."""
    (directory / "play.yml").write_text(play)
    (directory / "vars.json").write_text(json.dumps(variables))
    environment = {**os.environ, "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg")}
    for key, value in (env or {}).items():
        if value is None:
            environment.pop(key, None)
        else:
            environment[key] = value
    return subprocess.run(
        [
            "ansible-playbook",
            *options,
            *("-i", str(inventory)),
            str(directory / "play.yml"),
            *("-e", f"@{directory / 'vars.json'}"),
        ],
        env=environment,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
