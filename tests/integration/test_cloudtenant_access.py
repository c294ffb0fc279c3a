"""Tenants see and run their own things only, and a suspended tenant is read-only (3 and 6).

Every check runs against the real API server's RBAC, Pod Security and quota admission, with
kubectl impersonating the tenant's members (`--as`, `--as-group`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import _tenant_helpers as helpers
import pytest

from govcloud.dev import testing

pytestmark = pytest.mark.integration

RBAC_PROPAGATION = 15.0  # the authorizer's informer catches up within moments; be generous


@dataclass(frozen=True)
class TwoTenants:
    """Tenant A (two namespaces, admins, an editor, a viewer) and tenant B (one admin)."""

    a: str
    b: str
    alice: str  # admin of A by user name
    a_admins: str  # A's admin group
    eddie: str  # editor of A
    victor: str  # viewer of A
    bob: str  # admin of B

    @property
    def a_web(self) -> str:
        return f"{self.a}-web"

    @property
    def a_db(self) -> str:
        return f"{self.a}-db"

    @property
    def b_web(self) -> str:
        return f"{self.b}-web"


@pytest.fixture(scope="module")
def two(kubectl: testing.Kubectl, operator: testing.OperatorProcess) -> Iterator[TwoTenants]:
    suffix = uuid.uuid4().hex[:6]
    pair = TwoTenants(
        a=f"acc-a-{suffix}",
        b=f"acc-b-{suffix}",
        alice=f"alice-{suffix}",
        a_admins=f"acc-a-admins-{suffix}",
        eddie=f"eddie-{suffix}",
        victor=f"victor-{suffix}",
        bob=f"bob-{suffix}",
    )
    tenants = helpers.Tenants(kubectl)
    try:
        tenants.create(
            pair.a,
            namespaces=("web", "db"),
            admins={"users": [pair.alice], "groups": [pair.a_admins]},
            editors={"users": [pair.eddie]},
            viewers={"users": [pair.victor]},
        )
        tenants.create(pair.b, namespaces=("web",), admins={"users": [pair.bob]})
        helpers.wait_phase(kubectl, pair.a, "Active")
        helpers.wait_phase(kubectl, pair.b, "Active")
        yield pair
    finally:
        tenants.cleanup()


def allowed(kubectl: testing.Kubectl, *args: str) -> Any:
    """Poll until a read as `kubectl`'s identity succeeds (RBAC caches catch up); its output."""
    return testing.eventually(
        lambda: (result := kubectl.run(*args)).returncode == 0 and result,
        timeout=RBAC_PROPAGATION,
        what=f"{kubectl.as_user} {list(kubectl.as_groups)} to be allowed: kubectl {' '.join(args)}",
    )


def can_i(kubectl: testing.Kubectl, verb: str, resource: str, namespace: str) -> bool:
    result = kubectl.run("auth", "can-i", verb, resource, "-n", namespace)
    return result.stdout.strip() == "yes"


def test_tenant_admin_reads_own_cloudtenant_with_status(
    kubectl: testing.Kubectl, two: TwoTenants
) -> None:
    for who in (kubectl.impersonate(two.alice), kubectl.impersonate("carol", two.a_admins)):
        result = allowed(who, "get", "cloudtenant", two.a, "-o", "json")
        body = helpers.json_of(result)

        assert body["status"]["phase"] == "Active"
        assert body["status"]["quota"]["hard"]["requests.cpu"] == "4"
        assert "requests.cpu" in body["status"]["quota"]["used"]
        assert helpers.condition(body, "Ready")["status"] == "True"
        # `kubectl get ct <name> -w` lists with a metadata.name field selector: allowed too.
        listed = who.run("get", "cloudtenants", f"--field-selector=metadata.name={two.a}")
        assert listed.returncode == 0, listed.stderr
        assert two.a in listed.stdout


def test_tenant_admin_cannot_read_another_tenant_or_list_all_tenants(
    kubectl: testing.Kubectl, two: TwoTenants
) -> None:
    allowed(kubectl.impersonate(two.bob), "get", "cloudtenant", two.b)  # B is there and readable
    for who in (kubectl.impersonate(two.alice), kubectl.impersonate("carol", two.a_admins)):
        allowed(who, "get", "cloudtenant", two.a)

        other = who.run("get", "cloudtenant", two.b)
        everything = who.run("get", "cloudtenants")

        assert helpers.forbidden(other, 'cannot get resource "cloudtenants"'), other.stderr
        assert helpers.forbidden(everything, 'cannot list resource "cloudtenants"'), (
            everything.stderr
        )


def test_tenant_admin_runs_pods_and_deployments_in_own_namespaces(
    kubectl: testing.Kubectl, two: TwoTenants
) -> None:
    alice = kubectl.impersonate(two.alice)
    group_member = kubectl.impersonate("carol", two.a_admins)
    testing.eventually(
        lambda: can_i(alice, "create", "pods", two.a_web),
        timeout=RBAC_PROPAGATION,
        what="alice may create pods",
    )

    pod = helpers.create(alice, helpers.restricted_pod("api", two.a_web))
    deployment = helpers.create(group_member, helpers.deployment("worker", two.a_db))

    assert pod.returncode == 0, pod.stderr
    assert deployment.returncode == 0, deployment.stderr
    running = testing.eventually(
        lambda: (
            (found := alice.get("pod", "api", two.a_web))
            and found["status"].get("phase") == "Running"
            and found
        ),
        timeout=60,
        what="alice's pod to run",
    )
    # No requests were written: the LimitRange filled them in, so quota admission could count.
    assert running["spec"]["containers"][0]["resources"]["requests"] == {
        "cpu": "50m",
        "memory": "64Mi",
    }
    testing.eventually(
        lambda: (
            (alice.get("deployment", "worker", two.a_db) or {})
            .get("status", {})
            .get("readyReplicas")
            == 1
        ),
        timeout=60,
        what="the group member's deployment to be ready",
    )


def test_tenant_admin_cannot_see_or_touch_another_tenants_pods_or_secrets(
    kubectl: testing.Kubectl, two: TwoTenants
) -> None:
    bob = kubectl.impersonate(two.bob)
    allowed(bob, "get", "pods", "-n", two.b_web)  # B's own admin can: the namespace is real
    allowed(bob, "get", "secrets", "-n", two.b_web)
    for who in (kubectl.impersonate(two.alice), kubectl.impersonate("carol", two.a_admins)):
        allowed(who, "get", "pods", "-n", two.a_web)

        pods = who.run("get", "pods", "-n", two.b_web)
        secrets = who.run("get", "secrets", "-n", two.b_web)
        secret = who.run("get", "secret", "anything", "-n", two.b_web)
        create = helpers.create(who, helpers.restricted_pod("intruder", two.b_web))
        all_pods = who.run("get", "pods", "--all-namespaces")

        assert helpers.forbidden(pods, 'cannot list resource "pods"', two.b_web), pods.stderr
        assert helpers.forbidden(secrets, 'cannot list resource "secrets"'), secrets.stderr
        assert helpers.forbidden(secret, 'cannot get resource "secrets"'), secret.stderr
        assert helpers.forbidden(create, 'cannot create resource "pods"'), create.stderr
        assert helpers.forbidden(all_pods, 'cannot list resource "pods"'), all_pods.stderr


def test_editor_deploys_but_cannot_grant_access(kubectl: testing.Kubectl, two: TwoTenants) -> None:
    eddie = kubectl.impersonate(two.eddie)
    testing.eventually(
        lambda: can_i(eddie, "create", "deployments", two.a_web),
        timeout=RBAC_PROPAGATION,
        what="the editor may create deployments",
    )

    deployment = helpers.create(eddie, helpers.deployment("editor-app", two.a_web))
    grant = eddie.run(
        "create",
        "rolebinding",
        "sneaky",
        "--clusterrole=admin",
        f"--user={two.eddie}",
        "-n",
        two.a_web,
    )

    assert deployment.returncode == 0, deployment.stderr
    assert helpers.forbidden(grant, 'cannot create resource "rolebindings"'), grant.stderr


def test_viewer_reads_but_cannot_create_or_read_secrets(
    kubectl: testing.Kubectl, two: TwoTenants
) -> None:
    victor = kubectl.impersonate(two.victor)
    allowed(victor, "get", "pods", "-n", two.a_web)
    allowed(victor, "get", "deployments", "-n", two.a_db)
    own = helpers.json_of(allowed(victor, "get", "cloudtenant", two.a, "-o", "json"))

    pod = helpers.create(victor, helpers.restricted_pod("viewer-pod", two.a_web))
    deployment = helpers.create(victor, helpers.deployment("viewer-app", two.a_db))
    secrets = victor.run("get", "secrets", "-n", two.a_web)
    other = victor.run("get", "cloudtenant", two.b)

    assert own["status"]["phase"] == "Active"
    assert helpers.forbidden(pod, 'cannot create resource "pods"'), pod.stderr
    assert helpers.forbidden(deployment, 'cannot create resource "deployments"'), deployment.stderr
    assert helpers.forbidden(secrets, 'cannot list resource "secrets"'), secrets.stderr
    assert helpers.forbidden(other, 'cannot get resource "cloudtenants"'), other.stderr


def test_someone_outside_every_tenant_sees_nothing(
    kubectl: testing.Kubectl, two: TwoTenants
) -> None:
    allowed(kubectl.impersonate(two.alice), "get", "cloudtenant", two.a)
    stranger = kubectl.impersonate(f"stranger-{uuid.uuid4().hex[:6]}", "some-other-department")

    tenant = stranger.run("get", "cloudtenant", two.a)
    pods = stranger.run("get", "pods", "-n", two.a_web)

    assert helpers.forbidden(tenant, 'cannot get resource "cloudtenants"'), tenant.stderr
    assert helpers.forbidden(pods, 'cannot list resource "pods"'), pods.stderr


def test_suspended_tenant_starts_no_pods_and_is_read_only_until_resumed(
    kubectl: testing.Kubectl, operator: testing.OperatorProcess
) -> None:
    tenants = helpers.Tenants(kubectl)
    name = helpers.unique("susp")
    namespace = f"{name}-apps"
    admin = kubectl.impersonate(f"sam-{name}")
    try:
        tenants.create(name, namespaces=("apps",), admins={"users": [f"sam-{name}"]})
        helpers.wait_phase(kubectl, name, "Active")
        testing.eventually(
            lambda: can_i(admin, "create", "deployments", namespace),
            timeout=RBAC_PROPAGATION,
            what="the admin may create deployments",
        )
        created = helpers.create(admin, helpers.deployment("before", namespace))
        assert created.returncode == 0, created.stderr
        before = wait_running_pod(kubectl, namespace, "before")

        tenants.patch(name, {"suspended": True})
        suspended = helpers.wait_phase(kubectl, name, "Suspended")
        after_suspend = time.time()

        assert helpers.condition(suspended, "AccessReady")["reason"] == "Suspended"
        quota = kubectl.get("resourcequota", "govcloud-quota", namespace)
        assert quota is not None
        assert quota["spec"]["hard"]["pods"] == "0"
        # Members keep read access only: admin is gone, view remains.
        testing.eventually(
            lambda: not can_i(admin, "create", "deployments", namespace),
            timeout=RBAC_PROPAGATION,
            what="the admin's create right to be withdrawn",
        )
        denied = helpers.create(admin, helpers.deployment("during", namespace))
        assert helpers.forbidden(denied, 'cannot create resource "deployments"'), denied.stderr
        listed = helpers.json_of(allowed(admin, "get", "pods", "-n", namespace, "-o", "json"))
        assert before["metadata"]["name"] in [item["metadata"]["name"] for item in listed["items"]]
        own = helpers.json_of(allowed(admin, "get", "cloudtenant", name, "-o", "json"))
        assert own["status"]["phase"] == "Suspended"
        # Quota admission refuses every new pod, even one the cluster admin creates.
        refused = helpers.create(kubectl, helpers.restricted_pod("late", namespace))
        assert refused.returncode != 0
        assert "exceeded quota: govcloud-quota" in refused.stderr, refused.stderr
        assert "pods=0" in refused.stderr, refused.stderr
        # Running pods are not touched, also after the operator's next resync.
        helpers.wait_reconciled_after(operator, name, after_suspend)
        still = kubectl.get("pod", before["metadata"]["name"], namespace)
        assert still is not None
        assert still["metadata"]["uid"] == before["metadata"]["uid"]
        assert still["status"]["phase"] == "Running"
        assert not still["metadata"].get("deletionTimestamp")

        tenants.patch(name, {"suspended": False})
        helpers.wait_phase(kubectl, name, "Active")

        testing.eventually(
            lambda: can_i(admin, "create", "deployments", namespace),
            timeout=RBAC_PROPAGATION,
            what="the admin's create right to come back",
        )
        resumed = helpers.create(admin, helpers.deployment("after", namespace))
        assert resumed.returncode == 0, resumed.stderr
        wait_running_pod(kubectl, namespace, "after")
        pod = helpers.create(kubectl, helpers.restricted_pod("late", namespace))
        assert pod.returncode == 0, pod.stderr
        survivor = kubectl.get("pod", before["metadata"]["name"], namespace)
        assert survivor is not None
        assert survivor["metadata"]["uid"] == before["metadata"]["uid"]
    finally:
        tenants.cleanup()


def wait_running_pod(kubectl: testing.Kubectl, namespace: str, app: str) -> dict[str, Any]:
    """The Running pod labelled app=`app` in `namespace`, once there is one."""

    def check() -> dict[str, Any] | None:
        items = kubectl.json("get", "pods", "-n", namespace, "-l", f"app={app}")["items"]
        running = [item for item in items if item["status"].get("phase") == "Running"]
        return running[0] if running else None

    found: dict[str, Any] = testing.eventually(
        check, timeout=60, what=f"a running pod of {app} in {namespace}"
    )
    return found
