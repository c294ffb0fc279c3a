"""Accrual (pure): one metering tick turns [lastSampleTime, now) of usage into report status.

The increment is computed from the report's own status (lastSampleTime and the sums so
far), never from memory, so a restarted operator continues where the report says and a
tick that is retried after a conflict cannot count an interval twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from govcloud.billing import rating, usage

HOUR = Decimal(3600)
STORED = Decimal("1e-9")  # unit-hours and CNY are kept to 9 decimals between ticks
FEN = Decimal("0.01")
ZERO = Decimal(0)


def fmt(value: Decimal, places: Decimal = STORED) -> str:
    """A decimal as plain text, rounded to `places`, without trailing zeros (12.5, 0, 3.14)."""
    text = format(value.quantize(places, rounding=ROUND_HALF_UP), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def money(value: Decimal) -> str:
    """CNY to the fen, always two decimals: 12.50."""
    return format(value.quantize(FEN, rounding=ROUND_HALF_UP), "f")


def timestamp(moment: datetime) -> str:
    """`moment` as RFC 3339 with microseconds (what strftime("%Y-%m-%dT%H:%M:%S.%fZ") gives,
    written out: strftime costs more than the rest of a report's status together)."""
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:"
        f"{moment.minute:02d}:{moment.second:02d}.{moment.microsecond:06d}Z"
    )


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class Line:
    """One resource of a report: unit-hours allocated and requested, exact charge."""

    resource: str
    unit: str
    allocated_hours: Decimal = ZERO
    requested_hours: Decimal = ZERO
    amount: Decimal = ZERO

    @property
    def charge(self) -> Decimal:
        return self.amount.quantize(FEN, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Report:
    """The accruing state of one UsageReport, as stored in its status."""

    last_sample: datetime
    lines: Mapping[str, Line] = field(default_factory=dict)
    samples: int = 0
    first_sample: datetime | None = None
    gap_seconds: Decimal = ZERO
    unrated: tuple[str, ...] = ()
    unmetered_seconds: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        return sum((line.charge for line in self.lines.values()), start=ZERO)


def from_status(status: Mapping[str, Any], default_start: datetime) -> Report:
    lines = {}
    for item in status.get("resources") or []:
        lines[item["resource"]] = Line(
            resource=item["resource"],
            unit=item.get("unit") or rating.unit_of(item["resource"])[1],
            allocated_hours=Decimal(item.get("allocatedHours") or "0"),
            requested_hours=Decimal(item.get("requestedHours") or "0"),
            amount=Decimal(item.get("amount") or "0"),
        )
    return Report(
        last_sample=parse_time(status.get("lastSampleTime")) or default_start,
        lines=lines,
        samples=int(status.get("samples") or 0),
        first_sample=parse_time(status.get("firstSampleTime")),
        gap_seconds=Decimal(status.get("gapSeconds") or "0"),
        unrated=tuple(status.get("unratedResources") or ()),
        unmetered_seconds=Decimal(status.get("unmeteredSeconds") or "0"),
    )


def metered_resources(table: rating.RateTable, points: Sequence[usage.Point]) -> list[str]:
    """What a report carries: everything the card prices, and every requested resource."""
    seen = set(table.resources())
    for point in points:
        seen.update(resource for resource in point.used if rating.is_requested(resource))
        seen.update(resource for resource in point.hard if rating.is_requested(resource))
    return sorted(seen)


def accrue(
    report: Report,
    points: Sequence[usage.Point],
    end: datetime,
    table: rating.RateTable,
    tier: str,
) -> Report:
    """The report after accruing [report.last_sample, end) of the usage step function."""
    start = report.last_sample
    if end <= start or not points:
        return report
    multiplier = table.multiplier(tier)
    lines = dict(report.lines)
    unrated: set[str] = set()
    whole = usage.integrate(points, start, end)
    integrals: dict[tuple[datetime, datetime], usage.Integral] = {(start, end): whole}
    for resource in metered_resources(table, points):
        divisor, unit = rating.unit_of(resource)
        line = lines.get(resource) or Line(resource, unit)
        segments = table.segments(resource, start, end)
        allocated, requested, amount = line.allocated_hours, line.requested_hours, line.amount
        for segment in segments:
            key = (segment.start, segment.end)
            if key not in integrals:
                integrals[key] = usage.integrate(points, segment.start, segment.end)
            integral = integrals[key]
            hard_hours = integral.hard.get(resource, ZERO) / divisor / HOUR
            used_hours = integral.used.get(resource, ZERO) / divisor / HOUR
            allocated += hard_hours
            requested += used_hours
            if segment.price is not None:
                amount += used_hours * segment.price * multiplier
            elif used_hours > 0:
                unrated.add(resource)
        lines[resource] = Line(
            resource,
            line.unit,
            allocated_hours=allocated.quantize(STORED),
            requested_hours=requested.quantize(STORED),
            amount=amount.quantize(STORED),
        )
    return Report(
        last_sample=end,
        lines=lines,
        samples=report.samples + 1,
        first_sample=report.first_sample or start,
        gap_seconds=(report.gap_seconds + whole.gap_seconds).quantize(Decimal("0.001")),
        unrated=tuple(sorted(unrated | set(report.unrated))),
        unmetered_seconds=(report.unmetered_seconds + whole.unmetered_seconds).quantize(
            Decimal("0.001")
        ),
    )


def to_status(
    report: Report,
    *,
    tier: str,
    currency: str,
    period_start: datetime,
    period_end: datetime,
    closed_at: datetime | None = None,
) -> dict[str, Any]:
    """The report as UsageReport status (every field the operator owns, so a patch is whole)."""
    status: dict[str, Any] = {
        "tier": tier,
        "currency": currency,
        "periodStart": timestamp(period_start),
        "periodEnd": timestamp(period_end),
        "resources": [
            {
                "resource": line.resource,
                "unit": line.unit,
                "allocatedHours": fmt(line.allocated_hours),
                "requestedHours": fmt(line.requested_hours),
                "amount": fmt(line.amount),
                "charge": money(line.amount),
            }
            for _, line in sorted(report.lines.items())
        ],
        "total": money(report.total),
        "samples": report.samples,
        "lastSampleTime": timestamp(report.last_sample),
        "gapSeconds": fmt(report.gap_seconds),
        "unmeteredSeconds": fmt(report.unmetered_seconds),
        "unratedResources": list(report.unrated),
        "closed": closed_at is not None,
    }
    if report.first_sample is not None:
        status["firstSampleTime"] = timestamp(report.first_sample)
    if closed_at is not None:
        status["closedAt"] = timestamp(closed_at)
    return status


def rated_condition(unrated: Iterable[str]) -> tuple[str, str, str]:
    """(status, reason, message) of the report's Rated condition."""
    missing = sorted(unrated)
    if not missing:
        return "True", "AllResourcesPriced", "every requested resource has a price"
    return (
        "False",
        "MissingRate",
        f"{', '.join(missing)}: no rate in RateCard default was in force; the use is recorded"
        " in requestedHours but not charged. Add a rate for it (effectiveFrom on or before"
        " the day of use)",
    )
