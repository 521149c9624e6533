from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture
def inventory_json() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / "inventory_list.json").read_text())
    return data
