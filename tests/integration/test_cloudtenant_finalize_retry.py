"""A CloudTenant whose finalization fails once is retried until it is done (review M3): kopf
stops an object's timers when its deletion begins, so the retry cannot hang on them."""

from __future__ import annotations

import json

import _tenant_helpers as helpers
import pytest

from govcloud.dev import testing

pytestmark = pytest.mark.integration


tenants = helpers.tenants


def keep_namespace_policy(name: str, namespace: str) -> list[dict[str, object]]:
    """An admission policy that refuses deleting `namespace`, to anyone (the operator too)."""
    return helpers.refusing_policy(
        name,
        {
            "apiGroups": [""],
            "apiVersions": ["*"],
            "operations": ["DELETE"],
            "resources": ["namespaces"],
        },
        f"oldObject.metadata.name != {json.dumps(namespace)}",
        "kept for a moment by the test",
    )


def deletable(kubectl: testing.Kubectl, namespace: str) -> bool:
    return kubectl.run("delete", "namespace", namespace, "--dry-run=server").returncode == 0


def test_a_finalization_that_failed_is_retried_without_any_other_event(
    kubectl: testing.Kubectl, tenants: helpers.Tenants
) -> None:
    name = helpers.unique("retry")
    namespace = f"{name}-apps"
    policy = f"test-keep-{name}"
    tenants.create(name)
    helpers.wait_phase(kubectl, name, "Active")
    try:
        for item in keep_namespace_policy(policy, namespace):
            kubectl.apply(item)
        testing.eventually(
            lambda: not deletable(kubectl, namespace),
            timeout=30,
            what="the test's policy to keep the namespace",
        )
        kubectl("delete", "cloudtenant", name, "--wait=false")
        testing.eventually(
            lambda: any(
                event["reason"] == "CleanupFailed" for event in helpers.events_for(kubectl, name)
            ),
            timeout=60,
            what="the first finalization to fail on the namespace",
        )
    finally:
        kubectl.run("delete", "validatingadmissionpolicybinding", policy, "--ignore-not-found")
        kubectl.run("delete", "validatingadmissionpolicy", policy, "--ignore-not-found")
    # Nothing about the tenant changes from here on: only a retry can finish the deletion.
    testing.eventually(
        lambda: kubectl.get("cloudtenant", name) is None,
        timeout=60,
        what="the tenant's finalization to be retried and to finish",
    )
    found = kubectl.get("namespace", namespace)
    assert found is None or found["metadata"].get("deletionTimestamp"), "namespace kept"
