"""Placement: a tenant goes to a site only if it is certified, open, ready and has room."""

from __future__ import annotations

import sys
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, cast

import pytest

from govcloud.api.v1alpha1 import cloudtenant, subcenter
from govcloud.federation import placement
from govcloud.k8s import client
from govcloud.reconcile import placement as tenant_placement

ALLOCATABLE = {"cpu": "48", "memory": "192Gi", "pods": "330"}
QUOTA = {"requests.cpu": "8", "limits.cpu": "16", "requests.memory": "16Gi", "pods": "50"}


def site(**overrides: Any) -> subcenter.SubCenterSpec:
    spec: dict[str, Any] = {
        "displayName": "肥西县政务云分中心",
        "region": "肥西县",
        "tier": "county",
        "mode": "federated",
        "kubeconfigSecretRef": {"name": "feixi-kubeconfig", "namespace": "govcloud-system"},
        "maxSecurityLevel": 2,
    }
    spec.update(overrides)
    return subcenter.SubCenterSpec.model_validate(spec)


HOSTED = {"mode": "hosted", "retireBy": "2027-06-30"}


def facts(
    ready: bool = True,
    allocated: dict[str, str] | None = None,
    allocatable: dict[str, str] | None = None,
) -> placement.SiteFacts:
    return placement.SiteFacts(
        ready=ready,
        allocatable=ALLOCATABLE if allocatable is None else allocatable,
        allocated=allocated or {},
    )


def decide(
    level: int = 2,
    quota: dict[str, str] | None = None,
    spec: subcenter.SubCenterSpec | None = None,
    site_facts: placement.SiteFacts | None = None,
    **options: Any,
) -> placement.Verdict:
    return placement.decide(
        level,
        QUOTA if quota is None else quota,
        "feixi",
        spec or site(),
        site_facts or facts(),
        **options,
    )


def test_a_fitting_tenant_is_placed() -> None:
    assert decide() == placement.Verdict(True, "Placed", "the tenant is placed on SubCenter feixi")


@pytest.mark.parametrize(
    ("level", "spec", "site_facts", "already_placed", "reason"),
    [
        (3, site(), facts(), False, "SecurityLevelTooHigh"),
        (3, site(), facts(), True, "SecurityLevelTooHigh"),
        (1, site(), facts(), False, "Placed"),
        (2, site(maxSecurityLevel=3), facts(), False, "Placed"),
        (2, site(**HOSTED), facts(), False, "SiteBeingRetired"),
        (2, site(**HOSTED), facts(), True, "Placed"),
        (2, site(), facts(ready=False), False, "SubCenterNotReady"),
        (2, site(), facts(ready=False), True, "Placed"),
        (3, site(**HOSTED), facts(ready=False), False, "SecurityLevelTooHigh"),
        (2, site(**HOSTED), facts(ready=False), False, "SiteBeingRetired"),
    ],
    ids=[
        "level-above-site",
        "level-above-site-even-when-placed",
        "level-below-site",
        "level-equal-site",
        "hosted-new",
        "hosted-already-placed-stays",
        "not-ready-new",
        "not-ready-already-placed-stays",
        "first-reason-is-security",
        "retiring-before-not-ready",
    ],
)
def test_refusals(
    level: int,
    spec: subcenter.SubCenterSpec,
    site_facts: placement.SiteFacts,
    already_placed: bool,
    reason: str,
) -> None:
    verdict = decide(level, spec=spec, site_facts=site_facts, already_placed=already_placed)

    assert verdict.reason == reason
    assert verdict.placed is (reason == "Placed")


def test_every_reason_that_applies_is_in_the_message() -> None:
    verdict = decide(3, spec=site(**HOSTED), site_facts=facts(ready=False, allocated=ALLOCATABLE))

    assert verdict.reason == "SecurityLevelTooHigh"
    assert "securityLevel 3 is above the highest MLPS (等保) level" in verdict.message
    assert "is hosted: its apps are moving to the hub and the site is retired by 2027-06-30" in (
        verdict.message
    )
    assert "SubCenter feixi is not Ready" in verdict.message
    assert "the tenant's quota does not fit in SubCenter feixi" in verdict.message


def test_messages_say_what_to_change() -> None:
    assert "remove spec.placement to keep it on the hub" in decide(3).message
    assert "choose a federated sub-center" in decide(spec=site(**HOSTED)).message
    assert "lower spec.quota" in decide(site_facts=facts(allocated=ALLOCATABLE)).message


@pytest.mark.parametrize(
    ("quota", "allocated", "fits", "fragment"),
    [
        ({"requests.cpu": "40"}, {"cpu": "8"}, True, ""),
        (
            {"requests.cpu": "41"},
            {"cpu": "8"},
            False,
            "requests.cpu 41 is more than the 40 CPU free",
        ),
        ({"requests.cpu": "40500m"}, {"cpu": "7500m"}, True, ""),
        ({"requests.cpu": "40501m"}, {"cpu": "7500m"}, False, "the 40500m CPU free"),
        ({"cpu": "41"}, {"cpu": "8"}, False, "cpu 41 is more than"),
        # cpu and requests.cpu both cap requests: the smaller one binds.
        ({"cpu": "100", "requests.cpu": "40"}, {"cpu": "8"}, True, ""),
        ({"cpu": "41", "requests.cpu": "100"}, {"cpu": "8"}, False, "cpu 41 is more than"),
        # limits.cpu is not a reservation of the site.
        ({"limits.cpu": "1000"}, {}, True, ""),
        ({"requests.memory": "176Gi"}, {"memory": "16Gi"}, True, ""),
        (
            {"requests.memory": "177Gi"},
            {"memory": "16Gi"},
            False,
            "requests.memory 177Gi is more than the 176Gi memory free (16Gi of 192Gi is held",
        ),
        ({"memory": "210G"}, {}, False, "memory 210G is more than the 192Gi memory free"),
        ({"memory": "200G"}, {}, True, ""),  # 200e9 bytes < 192Gi
        ({"pods": "331"}, {}, False, "pods 331 is more than the 330 pods free"),
        ({"pods": "330"}, {}, True, ""),
        # Over-committed by others already: nothing is free, not a negative amount.
        ({"pods": "1"}, {"pods": "400"}, False, "the 0 pods free (400 of 330"),
        ({"pods": "0"}, {"pods": "400"}, True, ""),
        # A tenant that bounds nothing reserves nothing.
        ({"services": "10"}, {}, True, ""),
    ],
)
def test_capacity(
    quota: dict[str, str], allocated: dict[str, str], fits: bool, fragment: str
) -> None:
    verdict = decide(quota=quota, site_facts=facts(allocated=allocated))

    assert verdict.placed is fits
    assert verdict.reason == ("Placed" if fits else "InsufficientCapacity")
    assert fragment in verdict.message


def test_every_short_resource_is_named() -> None:
    verdict = decide(
        quota={"requests.cpu": "100", "requests.memory": "1Ti", "pods": "5"},
        site_facts=facts(),
    )

    assert "requests.cpu 100" in verdict.message
    assert "requests.memory 1Ti" in verdict.message
    assert "pods 5" not in verdict.message


def test_a_resource_the_site_has_not_reported_is_not_held_against_the_tenant() -> None:
    verdict = decide(quota={"requests.cpu": "1000"}, site_facts=facts(allocatable={"pods": "10"}))

    assert verdict.placed


def test_a_placed_tenant_is_not_evicted_when_its_site_shrinks() -> None:
    shrunk = facts(allocatable={"cpu": "8", "memory": "16Gi", "pods": "20"}, allocated=ALLOCATABLE)

    assert decide(site_facts=shrunk, already_placed=True).placed
    assert decide(site_facts=shrunk, already_placed=True, admitted_quota=QUOTA).placed


def test_a_placed_tenant_may_grow_only_into_free_capacity() -> None:
    grown = {**QUOTA, "requests.cpu": "30"}

    fits = decide(
        quota=grown,
        site_facts=facts(allocated={"cpu": "18"}),
        already_placed=True,
        admitted_quota=QUOTA,
    )
    too_big = decide(
        quota=grown,
        site_facts=facts(allocated={"cpu": "19"}),
        already_placed=True,
        admitted_quota=QUOTA,
    )

    assert fits.placed
    assert (too_big.placed, too_big.reason) == (False, "InsufficientCapacity")
    assert "requests.cpu 30 is more than the 29 CPU free" in too_big.message


def test_a_placed_tenant_that_shrinks_is_never_refused() -> None:
    smaller = {**QUOTA, "requests.cpu": "4"}
    full = facts(allocated=ALLOCATABLE)

    assert decide(quota=smaller, site_facts=full, already_placed=True, admitted_quota=QUOTA).placed


def test_admitted_quota_is_ignored_for_a_new_placement() -> None:
    verdict = decide(site_facts=facts(allocated=ALLOCATABLE), admitted_quota=QUOTA)

    assert verdict.reason == "InsufficientCapacity"


def test_only_more_cpu_memory_or_pods_than_granted_is_growth() -> None:
    assert not placement.grows(QUOTA, QUOTA)
    assert not placement.grows({**QUOTA, "requests.cpu": "4", "limits.cpu": "64"}, QUOTA)
    assert placement.grows({**QUOTA, "requests.cpu": "8500m"}, QUOTA)
    assert placement.grows({**QUOTA, "requests.memory": "17Gi"}, QUOTA)
    # Bounding a resource it never bounded before asks the site for some of it.
    assert placement.grows({"requests.cpu": "1", "pods": "5"}, {"requests.cpu": "1"})


def test_growth_that_fits_is_granted_whole() -> None:
    grown = {**QUOTA, "requests.cpu": "30", "pods": "60"}

    granted = placement.grant(grown, QUOTA, facts(allocated={"cpu": "18", "pods": "200"}))

    assert granted == placement.Grant(grown, [])


def test_growth_that_does_not_fit_is_held_at_the_grant_and_other_keys_apply() -> None:
    grown = {**QUOTA, "requests.cpu": "30", "limits.cpu": "40", "pods": "60"}

    granted = placement.grant(grown, QUOTA, facts(allocated={"cpu": "19", "pods": "200"}))

    assert granted.quota == {**grown, "requests.cpu": "8"}
    assert granted.shortfalls == [
        "requests.cpu 30 is more than the 29 CPU free (19 of 48 is held by other tenants)"
    ]


def test_every_key_bounding_a_resource_is_held_back() -> None:
    granted_before = {"requests.cpu": "2", "cpu": "3", "pods": "10"}
    grown = {"requests.cpu": "20", "cpu": "20", "pods": "10"}

    granted = placement.grant(grown, granted_before, facts(allocated={"cpu": "40"}))

    assert granted.quota == {"requests.cpu": "2", "cpu": "2", "pods": "10"}


def test_a_full_or_shrunk_site_never_takes_back_what_it_granted() -> None:
    shrunk = facts(allocatable={"cpu": "4", "memory": "8Gi", "pods": "10"}, allocated=ALLOCATABLE)
    grown = {**QUOTA, "requests.cpu": "9"}

    granted = placement.grant(grown, QUOTA, shrunk)

    assert granted.quota == QUOTA
    assert len(granted.shortfalls) == 1


def test_a_newly_bounded_resource_gets_at_most_what_is_free() -> None:
    granted = placement.grant(
        {"requests.cpu": "1", "pods": "100"},
        {"requests.cpu": "1"},
        facts(allocated={"cpu": "1", "pods": "300"}),
    )

    assert granted.quota == {"requests.cpu": "1", "pods": "30"}
    assert "pods 100 is more than the 30 pods free" in granted.shortfalls[0]


def test_a_placed_tenant_holds_what_it_asks_but_no_more_than_it_was_granted() -> None:
    capped = {**QUOTA, "requests.cpu": "30"}

    assert placement.held(capped, QUOTA) == {"cpu": "8", "memory": "16Gi", "pods": "50"}
    assert placement.held({**QUOTA, "pods": "10"}, QUOTA)["pods"] == "10"
    assert placement.held(QUOTA, {}) == placement.demand(QUOTA)  # before its first pass


def test_larger_takes_each_resource_at_its_larger_amount() -> None:
    assert placement.larger({"cpu": "2", "pods": "9"}, {"cpu": "3", "memory": "1Gi"}) == {
        "cpu": "3",
        "pods": "9",
        "memory": "1Gi",
    }


def test_not_found_says_how_to_fix_it() -> None:
    verdict = placement.not_found("wuhu")

    assert (verdict.placed, verdict.reason) == (False, "SubCenterNotFound")
    assert "there is no SubCenter wuhu" in verdict.message
    assert "spec.placement.subCenter" in verdict.message


# What the site's status shows: the sum of placed tenants' quota, and allocated/allocatable.


def test_demand_is_what_the_quota_reserves() -> None:
    assert placement.demand(QUOTA) == {"cpu": "8", "memory": "16Gi", "pods": "50"}
    assert placement.demand({"cpu": "1500m", "memory": "1e9"}) == {
        "cpu": "1500m",
        "memory": "1000000000",
    }
    assert placement.demand({"services": "3"}) == {}


def test_total_adds_up_exactly() -> None:
    quotas = [QUOTA, {"requests.cpu": "500m", "requests.memory": "512Mi"}, {"pods": "10"}]

    assert placement.total(placement.demand(quota) for quota in quotas) == {
        "cpu": "8500m",
        "memory": "16896Mi",
        "pods": "60",
    }
    assert placement.total([]) == {}


def test_total_of_node_allocatables() -> None:
    nodes = [
        {"cpu": "15900m", "memory": "64Gi", "pods": "110", "ephemeral-storage": "100Gi"},
        {"cpu": "16", "memory": "65536Mi", "pods": "110"},
    ]

    assert placement.total(nodes) == {"cpu": "31900m", "memory": "128Gi", "pods": "220"}


def test_summary_for_the_printer_columns() -> None:
    assert placement.summary({"cpu": "12", "memory": "24Gi"}, ALLOCATABLE) == {
        "cpu": "12/48",
        "memory": "24Gi/192Gi",
        "pods": "0/330",
    }
    assert placement.summary({}, {}) == {}


# -- admissions: a site's placements are decided one at a time ------------------------------


@pytest.mark.parametrize(
    ("admitted", "asking", "placed", "expected"),
    [
        (set(), {"a"}, True, {"a"}),
        ({"b"}, {"a", "b"}, True, {"a", "b"}),
        ({"a", "b"}, {"a", "b"}, False, {"b"}),
        ({"a", "gone"}, {"a", "b"}, True, {"a"}),
        ({"a", "moved"}, {"a"}, False, set()),
    ],
    ids=["joins", "joins-others", "refused-leaves", "gone-forgotten", "moved-forgotten"],
)
def test_still_admitted(
    admitted: set[str], asking: set[str], placed: bool, expected: set[str]
) -> None:
    """Tenant "a" was just decided: it joins or leaves; who no longer asks is forgotten."""
    assert placement.still_admitted(admitted, asking, "a", placed) == frozenset(expected)


def test_a_burst_of_placements_never_over_commits_a_site() -> None:
    """Eight tenants asking at once for a site with room for three: exactly three are placed.

    Their statuses are never written here, so only the admissions recorded under the site's
    lock can keep the others out.
    """
    site_name = f"burst-{uuid.uuid4().hex[:6]}"
    bodies = [_asking(f"t{index}", site_name) for index in range(8)]
    fake = _Hub(bodies)
    hub = cast(client.Cluster, fake)
    site_body = _ready_site(site_name)
    spec = cloudtenant.CloudTenantSpec.model_validate(bodies[0]["spec"])

    verdicts = _all_at_once(
        lambda body: tenant_placement.admit(hub, site_body, body, spec, site()).placed, bodies
    )

    assert verdicts.count(True) == 3  # 3 x 30 pods fit in 110, a fourth does not
    held = [body for body in bodies if tenant_placement.holds_place(body, site_name)]
    assert len(held) == 3
    # Each admission is written into the tenant's status before anything is made on the site.
    assert sorted(name for name, _ in fake.recorded) == sorted(
        body["metadata"]["name"] for body in held
    )
    assert all(
        status == {"placement": {"cluster": site_name, "message": None}}
        for _, status in fake.recorded
    )
    assert tenant_placement.site_facts(site_body, held).allocated == {"cpu": "18", "pods": "90"}


def test_placed_tenants_growing_at_once_never_over_commit_a_site() -> None:
    """Eight placed tenants holding 10 pods each all ask for 30 at once; 30 pods are free.

    Exactly one growth fits. No status is written here, so only what the site's lock records
    of a granted growth keeps the others from counting the room twice.
    """
    site_name = f"grow-{uuid.uuid4().hex[:6]}"
    bodies = [_placed(f"g{index}", site_name, granted_pods="10") for index in range(8)]
    hub = cast(client.Cluster, _Hub(bodies))
    site_body = _ready_site(site_name)
    spec = cloudtenant.CloudTenantSpec.model_validate(bodies[0]["spec"])

    grants = _all_at_once(lambda body: tenant_placement.grant(hub, site_body, body, spec), bodies)

    pods = sorted(int(grant.quota["pods"]) for grant in grants)
    assert pods == [10] * 7 + [30]
    assert all(grant.shortfalls for grant in grants if grant.quota["pods"] == "10")
    assert sum(pods) <= 110


def test_others_count_what_they_were_granted_here_or_all_they_ask_before_that() -> None:
    site_name = f"count-{uuid.uuid4().hex[:6]}"
    site_body = {"metadata": {"name": site_name}, "status": {"allocatable": {"pods": "110"}}}
    capped = _placed("c0", site_name, granted_pods="10")  # asks for 30, was granted 10
    moving = _asking("m0", site_name)  # asks for 30 here; its status still describes the hub
    moving["status"] = {
        "placement": {"cluster": "hub"},
        "quota": {"hard": {"requests.cpu": "1", "pods": "5"}},
    }

    assert tenant_placement.site_facts(site_body, [capped]).allocated == {"cpu": "6", "pods": "10"}
    assert tenant_placement.site_facts(site_body, [moving]).allocated == {"cpu": "6", "pods": "30"}


def test_a_tenant_that_does_not_grow_takes_no_lock_and_lists_nothing() -> None:
    site_name = f"still-{uuid.uuid4().hex[:6]}"
    body = _placed("s0", site_name, granted_pods="30")
    spec = cloudtenant.CloudTenantSpec.model_validate(body["spec"])
    site_body = {"metadata": {"name": site_name}, "status": {"allocatable": {"pods": "1"}}}

    grant = tenant_placement.grant(cast(client.Cluster, None), site_body, body, spec)

    assert grant == placement.Grant({"requests.cpu": "6", "pods": "30"}, [])


T = TypeVar("T")


def _all_at_once(work: Callable[[dict[str, Any]], T], bodies: list[dict[str, Any]]) -> list[T]:
    """`work` for every tenant on its own thread, all released at once."""
    start = threading.Barrier(len(bodies))

    def run(body: dict[str, Any]) -> T:
        start.wait()
        return work(body)

    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads interleave inside every decision, as on a busy hub
    try:
        with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
            return list(pool.map(run, bodies))
    finally:
        sys.setswitchinterval(switch_interval)


def _ready_site(site_name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": site_name},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "allocatable": {"cpu": "32", "pods": "110"},
        },
    }


class _Hub:
    """Just enough of a hub for placement: the CloudTenants, as listed."""

    def __init__(self, tenants: list[dict[str, Any]]) -> None:
        self.tenants = tenants
        self.recorded: list[tuple[str, dict[str, Any]]] = []  # status patches, not applied

    def list(self, api_version: str, kind: str) -> list[dict[str, Any]]:
        assert kind == "CloudTenant", (api_version, kind)
        return [dict(item) for item in self.tenants]

    def patch_status(
        self, api_version: str, kind: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        assert kind == "CloudTenant", (api_version, kind)
        self.recorded.append((name, status))
        return {}


def _asking(name: str, site_name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "uid": f"uid-{name}"},
        "spec": {
            "displayName": f"测试单位 {name}",
            "unit": {"code": name, "tier": "county"},
            "contacts": [{"name": "测试员", "email": "test@example.gov.cn"}],
            "admins": {"groups": [f"{name}-admins"]},
            "securityLevel": 2,
            "namespaces": [{"name": "app"}],
            "quota": {"requests.cpu": "6", "pods": "30"},
            "placement": {"subCenter": site_name},
        },
    }


def _placed(name: str, site_name: str, granted_pods: str) -> dict[str, Any]:
    """A tenant placed on the site, granted `granted_pods`, whose spec asks for 30."""
    body = _asking(name, site_name)
    body["status"] = {
        "placement": {"cluster": site_name},
        "quota": {"hard": {"requests.cpu": "6", "pods": granted_pods}},
    }
    return body
