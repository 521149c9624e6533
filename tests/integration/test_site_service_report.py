"""`portalops report` for this month on the converged lab: availability of every site from mon1's Prometheus,
an incident a person opened with `portalops incident open`, its deadlines as `incident list` flags them, and
each host's log retention evidence against the host's own journal.

The incidents live in a directory of the test's, so earlier drills' incidents do not count here; the
report goes to a directory of the test's too, so a person's reports/service/ is not written over.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from portalops.inventory import REPO_ROOT
from portalops.lab.config import LabConfig
from portalops.runbook.journal import parse_stamp
from portalops.runbook.workcal import TZ
from tests.integration.helpers import on, portalops

PORTAL = yaml.safe_load((REPO_ROOT / "inventory/lab/group_vars/all/portal.yml").read_text())
SITES = [site["name"] for site in PORTAL["portal_sites"]]
PROMETHEUS = "http://127.0.0.1:9090"  # lab_publish of mon1


def prometheus(expr: str, label: str = "site") -> dict[str, float]:
    """label (site) -> value, asked directly of Prometheus' HTTP API."""
    url = f"{PROMETHEUS}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - a fixed http:// URL
        body: dict[str, Any] = json.load(answer)
    return {r["metric"].get(label, ""): float(r["value"][1]) for r in body["data"]["result"]}


def test_this_months_report_has_each_sites_availability_and_the_incident_a_person_opened(
    converged: LabConfig, tmp_path: Path
) -> None:
    incidents, out = tmp_path / "incidents", tmp_path / "service"
    opened = portalops(
        "incident", "open", "--level", "L2", "--title", "首页打不开", "--reported-by", "信息中心 王五",
        "--incidents", str(incidents), "--by", "duty",
    )  # fmt: skip
    assert opened.returncode == 0, opened.stdout + opened.stderr
    incident = re.search(r"^opened (\S+):", opened.stdout, flags=re.M)
    assert incident, opened.stdout
    name = incident.group(1)
    acked = portalops("incident", "ack", name, "--incidents", str(incidents), "--by", "duty")
    assert acked.returncode == 0, acked.stdout + acked.stderr

    # Each host's log-retention evidence (written by the logrotate role at the converge's end) scraped once.
    hosts = {h.name for h in converged.hosts}
    deadline = time.monotonic() + 120
    evidence = 'max by (instance) (portalops_log_oldest_timestamp_seconds{log="journal"})'
    while set(prometheus(evidence, "instance")) != hosts:
        assert time.monotonic() < deadline, "no log retention evidence of every host in Prometheus within 120 s"
        time.sleep(5)

    month = datetime.now(UTC).astimezone(TZ).strftime("%Y-%m")
    result = portalops("report", "--period", month, "--incidents", str(incidents), "--out", str(out), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads((out / f"{month}.json").read_text(encoding="utf-8"))

    availability = document["availability"]
    assert availability["error"] == "", availability["error"]
    sites = {site["site"]: site for site in availability["sites"]}
    assert set(SITES) <= set(sites)
    today = datetime.now(UTC).astimezone(TZ).date().isoformat()
    month_so_far = prometheus("avg by (site) (avg_over_time(portalops:probe_loaded:15s[1h]))")
    for name_ in SITES:
        site = sites[name_]
        assert site["ratio"] is not None and 0 < site["ratio"] <= 1, site
        assert site["margin"] == site["ratio"] - availability["target"]
        days = {d["day"]: d["ratio"] for d in site["days"]}
        assert days[today] is not None and 0 < days[today] <= 1, site["days"]
        assert site["p95_s"] is not None and site["p95_s"] > 0
        assert name_ in month_so_far, "Prometheus itself knows the site the report shows"

    # How far back each host's journal goes, as the host's own journalctl says.
    logs = {found["host"]: found for found in document["logs"]["hosts"]}
    assert document["logs"]["error"] == "" and set(logs) == hosts, document["logs"]
    for host, found in logs.items():
        assert found["retention_days"] == 180, found
        first = on(host, "journalctl -o json --output-fields=__REALTIME_TIMESTAMP -q | head -n1").stdout
        since = int(json.loads(first)["__REALTIME_TIMESTAMP"]) / 1e6
        journal = next(entry for entry in found["logs"] if entry["log"] == "journal")
        assert abs(parse_stamp(journal["since"]).timestamp() - since) < 1, (host, journal, since)

    rows = {row["id"]: row for row in document["incidents"]["items"]}
    assert list(rows) == [name] and document["incidents"]["by_level"]["L2"] == 1
    listed = portalops("incident", "list", "--json", "--incidents", str(incidents))
    truth = {row["id"]: row for row in json.loads(listed.stdout)["incidents"]}[name]
    row = rows[name]
    assert row["acknowledged"] is not None and row["resolved"] is None
    assert [(f["name"], f["due"]) for f in row["deadlines"]] == [(f["name"], f["due"]) for f in truth["deadlines"]]

    page = (out / f"{month}.html").read_text(encoding="utf-8")
    assert "政府门户网站运维服务报告" in page and name in page
    for svg in re.findall(r"<svg.*?</svg>", page, flags=re.S):
        ET.fromstring(svg)  # noqa: S314 - the report this test just generated
    assert "<svg" in page, "the availability per day is drawn"
    assert "## 二、事件" in (out / f"{month}.md").read_text(encoding="utf-8")
    pdf = (out / f"{month}.pdf").read_bytes()
    assert (
        pdf.startswith(b"%PDF-")
        and ("\ufeff政府门户网站运维服务报告").encode("utf-16-be").hex().encode() in pdf.lower()
    )
