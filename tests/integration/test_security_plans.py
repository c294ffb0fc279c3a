"""Plan decisions are bound to what was decided on and to who may decide (review M6).

Each attack is made by impersonation against the chart's review policy and roles on the real
API server; the second test removes the policy, to show the operator holds the line alone.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Iterator
from typing import Any

import pytest
from _billing_helpers import (
    APPROVERS,
    condition,
    decide,
    generation_of,
    install_review,
    lines,
    patch_plan,
    plan,
    reviewing_operator,
    with_rate_card,
)
from _chart_helpers import render

from govcloud.dev import cluster, testing

pytestmark = pytest.mark.integration

THIS_YEAR = datetime.datetime.now(datetime.UTC).year
POLICY_BINDING = "govcloud-resourceplan-review"


@pytest.fixture(scope="module")
def operator_b(
    hub: cluster.ControlPlane, operator: testing.OperatorProcess, kubectl: testing.Kubectl
) -> Iterator[testing.OperatorProcess]:
    yield from reviewing_operator(hub, operator, kubectl)


@pytest.fixture(scope="module")
def rate_card(
    kubectl: testing.Kubectl, operator_b: testing.OperatorProcess
) -> Iterator[dict[str, Any]]:
    yield from with_rate_card(kubectl)


def file_plan(kubectl: testing.Kubectl, admin: testing.Kubectl, tenant: str) -> str:
    manifest = plan(tenant, THIS_YEAR, {"offering": "ecs.2c4g", "count": 3, "reason": "平台"})
    testing.eventually(
        lambda: admin.run("create", "-f", "-", stdin=testing.json_text(manifest)).returncode == 0,
        what="the department admin to file its plan",
    )
    return str(manifest["metadata"]["name"])


def approval(kubectl: testing.Kubectl, name: str, reason: str) -> dict[str, Any]:
    return testing.eventually(
        lambda: (
            found
            if (found := condition(kubectl.get("resourceplan", name), "Approved")).get("reason")
            == reason
            else None
        ),
        what=f"{name}: Approved condition {reason}",
    )


def within_plan(tenants: Any, name: str, reason: str) -> dict[str, Any]:
    return testing.eventually(
        lambda: (
            found
            if (found := tenants.condition(name, "WithinPlan")).get("reason") == reason
            else None
        ),
        what=f"{name}: WithinPlan {reason}",
    )


def self_approval_admitted(admin: testing.Kubectl, name: str, decision: str) -> bool:
    """Whether the API server would take `decision` on plan `name` from the department admin."""
    result = admin.run(
        "patch", "resourceplan", name, "--type=merge", "-p", decision, "--dry-run=server"
    )
    return result.returncode == 0


@contextlib.contextmanager
def review_policy_removed(
    kubectl: testing.Kubectl, admin: testing.Kubectl, name: str
) -> Iterator[None]:
    """The plan-review policy unbound (a cluster where it is missing or not yet synced)."""
    self_decision = decide(
        "Approved", "zhang.wei", "policy probe", generation=generation_of(kubectl, name), groups=()
    )
    kubectl("delete", "validatingadmissionpolicybinding", POLICY_BINDING)
    try:
        testing.eventually(
            lambda: self_approval_admitted(admin, name, self_decision),
            what="the API server to stop enforcing the review policy",
        )
        yield
    finally:
        install_review(kubectl)
        testing.eventually(
            lambda: not self_approval_admitted(admin, name, self_decision),
            what="the review policy enforced again",
        )


def test_an_approval_of_lines_the_approver_never_saw_is_refused(
    kubectl: testing.Kubectl, operator_b: testing.OperatorProcess, tenants: Any, rate_card: Any
) -> None:
    name = tenants.create("bound")
    admin = kubectl.impersonate("zhang.wei", f"{name}-admins")
    approver = kubectl.impersonate("li.approver", APPROVERS)
    plan_name = file_plan(kubectl, admin, name)
    try:
        read = generation_of(approver, plan_name)
        # Between the approver's review and the approval, the department raises its lines.
        assert patch_plan(admin, plan_name, lines(("ecs.2c4g", 30))).returncode == 0
        stale = patch_plan(approver, plan_name, decide("Approved", "li.approver", generation=read))
        assert stale.returncode != 0
        assert f"must be the generation of the plan you decided on ({read + 1})" in stale.stderr
        # A decision cannot claim groups the decider is not in.
        claimed = patch_plan(
            approver,
            plan_name,
            decide("Approved", "li.approver", generation=read + 1, groups=("city-finance",)),
        )
        assert claimed.returncode != 0
        assert "may name only groups li.approver is in" in claimed.stderr
        # Read again, decide on what the plan says now: accepted, and honoured by the operator.
        now = generation_of(approver, plan_name)
        fresh = patch_plan(approver, plan_name, decide("Approved", "li.approver", generation=now))
        assert fresh.returncode == 0, fresh.stderr
        assert approval(kubectl, plan_name, "Approved")["status"] == "True"
    finally:
        kubectl.run("delete", "resourceplan", plan_name, "--wait=false")


def test_without_the_review_policy_the_operator_refuses_self_approval_and_edited_plans(
    kubectl: testing.Kubectl, operator_b: testing.OperatorProcess, tenants: Any, rate_card: Any
) -> None:
    name = tenants.create("alone", quota={"requests.cpu": "8", "requests.memory": "16Gi"})
    admin = kubectl.impersonate("zhang.wei", f"{name}-admins")
    approver = kubectl.impersonate("li.approver", APPROVERS)
    plan_name = file_plan(kubectl, admin, name)
    try:
        with review_policy_removed(kubectl, admin, plan_name):
            # The department approves its own plan: the API server lets it through now.
            own = decide(
                "Approved", "zhang.wei", generation=generation_of(admin, plan_name), groups=()
            )
            assert patch_plan(admin, plan_name, own).returncode == 0
            refused = approval(kubectl, plan_name, "DeciderNotApprover")
            assert refused["status"] == "False"
            assert "zhang.wei may not approve this plan" in refused["message"]
            assert within_plan(tenants, name, "NoApprovedPlan")["status"] == "False"
            events = kubectl.json(
                "get", "events", "-A", "--field-selector", f"involvedObject.name={plan_name}"
            )["items"]
            assert "DeciderNotApprover" in {event["reason"] for event in events}

            # A real approver approves: the cap applies.
            read = generation_of(approver, plan_name)
            real = decide("Approved", "li.approver", generation=read)
            assert patch_plan(approver, plan_name, real).returncode == 0
            assert approval(kubectl, plan_name, "Approved")["status"] == "True"
            assert "requests.cpu 8 -> 6" in within_plan(tenants, name, "CappedByPlan")["message"]

            # The department raises its lines after the approval: the approval no longer holds.
            assert patch_plan(admin, plan_name, lines(("ecs.2c4g", 4))).returncode == 0
            stale = approval(kubectl, plan_name, "DecisionStale")
            assert f"decided on generation {read}" in stale["message"]
            within_plan(tenants, name, "NoApprovedPlan")
            testing.eventually(
                lambda: tenants.get(name)["status"]["quota"]["hard"]["requests.cpu"] == "2",
                what="the tenant back at the starter allowance",
            )
    finally:
        kubectl.run("delete", "resourceplan", plan_name, "--wait=false")


# -- each level reviews the plans of the tenants it pays for (本级审核) ------------------------

LUJIANG = "county:庐江"
BUREAU = ("lujiang-bureau",)  # the group through which its approvers hold `approve`


@pytest.fixture
def lujiang_bureau(kubectl: testing.Kubectl) -> Iterator[testing.Kubectl]:
    """The chart's approver role for Lujiang county, bound to its data-resource bureau."""
    manifests = render(
        "--show-only",
        "templates/plan-approvers.yaml",
        "--set-json",
        f'planApprovers=[{{"payer": "{LUJIANG}", "groups": ["{BUREAU[0]}"]}}]',
    )
    for manifest in manifests:
        kubectl.apply(manifest)
    try:
        yield kubectl.impersonate("wang.lujiang", *BUREAU)
    finally:
        for manifest in manifests:
            kubectl.run("delete", manifest["kind"], manifest["metadata"]["name"])


def payer_of(kubectl: testing.Kubectl, name: str, payer: str) -> None:
    testing.eventually(
        lambda: (
            ((kubectl.get("resourceplan", name) or {}).get("status") or {}).get("payer") == payer
        ),
        what=f"{name}: status.payer {payer}",
    )


def test_a_level_decides_the_plans_it_pays_for_and_no_others(
    kubectl: testing.Kubectl,
    operator_b: testing.OperatorProcess,
    tenants: Any,
    rate_card: Any,
    lujiang_bureau: testing.Kubectl,
) -> None:
    ours = tenants.create("lj", unit={"code": "lujiang-water", "tier": "county", "region": "庐江"})
    theirs = tenants.create("fx", unit={"code": "feixi-water", "tier": "county", "region": "肥西"})
    plan_ours = file_plan(kubectl, kubectl.impersonate("zhang.wei", f"{ours}-admins"), ours)
    admin_theirs = kubectl.impersonate("zhang.wei", f"{theirs}-admins")
    plan_theirs = file_plan(kubectl, admin_theirs, theirs)
    try:
        payer_of(kubectl, plan_ours, LUJIANG)
        payer_of(kubectl, plan_theirs, "county:肥西")
        mine = decide(
            "Approved", "wang.lujiang", generation=generation_of(kubectl, plan_ours), groups=BUREAU
        )
        assert patch_plan(lujiang_bureau, plan_ours, mine).returncode == 0
        assert approval(kubectl, plan_ours, "Approved")["status"] == "True"

        other = decide(
            "Approved",
            "wang.lujiang",
            generation=generation_of(kubectl, plan_theirs),
            groups=BUREAU,
        )
        refused = patch_plan(lujiang_bureau, plan_theirs, other)
        assert refused.returncode != 0
        assert "govcloud:plan-approver:county:肥西" in refused.stderr
        # Nor may it change another level's plan in any other way.
        assert patch_plan(lujiang_bureau, plan_theirs, lines(("ecs.2c4g", 1))).returncode != 0

        with review_policy_removed(kubectl, admin_theirs, plan_theirs):
            assert patch_plan(lujiang_bureau, plan_theirs, other).returncode == 0
            ignored = approval(kubectl, plan_theirs, "DeciderNotApprover")
            assert "nor on payers.govcloud.io county:肥西" in ignored["message"]
    finally:
        for name in (plan_ours, plan_theirs):
            kubectl.run("delete", "resourceplan", name, "--wait=false")


# -- in-year requests (年中申请), decided by the same level ----------------------------------


def request_manifest(namespace: str, cpu: str) -> dict[str, Any]:
    return {
        "apiVersion": "govcloud.io/v1alpha1",
        "kind": "ResourceRequest",
        "metadata": {"name": "more-cpu", "namespace": namespace},
        "spec": {
            "year": THIS_YEAR,
            "lines": [{"resources": {"requests.cpu": cpu}, "reason": "汛期扩容"}],
        },
    }


def request_status(kubectl: testing.Kubectl, namespace: str) -> dict[str, Any]:
    found = kubectl.get("resourcerequest", "more-cpu", namespace) or {}
    return dict(found.get("status") or {})


def test_an_in_year_request_approved_by_its_level_moves_the_cap(
    kubectl: testing.Kubectl,
    operator_b: testing.OperatorProcess,
    tenants: Any,
    rate_card: Any,
    lujiang_bureau: testing.Kubectl,
) -> None:
    name = tenants.create(
        "yr",
        unit={"code": "lujiang-roads", "tier": "county", "region": "庐江"},
        quota={"requests.cpu": "8", "requests.memory": "16Gi"},
    )
    namespace = f"{name}-app"
    admin = kubectl.impersonate("zhang.wei", f"{name}-admins")
    plan_name = file_plan(kubectl, admin, name)
    try:
        payer_of(kubectl, plan_name, LUJIANG)
        approve = decide(
            "Approved", "wang.lujiang", generation=generation_of(kubectl, plan_name), groups=BUREAU
        )
        assert patch_plan(lujiang_bureau, plan_name, approve).returncode == 0
        assert "requests.cpu 8 -> 6" in within_plan(tenants, name, "CappedByPlan")["message"]

        # The department's admin files a request in its own namespace: kubectl-native.
        filed = admin.run(
            "create", "-f", "-", stdin=testing.json_text(request_manifest(namespace, "1"))
        )
        assert filed.returncode == 0, filed.stderr
        testing.eventually(
            lambda: (
                request_status(kubectl, namespace).get("change") == {"requests.cpu": "1"}
                and request_status(kubectl, namespace).get("payer") == LUJIANG
            ),
            what="the request resolved against the approved plan",
        )
        listed = admin.run("get", "resourcerequests", "-n", namespace)
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.split()[:6] == [
            "NAME",
            "YEAR",
            "DIRECTION",
            "TENANT",
            "PAYER",
            "REVIEW",
        ]
        # Nobody else's: another tenant's admin neither reads nor files there.
        other = kubectl.impersonate("li.si", "someone-else-admins")
        assert other.run("get", "resourcerequests", "-n", namespace).returncode != 0
        # The department does not approve its own request.
        generation = generation_of_request(kubectl, namespace)
        own = decide("Approved", "zhang.wei", generation=generation, groups=())
        refused = admin.run(
            "patch", "resourcerequest", "more-cpu", "-n", namespace, "--type=merge", "-p", own
        )
        assert refused.returncode != 0
        assert "may not set spec.decision" in refused.stderr

        # Its level's bureau approves: the cap moves by the request.
        mine = decide("Approved", "wang.lujiang", generation=generation, groups=BUREAU)
        approved = lujiang_bureau.run(
            "patch", "resourcerequest", "more-cpu", "-n", namespace, "--type=merge", "-p", mine
        )
        assert approved.returncode == 0, approved.stderr
        capped = testing.eventually(
            lambda: (
                found
                if "requests.cpu 8 -> 7"
                in (found := within_plan(tenants, name, "CappedByPlan"))["message"]
                else None
            ),
            what="the cap raised by the approved request",
        )
        assert "with 1 approved ResourceRequest(s)" in capped["message"]
        # Nor does it take an approved request back by deleting it (a Lower would raise its cap).
        deleted = admin.run("delete", "resourcerequest", "more-cpu", "-n", namespace)
        assert deleted.returncode != 0
        assert "forbidden" in deleted.stderr.lower()
        history = request_status(kubectl, namespace)["history"]
        assert [(entry["state"], entry["by"]) for entry in history] == [
            ("Approved", "wang.lujiang")
        ]
    finally:
        kubectl.run("delete", "resourcerequest", "more-cpu", "-n", namespace, "--wait=false")
        kubectl.run("delete", "resourceplan", plan_name, "--wait=false")


def generation_of_request(kubectl: testing.Kubectl, namespace: str) -> int:
    found = kubectl.get("resourcerequest", "more-cpu", namespace)
    assert found is not None, "the request is gone"
    return int(found["metadata"]["generation"])
