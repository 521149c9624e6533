from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def lock_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Runs in unit tests lock hosts here, never beside a real run's locks."""
    directory = tmp_path_factory.mktemp("locks")
    monkeypatch.setattr("portalops.runbook.lock.LOCK_DIR", directory)
    return directory


@pytest.fixture
def inventory_json() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / "inventory_list.json").read_text())
    return data
