"""Deletion keeps a department's data by default, and no namespace is ever stolen (behaviour 7)."""

from __future__ import annotations

import time
from typing import Any

import _tenant_helpers as helpers
import pytest

from govcloud.dev import testing

pytestmark = pytest.mark.integration

POLICY_KINDS = "resourcequotas,limitranges,networkpolicies,rolebindings"
# What the operator puts in every namespace of a tenant that has admins (and a LimitRange).
POLICY_OBJECTS = {
    "ResourceQuota/govcloud-quota",
    "LimitRange/govcloud-defaults",
    "NetworkPolicy/govcloud-isolation",
    "RoleBinding/govcloud-admin",
}
# What a released namespace keeps: a frozen quota (no new pods) and no ingress.
RELEASED_OBJECTS = {"ResourceQuota/govcloud-released", "NetworkPolicy/govcloud-released"}


tenants = helpers.tenants


def config_map(name: str, namespace: str, **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": data,
    }


def self_view(kubectl: testing.Kubectl, tenant: str) -> list[dict[str, Any] | None]:
    name = f"govcloud:tenant:{tenant}:self-view"
    return [kubectl.get("clusterrole", name), kubectl.get("clusterrolebinding", name)]


def policy_objects(kubectl: testing.Kubectl, namespace: str) -> set[str]:
    """Every quota, LimitRange, NetworkPolicy and RoleBinding named govcloud-* in `namespace`."""
    items = kubectl.json("get", POLICY_KINDS, "-n", namespace)["items"]
    return {
        f"{item['kind']}/{item['metadata']['name']}"
        for item in items
        if item["metadata"]["name"].startswith("govcloud-")
    }


def gone(kubectl: testing.Kubectl, kind: str, name: str, namespace: str | None = None) -> bool:
    return kubectl.get(kind, name, namespace) is None


def namespace_status(body: dict[str, Any], namespace: str) -> dict[str, Any]:
    for entry in (body.get("status") or {}).get("namespaces") or []:
        if entry["name"] == namespace:
            found: dict[str, Any] = entry
            return found
    return {}


def wait_conflict(kubectl: testing.Kubectl, tenant: str, namespace: str) -> dict[str, Any]:
    """The tenant once it reports `namespace` as a conflict (phase Pending, NamespacesReady)."""

    def conflict(body: dict[str, Any]) -> bool:
        ready = helpers.condition(body, "NamespacesReady")
        return ready.get("reason") == "NamespaceConflict" and namespace in ready.get("message", "")

    return helpers.wait_tenant(kubectl, tenant, conflict, what=f"a conflict on {namespace}")


def test_retain_keeps_namespaces_and_data_and_removes_only_the_operators_objects(
    kubectl: testing.Kubectl, tenants: helpers.Tenants
) -> None:
    name = helpers.unique("keep")
    data, web = f"{name}-data", f"{name}-web"
    tenants.create(
        name,
        namespaces=("data", "web"),
        admins={"users": [f"admin-{name}"]},
        viewers={"groups": [f"auditors-{name}"]},
        deletion_policy="Retain",
    )
    helpers.wait_phase(kubectl, name, "Active")
    kubectl.apply(config_map("records", data, ledger="2024 年度账目"))
    before = kubectl.get("configmap", "records", data)
    assert before is not None
    # Everything the operator owns is there before the deletion.
    for namespace in (data, web):
        assert policy_objects(kubectl, namespace) == {*POLICY_OBJECTS, "RoleBinding/govcloud-view"}
    assert all(self_view(kubectl, name))

    kubectl("delete", "cloudtenant", name, "--wait=false")
    testing.eventually(
        lambda: gone(kubectl, "cloudtenant", name), timeout=60, what=f"{name} to be deleted"
    )

    for namespace in (data, web):
        kept = kubectl.get("namespace", namespace)
        assert kept is not None, f"{namespace} was deleted despite deletionPolicy Retain"
        assert not kept["metadata"].get("deletionTimestamp")
        labels = helpers.labels_of(kept)
        assert labels.get("govcloud.io/orphaned") == name
        assert "govcloud.io/tenant" not in labels
        assert "app.kubernetes.io/managed-by" not in labels
        leftovers = policy_objects(kubectl, namespace)
        assert leftovers == RELEASED_OBJECTS, f"policy objects left in {namespace}: {leftovers}"
    after = kubectl.get("configmap", "records", data)
    assert after is not None
    assert after["data"] == {"ledger": "2024 年度账目"}
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert self_view(kubectl, name) == [None, None]


def test_delete_policy_removes_the_tenants_namespaces(
    kubectl: testing.Kubectl, tenants: helpers.Tenants
) -> None:
    name = helpers.unique("drop")
    namespaces = [f"{name}-a", f"{name}-b"]
    tenants.create(
        name, namespaces=("a", "b"), admins={"users": [f"admin-{name}"]}, deletion_policy="Delete"
    )
    helpers.wait_phase(kubectl, name, "Active")
    kubectl.apply(config_map("scratch", namespaces[0], note="temporary"))

    kubectl("delete", "cloudtenant", name, "--wait=false")

    testing.eventually(
        lambda: gone(kubectl, "cloudtenant", name), timeout=60, what=f"{name} to be deleted"
    )
    testing.eventually(
        lambda: all(gone(kubectl, "namespace", namespace) for namespace in namespaces),
        timeout=90,
        what=f"the namespaces {namespaces} to be deleted",
    )
    assert self_view(kubectl, name) == [None, None]


def test_an_existing_unmanaged_namespace_is_not_taken_and_the_conflict_is_reported(
    kubectl: testing.Kubectl, tenants: helpers.Tenants, operator: testing.OperatorProcess
) -> None:
    name = helpers.unique("clash")
    legacy = f"{name}-legacy"
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": legacy, "labels": {"team": "old"}},
        }
    )
    tenants.track_namespace(legacy)
    kubectl.apply(config_map("legacy-data", legacy, owner="someone else"))
    namespace_before = kubectl.get("namespace", legacy)
    data_before = kubectl.get("configmap", "legacy-data", legacy)
    assert namespace_before is not None
    assert data_before is not None

    tenants.create(name, namespaces=("legacy", "fresh"), admins={"users": [f"admin-{name}"]})
    body = wait_conflict(kubectl, name, legacy)
    since = time.time()

    ready = helpers.condition(body, "NamespacesReady")
    assert ready["status"] == "False"
    assert "not managed by govcloud" in ready["message"]
    assert "adopt: true" in ready["message"]
    assert helpers.phase(body) == "Pending"
    assert helpers.condition(body, "Ready")["status"] == "False"
    assert namespace_status(body, legacy)["phase"] == "Conflict"
    # The other namespace is onboarded as usual.
    testing.eventually(
        lambda: kubectl.get("resourcequota", "govcloud-quota", f"{name}-fresh"),
        timeout=30,
        what="the fresh namespace's quota",
    )
    # Nothing changes in the existing namespace, also after further passes.
    helpers.wait_reconciled_after(operator, name, since)
    namespace_after = kubectl.get("namespace", legacy)
    assert namespace_after is not None
    assert helpers.labels_of(namespace_after) == helpers.labels_of(namespace_before)
    assert namespace_after["metadata"].get("annotations") == namespace_before["metadata"].get(
        "annotations"
    )
    assert policy_objects(kubectl, legacy) == set()
    data_after = kubectl.get("configmap", "legacy-data", legacy)
    assert data_after is not None
    assert data_after["metadata"]["resourceVersion"] == data_before["metadata"]["resourceVersion"]


def granted_namespace(namespace: str, tenant: str) -> dict[str, object]:
    """An existing namespace whose owner granted it to `tenant` (adoption needs the grant)."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": namespace, "labels": {"govcloud.io/adoptable-by": tenant}},
    }


def test_adopt_true_takes_over_an_unowned_namespace_and_keeps_its_content(
    kubectl: testing.Kubectl, tenants: helpers.Tenants
) -> None:
    name = helpers.unique("adopt")
    legacy = f"{name}-legacy"
    kubectl.apply(granted_namespace(legacy, name))
    tenants.track_namespace(legacy)
    kubectl.apply(config_map("legacy-data", legacy, owner="the department"))
    data_before = kubectl.get("configmap", "legacy-data", legacy)
    assert data_before is not None

    tenants.create(
        name,
        namespaces=[{"name": "legacy", "adopt": True}],
        admins={"users": [f"admin-{name}"]},
    )
    body = helpers.wait_phase(kubectl, name, "Active")

    assert namespace_status(body, legacy)["phase"] == "Active"
    adopted = kubectl.get("namespace", legacy)
    labels = helpers.labels_of(adopted)
    assert labels.get("govcloud.io/tenant") == name
    assert labels.get("pod-security.kubernetes.io/enforce") == "restricted"
    assert policy_objects(kubectl, legacy) == POLICY_OBJECTS
    data_after = kubectl.get("configmap", "legacy-data", legacy)
    assert data_after is not None
    assert data_after["metadata"]["uid"] == data_before["metadata"]["uid"]
    assert data_after["data"] == {"owner": "the department"}


def test_an_adopted_namespace_outlives_its_tenant_even_with_delete(
    kubectl: testing.Kubectl, tenants: helpers.Tenants
) -> None:
    name = helpers.unique("adoptdel")
    legacy = f"{name}-legacy"
    kubectl.apply(granted_namespace(legacy, name))
    tenants.track_namespace(legacy)
    kubectl.apply(config_map("legacy-data", legacy, owner="the department"))
    tenants.create(
        name,
        namespaces=[{"name": "legacy", "adopt": True}, {"name": "fresh"}],
        deletion_policy="Delete",
    )
    helpers.wait_phase(kubectl, name, "Active")
    kubectl("delete", "cloudtenant", name, "--wait=false")
    testing.eventually(
        lambda: kubectl.get("cloudtenant", name) is None, timeout=60, what="the tenant to go"
    )
    testing.eventually(
        lambda: kubectl.get("namespace", f"{name}-fresh") is None,
        timeout=90,
        what="the namespace the tenant created to be deleted",
    )
    kept = kubectl.get("namespace", legacy)
    assert kept is not None
    assert kept["metadata"].get("deletionTimestamp") is None
    assert helpers.labels_of(kept).get("govcloud.io/orphaned") == name
    assert kubectl.get("configmap", "legacy-data", legacy) is not None


def test_a_namespace_of_another_tenant_is_never_taken_even_with_adopt(
    kubectl: testing.Kubectl, tenants: helpers.Tenants, operator: testing.OperatorProcess
) -> None:
    owner = helpers.unique("own")
    intruder = f"{owner}-team"
    contested = f"{owner}-team-shared"  # <owner>-<team-shared> and <intruder>-<shared>
    tenants.create(owner, namespaces=("team-shared",), admins={"users": [f"admin-{owner}"]})
    helpers.wait_phase(kubectl, owner, "Active")
    owner_binding = kubectl.get("rolebinding", "govcloud-admin", contested)
    assert owner_binding is not None

    tenants.create(
        intruder,
        namespaces=[{"name": "shared", "adopt": True}, {"name": "own"}],
        admins={"users": [f"admin-{intruder}"]},
        deletion_policy="Delete",
    )
    body = wait_conflict(kubectl, intruder, contested)
    since = time.time()

    ready = helpers.condition(body, "NamespacesReady")
    assert f"belongs to tenant {owner}" in ready["message"]
    assert helpers.phase(body) == "Pending"
    assert namespace_status(body, contested)["phase"] == "Conflict"
    helpers.wait_reconciled_after(operator, intruder, since)
    kept = kubectl.get("namespace", contested)
    assert helpers.labels_of(kept).get("govcloud.io/tenant") == owner
    binding = kubectl.get("rolebinding", "govcloud-admin", contested)
    assert binding is not None
    assert binding["subjects"] == owner_binding["subjects"]
    assert helpers.labels_of(binding).get("govcloud.io/tenant") == owner
    assert helpers.phase(kubectl.get("cloudtenant", owner)) == "Active"
    # The intruder's members get no view of the contested namespace either.
    intruder_admin = kubectl.impersonate(f"admin-{intruder}")
    testing.eventually(
        lambda: intruder_admin.run("get", "namespace", f"{intruder}-own").returncode == 0,
        timeout=15,
        what="the intruder's admin to see its own namespace",
    )
    peek = intruder_admin.run("get", "namespace", contested)
    assert helpers.forbidden(peek, 'cannot get resource "namespaces"'), peek.stderr

    # Deleting the intruder (policy Delete) does not delete what it never had.
    kubectl("delete", "cloudtenant", intruder, "--wait=false")
    testing.eventually(
        lambda: gone(kubectl, "namespace", f"{intruder}-own"),
        timeout=90,
        what="the intruder's own namespace to be deleted",
    )
    kept = kubectl.get("namespace", contested)
    assert kept is not None
    assert not kept["metadata"].get("deletionTimestamp")
    assert helpers.labels_of(kept).get("govcloud.io/tenant") == owner


@pytest.mark.parametrize("policy", ["Retain", "Delete"])
def test_removing_a_namespace_from_the_spec_releases_it_per_policy(
    kubectl: testing.Kubectl, tenants: helpers.Tenants, policy: str
) -> None:
    name = helpers.unique(f"rm-{policy.lower()}")
    kept, dropped = f"{name}-keep", f"{name}-drop"
    tenants.create(
        name,
        namespaces=("keep", "drop"),
        admins={"users": [f"admin-{name}"]},
        deletion_policy=policy,
    )
    helpers.wait_phase(kubectl, name, "Active")
    kubectl.apply(config_map("work", dropped, state="in progress"))

    tenants.patch(name, {"namespaces": [{"name": "keep"}]})
    body = helpers.wait_phase(kubectl, name, "Active")

    assert [entry["name"] for entry in body["status"]["namespaces"]] == [kept]
    assert policy_objects(kubectl, kept) == POLICY_OBJECTS
    if policy == "Delete":
        testing.eventually(
            lambda: gone(kubectl, "namespace", dropped),
            timeout=90,
            what=f"{dropped} to be deleted",
        )
        return
    released = testing.eventually(
        lambda: (
            (found := kubectl.get("namespace", dropped))
            and "govcloud.io/orphaned" in helpers.labels_of(found)
            and found
        ),
        timeout=30,
        what=f"{dropped} to be released",
    )
    labels = helpers.labels_of(released)
    assert labels["govcloud.io/orphaned"] == name
    assert "govcloud.io/tenant" not in labels
    assert not released["metadata"].get("deletionTimestamp")
    assert policy_objects(kubectl, dropped) == RELEASED_OBJECTS
    work = kubectl.get("configmap", "work", dropped)
    assert work is not None
    assert work["data"] == {"state": "in progress"}
