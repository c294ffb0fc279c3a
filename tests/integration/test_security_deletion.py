"""No mass deletion by accident, and released or suspended namespaces stay bounded (H8, M1).

The moves are a platform admin's mistakes (deleting the CRD, reinstalling it from Git, a
Delete tenant deleted without meaning it, a stale namespace list) and a department's CI
ServiceAccount that keeps working after its namespace was released or its tenant suspended.
All run against the real API server, the last ones with the chart's admission policy for
frozen namespaces installed and kubectl impersonating the department's principals.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import _tenant_helpers as helpers
import pytest
import yaml

from govcloud.dev import binaries, testing

pytestmark = pytest.mark.integration

CHART = testing.REPO_ROOT / "charts" / "govcloud-operator"
CRD = "cloudtenants.govcloud.io"
POLICY_KINDS = "resourcequotas,networkpolicies,rolebindings"
RBAC_PROPAGATION = 15.0


tenants = helpers.tenants


def config_map(name: str, namespace: str, **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": data,
    }


def protection(kubectl: testing.Kubectl, namespace: str) -> set[str]:
    """The operator's quota, isolation and bindings in `namespace`."""
    items = kubectl.json("get", POLICY_KINDS, "-n", namespace)["items"]
    return {
        f"{item['kind']}/{item['metadata']['name']}"
        for item in items
        if item["metadata"]["name"].startswith("govcloud-")
    }


def alive(kubectl: testing.Kubectl, namespace: str) -> bool:
    found = kubectl.get("namespace", namespace)
    return found is not None and not found["metadata"].get("deletionTimestamp")


def released(kubectl: testing.Kubectl, namespace: str) -> dict[str, Any]:
    found: dict[str, Any] = testing.eventually(
        lambda: (
            (body := kubectl.get("namespace", namespace))
            and "govcloud.io/orphaned" in helpers.labels_of(body)
            and body
        ),
        timeout=60,
        what=f"{namespace} to be released",
    )
    return found


def touch(kubectl: testing.Kubectl, namespaces: list[str]) -> bool:
    """Annotate each namespace that still exists (a hand edit the operator notices)."""
    for namespace in namespaces:
        kubectl.run("annotate", "--overwrite", "namespace", namespace, "test/touched=yes")
    return True


# -- H8: mass deletion ---------------------------------------------------------------------


def test_deleting_the_crd_deletes_no_namespace_and_strips_no_protection(
    kubectl: testing.Kubectl, operator: testing.OperatorProcess
) -> None:
    doomed = helpers.unique("crd-del")  # deletionPolicy Delete, confirmed
    kept = helpers.unique("crd-ret")  # deletionPolicy Retain
    namespaces = [f"{doomed}-a", f"{doomed}-b", f"{kept}-a"]
    tenants = helpers.Tenants(kubectl)
    try:
        tenants.create(doomed, namespaces=("a", "b"), admins={"users": [f"{doomed}-admin"]})
        tenants.create(
            kept, namespaces=("a",), admins={"users": [f"{kept}-admin"]}, deletion_policy="Retain"
        )
        helpers.wait_phase(kubectl, doomed, "Active")
        helpers.wait_phase(kubectl, kept, "Active")
        kubectl.apply(config_map("records", f"{doomed}-a", ledger="2026"))
        before = {namespace: protection(kubectl, namespace) for namespace in namespaces}
        assert all("ResourceQuota/govcloud-quota" in found for found in before.values()), before

        kubectl("delete", "crd", CRD, "--wait=false")
        # Meanwhile someone edits the namespaces, so passes of the tenants run while they are
        # being deleted with the CRD (kopf itself stops serving a terminating CRD).
        testing.eventually(
            lambda: touch(kubectl, namespaces) and kubectl.get("crd", CRD) is None,
            timeout=120,
            interval=2.0,
            what="the CRD to be deleted",
        )

        for namespace in namespaces:
            assert alive(kubectl, namespace), f"{namespace} was deleted with the CRD"
            assert helpers.labels_of(kubectl.get("namespace", namespace)).get(
                "govcloud.io/tenant"
            ), f"{namespace} was released with the CRD"
            assert protection(kubectl, namespace) == before[namespace]
        assert kubectl.get("configmap", "records", f"{doomed}-a") is not None
    finally:
        kubectl.apply_crds()

    # Reinstalled from Git: the same Delete tenant, confirmed, now with one namespace fewer.
    try:
        tenants.names.remove(kept)
        tenants.track_namespace(f"{kept}-a")
        tenants.create(doomed, namespaces=("a",), admins={"users": [f"{doomed}-admin"]})
        helpers.wait_phase(kubectl, doomed, "Active", timeout=90)

        dropped = released(kubectl, f"{doomed}-b")
        assert alive(kubectl, f"{doomed}-b"), "a namespace of the earlier tenant was deleted"
        assert not dropped["metadata"].get("deletionTimestamp")
        assert kubectl.get("configmap", "records", f"{doomed}-a") is not None
        testing.eventually(
            lambda: any(
                event["reason"] == "NamespaceRetained" and "earlier CloudTenant" in event["message"]
                for event in helpers.events_for(kubectl, doomed)
            ),
            timeout=30,
            what="a Warning that the earlier tenant's namespace is kept",
        )
    finally:
        tenants.track_namespace(f"{doomed}-b")
        tenants.cleanup()
        for kind in ("clusterrolebindings", "clusterroles"):
            kubectl.run("delete", kind, "-l", f"govcloud.io/tenant={kept}", "--wait=false")


def test_a_namespace_copied_with_a_tenants_labels_is_never_deleted_by_that_tenant(
    kubectl: testing.Kubectl, tenants: helpers.Tenants
) -> None:
    name = helpers.unique("copied")
    stray = f"{name}-old"
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": stray,
                "labels": {
                    "app.kubernetes.io/managed-by": "govcloud-operator",
                    "govcloud.io/tenant": name,
                },
            },
        }
    )
    tenants.track_namespace(stray)
    kubectl.apply(config_map("records", stray, ledger="kept"))

    tenants.create(name, namespaces=("app",), admins={"users": [f"{name}-admin"]})
    helpers.wait_phase(kubectl, name, "Active")

    released(kubectl, stray)
    assert alive(kubectl, stray)
    assert kubectl.get("configmap", "records", stray) is not None


def test_deleting_a_delete_tenant_without_confirmation_keeps_its_namespaces(
    kubectl: testing.Kubectl, tenants: helpers.Tenants
) -> None:
    name = helpers.unique("unconf")
    tenants.create(
        name, namespaces=("a",), admins={"users": [f"{name}-admin"]}, confirm_delete=False
    )
    body = helpers.wait_phase(kubectl, name, "Active")
    unconfirmed = helpers.condition(body, "DeletionConfirmed")
    assert unconfirmed["status"] == "False", unconfirmed
    assert "govcloud.io/confirm-delete" in unconfirmed["message"]
    kubectl.apply(config_map("records", f"{name}-a", ledger="2026"))

    kubectl("delete", "cloudtenant", name, "--wait=false")
    testing.eventually(
        lambda: kubectl.get("cloudtenant", name) is None, timeout=60, what=f"{name} deleted"
    )

    kept = released(kubectl, f"{name}-a")
    assert not kept["metadata"].get("deletionTimestamp")
    assert kubectl.get("configmap", "records", f"{name}-a") is not None
    testing.eventually(
        lambda: any(
            event["type"] == "Warning"
            and event["reason"] == "NamespaceRetained"
            and "govcloud.io/confirm-delete" in event["message"]
            for event in helpers.events_for(kubectl, name)
        ),
        timeout=30,
        what="a Warning saying the deletion was not confirmed",
    )


def test_removing_a_namespace_from_an_unconfirmed_delete_tenant_releases_it(
    kubectl: testing.Kubectl, tenants: helpers.Tenants
) -> None:
    name = helpers.unique("unconf-rm")
    tenants.create(
        name, namespaces=("keep", "drop"), admins={"users": [f"{name}-admin"]}, confirm_delete=False
    )
    helpers.wait_phase(kubectl, name, "Active")

    tenants.patch(name, {"namespaces": [{"name": "keep"}]})
    helpers.wait_phase(kubectl, name, "Active")

    kept = released(kubectl, f"{name}-drop")
    assert not kept["metadata"].get("deletionTimestamp")


# -- M1: released and suspended namespaces stay bounded ------------------------------------


def helm_template(*args: str) -> list[dict[str, Any]]:
    home = testing.REPO_ROOT / ".cache" / "helm"
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    argv = [
        str(binaries.ensure("helm")), "template", "govcloud", str(CHART),
        f"--kube-version={binaries.kubernetes_version()}", *args,
    ]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture
def frozen_policy(kubectl: testing.Kubectl) -> Iterator[None]:
    """The chart's admission policy for frozen namespaces, as the chart renders it."""
    objects = helm_template("-n", "govcloud-system", "--show-only", "templates/tenant-frozen.yaml")
    for manifest in objects:
        kubectl.apply(manifest)
    try:
        yield
    finally:
        for manifest in reversed(objects):
            kind = manifest["kind"].lower()
            kubectl.run("delete", kind, manifest["metadata"]["name"], "--wait=false")


def ci_account(kubectl: testing.Kubectl, admin: str, namespace: str) -> testing.Kubectl:
    """As the tenant's admin: a ServiceAccount `ci` bound to `admin` in `namespace`."""
    as_admin = kubectl.impersonate(admin)
    testing.eventually(
        lambda: as_admin.run("create", "serviceaccount", "ci", "-n", namespace).returncode == 0,
        timeout=RBAC_PROPAGATION,
        what=f"{admin} to create a ServiceAccount in {namespace}",
    )
    created = as_admin.run(
        "create",
        "rolebinding",
        "ci",
        "--clusterrole=admin",
        f"--serviceaccount={namespace}:ci",
        "-n",
        namespace,
    )
    assert created.returncode == 0, created.stderr
    ci = kubectl.impersonate(f"system:serviceaccount:{namespace}:ci")
    testing.eventually(
        lambda: (
            ci.run("auth", "can-i", "create", "deployments", "-n", namespace).stdout.strip()
            == "yes"
        ),
        timeout=RBAC_PROPAGATION,
        what=f"the CI account to be admin of {namespace}",
    )
    return ci


def deploy(ci: testing.Kubectl, name: str, namespace: str) -> subprocess.CompletedProcess[str]:
    manifest = helpers.deployment(name, namespace)
    return ci.run("create", "-f", "-", stdin=json.dumps(manifest))


def refused(result: subprocess.CompletedProcess[str]) -> bool:
    """Whether a write was refused because the namespace is frozen."""
    return result.returncode != 0 and "is frozen" in result.stderr


def test_a_departments_own_binding_stops_working_once_its_namespace_is_released(
    kubectl: testing.Kubectl, tenants: helpers.Tenants, frozen_policy: None
) -> None:
    name = helpers.unique("rel")
    admin = f"{name}-admin"
    dropped = f"{name}-drop"
    tenants.create(
        name, namespaces=("keep", "drop"), admins={"users": [admin]}, deletion_policy="Retain"
    )
    helpers.wait_phase(kubectl, name, "Active")
    ci = ci_account(kubectl, admin, dropped)
    assert deploy(ci, "before", dropped).returncode == 0  # the control: it works while owned

    tenants.patch(name, {"namespaces": [{"name": "keep"}]})
    body = released(kubectl, dropped)
    testing.eventually(
        lambda: refused(deploy(ci, helpers.unique("after"), dropped)),
        timeout=30,
        what=f"the CI account to be refused in the released {dropped}",
    )

    assert helpers.labels_of(body).get("govcloud.io/frozen") == "released"
    frozen = kubectl.get("resourcequota", "govcloud-released", dropped)
    assert frozen is not None
    assert frozen["spec"]["hard"]["pods"] == "0"
    assert kubectl.get("networkpolicy", "govcloud-released", dropped) is not None
    pod = ci.run("create", "-f", "-", stdin=json.dumps(helpers.restricted_pod("p", dropped)))
    assert pod.returncode != 0


def test_suspension_stops_writes_by_every_principal_of_the_tenant(
    kubectl: testing.Kubectl, tenants: helpers.Tenants, frozen_policy: None
) -> None:
    name = helpers.unique("susp")
    admin = f"{name}-admin"
    namespace = f"{name}-app"
    tenants.create(name, namespaces=("app",), admins={"users": [admin]})
    helpers.wait_phase(kubectl, name, "Active")
    ci = ci_account(kubectl, admin, namespace)
    assert deploy(ci, "before", namespace).returncode == 0

    tenants.patch(name, {"suspended": True})
    helpers.wait_phase(kubectl, name, "Suspended")

    testing.eventually(
        lambda: refused(deploy(ci, helpers.unique("after"), namespace)),
        timeout=30,
        what=f"the CI account to be refused in the suspended {namespace}",
    )
    assert helpers.labels_of(kubectl.get("namespace", namespace)).get("govcloud.io/frozen") == (
        "suspended"
    )
    cm = kubectl.impersonate(admin).run(
        "create", "configmap", "x", "-n", namespace, "--from-literal=a=b"
    )
    assert cm.returncode != 0, "the suspended tenant's admin could still write"

    tenants.patch(name, {"suspended": False})
    helpers.wait_phase(kubectl, name, "Active")
    testing.eventually(
        lambda: deploy(ci, "resumed", namespace).returncode == 0,
        timeout=30,
        what="writes to work again once the tenant is resumed",
    )
