"""Billing periods: calendar months in the billing time zone (Asia/Shanghai, UTC+8, no DST)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone

PERIOD_RE = re.compile(r"^([0-9]{4})-(0[1-9]|1[0-2])$")


def zone(utc_offset_hours: float) -> timezone:
    """The billing time zone as a fixed offset (China keeps UTC+8 all year)."""
    return timezone(timedelta(hours=utc_offset_hours))


@dataclass(frozen=True, order=True)
class Period:
    """One billing month."""

    year: int
    month: int

    @property
    def name(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def start(self, tz: timezone) -> datetime:
        return datetime(self.year, self.month, 1, tzinfo=tz).astimezone(UTC)

    def end(self, tz: timezone) -> datetime:
        return self.next().start(tz)

    def next(self) -> Period:
        return Period(self.year + self.month // 12, self.month % 12 + 1)

    def previous(self) -> Period:
        return Period(self.year - 1, 12) if self.month == 1 else Period(self.year, self.month - 1)


def parse(name: str) -> Period:
    match = PERIOD_RE.match(name)
    if match is None:
        raise ValueError(f"{name!r} is not a billing period; write YYYY-MM, e.g. 2027-01")
    return Period(int(match[1]), int(match[2]))


def period_of(moment: datetime, tz: timezone) -> Period:
    local = moment.astimezone(tz)
    return Period(local.year, local.month)


def year_of(moment: datetime, tz: timezone) -> int:
    return moment.astimezone(tz).year


def year_bounds(year: int, tz: timezone) -> tuple[datetime, datetime]:
    return (
        datetime(year, 1, 1, tzinfo=tz).astimezone(UTC),
        datetime(year + 1, 1, 1, tzinfo=tz).astimezone(UTC),
    )


def day_start(day: date, tz: timezone) -> datetime:
    """00:00 of `day` in the billing time zone, as UTC."""
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)
