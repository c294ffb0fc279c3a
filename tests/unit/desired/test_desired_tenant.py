"""build() assembles every object a tenant owns, each labelled for ownership and pruning."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from govcloud.api.v1alpha1 import cloudtenant
from govcloud.desired import compare, meta, quotas, tenant

SpecFactory = Callable[..., cloudtenant.CloudTenantSpec]
PLATFORM = ["monitoring"]


def build(spec: cloudtenant.CloudTenantSpec) -> tenant.DesiredTenant:
    names = tenant.namespace_names("jtj", spec)
    allocation = quotas.allocate(spec.quota, names, {}, suspended=spec.suspended)
    return tenant.build("jtj", spec, platform_namespaces=PLATFORM, allocation=allocation)


def kinds_by_namespace(desired: tenant.DesiredTenant) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for manifest in desired.namespaced:
        found.setdefault(manifest["metadata"]["namespace"], []).append(manifest["kind"])
    return found


def test_namespace_names_follow_spec_order(make_spec: SpecFactory) -> None:
    assert tenant.namespace_names("jtj", make_spec()) == ["jtj-prod", "jtj-dev"]


def test_a_tenant_gets_namespaces_policies_access_and_quotas(make_spec: SpecFactory) -> None:
    desired = build(make_spec(limitRange={"default": {"cpu": "500m"}}))
    assert desired.namespace_names == ["jtj-prod", "jtj-dev"]
    expected = ["LimitRange", "NetworkPolicy", "RoleBinding", "RoleBinding", "RoleBinding"]
    assert kinds_by_namespace(desired) == {"jtj-prod": expected, "jtj-dev": expected}
    assert [o["kind"] for o in desired.cluster_scoped] == [
        "ClusterRole",  # self-view, every member
        "ClusterRoleBinding",
        "ClusterRole",  # plan-filer, admins only
        "ClusterRoleBinding",
    ]
    assert [q["metadata"]["namespace"] for q in desired.quotas] == ["jtj-prod", "jtj-dev"]
    assert desired.quotas[0]["spec"]["hard"] == {
        "pods": "25",
        "requests.cpu": "5",
        "requests.memory": "10Gi",
    }


def test_every_object_is_labelled_for_its_tenant(make_spec: SpecFactory) -> None:
    desired = build(make_spec(limitRange={"max": {"cpu": "2"}}))
    everything = [*desired.namespaces, *desired.namespaced, *desired.cluster_scoped]
    for manifest in [*everything, *desired.quotas]:
        labels = manifest["metadata"]["labels"]
        assert labels.items() >= meta.common_labels("jtj").items(), manifest["kind"]


def test_every_namespaced_kind_is_prunable(make_spec: SpecFactory) -> None:
    desired = build(make_spec(limitRange={"max": {"cpu": "2"}}))
    namespaced = {o["kind"] for o in [*desired.namespaced, *desired.quotas]}
    assert namespaced == set(tenant.PRUNABLE_NAMESPACED_KINDS)
    assert {o["kind"] for o in desired.cluster_scoped} == set(tenant.PRUNABLE_CLUSTER_KINDS)


def test_optional_objects_are_left_out(make_spec: SpecFactory) -> None:
    desired = build(make_spec(network={"isolated": False}, quota={}, editors={}, viewers={}))
    assert kinds_by_namespace(desired) == {"jtj-prod": ["RoleBinding"], "jtj-dev": ["RoleBinding"]}
    assert desired.quotas == ()


def test_a_suspended_tenant_reads_only_and_starts_no_pods(make_spec: SpecFactory) -> None:
    desired = build(make_spec(suspended=True))
    bindings = [o for o in desired.namespaced if o["kind"] == "RoleBinding"]
    assert {b["roleRef"]["name"] for b in bindings} == {"view"}
    assert all(q["spec"]["hard"]["pods"] == "0" for q in desired.quotas)


def test_an_allocation_for_other_namespaces_is_refused(make_spec: SpecFactory) -> None:
    allocation = quotas.allocate({"pods": "5"}, ["jtj-prod"], {})
    with pytest.raises(ValueError, match="jtj-dev"):
        tenant.build("jtj", make_spec(), platform_namespaces=[], allocation=allocation)


def test_a_derived_namespace_name_that_is_too_long_is_a_spec_error(
    make_spec: SpecFactory,
) -> None:
    spec = make_spec(namespaces=[{"name": "n" * 60}])
    with pytest.raises(meta.SpecError):
        build(spec)


def test_resync_of_an_unchanged_tenant_needs_no_writes(make_spec: SpecFactory) -> None:
    spec = make_spec(limitRange={"max": {"cpu": "2"}}, network={"allowFrom": [{"tenant": "szj"}]})
    first = build(spec)
    served = {
        (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): {
            **o,
            "metadata": {**o["metadata"], "uid": "u", "resourceVersion": "1"},
        }
        for o in [*first.namespaces, *first.namespaced, *first.cluster_scoped, *first.quotas]
    }
    again = build(spec)
    for manifest in [*again.namespaces, *again.namespaced, *again.cluster_scoped, *again.quotas]:
        key = (
            manifest["kind"],
            manifest["metadata"].get("namespace"),
            manifest["metadata"]["name"],
        )
        assert not compare.needs_update(manifest, served[key]), key
