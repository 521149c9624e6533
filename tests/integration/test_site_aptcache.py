"""The lab's package cache on the converged lab (role base, base_apt_proxy in inventory/lab):
every host fetches Debian packages through apt-cacher-ng on the lab machine, and apt still
works straight from the mirror while the cache is down. Neither test stops the cache: the other lanes of
`make test` (molecule, the clone's lab) install packages through it meanwhile."""

from __future__ import annotations

from urllib.parse import urlsplit

from portalops.inventory import load_inventory
from portalops.lab import aptcache
from portalops.lab.config import LabConfig
from tests.integration.helpers import on

# A small package from the lab's http mirror, downloaded into a scratch directory and thrown away.
DOWNLOAD = 'd=$(mktemp -d) && cd "$d" && apt-get download -q ed; rc=$?; cd / && rm -rf "$d"; exit $rc'
DETECT = "/usr/local/sbin/portalops-apt-proxy-detect"
# The test's own nftables table on the host, deleted afterwards.
TABLE = "portalops_test_cache_down"


def test_every_host_fetches_through_the_package_cache(converged: LabConfig) -> None:
    assert aptcache.answers(), "apt-cacher-ng does not answer on the lab machine; scripts/setup-system starts it"
    offset = aptcache.log_size()
    for host in converged.hosts:
        result = on(host.name, DOWNLOAD, check=False)
        assert result.returncode == 0, f"{host.name}: apt-get download failed: {result.stderr[-2000:]}"
    traffic = aptcache.traffic_since(offset)
    missing = {h.name for h in converged.hosts if h.address not in traffic.clients}
    assert not missing, f"these hosts did not fetch through the cache: {sorted(missing)} ({traffic.describe()})"


def test_apt_goes_to_the_mirror_while_the_cache_is_down(converged: LabConfig) -> None:
    """Down as one host sees it: the host's own nftables table refuses its connections to the cache (a TCP
    reset, what a stopped apt-cacher-ng gives). The service itself keeps running: molecule and the clone's
    lab fetch through it at the same time, and stopping it failed their package installs."""
    host = converged.hosts[0].name
    proxy = load_inventory().hostvars[host]["base_apt_proxy"]
    cache = urlsplit(proxy)
    chain = f"inet {TABLE} out"
    refuse = f"ip daddr {cache.hostname} tcp dport {cache.port} reject with tcp reset"
    try:
        # One nft transaction: the table, its output hook and the rule.
        on(
            host,
            f"nft 'add table inet {TABLE}; add chain {chain} {{ type filter hook output priority 0; }}; "
            f"add rule {chain} {refuse}'",
        )
        assert aptcache.answers(), "the cache itself must stay up for the other lanes"
        assert on(host, DETECT).stdout.strip() == "DIRECT"
        result = on(host, DOWNLOAD, check=False)
        assert result.returncode == 0, f"{host}: apt-get download failed with the cache down: {result.stderr[-2000:]}"
    finally:
        on(host, f"nft delete table inet {TABLE}", check=False)
    assert on(host, DETECT).stdout.strip() == proxy
