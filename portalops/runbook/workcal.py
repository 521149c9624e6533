"""Working hours and response deadlines.

Working hours are Monday to Friday, 08:30-17:30 Asia/Shanghai, moved by the
State Council's holiday schedule: official holidays are off, make-up workdays
(调休) on a weekend are on. ``chinesecalendar`` carries the published
schedule; for a year it does not know yet, the ``holidays`` package (country
CN) answers instead, and the deadline says so: its make-up workdays exist only
for years whose schedule was published when it was released.
"""

# ruff: noqa: RUF001 - Chinese text keeps its own full-width punctuation on purpose

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from importlib.metadata import version
from zoneinfo import ZoneInfo

import chinese_calendar  # type: ignore[import-untyped]
import holidays

from portalops.runbook.levels import Level

TZ = ZoneInfo("Asia/Shanghai")
WORK_START = time(8, 30)
WORK_END = time(17, 30)
# The plan's "at once", as portalops measures it: within five minutes.
AT_ONCE = timedelta(minutes=5)
# A calendar without a working day for this long is broken, not a long holiday.
SEARCH_DAYS = 60


def span(seconds: float) -> str:
    """A duration as people read it: ``42 min``, ``3 h 05 min`` (the sign dropped; say early or late)."""
    minutes = int(abs(seconds) // 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def _official(day: date) -> bool | None:
    """The published schedule, or None for a year chinesecalendar has no data for."""
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        return None


@functools.lru_cache(maxsize=8)
def _holidays_cn(year: int) -> holidays.HolidayBase:
    return holidays.country_holidays("CN", years=year)


class WorkCalendar:
    """Is a day a working day, and when does a span of working time end?"""

    def __init__(self, official: Callable[[date], bool | None] = _official) -> None:
        self._official = official

    def is_workday(self, day: date) -> bool:
        known = self._official(day)
        return known if known is not None else bool(_holidays_cn(day.year).is_working_day(day))

    def source(self, day: date) -> str:
        if self._official(day) is not None:
            return f"chinesecalendar {version('chinesecalendar')} (published schedule)"
        return (
            f"holidays {version('holidays')} (CN) fallback: chinesecalendar has no {day.year} data; "
            "make-up workdays only if published before that release"
        )

    def in_working_hours(self, moment: datetime) -> bool:
        local = moment.astimezone(TZ)
        return self.is_workday(local.date()) and WORK_START <= local.time() < WORK_END

    def add_working_time(self, start: datetime, span: timedelta) -> datetime:
        """``start`` plus ``span`` counted only inside working hours (the clock stops outside them)."""
        remaining = span
        cursor = start.astimezone(TZ)
        for _ in range(SEARCH_DAYS):
            day = cursor.date()
            if self.is_workday(day):
                begin = max(cursor, datetime.combine(day, WORK_START, TZ))
                end = datetime.combine(day, WORK_END, TZ)
                if begin < end:
                    if remaining <= end - begin:
                        return (begin + remaining).astimezone(UTC)
                    remaining -= end - begin
            cursor = datetime.combine(day + timedelta(days=1), time(0), TZ)
        raise ValueError(f"no working day within {SEARCH_DAYS} days of {start.isoformat()}")


@dataclass(frozen=True)
class Rule:
    """One response deadline of a level, as the plan words it."""

    name: str  # respond | callback | onsite
    title_zh: str
    title_en: str
    text_zh: str
    text_en: str
    span: timedelta  # 0 means at once
    outside_span: timedelta | None = None  # a different span outside working hours
    working_time: bool = False  # the clock runs only in working hours

    def due(self, start: datetime, calendar: WorkCalendar) -> datetime:
        if self.working_time:
            return calendar.add_working_time(start, self.span)
        span = self.span
        if self.outside_span is not None and not calendar.in_working_hours(start):
            span = self.outside_span
        return (start + (span or AT_ONCE)).astimezone(UTC)


HOUR = timedelta(hours=1)
RULES: dict[Level, tuple[Rule, ...]] = {
    Level.L1: (
        Rule("respond", "响应", "respond", "立即", "at once", timedelta(0)),
        Rule(
            "onsite",
            "到场",
            "on site",
            "工作时间内立即，工作时间外 1 小时内",
            "at once in working hours, within 1 h outside them",
            timedelta(0),
            outside_span=HOUR,
        ),
    ),
    Level.L2: (
        Rule("callback", "回电", "call back", "15 分钟内", "within 15 min", timedelta(minutes=15)),
        Rule("onsite", "到场", "on site", "1 个工作小时内", "within 1 h of working time", HOUR, working_time=True),
    ),
    Level.L3: (
        Rule("callback", "回电", "call back", "30 分钟内", "within 30 min", timedelta(minutes=30)),
        Rule(
            "onsite",
            "到场",
            "on site",
            "2 个工作小时内，或按约定",
            "within 2 h of working time, or as agreed",
            2 * HOUR,
            working_time=True,
        ),
    ),
}


@dataclass(frozen=True)
class Deadline:
    rule: Rule
    due: datetime  # UTC

    def as_dict(self) -> dict[str, str]:
        return {
            "name": self.rule.name,
            "title_zh": self.rule.title_zh,
            "title_en": self.rule.title_en,
            "rule_zh": self.rule.text_zh,
            "rule_en": self.rule.text_en,
            "due": self.due.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


def deadlines(level: Level, start: datetime, calendar: WorkCalendar) -> list[Deadline]:
    """The response deadlines of an incident of ``level`` that started at ``start``."""
    return [Deadline(rule, rule.due(start, calendar)) for rule in RULES[level]]


def local_text(moment: datetime) -> str:
    """A time as the people on call read it: Beijing time."""
    return moment.astimezone(TZ).strftime("%Y-%m-%d %H:%M %a (UTC+8)")
