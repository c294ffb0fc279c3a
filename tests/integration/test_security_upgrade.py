"""A tenant stored before the member rules (review M9) keeps no forbidden member's access.

An older release accepted `system:authenticated` or another namespace's ServiceAccount as a
member and bound it. After the upgrade the CRD refuses such specs, but the stored tenant and
its bindings are still there: the operator marks the tenant InvalidSpec and withdraws exactly
the forbidden subjects from the bindings it made, keeping every other member's access.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import _tenant_helpers as helpers
import pytest

from govcloud.dev import testing

pytestmark = pytest.mark.integration

Manifest = dict[str, Any]
CRD = "cloudtenants.govcloud.io"
FORBIDDEN_RULE_MARKS = ("startsWith('system:')", "service accounts must come from the tenant")


tenants = helpers.tenants


def without_member_rules(node: Any) -> Any:
    """The CRD schema as an older release shipped it: no rule about member subjects."""
    if isinstance(node, dict):
        kept = {key: without_member_rules(value) for key, value in node.items()}
        rules = kept.get("x-kubernetes-validations")
        if isinstance(rules, list):
            kept["x-kubernetes-validations"] = [
                rule
                for rule in rules
                if not any(mark in json.dumps(rule) for mark in FORBIDDEN_RULE_MARKS)
            ]
            if not kept["x-kubernetes-validations"]:
                del kept["x-kubernetes-validations"]
        return kept
    if isinstance(node, list):
        return [without_member_rules(item) for item in node]
    return node


def install_older_crd(kubectl: testing.Kubectl) -> None:
    current = kubectl.get("crd", CRD)
    assert current is not None
    older = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD},
        "spec": without_member_rules(copy.deepcopy(current["spec"])),
    }
    assert older["spec"] != current["spec"], "the member rules were not found in the CRD"
    kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=json.dumps(older))
    # The API server takes up a CRD's new schema a moment after the write.
    probe = helpers.tenant_manifest("older-crd-probe", admins={"groups": ["system:authenticated"]})
    testing.eventually(
        lambda: (
            kubectl.run("create", "--dry-run=server", "-f", "-", stdin=json.dumps(probe)).returncode
            == 0
        ),
        what="the older CRD's schema in force",
    )


def subjects(kubectl: testing.Kubectl, namespace: str) -> list[Manifest]:
    binding = kubectl.get("rolebinding", "govcloud-admin", namespace)
    return list((binding or {}).get("subjects") or [])


def can_create_pods(kubectl: testing.Kubectl, namespace: str, *identity: str) -> bool:
    result = kubectl.run("auth", "can-i", "create", "pods", "-n", namespace, *identity)
    return result.stdout.strip() == "yes"


def test_a_stored_tenant_loses_its_forbidden_members_and_keeps_the_rest(
    kubectl: testing.Kubectl, tenants: helpers.Tenants
) -> None:
    name = helpers.unique("upg")
    namespace = f"{name}-apps"
    admin = f"{name}-admin"
    tenants.create(name, admins={"users": [admin]})
    helpers.wait_phase(kubectl, name, "Active")
    everyone = ("--as=someone-else", "--as-group=system:authenticated")
    try:
        install_older_crd(kubectl)
        tenants.patch(
            name,
            {
                "admins": {
                    "users": [admin],
                    "groups": ["system:authenticated"],
                    "serviceAccounts": ["kube-system/default"],
                }
            },
        )
        helpers.wait_tenant(
            kubectl,
            name,
            lambda body: helpers.condition(body, "Ready").get("reason") == "InvalidSpec",
            what="InvalidSpec for the members the operator no longer accepts",
        )
        # What the older release had bound for that spec.
        older_subjects = [
            *subjects(kubectl, namespace),
            {
                "kind": "Group",
                "apiGroup": "rbac.authorization.k8s.io",
                "name": "system:authenticated",
            },
            {"kind": "ServiceAccount", "name": "default", "namespace": "kube-system"},
        ]
        kubectl(
            "patch", "rolebinding", "govcloud-admin", "-n", namespace, "--type=merge",
            "-p", json.dumps({"subjects": older_subjects}),
        )  # fmt: skip
    finally:
        kubectl.apply_crds()

    testing.eventually(
        lambda: not can_create_pods(kubectl, namespace, *everyone),
        timeout=30,
        what="system:authenticated to lose admin in the tenant's namespace",
    )
    assert not can_create_pods(kubectl, namespace, "--as=system:serviceaccount:kube-system:default")
    assert can_create_pods(kubectl, namespace, f"--as={admin}"), "the real admin lost access"
    assert [item["name"] for item in subjects(kubectl, namespace)] == [admin]
    testing.eventually(
        lambda: any(
            event["reason"] == "AccessWithdrawn" and "system:authenticated" in event["message"]
            for event in helpers.events_for(kubectl, name)
        ),
        timeout=30,
        what="a Warning that names the withdrawn member",
    )
    # Fixed spec: the tenant is managed again, with exactly its members.
    tenants.patch(name, {"admins": {"users": [admin], "groups": None, "serviceAccounts": None}})
    helpers.wait_phase(kubectl, name, "Active")
    assert [item["name"] for item in subjects(kubectl, namespace)] == [admin]
