"""Boot states: which ones mean wait, which ones mean the host is up or broken."""

from __future__ import annotations

from portalops.lab.hosts import DEAD_STATES, GOOD_STATES


def test_early_boot_states_are_waited_for_not_fatal() -> None:
    # systemctl answers "offline" (no manager yet) and "initializing"/"starting" while PID 1 comes up.
    for state in ("offline", "initializing", "starting", "unreachable"):
        assert state not in DEAD_STATES and state not in GOOD_STATES


def test_rescue_mode_is_fatal_and_degraded_is_up() -> None:
    assert "maintenance" in DEAD_STATES
    assert "degraded" in GOOD_STATES


def test_ansible_control_paths_follow_ansibles_naming() -> None:
    from portalops.lab.lab import ansible_control_paths

    paths = ansible_control_paths("10.89.60.15", "deploy")
    assert [p.name for p in paths] == ["5c0fcfed9e", "a46ee8e3cd"]
    assert {str(p.parent) for p in paths} == {"/tmp/portalops-ssh-cp"}
