"""Exit codes of ``portalops runbook run`` (and of a runbook file run directly).

2 and 3 mean what they mean for every portalops command
(:class:`portalops.errors.ExitCode`); 4 is the runbook's own: nothing more
will happen unless a person resumes the incident.
"""

from __future__ import annotations

from enum import IntEnum


class RunbookExit(IntEnum):
    RECOVERED = 0  # every verify step passed (a dry run also exits 0)
    NOT_RECOVERED = 1  # a verify step failed: the incident was escalated
    BAD_INPUT = 2  # unknown runbook, host, incident or inventory; nothing was changed
    ENVIRONMENT = 3  # the controller lacks something (ansible, the SSH key)
    ABORTED = 4  # declined at a confirmation, or interrupted: `--resume INCIDENT` goes on

    @property
    def meaning(self) -> str:
        return MEANINGS[self]


MEANINGS = {
    RunbookExit.RECOVERED: "recovered: every verify step passed (a dry run also exits 0)",
    RunbookExit.NOT_RECOVERED: "not recovered: a verify step failed and the incident was escalated",
    RunbookExit.BAD_INPUT: "bad input: unknown runbook, host, incident or inventory; nothing was changed",
    RunbookExit.ENVIRONMENT: "environment: the controller lacks something (ansible, the SSH key)",
    RunbookExit.ABORTED: "aborted: declined at a confirmation or interrupted; `--resume INCIDENT` continues",
}
