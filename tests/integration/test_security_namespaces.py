"""Protected namespaces (review C1): a platform admin, or a typo, never makes a tenant of
kube-system, the operator's namespace, a protected namespace or an existing namespace that
nobody granted, and member subjects stay within the tenant (M9)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import _subcenter_helpers as sc
import _tenant_helpers as helpers
import pytest
from _chart_helpers import Release, installed_release

from govcloud.dev import cluster, testing

pytestmark = pytest.mark.integration

Manifest = dict[str, Any]
ALICE = "platform-alice"  # bound to govcloud:platform-admin only
MALLORY = "mallory"


@pytest.fixture(scope="module")
def release(
    hub: cluster.ControlPlane, kubectl: testing.Kubectl, crds: None, system_namespace: str
) -> Iterator[Release]:
    """The chart installed (its platform-admin role and its admission policies), reading
    sub-center kubeconfigs from the namespace the session's sites use: its Secret policy would
    otherwise refuse them while this module's release is installed."""
    secrets = f"features.subCenters.secretNamespace={sc.SYSTEM_NAMESPACE}"
    yield from installed_release(hub, kubectl, "--set", secrets)


@pytest.fixture(scope="module")
def platform_admin(release: Release, kubectl: testing.Kubectl) -> Iterator[testing.Kubectl]:
    """kubectl as a member of the platform team: govcloud:platform-admin and nothing else."""
    binding = f"{release.fullname}-alice"
    kubectl(
        "create", "clusterrolebinding", binding,
        f"--clusterrole={release.fullname}:platform-admin", f"--user={ALICE}",
    )  # fmt: skip
    yield kubectl.impersonate(ALICE)
    kubectl.run("delete", "clusterrolebinding", binding)


tenants = helpers.tenants


def tenant(name: str, *namespaces: Manifest) -> Manifest:
    """A tenant whose admin is mallory; Retain, so nothing of a namespace it may reach is lost."""
    return helpers.tenant_manifest(
        name,
        namespaces=list(namespaces),
        admins={"users": [MALLORY]},
        deletion_policy="Retain",
    )


def untouched(kubectl: testing.Kubectl, namespace: str, before: Manifest) -> None:
    """The namespace as it was: same labels and annotations, no govcloud object, no access."""
    after = kubectl.get("namespace", namespace)
    assert after is not None
    assert helpers.labels_of(after) == helpers.labels_of(before)
    assert after["metadata"].get("annotations") == before["metadata"].get("annotations")
    for kind in ("resourcequota", "networkpolicy", "rolebinding", "limitrange"):
        found = kubectl.json("get", kind, "-n", namespace, "-l", "govcloud.io/tenant")["items"]
        assert found == [], f"{kind} in {namespace}: {found}"
    peek = kubectl.run("get", "secrets", "-n", namespace, f"--as={MALLORY}")
    assert helpers.forbidden(peek), peek.stdout + peek.stderr


def refused_namespace(kubectl: testing.Kubectl, name: str, namespace: str) -> Manifest:
    """Wait until the tenant reports `namespace` refused (Conflict) for its current spec."""
    return helpers.wait_tenant(
        kubectl,
        name,
        lambda body: (
            helpers.current(body)
            and any(
                item["name"] == namespace and item["phase"] == "Conflict"
                for item in (body.get("status") or {}).get("namespaces") or []
            )
        ),
        f"{namespace} refused",
    )


def message_of(body: Manifest, namespace: str) -> str:
    for item in (body.get("status") or {}).get("namespaces") or []:
        if item["name"] == namespace:
            return str(item.get("message") or "")
    return ""


def test_a_platform_admin_cannot_make_a_tenant_of_kube_system(
    kubectl: testing.Kubectl, platform_admin: testing.Kubectl
) -> None:
    before = kubectl.get("namespace", "kube-system")
    assert before is not None
    attack = tenant("kube", {"name": "system", "adopt": True})
    result = helpers.create(platform_admin, attack)
    assert result.returncode != 0, "CloudTenant kube was accepted"
    assert "tenant names kube and kube-* are reserved" in result.stderr, result.stderr
    assert kubectl.get("cloudtenant", "kube") is None
    untouched(kubectl, "kube-system", before)


def test_a_tenant_naming_the_release_namespace_is_refused_by_the_api_server(
    kubectl: testing.Kubectl, platform_admin: testing.Kubectl, release: Release
) -> None:
    # chart-test-<suffix> is <tenant>-<namespace> of tenant chart-test and namespace <suffix>.
    prefix, _, suffix = release.namespace.rpartition("-")
    before = kubectl.get("namespace", release.namespace)
    assert before is not None
    result = helpers.create(platform_admin, tenant(prefix, {"name": suffix, "adopt": True}))
    assert result.returncode != 0, "a tenant of the release namespace was accepted"
    assert f"namespace {release.namespace} is protected" in result.stderr, result.stderr
    assert kubectl.get("cloudtenant", prefix) is None
    untouched(kubectl, release.namespace, before)


def test_the_operator_never_manages_a_namespace_labelled_protected(
    kubectl: testing.Kubectl,
    platform_admin: testing.Kubectl,
    tenants: helpers.Tenants,
    release: Release,
) -> None:
    name = helpers.unique("vault")
    vault = f"{name}-vault"
    # Protected, and even granted: protection wins.
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": vault,
                "labels": {"govcloud.io/protected": "", "govcloud.io/adoptable-by": name},
            },
        }
    )
    tenants.track_namespace(vault)
    before = kubectl.get("namespace", vault)
    assert before is not None

    tenants.names.append(name)
    created = helpers.create(platform_admin, tenant(name, {"name": "vault", "adopt": True}))
    assert created.returncode == 0, created.stderr
    body = refused_namespace(kubectl, name, vault)

    assert "is protected" in message_of(body, vault)
    assert helpers.condition(body, "NamespacesReady")["status"] == "False"
    testing.eventually(
        lambda: any(
            item["reason"] == "NamespaceProtected" for item in helpers.events_for(kubectl, name)
        ),
        timeout=30,
        what="a NamespaceProtected Event",
    )
    untouched(kubectl, vault, before)


def test_the_operator_never_manages_its_own_namespace(
    kubectl: testing.Kubectl,
    platform_admin: testing.Kubectl,
    tenants: helpers.Tenants,
    operator: testing.OperatorProcess,
    system_namespace: str,
) -> None:
    # The session's operator runs with the default GOVCLOUD_OPERATOR_NAMESPACE, govcloud-system:
    # tenant govcloud, namespace system. Even granted, it is never taken.
    name, short = system_namespace.split("-", 1)
    # No other test names a tenant after the operator's namespace; one left over would make
    # this test prove nothing, so that is a failure, not a skip.
    assert kubectl.get("cloudtenant", name) is None, f"a CloudTenant {name} already exists"
    kubectl("label", "namespace", system_namespace, f"govcloud.io/adoptable-by={name}")
    try:
        before = kubectl.get("namespace", system_namespace)
        assert before is not None
        tenants.names.append(name)
        created = helpers.create(platform_admin, tenant(name, {"name": short, "adopt": True}))
        assert created.returncode == 0, created.stderr
        body = refused_namespace(kubectl, name, system_namespace)
        assert "is protected" in message_of(body, system_namespace)
        since = time.time()
        helpers.wait_reconciled_after(operator, name, since)
        untouched(kubectl, system_namespace, before)
    finally:
        kubectl.run("label", "namespace", system_namespace, "govcloud.io/adoptable-by-")


def test_adoption_needs_a_grant_written_on_the_namespace(
    kubectl: testing.Kubectl,
    platform_admin: testing.Kubectl,
    tenants: helpers.Tenants,
    operator: testing.OperatorProcess,
) -> None:
    name = helpers.unique("grant")
    legacy = f"{name}-legacy"
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": legacy, "labels": {"team": "old"}},
        }
    )
    tenants.track_namespace(legacy)
    kubectl("create", "secret", "generic", "legacy-secret", "-n", legacy, "--from-literal=k=v")
    before = kubectl.get("namespace", legacy)
    assert before is not None

    tenants.names.append(name)
    created = helpers.create(
        platform_admin, tenant(name, {"name": "legacy", "adopt": True}, {"name": "app"})
    )
    assert created.returncode == 0, created.stderr
    body = refused_namespace(kubectl, name, legacy)
    message = message_of(body, legacy)
    assert f"kubectl label namespace {legacy} govcloud.io/adoptable-by={name}" in message
    since = time.time()
    helpers.wait_reconciled_after(operator, name, since)
    untouched(kubectl, legacy, before)
    events = helpers.events_for(kubectl, name)
    assert any(item["reason"] == "AdoptionNotGranted" for item in events), events

    # A platform admin cannot write the grant; whoever may write namespaces can.
    self_granted = platform_admin.run(
        "label", "namespace", legacy, f"govcloud.io/adoptable-by={name}"
    )
    assert helpers.forbidden(self_granted), self_granted.stdout + self_granted.stderr
    kubectl("label", "namespace", legacy, f"govcloud.io/adoptable-by={name}")
    helpers.wait_phase(kubectl, name, "Active")
    adopted = kubectl.get("namespace", legacy)
    assert helpers.labels_of(adopted)["govcloud.io/tenant"] == name
    assert helpers.labels_of(adopted)["team"] == "old"
    testing.eventually(
        lambda: kubectl.run("get", "secrets", "-n", legacy, f"--as={MALLORY}").returncode == 0,
        timeout=30,
        what="the tenant's admin to reach the adopted namespace",
    )


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"groups": ["system:authenticated"]}, "users and groups named system:*"),
        (
            {"users": ["system:serviceaccount:kube-system:default"]},
            "users and groups named system:*",
        ),
        (
            {"serviceAccounts": ["kube-system/default"]},
            "service accounts must come from the tenant",
        ),
        ({"serviceAccounts": ["other-apps/ci"]}, "service accounts must come from the tenant"),
    ],
    ids=["system-group", "system-user", "kube-system-sa", "other-tenants-sa"],
)
def test_members_stay_inside_the_tenant(
    kubectl: testing.Kubectl, platform_admin: testing.Kubectl, members: Manifest, message: str
) -> None:
    name = f"members-{uuid.uuid4().hex[:5]}"
    manifest = helpers.tenant_manifest(name, namespaces=("apps",), admins=members)
    result = helpers.create(platform_admin, manifest)
    assert result.returncode != 0, f"{members} accepted"
    assert message in result.stderr, result.stderr
    assert kubectl.get("cloudtenant", name) is None
    # Its own namespaces' service accounts are fine.
    own = helpers.tenant_manifest(
        name, namespaces=("apps",), admins={"serviceAccounts": [f"{name}-apps/ci"]}
    )
    accepted = kubectl.run("create", "--dry-run=server", "-f", "-", stdin=json.dumps(own))
    assert accepted.returncode == 0, accepted.stderr


def test_a_sub_center_keeps_its_protected_and_ungranted_namespaces(
    kubectl: testing.Kubectl,
    site_kubectl: testing.Kubectl,
    placed: sc.PlacedTenants,
    shared_site: str,
) -> None:
    """The same rules on a site: a namespace labelled protected there, or one nobody granted."""
    name = helpers.unique("sitevault")
    vault, legacy = f"{name}-vault", f"{name}-legacy"
    labels = {vault: {"govcloud.io/protected": "", "govcloud.io/adoptable-by": name}, legacy: {}}
    before = {}
    for namespace, extra in labels.items():
        site_kubectl.apply(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": namespace, "labels": {"county.example/owner": "it", **extra}},
            }
        )
        placed.track_site_namespace(namespace)
        before[namespace] = site_kubectl.get("namespace", namespace)

    placed.place(
        name,
        shared_site,
        namespaces=[{"name": "vault", "adopt": True}, {"name": "legacy", "adopt": True}, "apps"],
        admins={"users": [MALLORY]},
        deletion_policy="Retain",
    )
    body = refused_namespace(kubectl, name, legacy)
    body = refused_namespace(kubectl, name, vault)
    assert "is protected" in message_of(body, vault)
    assert f"govcloud.io/adoptable-by={name}" in message_of(body, legacy)
    testing.eventually(
        lambda: site_kubectl.get("resourcequota", "govcloud-quota", f"{name}-apps"),
        timeout=60,
        what="the free namespace onboarded on the site",
    )
    for namespace, found in before.items():
        assert found is not None
        untouched(site_kubectl, namespace, found)


# -- a department never writes its own network boundary (issue #16) -------------------------


def allow_all(namespace: str) -> Manifest:
    """What a department's admin would write to get around isolation: everything in, and
    everything out (the internet too)."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "open-everything", "namespace": namespace},
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{}],
            "egress": [{}],
        },
    }


def test_a_tenant_admin_cannot_write_network_policies_in_the_tenants_namespaces(
    release: Release, kubectl: testing.Kubectl, tenants: Any
) -> None:
    name = helpers.unique("netlock")
    tenants.apply(tenant(name, {"name": "apps"}))
    helpers.wait_phase(kubectl, name, "Active")
    namespace = f"{name}-apps"
    mallory = kubectl.impersonate(MALLORY)
    policy = json.dumps(allow_all(namespace))
    # RBAC alone lets her: the built-in admin role she holds there includes networkpolicies.
    assert (
        mallory.run("auth", "can-i", "create", "networkpolicies", "-n", namespace).stdout.strip()
        == "yes"
    )
    # Policies take effect a moment after they are made: try without storing anything first.
    testing.eventually(
        lambda: mallory.run("create", "--dry-run=server", "-f", "-", stdin=policy).returncode,
        timeout=30,
        what="the tenant-network policy to take effect",
    )
    opened = mallory.run("create", "-f", "-", stdin=policy)
    assert helpers.forbidden(opened, "NetworkGrant", "tenant-network-policies"), opened.stderr
    removed = mallory.run("delete", "networkpolicy", "govcloud-isolation", "-n", namespace)
    assert helpers.forbidden(removed, "written by the platform only"), removed.stderr
    assert kubectl.get("networkpolicy", "open-everything", namespace) is None
    assert kubectl.get("networkpolicy", "govcloud-isolation", namespace) is not None
    # The platform's own writes go on: a cluster admin may (the operator is checked above, in
    # test_chart.py's guard tests and by every tenant the operator isolates).
    admitted = kubectl.run("create", "--dry-run=server", "-f", "-", stdin=policy)
    assert admitted.returncode == 0, admitted.stderr
