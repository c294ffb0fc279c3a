"""Usage over time (pure): a watch-fed timeline of each tenant's quota, and its exact integral.

The operator already watches every managed ResourceQuota; each event is fed here with the
time it arrived, so a tenant's usage is known as a step function and metering integrates it
exactly instead of multiplying one sample by the whole interval. Reading it costs no API call.

Gap rule: the time before the first point the cache knows (the operator was down, or has
just started) is billed at the usage of that first point, the usage observed right after
the gap. The report records those seconds in `gapSeconds`.

Tenants placed on a sub-center have their quotas in the sub-center's cluster, which no watch
covers: each metering tick LISTs every such site once and the result replaces what the cache
held of that site (`sync_cluster`). A site that cannot be read marks its tenants' usage
*unknown* from that read on (`unreachable`), until the next successful read: unknown time is
billed at nothing, and is counted in `unmeteredSeconds` instead (a gap that ends in unknown
usage is unmetered too, not billed by the gap rule).

Bounded memory: a timeline never holds more than `MAX_POINTS` points. Past that, its two
oldest steps after the first are merged into one at their time-weighted mean (`merge`): the
integral over the merged span is unchanged, only how it spreads inside that span (seconds
at most, for thousands of steps within one tick) is lost; no usage is dropped. A tenant that
is gone (not listed, no quota left, its report settled) is forgotten whole (`forget_gone`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from govcloud.desired import quantity

MAX_POINTS = 4096
ZERO = Decimal(0)

Amounts = Mapping[str, Decimal]


def seconds(delta: timedelta) -> Decimal:
    """A timedelta in seconds, exactly (microseconds included)."""
    return Decimal(delta.days * 86400 + delta.seconds) + Decimal(delta.microseconds).scaleb(-6)


@dataclass(frozen=True)
class Point:
    """From `at` on (until the next point) the tenant's quota was `hard`, its usage `used`."""

    at: datetime
    hard: Amounts = field(default_factory=dict)
    used: Amounts = field(default_factory=dict)
    known: bool = True  # False: the tenant's site could not be read; nothing is billed


@dataclass(frozen=True)
class Integral:
    """Base-unit-seconds of hard and used per resource over an interval, and the gap in it."""

    hard: dict[str, Decimal]
    used: dict[str, Decimal]
    gap_seconds: Decimal
    unmetered_seconds: Decimal = ZERO


def integrate(points: Sequence[Point], start: datetime, end: datetime) -> Integral:
    """The step function `points` integrated over [start, end); see the gap rule above."""
    hard: dict[str, Decimal] = {}
    used: dict[str, Decimal] = {}
    if not points or end <= start:
        return Integral(hard, used, ZERO)
    unmetered = ZERO
    for index, point in enumerate(points):
        left = start if index == 0 else max(start, point.at)
        right = min(end, points[index + 1].at) if index + 1 < len(points) else end
        if right <= left:
            continue
        span = seconds(right - left)
        if not point.known:
            unmetered += span
            continue
        for resource, value in point.hard.items():
            hard[resource] = hard.get(resource, ZERO) + value * span
        for resource, value in point.used.items():
            used[resource] = used.get(resource, ZERO) + value * span
    first = points[0]
    gap = seconds(min(first.at, end) - start) if first.known and first.at > start else ZERO
    return Integral(hard, used, gap, unmetered)


def parse_amounts(raw: Mapping[str, str] | None) -> dict[str, Decimal]:
    """Quantities by resource; a value that does not parse is left out."""
    parsed: dict[str, Decimal] = {}
    for resource, value in (raw or {}).items():
        try:
            parsed[resource] = quantity.parse(str(value))
        except quantity.QuantityError:
            continue
    return parsed


def _add(total: dict[str, Decimal], more: Amounts) -> None:
    for resource, value in more.items():
        total[resource] = total.get(resource, ZERO) + value


def span_mean(first: Amounts, first_seconds: Decimal, second: Amounts, total: Decimal) -> Amounts:
    """Per resource: `first` for `first_seconds` then `second` for the rest of `total`, as
    one level with the same integral (a resource absent from a point is 0 there)."""
    resources = set(first) | set(second)
    return {
        resource: (
            first.get(resource, ZERO) * first_seconds
            + second.get(resource, ZERO) * (total - first_seconds)
        )
        / total
        for resource in resources
    }


def merge(timeline: list[Point]) -> bool:
    """Merge the oldest two mergeable steps after the first into one of the same integral.

    The first point is never merged: it is the level in force when the last written report
    ends, and may start before it. Two steps merge when both are known (or both unknown)
    and the second has a successor, which bounds the span. False when none can merge.
    """
    for index in range(1, len(timeline) - 2):
        first, second, after = timeline[index], timeline[index + 1], timeline[index + 2]
        if first.known != second.known:
            continue
        total = seconds(after.at - first.at)
        if total <= 0:
            continue
        first_seconds = seconds(second.at - first.at)
        timeline[index : index + 2] = [
            Point(
                first.at,
                span_mean(first.hard, first_seconds, second.hard, total),
                span_mean(first.used, first_seconds, second.used, total),
                first.known,
            )
        ]
        return True
    return False


@dataclass(frozen=True)
class Quota:
    """One ResourceQuota as a LIST of a sub-center returned it."""

    namespace: str
    name: str
    tenant: str
    hard: Mapping[str, str]
    used: Mapping[str, str]


HUB = ""  # the cluster key of the hub's quotas (fed by the watch)
QuotaKey = tuple[str, str, str]  # (cluster, namespace, name)


class UsageCache:
    """Each tenant's quota as a timeline, fed by ResourceQuota watch events (hub) and by
    per-site LISTs (sub-centers); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._quotas: dict[QuotaKey, tuple[str, Amounts, Amounts]] = {}
        self._keys: dict[str, set[QuotaKey]] = {}  # tenant -> its quotas (a sum reads only them)
        self._timelines: dict[str, list[Point]] = {}
        self._unknown: set[str] = set()
        self._metered: dict[str, datetime] = {}  # tenant -> the last tick that metered it

    def observe(
        self,
        namespace: str,
        name: str,
        tenant: str,
        hard: Mapping[str, str] | None,
        used: Mapping[str, str] | None,
        at: datetime,
        cluster: str = HUB,
    ) -> None:
        with self._lock:
            key = (cluster, namespace, name)
            previous = self._put(key, (tenant, parse_amounts(hard), parse_amounts(used)))
            if previous is not None and previous[0] != tenant:
                self._record(previous[0], at)
            self._record(tenant, at)

    def remove(self, namespace: str, name: str, at: datetime, cluster: str = HUB) -> None:
        with self._lock:
            previous = self._pop((cluster, namespace, name))
            if previous is not None:
                self._record(previous[0], at)

    def sync_cluster(
        self, cluster: str, quotas: Sequence[Quota], tenants: Iterable[str], at: datetime
    ) -> None:
        """A successful LIST of a site at `at`: its quotas are exactly `quotas` from then on.

        `tenants` (those placed on the site) are known again even if none of their quotas
        was listed (their usage is then nothing).
        """
        with self._lock:
            affected = set(tenants)
            for key in [key for key in self._quotas if key[0] == cluster]:
                previous = self._pop(key)
                if previous is not None:
                    affected.add(previous[0])
            for quota in quotas:
                self._put(
                    (cluster, quota.namespace, quota.name),
                    (quota.tenant, parse_amounts(quota.hard), parse_amounts(quota.used)),
                )
                affected.add(quota.tenant)
            self._unknown -= affected
            for tenant in sorted(affected):
                self._record(tenant, at)

    def unreachable(self, tenants: Iterable[str], at: datetime) -> None:
        """The tenants' site could not be read at `at`: their usage is unknown until it is."""
        with self._lock:
            for tenant in sorted(set(tenants)):
                self._unknown.add(tenant)
                self._record(tenant, at)

    def _put(
        self, key: QuotaKey, value: tuple[str, Amounts, Amounts]
    ) -> tuple[str, Amounts, Amounts] | None:
        previous = self._pop(key)
        self._quotas[key] = value
        self._keys.setdefault(value[0], set()).add(key)
        return previous

    def _pop(self, key: QuotaKey) -> tuple[str, Amounts, Amounts] | None:
        previous = self._quotas.pop(key, None)
        if previous is not None:
            keys = self._keys.get(previous[0], set())
            keys.discard(key)
            if not keys:
                self._keys.pop(previous[0], None)
        return previous

    def _record(self, tenant: str, at: datetime) -> None:
        hard: dict[str, Decimal] = {}
        used: dict[str, Decimal] = {}
        known = tenant not in self._unknown
        if known:
            for key in self._keys.get(tenant, ()):
                _, quota_hard, quota_used = self._quotas[key]
                _add(hard, quota_hard)
                _add(used, quota_used)
        timeline = self._timelines.setdefault(tenant, [])
        last = timeline[-1] if timeline else None
        if last is not None and (last.hard, last.used, last.known) == (hard, used, known):
            return
        point = Point(at, hard, used, known)
        if last is not None and last.at >= at:
            timeline[-1] = Point(last.at, hard, used, known)
        else:
            timeline.append(point)
        while len(timeline) > MAX_POINTS and merge(timeline):
            pass

    def tenants(self) -> set[str]:
        with self._lock:
            return set(self._timelines)

    def timeline(self, tenant: str) -> list[Point]:
        with self._lock:
            return list(self._timelines.get(tenant, ()))

    def trim(self, tenant: str, before: datetime) -> None:
        """Forget what is no longer needed: points wholly before `before`."""
        with self._lock:
            timeline = self._timelines.get(tenant)
            if not timeline:
                return
            keep_from = 0
            for index, point in enumerate(timeline):
                if point.at <= before:
                    keep_from = index
            del timeline[:keep_from]

    def metered(self, tenant: str, at: datetime) -> None:
        """A tick at `at` metered the tenant (its report may not be written up to `at` yet)."""
        with self._lock:
            self._metered[tenant] = at

    def unlisted(self, listed: Iterable[str]) -> dict[str, datetime]:
        """Tenants an earlier tick metered that are no longer listed -> when it metered them."""
        wanted = set(listed)
        with self._lock:
            return {tenant: at for tenant, at in self._metered.items() if tenant not in wanted}

    def settled(self, tenant: str) -> None:
        """The tenant's last tick is written: `unlisted` no longer names it."""
        with self._lock:
            self._metered.pop(tenant, None)

    def forget(self, tenant: str) -> None:
        with self._lock:
            self._forget(tenant)

    def forget_gone(self, listed: Iterable[str]) -> list[str]:
        """Forget every tenant that is not `listed`, holds no quota and is not waiting to be
        settled (`unlisted`): its report no longer needs its timeline. The names forgotten."""
        wanted = set(listed)
        with self._lock:
            gone = [
                tenant
                for tenant in self._timelines
                if tenant not in wanted and tenant not in self._keys and tenant not in self._metered
            ]
            for tenant in gone:
                self._forget(tenant)
        return sorted(gone)

    def forget_if_gone(self, tenant: str) -> bool:
        """``forget_gone`` for one tenant known not to be listed any more: forgotten once it
        holds no quota and is not waiting to be settled. Whether it was."""
        with self._lock:
            if tenant in self._keys or tenant in self._metered or tenant not in self._timelines:
                return False
            self._forget(tenant)
            return True

    def _forget(self, tenant: str) -> None:
        self._timelines.pop(tenant, None)
        self._metered.pop(tenant, None)
        self._unknown.discard(tenant)

    def sizes(self) -> dict[str, int]:
        """How much the cache holds (tenants, quotas, points): memory that must stay bounded."""
        with self._lock:
            return {
                "tenants": len(self._timelines),
                "quotas": len(self._quotas),
                "indexed": len(self._keys),
                "points": sum(len(timeline) for timeline in self._timelines.values()),
                "metered": len(self._metered),
                "unknown": len(self._unknown),
            }
