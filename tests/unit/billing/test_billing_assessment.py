"""The annual assessment: utilisation, spend vs the approved plan, migrations, and the verdict."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

from govcloud.billing import assessment

TODAY = date(2026, 12, 7)


def tenant(name: str, region: str | None = None, **rollup: int) -> dict[str, Any]:
    unit: dict[str, Any] = {"code": name, "tier": "county" if region else "city"}
    if region:
        unit["region"] = region
    return {
        "metadata": {"name": name},
        "spec": {"displayName": f"{name}局", "unit": unit},
        "status": {"migrations": {"planned": 0, "completed": 0, "overdue": 0, **rollup}},
    }


def report(tenant: str, period: str, allocated: str, requested: str, total: str) -> dict[str, Any]:
    return {
        "spec": {"tenant": tenant, "period": period},
        "status": {
            "total": total,
            "resources": [
                {
                    "resource": "requests.cpu",
                    "allocatedHours": allocated,
                    "requestedHours": requested,
                }
            ],
        },
    }


def plan(
    tenant: str, year: int, cost: str, *apps: dict[str, Any], state: str = "Approved"
) -> dict[str, Any]:
    return {
        "spec": {"tenant": tenant, "year": year},
        "status": {
            "review": {"state": state},
            "estimatedAnnualCost": cost,
            "migrations": list(apps),
        },
    }


def test_each_unit_is_assessed_on_the_year_and_laggards_say_why() -> None:
    rows = assessment.build(
        2026,
        [
            tenant("busy", planned=2, completed=2, onTimePercent=100),
            tenant("idle", region="庐江县"),
            tenant("late", planned=3, completed=1, overdue=2, onTimePercent=50),
        ],
        [
            report("busy", "2026-01", "1000", "600", "60.00"),
            report("busy", "2026-02", "1000", "800", "80.00"),
            report("busy", "2025-12", "1000", "0", "999.00"),  # another year: not counted
            report("idle", "2026-03", "1000", "50", "5.00"),
            report("late", "2026-03", "100", "90", "9.00"),
        ],
        [
            plan("busy", 2026, "280.00"),
            plan(
                "idle",
                2026,
                "100.00",
                {"app": "档案系统", "targetDate": "2026-06-30", "found": False},
                {"app": "审批系统", "targetDate": "2027-06-30", "found": False},
                {"app": "门户", "targetDate": "2026-03-31", "found": True},
            ),
            plan("late", 2026, "50.00", state="Pending"),  # not approved: no budget
        ],
        TODAY,
    )
    by = {row.tenant: row for row in rows}
    busy, idle, late = by["busy"], by["idle"], by["late"]
    assert busy.utilisation("requests.cpu") == 70
    assert (busy.spend, busy.budget, busy.spend_percent) == (140, 280, 50)
    assert (busy.verdict, busy.reasons) == ("OnTrack", [])
    assert idle.payer == "county:庐江县"
    assert idle.name == "idle局"
    assert idle.apps_missing == ["档案系统 (target 2026-06-30)"]  # 审批系统 is not due yet
    assert idle.verdict == "Lagging"
    assert idle.reasons == [
        "cpu quota 5% used (below 20%)",
        "planned apps past their target with no MigrationPlan: 档案系统 (target 2026-06-30)",
    ]
    assert late.budget is None
    assert late.reasons == ["2 migrations overdue"]
    # The rule is the platform's.
    lenient = assessment.build(
        2026, [tenant("late", overdue=2)], [], [], TODAY, assessment.Rule(max_overdue=2)
    )
    assert lenient[0].verdict == "OnTrack"


def test_the_assessment_reads_as_csv_and_json() -> None:
    rows = assessment.build(
        2026,
        [tenant("busy", planned=1, completed=1)],
        [report("busy", "2026-01", "10", "5", "1.00")],
        [],
        TODAY,
    )
    text = assessment.to_csv(2026, rows)
    assert text.splitlines()[0].startswith("year,payer,tier,tenant,unit,name,cpu_used_percent")
    assert text.splitlines()[1].startswith("2026,city,city,busy,busy,busy局,50,,1.00,,,1,1,0,")
    found = json.loads(assessment.to_json(2026, rows))
    assert found["units"][0]["utilisationPercent"] == {"requests.cpu": 50, "requests.memory": None}
    assert found["units"][0]["verdict"] == "OnTrack"


def test_each_level_sees_the_budget_basis_of_its_approved_plans() -> None:
    tenants = [tenant("a", region="庐江县"), tenant("b", region="庐江县"), tenant("c")]
    plans = [
        plan("a", 2027, "100.00"),
        plan("b", 2027, "50.50"),
        plan("b", 2026, "999.00"),  # another year
        plan("c", 2027, "10.00", state="Pending"),  # not approved
        plan("gone", 2027, "7.00"),  # its tenant was deleted
    ]
    found = assessment.budgets(2027, tenants, plans)
    assert found == {
        "(unknown)": (1, Decimal("7.00")),
        "county:庐江县": (2, Decimal("150.50")),
    }
    text = assessment.budgets_csv(2027, found)
    assert "2027,county:庐江县,2,150.50" in text
    assert text.splitlines()[-1] == "2027,(all),3,157.50"
    assert json.loads(assessment.budgets_json(2027, found))["total"] == "157.50"
