"""A plan decision counts only when bound to the plan's content and made by an approver."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from _status_patch import merge_status

from govcloud.k8s import client
from govcloud.reconcile import plan

NOW = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
YEAR = 2026
APPROVERS = {"li.approver"}
APPROVER_GROUPS = {"govcloud:plan-approvers"}
Manifest = dict[str, Any]


class Hub:
    """The few calls a plan pass makes; SubjectAccessReviews answered from APPROVERS."""

    def __init__(self, body: Manifest) -> None:
        self.plan = body
        self.reviews: list[Manifest] = []

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Any:
        if kind == "ResourcePlan":
            return copy.deepcopy(self.plan) if name == self.plan["metadata"]["name"] else None
        if kind == "CloudTenant":
            return {"spec": {"unit": {"tier": "city"}}}
        return None

    def list(self, api_version: str, kind: str, **_: Any) -> list[Manifest]:
        return []

    def patch_status(self, api_version: str, kind: str, name: str, status: Manifest) -> Manifest:
        return merge_status(self.plan, status)

    def create(self, manifest: Manifest) -> Manifest:
        assert manifest["kind"] == "SubjectAccessReview"
        self.reviews.append(manifest)
        spec = manifest["spec"]
        allowed = spec["user"] in APPROVERS or bool(APPROVER_GROUPS & set(spec["groups"]))
        return {**manifest, "status": {"allowed": allowed}}


def body(generation: int, decision: Manifest | None = None) -> Manifest:
    spec: Manifest = {
        "tenant": "jtj",
        "year": YEAR,
        "lines": [{"resources": {"requests.cpu": "4"}, "count": 1, "reason": "x"}],
    }
    if decision is not None:
        spec["decision"] = decision
    return {
        "metadata": {"name": f"jtj-{YEAR}", "generation": generation},
        "spec": spec,
    }


def decision(by: str = "li.approver", generation: int | None = 1, **extra: Any) -> Manifest:
    found: Manifest = {"state": "Approved", "by": by, "reason": "ok", **extra}
    if generation is not None:
        found["approvedGeneration"] = generation
    return found


def run(hub: Hub) -> plan.Result:
    return plan.reconcile(cast(client.Cluster, hub), f"jtj-{YEAR}", object(), now=NOW)


def reasons(result: plan.Result) -> list[str]:
    """The Events of the pass about the decision (no RateCard here: NoRateCard aside)."""
    return [event.reason for event in result.events if event.reason != "NoRateCard"]


def approved(hub: Hub) -> Manifest:
    return next(c for c in hub.plan["status"]["conditions"] if c["type"] == "Approved")


def test_a_decision_on_the_generation_read_by_an_approver_is_honoured() -> None:
    hub = Hub(body(2, decision(generation=1)))
    result = run(hub)
    assert hub.plan["status"]["review"]["state"] == "Approved"
    assert approved(hub)["status"] == "True"
    assert reasons(result) == ["PlanApproved"]
    assert hub.reviews[0]["spec"]["user"] == "li.approver"
    assert hub.reviews[0]["spec"]["resourceAttributes"]["verb"] == "approve"
    assert plan.approved_ceiling(cast(client.Cluster, hub), "jtj", YEAR) is not None


def test_a_recorded_decision_is_not_asked_about_again_on_resync() -> None:
    hub = Hub(body(2, decision(generation=1)))
    run(hub)
    run(hub)
    assert len(hub.reviews) == 1


def test_lines_edited_after_the_decision_leave_the_plan_unapproved() -> None:
    hub = Hub(body(2, decision(generation=1)))
    run(hub)
    hub.plan["spec"]["lines"][0]["count"] = 2  # the filer changes the lines
    hub.plan["metadata"]["generation"] = 3
    assert plan.approved_ceiling(cast(client.Cluster, hub), "jtj", YEAR) is None
    result = run(hub)
    assert hub.plan["status"]["review"]["state"] == "Pending"
    assert (approved(hub)["status"], approved(hub)["reason"]) == ("False", "DecisionStale")
    assert "decided on generation 1, now 3" in approved(hub)["message"]
    assert reasons(result) == ["DecisionStale"]
    assert plan.approved_ceiling(cast(client.Cluster, hub), "jtj", YEAR) is None


def test_a_decision_naming_no_generation_is_not_honoured() -> None:
    hub = Hub(body(2, decision(generation=None)))
    run(hub)
    assert approved(hub)["reason"] == "DecisionUnbound"
    assert hub.plan["status"]["review"]["state"] == "Pending"
    assert not hub.reviews
    assert plan.approved_ceiling(cast(client.Cluster, hub), "jtj", YEAR) is None


@pytest.mark.parametrize(
    ("by", "groups", "honoured"),
    [
        ("mallory", [], False),
        ("mallory", ["some-department"], False),
        ("wang.approver", ["govcloud:plan-approvers"], True),
    ],
)
def test_only_a_decider_the_api_server_says_may_approve_is_honoured(
    by: str, groups: list[str], honoured: bool
) -> None:
    hub = Hub(body(2, decision(by=by, groups=groups)))
    result = run(hub)
    assert hub.reviews[0]["spec"]["groups"] == [*groups, "system:authenticated"]
    if honoured:
        assert approved(hub)["status"] == "True"
        return
    assert (approved(hub)["status"], approved(hub)["reason"]) == ("False", "DeciderNotApprover")
    assert f"{by}" in approved(hub)["message"]
    assert hub.plan["status"]["review"]["state"] == "Pending"
    assert reasons(result) == ["DeciderNotApprover"]
    assert plan.approved_ceiling(cast(client.Cluster, hub), "jtj", YEAR) is None
    run(hub)  # the same refusal again: no second Warning
    assert not reasons(run(hub))


def test_an_approval_written_again_on_a_new_generation_counts_from_then() -> None:
    hub = Hub(body(2, decision(generation=1)))
    run(hub)
    first = hub.plan["status"]["review"]["decidedAt"]
    hub.plan["spec"]["lines"][0]["count"] = 2  # the approver edited the lines, re-approved
    hub.plan["spec"]["decision"]["approvedGeneration"] = 3
    hub.plan["metadata"]["generation"] = 4
    later = datetime(2026, 10, 2, tzinfo=UTC)
    plan.reconcile(cast(client.Cluster, hub), f"jtj-{YEAR}", object(), now=later)
    review = hub.plan["status"]["review"]
    assert review["observedGeneration"] == 4
    assert review["decidedAt"] != first
    assert plan.approved_ceiling(cast(client.Cluster, hub), "jtj", YEAR) is not None


class CountyHub(Hub):
    """The tenant is paid for by county `region`; only wang.lujiang approves, Lujiang's plans."""

    def __init__(self, body: Manifest, region: str) -> None:
        super().__init__(body)
        self.region = region

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Any:
        if kind == "CloudTenant":
            return {"spec": {"unit": {"tier": "county", "region": self.region}}}
        return super().get(api_version, kind, name, namespace)

    def create(self, manifest: Manifest) -> Manifest:
        self.reviews.append(manifest)
        spec = manifest["spec"]
        asked = spec["resourceAttributes"]
        allowed = spec["user"] == "wang.lujiang" and asked == {
            "group": "govcloud.io",
            "verb": "approve",
            "resource": "payers",
            "name": "county:庐江",
        }
        return {**manifest, "status": {"allowed": allowed}}


def test_a_level_approver_decides_the_plans_of_the_tenants_it_pays_for() -> None:
    hub = CountyHub(body(2, decision(by="wang.lujiang", generation=1)), "庐江")
    run(hub)
    assert hub.plan["status"]["payer"] == "county:庐江"
    assert approved(hub)["status"] == "True"
    asked = [review["spec"]["resourceAttributes"].get("resource") for review in hub.reviews]
    assert asked == ["resourceplans", "payers"]


def test_a_level_approver_does_not_decide_another_levels_plans() -> None:
    hub = CountyHub(body(2, decision(by="wang.lujiang", generation=1)), "肥西")
    result = run(hub)
    assert hub.plan["status"]["payer"] == "county:肥西"
    assert approved(hub)["reason"] == "DeciderNotApprover"
    assert "nor on payers.govcloud.io county:肥西" in approved(hub)["message"]
    assert "DeciderNotApprover" in reasons(result)


def test_an_approved_plan_counts_its_planned_apps_past_their_date_without_a_migration() -> None:
    planned = body(2, decision(generation=1))
    planned["spec"]["migrations"] = [
        {"app": "档案系统", "targetDate": "2026-06-30"},  # past, no MigrationPlan
        {"app": "审批系统", "targetDate": "2026-12-31"},  # not due yet
    ]
    result = run(Hub(planned))
    assert result.snapshot is not None
    assert result.snapshot.state == "Approved"
    assert result.snapshot.apps_missing == 1


CARD = {
    "metadata": {"name": "default", "generation": 1},
    "spec": {
        "currency": "CNY",
        "rates": [
            {"resource": "requests.cpu", "price": "0.12", "effectiveFrom": "2026-01-01"},
            {"resource": "requests.memory", "price": "0.015", "effectiveFrom": "2026-01-01"},
        ],
        "offerings": [
            {"name": "ecs.4c8g", "resources": {"requests.cpu": "4", "requests.memory": "8Gi"}}
        ],
    },
}


class VanishingHub(Hub):
    """A hub whose tenant and RateCard can go; it counts the status writes."""

    def __init__(self, body: Manifest) -> None:
        super().__init__(body)
        self.card: Manifest | None = copy.deepcopy(CARD)
        self.tenant: Manifest | None = {"spec": {"unit": {"tier": "city"}}}
        self.writes = 0

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Any:
        if kind == "RateCard":
            return copy.deepcopy(self.card)
        if kind == "CloudTenant":
            return copy.deepcopy(self.tenant)
        return super().get(api_version, kind, name, namespace)

    def patch_status(self, api_version: str, kind: str, name: str, status: Manifest) -> Manifest:
        self.writes += 1
        return super().patch_status(api_version, kind, name, status)


def test_a_plan_whose_tenant_and_rate_card_went_is_written_once_then_left_alone() -> None:
    ordered = body(1)
    ordered["spec"]["lines"] = [{"offering": "ecs.4c8g", "count": 1, "reason": "x"}]
    hub = VanishingHub(ordered)
    run(hub)
    assert hub.plan["status"]["ceiling"] == {"requests.cpu": "4", "requests.memory": "8Gi"}
    assert "estimatedAnnualCost" in hub.plan["status"]
    hub.card, hub.tenant = None, None
    run(hub)
    # The offering resolves to nothing without the card: the stored ceiling is emptied (each
    # key sent as null: a merge patch keeps the keys it does not name) and the cost goes.
    assert hub.plan["status"]["ceiling"] == {}
    assert "estimatedAnnualCost" not in hub.plan["status"]
    written = hub.writes
    run(hub)
    run(hub)
    assert hub.writes == written, "a pass over an unchanged plan wrote its status again"
