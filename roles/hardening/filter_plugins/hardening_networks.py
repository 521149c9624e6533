"""Address tests for the hardening role's input check, with Python's ipaddress on the controller (which has
no netaddr for ansible.utils' ipaddr filters). Pure functions, so unit tests pin them down."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from typing import Any


def in_networks(address: str, networks: Iterable[str]) -> bool:
    """Whether ``address`` is in one of ``networks`` (CIDR, host bits allowed: 192.0.2.1/24 is 192.0.2.0/24).
    An address or network that does not parse raises ValueError, which fails the task."""
    client = ipaddress.ip_address(address)
    return any(client in ipaddress.ip_network(network, strict=False) for network in networks)


class FilterModule:
    """Ansible's entry point: the function above as the ``hardening_in_networks`` filter."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"hardening_in_networks": in_networks}
