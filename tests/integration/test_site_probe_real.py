"""Recovery means the real site: php-fpm down behind a warm edge cache is not "recovered".

The edge (nginx_portal) keeps serving its cached pages while the CMS is down, so a visitor's GET of a
front page still answers 200 with the site's title. php-fpm is stopped and masked on cms1, so no
runbook can start it again: `portalops probe` must fail, and `l1_portal_unreachable --yes` must end
not recovered (exit 1) with its portal_back verify step failed. Once php-fpm runs again, the probe
passes. php-fpm is unmasked and started whatever happens.
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


@pytest.fixture
def fpm_masked_behind_a_warm_cache(converged: LabConfig) -> Iterator[LabConfig]:
    """Every site's front page in web1's cache, then php-fpm stopped and masked; afterwards running again."""
    for site in SITES:
        for _ in range(10):  # a MISS stores it; an expired entry is served (UPDATING) while it is refreshed
            status, headers, _ = get(converged, site["domains"][0])
            if headers.get("x-cache-status") == "HIT":
                break
            time.sleep(0.5)
        assert (status, headers.get("x-cache-status")) == (200, "HIT"), (site["name"], status, headers)
    on("cms1", f"systemctl stop {PHP_FPM} && systemctl mask {PHP_FPM}")
    try:
        yield converged
    finally:
        on("cms1", f"systemctl unmask {PHP_FPM}; systemctl start {PHP_FPM}", check=False)
        assert fpm_state() == "active"


def test_php_fpm_down_behind_a_warm_cache_is_not_recovered_until_it_is_back(
    fpm_masked_behind_a_warm_cache: LabConfig,
) -> None:
    lab = fpm_masked_behind_a_warm_cache
    # The fault is hidden from visitors: the edge answers from its cache, a whole page with its title.
    for site in SITES:
        status, headers, body = get(lab, site["domains"][0])
        assert status == 200 and headers.get("x-cache-status") in ("HIT", "STALE"), (status, headers)
        assert site["title"] in html.unescape(body)

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

    # php-fpm back: the same probe passes, every page rendered by the CMS just now with its title.
    on("cms1", f"systemctl unmask {PHP_FPM} && systemctl start {PHP_FPM}")
    for _ in range(5):
        code, results = probe_json()
        if code == 0:
            break
        time.sleep(2)
    assert code == 0, results
    assert [(r["site"], r["status"], r["cache_status"], r["title_found"]) for r in results] == [
        (site["name"], 200, "BYPASS", True) for site in SITES
    ]
