"""apt on the converged lab's hosts, wherever that lab runs: `make test` runs this module on the clone of the lab
(scripts/test_lanes.py, CLONES), whose hosts live in a network namespace of their own. A role that finds
its package lists older than its cache_valid_time refreshes them (the monitoring role's install did, an hour
into a CI run, and failed after ten minutes: the clone's gateway had no package cache behind it, and the mirror
is out of the clone's reach). The lab's side of the cache is tested in test_site_aptcache.

How old the lists are is apt's stamp of its last successful update (the base role's 15portalops-update-stamp):
without it, an update that fetched nothing new left the lists' directory with its old time, and every apt task of
a run (seven per host) fetched the lists again, hours after they were fetched last."""

from __future__ import annotations

from portalops.inventory import load_inventory
from portalops.lab.config import LabConfig
from tests.integration.helpers import ansible, on
from tests.integration.test_site_aptcache import DETECT

STAMP = "/var/lib/apt/periodic/update-success-stamp"


def stamp_age(host: str) -> int:
    """Seconds since apt's last successful update on this host."""
    return int(on(host, f"echo $(( $(date +%s) - $(stat -c %Y {STAMP}) ))").stdout)


def test_every_host_refreshes_its_package_lists_through_the_package_cache(converged: LabConfig) -> None:
    hostvars = load_inventory().hostvars
    for host in converged.hosts:
        proxy = hostvars[host.name]["base_apt_proxy"]
        assert on(host.name, DETECT).stdout.strip() == proxy, f"{host.name}: the package cache {proxy} does not answer"
        # The lists are current (the converge fetched them): this update brings nothing new, and counts all the same.
        on(host.name, f"touch -d '2 hours ago' {STAMP}")
        result = on(host.name, "apt-get update -q -o Acquire::Retries=0", check=False)
        assert result.returncode == 0, f"{host.name}: apt-get update failed: {result.stderr[-2000:]}"
        # apt-get update can exit 0 having kept the old lists of a source it could not reach; it says so
        assert "Failed to fetch" not in result.stderr + result.stdout, f"{host.name}: {result.stderr[-2000:]}"
        age = stamp_age(host.name)
        assert age < 120, f"{host.name}: a successful update left apt's stamp {age} s old"


def test_an_apt_task_leaves_lists_updated_within_its_cache_valid_time_alone(converged: LabConfig) -> None:
    names = [host.name for host in converged.hosts]
    for name in names:
        on(name, f"touch -d '30 minutes ago' {STAMP}")
    # What every role's apt task does: refresh the lists when older than an hour, so here not at all.
    results = ansible("all", "ansible.builtin.apt", "update_cache=true cache_valid_time=3600")
    for name in names:
        assert not results[name].get("failed"), f"{name}: {results[name].get('msg')}"
        assert stamp_age(name) >= 29 * 60, f"{name}: the lists were fetched again, 30 minutes after the last update"
