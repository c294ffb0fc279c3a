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
NO_REGION = "(no region)"


def payer_of(tier: str, region: str | None) -> str:
    """Who pays a unit's bill: the city for city units; a county/district or a development
    zone, named by the unit's region, for its own units."""
    if tier == "city":
        return "city"
    return f"{tier}:{(region or '').strip() or NO_REGION}"


@dataclass(frozen=True)
class Row:
    tenant: str
    tier: str
    charges: dict[str, Decimal]
    total: Decimal
    closed: bool
    payer: str = ""
    unit: str = ""
    name: str = ""


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

    def payer_totals(self) -> dict[str, Decimal]:
        totals: dict[str, Decimal] = {}
        for row in self.rows:
            totals[row.payer] = totals.get(row.payer, Decimal(0)) + row.total
        return dict(sorted(totals.items(), key=lambda item: _payer_order(item[0])))

    def for_payer(self, payer: str) -> Statement:
        """Only the units `payer` pays for (the totals are theirs)."""
        return Statement(
            self.period, self.currency, [row for row in self.rows if row.payer == payer]
        )

    @property
    def total(self) -> Decimal:
        return sum((row.total for row in self.rows), start=Decimal(0))


def _tier_order(tier: str) -> tuple[int, str]:
    return (TIERS.index(tier) if tier in TIERS else len(TIERS), tier)


def _payer_order(payer: str) -> tuple[int, str]:
    return (*_tier_order(payer.partition(":")[0])[:1], payer)


def build(period: str, reports: Iterable[Mapping[str, Any]]) -> Statement:
    """The statement of `period` from its UsageReports (other periods are ignored)."""
    rows = []
    currency = "CNY"
    for report in reports:
        spec, status = report.get("spec") or {}, report.get("status") or {}
        if spec.get("period") != period:
            continue
        currency = status.get("currency") or currency
        tier = str(status.get("tier") or "unknown")
        unit = status.get("unit") or {}
        rows.append(
            Row(
                tenant=str(spec.get("tenant")),
                tier=tier,
                charges={
                    item["resource"]: Decimal(item.get("charge") or "0")
                    for item in status.get("resources") or []
                },
                total=Decimal(status.get("total") or "0"),
                closed=bool(status.get("closed")),
                # A report written before payers were recorded: paid by its tier's level.
                payer=str(status.get("payer") or payer_of(tier, unit.get("region"))),
                unit=str(unit.get("code") or ""),
                name=str(unit.get("name") or ""),
            )
        )
    rows.sort(key=lambda row: (_payer_order(row.payer), row.tenant))
    return Statement(period, currency, rows)


def to_json(statement: Statement) -> str:
    return json.dumps(
        {
            "period": statement.period,
            "currency": statement.currency,
            "tenants": [
                {
                    "tenant": row.tenant,
                    "unit": row.unit,
                    "name": row.name,
                    "tier": row.tier,
                    "payer": row.payer,
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
            "payers": {
                payer: accrual.money(value) for payer, value in statement.payer_totals().items()
            },
            "total": accrual.money(statement.total),
        },
        ensure_ascii=False,
        indent=2,
    )


def to_csv(statement: Statement) -> str:
    """period,payer,tier,tenant,unit,name,resource charges...,total,closed; then a sub-total row
    per payer and per tier, and the total."""
    resources = sorted({key for row in statement.rows for key in row.charges})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["period", "payer", "tier", "tenant", "unit", "name", *resources, "total", "closed"]
    )
    for row in statement.rows:
        charges = (accrual.money(row.charges.get(resource, Decimal(0))) for resource in resources)
        writer.writerow(
            [
                statement.period, row.payer, row.tier, row.tenant, row.unit, row.name,
                *charges, accrual.money(row.total), str(row.closed).lower(),
            ]
        )  # fmt: skip
    blanks = [""] * len(resources)
    for payer, value in statement.payer_totals().items():
        writer.writerow(
            [statement.period, payer, "", "(subtotal)", "", "", *blanks, accrual.money(value), ""]
        )
    for tier, value in statement.tier_totals().items():
        writer.writerow(
            [statement.period, "", tier, "(subtotal)", "", "", *blanks, accrual.money(value), ""]
        )
    writer.writerow(
        [
            statement.period, "(all)", "(all)", "(total)", "", "", *blanks,
            accrual.money(statement.total), "",
        ]
    )  # fmt: skip
    return out.getvalue()
