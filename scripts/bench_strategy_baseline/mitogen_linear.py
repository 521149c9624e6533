"""`make bench-strategy`'s baseline: plugins/strategy/mitogen_linear.py as it was before the collection list.

Mitogen's linear strategy with its CPU pinning switched off, and nothing else: its workers list the installed
collections for each task whose module comes from one. The benchmark points ANSIBLE_STRATEGY_PLUGINS here.
"""

import ansible_mitogen.affinity
from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule

ansible_mitogen.affinity.policy = ansible_mitogen.affinity.Policy()

__all__ = ["StrategyModule"]
