"""Quota before access, always: bad quota input is refused at the door, and a namespace whose
quota cannot be written gives the tenant's members no access (review H2, M8).

The attacker's moves run against the real API server: a platform admin's typo in a quota key or
a LimitRange, and a quota write refused at run time for a reason no schema can see (here a
ValidatingAdmissionPolicy the test installs), with kubectl impersonating the tenant's admin.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import _tenant_helpers as helpers
import pytest

from govcloud.dev import testing

pytestmark = pytest.mark.integration

RBAC_PROPAGATION = 15.0


def create(kubectl: testing.Kubectl, manifest: dict[str, Any]) -> Any:
    return kubectl.run("create", "-f", "-", stdin=json.dumps(manifest, ensure_ascii=False))


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (
            {"quota": {"requests.cpu": "2", "requests.memroy": "4Gi"}},
            "quota key requests.memroy is not a ResourceQuota resource name",
        ),
        (
            {"quota": {"requests.cpu": "2", "limits.storage": "1Ti"}},
            "quota key limits.storage is not a ResourceQuota resource name",
        ),
        ({"quota": {"requests.cpu": "1e1000"}}, "must be a Kubernetes quantity"),
        (
            {"limitRange": {"default": {"cpu": "1", "foo": "2"}}},
            "limitRange key foo is not a container resource",
        ),
        (
            {"limitRange": {"default": {"cpu": "4"}, "max": {"cpu": "1"}}},
            "limitRange.default must not exceed limitRange.max",
        ),
        (
            {"limitRange": {"default": {"cpu": "1"}, "defaultRequest": {"cpu": "4"}}},
            "limitRange.defaultRequest must not exceed limitRange.default",
        ),
    ],
    ids=["misspelt-key", "limits-storage", "huge-exponent", "limit-key", "default>max", "req>def"],
)
def test_a_quota_or_limit_the_api_server_would_refuse_is_refused_at_create(
    kubectl: testing.Kubectl, crds: None, change: dict[str, Any], words: str
) -> None:
    name = helpers.unique("typo")
    manifest = helpers.tenant_manifest(name, admins={"users": [f"{name}-admin"]})
    manifest["spec"].update(change)

    result = create(kubectl, manifest)

    assert result.returncode != 0, "the tenant was accepted"
    assert words in result.stderr, result.stderr
    assert kubectl.get("cloudtenant", name) is None
    assert kubectl.get("namespace", f"{name}-apps") is None


def quota_denial(name: str, namespaces: list[str]) -> list[dict[str, Any]]:
    """A policy refusing every write of govcloud-quota in `namespaces` (a stand-in for a
    webhook, a missing RBAC verb or an API server that keeps failing)."""
    return helpers.refusing_policy(
        name,
        {
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "operations": ["CREATE", "UPDATE"],
            "resources": ["resourcequotas"],
        },
        f"!(object.metadata.namespace in {namespaces} && object.metadata.name == 'govcloud-quota')",
        "quota writes are refused here by the test",
    )


@pytest.fixture
def refused_quota(kubectl: testing.Kubectl) -> Iterator[str]:
    """A tenant name whose namespace `<name>-apps` cannot get its quota written."""
    name = helpers.unique("noquota")
    objects = quota_denial(f"deny-quota-{name}", [f"{name}-apps", f"{name}-probe"])
    kubectl("create", "namespace", f"{name}-probe")
    for manifest in objects:
        kubectl.apply(manifest)
    probe = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "govcloud-quota", "namespace": f"{name}-probe"},
        "spec": {"hard": {"pods": "1"}},
    }
    try:
        # The policy is live once it refuses a write (policies reach admission after a moment).
        testing.eventually(
            lambda: (
                "refused here by the test"
                in kubectl.run(
                    "create",
                    "--dry-run=server",
                    "-f",
                    "-",
                    stdin=json.dumps(probe),
                ).stderr
            ),
            timeout=30,
            what="the test's quota denial to be enforced",
        )
        yield name
    finally:
        kubectl.run("delete", "namespace", f"{name}-probe", "--wait=false")
        for manifest in reversed(objects):
            kubectl.run(
                "delete", manifest["kind"].lower(), manifest["metadata"]["name"], "--wait=false"
            )


def test_a_namespace_whose_quota_cannot_be_written_grants_no_access(
    kubectl: testing.Kubectl, operator: testing.OperatorProcess, refused_quota: str
) -> None:
    name = refused_quota
    namespace = f"{name}-apps"
    admin = f"{name}-admin"
    tenants = helpers.Tenants(kubectl)
    try:
        tenants.create(name, admins={"users": [admin]})

        body = helpers.wait_tenant(
            kubectl,
            name,
            lambda body: helpers.condition(body, "QuotaReady").get("status") == "False",
            what="QuotaReady=False",
        )

        quota = helpers.condition(body, "QuotaReady")
        assert quota["reason"] == "QuotaMissing", quota
        assert namespace in quota["message"], quota
        assert "refused here by the test" in quota["message"], quota
        assert helpers.condition(body, "AccessReady")["status"] == "False"
        assert helpers.condition(body, "Ready")["status"] == "False"
        assert kubectl.get("namespace", namespace) is not None
        assert kubectl.get("resourcequota", "govcloud-quota", namespace) is None
        assert kubectl.get("rolebinding", "govcloud-admin", namespace) is None
        can = kubectl.impersonate(admin).run("auth", "can-i", "create", "pods", "-n", namespace)
        assert can.stdout.strip() == "no", can.stdout + can.stderr
    finally:
        tenants.cleanup()


def test_access_follows_once_the_quota_can_be_written(
    kubectl: testing.Kubectl, operator: testing.OperatorProcess
) -> None:
    """The control: with the same spec and no denial, the quota lands and then access."""
    name = helpers.unique("quota-ok")
    namespace = f"{name}-apps"
    admin = f"{name}-admin"
    tenants = helpers.Tenants(kubectl)
    try:
        tenants.create(name, admins={"users": [admin]})
        body = helpers.wait_phase(kubectl, name, "Active")

        assert helpers.condition(body, "QuotaReady")["status"] == "True"
        assert kubectl.get("resourcequota", "govcloud-quota", namespace) is not None
        assert kubectl.get("rolebinding", "govcloud-admin", namespace) is not None
        testing.eventually(
            lambda: (
                kubectl.impersonate(admin)
                .run("auth", "can-i", "create", "pods", "-n", namespace)
                .stdout.strip()
                == "yes"
            ),
            timeout=RBAC_PROPAGATION,
            what=f"{admin} to be allowed to create pods in {namespace}",
        )
    finally:
        tenants.cleanup()
