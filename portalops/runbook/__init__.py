"""Runbooks: executable emergency plans with fault levels, deadlines and a journal.

A runbook file under ``runbooks/`` declares a :class:`Runbook` of ordered
steps; the engine plans, confirms and runs it, and ``plans`` turns the same
declaration into the auditors' documents. Runbook files import from here.
"""

from __future__ import annotations

from portalops.runbook.levels import Level
from portalops.runbook.model import CONTROLLER, Alert, Runbook, Step, StepKind, act, diagnose, escalate, manual, verify

__all__ = [
    "CONTROLLER",
    "Alert",
    "Level",
    "Runbook",
    "Step",
    "StepKind",
    "act",
    "diagnose",
    "escalate",
    "manual",
    "verify",
]
