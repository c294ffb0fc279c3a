"""A pass that fails is never silent (review M2): it is counted as an error, said in a Warning
Event on the object, and retried until the object converges."""

from __future__ import annotations

import json

import _tenant_helpers as helpers
import pytest

from govcloud.dev import testing

pytestmark = pytest.mark.integration


tenants = helpers.tenants


def refuse_status_policy(name: str, tenant: str) -> list[dict[str, object]]:
    """An admission policy that refuses every status write of the CloudTenant `tenant`."""
    return helpers.refusing_policy(
        name,
        {
            "apiGroups": ["govcloud.io"],
            "apiVersions": ["*"],
            "operations": ["UPDATE"],
            "resources": ["cloudtenants/status"],
        },
        f"object.metadata.name != {json.dumps(tenant)}",
        "status writes refused by the test",
    )


def test_a_failing_pass_is_counted_said_and_retried(
    kubectl: testing.Kubectl, operator: testing.OperatorProcess, tenants: helpers.Tenants
) -> None:
    name = helpers.unique("fails")
    policy = f"test-no-status-{name}"
    errors_before = operator.metric_value(
        "govcloud_reconcile_total", kind="CloudTenant", result="error"
    )
    tenants.create(name)
    helpers.wait_phase(kubectl, name, "Active")
    probe = json.dumps({"status": {"phase": "Active"}})
    try:
        for item in refuse_status_policy(policy, name):
            kubectl.apply(item)
        testing.eventually(
            lambda: kubectl.run(
                "patch", "cloudtenant", name, "--subresource=status", "--type=merge",
                "-p", probe, "--dry-run=server",
            ).returncode != 0,
            timeout=30,
            what="the test's policy to refuse the tenant's status writes",
        )  # fmt: skip
        tenants.patch(name, {"quota": {"requests.cpu": "3", "requests.memory": "4Gi"}})
        testing.eventually(
            lambda: any(
                event["reason"] == "ReconcileError" and "status writes refused" in event["message"]
                for event in helpers.events_for(kubectl, name)
            ),
            timeout=60,
            what="a Warning Event saying the pass failed",
        )
        assert (
            operator.metric_value("govcloud_reconcile_total", kind="CloudTenant", result="error")
            > errors_before
        )
    finally:
        kubectl.run("delete", "validatingadmissionpolicybinding", policy, "--ignore-not-found")
        kubectl.run("delete", "validatingadmissionpolicy", policy, "--ignore-not-found")
    helpers.wait_phase(kubectl, name, "Active", timeout=90)


def test_a_failing_pass_is_shown_as_a_condition_until_a_pass_succeeds(
    kubectl: testing.Kubectl, operator: testing.OperatorProcess, tenants: helpers.Tenants
) -> None:
    """Writes of the tenant itself (its finalizer) refused: the pass fails before it writes
    any status of its own; the failure is shown as `Reconciled=False`, and goes once the
    writes are let through and a pass succeeds."""
    name = helpers.unique("failshown")
    probe = f"{name}-probe"  # a tenant whose refused edit shows the policy in force
    tenants.create(probe)
    helpers.wait_phase(kubectl, probe, "Active")
    policy = f"test-no-update-{name}"
    refused = helpers.refusing_policy(
        policy,
        {
            "apiGroups": ["govcloud.io"],
            "apiVersions": ["*"],
            "operations": ["UPDATE"],
            "resources": ["cloudtenants"],
        },
        f"!(object.metadata.name in {json.dumps([name, probe])})",
        "tenant writes refused by the test",
    )
    edit = json.dumps({"metadata": {"labels": {"probe": "1"}}})
    try:
        for item in refused:
            kubectl.apply(item)
        testing.eventually(
            lambda: kubectl.run(
                "patch", "cloudtenant", probe, "--type=merge", "-p", edit, "--dry-run=server"
            ).returncode != 0,
            timeout=30,
            what="the test's policy to refuse writes of the tenants",
        )  # fmt: skip
        tenants.create(name)
        shown = helpers.wait_tenant(
            kubectl,
            name,
            lambda body: helpers.condition(body, "Reconciled").get("status") == "False",
            "Reconciled=False",
            timeout=60,
        )
        condition = helpers.condition(shown, "Reconciled")
        assert condition["reason"] == "ReconcileError", condition
        assert "tenant writes refused by the test" in condition["message"], condition
    finally:
        kubectl.run("delete", "validatingadmissionpolicybinding", policy, "--ignore-not-found")
        kubectl.run("delete", "validatingadmissionpolicy", policy, "--ignore-not-found")
    settled = helpers.wait_phase(kubectl, name, "Active", timeout=120)
    testing.eventually(
        lambda: not helpers.condition(kubectl.get("cloudtenant", name) or {}, "Reconciled"),
        timeout=30,
        what="Reconciled to go once a pass succeeded",
    )
    assert helpers.condition(settled, "Ready").get("status") == "True"
