"""The document Ansible's JSON stdout callback prints (``ansible.builtin.json``, ``ansible.posix.json``).

One parser for every caller that runs ``ansible`` or ``ansible-playbook`` with that callback: the
variable resolver, the lab tests and the benchmarks.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

# Ansible prints one JSON document: the JSON stdout callback alone (ansible.cfg's profile_tasks would
# print around it). Callers that want the change records too add portalops_changes to the last entry.
JSON_CALLBACK_ENV = {
    "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
    "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
    "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.json",
}


def callback_document(output: str) -> dict[str, Any]:
    """The document the JSON stdout callback printed (ValueError when there is none).

    It starts a line: other callbacks (ansible.cfg's profile_tasks) may print around it.
    """
    start = 0 if output.startswith("{") else output.index("\n{") + 1
    data, _ = json.JSONDecoder().raw_decode(output[start:])
    if not isinstance(data, dict):
        raise ValueError("the JSON callback's document is not an object")
    return data


def host_results(document: Mapping[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(task name, host, result) of every task of every play of the document, in order."""
    for play in document.get("plays", []):
        for task in play.get("tasks", []):
            for host, result in task.get("hosts", {}).items():
                yield str(task.get("task", {}).get("name", "")), str(host), result
