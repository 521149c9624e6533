"""STYLE rule 9 over every role: a handler is capitalised, acts on one service, and is only ever notified (a
handler that loops over daemons hides which one a change touched, and a check run cannot say)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROLES = Path(__file__).resolve().parents[2] / "roles"
HANDLER_FILES = sorted(ROLES.glob("*/handlers/*.yml"))
SERVICE_MODULES = {"ansible.builtin.systemd_service", "ansible.builtin.systemd", "ansible.builtin.service"}


def handlers(path: Path) -> list[dict[str, Any]]:
    return list(yaml.safe_load(path.read_text()) or [])


def test_there_are_handlers_to_check() -> None:
    assert len(HANDLER_FILES) >= 5, HANDLER_FILES


@pytest.mark.parametrize("path", HANDLER_FILES, ids=lambda p: str(p.relative_to(ROLES)))
def test_each_handler_acts_on_one_service(path: Path) -> None:
    for handler in handlers(path):
        name = handler["name"]
        assert name[:1].isupper(), f"{path}: handler {name!r} is not capitalised"
        assert not {"loop", "with_items"} & set(handler), f"{path}: handler {name!r} loops"
        for module in SERVICE_MODULES & set(handler):
            service = handler[module]["name"]
            # one unit (a variable may name it: php-fpm's is versioned), not a list of them
            assert isinstance(service, str), f"{path}: handler {name!r} acts on {service!r}"
