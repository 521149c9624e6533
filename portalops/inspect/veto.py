"""The indicators' single-veto items and their arithmetic: which section is which class, what is stale,
what is blank, and each item's verdict with its margin to the veto.

The thresholds are the published ones (「政府网站与政务新媒体检查指标」 2019, 单项否决指标):
- 网站不更新: the home page without a new item for 2 weeks; an item without a visible date counts as
  not updated;
- 栏目不更新: dynamic (动态、要闻) sections not updated for 2 weeks and notice/policy (通知公告、政策文件)
  sections not updated for 6 months, together 5 or more; or 10 or more sections that should be updated
  and are not (read here as any section past its class's limit, ``static`` ones after a year); or 5 or
  more blank sections (no content at all: categories without a post and pages without content).
"At risk" means a few days of silence from the veto: an item or section past its warning age, or a
count one below its threshold.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from portalops.errors import ExitCode

DYNAMIC, NOTICE, STATIC, EXEMPT = "dynamic", "notice", "static", "exempt"
CLASSES = (DYNAMIC, NOTICE, STATIC, EXEMPT)
# Days without a new item after which a section of the class is stale, and after which it is at risk.
LIMIT_DAYS = {DYNAMIC: 14, NOTICE: 180, STATIC: 365}
WARN_DAYS = {DYNAMIC: 10, NOTICE: 150, STATIC: 335}
HOME_LIMIT_DAYS, HOME_WARN_DAYS = 14, 10
STALE_UPDATABLE_VETO = 5  # dynamic + notice sections stale together
STALE_ANY_VETO = 10  # sections that should be updated and are not
BLANK_VETO = 5
# Defaults by a category's slug or name (substring, case-insensitive), in this order: a section
# named both (新闻公告) takes the stricter class.
DEFAULT_KEYWORDS = (
    (DYNAMIC, ("news", "要闻", "动态", "新闻", "工作动态", "updates")),
    (NOTICE, ("notice", "通知", "公告", "政策", "policy", "policies", "announcement")),
)

PASS, AT_RISK, FAIL, UNKNOWN, NOT_CHECKED = "pass", "at_risk", "fail", "unknown", "not_checked"
STATUS_ZH = {PASS: "通过", AT_RISK: "有风险", FAIL: "不合格", UNKNOWN: "无法判断", NOT_CHECKED: "未检查"}
_SEVERITY = {NOT_CHECKED: 0, PASS: 1, AT_RISK: 2, UNKNOWN: 3, FAIL: 4}


def worst(statuses: Iterable[str]) -> str:
    return max(statuses, key=lambda s: _SEVERITY[s], default=PASS)


@dataclass
class Section:
    """A category as an inspector sees it: its posts (with its subcategories') and the newest one."""

    id: int
    name: str
    slug: str
    link: str
    klass: str
    posts: int
    newest: dt.datetime | None  # UTC, of a post not dated in the future

    def age_days(self, now: dt.datetime) -> float | None:
        return None if self.newest is None else (now - self.newest).total_seconds() / 86400

    def stale(self, now: dt.datetime) -> bool:
        age = self.age_days(now)
        return self.klass in LIMIT_DAYS and age is not None and age >= LIMIT_DAYS[self.klass]

    def warned(self, now: dt.datetime) -> bool:
        age = self.age_days(now)
        return self.klass in WARN_DAYS and age is not None and age >= WARN_DAYS[self.klass]

    def blank(self) -> bool:
        return self.klass != EXEMPT and self.posts == 0


@dataclass
class Item:
    """One line of the self-check table."""

    id: str
    zh: str
    en: str
    veto: bool  # a single-veto item (else it costs points)
    status: str
    margin: str = ""
    evidence: list[str] = field(default_factory=list)


def check_sections(configured: Any) -> list[dict[str, str]]:
    """``portal_sites[].sections`` as given: a list of {slug or name, class}; ValueError names what is wrong."""
    if configured in (None, ""):
        return []
    if not isinstance(configured, list):
        raise ValueError("sections must be a list of {slug: ..., class: ...} or {name: ..., class: ...}")
    checked = []
    for entry in configured:
        if not isinstance(entry, dict) or not (entry.get("slug") or entry.get("name")):
            raise ValueError(f"sections entry {entry!r} names no slug or name")
        if entry.get("class") not in CLASSES:
            raise ValueError(f"sections entry {entry!r}: class must be one of {', '.join(CLASSES)}")
        checked.append({k: str(v) for k, v in entry.items() if k in ("slug", "name", "class")})
    return checked


def classify(slug: str, name: str, configured: Sequence[Mapping[str, str]] = ()) -> str:
    """The class of a category: the inventory's entry for its slug or name, else by keyword, else static."""
    for entry in configured:
        wanted = urllib.parse.unquote(entry.get("slug", "")).lower()
        if (wanted and wanted == urllib.parse.unquote(slug).lower()) or entry.get("name") == name:
            return entry["class"]
    words = f"{slug} {name}".lower()
    for klass, keywords in DEFAULT_KEYWORDS:
        if any(keyword in words for keyword in keywords):
            return klass
    return STATIC


def build_sections(
    categories: Sequence[Mapping[str, Any]],
    posts: Sequence[Mapping[str, Any]],
    now: dt.datetime,
    configured: Sequence[Mapping[str, str]] = (),
) -> list[Section]:
    """Sections from the REST API's categories and published posts: a category holds its own posts and
    its subcategories' (the category page lists them all); a post dated in the future is not news."""
    children: dict[int, list[int]] = {}
    for c in categories:
        children.setdefault(int(c.get("parent") or 0), []).append(int(c["id"]))

    def family(cid: int) -> set[int]:
        found, todo = {cid}, [cid]
        while todo:
            for child in children.get(todo.pop(), []):
                if child not in found:
                    found.add(child)
                    todo.append(child)
        return found

    sections = []
    for c in categories:
        ids = family(int(c["id"]))
        dates = [p["date"] for p in posts if ids & set(p.get("categories") or [])]
        past = [d for d in dates if d <= now]
        sections.append(
            Section(
                id=int(c["id"]),
                name=str(c.get("name", "")),
                slug=urllib.parse.unquote(str(c.get("slug", ""))),  # WordPress keeps a Chinese slug %-encoded
                link=str(c.get("link", "")),
                klass=classify(urllib.parse.unquote(str(c.get("slug", ""))), str(c.get("name", "")), configured),
                posts=max(len(dates), int(c.get("count") or 0)),  # count: its own posts only
                newest=max(past) if past else None,
            )
        )
    return sections


def _days(value: float) -> str:
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"


def home_item(dates: Sequence[dt.date], today: dt.date, url: str) -> Item:
    """网站不更新: the newest visible date on the home page (none at all counts as not updated)."""
    item = Item("site_not_updated", "网站不更新", "Site not updated", True, PASS)
    past = [d for d in dates if d <= today]
    if not past:
        item.status = FAIL
        item.margin = "no item with a visible publication date on the home page"
        item.evidence = [url]
        return item
    age = (today - max(past)).days
    item.status = FAIL if age >= HOME_LIMIT_DAYS else AT_RISK if age >= HOME_WARN_DAYS else PASS
    days = "1 day" if age == 1 else f"{age} days"
    item.margin = f"{days} since the newest item on the home page ({max(past)}), veto at {HOME_LIMIT_DAYS}"
    item.evidence = [f"{url}: newest visible date {max(past)}"]
    return item


def sections_item(sections: Sequence[Section], blank_pages: Sequence[str], now: dt.datetime) -> Item:
    """栏目不更新 and 空白栏目: the three counts, each against its veto, the worst deciding."""
    item = Item("sections_not_updated", "栏目不更新/空白栏目", "Sections not updated or blank", True, PASS)
    updatable = [s for s in sections if s.klass in (DYNAMIC, NOTICE)]
    stale_updatable = [s for s in updatable if s.stale(now)]
    warned_updatable = [s for s in updatable if s.warned(now)]
    stale_any = [s for s in sections if s.stale(now)]
    blank = [s for s in sections if s.blank()]
    blanks = len(blank) + len(blank_pages)
    statuses = [
        FAIL
        if len(stale_updatable) >= STALE_UPDATABLE_VETO
        else AT_RISK
        if len(warned_updatable) >= STALE_UPDATABLE_VETO or len(stale_updatable) == STALE_UPDATABLE_VETO - 1
        else PASS,
        FAIL if len(stale_any) >= STALE_ANY_VETO else AT_RISK if len(stale_any) == STALE_ANY_VETO - 1 else PASS,
        FAIL if blanks >= BLANK_VETO else AT_RISK if blanks == BLANK_VETO - 1 else PASS,
    ]
    item.status = worst(statuses)
    item.margin = (
        f"dynamic/notice sections stale: {len(stale_updatable)} (at warning age: {len(warned_updatable)}),"
        f" veto at {STALE_UPDATABLE_VETO}; sections stale of any class: {len(stale_any)}, veto at {STALE_ANY_VETO};"
        f" blank: {blanks}, veto at {BLANK_VETO}"
    )
    for s in sections:
        age = s.age_days(now)
        if s.klass == EXEMPT:
            continue
        if s.blank():
            item.evidence.append(f"blank section {s.name} ({s.slug}, {s.klass}): no post; {s.link}")
        elif age is None:
            item.evidence.append(f"section {s.name} ({s.slug}, {s.klass}): only posts dated in the future; {s.link}")
        elif s.warned(now):
            state = "STALE" if s.stale(now) else "at risk"
            item.evidence.append(
                f"{state}: {s.klass} section {s.name}: {_days(age)} days since the last item,"
                f" veto at {LIMIT_DAYS[s.klass]}; {s.link}"
            )
    item.evidence += [f"blank page: {url}" for url in blank_pages]
    return item


def listing_item(
    item_id: str, zh: str, en: str, veto: bool, findings: Sequence[str], status_if_found: str = FAIL, margin: str = ""
) -> Item:
    """An item that fails (or is at risk) on any finding, listing them."""
    status = status_if_found if findings else PASS
    return Item(item_id, zh, en, veto, status, margin or f"{len(findings)} found, veto at 1", list(findings))


def site_status(items: Sequence[Item]) -> str:
    """A site fails when one veto item fails; cannot be told when a veto item cannot."""
    return worst(i.status for i in items if i.veto)


def exit_status(statuses: Iterable[str]) -> ExitCode:
    """OK every site clean (at risk included), FAILED a veto item failed, else UNKNOWN (75, the house's
    "cannot tell": a site or its REST API unreachable, Prometheus not answering); BAD_INPUT (2) is the CLI's."""
    statuses = list(statuses)
    if FAIL in statuses:
        return ExitCode.FAILED
    if UNKNOWN in statuses:
        return ExitCode.UNKNOWN
    return ExitCode.OK
