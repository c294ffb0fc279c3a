"""What `kubectl govcloud` prints: aligned tables (Chinese names included), JSON and YAML."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import yaml

from govcloud.billing import assessment
from govcloud.cli import views


def tenant(name: str, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "uid": "u-1"},
        "spec": {"displayName": "市交通运输局", "unit": {"code": "jtj", "tier": "city"}},
        "status": status,
    }


def test_a_table_aligns_columns_by_display_width_so_chinese_names_line_up() -> None:
    text = views.table(
        ("TENANT", "NAME", "TIER"),
        [("jtj", "市交通运输局", "city"), ("hightech-zone", "高新区管委会办公室", "devzone")],
    )
    lines = text.splitlines()
    assert lines[0].split() == ["TENANT", "NAME", "TIER"]
    tier_column = views.width(lines[0][: lines[0].index("TIER")])
    for line in lines[1:]:
        last = line.split()[-1]
        assert views.width(line[: line.index(last)]) == tier_column, text
    assert not any(line.endswith(" ") for line in lines)


def test_wide_characters_count_twice_and_combining_marks_not_at_all() -> None:
    assert views.width("abc") == 3
    assert views.width("交通") == 4
    assert views.width("ｅ") == 2  # full-width latin
    assert views.width("é") == 1  # e + combining acute


def test_render_prints_the_same_data_as_json_and_yaml_and_says_when_there_is_nothing() -> None:
    view = views.View(("A", "B"), [("1", "二")], data={"rows": [{"a": 1, "b": "二"}]})
    assert json.loads(views.render(view, "json")) == view.data
    assert "二" in views.render(view, "json")  # not escaped
    assert yaml.safe_load(views.render(view, "yaml")) == view.data
    empty = views.View(("A",), [], data={}, preamble=["USER: x"], empty="nothing here")
    assert views.render(empty) == "USER: x\nnothing here\n"
    with_rows = views.View(("A",), [("1",)], data={}, preamble=["USER: x"])
    assert views.render(with_rows) == "USER: x\n\nA\n1\n"


def test_percent_of_quantities_in_any_unit() -> None:
    assert views.percent("500m", "2") == "25%"
    assert views.percent("1Gi", "4Gi") == "25%"
    assert views.percent("1", "0") == ""
    assert views.percent(None, "2") == ""
    assert views.percent("x", "2") == ""


def test_whoami_lists_each_tenant_with_role_and_the_platform_roles_held() -> None:
    view = views.whoami_view(
        {"username": "alice", "groups": ["jtj-admins", "system:authenticated"]},
        [
            views.Membership("jtj", "市交通运输局", ["admin"], ["jtj-app"], files_plans=True),
            views.Membership("gaj", "市公安局", ["viewer"], [], suspended=True),
        ],
        {"planReviewer": True},
    )
    text = views.render(view)
    assert "USER:     alice" in text
    assert "plan reviewer (approve resourceplans)" in text
    assert "platform admin" not in text
    assert view.rows[0] == ("jtj", "市交通运输局", "admin", "yes", "jtj-app")
    assert view.rows[1][2] == "viewer (suspended: view only)"
    assert view.data["platform"] == {
        "platformAdmin": False,
        "readsEveryTenant": False,
        "planReviewer": True,
        "financeAdmin": False,
        "migrationApprover": False,
    }
    assert view.data["tenants"][0]["filesPlans"] is True
    level = views.whoami_view({"username": "zhao"}, [], {}, approves_for=["county:庐江县"])
    assert "plan reviewer of county:庐江县" in views.render(level)
    assert level.data["plansOfPayers"] == ["county:庐江县"]
    alone = views.render(views.whoami_view({"username": "bob", "groups": []}, [], {}))
    assert "TENANTS: none" in alone
    assert "PLATFORM: <none>" in alone


def test_ns_and_usage_show_each_namespace_and_the_tenant_totals() -> None:
    body = tenant(
        "jtj",
        namespaces=[
            {
                "name": "jtj-app",
                "phase": "Active",
                "quota": {"hard": {"requests.cpu": "1500m"}, "used": {"requests.cpu": "500m"}},
            },
            {"name": "jtj-db", "phase": "Conflict", "message": "owned by another tenant"},
        ],
        quota={"hard": {"requests.cpu": "2", "pods": "10"}, "used": {"requests.cpu": "500m"}},
        placement={"cluster": "baohe"},
    )
    ns = views.ns_view([body])
    assert ns.rows == [
        ("jtj", "jtj-app", "Active", "baohe", ""),
        ("jtj", "jtj-db", "Conflict", "baohe", "owned by another tenant"),
    ]
    usage = views.usage_view([body])
    assert ("jtj", "jtj-app", "requests.cpu", "500m", "1500m", "33%") in usage.rows
    assert ("jtj", "(tenant)", "requests.cpu", "500m", "2", "25%") in usage.rows
    assert ("jtj", "(tenant)", "pods", "0", "10", "0%") in usage.rows
    assert usage.data["tenants"][0]["hard"] == {"requests.cpu": "2", "pods": "10"}


def report(closed: bool) -> dict[str, Any]:
    return {
        "metadata": {"name": "jtj-2026-12"},
        "status": {
            "currency": "CNY",
            "total": "1.53",
            "closed": closed,
            "resources": [
                {
                    "resource": "requests.cpu",
                    "unit": "core",
                    "allocatedHours": "24.000000000",
                    "requestedHours": "12.5",
                    "charge": "1.20",
                }
            ],
        },
    }


def test_a_bill_shows_each_line_and_the_exact_total_of_the_report() -> None:
    billing = {"period": "2026-12", "charge": "1 CNY", "report": "jtj-2026-12"}
    view = views.bill_view([views.Bill("jtj", "2026-12", billing, report(closed=False))])
    assert view.rows[0] == (
        "jtj", "2026-12", "requests.cpu", "24.00 core-h", "12.50 core-h", "1.20",
    )  # fmt: skip
    assert view.rows[-1][2:] == ("total", "", "", "1.53 CNY (open, to date)")
    assert view.data["bills"][0]["chargeToDate"] == "1 CNY"
    closed = views.bill_view([views.Bill("jtj", "2026-12", billing, report(closed=True))])
    assert closed.rows[-1][-1] == "1.53 CNY (closed)"


def test_a_bill_without_a_readable_report_says_why() -> None:
    billing = {"period": "2026-12", "charge": "3 CNY"}
    now = views.bill_view([views.Bill("jtj", "2026-12", billing, None, "no UsageReport yet")])
    assert now.rows == [("jtj", "2026-12", "total", "", "", "3 CNY (to date, whole units)")]
    assert views.render(now).endswith("\n\njtj: no UsageReport yet\n")
    earlier = views.bill_view([views.Bill("jtj", "2025-01", billing, None, "not yours")])
    assert earlier.rows[0][-1] == "<none>"
    assert earlier.footer == ["jtj: not yours"]
    assert earlier.data["bills"][0]["chargeToDate"] is None


def test_plan_history_lists_every_decision_in_order() -> None:
    plan = {
        "metadata": {"name": "jtj-2027", "generation": 3},
        "spec": {"tenant": "jtj", "year": 2027},
        "status": {
            "estimatedAnnualCost": "1234.00",
            "currency": "CNY",
            "review": {"state": "Approved", "decidedBy": "li", "reason": "ok"},
            "history": [
                {
                    "state": "Rejected",
                    "by": "li",
                    "at": "2026-10-01T00:00:00Z",
                    "generation": 1,
                    "reason": "too much",
                },
                {
                    "state": "Approved",
                    "by": "li",
                    "at": "2026-10-02T00:00:00Z",
                    "generation": 2,
                    "reason": "ok",
                },
            ],
        },
    }
    view = views.plan_history_view(plan)
    assert [row[1] for row in view.rows] == ["Rejected", "Approved"]
    assert view.rows[0] == ("2026-10-01T00:00:00Z", "Rejected", "li", "1", "too much")
    text = views.render(view)
    assert "REVIEW: Approved by li: ok" in text
    assert "COST:   1234.00 CNY" in text
    assert view.data["history"] == plan["status"]["history"]
    pending = views.render(views.plan_history_view({"metadata": {"name": "x-2027"}}))
    assert "REVIEW: Pending" in pending
    assert "no decision yet" in pending


def test_migrations_show_phase_stage_deadline_and_whether_they_are_late() -> None:
    def plan(name: str, **status: Any) -> dict[str, Any]:
        return {
            "metadata": {"name": name, "namespace": "jtj-app"},
            "spec": {"app": {"name": name}, "deadline": "2027-06-30T00:00:00Z"},
            "status": status,
        }

    view = views.migrations_view(
        [
            plan(
                "permits",
                phase="Copying",
                progress=40,
                stages=[
                    {"name": "assess", "state": "Succeeded"},
                    {"name": "copy", "state": "Running"},
                ],
                conditions=[{"type": "DeadlineAtRisk", "status": "True"}],
            ),
            plan("buses", phase="Pending", conditions=[{"type": "Overdue", "status": "True"}]),
            plan(
                "done",
                phase="Completed",
                progress=100,
                stages=[{"name": "cutover", "state": "Succeeded"}],
            ),
            plan("fresh"),
        ]
    )
    by_name = {row[1]: row for row in view.rows}
    assert by_name["permits"][3:] == (
        "Copying",
        "copy (Running)",
        "40%",
        "2027-06-30T00:00:00Z",
        "AtRisk",
    )
    assert by_name["buses"][-1] == "Overdue"
    assert by_name["done"][4:] == ("cutover (Succeeded)", "100%", "2027-06-30T00:00:00Z", "done")
    assert by_name["fresh"][3:5] == ("Pending", "<none>")
    assert [row[1] for row in view.rows] == ["buses", "done", "fresh", "permits"]


def test_assess_shows_the_assessment_rows_and_prints_what_the_report_prints_as_json() -> None:
    tenants = [tenant("jtj", migrations={"planned": 2, "completed": 1, "overdue": 1})]
    rows = assessment.build(2026, tenants, [], [], date(2026, 12, 7))
    view = views.assess_view(2026, rows)
    assert view.rows[0][0] == "jtj"
    assert view.rows[0][7:10] == ("1/2", "1", "Lagging")
    assert view.data == json.loads(assessment.to_json(2026, rows))


def a_request(name: str, state: str = "Pending", by: str | None = None) -> dict[str, Any]:
    review: dict[str, Any] = {"state": state}
    if by:
        review |= {"decidedBy": by, "reason": "同意"}
    return {
        "metadata": {"name": name, "namespace": "jtj-app", "generation": 2},
        "spec": {"year": 2027, "direction": "Raise"},
        "status": {
            "tenant": "jtj",
            "change": {"requests.cpu": "2", "requests.memory": "4Gi"},
            "review": review,
            "history": [{"state": "Approved", "by": by, "at": "2027-03-01T08:00:00Z",
                         "generation": 1, "reason": "同意"}] if by else [],
        },
    }  # fmt: skip


def test_requests_show_what_each_changes_and_where_its_review_stands() -> None:
    view = views.requests_view([a_request("b-more", "Approved", "wang"), a_request("a-more")])
    assert [row[:2] for row in view.rows] == [("jtj-app", "a-more"), ("jtj-app", "b-more")]
    assert view.rows[1][4:] == ("requests.cpu=2, requests.memory=4Gi", "Approved", "wang")
    assert views.render(views.requests_view([]), "table").strip() == "no ResourceRequests"


def test_a_requests_history_names_it_its_change_and_every_decision() -> None:
    view = views.request_history_view(a_request("flood", "Approved", "wang"))
    assert view.preamble[0].startswith("REQUEST: jtj-app/flood (tenant jtj, year 2027, Raise")
    assert view.rows == [("2027-03-01T08:00:00Z", "Approved", "wang", "1", "同意")]
