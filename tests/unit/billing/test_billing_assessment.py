"""The annual assessment: utilisation, spend vs the approved plan, migrations, and the verdict."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

from govcloud.billing import assessment, periods

TODAY = date(2026, 12, 7)
LABEL = "govcloud.io/period"


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


# -- the operator's year so far: the earlier months held, the rest as listed ----------------


def labelled(body: dict[str, Any]) -> dict[str, Any]:
    """A report as the API server holds it: named and labelled by its period."""
    spec = body["spec"]
    name = f"{spec['tenant']}-{spec['period']}"
    return {**body, "metadata": {"name": name, "labels": {"govcloud.io/period": spec["period"]}}}


YEAR_REPORTS = [
    labelled(report("busy", f"2026-{month:02d}", "720", str(40 * month), f"{month}.{month:02d}"))
    for month in range(1, 13)
] + [
    labelled(report("idle", "2026-02", "1000", "10", "0.10")),
    labelled(report("idle", "2026-11", "1000", "30", "0.33")),
    labelled(report("busy", "2025-10", "1000", "1000", "999.00")),  # last year: not counted
    labelled(report("gone", "2026-05", "10", "10", "7.00")),  # no tenant now
]


def units(rows: list[assessment.Row]) -> list[assessment.Row]:
    """The rows of units with a tenant (the ones the operator exports)."""
    return [row for row in rows if row.tenant in ("busy", "idle")]


def test_the_earlier_months_are_those_before_the_previous_one_of_the_same_year() -> None:
    assert assessment.earlier_months(periods.Period(2026, 1)) == []
    assert assessment.earlier_months(periods.Period(2026, 2)) == []
    assert assessment.earlier_months(periods.Period(2026, 3)) == ["2026-01"]
    assert assessment.earlier_months(periods.Period(2026, 12)) == [
        f"2026-{month:02d}" for month in range(1, 11)
    ]


def test_earlier_months_held_and_the_rest_listed_assess_as_every_report_of_the_year() -> None:
    tenants = [tenant("busy", planned=2, overdue=1), tenant("idle", region="庐江县")]
    plans = [plan("busy", 2026, "200.00"), plan("idle", 2026, "1.00")]
    whole = assessment.build(2026, tenants, YEAR_REPORTS, plans, TODAY)
    for month in range(1, 13):
        period = periods.Period(2026, month)
        months = assessment.earlier_months(period)
        held = assessment.EarlierMonths()
        assert held.due(period) == months
        held.load(period, [r for r in YEAR_REPORTS if r["metadata"]["labels"][LABEL] in months])
        assert held.due(period) is None
        # What metering lists each tick: this and the previous month, by the same label.
        recent = {period.name, period.previous().name}
        listed = [r for r in YEAR_REPORTS if r["metadata"]["labels"][LABEL] in recent]
        upto = [r for r in YEAR_REPORTS if r["metadata"]["labels"][LABEL] <= period.name]
        expected = units(assessment.build(2026, tenants, upto, plans, TODAY))
        found = units(assessment.build(2026, tenants, listed, plans, TODAY, earlier=held.sums()))
        assert assessment.to_json(2026, found) == assessment.to_json(2026, expected), month
    # By December that is the whole year; spend and utilisation are the sums of every month.
    assert assessment.to_json(2026, found) == assessment.to_json(2026, units(whole))
    busy = {row.tenant: row for row in found}["busy"]
    assert busy.spend == sum(Decimal(f"{m}.{m:02d}") for m in range(1, 13))
    assert busy.utilisation_ratio("requests.cpu") == Decimal(40 * 78) / (720 * 12)
    assert busy.utilisation("requests.cpu") == 36
    assert busy.verdict == "Lagging"
    assert busy.reasons == ["1 migrations overdue"]


def test_what_is_held_follows_the_units_that_exist() -> None:
    period = periods.Period(2026, 12)
    held = assessment.EarlierMonths()
    held.load(period, YEAR_REPORTS)
    assert set(held.sums()) == {"busy", "idle", "gone"}
    held.keep(["busy", "idle"])
    assert set(held.sums()) == {"busy", "idle"}
    held.forget("idle")
    assert len(held) == 1
    # A unit met for the first time: its earlier months (by the period label) from its own
    # reports' LIST; this and the previous month are not held (metering lists them).
    held.learn(period, "idle", [r for r in YEAR_REPORTS if r["spec"]["tenant"] == "idle"])
    assert held.sums()["idle"].spend == Decimal("0.10")
    held.learn(period, "busy", [])
    assert "busy" not in held.sums()
    # Nothing is learnt for a month not held (the next load reads every unit anyway).
    held.learn(periods.Period(2027, 3), "busy", YEAR_REPORTS)
    assert "busy" not in held.sums()
