"""portalops-host's checks (portalops_host.certificates, edge, phpfpm, slowlog, checks): their judgements as
pure functions on recorded inputs (tests/unit/data/hostchecks/, see its README), and the probe's verdict
(portalops.probe.within, ``portalops probe-check``) on the controller."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from portalops.probe import within
from portalops_host.certificates import certificate_line, not_after, served_certificates
from portalops_host.checks import status_dir
from portalops_host.cli import main
from portalops_host.edge import page_line, server_names
from portalops_host.phpfpm import children, max_children, reached, saturation
from portalops_host.slowlog import entry_time, slow_queries_since
from portalops_host.visits import aggregate, is_visit, parse

DATA = Path(__file__).parent / "data" / "hostchecks"


def recorded(name: str) -> str:
    return (DATA / name).read_text()


# --------------------------------------------------------------------------- certificates (web tier)


def test_the_served_certificates_are_the_ssl_certificate_files_each_once() -> None:
    assert served_certificates(recorded("web1-nginx-T.txt")) == ["/etc/nginx/tls/news.crt", "/etc/nginx/tls/portal.crt"]


def test_no_ssl_certificate_is_no_certificate() -> None:
    assert served_certificates("server {\n    listen 80;\n    ssl_certificate_key /k.key;\n}\n") == []


def test_openssl_enddate_is_read_as_utc() -> None:
    lines = recorded("web1-openssl-enddate.txt").splitlines()
    assert lines[1] == "notAfter=Mar  9 01:18:31 2029 GMT"
    assert not_after(lines[1] + "\n") == datetime(2029, 3, 9, 1, 18, 31)
    assert not_after("notAfter=Dec 15 09:30:00 2027 GMT") == datetime(2027, 12, 15, 9, 30)


def test_a_certificate_with_days_enough_passes_and_one_short_fails() -> None:
    now, expires = datetime(2026, 12, 5, 12, 0), datetime(2026, 12, 25, 0, 0)
    assert certificate_line("/c.crt", expires, 7, now) == ("/c.crt expires 2026-12-25T00:00:00 (19 days) ", True)
    assert certificate_line("/c.crt", expires, 30, now) == (
        "/c.crt expires 2026-12-25T00:00:00 (19 days) UNDER 30",
        False,
    )


def test_an_expired_certificate_counts_negative_days() -> None:
    line, ok = certificate_line("/c.crt", datetime(2026, 12, 4, 12, 0), 1, datetime(2026, 12, 5, 0, 0))
    assert (line, ok) == ("/c.crt expires 2026-12-04T12:00:00 (-1 days) UNDER 1", False)


# --------------------------------------------------------------------------- edge content (web tier)


def test_the_sites_are_the_server_names_but_the_catch_all() -> None:
    assert server_names(recorded("web1-nginx-T.txt")) == ["portal.lab.test", "news.lab.test"]


def test_a_whole_wordpress_page_is_ok() -> None:
    body = recorded("web1-front-page.html")
    assert page_line("portal.lab.test", 200, body) == (
        f"portal.lab.test 200 {len(body)} bytes 某县人民政府门户网站 (County Government Portal) ok",
        True,
    )


@pytest.mark.parametrize(
    ("status", "change", "why"),
    [
        (503, lambda b: b, "not 200"),
        (200, lambda b: b.replace('name="generator"', 'name="made-by"'), "not WordPress"),
        (200, lambda b: b.split("</body>")[0], "cut off"),
        (200, lambda b: b.replace("<title>", "<tiitle>"), "no title"),
        (200, lambda b: b + "<b>Fatal error</b>: Uncaught Error", "a PHP error"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_anything_but_a_whole_page_is_not_ok(status: int, change: object, why: str) -> None:
    assert callable(change)
    line, ok = page_line("portal.lab.test", status, change(recorded("web1-front-page.html")))
    assert not ok, why
    assert line.endswith(" NOT OK")


def test_a_page_not_fetched_is_not_ok_with_the_reason() -> None:
    assert page_line("portal.lab.test", None, "<urlopen error [Errno 111] Connection refused>") == (
        "portal.lab.test None 46 bytes NO TITLE NOT OK",
        False,
    )


# --------------------------------------------------------------------------- php-fpm saturation (CMS tier)


def test_a_pool_file_names_its_limit() -> None:
    assert max_children(recorded("cms1-pool-wordpress-portal.conf")) == 10
    assert max_children("[www]\npm = dynamic\n") is None


def test_children_are_counted_per_pool_from_ps() -> None:
    # The status pools (the exporters role's pm.status_listen) are pools of their own names.
    assert children(recorded("cms1-ps-args.txt")) == {
        "wordpress-portal_status": 1,
        "wordpress-news_status": 1,
        "wordpress-portal": 1,
    }


def test_the_log_counts_reaching_the_limit_since_a_moment() -> None:
    lines = recorded("cms1-php8.2-fpm.log").splitlines()
    everything = time.mktime(time.strptime("05-Dec-2026 00:00:00", "%d-%b-%Y %H:%M:%S"))
    assert reached(lines, everything) == {"wordpress-portal": 2, "wordpress-news": 1}
    later = time.mktime(time.strptime("05-Dec-2026 01:52:30", "%d-%b-%Y %H:%M:%S"))
    assert reached(lines, later) == {"wordpress-portal": 1, "wordpress-news": 1}
    assert reached(lines, later + 3600) == {}


def test_a_pool_at_its_limit_or_logged_reaching_it_is_saturated() -> None:
    limits = {"wordpress-portal": 5, "wordpress-news": 5}
    lines, calm = saturation(limits, {"wordpress-portal": 5, "wordpress-news": 1}, {}, 10)
    assert (lines, calm) == (
        [
            "wordpress-news: 1 of 5 children, 0 reached pm.max_children in 10 min",
            "wordpress-portal: 5 of 5 children, 0 reached pm.max_children in 10 min",
            "saturated: wordpress-portal",
        ],
        False,
    )
    assert saturation(limits, {}, {"wordpress-news": 2}, 10)[0][-1] == "saturated: wordpress-news"
    assert saturation(limits, {"wordpress-portal": 2}, {}, 10) == (
        [
            "wordpress-news: 0 of 5 children, 0 reached pm.max_children in 10 min",
            "wordpress-portal: 2 of 5 children, 0 reached pm.max_children in 10 min",
            "no pool saturated",
        ],
        True,
    )


# --------------------------------------------------------------------------- slow queries (database tier)


def test_mariadb_and_mysql_time_headers_are_read() -> None:
    # MariaDB pads a one-digit hour with a space.
    assert entry_time("# Time: 261205  9:20:31\n") == time.mktime((2026, 12, 5, 9, 20, 31, 0, 0, -1))
    assert entry_time("# Time: 261205 09:20:31\n") == time.mktime((2026, 12, 5, 9, 20, 31, 0, 0, -1))
    assert (
        entry_time("# Time: 2026-12-05T01:20:31.123456Z\n")
        == datetime.fromisoformat("2026-12-05T01:20:31.123456+00:00").timestamp()
    )
    assert entry_time("# Time: yesterday\n") is None


def test_queries_are_counted_from_a_moment() -> None:
    lines = recorded("db1-mariadb-slow.log").splitlines()
    assert slow_queries_since(lines, 0) == 2
    since = time.mktime((2026, 12, 5, 1, 58, 25, 0, 0, -1))
    assert slow_queries_since(lines, since) == 1
    assert slow_queries_since(lines, since + 3600) == 0


def test_an_entry_without_a_time_of_its_own_has_the_one_before_it() -> None:
    lines = recorded("db1-mariadb-slow.log").splitlines()
    second = lines.index("# Time: 261205  1:58:26")
    lines = lines[:second] + lines[second + 1 :]
    assert slow_queries_since(lines, time.mktime((2026, 12, 5, 1, 58, 24, 0, 0, -1))) == 2


def test_the_command_counts_the_log_and_an_unreadable_log_is_unknown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "mariadb-slow.log"
    stamp = time.strftime("%y%m%d %H:%M:%S", time.localtime(time.time() - 60))
    log.write_text(f"# Time: {stamp}\n# User@Host: wp[wp] @ cms1 []\n# Query_time: 3.2  Lock_time: 0.0\nSELECT 1;\n")
    assert main(["check", "slow-queries", "--log", str(log)]) == 1
    assert capsys.readouterr().out == "1 slow queries (over long_query_time) in the last hour\n"
    assert main(["check", "slow-queries", "--log", str(tmp_path / "none.log")]) == 75
    assert "cannot read the slow log" in capsys.readouterr().err


# --------------------------------------------------------------------------- backup status directory


def test_the_status_directory_is_the_configured_one_or_the_default() -> None:
    assert status_dir({"status_dir": "/srv/status"}) == "/srv/status"
    assert status_dir({"status_dir": ""}) == "/var/lib/portalops/backup"
    assert status_dir({}) == "/var/lib/portalops/backup"


def test_status_dir_prints_the_configured_directory_or_the_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "backup.json"
    config.write_text(json.dumps({"status_dir": "/srv/status"}))
    assert main(["backup", "status-dir", "--config", str(config)]) == 0
    assert capsys.readouterr().out == "/srv/status\n"
    for broken in ("not json", "[]"):
        config.write_text(broken)
        assert main(["backup", "status-dir", "--config", str(config)]) == 0
        assert capsys.readouterr().out == "/var/lib/portalops/backup\n"
    assert main(["backup", "status-dir", "--config", str(tmp_path / "none.json")]) == 0
    assert capsys.readouterr().out == "/var/lib/portalops/backup\n"


# --------------------------------------------------------------------------- the probe's verdict (controller)


def test_every_site_up_within_the_time_passes() -> None:
    site = {"site": "main", "domain": "www.example.cn", "ok": True, "status": 200, "error": ""}
    assert within([{**site, "timings_ms": {"total": 350.5}}], 2.0) == (
        ["main www.example.cn total 350.5 ms ok", "every site within 2 s"],
        True,
    )
    lines, ok = within([{**site, "timings_ms": {"total": 2400.0}}], 2.0)
    assert (lines, ok) == (["main www.example.cn total 2400.0 ms ok SLOW", "over 2 s or failing: main"], False)
    down = {**site, "ok": False, "status": None, "error": "connection refused", "timings_ms": {}}
    assert within([down], 2.0) == (
        ["main www.example.cn total None ms FAILED connection refused SLOW", "over 2 s or failing: main"],
        False,
    )


# --------------------------------------------------------------------------- visits (web tier)

LAB_DOMAINS = {"portal.lab.test": "portal", "www.portal.lab.test": "portal", "news.lab.test": "news"}
RUN = "annual-3874e129c7"  # the integration test run whose browsers and robot the recording holds


def test_every_line_of_the_recorded_access_log_is_read_and_only_the_browsers_pages_are_visits() -> None:
    """What the README says the recording holds, counted by the log's own text: 400 lines of one Beijing day,
    none unread; the visits are the test browsers' pages only (9 a site: 3 browsers x 3 pages, all 200), by 3
    visitors a site; monitors, the static file, the missing page, the HEAD and the robot are none."""
    lines = recorded("web1-nginx-access.log").splitlines(keepends=True)
    found = aggregate(lines, datetime(2026, 12, 5, tzinfo=UTC), datetime(2026, 12, 6, tzinfo=UTC), LAB_DOMAINS)
    assert found["days"] == {"2026-12-05": 400}
    assert (found["unparsed"], found["unattributed"]) == (0, 0)
    assert found["sites"] == {
        "news": {"2026-12-05": {"views": 9, "visitors": 3}},
        "portal": {"2026-12-05": {"views": 9, "visitors": 3}},
    }
    assert (found["first"], found["last"]) == ("2026-12-05T05:44:17+00:00", "2026-12-05T06:03:25+00:00")
    entries = [parse(line) for line in lines]
    visits = [e for e in entries if e is not None and is_visit(e)]
    assert len(visits) == 18 and all(RUN in e["agent"] and "Firefox" in e["agent"] for e in visits)
    assert {e["target"].split("=")[0] for e in visits} == {"/", "/?p", "/?s"}
