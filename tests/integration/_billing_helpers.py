"""Shared by the billing integration tests: the review policy, a rate card, a billing operator."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

from govcloud.dev import cluster, testing

REPO_ROOT = testing.REPO_ROOT
BILLING_FILES = REPO_ROOT / "charts" / "govcloud-operator" / "files" / "billing"
PLAN_REVIEW = BILLING_FILES / "plan-review.yaml"
REQUEST_REVIEW = BILLING_FILES / "request-review.yaml"
APPROVERS = "govcloud:plan-approvers"
CPU_PRICE = "0.12"
STARTER = "requests.cpu=2,requests.memory=4Gi"

RATE_CARD: dict[str, Any] = {
    "apiVersion": "govcloud.io/v1alpha1",
    "kind": "RateCard",
    "metadata": {"name": "default"},
    "spec": {
        "currency": "CNY",
        "rates": [
            {"resource": "requests.cpu", "price": CPU_PRICE, "effectiveFrom": "2020-01-01"},
            {"resource": "requests.memory", "price": "0.015", "effectiveFrom": "2020-01-01"},
            {"resource": "requests.storage", "price": "0.0005", "effectiveFrom": "2020-01-01"},
        ],
        "tierMultipliers": {"county": "0.8", "devzone": "0.9"},
        "offerings": [
            {
                "name": "ecs.2c4g",
                "displayName": "通用型 2核4G",
                "resources": {"requests.cpu": "2", "requests.memory": "4Gi"},
            },
            {"name": "disk.ssd.100g", "resources": {"requests.storage": "100Gi"}},
        ],
    },
}


def billing_operator(
    hub: cluster.ControlPlane, shared: testing.OperatorProcess
) -> Iterator[testing.OperatorProcess]:
    """The shared operator paused; one with fast metering and requireApprovedPlan instead."""
    shared.stop()
    process = testing.OperatorProcess(
        hub.kubeconfig,
        REPO_ROOT / ".cache" / "logs" / "operator-billing.log",
        env={
            "GOVCLOUD_RESYNC_SECONDS": "5",
            "GOVCLOUD_PLATFORM_NAMESPACES": "monitoring",
            "GOVCLOUD_METERING_INTERVAL_SECONDS": "1",
            # Every report written every tick: the tests count ticks by the reports' samples.
            "GOVCLOUD_METERING_CHECKPOINT_SECONDS": "0",
            "GOVCLOUD_REQUIRE_APPROVED_PLAN": "true",
            "GOVCLOUD_STARTER_ALLOWANCE": STARTER,
            # The whole year is the grace period: last year's approved plan still caps a
            # tenant without this year's (test_resourceplan.py; none of the other tests files
            # a plan for last year).
            "GOVCLOUD_PLAN_GRACE_DAYS": "366",
        },
    ).start()
    try:
        yield process
    finally:
        process.stop()
        shared.start()


def reviewing_operator(
    hub: cluster.ControlPlane, shared: testing.OperatorProcess, kubectl: testing.Kubectl
) -> Iterator[testing.OperatorProcess]:
    """`billing_operator`, with the chart's plan-review policy installed for as long as it runs."""
    install_review(kubectl)
    try:
        yield from billing_operator(hub, shared)
    finally:
        remove_review(kubectl)


def install_review(kubectl: testing.Kubectl) -> None:
    """The chart's plan and request review roles and policies."""
    for path in (PLAN_REVIEW, REQUEST_REVIEW):
        kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))


def remove_review(kubectl: testing.Kubectl) -> None:
    """Gone again, so that a chart installed later in the session can own these objects."""
    for path in (PLAN_REVIEW, REQUEST_REVIEW):
        kubectl.run("delete", "--ignore-not-found", "--wait=false", "-f", str(path))


def with_rate_card(kubectl: testing.Kubectl) -> Iterator[dict[str, Any]]:
    """RateCard default for the test; deleted after it, so metering stops for other tests."""
    kubectl.apply(RATE_CARD)
    yield RATE_CARD
    kubectl.run("delete", "ratecard", "default", "--timeout=60s")


def patch_plan(kubectl: testing.Kubectl, name: str, body: str) -> subprocess.CompletedProcess[str]:
    return kubectl.run("patch", "resourceplan", name, "--type=merge", "-p", body)


def lines(*items: tuple[str, int]) -> str:
    return json.dumps(
        {"spec": {"lines": [{"offering": o, "count": n, "reason": "扩容"} for o, n in items]}}
    )


def plan(tenant: str, year: int, *lines: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "govcloud.io/v1alpha1",
        "kind": "ResourcePlan",
        "metadata": {"name": spec.pop("name", f"{tenant}-{year}")},
        "spec": {
            "tenant": tenant,
            "year": year,
            "lines": list(lines) or [{"offering": "ecs.2c4g", "count": 2, "reason": "业务系统"}],
            **spec,
        },
    }


def decide(
    state: str,
    by: str,
    reason: str = "符合年度预算",
    *,
    generation: int | None,
    groups: tuple[str, ...] = (APPROVERS,),
) -> str:
    """A decision patch bound to the plan `generation` the approver read (None: unbound)."""
    decision: dict[str, Any] = {"state": state, "by": by, "reason": reason, "groups": list(groups)}
    if generation is not None:
        decision["approvedGeneration"] = generation
    return json.dumps({"spec": {"decision": decision}})


def generation_of(kubectl: testing.Kubectl, name: str) -> int:
    found = kubectl.get("resourceplan", name)
    assert found is not None, f"ResourcePlan {name} is gone"
    return int(found["metadata"]["generation"])


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:5]}"


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    for item in ((obj or {}).get("status") or {}).get("conditions") or []:
        if item["type"] == type_:
            return dict(item)
    return {}
