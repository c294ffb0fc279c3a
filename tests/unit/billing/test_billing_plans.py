"""Plans: ceiling from offerings and raw lines, the annual estimate, the cap, the review."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from govcloud.api.v1alpha1 import ratecard, resourceplan
from govcloud.billing import periods, plans, rating, statement

TZ = periods.zone(8)
NOW = datetime(2026, 10, 1, tzinfo=UTC)


def table() -> rating.RateTable:
    return rating.table(
        ratecard.RateCardSpec.model_validate(
            {
                "rates": [
                    {"resource": "requests.cpu", "price": "0.10", "effectiveFrom": "2026-01-01"},
                    {"resource": "requests.memory", "price": "0.01", "effectiveFrom": "2026-01-01"},
                ],
                "tierMultipliers": {"devzone": "0.5"},
                "offerings": [
                    {
                        "name": "ecs.4c8g",
                        "resources": {"requests.cpu": "4", "requests.memory": "8Gi"},
                    }
                ],
            }
        ),
        TZ,
    )


def plan(
    *lines: dict[str, object], decision: dict[str, str] | None = None
) -> resourceplan.ResourcePlanSpec:
    spec: dict[str, object] = {"tenant": "jtj", "year": 2027, "lines": list(lines)}
    if decision:
        spec["decision"] = decision
    return resourceplan.ResourcePlanSpec.model_validate(spec)


def test_ceiling_adds_offerings_and_raw_lines_times_count() -> None:
    spec = plan(
        {"offering": "ecs.4c8g", "count": 3, "reason": "平台扩容"},
        {
            "resources": {"requests.cpu": "500m", "requests.storage": "100Gi"},
            "count": 2,
            "reason": "db",
        },
    )
    found = plans.ceiling(spec, table().offerings)
    assert found.hard == {
        "requests.cpu": "13",
        "requests.memory": "24Gi",
        "requests.storage": "200Gi",
    }
    assert found.problems == []


def test_an_unknown_offering_is_a_problem_that_names_the_known_ones() -> None:
    found = plans.ceiling(plan({"offering": "ecs.99c", "reason": "x"}), table().offerings)
    assert found.problems == [
        "line 1: offering ecs.99c is not in RateCard default (known offerings: ecs.4c8g)"
    ]


def test_annual_cost_is_the_ceiling_held_all_year() -> None:
    cost, missing = plans.annual_cost(
        {"requests.cpu": "1", "requests.memory": "1Gi"}, table(), "city", 2027, TZ
    )
    assert cost == Decimal("0.11") * 8760
    assert missing == []
    devzone, _ = plans.annual_cost({"requests.cpu": "1"}, table(), "devzone", 2028, TZ)
    assert devzone == Decimal("0.05") * 8784  # leap year


def test_annual_cost_names_unpriced_resources() -> None:
    _, missing = plans.annual_cost({"requests.nvidia.com/gpu": "2"}, table(), "city", 2027, TZ)
    assert missing == ["requests.nvidia.com/gpu"]


def test_the_approved_ceiling_caps_the_quota_per_resource() -> None:
    cap = plans.effective_quota(
        {"requests.cpu": "64", "requests.memory": "64Gi", "pods": "100"},
        {"requests.cpu": "32", "requests.memory": "128Gi"},
        plan="jtj-2027",
        starter={},
    )
    assert cap.quota == {"requests.cpu": "32", "requests.memory": "64Gi", "pods": "100"}
    assert (cap.status, cap.reason) == ("False", "CappedByPlan")
    assert "requests.cpu 64 -> 32" in cap.message


def test_within_the_plan_nothing_changes() -> None:
    cap = plans.effective_quota({"requests.cpu": "8"}, {"requests.cpu": "8"}, plan="p", starter={})
    assert cap.quota == {"requests.cpu": "8"}
    assert (cap.status, cap.reason) == ("True", "WithinPlan")


def test_without_an_approved_plan_the_starter_allowance_applies() -> None:
    cap = plans.effective_quota(
        {"requests.cpu": "64", "pods": "10"},
        None,
        plan="jtj-2027",
        starter={"requests.cpu": "2"},
    )
    assert cap.quota == {"requests.cpu": "2", "pods": "10"}
    assert cap.reason == "NoApprovedPlan"
    assert "jtj-2027" in cap.message
    assert "requests.cpu=2" in cap.message


def test_review_records_who_and_keeps_the_time_it_was_first_seen() -> None:
    decision = resourceplan.Decision(state="Approved", by="li.approver", reason="符合预算")
    first = plans.review(decision, None, 3, NOW)
    assert first == {
        "state": "Approved",
        "decidedBy": "li.approver",
        "decidedAt": "2026-10-01T00:00:00Z",
        "reason": "符合预算",
        "observedGeneration": 3,
    }
    later = plans.review(decision, first, 4, datetime(2026, 10, 2, tzinfo=UTC))
    assert later == first
    reopened = plans.review(None, first, 5, NOW)
    assert reopened == {"state": "Pending", "pendingSince": "2026-10-01T00:00:00Z"}
    # Still pending a day later: the time it started waiting is kept.
    assert plans.review(None, reopened, 5, datetime(2026, 10, 2, tzinfo=UTC)) == reopened


def test_a_plan_never_decided_is_pending_since_it_was_filed() -> None:
    filed = "2026-09-20T08:00:00Z"
    assert plans.review(None, None, 1, NOW, created=filed) == {
        "state": "Pending",
        "pendingSince": filed,
    }


def test_statement_totals_are_the_sum_of_the_reports_with_tier_subtotals() -> None:
    def report(tenant: str, tier: str, total: str, period: str = "2027-01") -> dict[str, object]:
        return {
            "spec": {"tenant": tenant, "period": period},
            "status": {
                "tier": tier,
                "currency": "CNY",
                "total": total,
                "closed": True,
                "resources": [{"resource": "requests.cpu", "charge": total}],
            },
        }

    found = statement.build(
        "2027-01",
        [
            report("a", "county", "1.10"),
            report("b", "city", "2.25"),
            report("c", "city", "0.01"),
            report("d", "city", "9.99", period="2026-12"),
        ],
    )
    assert [row.tenant for row in found.rows] == ["b", "c", "a"]
    assert found.tier_totals() == {"city": Decimal("2.26"), "county": Decimal("1.10")}
    assert found.total == Decimal("3.36")
    text = statement.to_csv(found)
    assert text.splitlines()[0] == "period,payer,tier,tenant,unit,name,requests.cpu,total,closed"
    assert "2027-01,(all),(all),(total),,,,3.36," in text
    assert '"total": "3.36"' in statement.to_json(found)


def test_statements_subtotal_by_paying_level_and_one_level_reads_only_its_own() -> None:
    def report(tenant: str, tier: str, region: str | None, total: str) -> dict[str, object]:
        unit = {"code": f"{tenant}-code", "name": f"{tenant}单位", "region": region}
        status: dict[str, object] = {
            "tier": tier,
            "total": total,
            "unit": {key: value for key, value in unit.items() if value},
            "resources": [{"resource": "requests.cpu", "charge": total}],
        }
        if tenant != "old":  # a report written before payers were recorded
            status["payer"] = statement.payer_of(tier, region)
        return {"spec": {"tenant": tenant, "period": "2027-01"}, "status": status}

    found = statement.build(
        "2027-01",
        [
            report("lj1", "county", "庐江县", "1.00"),
            report("lj2", "county", "庐江县", "2.00"),
            report("fd", "county", "肥东县", "4.00"),
            report("gx", "devzone", "高新区", "8.00"),
            report("city", "city", None, "16.00"),
            report("old", "county", "庐江县", "32.00"),
            report("lost", "county", None, "64.00"),
        ],
    )
    assert found.payer_totals() == {
        "city": Decimal("16.00"),
        "county:(no region)": Decimal("64.00"),
        "county:庐江县": Decimal("35.00"),
        "county:肥东县": Decimal("4.00"),
        "devzone:高新区": Decimal("8.00"),
    }
    lujiang = found.for_payer("county:庐江县")
    assert [row.tenant for row in lujiang.rows] == ["lj1", "lj2", "old"]
    assert lujiang.total == Decimal("35.00")
    text = statement.to_csv(lujiang)
    assert "2027-01,county:庐江县,county,lj1,lj1-code,lj1单位,1.00,1.00,false" in text
    assert "肥东" not in text
    assert ",fd," not in text
    assert "2027-01,county:庐江县,,(subtotal),,,,35.00," in text
    assert '"county:庐江县": "35.00"' in statement.to_json(lujiang)


def _migration(
    name: str, app: str, phase: str, created: str, completed: str | None = None
) -> dict[str, object]:
    status: dict[str, object] = {"phase": phase, "progress": 100 if phase == "Completed" else 40}
    if completed:
        status["completedAt"] = completed
    return {
        "metadata": {"namespace": "jtj-app", "name": name, "creationTimestamp": created},
        "spec": {"app": {"name": app}},
        "status": status,
    }


def test_planned_apps_link_to_the_tenants_migration_plans_by_app_name() -> None:
    planned = [
        resourceplan.PlannedMigration.model_validate(
            {"app": "公交调度系统", "targetDate": "2027-06-30"}
        ),
        resourceplan.PlannedMigration.model_validate(
            {"app": "出租车监管", "targetDate": "2027-03-31"}
        ),
        resourceplan.PlannedMigration.model_validate(
            {"app": "停车诱导", "targetDate": "2027-09-30"}
        ),
    ]
    found = [
        _migration("bus-old", "公交调度系统", "RolledBack", "2027-01-02T00:00:00Z"),
        _migration("bus", "公交调度系统", "Copying", "2027-02-01T00:00:00Z"),
        _migration(
            "taxi", "出租车监管", "Completed", "2027-01-05T00:00:00Z", "2027-04-02T08:00:00Z"
        ),
        _migration("taxi-retry", "出租车监管", "Failed", "2027-05-01T00:00:00Z"),
    ]
    linked = plans.link_migrations(planned, found)
    assert linked == [
        {
            "app": "公交调度系统",
            "targetDate": "2027-06-30",
            "found": True,
            "migrationPlan": "jtj-app/bus",  # the newest of the two
            "phase": "Copying",
            "progress": 40,
            "completed": False,
        },
        {
            "app": "出租车监管",
            "targetDate": "2027-03-31",
            "found": True,
            "migrationPlan": "jtj-app/taxi",  # a Completed one wins over a newer failed retry
            "phase": "Completed",
            "progress": 100,
            "completed": True,
            "completedAt": "2027-04-02T08:00:00Z",
            "onTime": False,  # two days late
        },
        {"app": "停车诱导", "targetDate": "2027-09-30", "found": False},
    ]
    assert plans.link_migrations(planned[:1], []) == [
        {"app": "公交调度系统", "targetDate": "2027-06-30", "found": False}
    ]


def _review(state: str, by: str = "", at: str = "", generation: int = 0) -> dict[str, object]:
    if state == "Pending":
        return {"state": state, "pendingSince": at}
    return {
        "state": state,
        "decidedBy": by,
        "decidedAt": at,
        "reason": "预算",
        "observedGeneration": generation,
    }


def test_the_history_keeps_every_decision_and_reopening_in_order_once_each() -> None:
    filed = plans.history([], _review("Pending", at="2026-10-01T00:00:00Z"))
    assert filed == []  # filed, not decided: nothing to record yet
    first = plans.history(filed, _review("ChangesRequested", "li", "2026-10-02T00:00:00Z", 2))
    again = plans.history(first, _review("ChangesRequested", "li", "2026-10-02T00:00:00Z", 2))
    assert again == first  # the same decision seen on a later pass: recorded once
    reopened = plans.history(again, _review("Pending", at="2026-10-03T00:00:00Z"))
    approved = plans.history(reopened, _review("Approved", "wang", "2026-10-04T00:00:00Z", 4))
    assert [(item["state"], item.get("by"), item["at"]) for item in approved] == [
        ("ChangesRequested", "li", "2026-10-02T00:00:00Z"),
        ("Pending", None, "2026-10-03T00:00:00Z"),
        ("Approved", "wang", "2026-10-04T00:00:00Z"),
    ]
    assert approved[-1]["generation"] == 4
    assert approved[-1]["reason"] == "预算"
    assert approved[:2] == reopened  # earlier entries are never rewritten


def test_the_history_stops_growing_at_its_bound() -> None:
    full = [
        {"state": "Approved", "by": "li", "at": f"2026-10-{day:02d}T00:00:00Z"}
        for day in range(1, resourceplan.MAX_HISTORY + 1)
    ]
    assert plans.history(full, _review("Rejected", "li", "2026-12-01T00:00:00Z")) == full
