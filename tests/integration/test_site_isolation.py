"""What this lab's addresses and published ports reach: this lab's own containers, and no other's.

`make test` runs this module on a clone of the lab (scripts/test_lanes.py, CLONES): the clone's hosts have the
lab's names, addresses, published ports and SSH host keys, and run beside the lab's. Only its namespaces keep the
two apart (portalops.lab.clone): were they to leak, a clone's test would log in to, and change, the lab's hosts
while the lab's own tests run, and every test would still pass. So each way in is marked with a fresh token and
the mark is looked for in the containers of this lab's podman store (helpers.on), where it must be:
- SSH to each host's address (Ansible's way in, and the runbooks'),
- the edge's published port (127.0.0.1:8443, the tests' and the probes' way to the sites).
On the lab itself (`make test-serial`) it proves the same of the lab: nothing else answers at its addresses."""

from __future__ import annotations

import secrets

from portalops.lab.config import LabConfig
from tests.integration.helpers import ansible, on
from tests.integration.test_site import SITES, get

MARK = "/run/portalops-isolation-token"


def test_each_hosts_address_reaches_this_labs_container(converged: LabConfig) -> None:
    token = secrets.token_hex(8)
    try:
        # Each host's own mark: an address that reached another host of this lab fails too.
        results = ansible("all", "ansible.builtin.shell", f"echo {token}-{{{{ inventory_hostname }}}} > {MARK}")
        for host in converged.hosts:
            assert not results[host.name].get("failed"), f"{host.name}: {results[host.name].get('msg')}"
            found = on(host.name, f"cat {MARK}", check=False).stdout.strip()
            assert found == f"{token}-{host.name}", f"SSH to {host.name}'s address wrote to another container"
    finally:
        for host in converged.hosts:
            on(host.name, f"rm -f {MARK}", check=False)


def test_the_edges_published_port_reaches_this_labs_web_host(converged: LabConfig) -> None:
    token = secrets.token_hex(8)
    get(converged, SITES[0]["domains"][0], path=f"/portalops-isolation-{token}")  # any answer: the log tells whose
    log = on("web1", f"grep -c portalops-isolation-{token} /var/log/nginx/access.log", check=False).stdout.strip()
    assert log == "1", "127.0.0.1:8443 reached an nginx other than this lab's web1"
