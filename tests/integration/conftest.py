"""Integration fixtures: CRDs installed on the hub and the real operator running against it."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import _subcenter_helpers as sc
import _tenant_helpers as helpers
import pytest

from govcloud.dev import cluster, testing

REPO_ROOT = testing.REPO_ROOT


# The longest files first (measured with --durations), so that with `--dist loadfile
# --no-loadscope-reorder` no worker picks one up last while the others sit idle. The Velero
# modules are spread out: their servers take turns on one machine-wide lock.
LONGEST_FIRST = (
    "test_crash_anywhere.py",
    "test_control_plane_faults.py",
    "test_subcenter_faults.py",
    "test_migration.py",
    "test_subcenter.py",
    "test_velero_backup.py",
    "test_subcenter_health.py",
    "test_migration_lifecycle.py",
    "test_billing.py",
    "test_recovery_drill.py",
    "test_cloudtenant_lifecycle.py",
    "test_velero_ledger.py",
    "test_ha.py",
    "test_velero_self_restore.py",
    "test_billing_subcenter.py",
    "test_cloudtenant_validation.py",
    "test_migration_restart.py",
    "test_fencing.py",
    "test_upgrade.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: tests keep their order within a file


@pytest.fixture(scope="session")
def kubectl(hub: cluster.ControlPlane) -> testing.Kubectl:
    return testing.Kubectl(hub.kubeconfig)


@pytest.fixture(scope="session")
def crds(kubectl: testing.Kubectl) -> None:
    kubectl.apply_crds()


@pytest.fixture(scope="session")
def operator(hub: cluster.ControlPlane, crds: None) -> Iterator[testing.OperatorProcess]:
    """The operator as a real process, resyncing every 5 s and metering (while a RateCard
    exists) every 5 s, so drift and metrics tests stay short."""
    process = testing.OperatorProcess(
        hub.kubeconfig,
        REPO_ROOT / ".cache" / "logs" / f"operator-integration-{os.getpid()}.log",
        env={
            "GOVCLOUD_RESYNC_SECONDS": "5",
            "GOVCLOUD_METERING_INTERVAL_SECONDS": "5",
            "GOVCLOUD_PLATFORM_NAMESPACES": "monitoring",
        },
    ).start()
    yield process
    process.stop()


def tenant_spec(name: str, **overrides: object) -> dict[str, object]:
    """A small valid tenant spec; tests override what they are about."""
    spec: dict[str, object] = {
        "displayName": f"测试单位 {name}",
        "unit": {"code": name[:30], "tier": "county"},
        "contacts": [{"name": "测试员", "email": "test@example.gov.cn"}],
        "admins": {"groups": [f"{name}-admins"]},
        "securityLevel": 2,
        "namespaces": [{"name": "app"}],
        "quota": {"requests.cpu": "2", "requests.memory": "4Gi", "pods": "10"},
        "deletionPolicy": "Delete",
    }
    spec.update(overrides)
    return spec


@dataclass
class Tenants:
    """Creates uniquely named CloudTenants and deletes them (and waits) when the test ends."""

    kubectl: testing.Kubectl
    created: list[str] = field(default_factory=list)

    def create(self, prefix: str, *, name: str = "", **overrides: object) -> str:
        """A tenant named `<prefix>-<random>` (or `name`, made unique by the caller)."""
        name = name or f"{prefix}-{uuid.uuid4().hex[:5]}"
        self.apply(name, tenant_spec(name, **overrides))
        self.created.append(name)
        return name

    def apply(self, name: str, spec: dict[str, object]) -> None:
        # deletionPolicy Delete deletes namespaces only with the tenant's confirmation.
        annotations = {"govcloud.io/confirm-delete": name}
        self.kubectl.apply(
            {
                "apiVersion": "govcloud.io/v1alpha1",
                "kind": "CloudTenant",
                "metadata": {"name": name, "annotations": annotations},
                "spec": spec,
            }
        )

    def patch(self, name: str, spec_patch: dict[str, object]) -> None:
        self.kubectl(
            "patch", "cloudtenant", name, "--type=merge", "-p", json.dumps({"spec": spec_patch})
        )

    def get(self, name: str) -> dict[str, Any]:
        found = self.kubectl.get("cloudtenant", name)
        assert found is not None, f"CloudTenant {name} is gone"
        return found

    def wait_ready(self, name: str, timeout: float = 60.0) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            tenant = self.get(name)
            status = tenant.get("status") or {}
            conditions = {item["type"]: item for item in status.get("conditions") or []}
            current = status.get("observedGeneration") == tenant["metadata"]["generation"]
            if current and conditions.get("Ready", {}).get("status") == "True":
                return tenant
            return None

        found = testing.eventually(ready, timeout=timeout, what=f"CloudTenant {name} to be Ready")
        # Pods are admitted only once a namespace's default ServiceAccount exists, which the
        # controller-manager makes a moment after the namespace (later under load).
        namespaces = self.kubectl.json("get", "namespaces", "-l", f"govcloud.io/tenant={name}")
        for item in namespaces["items"]:
            namespace = item["metadata"]["name"]
            testing.eventually(
                lambda namespace=namespace: self.kubectl.get("sa", "default", namespace),
                timeout=timeout,
                what=f"the default ServiceAccount of {namespace}",
            )
        return found

    def condition(self, name: str, type_: str) -> dict[str, Any]:
        for item in (self.get(name).get("status") or {}).get("conditions") or []:
            if item["type"] == type_:
                return dict(item)
        return {}

    def delete_all(self) -> None:
        for name in self.created:
            self.kubectl.run("delete", "cloudtenant", name, "--wait=false")
        for name in self.created:
            testing.eventually(
                lambda name=name: self.kubectl.get("cloudtenant", name) is None,
                timeout=60,
                what=f"CloudTenant {name} to be deleted",
            )


@pytest.fixture
def tenants(kubectl: testing.Kubectl, operator: testing.OperatorProcess) -> Iterator[Tenants]:
    made = Tenants(kubectl)
    yield made
    made.delete_all()


# -- SubCenters: the session's second control plane registered as a site ------------------


@pytest.fixture(scope="module")
def site_kubectl(subcenter: cluster.ControlPlane) -> testing.Kubectl:
    """kubectl against the sub-center's own cluster (admin)."""
    return testing.Kubectl(subcenter.kubeconfig)


@pytest.fixture(scope="module")
def system_namespace(kubectl: testing.Kubectl) -> Iterator[str]:
    existed = kubectl.get("namespace", sc.SYSTEM_NAMESPACE) is not None
    if not existed:
        kubectl("create", "namespace", sc.SYSTEM_NAMESPACE)
    yield sc.SYSTEM_NAMESPACE
    if not existed:  # gone (not Terminating) before a later module creates it again
        kubectl.run("delete", "namespace", sc.SYSTEM_NAMESPACE, "--timeout=90s")


@pytest.fixture(scope="module")
def shared_site(
    kubectl: testing.Kubectl,
    operator: testing.OperatorProcess,
    subcenter: cluster.ControlPlane,
    system_namespace: str,
) -> Iterator[str]:
    """One federated SubCenter (max MLPS level 2) for the sub-center cluster, probed every 2 s."""
    registry = sc.Sites(kubectl)
    name = registry.create(helpers.unique("feixi"), sc.kubeconfig_of(subcenter))
    try:
        registry.wait_ready(name, timeout=60)
        yield name
    finally:
        registry.cleanup()


@pytest.fixture
def sites(
    kubectl: testing.Kubectl, operator: testing.OperatorProcess, system_namespace: str
) -> Iterator[sc.Sites]:
    """SubCenters of a test's own, deleted (after its tenants) when the test ends."""
    made = sc.Sites(kubectl)
    yield made
    made.cleanup()


@pytest.fixture
def placed(
    kubectl: testing.Kubectl,
    site_kubectl: testing.Kubectl,
    operator: testing.OperatorProcess,
    sites: sc.Sites,
    shared_site: str,
) -> Iterator[sc.PlacedTenants]:
    """Tenants of a test; deleted before its SubCenters (which hold deletion while tenants stay)."""
    made = sc.PlacedTenants(kubectl, site_kubectl)
    yield made
    made.cleanup()
