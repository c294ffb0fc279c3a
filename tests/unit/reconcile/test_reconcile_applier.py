"""A pass's independent writes go out side by side and are recorded in the order given."""

from __future__ import annotations

import threading
from typing import Any

from govcloud.api.v1alpha1 import cloudtenant
from govcloud.desired import quotas
from govcloud.desired import tenant as desired_tenant
from govcloud.k8s import client
from govcloud.reconcile import tenant, tenant_types

Manifest = dict[str, Any]


class TogetherCluster:
    """Answers an apply only once `together` applies are in flight at the same time."""

    def __init__(self, together: int, refuse: str = "") -> None:
        self.arrived = threading.Barrier(together, timeout=5)
        self.refuse = refuse
        self.applied: list[str] = []

    def apply(self, manifest: Manifest) -> Manifest:
        self.arrived.wait()  # BrokenBarrierError if the writes came one after another
        name = manifest["metadata"]["name"]
        self.applied.append(name)
        if name == self.refuse:
            raise client.ApiError("forbidden: not allowed", status=403, reason="Forbidden")
        return {**manifest, "metadata": {**manifest["metadata"], "resourceVersion": "7"}}


def limit_range(name: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {"name": name, "namespace": "t1-app", "labels": {}},
        "spec": {"limits": []},
    }


def applier(cluster: TogetherCluster) -> tenant_types.Applier:
    observed = tenant_types.Observed(tenant={"metadata": {"name": "t1"}}, namespaces={}, objects={})
    return tenant_types.Applier(cluster, cluster, observed, [], [])  # type: ignore[arg-type]


def test_independent_writes_are_in_flight_together_and_recorded_in_the_order_given() -> None:
    cluster = TogetherCluster(together=3)
    applied = applier(cluster)

    applied.ensure_many([limit_range("c"), limit_range("a"), limit_range("b")])

    assert sorted(cluster.applied) == ["a", "b", "c"]
    assert [event.message for event in applied.events] == [
        "created LimitRange t1-app/c",
        "created LimitRange t1-app/a",
        "created LimitRange t1-app/b",
    ]
    assert applied.current[("LimitRange", "t1-app", "a")]["metadata"]["resourceVersion"] == "7"
    assert applied.errors == []


def test_one_refused_write_is_an_error_and_the_others_are_written() -> None:
    cluster = TogetherCluster(together=3, refuse="b")
    applied = applier(cluster)

    applied.ensure_many([limit_range("a"), limit_range("b"), limit_range("c")])

    assert applied.errors == ["LimitRange t1-app/b: forbidden: not allowed"]
    assert ("LimitRange", "t1-app", "b") not in applied.current
    assert [event.message for event in applied.events] == [
        "created LimitRange t1-app/a",
        "created LimitRange t1-app/c",
    ]


def test_what_is_already_as_wanted_is_not_written() -> None:
    cluster = TogetherCluster(together=2)
    applied = applier(cluster)
    applied.current[("LimitRange", "t1-app", "a")] = limit_range("a")

    applied.ensure_many([limit_range("a"), limit_range("b"), limit_range("c")])

    assert sorted(cluster.applied) == ["b", "c"]


class OrderCluster:
    """Records finished applies; a ClusterRole's apply is slow, and a ClusterRoleBinding whose
    role is not there yet is refused, as the API server refuses one the writer cannot bind."""

    def __init__(self) -> None:
        self.finished: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.binding_tried = threading.Event()

    def apply(self, manifest: Manifest) -> Manifest:
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        if kind == "ClusterRole":  # held back until a binding was tried, or 0.5 s passed
            self.binding_tried.wait(0.5)
        if kind == "ClusterRoleBinding":
            self.binding_tried.set()
            role = manifest["roleRef"]["name"]
            if ("ClusterRole", role) not in self.finished:
                raise client.ApiError(f'clusterroles "{role}" not found', status=404)
        with self.lock:
            self.finished.append((kind, name))
        return manifest


def test_a_tenants_cluster_role_binding_is_written_after_its_role() -> None:
    spec = cloudtenant.CloudTenantSpec.model_validate(
        {
            "displayName": "市交通运输局",
            "unit": {"code": "jtj", "tier": "city"},
            "contacts": [{"name": "张三", "email": "zhang@example.gov.cn"}],
            "admins": {"groups": ["jtj-admins"]},
            "securityLevel": 2,
            "namespaces": [{"name": "prod"}, {"name": "dev"}],
        }
    )
    names = desired_tenant.namespace_names("jtj", spec)
    allocation = quotas.allocate(spec.quota, names, {}, suspended=False)
    wanted = desired_tenant.build("jtj", spec, platform_namespaces=[], allocation=allocation)
    cluster = OrderCluster()
    applied = tenant_types.Applier(
        cluster,  # type: ignore[arg-type]
        cluster,  # type: ignore[arg-type]
        tenant_types.Observed(tenant={"metadata": {"name": "jtj"}}, namespaces={}, objects={}),
        [],
        [],
    )

    tenant.ensure_all(applied, wanted, names, access=False)

    assert applied.errors == []
    kinds = [kind for kind, _ in cluster.finished]
    assert "ClusterRoleBinding" in kinds
    assert kinds.index("ClusterRoleBinding") > kinds.index("ClusterRole")
