"""The inspection self-check's pure parts, on recorded pages and REST answers (tests/unit/data/inspect/)."""

# ruff: noqa: RUF001 - Chinese text keeps its own full-width punctuation on purpose

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import shlex
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from portalops.cli import build_parser, main
from portalops.errors import BadInput
from portalops.inspect import availability, interaction, pages, scheduled, veto
from portalops.inspect.edge import Edge
from portalops.inspect.personal import find_personal_data, valid_id_number
from portalops.inspect.report import markdown, prometheus_from_vars, settings_from_vars, to_json
from portalops.inspect.site import Settings, SiteReport, inspect_site, parse_gmt, scan_content, without_bypass
from portalops.inspect.words import WordMatcher
from portalops.monitoring.api import Prometheus
from tests.unit.monitoring_servers import EXPR_7D, EXPR_MARGIN, Monitoring, dead_url, prometheus_answers, serve
from tests.unit.test_probe import serve_tls

DATA = Path(__file__).parent / "data" / "inspect"
NOW = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)
# What the site's WordPress holds back (read on the CMS host, never public): one post scheduled ahead.
HELD_BACK = scheduled.Scheduled(
    [scheduled.Post(41, "post", "元旦放假安排", NOW + dt.timedelta(days=21), "https://portal.lab.test/?p=41")],
    read=True,
)
CLASSES = yaml.safe_load((DATA / "classes.yaml").read_text())
ID_NUMBERS = yaml.safe_load((DATA / "id_numbers.yaml").read_text())
MOBILES = yaml.safe_load((DATA / "mobiles.yaml").read_text())
PATTERNS = pages.compile_patterns(pages.DEFAULT_ERROR_PATTERNS)


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text())


def posts() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = load("posts.json")
    for post in found:
        post["date"] = parse_gmt(post["date_gmt"])
    return found


def section(klass: str, age_days: float | None, posts: int = 1, name: str = "s") -> veto.Section:
    newest = None if age_days is None else NOW - dt.timedelta(days=age_days)
    return veto.Section(0, name, name, f"https://portal.lab.test/?cat={name}", klass, posts, newest)


@pytest.mark.parametrize("case", CLASSES, ids=[c.get("id", c["name"]) for c in CLASSES])
def test_category_class(case: dict[str, Any]) -> None:
    configured = veto.check_sections(case.get("sections"))
    assert veto.classify(case["slug"], case["name"], configured) == case["class"]


@pytest.mark.parametrize(
    "sections",
    ["news", [{"class": "dynamic"}], [{"slug": "news", "class": "weekly"}], [{"name": "要闻"}]],
)
def test_bad_sections_are_refused(sections: Any) -> None:
    with pytest.raises(ValueError, match="sections"):
        veto.check_sections(sections)


def test_sections_from_rest_count_subcategories_and_ignore_future_posts() -> None:
    sections = {s.name: s for s in veto.build_sections(load("categories.json"), posts(), NOW)}
    assert {n: s.klass for n, s in sections.items()} == {
        "未分类": "static",
        "通知公告": "notice",
        "政务动态": "dynamic",
        "便民服务": "static",
        "Government News": "dynamic",
        "要闻": "dynamic",
        "政策文件": "notice",
    }
    # 政务动态 holds its own post (19 Nov) and its subcategory 要闻's (23 Nov): the newer one counts.
    assert (sections["政务动态"].posts, sections["政务动态"].newest) == (2, parse_gmt("2026-11-23T12:00:00"))
    assert sections["政务动态"].age_days(NOW) == 10
    assert sections["政务动态"].warned(NOW) and not sections["政务动态"].stale(NOW)
    # The post dated three weeks ahead is not Government News' newest: its last real one is 32 days old.
    assert sections["Government News"].newest == parse_gmt("2026-11-01T12:00:00")
    assert sections["Government News"].stale(NOW)
    assert sections["通知公告"].age_days(NOW) == pytest.approx(185.5)
    assert sections["通知公告"].stale(NOW)
    assert [n for n, s in sections.items() if s.blank()] == ["未分类", "政策文件"]


def test_sections_item_from_rest_lists_the_evidence() -> None:
    sections = veto.build_sections(load("categories.json"), posts(), NOW)
    item = veto.sections_item(sections, ["https://portal.lab.test/?page_id=31"], NOW)
    assert item.status == veto.PASS  # 2 stale (of 5), 3 blank (of 5)
    assert item.margin.startswith("dynamic/notice sections stale: 2 (at warning age: 4), veto at 5;")
    assert "blank: 3, veto at 5" in item.margin
    assert "STALE: dynamic section Government News: 32 days since the last item, veto at 14;" in "\n".join(
        item.evidence
    )
    assert "at risk: dynamic section 政务动态: 10 days since the last item, veto at 14" in "\n".join(item.evidence)


@pytest.mark.parametrize(
    ("ages", "status"),
    [
        ([13.9] * 4 + [179.0], veto.AT_RISK),  # 5 at warning age, none stale yet
        ([14.0] * 4 + [1.0], veto.AT_RISK),  # 4 stale: one more and the veto
        ([14.0] * 4 + [180.0], veto.FAIL),  # dynamic and notice together
        ([9.9] * 4 + [149.0], veto.PASS),
        ([14.0] * 3 + [1.0] * 2, veto.PASS),
    ],
)
def test_dynamic_and_notice_stale_together(ages: list[float], status: str) -> None:
    sections = [section("dynamic", a, name=f"d{i}") for i, a in enumerate(ages[:4])]
    sections.append(section("notice", ages[4], name="n"))
    assert veto.sections_item(sections, [], NOW).status == status


def test_ten_stale_sections_of_any_class_fail() -> None:
    statics = [section("static", 400, name=f"s{i}") for i in range(9)]
    assert veto.sections_item(statics, [], NOW).status == veto.AT_RISK
    assert veto.sections_item([*statics, section("static", 365)], [], NOW).status == veto.FAIL
    assert veto.sections_item([*statics, section("static", 364)], [], NOW).status == veto.AT_RISK


def test_blank_sections_and_pages_count_together_and_exempt_ones_not() -> None:
    blank = [section("static", None, posts=0, name=f"b{i}") for i in range(3)]
    assert veto.sections_item(blank, ["p1"], NOW).status == veto.AT_RISK
    assert veto.sections_item(blank, ["p1", "p2"], NOW).status == veto.FAIL
    exempt = section("exempt", None, posts=0)
    assert veto.sections_item([*blank, exempt], ["p1"], NOW).status == veto.AT_RISK


@pytest.mark.parametrize(
    ("newest", "status"),
    [(dt.date(2026, 12, 3), veto.PASS), (dt.date(2026, 11, 23), veto.AT_RISK), (dt.date(2026, 11, 19), veto.FAIL)],
)
def test_home_page_freshness(newest: dt.date, status: str) -> None:
    item = veto.home_item([dt.date(2027, 1, 1), newest, dt.date(2026, 1, 1)], dt.date(2026, 12, 3), "u")
    assert item.status == status
    assert item.margin.endswith("veto at 14")


def test_a_home_page_without_a_visible_date_is_not_updated() -> None:
    item = veto.home_item([], dt.date(2026, 12, 3), "https://portal.lab.test/")
    assert (item.status, item.margin) == (veto.FAIL, "no item with a visible publication date on the home page")


def test_home_page_dates_are_the_visible_ones() -> None:
    # Not the script's 2031; the <time> elements' and the plain text's dates; not the footer's year.
    dates = pages.visible_dates((DATA / "home.html").read_text())
    assert dates == [dt.date(2026, 12, 2), dt.date(2026, 11, 23), dt.date(2026, 11, 19)]


@pytest.mark.parametrize(
    ("text", "date"),
    [
        ("发布时间：2026年1月5日", dt.date(2026, 1, 5)),
        ("2026/01/05 10:00", dt.date(2026, 1, 5)),
        ("2026.1.5", dt.date(2026, 1, 5)),
        ("January 5, 2026", dt.date(2026, 1, 5)),
        ("5 Jan 2026", dt.date(2026, 1, 5)),
        ("2026-02-30", None),
        ("今天是：2026年12月3日 星期四", None),
        ("Today is December 3, 2026", None),
        ("[01-05]", None),
        ("电话 2026-1234", None),
    ],
)
def test_date_forms(text: str, date: dt.date | None) -> None:
    assert pages.visible_dates(f"<p>{text}</p>") == ([date] if date else [])


def test_a_head_left_open_hides_nothing_of_the_body() -> None:
    assert pages.visible_dates("<html><head><title>x</title><body><p>2026-12-01</p>") == [dt.date(2026, 12, 1)]


def test_links_of_the_home_page() -> None:
    found = pages.links((DATA / "home.html").read_text(), "https://portal.lab.test/")
    assert [(link.url, link.page) for link in found] == [
        ("https://portal.lab.test/wp-content/themes/twentytwentythree/style.css?ver=1.0", False),
        ("https://portal.lab.test/wp-includes/js/jquery.min.js?ver=3.6.1", False),
        ("https://portal.lab.test/", True),
        ("https://portal.lab.test/wp-login.php", True),
        ("https://portal.lab.test/?p=19", True),
        ("https://portal.lab.test/?p=18", True),
        ("https://portal.lab.test/?p=17", True),
        ("https://portal.lab.test/?cat=2", True),
        ("https://portal.lab.test/?preview=true&paged=2", True),
        ("https://portal.lab.test/wp-content/uploads/2026/12/county-portal.png", False),
        ("https://www.gov.cn/", True),
        ("http://unresolvable.invalid/page", True),
    ]


@pytest.mark.parametrize(
    ("url", "bare"),
    [
        ("https://portal.lab.test/?preview=true&paged=2", "https://portal.lab.test/?paged=2"),
        ("https://portal.lab.test/?preview=true", "https://portal.lab.test/"),
        ("https://portal.lab.test/?p=3&preview=false", "https://portal.lab.test/?p=3&preview=false"),
        ("https://portal.lab.test/?s=a+b&x=%E4%B8%AD", "https://portal.lab.test/?s=a+b&x=%E4%B8%AD"),
    ],
)
def test_links_lose_the_cache_bypass_the_page_echoed(url: str, bare: str) -> None:
    assert without_bypass(url) == bare


def test_links_respect_base_href() -> None:
    html = '<base href="https://portal.lab.test/sub/"><a href="page">x</a>'
    assert [link.url for link in pages.links(html, "https://portal.lab.test/")] == ["https://portal.lab.test/sub/page"]


@pytest.mark.parametrize(
    ("page", "found"),
    [
        ("db_error.html", ["建立数据库连接时出错"]),
        ("soft_404.html", ["页面不存在"]),
        ("healthy.html", []),  # the texts only in a script, or in words that are no error
        ("home.html", []),
    ],
)
def test_error_texts(page: str, found: list[str]) -> None:
    assert pages.error_texts((DATA / page).read_text(), PATTERNS) == found


def test_error_texts_read_the_title_and_php_errors() -> None:
    php = "<b>Fatal error</b>:  Uncaught Error: Call to undefined function x() in /srv/a.php on line 12"
    assert pages.error_texts(f"<body>{php}</body>", PATTERNS) == [
        "Fatal error : Uncaught Error: Call to undefined function x() in /srv/a.php on line 12"
    ]
    assert pages.error_texts("<title>404 Not Found</title><body>nginx</body>", PATTERNS) == ["404 Not Found"]


def test_a_bad_error_pattern_is_named() -> None:
    with pytest.raises(ValueError, match=r"error-text pattern '\(unclosed'"):
        pages.compile_patterns(["(unclosed"])


@pytest.mark.parametrize("number", ID_NUMBERS["valid"])
def test_valid_id_numbers(number: str) -> None:
    assert valid_id_number(number)


@pytest.mark.parametrize("number", ID_NUMBERS["invalid"])
def test_invalid_id_numbers(number: str) -> None:
    assert not valid_id_number(number)


def test_id_numbers_in_text_are_found_masked() -> None:
    found = find_personal_data("报名者 张三（身份证号 11010519491231002x），李四 110105194912310021。")
    assert [(d.kind, d.masked) for d in found] == [("id_card", "110105********002X")]


@pytest.mark.parametrize("case", MOBILES, ids=[c["text"] for c in MOBILES])
def test_mobile_numbers(case: dict[str, Any]) -> None:
    assert [d.masked for d in find_personal_data(case["text"]) if d.kind == "mobile"] == case["found"]


def test_word_matcher_finds_overlapping_words_case_insensitively() -> None:
    matcher = WordMatcher(["he", "she", "hers", "法轮", "法轮功", "", "  "])
    assert matcher.find("uSHERS 法轮功") == [(1, "she"), (2, "he"), (2, "hers"), (7, "法轮"), (7, "法轮功")]
    assert matcher.words_in("hehe") == ["he"]
    assert not WordMatcher([]) and not WordMatcher([""])
    assert WordMatcher(["abcd", "bc"]).words_in("xabcx") == ["bc"]  # the failure link out of a dead end


def test_content_scan_on_rest_posts_and_pages() -> None:
    words, ids, mobiles, blank = scan_content(posts(), load("pages.json"), WordMatcher(["portalops-sensitive-test-词"]))
    assert words == ["https://portal.lab.test/?p=16: portalops-sensitive-test-词"]
    assert ids == ["https://portal.lab.test/?p=17: id_card 110105********002X"]
    assert mobiles == ["https://portal.lab.test/?p=18: mobile 138****5678"]
    assert blank == ["https://portal.lab.test/?page_id=31"]  # the map page is an image: not blank


def test_exit_status_fail_over_unknown_over_pass() -> None:
    assert veto.exit_status([veto.PASS, veto.AT_RISK]) == 0
    assert veto.exit_status([veto.PASS, veto.UNKNOWN]) == 75  # the house's "cannot tell" (EX_TEMPFAIL), not bad input
    assert veto.exit_status([veto.UNKNOWN, veto.FAIL]) == 1
    items = [
        veto.Item("a", "a", "a", True, veto.NOT_CHECKED),
        veto.Item("b", "b", "b", False, veto.FAIL),  # costs points, vetoes nothing
        veto.Item("c", "c", "c", True, veto.AT_RISK),
    ]
    assert veto.site_status(items) == veto.AT_RISK


def hostvars(**extra: Any) -> dict[str, dict[str, Any]]:
    site = {"name": "portal", "title": "T", "domains": ["portal.lab.test"], **extra.pop("site", {})}
    return {"web1": {"url": "https://127.0.0.1:8443", "sites": [site], "groups": ["web"], "ca_dir": "", **extra}}


def test_settings_from_the_inventory() -> None:
    settings, sites = settings_from_vars(
        hostvars(
            words=["词"],
            site={"sections": [{"name": "要闻", "class": "dynamic"}], "interaction_source": "/hudong/export.json"},
        ),
        1,
        50,
        30.0,
    )
    assert (settings.public_url, list(settings.words), settings.depth, settings.max_requests) == (
        "https://127.0.0.1:8443",
        ["词"],
        1,
        50,
    )
    assert list(settings.error_patterns) == list(pages.DEFAULT_ERROR_PATTERNS)
    assert sites == [
        {
            "name": "portal",
            "domains": ["portal.lab.test"],
            "sections": [{"name": "要闻", "class": "dynamic"}],
            "interaction_source": "/hudong/export.json",
        }
    ]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"words": "词"}, "portalops_sensitive_words"),
        ({"error_patterns": ["("]}, "portalops_inspect_error_patterns"),
        ({"error_patterns": "x"}, "portalops_inspect_error_patterns"),
        ({"site": {"sections": [{"slug": "news", "class": "daily"}]}}, "portal_sites portal: sections entry"),
        ({"site": {"interaction_source": "hudong.json"}}, "portal_sites portal: interaction_source 'hudong.json'"),
        ({"site": {"interaction_source": ["/x"]}}, "portal_sites portal: interaction_source"),
    ],
)
def test_bad_inventory_values_are_named(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(BadInput, match=message):
        settings_from_vars(hostvars(**extra), 2, 300, 120.0)


def test_markdown_report_has_the_items_in_both_languages() -> None:
    item = veto.Item("site_not_updated", "网站不更新", "Site not updated", True, veto.FAIL, "15 days | veto at 14")
    report = SiteReport("portal", "portal.lab.test", "https://portal.lab.test/", veto.FAIL, [item])
    text = markdown([report], NOW)
    assert "结论 / Verdict: **不合格 / a veto item failed**" in text
    assert "| 网站不更新 / Site not updated | 是 / yes | 不合格 / fail | 15 days \\| veto at 14 |" in text


class FakePortal(BaseHTTPRequestHandler):
    """The recorded pages and REST answers, as the edge would serve them for portal.lab.test."""

    protocol_version = "HTTP/1.1"  # kept alive, as the edge does
    asked: ClassVar[list[str]] = []
    ROUTES: ClassVar[dict[str, tuple[int, str]]] = {
        "/": (200, "home.html"),
        "/?p=19": (200, "healthy.html"),
        "/?p=18": (200, "db_error.html"),
        "/?cat=2": (200, "soft_404.html"),
        "/?paged=2": (200, "healthy.html"),
        "/hudong/export.json": (200, "enquiries.json"),
    }

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        assert self.headers["Host"] == "portal.lab.test"
        parts = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(parts.query)
        fresh = query.pop("preview", None) == ["true"]  # around the edge cache
        FakePortal.asked.append(self.path)
        body, status, headers = b"", 404, {"Content-Type": "text/html; charset=UTF-8"}
        route = query.get("rest_route", [""])[0]
        if query == {"p": ["19"]} and fresh:  # WordPress: an anonymous preview of a published post goes to it
            status, headers = 301, {"Location": "https://portal.lab.test/?p=19"}
        elif route:
            headers["Content-Type"] = "application/json; charset=UTF-8"
            status, data = 200, {"gmt_offset": 8} if route == "/" else load(f"{route.rsplit('/', 1)[1]}.json")
            if route == "/wp/v2/posts":  # two pages of answers, as X-WP-TotalPages says
                page = int(query["page"][0])
                data, headers["X-WP-TotalPages"] = data[(page - 1) * 4 : page * 4], "2"
            body = json.dumps(data).encode()
        else:
            key = parts.path + ("?" + "&".join(f"{k}={v[0]}" for k, v in query.items()) if query else "")
            if key in self.ROUTES:
                status, name = self.ROUTES[key]
                body = (DATA / name).read_bytes()
            elif parts.path.startswith(("/wp-content/", "/wp-includes/")):
                status, body, headers = 200, b"x", {"Content-Type": "image/png"}
        self.send_response(status)
        for key, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def fake_portal() -> Iterator[str]:
    FakePortal.asked = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakePortal)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def fake_tls_portal(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    with serve_tls(FakePortal, tmp_path, ("portal.lab.test",)) as served:
        yield served


def test_the_edge_is_asked_by_address_with_the_domain_as_tls_name_on_one_connection(
    fake_tls_portal: tuple[str, Path],
) -> None:
    url, ca = fake_tls_portal
    edge = Edge(url, "portal.lab.test", [str(ca)])
    answers = [edge.get("/"), edge.get("https://portal.lab.test/?p=19", fresh=False), edge.get("/?p=17")]
    assert [(a.url, a.status) for a in answers] == [
        ("https://portal.lab.test/", 200),
        ("https://portal.lab.test/?p=19", 200),
        ("https://portal.lab.test/?p=17", 404),
    ]
    assert edge.requests == 3 and edge.connection is not None  # still open: kept alive
    edge.close()
    untrusted = Edge(url, "portal.lab.test").get("/")
    assert untrusted.status is None and "CERTIFICATE_VERIFY_FAILED" in untrusted.error
    wrong_name = Edge(url, "other.lab.test", [str(ca)]).get("/")
    assert wrong_name.status is None and "other.lab.test" in wrong_name.error


def test_a_site_inspected_end_to_end(fake_portal: str) -> None:
    settings = Settings(fake_portal, words=["portalops-sensitive-test-词"], depth=2)
    report = inspect_site("portal", ["portal.lab.test", "www.portal.lab.test"], [], settings, NOW, held_back=HELD_BACK)
    items = {i.id: i for i in report.items}
    assert {k: i.status for k, i in items.items()} == {
        "site_unreachable": veto.NOT_CHECKED,
        "site_not_updated": veto.PASS,
        "sections_not_updated": veto.PASS,
        "sensitive_content": veto.FAIL,
        "personal_data": veto.FAIL,
        "future_dates": veto.FAIL,
        "scheduled_posts": veto.PASS,
        "interaction": veto.NOT_CHECKED,
        "broken_links": veto.FAIL,
        "error_pages": veto.FAIL,
    }
    assert report.status == veto.FAIL
    assert items["site_not_updated"].margin == "1 day since the newest item on the home page (2026-12-02), veto at 14"
    assert items["future_dates"].evidence == ["https://portal.lab.test/?p=20: dated 2026-12-22 02:00 UTC"]
    # The scheduled post is held back, listed with its date, and no falsified date.
    assert items["scheduled_posts"].evidence == [
        "https://portal.lab.test/?p=41: post '元旦放假安排' scheduled for 2026-12-24 12:00 UTC, in 21.0 days"
    ]
    # The fake edge speaks plain HTTP, so the pages it serves are http:// ones; the REST links are as recorded.
    assert items["broken_links"].evidence == [
        # Known without a request (found as the home page is read): the name never resolves; nothing leaves.
        "http://unresolvable.invalid/page (the name never resolves: reserved, RFC 6761) on http://portal.lab.test/",
        "http://portal.lab.test/?p=17 (404) on http://portal.lab.test/",
    ]
    assert items["broken_links"].margin.endswith(
        "; 1 external links to a name that never resolves (.invalid), broken;"
        " 1 external links not requested (nothing leaves the portal)"
    )
    assert items["broken_links"].margin.startswith("1 of ")
    assert items["error_pages"].evidence == [
        "https://portal.lab.test/?p=18: HTTP 200 showing 建立数据库连接时出错",
        "http://portal.lab.test/?cat=2: HTTP 200 showing 页面不存在",
    ]
    assert report.stats["posts"] == 7 and report.stats["pages"] == 3
    assert not [p for p in FakePortal.asked if "wp-login" in p]  # never the rate-limited login page
    # Every request around the cache, except the post WordPress would not preview: read as visitors get it.
    assert [p for p in FakePortal.asked if "preview=true" not in p] == ["/?p=19"]
    assert "/?paged=2&preview=true" in FakePortal.asked  # the echoed bypass was not doubled


def test_an_unreachable_site_is_unknown_never_clean() -> None:
    settings = Settings("http://127.0.0.1:9", timeout=2)  # discard port: nothing listens
    report = inspect_site("portal", ["portal.lab.test"], [], settings, NOW)
    assert report.status == veto.UNKNOWN
    assert {i.status for i in report.items} == {veto.UNKNOWN}
    assert veto.exit_status([report.status]) == 75


def test_cli_refuses_bad_input_with_exit_2(tmp_path: Path) -> None:
    err = io.StringIO()
    assert main(["inspect", "-i", str(tmp_path / "none"), "--out", str(tmp_path)], io.StringIO(), err) == 2
    assert "inventory not found" in err.getvalue()
    assert main(["inspect", "--depth", "-1", "--out", str(tmp_path)], io.StringIO(), err) == 2
    assert not list(tmp_path.iterdir())  # no report of an inspection that did not happen


def test_cli_says_cannot_tell_with_exit_75_for_a_site_that_does_not_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rendered = hostvars(url="http://127.0.0.1:9")  # discard port: nothing listens
    monkeypatch.setattr("portalops.inspect.report.resolve_vars", lambda *args, **kwargs: rendered)
    out, err = io.StringIO(), io.StringIO()
    assert main(["inspect", "-i", str(tmp_path), "--json", "--out", str(tmp_path / "out")], out, err) == 75
    assert json.loads(out.getvalue())["exit"] == 75
    assert "inspect: cannot tell; report " in err.getvalue()
    [md] = (tmp_path / "out").glob("*.md")
    assert "结论 / Verdict: **无法判断 / cannot tell**" in md.read_text()


def test_the_lab_portals_real_home_page() -> None:
    """Recorded from the lab (WordPress 6.1, Twenty Twenty-Three, zh_CN) on 2026-12-03, asked with the bypass."""
    html = (DATA / "lab_home.html").read_text()
    dates = pages.visible_dates(html)
    assert (dates[0], dates[-1], len(dates)) == (dt.date(2026, 12, 2), dt.date(2026, 11, 23), 10)
    found = pages.links(html, "https://portal.lab.test/")
    posts = [link.url for link in found if "?p=" in link.url]
    assert len(posts) == 10 and all(link.page for link in found if link.url in posts)
    assert without_bypass("https://portal.lab.test/?preview=true&paged=2") in {
        without_bypass(link.url) for link in found
    }
    assert pages.error_texts(html, PATTERNS) == []


# The 7-day availability (网站不能访问) as the monitoring records it, read from a recorded Prometheus.


def figure(ratio: float, target: float = 0.95) -> availability.Figure:
    return availability.Figure("http://mon1:9090", ratio, round(ratio - target, 4))


@pytest.mark.parametrize(
    ("given", "answered", "status"),
    [
        (figure(0.9981), True, veto.PASS),
        (figure(0.955), True, veto.AT_RISK),  # under 1 point above the line
        (figure(0.9981), False, veto.AT_RISK),  # down now: the week's figure will follow
        (figure(0.9499), True, veto.FAIL),
        (figure(0.95), True, veto.FAIL),  # the failed share reaches 5 %
        (availability.Figure("http://mon1:9090", error="http://mon1:9090/api/v1/query: refused"), True, veto.UNKNOWN),
        (availability.Figure("http://mon1:9090"), True, veto.UNKNOWN),  # no figure for the site
        (availability.NOT_MEASURED, True, veto.NOT_CHECKED),  # no monitoring in the inventory
        (availability.NOT_MEASURED, False, veto.UNKNOWN),
    ],
)
def test_availability_item(given: availability.Figure, answered: bool, status: str) -> None:
    assert availability.item(given, "HTTP 200", answered).status == status


def test_availability_margin_is_said_in_points_and_hours() -> None:
    item = availability.item(figure(0.9981), "HTTP 200", True)
    assert item.margin == (
        "7-day share of samples loaded within 15 s: 99.81 %, veto at 95.00 % or less"
        " (margin +4.81 points: about 8.1 h of failed samples left in the week)"
    )
    assert availability.item(figure(0.94), "HTTP 200", True).margin.endswith(
        "(margin -1.00 points: 1.7 h of failed samples over)"
    )


def test_availability_is_read_as_portalops_status_reads_it() -> None:
    world = Monitoring()
    world.queries = prometheus_answers(NOW, ratio_7d=0.9412)
    with serve(world) as url:
        figures = availability.read(Prometheus(url), ["portal", "news"])
    assert figures["portal"] == availability.Figure(url, 0.9412, round(0.9412 - 0.95, 4))
    assert figures["news"] == availability.Figure(url)  # Prometheus knows no figure for it: unknown
    assert sorted(urllib.parse.parse_qs(urllib.parse.urlsplit(a).query)["query"][0] for a in world.asked) == [
        EXPR_7D,
        EXPR_MARGIN,
    ]
    assert availability.item(figures["portal"], "HTTP 200", True).status == veto.FAIL


def test_a_prometheus_that_does_not_answer_is_cannot_tell_never_a_pass() -> None:
    url = dead_url()
    figures = availability.read(Prometheus(url, timeout=2), ["portal"])
    assert figures["portal"].source == url and "refused" in figures["portal"].error.lower()
    item = availability.item(figures["portal"], "HTTP 200", True)
    assert item.status == veto.UNKNOWN and item.margin.startswith("Prometheus did not answer: ")
    assert availability.read(None, ["portal"]) == {"portal": availability.NOT_MEASURED}


def test_prometheus_is_found_as_portalops_status_finds_it() -> None:
    def url(rendered: dict[str, dict[str, Any]], given: str = "") -> str | None:
        found = prometheus_from_vars(rendered, "inv", given)
        return found.url if found else None

    rendered = hostvars()
    assert url(rendered) is None  # no monitoring host: not checked
    rendered["mon1"] = {"groups": ["monitoring"], "ansible_host": "10.89.60.16", "lab_publish": []}
    rendered["mon1"]["monitoring_prometheus_listen_address"] = None  # unset: the role's default port
    assert url(rendered) == "http://10.89.60.16:9090"
    rendered["mon1"]["lab_publish"] = ["127.0.0.1:19090:9090"]  # the lab: the controller's loopback
    assert url(rendered) == "http://127.0.0.1:19090"
    assert url(rendered, "http://x:1/") == "http://x:1"


def test_the_report_shows_each_sites_availability_in_json_and_markdown(fake_portal: str) -> None:
    settings = Settings(fake_portal, depth=0)
    report = inspect_site("portal", ["portal.lab.test"], [], settings, NOW, figure=figure(0.9981))
    item = next(i for i in report.items if i.id == "site_unreachable")
    assert item.status == veto.PASS and item.evidence[0] == "home page now: HTTP 200"
    document = json.loads(to_json([report], NOW))
    assert document["sites"][0]["availability_7d"] == {
        "source": "http://mon1:9090",
        "ratio_7d": 0.9981,
        "veto_margin_7d": 0.0481,
        "error": "",
    }
    text = markdown([report], NOW)
    assert "7 天可用率 (15 秒) / 7-day availability (15 s rule): 99.81 %, 否决余量 / veto margin +4.81 pp" in text
    assert "| 网站不能访问 / Site unreachable | 是 / yes | 通过 / pass | 7-day share" in text
    down = inspect_site(
        "portal",
        ["portal.lab.test"],
        [],
        settings,
        NOW,
        figure=availability.Figure("http://mon1:9090", error="timed out"),
    )
    assert "无法判断 / unknown (timed out)" in markdown([down], NOW)


def unit_settings(name: str) -> dict[str, str]:
    text = (Path(__file__).resolve().parents[2] / "contrib" / "systemd" / name).read_text()
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))


def daily_unit(name: str) -> tuple[argparse.Namespace, tuple[str, str, str]]:
    """A contrib/systemd service and its timer: the command as the CLI parses it (the virtualenv's
    portalops), and (Type, OnCalendar, Persistent)."""
    service, timer = unit_settings(f"{name}.service"), unit_settings(f"{name}.timer")
    argv = shlex.split(service["ExecStart"])
    assert argv[0].endswith("/.venv/bin/portalops")
    return build_parser().parse_args(argv[1:]), (service["Type"], timer["OnCalendar"], timer["Persistent"])


def test_the_daily_timer_runs_an_inspection_the_cli_accepts() -> None:
    args, schedule = daily_unit("portalops-inspect")
    assert (args.command, args.inventory, args.json) == ("inspect", "inventory/example", False)
    assert schedule == ("oneshot", "*-*-* 07:30:00", "true")


def test_the_daily_cmdb_timer_takes_a_snapshot_the_cli_accepts() -> None:
    args, schedule = daily_unit("portalops-cmdb")
    assert (args.command, args.inventory, args.diff) == ("cmdb", "inventory/example", None)
    assert not (args.json or args.md)  # writes the dated snapshot, prints only its paths
    assert schedule == ("oneshot", "*-*-* 06:45:00", "true")


# 互动回应差 over a configured source (the lab has no enquiry section: recorded exports stand in).

DAY = dt.date(2026, 12, 3)


def message(received: str, answered: str | None = None, name: str = "m") -> interaction.Message:
    return interaction.Message(
        name, dt.date.fromisoformat(received), dt.date.fromisoformat(answered) if answered else None
    )


@pytest.mark.parametrize(
    ("messages", "status"),
    [
        ([], veto.PASS),
        ([message("2026-01-02", "2026-06-30")], veto.PASS),  # answered late, but answered
        ([message("2026-10-04")], veto.PASS),  # 2 months on 4 Dec
        ([message("2026-10-03")], veto.AT_RISK),  # 2 months today
        ([message("2026-09-03")], veto.AT_RISK),  # exactly 3 months: not yet more
        ([message("2026-09-02")], veto.FAIL),
        ([message("2026-09-02", "2026-12-01"), message("2026-11-30")], veto.PASS),
    ],
)
def test_interaction_judged_on_unanswered_messages(messages: list[interaction.Message], status: str) -> None:
    assert interaction.judge(messages, DAY, "/hudong").status == status


@pytest.mark.parametrize(
    ("day", "months", "later"),
    [("2026-08-31", 3, "2026-11-30"), ("2026-11-30", 3, "2027-02-28"), ("2027-11-29", 3, "2028-02-29")],
)
def test_months_are_calendar_months(day: str, months: int, later: str) -> None:
    assert interaction.add_months(dt.date.fromisoformat(day), months) == dt.date.fromisoformat(later)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("<html>", "not JSON"),
        ('{"items": []}', "not a list of messages"),
        ('[{"answered": null}]', "message 0: no received date"),
        ('[{"id": 7, "received": "last week"}]', "7 received: 'last week' is not an ISO 8601 date"),
    ],
)
def test_a_source_that_is_no_list_of_messages_is_named(body: str, why: str) -> None:
    with pytest.raises(interaction.BadSource, match=why):
        interaction.parse_messages(body)


def test_interaction_read_through_the_edge_from_a_path_on_the_site(fake_portal: str) -> None:
    settings = Settings(fake_portal, depth=0)
    report = inspect_site("portal", ["portal.lab.test"], [], settings, NOW, interaction_source="/hudong/export.json")
    item = next(i for i in report.items if i.id == "interaction")
    assert item.status == veto.FAIL
    assert item.margin == (
        "4 messages, 3 unanswered; the oldest received 2026-08-20, 105 days ago; unanswered over 3 months: 1, veto at 1"
    )
    assert item.evidence == [
        "source: /hudong/export.json",
        "OVERDUE: https://portal.lab.test/hudong/302 received 2026-08-20, unanswered 105 days (veto after 2026-11-20)",
        "at risk: https://portal.lab.test/hudong/303 received 2026-09-25, unanswered 69 days (veto after 2026-12-25)",
    ]
    assert "/hudong/export.json?preview=true" in FakePortal.asked  # read as published now, around the cache


def test_interaction_without_a_source_is_not_checked_and_a_silent_one_cannot_be_told(fake_portal: str) -> None:
    settings = Settings(fake_portal, depth=0)

    def item(interaction_source: str = "") -> veto.Item:
        report = inspect_site("portal", ["portal.lab.test"], [], settings, NOW, interaction_source=interaction_source)
        return next(i for i in report.items if i.id == "interaction")

    assert item().status == veto.NOT_CHECKED
    missing = item(interaction_source="/hudong/none.json")
    assert (missing.status, missing.margin) == (veto.UNKNOWN, "the enquiry source did not answer messages: 404")
    away = item(interaction_source=dead_url() + "/export.json")
    assert away.status == veto.UNKNOWN and "refused" in away.margin.lower()


class EnquirySystem(BaseHTTPRequestHandler):
    """Another host's enquiry system exporting its messages as JSON."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        body = (DATA / "enquiries.json").read_bytes() if self.path == "/api/export" else b"{}"
        self.send_response(200 if self.path == "/api/export" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_interaction_read_from_the_enquiry_systems_own_host(fake_portal: str) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), EnquirySystem)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    source = f"http://127.0.0.1:{server.server_address[1]}/api/export"
    try:
        report = inspect_site(
            "portal", ["portal.lab.test"], [], Settings(fake_portal, depth=0), NOW, interaction_source=source
        )
    finally:
        server.shutdown()
        server.server_close()
    item = next(i for i in report.items if i.id == "interaction")
    assert (item.status, item.evidence[0]) == (veto.FAIL, f"source: {source}")
    assert not [p for p in FakePortal.asked if "export" in p]  # not asked of the portal
