"""Rating (pure): which price is in force when, in which unit, for which tier.

Prices are per unit-hour in fixed units: CPU in cores, memory and storage (any byte
resource) in GiB, everything else (GPUs, counts) per unit. A rate is in force from 00:00 of
its effectiveFrom day (billing time zone) until the next rate of the same resource, so an
interval that crosses a price change is split and each part is rated at its own price.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal

from govcloud.api.v1alpha1 import ratecard
from govcloud.billing import periods
from govcloud.desired import quantity

GIB = Decimal(1024**3)
ONE = Decimal(1)


@functools.cache
def unit_of(resource: str) -> tuple[Decimal, str]:
    """(base units per billing unit, unit name) of a ResourceQuota resource."""
    if quantity.is_binary(resource):
        return GIB, "GiB"
    if resource.rsplit(".", 1)[-1] == "cpu" or resource == "cpu":
        return ONE, "core"
    return ONE, "unit"


def is_requested(resource: str) -> bool:
    """Resources tenants request and are billed for unless the rate card leaves them unpriced."""
    return resource.startswith("requests.")


@dataclass(frozen=True)
class Segment:
    """[start, end) at one price; price None when no rate was in force."""

    start: datetime
    end: datetime
    price: Decimal | None


@dataclass(frozen=True)
class RateTable:
    """The rate card, ready to answer 'what did one unit-hour of X cost at time t'."""

    currency: str
    rates: Mapping[str, Sequence[tuple[datetime, Decimal]]]
    multipliers: Mapping[str, Decimal] = field(default_factory=dict)
    offerings: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def resources(self) -> list[str]:
        return sorted(self.rates)

    def multiplier(self, tier: str) -> Decimal:
        return self.multipliers.get(tier, ONE)

    def segments(self, resource: str, start: datetime, end: datetime) -> list[Segment]:
        """[start, end) split at every price change of `resource`."""
        if end <= start:
            return []
        history = self.rates.get(resource, ())
        cuts = sorted({start, end, *(since for since, _ in history if start < since < end)})
        found = []
        for left, right in itertools.pairwise(cuts):
            in_force = [price for since, price in history if since <= left]
            found.append(Segment(left, right, in_force[-1] if in_force else None))
        return found

    def price_at(self, resource: str, moment: datetime) -> Decimal | None:
        in_force = [price for since, price in self.rates.get(resource, ()) if since <= moment]
        return in_force[-1] if in_force else None


def table(spec: ratecard.RateCardSpec, tz: timezone) -> RateTable:
    rates: dict[str, list[tuple[datetime, Decimal]]] = {}
    for rate in spec.rates:
        rates.setdefault(rate.resource, []).append(
            (periods.day_start(rate.effective_from, tz), Decimal(rate.price))
        )
    multipliers = {
        tier: Decimal(value)
        for tier, value in spec.tier_multipliers.model_dump().items()
        if value is not None
    }
    return RateTable(
        currency=spec.currency,
        rates={resource: sorted(history) for resource, history in rates.items()},
        multipliers=multipliers,
        offerings={offering.name: dict(offering.resources) for offering in spec.offerings},
    )


def unrated(table_: RateTable, resources: Iterable[str]) -> list[str]:
    """Requested resources the card has no rate for at all."""
    return sorted({item for item in resources if is_requested(item) and item not in table_.rates})
