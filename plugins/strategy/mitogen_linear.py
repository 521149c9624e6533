"""Mitogen's linear strategy (ansible.cfg ``strategy``), taken from the installed ansible_mitogen.

Mitogen keeps one Python interpreter per host for the whole run and sends modules to it over the
SSH connection, instead of copying and starting a new interpreter for every task. The package
comes from requirements.lock; this file only lets ansible.cfg name it without a path into .venv.
"""

from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule

__all__ = ["StrategyModule"]
