"""The annual assessment (pure): per unit and year, how it used the cloud and moved its apps.

From the year's UsageReports (quota granted vs used: allocated and requested hours; spend), the
unit's approved ResourcePlan of the year (budget: its estimated annual cost; planned apps and
their target dates) and the CloudTenant's migration roll-up (completed, overdue, on time). A
rule the platform sets (`Rule`) gives the verdict: a unit that lags has its reasons listed.

`report assessment` builds it from every report of the year; the operator's metering builds the
same rows each tick (`build`, the same rule) for the current year, from the months it holds
(this and the previous one) and `EarlierMonths`: per unit, the sums of the year's earlier,
closed months, read once at start and once a month.
"""

from __future__ import annotations

import csv
import io
import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from govcloud import constants
from govcloud.billing import accrual, periods, plans, statement

ON_TRACK = "OnTrack"
LAGGING = "Lagging"
UTILISED = ("requests.cpu", "requests.memory")
PERIOD_LABEL = f"{constants.GROUP}/period"  # what the CLI and metering select reports by


@dataclass(frozen=True)
class Rule:
    """When a unit lags: utilisation of its cpu quota below `min_utilisation` percent, more
    than `max_overdue` overdue migrations, or a planned app past its target date with no
    MigrationPlan (when `missing_apps_lag`)."""

    min_utilisation: int = 20
    max_overdue: int = 0
    missing_apps_lag: bool = True


@dataclass
class Usage:
    """What a unit's reports of some months add up to: spend, allocated and requested hours."""

    spend: Decimal = Decimal(0)
    allocated_hours: dict[str, Decimal] = field(default_factory=dict)
    requested_hours: dict[str, Decimal] = field(default_factory=dict)


def add_report(into: Usage | Row, status: Mapping[str, Any]) -> None:
    """Add one UsageReport's status (its total and each resource's hours) to `into`."""
    into.spend += Decimal(status.get("total") or "0")
    for line in status.get("resources") or []:
        resource = str(line.get("resource"))
        for hours, key in (
            (into.allocated_hours, "allocatedHours"),
            (into.requested_hours, "requestedHours"),
        ):
            hours[resource] = hours.get(resource, Decimal(0)) + Decimal(line.get(key) or "0")


def add_usage(into: Usage | Row, usage: Usage) -> None:
    into.spend += usage.spend
    for mine, theirs in (
        (into.allocated_hours, usage.allocated_hours),
        (into.requested_hours, usage.requested_hours),
    ):
        for resource, hours in theirs.items():
            mine[resource] = mine.get(resource, Decimal(0)) + hours


def in_year(report: Mapping[str, Any], year: int) -> bool:
    return str((report.get("spec") or {}).get("period") or "").startswith(f"{year}-")


def usage_by_tenant(year: int, reports: Iterable[Mapping[str, Any]]) -> dict[str, Usage]:
    """Per unit (the reports' spec.tenant, as `build` counts them), its reports of `year`."""
    found: dict[str, Usage] = {}
    for report in reports:
        if in_year(report, year):
            tenant = str((report.get("spec") or {}).get("tenant"))
            add_report(found.setdefault(tenant, Usage()), report.get("status") or {})
    return found


@dataclass
class Row:
    tenant: str
    unit: str = ""
    name: str = ""
    tier: str = ""
    payer: str = ""
    allocated_hours: dict[str, Decimal] = field(default_factory=dict)
    requested_hours: dict[str, Decimal] = field(default_factory=dict)
    spend: Decimal = Decimal(0)
    budget: Decimal | None = None
    migrations_planned: int = 0
    migrations_completed: int = 0
    migrations_overdue: int = 0
    on_time_percent: int | None = None
    apps_missing: list[str] = field(default_factory=list)
    verdict: str = ON_TRACK
    reasons: list[str] = field(default_factory=list)

    def utilisation_ratio(self, resource: str) -> Decimal | None:
        """Requested over allocated hours of `resource` (None: none allocated)."""
        allocated = self.allocated_hours.get(resource, Decimal(0))
        if allocated <= 0:
            return None
        return self.requested_hours.get(resource, Decimal(0)) / allocated

    def utilisation(self, resource: str) -> int | None:
        """Requested over allocated hours of `resource`, in whole percent, rounded down (None:
        none allocated); what the rule judges."""
        allocated = self.allocated_hours.get(resource, Decimal(0))
        if allocated <= 0:
            return None
        return int(100 * self.requested_hours.get(resource, Decimal(0)) / allocated)

    @property
    def spend_percent(self) -> int | None:
        if not self.budget:
            return None
        return int(100 * self.spend / self.budget)


def build(
    year: int,
    tenants: Iterable[Mapping[str, Any]],
    reports: Iterable[Mapping[str, Any]],
    plans: Iterable[Mapping[str, Any]],
    today: date,
    rule: Rule = Rule(),
    earlier: Mapping[str, Usage] | None = None,
) -> list[Row]:
    """One row per unit with a tenant now or a report in `year`, sorted by payer and tenant.
    `earlier`: per unit, the sums of reports of `year` that are not in `reports` (the
    operator's `EarlierMonths`); the CLI passes every report of the year instead."""
    rows: dict[str, Row] = {}
    for tenant in tenants:
        _from_tenant(rows, tenant)
    for name, usage in (earlier or {}).items():
        add_usage(_row(rows, name), usage)
    for report in reports:
        _from_report(rows, year, report)
    for plan in plans:
        _from_plan(rows, year, plan, today)
    for row in rows.values():
        _judge(row, rule)
    return sorted(rows.values(), key=lambda row: (row.payer, row.tenant))


def earlier_months(period: periods.Period) -> list[str]:
    """The months of `period`'s year before the previous one (closed: metering lists only
    this and the previous month's reports)."""
    return [f"{period.year:04d}-{month:02d}" for month in range(1, period.month - 1)]


class EarlierMonths:
    """Per unit, what its reports of the current year's earlier months (`earlier_months`) add
    up to, held between metering ticks so that a tick reads none of them: loaded from one
    LIST when the month is not the one held (at start, then once a month), a unit first seen
    learnt from the LIST of its own reports metering makes anyway, and a unit that is gone
    dropped. Partitioned by the period label, as the CLI selects them: with this and the
    previous month's reports, every report of the year counts once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._period: str | None = None  # the month whose earlier months are held
        self._sums: dict[str, Usage] = {}

    def due(self, period: periods.Period) -> list[str] | None:
        """The months to read (maybe none) when `period`'s are not held; None: they are."""
        with self._lock:
            return None if self._period == period.name else earlier_months(period)

    def load(self, period: periods.Period, reports: Iterable[Mapping[str, Any]]) -> None:
        """Hold `period`'s earlier months: `reports` are those the period label selects."""
        sums = usage_by_tenant(period.year, reports)
        with self._lock:
            self._period, self._sums = period.name, sums

    def learn(
        self, period: periods.Period, tenant: str, reports: Iterable[Mapping[str, Any]]
    ) -> None:
        """A unit's earlier months from a LIST of its reports (a unit metering meets for the
        first time: new, or of a name used before); nothing while no month is held."""
        months = set(earlier_months(period))
        mine = [
            report
            for report in reports
            if ((report.get("metadata") or {}).get("labels") or {}).get(PERIOD_LABEL) in months
            and str((report.get("spec") or {}).get("tenant")) == tenant
        ]
        found = usage_by_tenant(period.year, mine).get(tenant)
        with self._lock:
            if self._period != period.name:
                return
            if found is None:
                self._sums.pop(tenant, None)
            else:
                self._sums[tenant] = found

    def drop(self) -> None:
        """Hold nothing: the next `due` asks for the earlier months again."""
        with self._lock:
            self._period, self._sums = None, {}

    def sums(self) -> dict[str, Usage]:
        with self._lock:
            return dict(self._sums)

    def keep(self, tenants: Iterable[str]) -> None:
        """Drop every unit not in `tenants` (the units that exist)."""
        kept = set(tenants)
        with self._lock:
            for gone in [name for name in self._sums if name not in kept]:
                del self._sums[gone]

    def forget(self, tenant: str) -> None:
        with self._lock:
            self._sums.pop(tenant, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sums)


def _row(rows: dict[str, Row], tenant: str) -> Row:
    return rows.setdefault(tenant, Row(tenant=tenant))


def _from_tenant(rows: dict[str, Row], tenant: Mapping[str, Any]) -> None:
    spec, status = tenant.get("spec") or {}, tenant.get("status") or {}
    unit = spec.get("unit") or {}
    row = _row(rows, str(tenant["metadata"]["name"]))
    row.unit, row.name = str(unit.get("code") or ""), str(spec.get("displayName") or "")
    row.tier = str(unit.get("tier") or "")
    row.payer = statement.payer_of(row.tier, unit.get("region"))
    rollup = status.get("migrations") or {}
    row.migrations_planned = int(rollup.get("planned") or 0)
    row.migrations_completed = int(rollup.get("completed") or 0)
    row.migrations_overdue = int(rollup.get("overdue") or 0)
    percent = rollup.get("onTimePercent")
    row.on_time_percent = int(percent) if percent is not None else None


def _from_report(rows: dict[str, Row], year: int, report: Mapping[str, Any]) -> None:
    spec, status = report.get("spec") or {}, report.get("status") or {}
    if not in_year(report, year):
        return
    row = _row(rows, str(spec.get("tenant")))
    unit = status.get("unit") or {}
    row.unit = row.unit or str(unit.get("code") or "")
    row.name = row.name or str(unit.get("name") or "")
    row.tier = row.tier or str(status.get("tier") or "")
    row.payer = row.payer or str(status.get("payer") or statement.payer_of(row.tier, None))
    add_report(row, status)


def _from_plan(rows: dict[str, Row], year: int, plan: Mapping[str, Any], today: date) -> None:
    spec, status = plan.get("spec") or {}, plan.get("status") or {}
    if spec.get("year") != year or (status.get("review") or {}).get("state") != "Approved":
        return
    row = _row(rows, str(spec.get("tenant")))
    cost = status.get("estimatedAnnualCost")
    row.budget = Decimal(cost) if cost else None
    row.apps_missing.extend(plans.apps_missing(status.get("migrations") or [], today))


def _judge(row: Row, rule: Rule) -> None:
    cpu = row.utilisation("requests.cpu")
    if cpu is not None and cpu < rule.min_utilisation:
        row.reasons.append(f"cpu quota {cpu}% used (below {rule.min_utilisation}%)")
    if row.migrations_overdue > rule.max_overdue:
        row.reasons.append(f"{row.migrations_overdue} migrations overdue")
    if rule.missing_apps_lag and row.apps_missing:
        row.reasons.append(
            f"planned apps past their target with no MigrationPlan: {', '.join(row.apps_missing)}"
        )
    row.verdict = LAGGING if row.reasons else ON_TRACK


def _percent(value: int | None) -> str:
    return "" if value is None else str(value)


def to_json(year: int, rows: Iterable[Row]) -> str:
    return json.dumps(
        {
            "year": year,
            "units": [
                {
                    "tenant": row.tenant,
                    "unit": row.unit,
                    "name": row.name,
                    "tier": row.tier,
                    "payer": row.payer,
                    "utilisationPercent": {
                        resource: row.utilisation(resource) for resource in UTILISED
                    },
                    "spend": accrual.money(row.spend),
                    "budget": accrual.money(row.budget) if row.budget is not None else None,
                    "spendPercent": row.spend_percent,
                    "migrations": {
                        "planned": row.migrations_planned,
                        "completed": row.migrations_completed,
                        "overdue": row.migrations_overdue,
                        "onTimePercent": row.on_time_percent,
                    },
                    "appsWithoutMigrationPlan": row.apps_missing,
                    "verdict": row.verdict,
                    "reasons": row.reasons,
                }
                for row in rows
            ],
        },
        ensure_ascii=False,
        indent=2,
    )


def to_csv(year: int, rows: Iterable[Row]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "year", "payer", "tier", "tenant", "unit", "name", "cpu_used_percent",
            "memory_used_percent", "spend", "budget", "spend_percent", "migrations_planned",
            "migrations_completed", "migrations_overdue", "on_time_percent",
            "apps_without_migrationplan", "verdict", "reasons",
        ]
    )  # fmt: skip
    for row in rows:
        writer.writerow(
            [
                year, row.payer, row.tier, row.tenant, row.unit, row.name,
                _percent(row.utilisation("requests.cpu")),
                _percent(row.utilisation("requests.memory")),
                accrual.money(row.spend),
                accrual.money(row.budget) if row.budget is not None else "",
                _percent(row.spend_percent), row.migrations_planned, row.migrations_completed,
                row.migrations_overdue, _percent(row.on_time_percent), len(row.apps_missing),
                row.verdict, "; ".join(row.reasons),
            ]
        )  # fmt: skip
    return out.getvalue()


def budgets(
    year: int, tenants: Iterable[Mapping[str, Any]], plans: Iterable[Mapping[str, Any]]
) -> dict[str, tuple[int, Decimal]]:
    """Per paying level: how many units have an approved plan for `year`, and the sum of their
    estimated annual costs (the level's budget basis). A plan whose tenant is gone counts
    under `(unknown)`."""
    payers = {
        str(tenant["metadata"]["name"]): statement.payer_of(
            str(((tenant.get("spec") or {}).get("unit") or {}).get("tier") or ""),
            ((tenant.get("spec") or {}).get("unit") or {}).get("region"),
        )
        for tenant in tenants
    }
    found: dict[str, tuple[int, Decimal]] = {}
    for plan in plans:
        spec, status = plan.get("spec") or {}, plan.get("status") or {}
        if spec.get("year") != year or (status.get("review") or {}).get("state") != "Approved":
            continue
        payer = payers.get(str(spec.get("tenant")), "(unknown)")
        count, total = found.get(payer, (0, Decimal(0)))
        found[payer] = (count + 1, total + Decimal(status.get("estimatedAnnualCost") or "0"))
    return dict(sorted(found.items()))


def budgets_csv(year: int, found: Mapping[str, tuple[int, Decimal]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["year", "payer", "approved_plans", "estimated_annual_cost"])
    for payer, (count, total) in found.items():
        writer.writerow([year, payer, count, accrual.money(total)])
    count = sum(item[0] for item in found.values())
    total = sum((item[1] for item in found.values()), start=Decimal(0))
    writer.writerow([year, "(all)", count, accrual.money(total)])
    return out.getvalue()


def budgets_json(year: int, found: Mapping[str, tuple[int, Decimal]]) -> str:
    return json.dumps(
        {
            "year": year,
            "payers": {
                payer: {"approvedPlans": count, "estimatedAnnualCost": accrual.money(total)}
                for payer, (count, total) in found.items()
            },
            "total": accrual.money(sum((item[1] for item in found.values()), start=Decimal(0))),
        },
        ensure_ascii=False,
        indent=2,
    )
