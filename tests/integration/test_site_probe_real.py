"""Recovery means the real site: php-fpm or MariaDB down behind a warm edge cache is not "recovered".

The edge (nginx_portal) keeps serving its cached pages while the CMS is down, so a visitor's GET of a
front page still answers 200 with the site's title. php-fpm is stopped and masked on cms1, so no
runbook can start it again: `portalops probe` must fail, and `l1_portal_unreachable --yes` must end
not recovered (exit 1) with its portal_back verify step failed. Once php-fpm runs again, the probe
passes. php-fpm is unmasked and started whatever happens. The same for MariaDB stopped on db1 (the
probe only: WordPress answers 500 without its database).
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from portalops.lab.config import LabConfig
from portalops.runbook.checks import PHP_FPM
from tests.integration.helpers import incident_journal, on, portalops
from tests.integration.test_site import SITES, get


def probe_json() -> tuple[int, list[dict[str, Any]]]:
    result = portalops("probe", "--json", timeout=300)
    assert result.stdout.strip(), result.stderr[-2000:]
    found: list[dict[str, Any]] = json.loads(result.stdout)
    return result.returncode, found


def fpm_state() -> str:
    return on("cms1", f"systemctl is-active {PHP_FPM}", check=False).stdout.strip()


def warm_the_edge_cache(lab: LabConfig) -> None:
    """Every site's front page fresh in web1's cache."""
    for site in SITES:
        for _ in range(10):  # a MISS stores it; an expired entry is served (UPDATING) while it is refreshed
            status, headers, _ = get(lab, site["domains"][0])
            if headers.get("x-cache-status") == "HIT":
                break
            time.sleep(0.5)
        assert (status, headers.get("x-cache-status")) == (200, "HIT"), (site["name"], status, headers)


def visitors_get_cached_pages(lab: LabConfig) -> None:
    """The fault is hidden from visitors: the edge answers from its cache, a whole page with its title."""
    for site in SITES:
        status, headers, body = get(lab, site["domains"][0])
        assert status == 200 and headers.get("x-cache-status") in ("HIT", "STALE"), (status, headers)
        assert site["title"] in html.unescape(body)


def probe_passes_again() -> None:
    """The probe passes (within a few tries), every page rendered by the CMS just now with its title."""
    for _ in range(5):
        code, results = probe_json()
        if code == 0:
            break
        time.sleep(2)
    assert code == 0, results
    assert [(r["site"], r["status"], r["cache_status"], r["title_found"]) for r in results] == [
        (site["name"], 200, "BYPASS", True) for site in SITES
    ]


@pytest.fixture
def fpm_masked_behind_a_warm_cache(converged: LabConfig) -> Iterator[LabConfig]:
    """The edge cache warm, then php-fpm stopped and masked; afterwards running again."""
    warm_the_edge_cache(converged)
    on("cms1", f"systemctl stop {PHP_FPM} && systemctl mask {PHP_FPM}")
    try:
        yield converged
    finally:
        on("cms1", f"systemctl unmask {PHP_FPM}; systemctl start {PHP_FPM}", check=False)
        assert fpm_state() == "active"


def test_php_fpm_down_behind_a_warm_cache_is_not_recovered_until_it_is_back(
    fpm_masked_behind_a_warm_cache: LabConfig,
) -> None:
    visitors_get_cached_pages(fpm_masked_behind_a_warm_cache)

    # The probe asks the CMS itself (around the cache) and sees it down.
    code, results = probe_json()
    assert code == 1, results
    for result in results:
        assert not result["ok"] and result["status"] == 502, result
        assert result["cache_status"] == "BYPASS" and result["title_found"] is False, result
        assert result["error"].startswith("HTTP 502, not the page"), result

    # The runbook cannot start the masked php-fpm, and its verification from outside says so.
    run = portalops("runbook", "run", "l1_portal_unreachable", "--yes", timeout=900)
    assert run.returncode == 1, run.stdout[-4000:] + run.stderr[-2000:]
    ends = {str(e["step"]): str(e["result"]) for e in incident_journal(run) if e["event"] == "step_end"}
    assert ends["start_php_fpm"] == "failed" and ends["portal_back"] == "failed", ends
    assert fpm_state() != "active"

    # php-fpm back: the same probe passes.
    on("cms1", f"systemctl unmask {PHP_FPM} && systemctl start {PHP_FPM}")
    probe_passes_again()


@pytest.fixture
def mariadb_stopped_behind_a_warm_cache(converged: LabConfig) -> Iterator[LabConfig]:
    """The edge cache warm, then MariaDB stopped; afterwards running again."""
    warm_the_edge_cache(converged)
    on("db1", "systemctl stop mariadb")
    try:
        yield converged
    finally:
        on("db1", "systemctl start mariadb", check=False)
        assert on("db1", "systemctl is-active mariadb", check=False).stdout.strip() == "active"


def test_mariadb_down_behind_a_warm_cache_fails_the_probe_until_it_is_back(
    mariadb_stopped_behind_a_warm_cache: LabConfig,
) -> None:
    visitors_get_cached_pages(mariadb_stopped_behind_a_warm_cache)
    code, results = probe_json()
    assert code == 1, results
    for result in results:  # WordPress's "Error establishing a database connection"
        assert (result["ok"], result["status"], result["cache_status"]) == (False, 500, "BYPASS"), result
        assert result["error"].startswith("HTTP 500, not the page"), result
    on("db1", "systemctl start mariadb")
    probe_passes_again()
