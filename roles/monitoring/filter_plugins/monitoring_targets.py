"""What Prometheus scrapes and blackbox probes, computed from the inventory and ``portal_sites``.

Pure functions (no Ansible state), so unit tests pin them down; the role's templates only dump
what they return. One source of truth: exporter targets come from inventory groups, probe
targets from the sites' domains.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

PROBE_JOB = "http_portal"
MODULE_PREFIX = "http_portal_"
# A second probe per domain that fails only on a defacement text: the inspection probe above also fails
# on a missing title or a stale page (the edge covering for a dead CMS), and blackbox reports all three
# alike (probe_failed_due_to_regex), so the defacement alert needs a probe of its own.
DEFACEMENT_JOB = "http_portal_defacement"
DEFACEMENT_PREFIX = "http_portal_defacement_"

# How WordPress (esc_html) may print a character of a title: the literal or its entities.
_ENTITIES = {
    "&": ["&amp;", "&#038;", "&#38;"],
    "<": ["&lt;", "&#060;"],
    ">": ["&gt;", "&#062;"],
    '"': ["&quot;", "&#034;"],
    "'": ["&#039;", "&#39;", "&#8217;"],
}


def body_regexp(text: str) -> str:
    """A regexp that finds ``text`` in an HTML page, literally or with HTML-escaped characters.

    blackbox matches the raw body; ``portalops probe`` decodes entities first. This keeps both
    verdicts the same for a title such as ``News & Events`` that WordPress prints ``&amp;``.
    """
    parts = []
    for char in text:
        if char in _ENTITIES:
            parts.append("(?:" + "|".join(re.escape(v) for v in [char, *_ENTITIES[char]]) + ")")
        else:
            parts.append(re.escape(char))
    return "".join(parts)


def probe_module_name(domain: str, prefix: str = MODULE_PREFIX) -> str:
    """The blackbox module of one domain (blackbox 0.23 sets SNI and Host per module only)."""
    return prefix + domain


def exporter_jobs(
    exporters: Iterable[Mapping[str, Any]], groups: Mapping[str, list[str]], addresses: Mapping[str, str]
) -> list[dict[str, Any]]:
    """One scrape job per exporter, one target per host of its groups, ``instance`` = the host's name.

    ``exporters``: ``{name, groups, port}``; ``addresses``: inventory name -> address
    (``ansible_host``). A host in two of an exporter's groups is scraped once.
    """
    jobs = []
    for exporter in exporters:
        hosts: list[str] = []
        for group in exporter["groups"]:
            if group not in groups:
                raise ValueError(f"exporter {exporter['name']}: inventory group {group!r} does not exist")
            hosts += [h for h in groups[group] if h not in hosts]
        job: dict[str, Any] = {
            "job_name": exporter["name"],
            "static_configs": [
                {"targets": [f"{addresses.get(h, h)}:{int(exporter['port'])}"], "labels": {"instance": h}}
                for h in hosts
            ],
        }
        if exporter.get("metrics_path"):
            job["metrics_path"] = exporter["metrics_path"]
        jobs.append(job)
    return jobs


def probe_job(
    sites: Iterable[Mapping[str, Any]],
    blackbox_address: str,
    edge_url: str,
    interval_seconds: int,
    timeout_seconds: int,
    job_name: str = PROBE_JOB,
    module_prefix: str = MODULE_PREFIX,
) -> dict[str, Any]:
    """The blackbox job: every domain of every site, each through the edge with its own module
    (``job_name`` and ``module_prefix``: the defacement probe's, :data:`DEFACEMENT_JOB`).

    The scrape timeout is the probe timeout plus one second: blackbox cuts a probe at the
    scrape timeout minus its ``--timeout-offset`` (0.5 s), so a 15 s scrape timeout would end
    a probe at 14.5 s and fail pages the 15-second rule still counts as loaded.
    """
    scrape_timeout = timeout_seconds + 1
    if scrape_timeout > interval_seconds:
        raise ValueError(
            f"probe interval {interval_seconds}s is shorter than the scrape timeout {scrape_timeout}s "
            f"a {timeout_seconds}s probe needs"
        )
    groups = []
    for site in sites:
        for domain in site.get("domains") or []:
            groups.append(
                {
                    "targets": [domain],
                    "labels": {"site": site["name"], "__param_module": probe_module_name(domain, module_prefix)},
                }
            )
    return {
        "job_name": job_name,
        "metrics_path": "/probe",
        "scrape_interval": f"{interval_seconds}s",
        "scrape_timeout": f"{scrape_timeout}s",
        "static_configs": groups,
        "relabel_configs": [
            {"source_labels": ["__address__"], "target_label": "domain"},
            {"source_labels": ["__address__"], "target_label": "instance"},
            {"target_label": "__param_target", "replacement": edge_url},
            {"target_label": "__address__", "replacement": blackbox_address},
        ],
    }


def blackbox_modules(
    sites: Iterable[Mapping[str, Any]],
    timeout_seconds: int,
    ca_file: str,
    forbidden: Iterable[str],
    stale_statuses: Iterable[str],
) -> dict[str, Any]:
    """One http module per domain: TLS with the domain as SNI and Host, the site's title (or
    marker) in the body, no defacement text, no stale cache answer, 200 without redirect."""
    forbidden_regexps = [body_regexp(f) for f in forbidden]
    stale = [s for s in stale_statuses]
    modules: dict[str, Any] = {}
    for site in sites:
        marker = str(site.get("marker") or site.get("title") or site["name"])
        for domain in site.get("domains") or []:
            tls: dict[str, Any] = {"server_name": domain, "insecure_skip_verify": False}
            if ca_file:
                tls["ca_file"] = ca_file
            http: dict[str, Any] = {
                "method": "GET",
                "valid_status_codes": [200],
                "preferred_ip_protocol": "ip4",
                "ip_protocol_fallback": False,
                "follow_redirects": False,
                "fail_if_not_ssl": True,
                "headers": {"Host": domain, "User-Agent": "portalops-blackbox"},
                "tls_config": tls,
                "fail_if_body_not_matches_regexp": [body_regexp(marker)],
            }
            if stale:
                http["fail_if_header_matches"] = [
                    {
                        "header": "X-Cache-Status",
                        "regexp": "^(?:" + "|".join(re.escape(s) for s in stale) + ")$",
                        "allow_missing": True,
                    }
                ]
            if forbidden_regexps:
                http["fail_if_body_matches_regexp"] = forbidden_regexps
            modules[probe_module_name(domain)] = {"prober": "http", "timeout": f"{timeout_seconds}s", "http": http}
            if forbidden_regexps:
                # Fails on a defacement text in a page (200) only: no title or cache check.
                skipped = ("fail_if_body_not_matches_regexp", "fail_if_header_matches")
                defacement = {k: v for k, v in http.items() if k not in skipped}
                modules[probe_module_name(domain, DEFACEMENT_PREFIX)] = {
                    "prober": "http",
                    "timeout": f"{timeout_seconds}s",
                    "http": defacement,
                }
    return modules


class FilterModule:
    """Ansible's entry point: the functions above as ``monitoring_*`` filters."""

    def filters(self) -> dict[str, Any]:
        return {
            "monitoring_body_regexp": body_regexp,
            "monitoring_exporter_jobs": exporter_jobs,
            "monitoring_probe_job": probe_job,
            "monitoring_blackbox_modules": blackbox_modules,
        }
