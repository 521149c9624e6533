"""The JSON stdout callback's document among what else Ansible prints (profile_tasks' timings)."""

from __future__ import annotations

import pytest

from portalops.ansible_json import callback_document

DOCUMENT = '{\n    "plays": [],\n    "stats": {"web1": {"ok": 2, "failures": 0}}\n}'
TIMINGS = "Thursday 03 December 2026  23:40:01 +0000 (0:00:01.532)       0:00:04.101 ****** {x}\n"


@pytest.mark.parametrize(
    "output",
    [DOCUMENT, DOCUMENT + "\n", TIMINGS + DOCUMENT + "\n" + TIMINGS, "noise {not: json}\n" + DOCUMENT],
    ids=["alone", "newline", "timings-around", "brace-mid-line"],
)
def test_the_document_is_found_where_it_starts_a_line(output: str) -> None:
    assert callback_document(output)["stats"] == {"web1": {"ok": 2, "failures": 0}}


@pytest.mark.parametrize("output", ["", "ERROR! the playbook could not be found\n", TIMINGS, "[1, 2]\n", "{broken\n"])
def test_no_document_is_a_value_error(output: str) -> None:
    with pytest.raises(ValueError):
        callback_document(output)
