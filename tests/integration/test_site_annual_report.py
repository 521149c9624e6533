"""`portalops report --annual <this year> --form gov-website` on the converged lab: its numbers against their
sources, counted directly.

- Items published: per category of each site, and in all, counted in the site's database on db1.
- Visits: a day's traffic sent through the edge (web1 published on 127.0.0.1:8443) by browsers the test
  names with a token of its own, page views mixed with what is no visit (a static file, a missing page, a
  HEAD, a robot); the lines are counted in web1's access log, and the form's visits of today grow by
  exactly the page views sent, its visitors by the browsers that sent them. The lines per day the form read
  lie between web1's log counted before and after it.
- Security checks: a real inspection run into the test's reports directory counts, a problem opened in
  the test's incidents directory counts.
- The PDF of each site is written and carries the form's Chinese title.
"""

# ruff: noqa: RUF001 - Chinese text keeps its own full-width punctuation on purpose
from __future__ import annotations

import json
import shlex
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from portalops.lab.config import LabConfig
from portalops.runbook.workcal import TZ
from tests.integration.helpers import on, portalops
from tests.integration.test_site import SITES, get

YEAR = datetime.now(UTC).astimezone(TZ).year
BROWSERS = 3
LOG = "/var/log/nginx/access.log"


def annual(reports: Path, incidents: Path, out: Path) -> dict[str, Any]:
    result = portalops(
        "report", "--annual", str(YEAR), "--form", "gov-website", "--json",
        "--reports", str(reports), "--incidents", str(incidents), "--out", str(out), timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    document: dict[str, Any] = json.loads(result.stdout)
    assert document["logs"]["errors"] == [], document["logs"]["errors"]
    return document


def query(database: str, statement: str) -> list[list[str]]:
    result = on("db1", f"mariadb --batch --skip-column-names {database} -e {shlex.quote(statement)}")
    return [line.split("\t") for line in result.stdout.splitlines() if line]


def year_bounds() -> tuple[str, str]:
    """The year's Beijing bounds as the database's post_date_gmt writes them."""
    start = datetime(YEAR, 1, 1, tzinfo=TZ).astimezone(UTC)
    end = datetime(YEAR + 1, 1, 1, tzinfo=TZ).astimezone(UTC)
    return f"{start:%Y-%m-%d %H:%M:%S}", f"{end:%Y-%m-%d %H:%M:%S}"


def posts_in_database(site: dict[str, Any]) -> tuple[dict[int, int], int]:
    """Published posts dated in the year: per category (id -> count), and in all."""
    start, end = year_bounds()
    dated = (
        "p.post_type = 'post' AND p.post_status = 'publish'"
        f" AND p.post_date_gmt >= '{start}' AND p.post_date_gmt < '{end}'"
    )
    per = query(
        site["db_name"],
        "SELECT tt.term_id, COUNT(p.ID) FROM wp_term_taxonomy tt"
        " LEFT JOIN wp_term_relationships r ON r.term_taxonomy_id = tt.term_taxonomy_id"
        f" LEFT JOIN wp_posts p ON p.ID = r.object_id AND {dated}"
        " WHERE tt.taxonomy = 'category' GROUP BY tt.term_id",
    )
    total = query(site["db_name"], f"SELECT COUNT(*) FROM wp_posts p WHERE {dated}")
    return {int(term): int(count) for term, count in per}, int(total[0][0])


def today_lines() -> int:
    """Lines of web1's access log (and its rotations) dated today in Beijing, counted on web1."""
    today = datetime.now(UTC).astimezone(TZ).date()
    start = datetime(today.year, today.month, today.day, tzinfo=TZ)
    script = (
        "import datetime, glob, gzip, sys\n"
        f"start = datetime.datetime.fromisoformat({start.isoformat()!r})\n"
        "end = start + datetime.timedelta(days=1)\n"
        "n = 0\n"
        f"for path in glob.glob({LOG!r} + '*'):\n"
        "    opener = gzip.open if path.endswith('.gz') else open\n"
        "    opened = opener(path, 'rt', errors='replace')\n"
        "    for line in opened:\n"
        "        try:\n"
        "            at = datetime.datetime.strptime(line.split('[', 1)[1].split(']', 1)[0], '%d/%b/%Y:%H:%M:%S %z')\n"
        "        except (IndexError, ValueError):\n"
        "            continue\n"
        "        n += start <= at < end\n"
        "print(n)\n"
    )
    return int(on("web1", f"python3 -c {shlex.quote(script)}").stdout.strip())


def traffic(lab: LabConfig, token: str) -> tuple[dict[str, int], int]:
    """Each site visited by BROWSERS browsers (home, a post, a search), plus requests that are no visit;
    returns the page views per site that answered 200, and the requests sent in all."""
    views: dict[str, int] = {}
    sent = 0
    for site in SITES:
        domain = site["domains"][0]
        post = query(
            site["db_name"],
            "SELECT ID FROM wp_posts WHERE post_type = 'post' AND post_status = 'publish' ORDER BY ID LIMIT 1",
        )[0][0]
        for n in range(BROWSERS):
            agent = f"Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0 annual-{token}-{n}"
            for path in ("/", f"/?p={post}", "/?s=annual"):
                status, _, _ = get(lab, domain, path, agent=agent)
                sent += 1
                views[site["name"]] = views.get(site["name"], 0) + (status == 200)
            for method, path, who in (
                ("GET", "/wp-includes/css/dist/block-library/style.min.css", agent),  # a static file
                ("GET", f"/no-such-page-{token}", agent),  # 404
                ("HEAD", "/", agent),
                ("GET", "/", f"Mozilla/5.0 (compatible; Baiduspider/2.0; annual-{token})"),  # a robot
            ):
                get(lab, domain, path, method=method, agent=who)
                sent += 1
    return views, sent


def test_the_annual_form_counts_what_the_database_and_the_edge_log_hold(converged: LabConfig, tmp_path: Path) -> None:
    reports, incidents, out = tmp_path / "reports", tmp_path / "incidents", tmp_path / "annual"
    inspected = portalops("inspect", "--site", SITES[0]["name"], "--depth", "0", "--out", str(reports / "inspect"))
    assert list((reports / "inspect").glob("*.json")), inspected.stdout[-1000:] + inspected.stderr[-2000:]
    opened = portalops("problem", "open", "--title", "年报测试问题", "--by", "duty", "--incidents", str(incidents))
    assert opened.returncode == 0, opened.stdout + opened.stderr

    before = annual(reports, incidents, out)
    token = uuid.uuid4().hex[:10]
    views, sent = traffic(converged, token)
    logged = on("web1", f"grep -c -- 'annual-{token}' {LOG}").stdout.strip()
    assert int(logged) == sent, "web1 logged every request the test sent"
    lines_before = today_lines()
    after = annual(reports, incidents, out)
    lines_after = today_lines()

    today = datetime.now(UTC).astimezone(TZ).date().isoformat()
    assert lines_before <= after["logs"]["lines_per_day"][today] <= lines_after
    cover = after["logs"]["coverage"]
    assert cover["last_day"] == today and cover["days_covered"] >= 1 and cover["covered"]
    for old, new in zip(before["sites"], after["sites"], strict=True):
        name = new["site"]
        seen_before = (old["visits"]["days"].get(today) or {"views": 0, "visitors": 0}) if old["visits"] else None
        assert seen_before is not None and new["visits"] is not None
        now_seen = new["visits"]["days"][today]
        assert views[name] >= 2 * BROWSERS, "the home page and the search answer 200"
        assert now_seen["views"] - seen_before["views"] == views[name], (name, seen_before, now_seen)
        assert now_seen["visitors"] - seen_before["visitors"] == BROWSERS, (name, seen_before, now_seen)
        fields = {f["id"]: f for s in new["sections"] for f in s["fields"]}
        assert fields["views"]["value"] == str(new["visits"]["views"])
        assert fields["visitors"]["value"] == str(new["visits"]["visitors"])

    for site, form in zip(SITES, after["sites"], strict=True):
        per, total = posts_in_database(site)
        counted = {c["id"]: c["posts"] for c in form["publishing"]["categories"]}
        assert counted == per, form["site"]
        assert form["publishing"]["total"] == total
        assert total > 0 and any(per.values()), "the lab's seeded posts are dated this year"
        fields = {f["id"]: f for s in form["sections"] for f in s["fields"]}
        assert fields["posts_total"]["value"] == str(total)
        assert fields["checks"]["value"] == "1" and fields["problems_found"]["value"] == "1"
        assert fields["monitoring"]["value"].startswith("是 yes"), fields["monitoring"]
        assert fields["sponsor"]["value"] == after["blank"] and not fields["sponsor"]["filled"]

        pdf = (out / f"{YEAR}-gov-website-{form['site']}.pdf").read_bytes()
        assert pdf.startswith(b"%PDF-")
        assert ("\ufeff政府网站工作年度报表").encode("utf-16-be").hex().encode() in pdf.lower()
        markdown = (out / f"{YEAR}-gov-website-{form['site']}.md").read_text(encoding="utf-8")
        assert markdown.startswith(f"# 政府网站工作年度报表（{YEAR}年度）")
