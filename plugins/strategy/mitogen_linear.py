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
"""

from __future__ import annotations

import gc
from typing import Any

import ansible.collections.list
import ansible_mitogen.affinity
import ansible_mitogen.planner
import ansible_mitogen.strategy
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


class StrategyModule(_MitogenLinear):  # type: ignore[misc]
    def run(self, *args: Any, **kwargs: Any) -> Any:
        _installed_collection_dirs()  # in the controller, before any worker forks
        return super().run(*args, **kwargs)


__all__ = ["StrategyModule"]
