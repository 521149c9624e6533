"""Running external commands with errors that say what failed."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence

from portalops.errors import CommandFailed, EnvironmentProblem


def require_tools(tools: Sequence[str], hint: str) -> None:
    """Fail with one line naming every missing tool and how to get it."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        raise EnvironmentProblem(f"missing on this machine: {', '.join(missing)}; {hint}")


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
    timeout: float | None = 600,
    check: bool = True,
    what: str = "",
) -> subprocess.CompletedProcess[str]:
    """Run ``argv``, capture its output, and raise :class:`CommandFailed` on failure.

    ``what`` names the action for the error message ("create network ...");
    the last lines of stderr become the error's detail.
    """
    try:
        result = subprocess.run(
            list(argv),
            env=dict(env) if env is not None else None,
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise EnvironmentProblem(f"{argv[0]} is not installed: {exc}") from exc
    except subprocess.TimeoutExpired as exc:
        raise CommandFailed(f"{what or argv[0]}: timed out after {timeout:.0f} s") from exc
    if check and result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise CommandFailed(
            f"{what or ' '.join(argv[:3])}: exit {result.returncode}: {last_line(tail)}",
            detail=tail,
        )
    return result


def last_line(text: str) -> str:
    """The last non-empty line of ``text``, the one that usually says why."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "(no output)"
