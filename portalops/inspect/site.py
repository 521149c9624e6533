"""Inspect one site: read it through the edge (home page, a crawl, the REST API) and judge every item.

The REST API (``/?rest_route=/wp/v2/...``, which works with plain permalinks as with pretty ones)
gives every published post with its date and categories and every page with its content, exactly
and in a few requests; the crawl from the home page gives what only the pages show: the visible
dates, broken links, error texts in a 200.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from portalops.inspect import availability, interaction, pages, scheduled, veto
from portalops.inspect.edge import Answer, Edge
from portalops.inspect.personal import find_personal_data
from portalops.inspect.words import WordMatcher
from portalops.monitoring import api
from portalops.probe import CACHE_BYPASS

POST_FIELDS = "id,date_gmt,status,link,categories,title,content"
PAGE_FIELDS = "id,link,title,content"
CATEGORY_FIELDS = "id,name,slug,parent,count,link"
PER_PAGE = 100
MAX_REST_PAGES = 100  # 10,000 posts: past that the count is said to be partial
# Host names that never resolve (RFC 6761, 6.4): a link to one is broken, known without a request.
NEVER_RESOLVES = ("invalid",)
# Never requested while crawling: the login page is rate limited at the edge, the admin redirects to it.
SKIP_PATHS = re.compile(r"^/(wp-admin/|wp-login\.php|xmlrpc\.php|wp-cron\.php)")
ErrorPatterns = Sequence[re.Pattern[str]]
REDIRECTS = (301, 302, 303, 307, 308)


@dataclass
class Settings:
    """How to inspect: what the inventory says and the crawl's limits."""

    public_url: str
    cafiles: Sequence[str] = ()
    words: Sequence[str] = ()
    error_patterns: Sequence[str] = pages.DEFAULT_ERROR_PATTERNS
    depth: int = 2
    max_requests: int = 300
    time_budget: float = 120.0
    timeout: float = 15.0


@dataclass
class SiteReport:
    site: str
    domain: str
    url: str
    status: str
    items: list[veto.Item]
    sections: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    availability_7d: availability.Figure = availability.NOT_MEASURED


class Unreadable(Exception):
    """The REST API did not answer what it must; the items that need it cannot be told."""


def rest(edge: Edge, route: str, params: str) -> list[dict[str, Any]]:
    """Every item of a REST collection, page by page (``X-WP-TotalPages``)."""
    items: list[dict[str, Any]] = []
    page = 1
    while True:
        answer = edge.get(f"/?rest_route={route}&per_page={PER_PAGE}&page={page}&{params}")
        if not answer.ok:
            raise Unreadable(f"{route}: {answer.status or answer.error}")
        try:
            data = json.loads(answer.body)
        except json.JSONDecodeError as exc:
            raise Unreadable(f"{route}: not JSON ({exc})") from exc
        if not isinstance(data, list):
            raise Unreadable(f"{route}: not a list")
        items += data
        total = int(answer.headers.get("x-wp-totalpages") or 1)
        if page >= total or page >= MAX_REST_PAGES:
            return items
        page += 1


def parse_gmt(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)


def site_offset(edge: Edge) -> dt.timedelta:
    """The site's UTC offset from the REST index (gmt_offset, hours), for the dates its pages show;
    China's +8 when it does not say."""
    answer = edge.get("/?rest_route=/&_fields=gmt_offset")
    try:
        return dt.timedelta(hours=float(json.loads(answer.body)["gmt_offset"]))
    except (ValueError, KeyError, TypeError):
        return dt.timedelta(hours=8)


def _local(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.path or '/'}?{parts.query}"


def without_bypass(url: str) -> str:
    """``url`` without the edge-cache bypass, which WordPress echoes into the links of a page asked with it
    (``?preview=true&paged=2``)."""
    parts = urllib.parse.urlsplit(url)
    name, _, value = CACHE_BYPASS.partition("=")
    kept = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True) if (k, v) != (name, value)]
    if len(kept) == len(urllib.parse.parse_qsl(parts.query, keep_blank_values=True)):
        return url
    return parts._replace(query=urllib.parse.urlencode(kept)).geturl()


@dataclass
class Crawl:
    pages: int = 0
    checked: int = 0
    broken: list[str] = field(default_factory=list)
    error_pages: list[str] = field(default_factory=list)
    external: set[str] = field(default_factory=set)
    unresolvable: set[str] = field(default_factory=set)  # external links to a name that never resolves
    unchecked: int = 0  # internal links left when the budget ran out


def crawl(
    edge: Edge,
    home: Answer,
    domains: Sequence[str],
    patterns: ErrorPatterns,
    depth: int,
    max_requests: int,
    deadline: float,
    clock: Callable[[], float] = time.monotonic,
) -> Crawl:
    """Links from the home page down to ``depth`` (1: the home page's links), each internal one fetched
    once; pages (anchors to HTML) parsed for further links and error texts. External links are counted,
    never requested: no request leaves the portal; one to a name that never resolves (``.invalid``) is
    broken, which needs no request to know."""
    result = Crawl()
    hosts = {d.lower() for d in domains}
    # A page of the site is its path and query: its domains (and http, which the edge redirects) serve the same.
    seen: set[str] = {_local(home.url)}
    queue: deque[tuple[str, bool, int, str]] = deque()

    def enqueue(answer: Answer, level: int) -> None:
        for link in pages.links(answer.text(), answer.url):
            url = without_bypass(link.url)
            parts = urllib.parse.urlsplit(url)
            host = (parts.hostname or "").lower()
            if host not in hosts:
                if host.rsplit(".", 1)[-1] not in NEVER_RESOLVES:
                    result.external.add(url)
                elif url not in result.unresolvable:
                    result.unresolvable.add(url)
                    result.broken.append(f"{url} (the name never resolves: reserved, RFC 6761) on {answer.url}")
                continue
            if SKIP_PATHS.match(parts.path) or _local(url) in seen:
                continue
            seen.add(_local(url))
            queue.append((url, link.page, level, answer.url))

    def look(answer: Answer) -> None:
        result.pages += 1
        found = pages.error_texts(answer.text(), patterns)
        if found:
            result.error_pages.append(f"{answer.url}: HTTP {answer.status} showing {'; '.join(found)}")

    look(home)
    if depth >= 1:
        enqueue(home, 1)
    while queue:
        if edge.requests >= max_requests or clock() >= deadline:
            result.unchecked = len(queue)
            break
        url, is_page, level, parent = queue.popleft()
        answer = edge.get(url)
        hops = 0
        while answer.status in REDIRECTS and hops < 5:
            target = urllib.parse.urljoin(answer.url, answer.headers.get("location", ""))
            if (urllib.parse.urlsplit(target).hostname or "").lower() not in hosts:
                break  # off the site: the link itself works
            if _local(target) == _local(answer.url):
                # WordPress sends an anonymous preview of a published post to the post itself: the
                # bypass alone was refused, so the page is read as visitors get it (maybe from the cache).
                answer, hops = edge.get(target, fresh=False), hops + 1
                break
            answer, hops = edge.get(target), hops + 1
        result.checked += 1
        if answer.status is None or answer.status >= 400:
            result.broken.append(f"{url} ({answer.status or answer.error}) on {parent}")
            continue
        if is_page and answer.ok and answer.is_html():
            look(answer)
            if level < depth:
                enqueue(answer, level + 1)
    return result


def rendered(item: dict[str, Any], key: str) -> str:
    """A REST item's rendered ``title`` or ``content`` (HTML, as the site shows it)."""
    return str((item.get(key) or {}).get("rendered", ""))


def item_text(item: dict[str, Any]) -> str:
    """The visible text of a REST post or page, title and content: what the content checks read."""
    return pages.visible_text(rendered(item, "title")) + "\n" + pages.visible_text(rendered(item, "content"))


def scan_content(
    posts: Sequence[dict[str, Any]], page_items: Sequence[dict[str, Any]], matcher: WordMatcher
) -> tuple[list[str], list[str], list[str], list[str]]:
    """Sensitive words, ID numbers, mobile numbers in the titles and content of published posts and
    pages; and the blank pages."""
    words: list[str] = []
    ids: list[str] = []
    mobiles: list[str] = []
    blank: list[str] = []
    for is_page, item in [*((False, p) for p in posts), *((True, p) for p in page_items)]:
        content = rendered(item, "content")
        text = item_text(item)
        link = str(item.get("link", ""))
        if matcher:
            found = matcher.words_in(text)
            if found:
                words.append(f"{link}: {', '.join(found)}")
        for data in find_personal_data(text):
            (ids if data.kind == "id_card" else mobiles).append(f"{link}: {data.kind} {data.masked}")
        if is_page and pages.is_blank(content):
            blank.append(link)
    return words, ids, mobiles, blank


def interaction_item(edge: Edge, domains: Sequence[str], source: str, today: dt.date) -> veto.Item:
    """互动回应差 from the configured source: on the site (a path or one of its domains) through the edge,
    elsewhere (the enquiry system's own host) as plain JSON over http(s)."""
    if not source:
        return interaction.not_configured()
    host = (urllib.parse.urlsplit(source).hostname or "").lower()
    if source.startswith("/") or host in {d.lower() for d in domains}:
        answer = edge.get(source)
        if not answer.ok:
            return interaction.unreadable(answer.url, f"{answer.status or answer.error}")
        body = answer.text()
    else:
        try:
            body = json.dumps(api.get_json(source, edge.timeout))
        except api.Unreachable as exc:
            return interaction.unreadable(source, str(exc))
    try:
        messages = interaction.parse_messages(body)
    except interaction.BadSource as exc:
        return interaction.unreadable(source, str(exc))
    return interaction.judge(messages, today, source)


def _unknown(item: veto.Item, why: str) -> veto.Item:
    item.status, item.margin = veto.UNKNOWN, why
    return item


def inspect_site(
    name: str,
    domains: Sequence[str],
    configured_sections: Sequence[dict[str, str]],
    settings: Settings,
    now: dt.datetime,
    clock: Callable[[], float] = time.monotonic,
    figure: availability.Figure = availability.NOT_MEASURED,
    interaction_source: str = "",
    held_back: scheduled.Scheduled | None = None,
) -> SiteReport:
    """``figure``: the site's 7-day availability as the monitoring recorded it (:func:`availability.read`);
    ``interaction_source``: where its enquiry section's messages are read (:mod:`interaction`), if it has one;
    ``held_back``: its scheduled posts as read in its WordPress (:func:`scheduled.read_sites`), if they were."""
    started = clock()
    edge = Edge(settings.public_url, domains[0], settings.cafiles, settings.timeout)
    report = SiteReport(name, domains[0], edge.base, veto.PASS, [], availability_7d=figure)
    items = report.items
    home = edge.get("/")
    reachable = home.ok and bool(home.body)
    answer = f"HTTP {home.status}" if home.status else f"no answer ({home.error})"
    items.append(availability.item(figure, answer + ("" if reachable else ", nothing to read"), reachable))
    if not reachable:
        why = f"the home page did not answer: {home.status or home.error}"
        for item_id, zh, en in (
            ("site_not_updated", "网站不更新", "Site not updated"),
            ("sections_not_updated", "栏目不更新/空白栏目", "Sections not updated or blank"),
            ("serious_errors", "严重表述错误", "Serious errors"),
        ):
            items.append(_unknown(veto.Item(item_id, zh, en, True, veto.UNKNOWN), why))
        report.status = veto.site_status(items)
        edge.close()
        return report
    patterns = pages.compile_patterns(settings.error_patterns)
    offset = site_offset(edge)
    today = (now + offset).date()
    dates = pages.visible_dates(home.text())
    items.append(veto.home_item(dates, today, edge.base))
    matcher = WordMatcher(settings.words)
    try:
        categories = rest(edge, "/wp/v2/categories", f"_fields={CATEGORY_FIELDS}")
        posts = rest(edge, "/wp/v2/posts", f"_fields={POST_FIELDS}")
        page_items = rest(edge, "/wp/v2/pages", f"_fields={PAGE_FIELDS}")
    except Unreadable as exc:
        why = f"the REST API did not answer: {exc}"
        for item_id, zh, en in (
            ("sections_not_updated", "栏目不更新/空白栏目", "Sections not updated or blank"),
            ("sensitive_content", "严重表述错误: 敏感/违禁内容", "Serious errors: sensitive content"),
            ("personal_data", "严重表述错误: 泄露个人信息", "Serious errors: personal data"),
            ("future_dates", "严重表述错误: 发布日期造假", "Serious errors: falsified (future) dates"),
        ):
            items.append(_unknown(veto.Item(item_id, zh, en, True, veto.UNKNOWN), why))
        categories, posts, page_items = [], [], []
    else:
        for post in posts:
            post["date"] = parse_gmt(str(post["date_gmt"]))
        sections = veto.build_sections(categories, posts, now, configured_sections)
        words, ids, mobiles, blank_pages = scan_content(posts, page_items, matcher)
        items.append(veto.sections_item(sections, blank_pages, now))
        report.sections = [
            {
                "name": s.name,
                "slug": s.slug,
                "class": s.klass,
                "posts": s.posts,
                "newest_utc": s.newest.isoformat() if s.newest else None,
                "age_days": round(age, 1) if (age := s.age_days(now)) is not None else None,
                "stale": s.stale(now),
                "blank": s.blank(),
                "link": s.link,
            }
            for s in sections
        ]
        sensitive = veto.listing_item(
            "sensitive_content", "严重表述错误: 敏感/违禁内容", "Serious errors: sensitive content", True, words
        )
        if not matcher:
            sensitive.status = veto.NOT_CHECKED
            sensitive.margin = "the inventory's portalops_sensitive_words is empty: no word to look for"
        items.append(sensitive)
        personal = veto.listing_item(
            "personal_data", "严重表述错误: 泄露个人信息", "Serious errors: personal data", True, ids + mobiles
        )
        if not ids and mobiles:  # an office's published contact number is no leak: a person reads them
            personal.status = veto.AT_RISK
            personal.margin = f"{len(mobiles)} mobile numbers to review (an official contact is no leak); no ID number"
        items.append(personal)
        future = scheduled.falsified(posts, now)
        future += [f"{edge.base}: home page shows the date {d}" for d in dates if d > today]
        items.append(
            veto.listing_item(
                "future_dates", "严重表述错误: 发布日期造假", "Serious errors: falsified (future) dates", True, future
            )
        )
    items.append(scheduled.item(held_back, now))
    items.append(interaction_item(edge, domains, interaction_source, today))
    found = crawl(
        edge,
        home,
        domains,
        patterns,
        settings.depth,
        settings.max_requests,
        started + settings.time_budget,
        clock,
    )
    budget = f"; {found.unchecked} internal links left unchecked (request or time budget)" if found.unchecked else ""
    dead = len(found.unresolvable)
    unresolvable = f"; {dead} external links to a name that never resolves (.invalid), broken" if dead else ""
    items.append(
        veto.listing_item(
            "broken_links",
            "链接不可用 (扣分)",
            "Broken links (points)",
            False,
            found.broken,
            margin=f"{len(found.broken) - dead} of {found.checked} internal links broken, depth {settings.depth}"
            f"{budget}{unresolvable}; {len(found.external)} external links not requested (nothing leaves the portal)",
        )
    )
    items.append(
        veto.listing_item(
            "error_pages",
            "页面报错 (扣分)",
            "Pages showing an error text (points)",
            False,
            found.error_pages,
            margin=f"{len(found.error_pages)} of {found.pages} pages read",
        )
    )
    edge.close()
    report.status = veto.site_status(items)
    report.stats = {
        "requests": edge.requests,
        "request_seconds": round(edge.seconds, 2),
        "seconds": round(clock() - started, 2),
        "categories": len(categories),
        "posts": len(posts),
        "pages": len(page_items),
        "pages_crawled": found.pages,
        "links_checked": found.checked,
        "external_links": len(found.external),
        "unchecked_links": found.unchecked,
        "sensitive_words": len(matcher.words),
    }
    return report
