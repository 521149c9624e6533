"""The hardening role's hardening_in_networks filter (filter_plugins/hardening_networks.py)."""

from __future__ import annotations

import pytest

from tests.unit.hostscripts import load

networks = load("hardening_networks", "roles/hardening/filter_plugins/hardening_networks.py")


@pytest.mark.parametrize(
    ("address", "nets", "inside"),
    [
        ("192.0.2.77", ["192.0.2.0/24"], True),
        ("192.0.2.77", ["192.0.2.1/24"], True),  # host bits allowed, as the firewall template takes them
        ("198.51.100.7", ["192.0.2.0/24", "10.0.0.0/8"], False),
        ("10.89.60.1", ["192.0.2.0/24", "10.0.0.0/8"], True),
        ("2001:db8::5", ["192.0.2.0/24", "2001:db8::/32"], True),
        ("2001:db9::5", ["2001:db8::/32"], False),
        ("192.0.2.77", ["192.0.2.77"], True),
        ("192.0.2.77", [], False),
    ],
)
def test_an_address_is_in_a_network_or_not(address: str, nets: list[str], inside: bool) -> None:
    assert networks.in_networks(address, nets) is inside


@pytest.mark.parametrize(("address", "nets"), [("not-an-address", ["192.0.2.0/24"]), ("192.0.2.1", ["192.0.2.0/33"])])
def test_what_does_not_parse_fails(address: str, nets: list[str]) -> None:
    with pytest.raises(ValueError, match="does not appear to be"):
        networks.in_networks(address, nets)


def test_it_is_the_filter_the_role_names() -> None:
    assert networks.FilterModule().filters() == {"hardening_in_networks": networks.in_networks}
