"""plugins/modules/portalops_services.py: many systemd units in one call, each decided as
ansible.builtin.systemd_service decides. The lab's converge, its second run and --check --diff run it on
real systemd; here, its reading of systemctl's answers."""

from __future__ import annotations

import pytest

from tests.unit.hostscripts import load

module = load("portalops_services_under_test", "plugins/modules/portalops_services.py")

SHOW = """Id=nftables.service
LoadState=loaded
ActiveState=active
LoadError=

Id=nosuch.service
LoadState=not-found
ActiveState=inactive
LoadError=org.freedesktop.systemd1.NoSuchUnit "Unit nosuch.service not found."

Id=dailyaidecheck.timer
LoadState=loaded
ActiveState=inactive
LoadError=
"""


def test_systemctl_show_gives_one_block_per_unit_in_order() -> None:
    blocks = module.shown(SHOW, 3)
    assert [block["Id"] for block in blocks] == ["nftables.service", "nosuch.service", "dailyaidecheck.timer"]
    assert blocks[1]["LoadState"] == "not-found" and blocks[1]["LoadError"].startswith("org.freedesktop")
    assert blocks[2]["ActiveState"] == "inactive"


def test_an_answer_for_another_number_of_units_is_no_answer() -> None:
    assert module.shown(SHOW, 2) == []
    assert module.shown("", 1) == []


@pytest.mark.parametrize(
    ("state", "active", "action"),
    [
        ("started", "active", None),
        ("started", "activating", None),
        ("started", "inactive", "start"),
        ("started", "failed", "start"),
        ("stopped", "active", "stop"),
        ("stopped", "deactivating", "stop"),
        ("stopped", "inactive", None),
        ("restarted", "active", "restart"),
        ("restarted", "inactive", "start"),
        ("reloaded", "active", "reload"),
        ("reloaded", "failed", "start"),
        (None, "inactive", None),
    ],
)
def test_each_state_acts_as_systemd_service_does(state: str | None, active: str, action: str | None) -> None:
    assert module.action_for(state, active) == action


def test_is_enabled_answers_one_word_per_unit_and_only_some_count_as_enabled() -> None:
    answers = "enabled\nstatic\ndisabled\nenabled-runtime\nindirect\nalias\nmasked\ngenerated\ntransient\nlinked\n"
    assert module.enablement(answers, 10) == [True, True, False, False, False, False, False, True, True, False]


def test_an_is_enabled_answer_for_another_number_of_units_is_no_answer() -> None:
    # systemctl stops at the first unit it cannot answer for, on stderr: fewer words than units.
    assert module.enablement("enabled\n", 2) == []
    assert module.enablement("", 1) == []
