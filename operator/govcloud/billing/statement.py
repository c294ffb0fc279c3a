"""Statements (pure): UsageReports of one period -> per-tenant charges with tier sub-totals."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from govcloud.billing import accrual

TIERS = ("city", "county", "devzone")


@dataclass(frozen=True)
class Row:
    tenant: str
    tier: str
    charges: dict[str, Decimal]
    total: Decimal
    closed: bool


@dataclass(frozen=True)
class Statement:
    period: str
    currency: str
    rows: list[Row]

    def tier_totals(self) -> dict[str, Decimal]:
        totals: dict[str, Decimal] = {}
        for row in self.rows:
            totals[row.tier] = totals.get(row.tier, Decimal(0)) + row.total
        return dict(sorted(totals.items(), key=lambda item: _tier_order(item[0])))

    @property
    def total(self) -> Decimal:
        return sum((row.total for row in self.rows), start=Decimal(0))


def _tier_order(tier: str) -> tuple[int, str]:
    return (TIERS.index(tier) if tier in TIERS else len(TIERS), tier)


def build(period: str, reports: Iterable[Mapping[str, Any]]) -> Statement:
    """The statement of `period` from its UsageReports (other periods are ignored)."""
    rows = []
    currency = "CNY"
    for report in reports:
        spec, status = report.get("spec") or {}, report.get("status") or {}
        if spec.get("period") != period:
            continue
        currency = status.get("currency") or currency
        rows.append(
            Row(
                tenant=str(spec.get("tenant")),
                tier=str(status.get("tier") or "unknown"),
                charges={
                    item["resource"]: Decimal(item.get("charge") or "0")
                    for item in status.get("resources") or []
                },
                total=Decimal(status.get("total") or "0"),
                closed=bool(status.get("closed")),
            )
        )
    rows.sort(key=lambda row: (_tier_order(row.tier), row.tenant))
    return Statement(period, currency, rows)


def to_json(statement: Statement) -> str:
    return json.dumps(
        {
            "period": statement.period,
            "currency": statement.currency,
            "tenants": [
                {
                    "tenant": row.tenant,
                    "tier": row.tier,
                    "closed": row.closed,
                    "charges": {
                        key: accrual.money(value) for key, value in sorted(row.charges.items())
                    },
                    "total": accrual.money(row.total),
                }
                for row in statement.rows
            ],
            "tiers": {
                tier: accrual.money(value) for tier, value in statement.tier_totals().items()
            },
            "total": accrual.money(statement.total),
        },
        ensure_ascii=False,
        indent=2,
    )


def to_csv(statement: Statement) -> str:
    """period,tier,tenant,resource charges...,total,closed; then one row per tier and the total."""
    resources = sorted({key for row in statement.rows for key in row.charges})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["period", "tier", "tenant", *resources, "total", "closed"])
    for row in statement.rows:
        writer.writerow(
            [
                statement.period,
                row.tier,
                row.tenant,
                *(accrual.money(row.charges.get(resource, Decimal(0))) for resource in resources),
                accrual.money(row.total),
                str(row.closed).lower(),
            ]
        )
    for tier, value in statement.tier_totals().items():
        writer.writerow(
            [
                statement.period,
                tier,
                "(subtotal)",
                *([""] * len(resources)),
                accrual.money(value),
                "",
            ]
        )
    writer.writerow(
        [
            statement.period,
            "(all)",
            "(total)",
            *([""] * len(resources)),
            accrual.money(statement.total),
            "",
        ]
    )
    return out.getvalue()
