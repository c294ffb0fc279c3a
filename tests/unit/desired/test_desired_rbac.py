"""Members get admin/edit/view per namespace, read-only when suspended, and see their own tenant."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from govcloud.api.v1alpha1 import cloudtenant
from govcloud.desired import meta, rbac

SpecFactory = Callable[..., cloudtenant.CloudTenantSpec]

ALICE = {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"}
BOB = {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "bob"}
ADMINS = {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "jtj-admins"}
AUDITORS = {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "auditors"}
DEPLOYER = {"kind": "ServiceAccount", "namespace": "ci", "name": "deployer"}


def bindings_by_name(bindings: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {binding["metadata"]["name"]: binding for binding in bindings}


def test_one_binding_per_role_named_after_its_cluster_role(make_spec: SpecFactory) -> None:
    bindings = bindings_by_name(rbac.role_bindings("jtj", "jtj-prod", make_spec()))
    assert {name: b["roleRef"]["name"] for name, b in bindings.items()} == {
        "govcloud-admin": "admin",
        "govcloud-edit": "edit",
        "govcloud-view": "view",
    }
    assert bindings["govcloud-admin"]["subjects"] == [ALICE, ADMINS]
    assert bindings["govcloud-edit"]["subjects"] == [BOB, DEPLOYER]
    assert bindings["govcloud-view"]["subjects"] == [AUDITORS]


def test_binding_manifest_shape(make_spec: SpecFactory) -> None:
    binding = rbac.role_bindings("jtj", "jtj-prod", make_spec())[0]
    assert binding == {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": meta.object_meta("govcloud-admin", "jtj-prod", "jtj"),
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "admin",
        },
        "subjects": [ALICE, ADMINS],
    }


def test_roles_without_members_get_no_binding(make_spec: SpecFactory) -> None:
    spec = make_spec(editors={}, viewers={"users": []})
    assert list(bindings_by_name(rbac.role_bindings("jtj", "jtj-prod", spec))) == ["govcloud-admin"]


def test_suspended_tenant_members_keep_read_access_only(make_spec: SpecFactory) -> None:
    spec = make_spec(suspended=True, viewers={"users": ["alice"], "groups": ["auditors"]})
    bindings = rbac.role_bindings("jtj", "jtj-prod", spec)
    assert len(bindings) == 1
    assert bindings[0]["roleRef"]["name"] == "view"
    # Every member once, although alice is both admin and viewer.
    assert bindings[0]["subjects"] == [ALICE, ADMINS, BOB, DEPLOYER, AUDITORS]


def test_repeated_members_appear_once(make_spec: SpecFactory) -> None:
    spec = make_spec(admins={"users": ["alice", "alice"]})
    assert rbac.role_bindings("jtj", "jtj-prod", spec)[0]["subjects"] == [ALICE]


@pytest.mark.parametrize("reference", ["deployer", "/deployer", "ci/", "a/b/c"])
def test_malformed_service_account_is_a_spec_error(reference: str) -> None:
    with pytest.raises(meta.SpecError, match="<namespace>/<name>"):
        rbac.service_account_subject(reference)


def test_self_view_role_reads_only_the_own_tenant_and_namespaces() -> None:
    role = rbac.self_view_role("jtj", ["jtj-prod", "jtj-dev"])
    assert role["kind"] == "ClusterRole"
    assert role["metadata"] == meta.object_meta("govcloud:tenant:jtj:self-view", None, "jtj")
    assert role["rules"] == [
        {
            "apiGroups": ["govcloud.io"],
            "resources": ["cloudtenants", "cloudtenants/status"],
            "resourceNames": ["jtj"],
            "verbs": ["get", "list", "watch"],
        },
        {
            "apiGroups": ["govcloud.io"],
            "resources": ["resourceplans"],
            "resourceNames": [f"jtj-{year}" for year in range(2020, 2101)],
            "verbs": ["get", "list", "watch"],
        },
        {
            "apiGroups": [""],
            "resources": ["namespaces"],
            "resourceNames": ["jtj-dev", "jtj-prod"],
            "verbs": ["get", "list", "watch"],
        },
    ]


def test_self_view_role_never_has_empty_resource_names() -> None:
    role = rbac.self_view_role("jtj", [])
    assert all(rule["resourceNames"] for rule in role["rules"])


def test_self_view_binding_binds_every_member(make_spec: SpecFactory) -> None:
    binding = rbac.self_view_binding("jtj", make_spec())
    assert binding is not None
    assert binding["kind"] == "ClusterRoleBinding"
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "govcloud:tenant:jtj:self-view",
    }
    assert binding["subjects"] == [ALICE, ADMINS, BOB, DEPLOYER, AUDITORS]


def test_no_members_means_no_cluster_role_binding(make_spec: SpecFactory) -> None:
    spec = make_spec(admins={}, editors={}, viewers={})
    assert rbac.self_view_binding("jtj", spec) is None
    kinds = [o["kind"] for o in rbac.cluster_scoped("jtj", spec, ["jtj-prod"])]
    assert kinds == ["ClusterRole", "ClusterRole"]


def test_suspension_keeps_the_self_view(make_spec: SpecFactory) -> None:
    objects = rbac.cluster_scoped("jtj", make_spec(suspended=True), ["jtj-a"])
    # The self-view stays; a suspended tenant's admins cannot file plans meanwhile.
    assert [(o["kind"], o["metadata"]["name"]) for o in objects] == [
        ("ClusterRole", "govcloud:tenant:jtj:self-view"),
        ("ClusterRoleBinding", "govcloud:tenant:jtj:self-view"),
        ("ClusterRole", "govcloud:tenant:jtj:plan-filer"),
    ]


def test_only_the_admins_may_file_the_tenants_plans(make_spec: SpecFactory) -> None:
    role = rbac.plan_filer_role("jtj")
    assert role["metadata"] == meta.object_meta("govcloud:tenant:jtj:plan-filer", None, "jtj")
    assert role["rules"] == [
        {
            "apiGroups": ["govcloud.io"],
            "resources": ["cloudtenants"],
            "resourceNames": ["jtj"],
            "verbs": ["fileplan"],
        }
    ]
    binding = rbac.plan_filer_binding("jtj", make_spec())
    assert binding is not None
    assert binding["roleRef"]["name"] == binding["metadata"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == rbac.subjects(make_spec().admins)
    assert all(
        "fileplan" not in rule["verbs"] for rule in rbac.self_view_role("jtj", ["jtj-a"])["rules"]
    )
    assert rbac.plan_filer_binding("jtj", make_spec(admins={})) is None


@pytest.mark.parametrize(
    ("subject", "allowed"),
    [
        ({"kind": "User", "name": "alice"}, True),
        ({"kind": "Group", "name": "finance-admins"}, True),
        ({"kind": "ServiceAccount", "name": "ci", "namespace": "t-apps"}, True),
        ({"kind": "Group", "name": "system:authenticated"}, False),
        ({"kind": "User", "name": "system:serviceaccount:kube-system:default"}, False),
        ({"kind": "ServiceAccount", "name": "default", "namespace": "kube-system"}, False),
        ({"kind": "ServiceAccount", "name": "ci", "namespace": "other-apps"}, False),
        ({"kind": "ServiceAccount", "name": "ci"}, False),
    ],
)
def test_only_the_tenants_own_people_and_service_accounts_may_be_members(
    subject: dict[str, str], allowed: bool
) -> None:
    assert rbac.member_allowed(subject, {"t-apps", "t-web"}) is allowed


# -- each level's finance staff read the bills of the units it pays for ------------------------

LUJIANG = "county:庐江"
LUJIANG_LABEL = "a7d5627b690513a1"  # what `helm template` renders: sha256sum | trunc 16


def test_the_finance_role_names_the_tenants_reports_and_its_payer(make_spec: SpecFactory) -> None:
    reports = ["jtj-2026-11", "jtj-2026-12"]
    role = rbac.finance_role("jtj", LUJIANG, reports)
    assert role is not None
    assert role["metadata"]["name"] == "govcloud:tenant:jtj:finance"
    assert role["metadata"]["labels"]["finance.govcloud.io/payer"] == LUJIANG_LABEL
    assert role["metadata"]["labels"]["govcloud.io/tenant"] == "jtj"
    assert role["metadata"]["annotations"] == {"govcloud.io/payer": LUJIANG}
    assert role["rules"] == [
        {
            "apiGroups": ["govcloud.io"],
            "resources": ["usagereports"],
            "resourceNames": reports,
            "verbs": ["get"],
        }
    ]
    # Bound by nobody but the level's aggregated role: the operator makes no binding for it.
    scoped = rbac.cluster_scoped("jtj", make_spec(), ["jtj-app"], reports, LUJIANG)
    assert role in scoped
    assert not any(
        item["kind"] == "ClusterRoleBinding" and item["roleRef"]["name"] == rbac.finance_name("jtj")
        for item in scoped
    )


def test_no_reports_or_no_payer_means_no_finance_role(make_spec: SpecFactory) -> None:
    # An empty resourceNames would mean every report.
    assert rbac.finance_role("jtj", LUJIANG, []) is None
    assert rbac.finance_role("jtj", "", ["jtj-2026-12"]) is None
    names = [m["metadata"]["name"] for m in rbac.cluster_scoped("jtj", make_spec(), ["jtj-app"])]
    assert rbac.finance_name("jtj") not in names


def test_each_level_has_its_own_label() -> None:
    labels = {rbac.payer_label(payer) for payer in ("city", LUJIANG, "county:肥西", "devzone:庐江")}
    assert len(labels) == 4
    assert all(len(label) == 16 and int(label, 16) >= 0 for label in labels)
