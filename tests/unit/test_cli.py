from __future__ import annotations

import io

import pytest

from portalops.cli import main
from portalops.errors import BadInput, ExitCode, PortalopsError


def test_lab_needs_a_subcommand() -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["lab"], out=io.StringIO(), err=io.StringIO())
    assert exit_info.value.code == 2


def test_exit_codes_are_documented_values() -> None:
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 75, 130]
    assert BadInput("x").exit_code is ExitCode.BAD_INPUT
    assert PortalopsError("x").exit_code is ExitCode.FAILED


def test_errors_become_one_line_and_an_exit_code(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_: object) -> None:
        raise BadInput("no lab host named 'x'; the lab has: web1")

    monkeypatch.setattr("portalops.cli.Podman.preflight", boom)
    err = io.StringIO()
    code = main(["lab", "status"], out=io.StringIO(), err=err)
    assert code == ExitCode.BAD_INPUT
    assert err.getvalue() == "portalops: no lab host named 'x'; the lab has: web1\n"
