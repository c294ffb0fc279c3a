"""A namespace the pass created gets its final quota in one write, once it is enforced and empty."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import pytest

from govcloud.api.v1alpha1 import cloudtenant
from govcloud.desired import quotas
from govcloud.reconcile import tenant, tenant_types

Manifest = dict[str, Any]
NAMES = ["t1-a", "t1-b"]


@dataclass
class FakeTarget:
    """A cluster whose quota controller enforces a quota as soon as it is written (or never)."""

    counted: dict[str, int] = field(default_factory=dict)  # pods the quota controller reports
    enforces: bool = True
    quotas: dict[str, Manifest] = field(default_factory=dict)
    writes: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def apply(self, manifest: Manifest) -> Manifest:
        namespace = manifest["metadata"]["namespace"]
        hard = dict(manifest["spec"]["hard"])
        self.writes.append((namespace, hard))
        stored = copy.deepcopy(manifest)
        if self.enforces:
            used = dict.fromkeys(hard, "0") | {"pods": str(self.counted.get(namespace, 0))}
            stored["status"] = {"hard": hard, "used": used}
        self.quotas[namespace] = stored
        return copy.deepcopy(stored)

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> list[Manifest]:
        if kind == "ResourceQuota":
            return copy.deepcopy(list(self.quotas.values()))
        raise AssertionError(f"the pass listed {kind}: it may list only ResourceQuotas")


def a_spec(quota: dict[str, str]) -> cloudtenant.CloudTenantSpec:
    return cloudtenant.CloudTenantSpec.model_validate(
        {
            "displayName": "t1",
            "unit": {"code": "t1", "tier": "county"},
            "contacts": [{"name": "a", "email": "a@example.gov.cn"}],
            "securityLevel": 2,
            "namespaces": [{"name": "a"}, {"name": "b"}],
            "quota": quota,
        }
    )


def onboard(
    target: FakeTarget, quota: dict[str, str]
) -> tuple[frozenset[str], tenant_types.Applier]:
    """One pass's quota steps for the new namespaces t1-a and t1-b: what raced, and the applier."""
    observed = tenant_types.Observed(tenant={"metadata": {"name": "t1"}}, namespaces={}, objects={})
    applied = tenant_types.Applier(target, target, observed, [], [])  # type: ignore[arg-type]
    allocation = quotas.allocate(quota, NAMES, {})
    granted = tenant.write_first_quotas(
        target, "t1", a_spec(quota), NAMES, NAMES, allocation, applied
    )
    raced = tenant.verify_first_quotas(target, "t1", granted, allocation, applied)
    return raced, applied


def test_an_empty_new_namespace_gets_its_final_share_in_one_write() -> None:
    target = FakeTarget()

    raced, applied = onboard(target, {"pods": "4", "requests.cpu": "1"})

    assert target.writes == [
        ("t1-a", {"pods": "2", "requests.cpu": "500m"}),
        ("t1-b", {"pods": "2", "requests.cpu": "500m"}),
    ]
    assert raced == frozenset()
    assert applied.errors == []
    assert tenant.not_enforced(applied, NAMES) == {}


def test_usage_the_quota_controller_counted_falls_back_to_zero() -> None:
    target = FakeTarget(counted={"t1-a": 1})

    raced, _ = onboard(target, {"pods": "4"})

    assert raced == {"t1-a"}
    assert target.writes[-1] == ("t1-a", {"pods": "0"})


def test_a_quota_not_enforced_by_the_deadline_withholds_access(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tenant, "ENFORCE_DEADLINE", 0.1)
    monkeypatch.setattr(tenant, "ENFORCE_POLL", 0.01)
    target = FakeTarget(enforces=False)

    raced, applied = onboard(target, {"pods": "4"})

    assert raced == frozenset()
    assert len(target.writes) == 2
    waiting = tenant.not_enforced(applied, NAMES)
    assert set(waiting) == set(NAMES)
    assert "is not enforced yet" in waiting["t1-a"]


def test_access_already_granted_is_not_withdrawn_for_a_quota_not_enforced_yet(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tenant, "ENFORCE_DEADLINE", 0.1)
    target = FakeTarget(enforces=False)
    _, applied = onboard(target, {"pods": "4"})
    applied.current[("RoleBinding", "t1-a", "govcloud-admin")] = {"kind": "RoleBinding"}

    assert set(tenant.not_enforced(applied, NAMES)) == {"t1-b"}


def test_without_slack_new_quotas_start_at_zero_and_nothing_is_awaited() -> None:
    target = FakeTarget(enforces=False)
    # Another namespace of the tenant already commits the whole quota.
    target.quotas["t1-old"] = {
        "metadata": {"name": "govcloud-quota", "namespace": "t1-old"},
        "spec": {"hard": {"pods": "4"}},
        "status": {"hard": {"pods": "4"}, "used": {"pods": "0"}},
    }

    raced, applied = onboard(target, {"pods": "4"})

    assert target.writes == [("t1-a", {"pods": "0"}), ("t1-b", {"pods": "0"})]
    assert raced == frozenset()
    # Access still waits for the quota controller, as for any quota nobody has access under.
    assert set(tenant.not_enforced(applied, NAMES)) == set(NAMES)
