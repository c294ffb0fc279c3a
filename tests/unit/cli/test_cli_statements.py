"""`kubectl govcloud statement`: which of the names a user may read are the month's bills, and
the table a level's finance staff see."""

from __future__ import annotations

from typing import Any

from govcloud.billing import statement
from govcloud.cli import main, statements, views

UID = "0f0e0d0c-0000-4000-8000-000000000001"


def report(tenant: str, period: str, total: str, payer: str, closed: bool = False) -> Any:
    return {
        "spec": {"tenant": tenant, "period": period},
        "status": {
            "currency": "CNY",
            "tier": payer.partition(":")[0],
            "payer": payer,
            "unit": {"code": f"{tenant}-unit", "name": f"单位 {tenant}"},
            "total": total,
            "closed": closed,
            "resources": [{"resource": "requests.cpu", "charge": total}],
        },
    }


def test_the_months_bills_are_picked_by_name_a_recreated_tenants_included() -> None:
    names = [
        "lj-2026-11",
        "lj-2026-12",
        f"lj-2026-11-{UID}",
        "lj-2026-111",  # not a month
        "lj-2026-11-x",  # not a UID
        "2026-11",  # no tenant
    ]
    assert statements.of_period(names, "2026-11") == ["lj-2026-11", f"lj-2026-11-{UID}"]


def test_the_statement_lists_each_unit_with_subtotals_per_level() -> None:
    found = statement.build(
        "2026-11",
        [
            report("lj", "2026-11", "12.50", "county:庐江", closed=True),
            report("lj2", "2026-11", "7.50", "county:庐江"),
            report("hf", "2026-11", "100.00", "city"),
        ],
    )
    view = statements.statement_view(found.for_payer("county:庐江"))
    text = views.render(view)
    assert [row[1] for row in view.rows] == ["lj", "lj2"]
    assert "hf" not in text
    assert "SUBTOTAL county:庐江: 20.00 CNY" in text
    assert "TOTAL: 20.00 CNY" in text
    assert view.data["payers"] == {"county:庐江": "20.00"}
    assert views.render(statements.statement_view(statement.build("2026-11", []))).startswith(
        "PERIOD:   2026-11\nno bill of this month you may read"
    )


def test_the_subcommand_takes_a_month_and_a_payer() -> None:
    args = main.parser().parse_args(["statement", "--month", "2026-11", "--payer", "city"])
    assert (args.run, args.month, args.payer) == (statements.statement_command, "2026-11", "city")
