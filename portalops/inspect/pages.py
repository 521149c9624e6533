"""What a page shows a reader: its visible text, the dates in it, its links, an error text in a 200.

Pure functions over HTML as received, so recorded pages test them (tests/unit/data/inspect/).
"""

from __future__ import annotations

import datetime as dt
import re
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser

# Text a page answering 200 must not show: WordPress' and PHP's failures, a web server's error page
# rendered as content, the Chinese wording of the same. Regular expressions, case-insensitive; the
# inventory's portalops_inspect_error_patterns replaces them.
DEFAULT_ERROR_PATTERNS = (
    r"Error establishing a database connection",
    r"建立数据库连接时出错",
    r"数据库连接错误",
    r"There has been a critical error on this website",
    r"此网站出现严重错误",
    r"(?:Fatal|Parse) error\s*:.{0,200}? on line \d+",
    r"\b404 Not Found\b",
    r"\b50[0234] (?:Internal Server Error|Bad Gateway|Service Unavailable|Gateway Time-?out)\b",
    r"页面不存在",
    r"页面未找到",
)
# Elements whose text a reader never sees.
_HIDDEN = frozenset({"script", "style", "head", "template", "noscript", "svg"})
# Where links are: (element, attribute). Anchors lead to pages (followed when crawling); the others
# are resources the page needs (checked, never parsed).
_LINK_ATTRS = {"a": "href", "area": "href", "img": "src", "script": "src", "iframe": "src", "source": "src"}
_SKIP_SCHEMES = ("mailto:", "tel:", "javascript:", "data:", "sms:", "ftp:")


@dataclass(frozen=True)
class Link:
    url: str  # absolute, without its fragment
    page: bool  # an anchor: a page to follow; else a resource (image, script, style sheet)


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.hidden = 0
        self.raw_links: list[tuple[str, bool]] = []
        self.times: list[str] = []
        self.base = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag in _HIDDEN:
            self.hidden += 1
        if tag == "body":  # whatever the head left open, the body is seen
            self.hidden = 0
        if tag == "base" and values.get("href"):
            self.base = values["href"]
        attr = _LINK_ATTRS.get(tag)
        if attr and values.get(attr):
            self.raw_links.append((values[attr], tag in ("a", "area")))
        if tag == "link" and values.get("href") and "stylesheet" in values.get("rel", "").lower().split():
            self.raw_links.append((values["href"], False))
        if tag == "time" and values.get("datetime") and not self.hidden:
            self.times.append(values["datetime"])
        if tag in ("br", "p", "div", "li", "tr", "td", "h1", "h2", "h3", "h4", "h5", "h6", "time", "span"):
            self.text.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag in _HIDDEN:
            self.hidden -= 1

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN and self.hidden:
            self.hidden -= 1
        self.text.append(" ")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.text.append(data)


def _read(html_text: str) -> _Reader:
    reader = _Reader()
    reader.feed(html_text)
    reader.close()
    return reader


def visible_text(html_text: str) -> str:
    """The page's text as a reader sees it (no scripts, styles or head), whitespace collapsed."""
    return " ".join("".join(_read(html_text).text).split())


def links(html_text: str, page_url: str) -> list[Link]:
    """Every link of the page, absolute (against ``<base href>`` or ``page_url``), once each, in order;
    without fragments, mail, phone and script links."""
    reader = _read(html_text)
    base = urllib.parse.urljoin(page_url, reader.base) if reader.base else page_url
    found: dict[str, Link] = {}
    for raw, page in reader.raw_links:
        href = raw.strip()
        if not href or href.startswith("#") or href.lower().startswith(_SKIP_SCHEMES):
            continue
        url = urllib.parse.urldefrag(urllib.parse.urljoin(base, href)).url
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            continue
        if url not in found or (page and not found[url].page):
            found[url] = Link(url, page)
    return list(found.values())


_EN_MONTHS = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}
_DATE_PATTERNS = (
    # 2026年12月3日, 2026-12-03, 2026/12/03, 2026.12.03 (a time may follow; it is not needed)
    re.compile(
        r"(?<!\d)(?P<y>(?:19|20)\d{2})\s*(?:年\s*|[-/.])(?P<m>\d{1,2})\s*(?:月\s*|[-/.])(?P<d>\d{1,2})(?:\s*日)?(?!\d)"
    ),
    # December 3, 2026 / Dec 3, 2026
    re.compile(r"\b(?P<mon>[A-Z][a-z]{2})[a-z]*\.?\s+(?P<d>\d{1,2}),?\s+(?P<y>(?:19|20)\d{2})\b"),
    # 3 December 2026
    re.compile(r"\b(?P<d>\d{1,2})\s+(?P<mon>[A-Z][a-z]{2})[a-z]*\.?\s+(?P<y>(?:19|20)\d{2})\b"),
)


# A date that is the clock, not an item: many portals print today's date in their header.
_TODAY = re.compile(r"(今天是|今天|今日|当前日期|today is|today)\W{0,3}$", re.IGNORECASE)


def visible_dates(html_text: str) -> list[dt.date]:
    """The calendar dates a reader sees on the page (Chinese, ISO-like and English forms, and the
    ``datetime`` of visible ``<time>`` elements), each once, newest first. A page's item "has a visible
    publication time" when its date is among these; month-day-only dates ("[12-03]") are not read, nor
    a header's "今天是 2026年12月3日" (the clock, not an item)."""
    reader = _read(html_text)
    text = " ".join("".join(reader.text).split())
    found: set[dt.date] = set()
    for pattern in _DATE_PATTERNS:
        for match in pattern.finditer(text):
            if _TODAY.search(text[max(0, match.start() - 12) : match.start()]):
                continue
            groups = match.groupdict()
            month = int(groups["m"]) if groups.get("m") else _EN_MONTHS.get(groups.get("mon", "").lower(), 0)
            try:
                found.add(dt.date(int(groups["y"]), month, int(groups["d"])))
            except ValueError:
                continue
    for value in reader.times:
        try:
            found.add(dt.date.fromisoformat(value.strip()[:10]))
        except ValueError:
            continue
    return sorted(found, reverse=True)


def compile_patterns(patterns: Iterable[str]) -> list[re.Pattern[str]]:
    """Error-text patterns, case-insensitive; a bad one is named (it comes from the inventory)."""
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern, re.IGNORECASE | re.DOTALL))
        except re.error as exc:
            raise ValueError(f"error-text pattern {pattern!r}: {exc}") from exc
    return compiled


def error_texts(html_text: str, patterns: Sequence[re.Pattern[str]]) -> list[str]:
    """The error texts the page shows (each pattern's first match in its visible text and its title)."""
    reader = _read(html_text)
    title = re.search(r"<title[^>]*>(.*?)</title>", html_text, re.IGNORECASE | re.DOTALL)
    text = " ".join(("".join(reader.text) + " " + (title.group(1) if title else "")).split())
    found = []
    for pattern in patterns:
        match = pattern.search(text)
        if match:
            found.append(match.group(0)[:120])
    return found


def is_blank(html_text: str) -> bool:
    """No text and nothing to see (image, video, embedded frame, table, link): a blank page."""
    if visible_text(html_text):
        return False
    return not re.search(r"<(img|video|audio|iframe|embed|object|table|a)\b", html_text, re.IGNORECASE)
