"""Room asked for by refused requests is held for a while; quota raises are fenced."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

from govcloud import constants
from govcloud.api.v1alpha1 import cloudtenant
from govcloud.desired import quotas
from govcloud.k8s import client
from govcloud.reconcile import tenant, tenant_types

Manifest = dict[str, Any]
CPU = "requests.cpu"
REFUSAL = (
    'Error creating: pods "web-1" is forbidden: exceeded quota: govcloud-quota,'
    " requested: requests.cpu=1, used: requests.cpu=3, limited: requests.cpu=3333m"
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_room_asked_for_is_held_for_its_time_on_our_clock() -> None:
    clock = Clock()
    demands = tenant_types.Demands(seconds=60, clock=clock)

    demands.record("t1", "t1-a", {CPU: "1"})
    clock.now += 59
    assert demands.of("t1") == {"t1-a": {CPU: "1"}}
    assert demands.of("t2") == {}
    clock.now += 1
    assert demands.of("t1") == {}
    assert len(demands) == 0


def test_asking_again_renews_the_hold_with_the_latest_amount() -> None:
    clock = Clock()
    demands = tenant_types.Demands(seconds=60, clock=clock)
    demands.record("t1", "t1-a", {CPU: "2"})
    clock.now += 50
    demands.record("t1", "t1-a", {CPU: "1"})
    clock.now += 50
    assert demands.of("t1") == {"t1-a": {CPU: "1"}}


def test_a_deleted_tenant_is_forgotten() -> None:
    demands = tenant_types.Demands()
    demands.record("t1", "t1-a", {CPU: "1"})
    demands.forget("t1")
    assert demands.of("t1") == {}


@dataclass
class Hub:
    """Namespaces as the hub's cache holds them."""

    namespaces: dict[str, Manifest] = field(default_factory=dict)

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Any:
        assert kind == "Namespace"
        return self.namespaces.get(name)


def labelled(name: str, tenant_name: str | None) -> Manifest:
    labels = {constants.LABEL_TENANT: tenant_name} if tenant_name else {}
    return {"metadata": {"name": name, "labels": labels}}


def event(namespace: str, message: str = REFUSAL) -> Manifest:
    return {"metadata": {"namespace": namespace}, "reason": "FailedCreate", "message": message}


def test_a_refusal_in_a_tenant_namespace_names_the_tenant_and_the_room() -> None:
    hub = Hub({"t1-a": labelled("t1-a", "t1"), "other": labelled("other", None)})

    assert tenant.refused_in(hub, event("t1-a")) == ("t1", "t1-a", {CPU: "4"})  # type: ignore[arg-type]
    assert tenant.refused_in(hub, event("other")) is None  # type: ignore[arg-type]
    assert tenant.refused_in(hub, event("gone")) is None  # type: ignore[arg-type]
    assert tenant.refused_in(hub, event("t1-a", "image pull failed")) is None  # type: ignore[arg-type]


# -- fenced raises ------------------------------------------------------------------------


@dataclass
class Target:
    """Quotas at resourceVersions; an apply carrying an older version is refused (409)."""

    quotas: dict[str, Manifest] = field(default_factory=dict)
    writes: list[tuple[str, dict[str, str], str]] = field(default_factory=list)
    version: int = 10
    changed: dict[str, float] = field(default_factory=dict)  # as a watch-fed cache saw it

    def put(self, namespace: str, hard: dict[str, str], used: str) -> None:
        self.version += 1
        self.quotas[namespace] = {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {
                "name": "govcloud-quota",
                "namespace": namespace,
                "labels": {constants.LABEL_TENANT: "t1"},
                "resourceVersion": str(self.version),
            },
            "spec": {"hard": dict(hard)},
            "status": {"hard": dict(hard), "used": {CPU: used}},
        }

    def apply(self, manifest: Manifest) -> Manifest:
        namespace = manifest["metadata"]["namespace"]
        version = manifest["metadata"].get("resourceVersion", "")
        current = self.quotas[namespace]["metadata"]["resourceVersion"]
        if version and version != current:
            raise client.ApiError("the object has been modified", 409, "Conflict")
        self.writes.append((namespace, dict(manifest["spec"]["hard"]), version))
        self.put(namespace, manifest["spec"]["hard"], "3")
        return copy.deepcopy(self.quotas[namespace])

    def list(self, *_: Any, **__: Any) -> list[Manifest]:
        return copy.deepcopy(list(self.quotas.values()))

    def get(self, _version: str, _kind: str, _name: str, namespace: str) -> Manifest | None:
        return copy.deepcopy(self.quotas.get(namespace))

    def changed_at(self, _version: str, _kind: str, _name: str, namespace: str) -> float | None:
        return self.changed.get(namespace)


def a_spec() -> cloudtenant.CloudTenantSpec:
    return cloudtenant.CloudTenantSpec.model_validate(
        {
            "displayName": "t1",
            "unit": {"code": "t1", "tier": "county"},
            "contacts": [{"name": "a", "email": "a@example.gov.cn"}],
            "securityLevel": 2,
            "namespaces": [{"name": "a"}, {"name": "b"}],
            "quota": {CPU: "8"},
        }
    )


NAMES = ["t1-a", "t1-b"]


def raise_a(target: Target, **options: Any) -> tenant_types.Applier:
    """Phase 2 of a pass that plans t1-a: 3 -> 5 (the slack: 8 - 3 - 3 = 2)."""
    observed = tenant_types.Observed(
        tenant={"metadata": {"name": "t1"}},
        namespaces={},
        objects=copy.deepcopy(target_objects(target)),
    )
    applied = tenant_types.Applier(target, target, observed, [], [])  # type: ignore[arg-type]
    allocation = quotas.Allocation(
        hard={"t1-a": {CPU: "5"}, "t1-b": {CPU: "3"}},
        decreases={},
        increases={"t1-a": {CPU: "5"}},
    )
    tenant.raise_quotas(target, "t1", a_spec(), NAMES, allocation, applied, **options)  # type: ignore[arg-type]
    return applied


def target_objects(target: Target) -> dict[tenant_types.ObjectKey, Manifest]:
    return {("ResourceQuota", ns, "govcloud-quota"): quota for ns, quota in target.quotas.items()}


def two_quotas() -> Target:
    target = Target()
    target.put("t1-a", {CPU: "3"}, "3")
    target.put("t1-b", {CPU: "3"}, "3")
    return target


def test_a_raise_is_conditional_on_the_version_it_was_capped_from() -> None:
    target = two_quotas()

    applied = raise_a(target)

    assert target.writes == [("t1-a", {CPU: "5"}, "11")]
    assert applied.conflicts == []


class WrittenMeanwhile(Target):
    """Another writer changes t1-a between our fresh read and our raise."""

    def list(self, *args: Any, **kwargs: Any) -> list[Manifest]:
        found = super().list(*args, **kwargs)
        self.put("t1-a", {CPU: "3"}, "3")  # same hard, a new version: someone wrote it
        return found


def test_a_raise_of_a_quota_written_since_the_read_is_refused_and_retried() -> None:
    target = WrittenMeanwhile()
    target.put("t1-a", {CPU: "3"}, "3")
    target.put("t1-b", {CPU: "3"}, "3")

    applied = raise_a(target)

    assert target.writes == []
    assert applied.conflicts == ["ResourceQuota t1-a/govcloud-quota"]
    assert applied.errors == []  # a lost race is no failure: the next pass reads again


def test_a_replica_that_no_longer_leads_raises_nothing() -> None:
    target = two_quotas()

    applied = raise_a(target, leading=lambda: False)

    assert target.writes == []
    assert applied.errors == []


def test_a_replica_that_no_longer_leads_creates_no_new_quota() -> None:
    target = Target()
    observed = tenant_types.Observed(tenant={"metadata": {"name": "t1"}}, namespaces={}, objects={})
    applied = tenant_types.Applier(target, target, observed, [], [])  # type: ignore[arg-type]
    allocation = quotas.allocate({CPU: "8"}, NAMES, {})

    granted = tenant.write_first_quotas(
        target,
        "t1",
        a_spec(),
        NAMES,
        NAMES,
        allocation,
        applied,
        lambda: False,  # type: ignore[arg-type]
    )

    assert granted == []
    assert target.writes == []
    assert set(tenant.without_quota(applied, {CPU: "8"}, NAMES, [])) == set(NAMES)


# -- quotas that may be counting pods right now ------------------------------------------


def test_a_quota_that_changed_a_moment_ago_is_not_raised_in_this_pass() -> None:
    """A quota write makes the quota controller recount from its lagging cache: a quota that
    just changed may be counting a pod that cache does not hold yet (kubernetes#123434)."""
    target = two_quotas()
    target.changed["t1-a"] = time.monotonic()

    applied = raise_a(target)

    assert target.writes == []
    assert applied.errors == []
    assert tenant.allocation_pending(
        quotas.Allocation(hard={"t1-a": {CPU: "5"}}, decreases={}, increases={"t1-a": {CPU: "5"}}),
        {"t1-a": {CPU: "3"}},
    )


def test_a_quota_quiet_for_long_enough_is_raised() -> None:
    target = two_quotas()
    target.changed["t1-a"] = time.monotonic() - tenant.QUIET_SECONDS - 0.1

    raise_a(target)

    assert target.writes == [("t1-a", {CPU: "5"}, "11")]


def lowering_b() -> quotas.Allocation:
    return quotas.Allocation(
        hard={"t1-a": {CPU: "5"}, "t1-b": {CPU: "3"}},
        decreases={"t1-b": {CPU: "3"}},
        increases={"t1-a": {CPU: "5"}},
    )


def test_busy_quotas_are_those_changed_recently_or_newer_than_the_cache() -> None:
    target = two_quotas()
    read = {ns: quotas.observed_from_manifest(quota) for ns, quota in target.quotas.items()}
    assert tenant.busy_quotas(target, a_spec(), lowering_b(), read) == frozenset()  # type: ignore[arg-type]

    target.changed["t1-b"] = time.monotonic()
    assert tenant.busy_quotas(target, a_spec(), lowering_b(), read) == {"t1-b"}  # type: ignore[arg-type]

    del target.changed["t1-b"]
    newer = {**read, "t1-a": quotas.ObservedQuota(hard={CPU: "3"}, resource_version="99")}
    assert tenant.busy_quotas(target, a_spec(), lowering_b(), newer) == {"t1-a"}  # type: ignore[arg-type]


def test_nothing_is_held_back_that_suspends_the_tenant_or_ends_an_over_commit() -> None:
    target = two_quotas()
    target.changed = dict.fromkeys(NAMES, time.monotonic())
    read = {ns: quotas.observed_from_manifest(quota) for ns, quota in target.quotas.items()}
    suspended = a_spec().model_copy(update={"suspended": True})
    over = quotas.Allocation(
        hard={"t1-b": {CPU: "3"}},
        decreases={"t1-b": {CPU: "3"}},
        increases={},
        over_committed={CPU: ("9", "8")},
    )

    assert tenant.busy_quotas(target, suspended, lowering_b(), read) == frozenset()  # type: ignore[arg-type]
    assert tenant.busy_quotas(target, a_spec(), over, read) == frozenset()  # type: ignore[arg-type]


def test_a_changed_spec_is_applied_without_waiting_for_quiet_quotas() -> None:
    target = two_quotas()
    target.changed["t1-a"] = time.monotonic()

    raise_a(target, wait_quiet=False)

    assert target.writes == [("t1-a", {CPU: "5"}, "11")]


def test_the_spec_is_settled_once_the_status_observed_its_generation() -> None:
    tenant_at = {"metadata": {"generation": 3}, "status": {"observedGeneration": 3}}
    assert tenant.spec_settled(tenant_at)
    assert not tenant.spec_settled({**tenant_at, "status": {"observedGeneration": 2}})
    assert not tenant.spec_settled({"metadata": {"generation": 1}})
