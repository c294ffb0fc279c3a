"""Metering: one tick accrues every tenant's usage since its report's lastSampleTime.

API cost per tick is O(1) reads whatever the number of tenants: one LIST of CloudTenants and
one LIST of the UsageReports of this and the previous period (by label); usage comes from
the watch-fed `usage.UsageCache`, never from a GET per tenant. Writes: one status patch per
tenant report (plus a create at the start of a month, a close at its end).

Nothing lost, nothing counted twice: the increment starts at the report's own
lastSampleTime and every status patch carries the resourceVersion that was read, so a
restarted operator continues where the report says, and of two replicas racing for the same
interval only one patch succeeds (the other gets 409 and accrues nothing). A closed report
is final; the CRD's status rule refuses any later change.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pydantic

from govcloud import constants, metrics
from govcloud.api.v1alpha1 import ratecard, usagereport
from govcloud.billing import accrual, periods, rating, usage
from govcloud.k8s import client
from govcloud.reconcile import conditions, events

log = logging.getLogger(__name__)

KIND = "UsageReport"
LABEL_PERIOD = f"{constants.GROUP}/period"
RATED = "Rated"
PRICED = "Priced"

Manifest = dict[str, Any]


Event = events.Event


@dataclass
class TickResult:
    """What a tick did: events to post (on which object), usage snapshots, trouble."""

    events: list[tuple[Manifest, Event]] = field(default_factory=list)
    usage: dict[str, metrics.UsageSnapshot] = field(default_factory=dict)
    conflicts: int = 0
    errors: list[str] = field(default_factory=list)


def zone(settings: Any) -> Any:
    return periods.zone(getattr(settings, "billing_utc_offset_hours", 8.0))


def tick(
    hub: client.Cluster,
    cache: usage.UsageCache,
    card: Mapping[str, Any],
    settings: Any,
    now: datetime | None = None,
) -> TickResult:
    """Accrue every tenant up to `now`; roll over and close last month's reports."""
    now = now or datetime.now(UTC)
    result = TickResult()
    tz = zone(settings)
    try:
        table = rating.table(ratecard.parse(ratecard.DEFAULT_NAME, card.get("spec") or {}), tz)
    except (pydantic.ValidationError, ValueError) as error:
        result.errors.append(f"RateCard default is invalid, nothing metered: {error}")
        return result
    period = periods.period_of(now, tz)
    previous = period.previous()
    tenants = hub.list(constants.API_VERSION, "CloudTenant")
    reports = {
        item["metadata"]["name"]: item
        for item in hub.list(
            constants.API_VERSION,
            KIND,
            label_selector=f"{LABEL_PERIOD} in ({period.name},{previous.name})",
        )
    }
    unrated: set[str] = set()
    for tenant in tenants:
        name = tenant["metadata"]["name"]
        points = cache.timeline(name)
        if not points:
            continue  # no quota of it seen yet: metering starts with the first one
        tier = str(((tenant.get("spec") or {}).get("unit") or {}).get("tier") or "city")
        meter = Meter(hub, table, tier, tz, now, result)
        try:
            old = reports.get(usagereport.report_name(name, previous.name))
            if old is not None and not (old.get("status") or {}).get("closed"):
                meter.close(old, previous, points)
            current = reports.get(usagereport.report_name(name, period.name))
            report = meter.accrue(name, current, period, points, continued=old is not None)
        except client.ApiError as error:
            if error.status == 409:
                result.conflicts += 1  # someone else accrued this interval; next tick goes on
            else:
                result.errors.append(f"{name}: {error}")
            continue
        cache.trim(name, report.last_sample)
        unrated.update(report.unrated)
        result.usage[name] = metrics.UsageSnapshot(
            tier=tier,
            period=period.name,
            charge=float(report.total),
            requested_hours={k: float(v.requested_hours) for k, v in report.lines.items()},
            allocated_hours={k: float(v.allocated_hours) for k, v in report.lines.items()},
        )
    _card_status(hub, card, sorted(unrated), now, result)
    return result


@dataclass
class Meter:
    """Accrues and closes the reports of one tenant within a tick."""

    hub: client.Cluster
    table: rating.RateTable
    tier: str
    tz: Any
    now: datetime
    result: TickResult

    def close(
        self, body: Manifest, period: periods.Period, points: list[usage.Point]
    ) -> accrual.Report:
        """Accrue up to the end of the month and close: exactly once (resourceVersion + CEL)."""
        end = period.end(self.tz)
        state = accrual.from_status(body.get("status") or {}, default_start=period.start(self.tz))
        state = accrual.accrue(state, points, end, self.table, self.tier)
        self._write(body, state, period, closed_at=self.now)
        self.result.events.append(
            (
                body,
                Event(
                    "Normal",
                    "ReportClosed",
                    f"period {period.name} closed: {accrual.money(state.total)}"
                    f" {self.table.currency}",
                ),
            )
        )
        return state

    def accrue(
        self,
        tenant: str,
        body: Manifest | None,
        period: periods.Period,
        points: list[usage.Point],
        *,
        continued: bool,
    ) -> accrual.Report:
        if body is None:
            # A month that follows a metered one starts at the month's start; a tenant
            # metered for the first time starts now (nothing before it is billed).
            start = period.start(self.tz) if continued else self.now
            body = self.hub.create(
                {
                    "apiVersion": constants.API_VERSION,
                    "kind": KIND,
                    "metadata": {
                        "name": usagereport.report_name(tenant, period.name),
                        "labels": {
                            constants.LABEL_MANAGED_BY: constants.MANAGED_BY,
                            constants.LABEL_TENANT: tenant,
                            LABEL_PERIOD: period.name,
                        },
                    },
                    "spec": {"tenant": tenant, "period": period.name},
                }
            )
            self.result.events.append(
                (body, Event("Normal", "ReportOpened", f"metering {tenant} for {period.name}"))
            )
            state = accrual.Report(last_sample=start)
        else:
            status = body.get("status") or {}
            if status.get("closed"):
                return accrual.from_status(status, default_start=self.now)
            state = accrual.from_status(status, default_start=self.now)
        state = accrual.accrue(state, points, self.now, self.table, self.tier)
        self._write(body, state, period)
        return state

    def _write(
        self,
        body: Manifest,
        state: accrual.Report,
        period: periods.Period,
        closed_at: datetime | None = None,
    ) -> None:
        old = body.get("status") or {}
        status = accrual.to_status(
            state,
            tier=self.tier,
            currency=self.table.currency,
            period_start=period.start(self.tz),
            period_end=period.end(self.tz),
            closed_at=closed_at,
        )
        rated = conditions.Condition(RATED, *accrual.rated_condition(state.unrated))
        status["conditions"] = conditions.merge(
            old.get("conditions") or [], [rated], None, self.now
        )
        if all(old.get(key) == value for key, value in status.items()):
            return
        if rated.status == conditions.FALSE and not any(
            item.get("type") == RATED and item.get("status") == conditions.FALSE
            for item in old.get("conditions") or []
        ):
            self.result.events.append((body, Event("Warning", "MissingRate", rated.message)))
        self.hub.patch_status(
            constants.API_VERSION,
            KIND,
            body["metadata"]["name"],
            status,
            resource_version=body["metadata"]["resourceVersion"],
        )


def _card_status(
    hub: client.Cluster,
    card: Mapping[str, Any],
    unrated: list[str],
    now: datetime,
    result: TickResult,
) -> None:
    """The rate card says which requested resources it leaves unpriced (written on change)."""
    old = card.get("status") or {}
    priced = (
        conditions.Condition(
            PRICED,
            conditions.FALSE,
            "MissingRate",
            f"tenants request {', '.join(unrated)} but no rate is in force for it; their use"
            " is recorded, not charged. Add a rate for each",
        )
        if unrated
        else conditions.Condition(
            PRICED, conditions.TRUE, "AllPriced", "every resource tenants request has a rate"
        )
    )
    generation = (card.get("metadata") or {}).get("generation")
    status = {
        "observedGeneration": generation,
        "unratedResources": unrated,
        "conditions": conditions.merge(old.get("conditions") or [], [priced], generation, now),
    }
    if all(old.get(key) == value for key, value in status.items()):
        return
    try:
        hub.patch_status(constants.API_VERSION, "RateCard", ratecard.DEFAULT_NAME, status)
    except client.ApiError as error:
        result.errors.append(f"RateCard status: {error}")
        return
    if unrated:
        result.events.append((dict(card), Event("Warning", "MissingRate", priced.message)))
