"""The host-side code for unit tests: the scripts the roles install loaded as modules, and fakes for the
portalops_host package (standard library only)."""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
from types import ModuleType

import pytest

import portalops_host
from portalops.inventory import REPO_ROOT


def load(name: str, relative: str) -> ModuleType:
    """``relative`` (a file under the repository) as module ``name``, registered so dataclasses resolve."""
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / relative)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def replace(monkeypatch: pytest.MonkeyPatch, name: str, value: object) -> None:
    """portalops_host's function (or constant) ``name`` replaced by ``value`` for every caller: in the module
    that defines it and in each module that imported it by name, so a test fakes restic or MariaDB once."""
    modules = [
        importlib.import_module(f"portalops_host.{m.name}") for m in pkgutil.iter_modules(portalops_host.__path__)
    ]
    holders = [module for module in modules if name in vars(module)]
    assert holders, f"no portalops_host module has {name}"
    original = vars(holders[0])[name]
    for module in holders:
        if vars(module)[name] is original:
            monkeypatch.setattr(module, name, value)


# The role's portalops-host executable (the base role installs it as /usr/local/sbin/portalops-host), run from
# this checkout by this interpreter.
HOST_TOOL_HERE = f"PYTHONPATH={REPO_ROOT} {sys.executable} {REPO_ROOT / 'roles/base/files/portalops_host_cli.py'}"


def on_this_machine(command: str) -> str:
    """A runbook's shell command with its ``portalops-host`` calls run by :data:`HOST_TOOL_HERE`."""
    from portalops.runbook.checks import HOST_TOOL

    assert HOST_TOOL in command, command
    return command.replace(HOST_TOOL, HOST_TOOL_HERE)
