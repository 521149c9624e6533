"""apt on the converged lab's hosts, wherever that lab runs: `make test` runs this module on the clone of the lab
(scripts/test_lanes.py, CLONES), whose hosts live in a network namespace of their own. A role that finds
its package lists older than its cache_valid_time refreshes them (the monitoring role's install did, an hour
into a CI run, and failed after ten minutes: the clone's gateway had no package cache behind it, and the mirror
is out of the clone's reach). The lab's side of the cache is tested in test_site_aptcache."""

from __future__ import annotations

from portalops.inventory import load_inventory
from portalops.lab.config import LabConfig
from tests.integration.helpers import on
from tests.integration.test_site_aptcache import DETECT


def test_every_host_refreshes_its_package_lists_through_the_package_cache(converged: LabConfig) -> None:
    hostvars = load_inventory().hostvars
    for host in converged.hosts:
        proxy = hostvars[host.name]["base_apt_proxy"]
        assert on(host.name, DETECT).stdout.strip() == proxy, f"{host.name}: the package cache {proxy} does not answer"
        result = on(host.name, "apt-get update -q -o Acquire::Retries=0", check=False)
        assert result.returncode == 0, f"{host.name}: apt-get update failed: {result.stderr[-2000:]}"
        # apt-get update can exit 0 having kept the old lists of a source it could not reach; it says so
        assert "Failed to fetch" not in result.stderr + result.stdout, f"{host.name}: {result.stderr[-2000:]}"
