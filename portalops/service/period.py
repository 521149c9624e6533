"""A report's period: a month (2026-11), a quarter (2026-Q4) or a year (2026), in Beijing time.

The information centre's days start at midnight UTC+8, so every bound is a Beijing midnight.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from portalops.errors import BadInput
from portalops.runbook.workcal import TZ

_FORMS = re.compile(r"^(?P<year>\d{4})(?:-(?:(?P<month>\d{2})|[Qq](?P<quarter>\d)))?$")


@dataclass(frozen=True)
class Period:
    id: str  # 2026-11 | 2026-Q4 | 2026
    kind: str  # month | quarter | year
    first: date  # the first day
    last: date  # the last day (inclusive)

    @property
    def start(self) -> datetime:
        return datetime(self.first.year, self.first.month, self.first.day, tzinfo=TZ)

    @property
    def end(self) -> datetime:
        """The Beijing midnight after the last day (exclusive)."""
        after = self.last + timedelta(days=1)
        return datetime(after.year, after.month, after.day, tzinfo=TZ)

    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.end

    def months(self) -> list[tuple[int, int]]:
        return sorted({(d.year, d.month) for d in self.days()})


def _month_end(year: int, month: int) -> date:
    return (date(year + month // 12, month % 12 + 1, 1)) - timedelta(days=1)


def parse_period(text: str) -> Period:
    """``2026-11``, ``2026-Q4`` or ``2026``; anything else (``2026-13``, ``2026-Q5``) is BadInput."""
    found = _FORMS.match(text.strip())
    year = int(found["year"]) if found else 0
    if not found or not 2000 <= year <= 2999:
        raise BadInput(f"--period {text!r}: wanted a month (2026-11), a quarter (2026-Q4) or a year (2026)")
    if found["month"]:
        month = int(found["month"])
        if not 1 <= month <= 12:
            raise BadInput(f"--period {text!r}: there is no month {month}; months are 01 to 12")
        return Period(f"{year}-{month:02d}", "month", date(year, month, 1), _month_end(year, month))
    if found["quarter"]:
        quarter = int(found["quarter"])
        if not 1 <= quarter <= 4:
            raise BadInput(f"--period {text!r}: there is no quarter {quarter}; quarters are Q1 to Q4")
        first = 3 * quarter - 2
        return Period(f"{year}-Q{quarter}", "quarter", date(year, first, 1), _month_end(year, first + 2))
    return Period(str(year), "year", date(year, 1, 1), date(year, 12, 31))
