"""Response deadlines on China's working calendar: weekday, weekend, holiday, make-up workday."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from portalops.runbook.levels import Level
from portalops.runbook.workcal import TZ, WorkCalendar, deadlines

CAL = WorkCalendar()


def beijing(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=TZ)


def due(level: Level, start: datetime) -> dict[str, datetime]:
    return {d.rule.name: d.due.astimezone(TZ) for d in deadlines(level, start, CAL)}


def test_weekday_in_working_hours() -> None:
    start = beijing(2026, 3, 10, 10, 0)  # Tuesday
    assert CAL.in_working_hours(start)
    assert due(Level.L1, start) == {"respond": start + timedelta(minutes=5), "onsite": start + timedelta(minutes=5)}
    assert due(Level.L2, start) == {"callback": beijing(2026, 3, 10, 10, 15), "onsite": beijing(2026, 3, 10, 11, 0)}
    assert due(Level.L3, start) == {"callback": beijing(2026, 3, 10, 10, 30), "onsite": beijing(2026, 3, 10, 12, 0)}


def test_weekday_evening_counts_on_site_in_working_time() -> None:
    start = beijing(2026, 3, 10, 17, 0)
    assert due(Level.L1, beijing(2026, 3, 10, 20, 0))["onsite"] == beijing(2026, 3, 10, 21, 0)
    # 30 minutes left today, the other 30 from 08:30 tomorrow.
    assert due(Level.L2, start)["onsite"] == beijing(2026, 3, 11, 9, 0)


def test_weekend() -> None:
    start = beijing(2026, 3, 14, 10, 0)  # Saturday
    assert not CAL.in_working_hours(start)
    assert due(Level.L1, start)["onsite"] == beijing(2026, 3, 14, 11, 0)
    assert due(Level.L2, start) == {"callback": beijing(2026, 3, 14, 10, 15), "onsite": beijing(2026, 3, 16, 9, 30)}
    assert due(Level.L3, start)["onsite"] == beijing(2026, 3, 16, 10, 30)


def test_official_holiday_on_a_weekday() -> None:
    start = beijing(2026, 10, 2, 10, 0)  # Friday in the National Day holiday (Oct 1-7)
    assert not CAL.is_workday(start.date())
    assert due(Level.L1, start)["onsite"] == beijing(2026, 10, 2, 11, 0)
    assert due(Level.L2, start)["onsite"] == beijing(2026, 10, 8, 9, 30)


def test_make_up_workday_on_a_weekend() -> None:
    start = beijing(2026, 2, 14, 10, 0)  # Saturday, worked for the Spring Festival
    assert CAL.in_working_hours(start)
    assert due(Level.L1, start)["onsite"] == start + timedelta(minutes=5)
    assert due(Level.L2, start)["onsite"] == beijing(2026, 2, 14, 11, 0)
    # From Friday 17:00 the working clock runs 30 min, stops, and goes on on the make-up Saturday.
    assert due(Level.L3, beijing(2026, 2, 13, 17, 0))["onsite"] == beijing(2026, 2, 14, 10, 0)


@pytest.mark.parametrize(
    ("day", "workday"),
    [(date(2026, 10, 1), False), (date(2026, 10, 10), True), (date(2026, 10, 11), False), (date(2026, 10, 12), True)],
)
def test_holidays_fallback_knows_the_published_2026_schedule(day: date, workday: bool) -> None:
    fallback = WorkCalendar(official=lambda _: None)
    assert fallback.is_workday(day) is workday
    assert "fallback" in fallback.source(day)


def test_a_year_chinesecalendar_lacks_falls_back_and_says_so() -> None:
    assert not CAL.is_workday(date(2027, 1, 1))  # New Year's Day, from holidays
    assert CAL.is_workday(date(2027, 1, 4))
    assert "chinesecalendar has no 2027 data" in CAL.source(date(2027, 1, 1))
    assert CAL.source(date(2026, 5, 1)).startswith("chinesecalendar")


def test_deadlines_are_utc() -> None:
    for deadline in deadlines(Level.L2, beijing(2026, 3, 10, 10, 0), CAL):
        assert deadline.due.utcoffset() == timedelta(0)
        assert deadline.as_dict()["due"].endswith("Z")
