"""One error style for every portalops command.

Library code raises a subclass of :class:`PortalopsError`; only the CLI turns
it into an exit code and one readable line on stderr.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of the ``portalops`` command (documented in README.md)."""

    OK = 0
    FAILED = 1  # the work was attempted and did not succeed
    BAD_INPUT = 2  # wrong arguments or inventory; nothing was changed
    ENVIRONMENT = 3  # the machine lacks something: root, podman, the mirror
    UNKNOWN = 75  # cannot tell right now (EX_TEMPFAIL, the checks' convention): a server did not answer
    INTERRUPTED = 130  # Ctrl-C


class PortalopsError(Exception):
    """Base of every error portalops reports to a person."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class BadInput(PortalopsError):
    """The caller asked for something that does not exist or makes no sense."""

    exit_code = ExitCode.BAD_INPUT


class EnvironmentProblem(PortalopsError):
    """The machine cannot do the work as it is; the message says what to do."""

    exit_code = ExitCode.ENVIRONMENT


class CommandFailed(PortalopsError):
    """An external command (podman, debootstrap, ssh...) failed."""

    exit_code = ExitCode.FAILED
