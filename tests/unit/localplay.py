"""A playbook run on this machine for the unit tests of the roles' own actions and modules.

``work/site.yml`` through ansible-playbook (connection local, the repository's ansible.cfg, so
plugins/action and plugins/modules are found, this interpreter on the "host"), with the JSON
callback: each task's result by task name.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from portalops.ansible_json import JSON_CALLBACK_ENV, callback_document, host_results
from portalops.vault import REPO_ROOT


def play(work: Path, *options: str) -> dict[str, Any]:
    """Run ``work/site.yml`` with ``options`` (``--check``, ``--diff``); the results by task name."""
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
        **JSON_CALLBACK_ENV,
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
    }
    argv = ["ansible-playbook", "-i", "localhost,", "-c", "local", *options, str(work / "site.yml")]
    done = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=120, check=False)
    return {task: result for task, _host, result in host_results(callback_document(done.stdout))}
