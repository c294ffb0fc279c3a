"""An in-year request's pass: its tenant and payer from the namespace, its change, the review."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any, cast

from _status_patch import merge_status

from govcloud.k8s import client
from govcloud.reconcile import request

NOW = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
Manifest = dict[str, Any]


class Hub:
    """A namespace of tenant jtj (a Lujiang county unit) with its approved 2027 plan, and one
    request; SubjectAccessReviews allow only wang.lujiang, on Lujiang's payer."""

    def __init__(self, body: Manifest, namespace_tenant: str | None = "jtj") -> None:
        self.body = body
        self.namespace_tenant = namespace_tenant
        self.reviews: list[Manifest] = []

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Any:
        if kind == "Namespace":
            labels = {"govcloud.io/tenant": self.namespace_tenant} if self.namespace_tenant else {}
            return {"metadata": {"name": name, "labels": labels}}
        if kind == "CloudTenant":
            return {"spec": {"unit": {"tier": "county", "region": "庐江"}}}
        if kind == "ResourceRequest":
            return copy.deepcopy(self.body)
        if kind == "ResourcePlan" and name == "jtj-2027":
            return {
                "metadata": {"name": name, "generation": 2},
                "spec": {"decision": {"state": "Approved", "approvedGeneration": 1}},
                "status": {
                    "ceiling": {"requests.cpu": "8"},
                    "review": {"state": "Approved", "observedGeneration": 2},
                },
            }
        return None

    def patch_status(
        self, api_version: str, kind: str, name: str, status: Manifest, namespace: str
    ) -> Manifest:
        return merge_status(self.body, status)

    def create(self, manifest: Manifest) -> Manifest:
        self.reviews.append(manifest)
        spec = manifest["spec"]
        asked = spec["resourceAttributes"]
        allowed = spec["user"] == "wang.lujiang" and asked.get("name") == "county:庐江"
        return {**manifest, "status": {"allowed": allowed}}


def a_request(generation: int = 1, decision: Manifest | None = None) -> Manifest:
    spec: Manifest = {
        "year": 2027,
        "lines": [{"resources": {"requests.cpu": "2"}, "count": 2, "reason": "汛期扩容"}],
    }
    if decision is not None:
        spec["decision"] = decision
    return {
        "metadata": {"name": "flood", "namespace": "jtj-app", "generation": generation},
        "spec": spec,
    }


def run(hub: Hub) -> request.Result:
    return request.reconcile(cast(client.Cluster, hub), "jtj-app", "flood", object(), now=NOW)


def condition(hub: Hub, type_: str) -> Manifest:
    return next(c for c in hub.body["status"]["conditions"] if c["type"] == type_)


def test_a_filed_request_is_read_against_its_tenants_approved_plan() -> None:
    hub = Hub(a_request())
    result = run(hub)
    status = hub.body["status"]
    assert (status["tenant"], status["payer"]) == ("jtj", "county:庐江")
    assert status["change"] == {"requests.cpu": "4"}
    assert condition(hub, "Ready")["status"] == "True"
    assert status["review"]["state"] == "Pending"
    assert result.tenant_affected  # Ready now: the tenant's cap may move once it is approved


def test_its_levels_approver_decides_it_and_the_tenant_is_re_capped() -> None:
    decided = {"state": "Approved", "by": "wang.lujiang", "reason": "同意", "approvedGeneration": 1}
    hub = Hub(a_request(2, decided))
    result = run(hub)
    assert hub.body["status"]["review"]["state"] == "Approved"
    assert [entry["by"] for entry in hub.body["status"]["history"]] == ["wang.lujiang"]
    assert result.tenant == "jtj"
    assert result.tenant_affected
    assert [event.reason for event in result.events] == ["RequestApproved"]


def test_anyone_else_is_not_honoured() -> None:
    decided = {
        "state": "Approved",
        "by": "zhang.wei",
        "reason": "自己批准",
        "approvedGeneration": 1,
    }
    hub = Hub(a_request(2, decided))
    run(hub)
    assert hub.body["status"]["review"]["state"] == "Pending"
    assert condition(hub, "Approved")["reason"] == "DeciderNotApprover"


def test_a_request_outside_a_tenants_namespaces_moves_nothing() -> None:
    hub = Hub(a_request(), namespace_tenant=None)
    result = run(hub)
    assert condition(hub, "Ready")["reason"] == "NotATenantNamespace"
    assert "tenant" not in hub.body["status"]
    assert result.tenant is None
