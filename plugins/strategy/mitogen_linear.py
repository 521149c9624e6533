"""Mitogen's linear strategy (ansible.cfg ``strategy``), taken from the installed ansible_mitogen.

Mitogen keeps one Python interpreter per host for the whole run and sends modules to it over the
SSH connection, instead of copying and starting a new interpreter for every task. The package
comes from requirements.lock; this file only lets ansible.cfg name it without a path into .venv.

Mitogen also pins processes to CPUs, tuned on an idle 16-thread machine. With fewer than four
CPUs it gives the connection multiplexer CPU 0 and pins the Ansible controller, every worker
and every SSH child to the other CPUs: on a 2-CPU control node, the one CPU left, shared with
the lab's hosts. The scheduler does better: pinning is switched off here (an ansible_mitogen
without this policy object fails loudly rather than pinning again unnoticed).
"""

import ansible_mitogen.affinity
from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule

if not isinstance(getattr(ansible_mitogen.affinity, "policy", None), ansible_mitogen.affinity.Policy):
    raise ImportError("ansible_mitogen.affinity.policy changed; re-check CPU pinning in plugins/strategy/")
ansible_mitogen.affinity.policy = ansible_mitogen.affinity.Policy()

__all__ = ["StrategyModule"]
