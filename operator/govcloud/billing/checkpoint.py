"""Checkpoints (pure): whether a tick's accrual must be written now or may wait for a later tick.

A report is written when something it shows for billing changed, or at the checkpoint. What
a report shows is its status minus its running sums (`RUNNING`, `LINE_RUNNING`): `charge` and
`total` are stored rounded to the fen, so a charge that moves by a fen (the billable amount)
is a change, and so are a new resource line, a tier, currency or period, the unpriced
resources and the Rated condition. The running sums (unit-hours and exact amounts to 9
decimals, gap and unmetered seconds, samples, lastSampleTime) move every tick; the hours are
billed only through the charge they cost, so an hours figure moves by a billable amount
exactly when its line's charge does. A report is also written, whatever its figures: when the
usage changed since its lastSampleTime (so a restart, which bills the unwritten interval by
the gap rule, never bills it at a usage the operator had seen change), when a price of the
card changes inside the interval, and when it was last written at least the checkpoint ago.
(The tick also writes, without asking here: a new report, a month's close, every report
after a rate card edit, and the report of a tenant being deleted or gone.)

Skipping loses nothing: the next accrual starts at the stored lastSampleTime, so the written
figures are those of writing every tick but for the 1e-9 rounding of each write.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from govcloud.billing import accrual, rating, usage

DEFAULT_SECONDS = 900.0  # 15 minutes
RUNNING = frozenset({"lastSampleTime", "samples", "gapSeconds", "unmeteredSeconds"})
LINE_RUNNING = frozenset({"allocatedHours", "requestedHours", "amount"})

CHECKPOINT = "checkpoint"
SHOWN = "figures"
USAGE = "usage"
RATE = "rate"


def shown(status: Mapping[str, Any]) -> dict[str, Any]:
    """The status as it bills: without the running sums (fen-rounded charges stay)."""
    found = {key: value for key, value in status.items() if key not in RUNNING}
    found["resources"] = [
        {key: value for key, value in line.items() if key not in LINE_RUNNING}
        for line in status.get("resources") or []
    ]
    return found


def usage_changed(points: Sequence[usage.Point], since: datetime) -> bool:
    """A step of the usage after `since` (a new level, or the first one seen after a gap)."""
    return any(point.at > since for point in points)


def price_changed(table: rating.RateTable, start: datetime, end: datetime) -> bool:
    """A price of the card changes inside (start, end)."""
    return any(start < since < end for history in table.rates.values() for since, _ in history)


def reason(
    old_status: Mapping[str, Any],
    new_status: Mapping[str, Any],
    written: accrual.Report,
    points: Sequence[usage.Point],
    table: rating.RateTable,
    now: datetime,
    every: timedelta,
) -> str:
    """Why the accrued `new_status` must be written now; '' when it may wait."""
    if now - written.last_sample >= every:
        return CHECKPOINT
    if usage_changed(points, written.last_sample):
        return USAGE
    if price_changed(table, written.last_sample, now):
        return RATE
    if shown(old_status) != shown(new_status):
        return SHOWN
    return ""
