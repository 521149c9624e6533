"""The document Ansible's JSON stdout callback prints (``ansible.builtin.json``, ``ansible.posix.json``).

One parser for every caller that runs ``ansible`` or ``ansible-playbook`` with that callback: the
variable resolver, the lab tests and the benchmarks.
"""

from __future__ import annotations

import json
from typing import Any


def callback_document(output: str) -> dict[str, Any]:
    """The document the JSON stdout callback printed (ValueError when there is none).

    It starts a line: other callbacks (ansible.cfg's profile_tasks) may print around it.
    """
    start = 0 if output.startswith("{") else output.index("\n{") + 1
    data, _ = json.JSONDecoder().raw_decode(output[start:])
    if not isinstance(data, dict):
        raise ValueError("the JSON callback's document is not an object")
    return data
