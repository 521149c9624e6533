"""Where Prometheus and Alertmanager answer, as the inventory says.

One rule, in this order:

1. ``--prometheus URL`` / ``--alertmanager URL``;
2. the lab: the monitoring host publishes the port on the controller's loopback
   (``lab_publish: ["127.0.0.1:9090:9090", ...]`` in inventory/lab/hosts.yml) -> ``http://127.0.0.1:PORT``;
3. else the first host of the ``monitoring`` group: ``http://<ansible_host>:<port>``, the port from
   ``monitoring_prometheus_listen_address`` / ``monitoring_alertmanager_listen_address`` (the host's
   value, else the monitoring role's default).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from portalops.errors import BadInput
from portalops.inventory import REPO_ROOT, Inventory

ROLE_DEFAULTS = REPO_ROOT / "roles" / "monitoring" / "defaults" / "main.yml"
GROUP = "monitoring"
SERVICES = {
    "prometheus": "monitoring_prometheus_listen_address",
    "alertmanager": "monitoring_alertmanager_listen_address",
}


@dataclass(frozen=True)
class Endpoints:
    prometheus: str
    alertmanager: str


def role_defaults(path: Path = ROLE_DEFAULTS) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def port_of(address: Any, what: str) -> int:
    text = str(address)
    try:
        return int(text.rsplit(":", 1)[-1])
    except ValueError:
        raise BadInput(f"{what}: {text!r} is not HOST:PORT") from None


def published(hostvars: dict[str, Any], port: int) -> int | None:
    """The loopback port of the controller the lab publishes ``port`` of the host on, if it does."""
    for item in hostvars.get("lab_publish") or []:
        parts = str(item).split(":")
        if len(parts) == 3 and parts[0] in ("127.0.0.1", "localhost") and parts[2] == str(port):
            return int(parts[1])
    return None


def from_inventory(
    inventory: Inventory, prometheus: str = "", alertmanager: str = "", defaults: dict[str, Any] | None = None
) -> Endpoints:
    given = {"prometheus": prometheus, "alertmanager": alertmanager}
    if all(given.values()):
        return Endpoints(prometheus, alertmanager)
    hosts = inventory.hosts_in(GROUP)
    if not hosts:
        raise BadInput(
            f"inventory {inventory.source} has no host in group {GROUP!r}: pass --prometheus URL and --alertmanager URL"
        )
    host = hosts[0]
    hostvars = inventory.hostvars.get(host, {})
    defaults = role_defaults() if defaults is None else defaults
    urls = {}
    for service, variable in SERVICES.items():
        if given[service]:
            urls[service] = given[service]
            continue
        port = port_of(hostvars.get(variable, defaults.get(variable)), variable)
        local = published(hostvars, port)
        address = hostvars.get("ansible_host", host)
        urls[service] = f"http://127.0.0.1:{local}" if local else f"http://{address}:{port}"
    return Endpoints(urls["prometheus"], urls["alertmanager"])


def inventory_sites(inventory: Inventory) -> list[str]:
    """Names of ``portal_sites`` as the monitoring host sees them (empty when not plain data)."""
    hosts = inventory.hosts_in(GROUP) or sorted(inventory.hostvars)
    sites = inventory.hostvars.get(hosts[0], {}).get("portal_sites") if hosts else None
    if not isinstance(sites, list):
        return []
    return [str(s["name"]) for s in sites if isinstance(s, dict) and s.get("name")]
