"""The CPU time each task cost in the lab's hosts, read from their cgroups (``make bench-converge``).

Ansible's profile_tasks says how long a task took; with every core busy, that is not what it cost. This says
how many CPU seconds the lab's containers spent while each task ran, per host. The linear strategy runs one task
on every host before the next, so a task's span holds its own work on the hosts (and what they do meanwhile
by themselves: timers, daemons). Enabled only by name (``bench_converge.py`` does), it writes the tasks to
PORTALOPS_HOST_CPU_LOG as a JSON list, the most costly first.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ansible.plugins.callback import CallbackBase

from portalops.lab import cpu

DOCUMENTATION = """
    name: portalops_host_cpu
    type: aggregate
    short_description: the CPU time each task cost in the lab's hosts
    description:
      - At the end of the run, writes to O(log) a JSON list of the tasks, each with its wall seconds and the CPU
        seconds of each lab host's container while it ran, the most costly first.
    requirements:
      - the lab's hosts are containers on this machine (portalops.lab.cpu reads their cgroups)
      - enabled by name (callbacks_enabled)
    options:
      log:
        description: where the JSON list goes
        type: path
        required: true
        env:
          - name: PORTALOPS_HOST_CPU_LOG
      prefix:
        description: the lab's container name prefix (the lab's name and a dash)
        type: str
        default: portalops-
        env:
          - name: PORTALOPS_HOST_CPU_PREFIX
"""


def costliest(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(tasks, key=lambda task: -sum(task["hosts_cpu_s"].values()))


class CallbackModule(CallbackBase):  # type: ignore[misc]
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "portalops_host_cpu"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tasks: list[dict[str, Any]] = []
        self._current: tuple[str, float, dict[str, tuple[str, float]]] | None = None

    def _reading(self) -> dict[str, tuple[str, float]]:
        return cpu.containers_cpu_seconds(str(self.get_option("prefix")), cpu.own_store())

    def _close(self) -> dict[str, tuple[str, float]]:
        """Ends the task that ran (if one did); the reading, which is where the next one starts."""
        now = self._reading()
        if self._current is not None:
            name, began, before = self._current
            used = cpu.used_since(before, now)
            self._tasks.append({"task": name, "seconds": time.monotonic() - began, "hosts_cpu_s": used})
            self._current = None
        return now

    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        now = self._close()
        self._current = (str(task.get_name()), time.monotonic(), now)

    def v2_playbook_on_handler_task_start(self, task: Any) -> None:
        self.v2_playbook_on_task_start(task, False)

    def v2_playbook_on_stats(self, stats: Any) -> None:
        self._close()
        Path(str(self.get_option("log"))).write_text(json.dumps(costliest(self._tasks), indent=1) + "\n")
