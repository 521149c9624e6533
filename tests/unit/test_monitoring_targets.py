"""The monitoring role's targets: exporters from inventory groups, probes from the portal's sites."""

from __future__ import annotations

import importlib.util
import re
import sys
from types import ModuleType
from typing import Any

import pytest
import yaml

from portalops.inventory import REPO_ROOT


def _load() -> ModuleType:
    path = REPO_ROOT / "roles" / "monitoring" / "filter_plugins" / "monitoring_targets.py"
    spec = importlib.util.spec_from_file_location("monitoring_targets", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


mt = _load()

GROUPS = {"all": ["web1", "cms1", "db1", "mon1"], "web": ["web1"], "cms": ["cms1"], "db": ["db1"]}
ADDRESSES = {"web1": "10.0.0.11", "cms1": "10.0.0.12", "db1": "10.0.0.13", "mon1": "10.0.0.16"}
LAB_SITES: list[dict[str, Any]] = yaml.safe_load((REPO_ROOT / "inventory/lab/group_vars/all/portal.yml").read_text())[
    "portal_sites"
]


def test_one_job_per_exporter_one_target_per_host_named_by_inventory() -> None:
    exporters = [
        {"name": "node", "groups": ["all"], "port": 9100},
        {"name": "nginx", "groups": ["web", "cms", "web"], "port": "9113"},
    ]
    jobs = mt.exporter_jobs(exporters, GROUPS, ADDRESSES)
    assert [j["job_name"] for j in jobs] == ["node", "nginx"]
    node = {g["labels"]["instance"]: g["targets"] for g in jobs[0]["static_configs"]}
    assert node == {h: [f"{ADDRESSES[h]}:9100"] for h in GROUPS["all"]}
    nginx = [(g["labels"]["instance"], g["targets"][0]) for g in jobs[1]["static_configs"]]
    assert nginx == [("web1", "10.0.0.11:9113"), ("cms1", "10.0.0.12:9113")]  # each host once


def test_a_host_without_an_address_is_scraped_by_name_and_a_missing_group_is_an_error() -> None:
    jobs = mt.exporter_jobs([{"name": "node", "groups": ["web"], "port": 9100}], GROUPS, {})
    assert jobs[0]["static_configs"][0]["targets"] == ["web1:9100"]
    with pytest.raises(ValueError, match="'monitoring'"):
        mt.exporter_jobs([{"name": "node", "groups": ["monitoring"], "port": 9100}], GROUPS, ADDRESSES)


def test_every_domain_of_every_site_is_probed_through_the_edge_with_its_own_module() -> None:
    job = mt.probe_job(LAB_SITES, "127.0.0.1:9115", "https://10.0.0.11/", 20, 15)
    targets = [(g["targets"][0], g["labels"]["site"], g["labels"]["__param_module"]) for g in job["static_configs"]]
    assert targets == [
        ("portal.lab.test", "portal", "http_portal_portal.lab.test"),
        ("www.portal.lab.test", "portal", "http_portal_www.portal.lab.test"),
        ("news.lab.test", "news", "http_portal_news.lab.test"),
    ]
    relabel = {r["target_label"]: r for r in job["relabel_configs"]}
    assert relabel["__param_target"]["replacement"] == "https://10.0.0.11/"
    assert relabel["__address__"]["replacement"] == "127.0.0.1:9115"
    assert relabel["domain"]["source_labels"] == relabel["instance"]["source_labels"] == ["__address__"]
    modules = mt.blackbox_modules(LAB_SITES, 15, "/ca.crt", [], ["STALE"])
    assert sorted(modules) == sorted(t[2] for t in targets)


def test_the_scrape_timeout_leaves_blackbox_the_whole_probe_timeout() -> None:
    job = mt.probe_job(LAB_SITES, "127.0.0.1:9115", "https://e/", 20, 15)
    # blackbox ends a probe at scrape timeout - 0.5 s (--timeout-offset): 16 s leaves the 15 s.
    assert (job["scrape_timeout"], job["scrape_interval"]) == ("16s", "20s")
    with pytest.raises(ValueError, match="shorter than the scrape timeout 16s"):
        mt.probe_job(LAB_SITES, "127.0.0.1:9115", "https://e/", 15, 15)


def test_a_module_sends_the_domain_as_sni_and_host_and_checks_title_cache_and_defacement() -> None:
    sites = [{"name": "news", "title": "News", "marker": "NEWS-OK", "domains": ["news.test"]}]
    module = mt.blackbox_modules(sites, 15, "/etc/prometheus/edge.crt", ["defaced!", "x.y"], ["STALE", "UPDATING"])[
        "http_portal_news.test"
    ]
    http = module["http"]
    assert module["timeout"] == "15s"
    assert http["headers"]["Host"] == http["tls_config"]["server_name"] == "news.test"
    assert http["tls_config"]["ca_file"] == "/etc/prometheus/edge.crt"
    assert http["follow_redirects"] is False and http["fail_if_not_ssl"] is True
    assert http["valid_status_codes"] == [200]
    (marker,) = http["fail_if_body_not_matches_regexp"]
    assert re.search(marker, "<h1>NEWS-OK</h1>") and not re.search(marker, "<h1>News</h1>")  # the marker wins
    forbidden = http["fail_if_body_matches_regexp"]
    assert [bool(re.search(f, "a x.y b")) for f in forbidden] == [False, True]
    assert not re.search(forbidden[1], "xzy")  # exact text, not a regexp
    (header,) = http["fail_if_header_matches"]
    assert header["header"] == "X-Cache-Status" and header["allow_missing"] is True
    assert [bool(re.search(header["regexp"], v)) for v in ["STALE", "UPDATING", "HIT", "MISS", "STALEX"]] == [
        True,
        True,
        False,
        False,
        False,
    ]


def test_without_a_ca_file_or_lists_the_module_uses_the_system_store_and_skips_those_checks() -> None:
    module = mt.blackbox_modules([{"name": "a", "domains": ["a.test"]}], 15, "", [], [])["http_portal_a.test"]
    assert "ca_file" not in module["http"]["tls_config"]
    assert "fail_if_body_matches_regexp" not in module["http"]
    assert "fail_if_header_matches" not in module["http"]
    # No title, no marker: the site's name, as `portalops probe` and the wordpress role do.
    assert module["http"]["fail_if_body_not_matches_regexp"] == [mt.body_regexp("a")]


@pytest.mark.parametrize(
    ("title", "page"),
    [
        ("某县新闻中心 (County News Centre)", "<title>某县新闻中心 (County News Centre)</title>"),
        ("News & Events", "<title>News &amp; Events</title>"),
        ("News & Events", "<title>News &#038; Events</title>"),
        ("Bob's <Page>", "<title>Bob&#8217;s &lt;Page&gt;</title>"),
        ("a.b*c", "a.b*c"),
    ],
)
def test_a_title_is_found_as_wordpress_prints_it(title: str, page: str) -> None:
    assert re.search(mt.body_regexp(title), page)


def test_a_title_is_not_found_in_other_text() -> None:
    assert not re.search(mt.body_regexp("a.b*c"), "aXbbbc")
    assert not re.search(mt.body_regexp("News & Events"), "News and Events")


def test_the_filters_are_exported_under_the_role_prefix() -> None:
    assert set(mt.FilterModule().filters()) == {
        "monitoring_body_regexp",
        "monitoring_exporter_jobs",
        "monitoring_probe_job",
        "monitoring_blackbox_modules",
    }


def test_with_defacement_texts_each_domain_has_a_probe_that_fails_only_on_them() -> None:
    """The defacement alert's probe: a stale page or a missing title (the other L1 alerts) do not fail it."""
    sites = [{"name": "news", "title": "News", "domains": ["news.test"]}]
    modules = mt.blackbox_modules(sites, 15, "/ca.crt", ["defaced!"], ["STALE"])
    assert sorted(modules) == ["http_portal_defacement_news.test", "http_portal_news.test"]
    main, defacement = modules["http_portal_news.test"]["http"], modules["http_portal_defacement_news.test"]["http"]
    assert defacement["fail_if_body_matches_regexp"] == main["fail_if_body_matches_regexp"]
    assert "fail_if_body_not_matches_regexp" not in defacement and "fail_if_header_matches" not in defacement
    assert defacement["tls_config"] == main["tls_config"] and defacement["headers"] == main["headers"]
    assert modules["http_portal_defacement_news.test"]["timeout"] == "15s"
    job = mt.probe_job(sites, "127.0.0.1:9115", "https://e/", 20, 15, mt.DEFACEMENT_JOB, mt.DEFACEMENT_PREFIX)
    assert job["job_name"] == "http_portal_defacement"
    (group,) = job["static_configs"]
    assert group["labels"] == {"site": "news", "__param_module": "http_portal_defacement_news.test"}
    assert sorted(mt.blackbox_modules(sites, 15, "", [], ["STALE"])) == ["http_portal_news.test"], "none without texts"
