"""The annual assessment (pure): per unit and year, how it used the cloud and moved its apps.

From the year's UsageReports (quota granted vs used: allocated and requested hours; spend), the
unit's approved ResourcePlan of the year (budget: its estimated annual cost; planned apps and
their target dates) and the CloudTenant's migration roll-up (completed, overdue, on time). A
rule the platform sets (`Rule`) gives the verdict: a unit that lags has its reasons listed.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from govcloud.billing import accrual, plans, statement

ON_TRACK = "OnTrack"
LAGGING = "Lagging"
UTILISED = ("requests.cpu", "requests.memory")


@dataclass(frozen=True)
class Rule:
    """When a unit lags: utilisation of its cpu quota below `min_utilisation` percent, more
    than `max_overdue` overdue migrations, or a planned app past its target date with no
    MigrationPlan (when `missing_apps_lag`)."""

    min_utilisation: int = 20
    max_overdue: int = 0
    missing_apps_lag: bool = True


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

    def utilisation(self, resource: str) -> int | None:
        """Requested over allocated hours of `resource`, in percent (None: none allocated)."""
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
) -> list[Row]:
    """One row per unit with a tenant now or a report in `year`, sorted by payer and tenant."""
    rows: dict[str, Row] = {}
    for tenant in tenants:
        _from_tenant(rows, tenant)
    for report in reports:
        _from_report(rows, year, report)
    for plan in plans:
        _from_plan(rows, year, plan, today)
    for row in rows.values():
        _judge(row, rule)
    return sorted(rows.values(), key=lambda row: (row.payer, row.tenant))


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
    if not str(spec.get("period") or "").startswith(f"{year}-"):
        return
    row = _row(rows, str(spec.get("tenant")))
    unit = status.get("unit") or {}
    row.unit = row.unit or str(unit.get("code") or "")
    row.name = row.name or str(unit.get("name") or "")
    row.tier = row.tier or str(status.get("tier") or "")
    row.payer = row.payer or str(status.get("payer") or statement.payer_of(row.tier, None))
    row.spend += Decimal(status.get("total") or "0")
    for line in status.get("resources") or []:
        resource = str(line.get("resource"))
        for hours, key in (
            (row.allocated_hours, "allocatedHours"),
            (row.requested_hours, "requestedHours"),
        ):
            hours[resource] = hours.get(resource, Decimal(0)) + Decimal(line.get(key) or "0")


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
