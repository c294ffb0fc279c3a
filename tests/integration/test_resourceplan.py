"""ResourcePlans on the real API server: bad input, recorded approval under real RBAC, the cap."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from _billing_helpers import (
    APPROVERS,
    condition,
    decide,
    generation_of,
    lines,
    patch_plan,
    plan,
    reviewing_operator,
    unique,
    with_rate_card,
)

from govcloud.dev import cluster, testing

pytestmark = pytest.mark.integration

YEAR = datetime.datetime.now(datetime.UTC).year + 1  # next year's plan, filed this autumn
THIS_YEAR = YEAR - 1


@pytest.fixture(scope="module")
def operator_b(
    hub: cluster.ControlPlane, operator: testing.OperatorProcess, kubectl: testing.Kubectl
) -> Iterator[testing.OperatorProcess]:
    yield from reviewing_operator(hub, operator, kubectl)


@pytest.fixture(scope="module")
def rate_card(
    kubectl: testing.Kubectl, operator_b: testing.OperatorProcess
) -> Iterator[dict[str, Any]]:
    """For the module: the operator holds a finalizer on it (the metering timer), so it is
    deleted while the operator still runs, and never re-created while still terminating."""
    yield from with_rate_card(kubectl)


def refused(kubectl: testing.Kubectl, manifest: dict[str, Any]) -> str:
    result = kubectl.run("create", "-f", "-", stdin=testing.json_text(manifest))
    assert result.returncode != 0, f"accepted: {manifest}"
    return result.stderr


def test_bad_plans_and_rate_cards_are_refused_with_a_message_that_says_what_to_fix(
    kubectl: testing.Kubectl, crds: None
) -> None:
    negative = plan("jtj", YEAR, {"resources": {"requests.cpu": "-4"}, "reason": "x"})
    assert "must not be negative" in refused(kubectl, negative)
    assert "named <tenant>-<year>" in refused(kubectl, plan("jtj", YEAR, name="jtj-plan"))
    both = plan(
        "jtj", YEAR, {"offering": "ecs.2c4g", "resources": {"requests.cpu": "1"}, "reason": "x"}
    )
    assert "exactly one of" in refused(kubectl, both)
    assert "needs at least one line" in refused(
        kubectl, {**plan("jtj", YEAR), "spec": {"tenant": "jtj", "year": YEAR, "lines": []}}
    )
    bad_decision = plan(
        "jtj", YEAR, decision={"state": "Maybe", "by": "x", "reason": "x", "approvedGeneration": 0}
    )
    assert "Approved, Rejected or ChangesRequested" in refused(kubectl, bad_decision)
    assert "plan's calendar year" in refused(kubectl, plan("jtj", 1999))
    card: dict[str, Any] = {
        "apiVersion": "govcloud.io/v1alpha1",
        "kind": "RateCard",
        "metadata": {"name": "default"},
        "spec": {
            "rates": [{"resource": "requests.cpu", "price": "-1", "effectiveFrom": "2027-01-01"}]
        },
    }
    assert "non-negative decimals" in refused(kubectl, card)
    second = {**card, "metadata": {"name": "prices-2028"}, "spec": {"rates": []}}
    assert "one object named default" in refused(kubectl, second)


def test_a_second_plan_for_the_same_tenant_and_year_collides(
    kubectl: testing.Kubectl, crds: None
) -> None:
    tenant = unique("dup")
    kubectl.apply(plan(tenant, YEAR))
    try:
        assert "AlreadyExists" in refused(kubectl, plan(tenant, YEAR))
        changed = kubectl.run(
            "patch", "resourceplan", f"{tenant}-{YEAR}", "--type=merge",
            "-p", json.dumps({"spec": {"year": YEAR + 1}}),
        )  # fmt: skip
        assert changed.returncode != 0
        assert "year cannot change" in changed.stderr
    finally:
        kubectl.run("delete", "resourceplan", f"{tenant}-{YEAR}", "--wait=false")


def test_plan_problems_show_as_conditions_and_never_crash_the_operator(
    kubectl: testing.Kubectl, operator_b: testing.OperatorProcess, tenants: Any, rate_card: Any
) -> None:
    ghost = unique("ghost")
    owner = tenants.create("owner")
    cases = {
        f"{ghost}-{YEAR}": (plan(ghost, YEAR), "TenantNotFound", f"CloudTenant {ghost} does not"),
        f"{owner}-{YEAR}": (
            plan(owner, YEAR, {"offering": "ecs.64c", "reason": "x"}),
            "UnknownOffering",
            "offering ecs.64c is not in RateCard default"
            " (known offerings: disk.ssd.100g, ecs.2c4g)",
        ),
        f"{owner}-{THIS_YEAR - 1}": (plan(owner, THIS_YEAR - 1), "YearInPast", "is in the past"),
        f"{owner}-{YEAR + 1}": (
            plan(owner, YEAR + 1, {"resources": {"requests.nvidia.com/gpu": "2"}, "reason": "AI"}),
            "MissingRate",
            "no rate for requests.nvidia.com/gpu",
        ),
    }
    try:
        for manifest, _, _ in cases.values():
            kubectl.apply(manifest)
        for name, (_, reason, text) in cases.items():
            ready = testing.eventually(
                lambda name=name: condition(kubectl.get("resourceplan", name), "Ready") or None,
                what=f"{name} Ready condition",
            )
            assert ready["status"] == "False"
            assert ready["reason"] == reason
            assert text in ready["message"]
        assert operator_b.process is not None
        assert operator_b.process.poll() is None
    finally:
        for name in cases:
            kubectl.run("delete", "resourceplan", name, "--wait=false")


def test_a_department_files_its_plan_and_only_an_approver_decides_as_itself(
    kubectl: testing.Kubectl, operator_b: testing.OperatorProcess, tenants: Any, rate_card: Any
) -> None:
    name = tenants.create("jtj")
    other = tenants.create("other")
    admin = kubectl.impersonate("zhang.wei", f"{name}-admins")
    approver = kubectl.impersonate("li.approver", APPROVERS)
    plan_name = f"{name}-{YEAR}"
    testing.eventually(
        lambda: (
            admin.run("create", "-f", "-", stdin=testing.json_text(plan(name, YEAR))).returncode
            == 0
        ),
        what="the department admin to file its plan (self-view role and policy in place)",
    )
    try:
        # Filing for someone else's tenant is refused.
        foreign = admin.run("create", "-f", "-", stdin=testing.json_text(plan(other, YEAR)))
        assert foreign.returncode != 0
        assert f"may not file plans for tenant {other}" in foreign.stderr
        # The department edits its lines, but cannot decide its own plan.
        assert patch_plan(admin, plan_name, lines(("ecs.2c4g", 3))).returncode == 0
        own = patch_plan(
            admin,
            plan_name,
            decide(
                "Approved", "zhang.wei", generation=generation_of(kubectl, plan_name), groups=()
            ),
        )
        assert own.returncode != 0
        assert "only plan approvers" in own.stderr
        # An approver cannot write someone else's name into the record.
        read = generation_of(approver, plan_name)
        forged = patch_plan(
            approver, plan_name, decide("Approved", "wang.director", generation=read)
        )
        assert forged.returncode != 0
        assert "must be the user making the decision (li.approver)" in forged.stderr
        approved = patch_plan(
            approver, plan_name, decide("Approved", "li.approver", generation=read)
        )
        assert approved.returncode == 0, approved.stderr

        def reviewed() -> dict[str, Any] | None:
            review = ((kubectl.get("resourceplan", plan_name) or {}).get("status") or {}).get(
                "review"
            )
            return review if review and review.get("state") == "Approved" else None

        review = testing.eventually(reviewed, what="the approval recorded")
        assert review["decidedBy"] == "li.approver"
        assert review["reason"] == "符合年度预算"
        assert review["decidedAt"]
        status = kubectl.get("resourceplan", plan_name)["status"]  # type: ignore[index]
        assert status["ceiling"] == {"requests.cpu": "6", "requests.memory": "12Gi"}
        assert status["estimatedAnnualCost"]
        events = testing.eventually(
            lambda: [
                item
                for item in kubectl.json(
                    "get", "events", "-A", "--field-selector", f"involvedObject.name={plan_name}"
                )["items"]
                if item["reason"] == "PlanApproved"
            ],
            what="a PlanApproved event",
        )
        assert "li.approver" in events[0]["message"]
        # Approved means frozen for the department.
        frozen = patch_plan(admin, plan_name, lines(("ecs.2c4g", 9)))
        assert frozen.returncode != 0
        assert "approved and frozen" in frozen.stderr
        # Reopened and decided again: every decision stays on record, in order, for good.
        reopened = patch_plan(approver, plan_name, json.dumps({"spec": {"decision": None}}))
        assert reopened.returncode == 0, reopened.stderr
        testing.eventually(
            lambda: (
                ((kubectl.get("resourceplan", plan_name) or {}).get("status") or {})
                .get("review", {})
                .get("state")
                == "Pending"
            ),
            what="the plan reopened",
        )
        read = generation_of(approver, plan_name)
        rejected = patch_plan(
            approver, plan_name, decide("Rejected", "li.approver", generation=read)
        )
        assert rejected.returncode == 0, rejected.stderr

        def recorded() -> list[tuple[str, str | None]]:
            body = kubectl.get("resourceplan", plan_name) or {}
            history = (body.get("status") or {}).get("history") or []
            found = [(item["state"], item.get("by")) for item in history]
            return found if len(found) == 3 else []

        assert testing.eventually(recorded, what="three decisions on record") == [
            ("Approved", "li.approver"),
            ("Pending", None),
            ("Rejected", "li.approver"),
        ]
        wiped = kubectl.run(
            "patch", "resourceplan", plan_name, "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": {"history": []}}),
        )  # fmt: skip
        assert wiped.returncode != 0
        assert "append-only" in wiped.stderr
        removed = kubectl.run(
            "patch", "resourceplan", plan_name, "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": {"history": None}}),
        )  # fmt: skip
        assert removed.returncode != 0
        assert "cannot be removed" in removed.stderr
    finally:
        kubectl.run("delete", "resourceplan", plan_name, "--wait=false")


def earlier_report(kubectl: testing.Kubectl, tenant: str, period: str) -> str:
    """A closed UsageReport of an earlier month of a tenant of this name that was deleted, as
    metering leaves one (cpu quota 10.5% used); its name."""
    name, uid = f"{tenant}-{period}", str(uuid.uuid4())
    labels = {"govcloud.io/period": period, "govcloud.io/tenant": tenant}
    kubectl.apply(
        {
            "apiVersion": "govcloud.io/v1alpha1",
            "kind": "UsageReport",
            "metadata": {"name": name, "labels": {**labels, "govcloud.io/tenant-uid": uid}},
            "spec": {"tenant": tenant, "period": period, "tenantUID": uid},
        }
    )
    line = {"resource": "requests.cpu", "unit": "core", "charge": "12.34", "amount": "12.34"}
    line |= {"allocatedHours": "1000", "requestedHours": "105"}
    status = {"tier": "county", "currency": "CNY", "total": "12.34", "closed": True}
    kubectl(
        "patch", "usagereport", name, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": {**status, "resources": [line]}}),
    )  # fmt: skip
    return name


def assessment_metrics(operator: testing.OperatorProcess, tenant: str) -> dict[str, Any]:
    """The tenant's assessment as the operator's /metrics says, in the CLI's terms."""
    text = operator.metrics()
    lagging = [
        line for line in text.splitlines() if line.startswith("govcloud_assessment_lagging{")
    ]
    mine = [line for line in lagging if f'tenant="{tenant}"' in line]
    assert len(mine) <= 1, mine
    percent = {
        resource: int(
            100
            * operator.metric_value(
                "govcloud_assessment_quota_utilisation_ratio", tenant=tenant, resource=resource
            )
        )
        for resource in ("requests.cpu", "requests.memory")
    }
    return {
        "payer": mine[0].split('payer="')[1].split('"')[0] if mine else None,
        "verdict": "Lagging" if mine and mine[0].endswith(" 1.0") else "OnTrack",
        "reasons": operator.metric_value("govcloud_assessment_lagging_reasons", tenant=tenant),
        "utilisationPercent": percent,
        "spend": operator.metric_value("govcloud_assessment_spend_cny", tenant=tenant),
        "budget": operator.metric_value("govcloud_plan_estimated_annual_cost_cny", tenant=tenant),
    }


def assessment_cli(kubectl: testing.Kubectl, tenant: str) -> dict[str, Any]:
    """The tenant's row of `report assessment` for this year, in the metrics' terms."""
    out = subprocess.run(
        [sys.executable, "-m", "govcloud", "report", "assessment", "--format", "json"],
        env={**os.environ, "KUBECONFIG": str(kubectl.kubeconfig)},
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    row = next(unit for unit in json.loads(out)["units"] if unit["tenant"] == tenant)
    return {
        "payer": row["payer"],
        "verdict": row["verdict"],
        "reasons": float(len(row["reasons"])),
        "utilisationPercent": row["utilisationPercent"],
        "spend": float(row["spend"]),
        "budget": float(row["budget"] or 0),
    }


def reads_and_ticks(operator: testing.OperatorProcess) -> tuple[float, float]:
    """From one scrape: the operator's reads of UsageReports, and its metering ticks."""
    reads = ticks = 0.0
    for line in operator.metrics().splitlines():
        if line.startswith("govcloud_api_reads_total{") and 'kind="UsageReport"' in line:
            reads += float(line.rpartition(" ")[2])
        elif line.startswith("govcloud_metering_ticks_total{"):
            ticks += float(line.rpartition(" ")[2])
    return reads, ticks


def test_the_approved_plan_caps_the_tenant_and_without_one_the_starter_allowance_applies(
    kubectl: testing.Kubectl, operator_b: testing.OperatorProcess, tenants: Any, rate_card: Any
) -> None:
    name = unique("cap")
    # Metering has ticked: the year's earlier months it holds were read before this report.
    testing.eventually(
        lambda: operator_b.metric_value("govcloud_metering_last_tick_timestamp_seconds") > 0,
        what="a metering tick",
    )
    # Its name billed already this January (a tenant of the name that was deleted): the
    # year's assessment counts it, in `report assessment` and in the metrics alike.
    january = earlier_report(kubectl, name, f"{THIS_YEAR}-01")
    tenants.create(
        "cap", name=name, quota={"requests.cpu": "8", "requests.memory": "16Gi", "pods": "20"}
    )
    plan_name = f"{name}-{THIS_YEAR}"

    def within(reason: str) -> dict[str, Any] | None:
        found = tenants.condition(name, "WithinPlan")
        return found if found.get("reason") == reason else None

    starter = testing.eventually(lambda: within("NoApprovedPlan"), what="the starter allowance")
    assert starter["status"] == "False"
    assert "starter allowance" in starter["message"]
    hard = tenants.get(name)["status"]["quota"]["hard"]
    assert hard == {"requests.cpu": "2", "requests.memory": "4Gi", "pods": "20"}
    kubectl.apply(plan(name, THIS_YEAR, {"offering": "ecs.2c4g", "count": 3, "reason": "平台"}))
    approver = kubectl.impersonate("li.approver", APPROVERS)
    read = generation_of(approver, plan_name)
    approved = patch_plan(approver, plan_name, decide("Approved", "li.approver", generation=read))
    assert approved.returncode == 0, approved.stderr
    capped = testing.eventually(lambda: within("CappedByPlan"), what="the plan's cap")
    assert "requests.cpu 8 -> 6" in capped["message"]
    testing.eventually(
        lambda: (
            tenants.get(name)["status"]["quota"]["hard"]
            == {"requests.cpu": "6", "requests.memory": "12Gi", "pods": "20"}
        ),
        what="the tenant quota at the plan's ceiling",
    )
    quotas = kubectl.json("get", "resourcequotas", "-A", "-l", f"govcloud.io/tenant={name}")
    total = sum(int(item["spec"]["hard"]["requests.cpu"]) for item in quotas["items"])
    assert total <= 6
    # The level's budget basis counts the approved plan (report budget).
    cost = Decimal(kubectl.get("resourceplan", plan_name)["status"]["estimatedAnnualCost"])  # type: ignore[index]
    out = subprocess.run(
        [sys.executable, "-m", "govcloud", "report", "budget", "--year", str(THIS_YEAR),
         "--format", "json"],
        env={**os.environ, "KUBECONFIG": str(kubectl.kubeconfig)},
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    level = json.loads(out)["payers"]["county:(no region)"]
    assert level["approvedPlans"] >= 1
    assert Decimal(level["estimatedAnnualCost"]) >= cost
    # The annual assessment in the metrics is what `report assessment` says: January's report
    # and this month's (no pods: nothing requested), cpu quota 10% used, so Lagging.
    found: dict[str, Any] = {}

    def agree() -> bool:
        found["cli"] = assessment_cli(kubectl, name)
        found["metrics"] = assessment_metrics(operator_b, name)
        return bool(found["cli"] == found["metrics"])

    try:
        testing.eventually(agree, timeout=30, what="the assessment metrics to match the CLI")
    except testing.WaitTimeoutError:
        pytest.fail(f"metrics {found.get('metrics')} != report assessment {found.get('cli')}")
    assert found["cli"]["spend"] == 12.34  # January's, and nothing this month
    assert found["cli"]["budget"] == float(cost)
    assert found["cli"]["verdict"] == "Lagging"
    assert found["cli"]["utilisationPercent"]["requests.cpu"] == 10
    # At rest the assessment reads no report: a tick still LISTs UsageReports once (this and
    # last month's); the year's earlier months stay in memory.
    before = reads_and_ticks(operator_b)
    testing.eventually(
        lambda: reads_and_ticks(operator_b)[1] >= before[1] + 3, what="three metering ticks"
    )
    after = reads_and_ticks(operator_b)
    # One scrape may fall between a tick's LIST and its count: one read of slack.
    assert after[0] - before[0] <= after[1] - before[1] + 1, (before, after)
    kubectl.run("delete", "usagereport", january, "--wait=false")
    kubectl.run("delete", "resourceplan", plan_name, "--wait=false")
    testing.eventually(lambda: within("NoApprovedPlan"), what="back to the starter allowance")


def test_at_the_turn_of_the_year_last_years_approved_plan_caps_until_the_grace_ends(
    kubectl: testing.Kubectl, operator_b: testing.OperatorProcess, tenants: Any, rate_card: Any
) -> None:
    """Without this year's approved plan, the tenant keeps last year's cap (not the starter
    allowance) during the grace period, with a Warning. The test operator's grace period is
    the whole year (GOVCLOUD_PLAN_GRACE_DAYS=366), so "now" is in it whatever the date."""
    name = tenants.create(
        "grace", quota={"requests.cpu": "8", "requests.memory": "16Gi", "pods": "20"}
    )
    last_plan = f"{name}-{THIS_YEAR - 1}"
    kubectl.apply(plan(name, THIS_YEAR - 1, {"offering": "ecs.2c4g", "count": 3, "reason": "平台"}))
    try:
        approver = kubectl.impersonate("li.approver", APPROVERS)
        read = generation_of(approver, last_plan)
        approved = patch_plan(
            approver, last_plan, decide("Approved", "li.approver", generation=read)
        )
        assert approved.returncode == 0, approved.stderr

        def grace() -> dict[str, Any] | None:
            found = tenants.condition(name, "WithinPlan")
            return found if found.get("reason") == "LastYearsPlan" else None

        condition = testing.eventually(grace, what="last year's plan in the grace period")
        assert condition["status"] == "False"
        assert f"no approved ResourcePlan {name}-{THIS_YEAR} yet" in condition["message"]
        assert f"{last_plan} applies until" in condition["message"]
        testing.eventually(
            lambda: (
                tenants.get(name)["status"]["quota"]["hard"]
                == {"requests.cpu": "6", "requests.memory": "12Gi", "pods": "20"}
            ),
            what="the tenant quota at last year's ceiling, not the starter allowance",
        )
        testing.eventually(
            lambda: [
                item
                for item in kubectl.json(
                    "get", "events", "-A", "--field-selector", f"involvedObject.name={name}"
                )["items"]
                if item["type"] == "Warning" and item["reason"] == "LastYearsPlan"
            ],
            what="a Warning that the department must file this year's plan",
        )
    finally:
        kubectl.run("delete", "resourceplan", last_plan, "--wait=false")
    testing.eventually(
        lambda: tenants.condition(name, "WithinPlan").get("reason") == "NoApprovedPlan",
        what="the starter allowance once last year's plan is gone",
    )


def test_only_a_tenants_admins_file_its_plans_and_its_members_only_read_them(
    kubectl: testing.Kubectl, operator_b: testing.OperatorProcess, tenants: Any
) -> None:
    groups = unique("rbac")
    name = tenants.create(
        "filer",
        admins={"groups": [f"{groups}-admins"]},
        editors={"groups": [f"{groups}-editors"]},
        viewers={"groups": [f"{groups}-viewers"]},
    )
    tenants.wait_ready(name)
    admin = kubectl.impersonate("zhang.admin", f"{groups}-admins")
    editor = kubectl.impersonate("li.editor", f"{groups}-editors")
    viewer = kubectl.impersonate("wu.viewer", f"{groups}-viewers")
    stranger = kubectl.impersonate("mallory", "some-other-department")
    plan_name = f"{name}-{YEAR}"

    def can(who: testing.Kubectl, *args: str) -> bool:
        answer = who.run("auth", "can-i", *args).stdout.strip()
        assert answer in {"yes", "no"}, answer
        return answer == "yes"

    testing.eventually(
        lambda: can(admin, "fileplan", f"cloudtenants.govcloud.io/{name}"),
        what="the admins' plan-filer role in place",
    )
    # RBAC: only the admins hold `fileplan` on the tenant; nobody else, not even its members.
    assert not can(editor, "fileplan", f"cloudtenants.govcloud.io/{name}")
    assert not can(viewer, "fileplan", f"cloudtenants.govcloud.io/{name}")
    assert not can(stranger, "fileplan", f"cloudtenants.govcloud.io/{name}")
    # Reading: every member reads the tenant's own plans; a stranger reads no plan at all.
    assert can(viewer, "get", f"resourceplans.govcloud.io/{plan_name}")
    assert not can(viewer, "get", f"resourceplans.govcloud.io/someone-else-{YEAR}")
    assert not can(stranger, "get", f"resourceplans.govcloud.io/{plan_name}")
    assert not can(stranger, "list", "resourceplans.govcloud.io")

    # Admission: an editor and a viewer of the tenant are refused, its admin files the plan.
    for member in (editor, viewer, stranger):
        refused = member.run("create", "-f", "-", stdin=testing.json_text(plan(name, YEAR)))
        assert refused.returncode != 0
        assert f"may not file plans for tenant {name}" in refused.stderr, refused.stderr
    filed = testing.eventually(
        lambda: (
            admin.run("create", "-f", "-", stdin=testing.json_text(plan(name, YEAR))).returncode
            == 0
        ),
        what="the admin to file the plan",
    )
    assert filed
    try:
        assert viewer.run("get", "resourceplan", plan_name).returncode == 0
        assert stranger.run("get", "resourceplan", plan_name).returncode != 0
        edited = patch_plan(editor, plan_name, lines(("ecs.2c4g", 5)))
        assert edited.returncode != 0
        assert f"may not file plans for tenant {name}" in edited.stderr, edited.stderr
        assert patch_plan(admin, plan_name, lines(("ecs.2c4g", 5))).returncode == 0
    finally:
        kubectl.run("delete", "resourceplan", plan_name, "--wait=false")
