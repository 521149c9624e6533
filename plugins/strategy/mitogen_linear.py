"""Mitogen's linear strategy (ansible.cfg ``strategy``), taken from the installed ansible_mitogen.

Mitogen keeps one Python interpreter per host for the whole run and sends modules to it over the
SSH connection, instead of copying and starting a new interpreter for every task. The package
comes from requirements.lock; this file only lets ansible.cfg name it without a path into .venv.

Mitogen also pins processes to CPUs, tuned on an idle 16-thread machine. With fewer than four
CPUs it gives the connection multiplexer CPU 0 and pins the Ansible controller, every worker
and every SSH child to the other CPUs: on a 2-CPU control node, the one CPU left, shared with
the lab's hosts. The scheduler does better: pinning is switched off here (an ansible_mitogen
without this policy object fails loudly rather than pinning again unnoticed).

And Mitogen lists the installed collections for every task whose module lives in one
(ansible.posix, community.*): ``planner._load_collections`` walks all of the ``ansible``
package's ~100 collections and parses each one's metadata, in the task's worker process, so its
memo of the result dies with the worker. Here the list is made once, in the controller before
the first worker forks, and every worker reads it from the memory it inherits (a new collection
search path is listed anew). 40 ``ansible.posix.sysctl`` tasks on 3 lab hosts took 19 CPU-s of
the controller with Mitogen's own and 8 with this one; site.yml's re-run, with few such tasks,
2-4% less.

Each task's worker is a fork of the controller and inherits its whole heap (~140 MB of Ansible's
objects). The cyclic garbage collector's first collections in the worker walked those inherited
objects, writing to each one's header (and so copying its page): 12% of the workers' CPU in a
re-run of site.yml (perf). The worker now moves what it inherited to the permanent generation
first (``gc.freeze()``, which only relinks the generations' lists), so its collections see only
what it made itself; the controller's own collections are untouched. site.yml's re-run on the lab:
the workers' collector from ~4.1 to ~0.8 CPU-s (perf), the controller's user time 7% less (34.5 to
32.0 s, three runs each).

And it installs portalops.jinja_cache: each template compiled once per user instead of once per
worker (the workers' largest single cost after the fork itself).

And a task whose ``when`` is false is skipped in the controller, without a worker: Ansible forks a
worker for every host and task and only there finds the condition false (a fifth of site.yml's
re-run: 213 of 976 host-tasks, each a fork, a copy-on-write heap and an exit for a ``skipped``).
The controller evaluates the condition exactly as the worker's TaskExecutor would (the same
variables with the play context's connection variables added, the task as its context, warnings
captured) and puts the same result on the same queue, after the same bookkeeping, so callbacks,
``register``, statistics and includes see no difference. Anything else goes to a worker as before:
a task with a loop (its condition is per item) or ``delegate_to`` (the delegated host's variables),
a condition that is true, raises or warns, a ``no_log`` that does not template. A true condition is
thus evaluated twice (a lookup in it runs twice), as every variable a task reads is templated anew
by each task's worker anyway.

And a task of an action that never reaches its host (ansible.builtin's debug, set_fact, assert,
fail, validate_argument_spec: a fifth of the re-run again, mostly each role's input checks) runs its
TaskExecutor in the controller, on copies of the task and its variables as a worker would, unless it
is delegated, asynchronous or timed. Site.yml's re-run on the lab: the controller's CPU 47.1 to 36.2 s
(user+sys, old and new interleaved, two runs each), 48.2 to 44.0 s wall.
tests/unit/test_strategy_skip.py compares the results of a run with stock ``linear``'s.
"""

from __future__ import annotations

import gc
from typing import Any

import ansible.collections.list
import ansible_mitogen.affinity
import ansible_mitogen.planner
import ansible_mitogen.strategy
from ansible._internal import _display_utils, _task
from ansible._internal._templating._engine import TemplateEngine
from ansible.errors import AnsibleError
from ansible.executor.task_executor import TaskExecutor
from ansible.executor.task_result import _RawTaskResult
from ansible.plugins import loader as plugin_loader
from ansible.utils.collection_loader import AnsibleCollectionConfig
from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule as _MitogenLinear

from portalops import jinja_cache

if not isinstance(getattr(ansible_mitogen.affinity, "policy", None), ansible_mitogen.affinity.Policy):
    raise ImportError("ansible_mitogen.affinity.policy changed; re-check CPU pinning in plugins/strategy/")


if "assign_worker" not in ansible_mitogen.strategy.wrap_worker__run.__code__.co_names:
    raise ImportError("ansible_mitogen no longer calls the policy in each worker; re-check plugins/strategy/")


class _ProcessPolicy(ansible_mitogen.affinity.Policy):  # type: ignore[misc]
    """No CPU pinning; each task's worker takes what it inherited out of the cyclic garbage collector."""

    def assign_worker(self) -> None:
        """In the worker, first thing after the fork (Mitogen calls it from WorkerProcess.run)."""
        gc.freeze()


ansible_mitogen.affinity.policy = _ProcessPolicy()

# Templates compiled once per user, not once per worker (portalops/jinja_cache.py): installed here, in the
# controller, so that every worker forked from it has it.
jinja_cache.install()

if not callable(getattr(ansible_mitogen.planner, "_load_collections", None)):
    raise ImportError("ansible_mitogen.planner._load_collections changed; re-check plugins/strategy/")

_mitogen_load_collections = ansible_mitogen.planner._load_collections
# The collections found, by the search path they were found on (a playbook beside a collections/
# directory adds one to it): a changed path lists again, as Mitogen's own would.
_collection_dirs: dict[tuple[str, ...], tuple[str, ...]] = {}


def _collection_search_path() -> tuple[str, ...]:
    return tuple(AnsibleCollectionConfig.collection_paths)


def _installed_collection_dirs() -> tuple[str, ...]:
    search_path = _collection_search_path()
    if search_path not in _collection_dirs:
        listed = ansible.collections.list.list_collection_dirs()
        _collection_dirs[search_path] = tuple(path.decode("utf-8") for path in listed)
    return _collection_dirs[search_path]


def _load_collections(invocation: Any) -> None:
    """What Mitogen's own does (the collections' paths for the module's imports), from the list made once."""
    invocation._extra_sys_paths.update(_installed_collection_dirs())


ansible_mitogen.planner._load_collections = _load_collections


def skipped_result(host: Any, task: Any, task_vars: dict[str, Any], play_context: Any) -> dict[str, Any] | None:
    """The result a worker would send for this host and task when its ``when`` is false; else None.

    The steps of TaskExecutor._execute_internal up to its conditional (ansible-core 2.19), for a
    task without a loop or delegation: the play context with the task's and the variables'
    overrides adds the connection variables the task's variables lack, then the condition.
    """
    if not task.when or task.loop is not None or task.loop_with or task.delegate_to is not None:
        return None
    templar = TemplateEngine(loader=task._loader, variables=task_vars)
    variables = task_vars.copy()
    with _task.TaskContext(task), _display_utils.DeferredWarningContext(variables=task_vars) as warnings:
        try:
            context = play_context.set_task_and_variable_override(task=task, variables=task_vars, templar=templar)
            context.post_validate(templar=templar)
            if not context.remote_addr:
                context.remote_addr = host.address
            context.update_vars(variables)
        except AnsibleError:
            pass  # the worker keeps this error for a task that runs; a skipped one never raises it
        false_condition: dict[str, Any] = {}
        try:
            if task._resolve_conditional(task.when, variables, result_context=false_condition):
                return None
            result = {"changed": False, "skipped": True, "skip_reason": "Conditional result was False"}
            result.update(false_condition)
            task.update_result_no_log(templar, result)
        except Exception:  # whatever it is, the worker meets it again and reports it as Ansible does
            return None
        if warnings.get_warnings() or warnings.get_deprecation_warnings():
            return None  # the worker's result carries them to the callbacks
    return result


# Actions that run wholly in the controller and never reach the host (ansible-core's own plugins, by their
# FQCN: a short name may resolve to a plugin of the playbook's). Their tasks' TaskExecutor runs in the
# controller itself rather than in a forked worker.
CONTROLLER_ACTIONS = frozenset(
    {
        "ansible.builtin.assert",
        "ansible.builtin.debug",
        "ansible.builtin.fail",
        "ansible.builtin.set_fact",
        "ansible.builtin.validate_argument_spec",
    }
)


def runs_in_controller(task: Any) -> bool:
    """A task of CONTROLLER_ACTIONS that nothing sends elsewhere (delegation, async), times (timeout) or makes
    wait (``until``'s retries, a loop's pause): here the hosts take their turns, a wait would be each host's in
    a row instead of every host's at once."""
    pause = task.loop_control.pause if task.loop_control else 0
    return (
        task.action in CONTROLLER_ACTIONS
        and task.delegate_to is None
        and not (task.async_val or task.timeout or task.until or pause)
    )


class StrategyModule(_MitogenLinear):  # type: ignore[misc]
    def run(self, *args: Any, **kwargs: Any) -> Any:
        _installed_collection_dirs()  # in the controller, before any worker forks
        return super().run(*args, **kwargs)

    def _queue_task(self, host: Any, task: Any, task_vars: dict[str, Any], play_context: Any) -> None:
        if runs_in_controller(task):
            self._send_result(host, task, task_vars, play_context, None)
            return
        result = skipped_result(host, task, task_vars, play_context)
        if result is None:
            super()._queue_task(host, task, task_vars, play_context)
            return
        self._send_result(host, task, task_vars, play_context, result)

    def _send_result(
        self, host: Any, task: Any, task_vars: dict[str, Any], play_context: Any, result: dict[str, Any] | None
    ) -> None:
        """What StrategyBase._queue_task and WorkerProcess do around TaskExecutor.run(), without the fork.

        ``result`` is a skipped task's; None: run the task's TaskExecutor here, on a copy of the task and of
        its variables (it squashes and templates the one, a loop writes its item into the other), as a
        worker does on the copies it inherits.
        """
        self._queued_task_cache[(host.name, task._uuid)] = {
            "host": host,
            "task": task,
            "task_vars": task_vars,
            "play_context": play_context,
        }
        self._tqm.send_callback("v2_runner_on_start", host, task)
        own = task.copy()
        if result is None:
            with _task.TaskContext(own):
                result = TaskExecutor(
                    host,
                    own,
                    task_vars.copy(),
                    play_context,
                    self._loader,
                    plugin_loader.get_plugin_loader_namespace(),
                    self._final_q,
                    self._variable_manager,
                ).run()
        else:
            own.squash()
        self._final_q.send_task_result(
            _RawTaskResult(host=host, task=own, return_data=result, task_fields=own.dump_attrs())
        )
        self._pending_results += 1


__all__ = ["StrategyModule"]
