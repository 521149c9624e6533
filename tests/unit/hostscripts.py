"""The host-side scripts the roles install (standard library only), loaded as modules for unit tests."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from portalops.inventory import REPO_ROOT


def load(name: str, relative: str) -> ModuleType:
    """``relative`` (a file under the repository) as module ``name``, registered so dataclasses resolve."""
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / relative)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
