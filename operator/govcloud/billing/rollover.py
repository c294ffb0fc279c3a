"""Roll-over (pure): which earlier reports to close and which missing months to bill, now.

Normally the first tick of a month closes last month's report and opens this one. After the
operator was down across several month ends, the tenant's last report may be months old and
still open: it is accrued to the end of its month and closed, every month in between that has
no report is opened and closed whole (all of it billed by the gap rule, at the usage observed
right after the gap), and this month's report starts at the month's start. Nothing is left
open and no interval is billed twice: each month is accrued in its own report only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from govcloud.billing import periods


@dataclass(frozen=True)
class Backlog:
    """What to do before accruing `current`: close these, fill these (oldest first)."""

    close: list[periods.Period] = field(default_factory=list)
    fill: list[periods.Period] = field(default_factory=list)
    continued: bool = False  # the tenant was metered before: `current` starts at its start


def months_between(after: periods.Period, before: periods.Period) -> list[periods.Period]:
    """The months strictly between `after` and `before`, oldest first."""
    found = []
    month = after.next()
    while month < before:
        found.append(month)
        month = month.next()
    return found


def catch_up(current: periods.Period, earlier: Mapping[periods.Period, bool]) -> Backlog:
    """`earlier`: the tenant's reports of months before `current` -> whether each is closed."""
    past = {period: closed for period, closed in earlier.items() if period < current}
    if not past:
        return Backlog()
    latest = max(past)
    return Backlog(
        close=sorted(period for period, closed in past.items() if not closed),
        fill=months_between(latest, current),
        continued=True,
    )
