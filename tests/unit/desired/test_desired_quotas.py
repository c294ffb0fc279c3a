"""The elastic quota split never lets a tenant's namespaces together exceed the tenant's quota."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pytest

from govcloud.desired import meta, quantity, quotas

Observed = quotas.ObservedQuota
CPU, MEMORY, PODS = "requests.cpu", "requests.memory", "pods"


def synced(hard: Mapping[str, str], used: Mapping[str, str] | None = None) -> Observed:
    """A quota the quota controller has caught up with; usage defaults to zero."""
    return Observed(hard=dict(hard), used=dict(used or dict.fromkeys(hard, "0")))


def commitment(quota: Observed, resource: str) -> int | None:
    """c_i = max(hard, status hard, used) in milli-units; None when hard or used is unknown."""
    if resource not in quota.hard or resource not in quota.used:
        return None
    values = [quota.hard[resource], quota.used[resource]]
    values += [(quota.status_hard or {}).get(resource, "0")]
    return max(quantity.to_milli(value, round_up=True) for value in values)


def total(values: Sequence[str]) -> int:
    return sum(quantity.to_milli(value) for value in values)


# --- examples ---------------------------------------------------------------------------------


def test_new_tenant_splits_the_quota_evenly_remainder_to_first_names() -> None:
    allocation = quotas.allocate({CPU: "1", PODS: "10", MEMORY: "10Gi"}, ["t-c", "t-a", "t-b"], {})
    assert allocation.hard == {
        "t-a": {CPU: "334m", PODS: "4", MEMORY: "3414Mi"},
        "t-b": {CPU: "333m", PODS: "3", MEMORY: "3413Mi"},
        "t-c": {CPU: "333m", PODS: "3", MEMORY: "3413Mi"},
    }
    assert allocation.over_committed == {}


def test_new_quotas_are_created_at_zero_and_raised_in_phase_two() -> None:
    allocation = quotas.allocate({PODS: "10"}, ["t-a", "t-b"], {})
    assert allocation.decreases == {"t-a": {PODS: "0"}, "t-b": {PODS: "0"}}
    assert allocation.increases == {"t-a": {PODS: "5"}, "t-b": {PODS: "5"}}
    assert allocation.changed


def test_share_is_added_to_usage_with_mixed_units() -> None:
    observed = {
        "t-a": synced({CPU: "2"}, {CPU: "1500m"}),
        "t-b": synced({CPU: "8"}, {CPU: "500m"}),
    }
    allocation = quotas.allocate({CPU: "10000m"}, ["t-a", "t-b"], observed)
    assert allocation.hard == {"t-a": {CPU: "5500m"}, "t-b": {CPU: "4500m"}}
    assert allocation.decreases == {"t-b": {CPU: "4500m"}}
    assert allocation.increases == {"t-a": {CPU: "5500m"}}


def test_small_byte_pools_are_split_in_bytes() -> None:
    allocation = quotas.allocate({MEMORY: "1001"}, ["t-a", "t-b"], {})
    assert allocation.hard == {"t-a": {MEMORY: "501"}, "t-b": {MEMORY: "500"}}


def test_counts_are_split_in_whole_units_rounding_down() -> None:
    observed = {name: synced({PODS: "0"}, {PODS: "0"}) for name in ("t-a", "t-b", "t-c")}
    allocation = quotas.allocate({PODS: "2500m"}, ["t-a", "t-b", "t-c"], observed)
    assert allocation.hard == {"t-a": {PODS: "1"}, "t-b": {PODS: "1"}, "t-c": {PODS: "0"}}


def test_unchanged_quotas_are_kept_verbatim_and_not_written() -> None:
    observed = {
        "t-a": synced({CPU: "5000m", PODS: "5"}, {CPU: "1", PODS: "2"}),
        "t-b": synced({CPU: "5", PODS: "5"}, {CPU: "1", PODS: "1"}),
    }
    allocation = quotas.allocate({CPU: "10", PODS: "10"}, ["t-a", "t-b"], observed)
    assert allocation.hard == {"t-a": {CPU: "5000m", PODS: "5"}, "t-b": {CPU: "5", PODS: "5"}}
    assert not allocation.changed


def test_headroom_below_half_a_fair_share_triggers_a_rebalance() -> None:
    # free = 10 - 8 = 2, fair share 1, half 0.5: t-a has 0 headroom left.
    observed = {"t-a": synced({PODS: "5"}, {PODS: "5"}), "t-b": synced({PODS: "5"}, {PODS: "3"})}
    allocation = quotas.allocate({PODS: "10"}, ["t-a", "t-b"], observed)
    assert allocation.hard == {"t-a": {PODS: "6"}, "t-b": {PODS: "4"}}
    assert allocation.decreases == {"t-b": {PODS: "4"}}
    assert allocation.increases == {"t-a": {PODS: "6"}}


def test_headroom_of_half_a_fair_share_is_kept() -> None:
    # free = 4, fair share 2, half 1: t-a still has exactly 1.
    observed = {"t-a": synced({PODS: "4"}, {PODS: "3"}), "t-b": synced({PODS: "6"}, {PODS: "3"})}
    assert not quotas.allocate({PODS: "10"}, ["t-a", "t-b"], observed).changed


def test_a_namespace_may_gain_on_one_resource_and_lose_on_another() -> None:
    observed = {
        "t-a": synced({CPU: "8", PODS: "2"}, {CPU: "0", PODS: "2"}),
        "t-b": synced({CPU: "2", PODS: "8"}, {CPU: "0", PODS: "0"}),
    }
    allocation = quotas.allocate({CPU: "10", PODS: "10"}, ["t-a", "t-b"], observed)
    assert allocation.hard == {"t-a": {CPU: "5", PODS: "6"}, "t-b": {CPU: "5", PODS: "4"}}
    assert allocation.decreases == {"t-a": {CPU: "5", PODS: "2"}, "t-b": {CPU: "2", PODS: "4"}}
    assert allocation.increases == {"t-a": {CPU: "5", PODS: "6"}, "t-b": {CPU: "5", PODS: "4"}}


def test_a_resource_new_to_the_tenant_is_limited_to_zero_first() -> None:
    observed = {"t-a": synced({PODS: "10"}, {PODS: "1"})}
    allocation = quotas.allocate({PODS: "10", "services": "4"}, ["t-a"], observed)
    assert allocation.decreases == {"t-a": {PODS: "10", "services": "0"}}
    assert allocation.increases == {"t-a": {PODS: "10", "services": "4"}}


def test_a_resource_dropped_from_the_tenant_is_released_last() -> None:
    observed = {"t-a": synced({PODS: "10", "services": "4"})}
    allocation = quotas.allocate({PODS: "10"}, ["t-a"], observed)
    assert allocation.hard == {"t-a": {PODS: "10"}}
    assert allocation.decreases == {}
    assert allocation.increases == {"t-a": {PODS: "10"}}


def test_shrinking_below_usage_clips_hards_and_reports_over_commitment() -> None:
    observed = {
        "t-a": synced({PODS: "10"}, {PODS: "8"}),
        "t-b": synced({PODS: "10"}, {PODS: "6"}),
        "t-c": synced({PODS: "10"}, {PODS: "0"}),
    }
    allocation = quotas.allocate({PODS: "10"}, ["t-a", "t-b", "t-c"], observed)
    assert allocation.hard == {"t-a": {PODS: "5"}, "t-b": {PODS: "5"}, "t-c": {PODS: "0"}}
    assert allocation.over_committed == {PODS: ("14", "10")}
    assert allocation.increases == {}


def test_over_commitment_is_reported_in_binary_units_for_memory() -> None:
    observed = {"t-a": synced({MEMORY: "2Gi"}, {MEMORY: "2Gi"})}
    allocation = quotas.allocate({MEMORY: "1Gi"}, ["t-a"], observed)
    assert allocation.over_committed == {MEMORY: ("2Gi", "1Gi")}
    assert allocation.hard == {"t-a": {MEMORY: "1Gi"}}


def test_namespaces_below_the_water_level_keep_their_usage_as_hard() -> None:
    observed = {
        "t-a": synced({CPU: "4"}, {CPU: "3"}),
        "t-b": synced({CPU: "4"}, {CPU: "500m"}),
    }
    allocation = quotas.allocate({CPU: "2"}, ["t-a", "t-b"], observed)
    assert allocation.hard == {"t-a": {CPU: "1500m"}, "t-b": {CPU: "500m"}}


def test_suspension_forces_pods_to_zero_everywhere() -> None:
    observed = {"t-a": synced({PODS: "5", CPU: "5"}, {PODS: "3", CPU: "1"})}
    allocation = quotas.allocate({PODS: "5", CPU: "5"}, ["t-a"], observed, suspended=True)
    assert allocation.hard == {"t-a": {PODS: "0", CPU: "5", "count/pods": "0"}}
    assert allocation.decreases == {"t-a": {PODS: "0", CPU: "5", "count/pods": "0"}}
    assert allocation.increases == {}


def test_suspension_applies_without_a_tenant_quota() -> None:
    allocation = quotas.allocate({}, ["t-a"], {}, suspended=True)
    assert allocation.hard == {"t-a": {"pods": "0", "count/pods": "0"}}


def test_resuming_raises_pods_again_in_phase_two() -> None:
    observed = {"t-a": synced({PODS: "0", "count/pods": "0"}, {PODS: "3", "count/pods": "3"})}
    allocation = quotas.allocate({PODS: "5"}, ["t-a"], observed)
    assert allocation.decreases == {}
    assert allocation.increases == {"t-a": {PODS: "5"}}


def test_suspended_hard_keeps_other_resources() -> None:
    assert quotas.suspended_hard({CPU: "2", PODS: "9"}) == {
        CPU: "2",
        PODS: "0",
        "count/pods": "0",
    }


def test_no_tenant_quota_means_no_quota_writes() -> None:
    allocation = quotas.allocate({}, ["t-a"], {"t-a": synced({PODS: "3"})})
    assert allocation.hard == {"t-a": {}}
    assert not allocation.changed


def test_no_namespaces_means_an_empty_allocation() -> None:
    assert quotas.allocate({PODS: "3"}, [], {}) == quotas.Allocation({}, {}, {})


def test_quotas_of_other_namespaces_are_ignored() -> None:
    observed = {"t-gone": synced({PODS: "10"}, {PODS: "10"})}
    assert quotas.allocate({PODS: "10"}, ["t-a"], observed).hard == {"t-a": {PODS: "10"}}


def test_malformed_tenant_quantity_is_an_error() -> None:
    with pytest.raises(quantity.QuantityError):
        quotas.allocate({PODS: "ten"}, ["t-a"], {})


# --- cap_increases ------------------------------------------------------------------------------


def test_increases_are_granted_when_the_decreases_freed_the_room() -> None:
    observed = {"t-a": synced({PODS: "5"}, {PODS: "5"}), "t-b": synced({PODS: "4"}, {PODS: "3"})}
    planned = {"t-a": {PODS: "6"}}
    assert quotas.cap_increases({PODS: "10"}, observed, planned) == {"t-a": {PODS: "6"}}


def test_increases_are_capped_by_usage_that_grew_before_a_decrease_landed() -> None:
    # t-b's decrease to 4 came too late: it already uses 5.
    observed = {"t-a": synced({PODS: "5"}, {PODS: "5"}), "t-b": synced({PODS: "4"}, {PODS: "5"})}
    planned = {"t-a": {PODS: "6"}}
    assert quotas.cap_increases({PODS: "10"}, observed, planned) == {}


def test_increases_wait_for_the_quota_controller_to_enforce_a_decrease() -> None:
    lagging = Observed(hard={PODS: "4"}, used={PODS: "3"}, status_hard={PODS: "5"})
    observed = {"t-a": synced({PODS: "5"}, {PODS: "5"}), "t-b": lagging}
    assert quotas.cap_increases({PODS: "10"}, observed, {"t-a": {PODS: "6"}}) == {}


def test_partial_room_gives_a_partial_increase_in_whole_units() -> None:
    observed = {"t-a": synced({PODS: "2"}, {PODS: "2"}), "t-b": synced({PODS: "6500m"})}
    planned = {"t-a": {PODS: "8"}}
    assert quotas.cap_increases({PODS: "10"}, observed, planned) == {"t-a": {PODS: "3"}}


def test_slack_is_shared_in_name_order() -> None:
    observed = {name: synced({PODS: "1"}) for name in ("t-a", "t-b", "t-c")}
    # slack = 10 - 3 = 7: enough for both raises of 3.
    planned = {"t-b": {PODS: "4"}, "t-a": {PODS: "4"}}
    assert quotas.cap_increases({PODS: "10"}, observed, planned) == planned
    # Not enough for two raises of 7: t-a takes it all, t-b keeps its hard (no write).
    tight = {"t-b": {PODS: "8"}, "t-a": {PODS: "8"}}
    assert quotas.cap_increases({PODS: "10"}, observed, tight) == {"t-a": {PODS: "8"}}


def test_raising_a_hard_up_to_current_usage_costs_nothing() -> None:
    # t-a uses 6 under a lowered hard of 5; slack is 10 - 6 - 4 = 0.
    observed = {"t-a": synced({PODS: "5"}, {PODS: "6"}), "t-b": synced({PODS: "4"}, {PODS: "4"})}
    planned = {"t-a": {PODS: "6"}}
    assert quotas.cap_increases({PODS: "10"}, observed, planned) == {"t-a": {PODS: "6"}}


def test_nothing_is_raised_while_the_tenant_is_over_committed() -> None:
    # Even up to its own usage: that usage may drain before the write lands.
    observed = {"t-a": synced({PODS: "5"}, {PODS: "8"}), "t-b": synced({PODS: "5"}, {PODS: "6"})}
    planned = {"t-a": {PODS: "6"}}
    assert quotas.cap_increases({PODS: "10"}, observed, planned) == {}


def test_unknown_usage_blocks_increases() -> None:
    observed = {
        "t-a": synced({PODS: "1"}),
        "t-b": Observed(hard={PODS: "1"}, used={}, status_hard={}),
    }
    assert quotas.cap_increases({PODS: "10"}, observed, {"t-a": {PODS: "5"}}) == {}


def test_a_namespace_without_a_quota_blocks_increases_and_is_limited_to_zero() -> None:
    observed = {"t-a": synced({PODS: "1"})}
    planned = {"t-a": {PODS: "5"}, "t-b": {PODS: "5"}}
    assert quotas.cap_increases({PODS: "10"}, observed, planned, namespaces=["t-c"]) == {
        "t-b": {PODS: "0"}
    }


def test_quotas_of_departing_namespaces_still_count() -> None:
    observed = {"t-a": synced({PODS: "1"}), "t-gone": synced({PODS: "8"})}
    assert quotas.cap_increases({PODS: "10"}, observed, {"t-a": {PODS: "5"}}) == {
        "t-a": {PODS: "2"}
    }


def test_resources_outside_the_tenant_quota_pass_through() -> None:
    observed = {"t-a": synced({PODS: "0", "count/pods": "0"}, {PODS: "0", "count/pods": "0"})}
    planned = {"t-a": {PODS: "5"}}
    assert quotas.cap_increases({PODS: "5"}, observed, planned) == {"t-a": {PODS: "5"}}


# --- first_hards: a brand-new namespace's quota in one write -----------------------------------


def test_new_namespaces_of_a_new_tenant_get_their_final_share_at_once() -> None:
    allocation = quotas.allocate({PODS: "10", CPU: "1"}, ["t-a", "t-b"], {})
    first = quotas.first_hards({PODS: "10", CPU: "1"}, {}, allocation.hard, namespaces=["t-a"])
    assert first == {"t-a": {PODS: "5", CPU: "500m"}, "t-b": {PODS: "5", CPU: "500m"}}
    assert first == allocation.hard


def test_a_new_namespace_gets_no_more_than_the_slack_the_others_leave() -> None:
    # t-old commits max(8, 8, 2) = 8 of 10: 2 are left, however much the allocation planned.
    observed = {"t-old": synced({PODS: "8"}, {PODS: "2"})}
    first = quotas.first_hards({PODS: "10"}, observed, {"t-new": {PODS: "4"}})
    assert first == {"t-new": {PODS: "2"}}


def test_the_others_commitment_counts_their_enforced_hard_and_usage() -> None:
    # A decrease of t-old to 3 is not enforced yet (status.hard 9): only 1 is free.
    lagging = Observed(hard={PODS: "3"}, used={PODS: "2"}, status_hard={PODS: "9"})
    first = quotas.first_hards({PODS: "10"}, {"t-old": lagging}, {"t-new": {PODS: "4"}})
    assert first == {"t-new": {PODS: "1"}}
    # Usage above a lowered hard counts too.
    grown = synced({PODS: "3"}, {PODS: "7"})
    assert quotas.first_hards({PODS: "10"}, {"t-old": grown}, {"t-new": {PODS: "4"}}) == {
        "t-new": {PODS: "3"}
    }


def test_new_namespaces_share_the_slack_in_name_order() -> None:
    observed = {"t-old": synced({PODS: "6"})}
    planned = {"t-c": {PODS: "3"}, "t-b": {PODS: "3"}}
    assert quotas.first_hards({PODS: "10"}, observed, planned) == {
        "t-b": {PODS: "3"},
        "t-c": {PODS: "1"},
    }


def test_without_slack_a_new_namespace_starts_at_zero_as_in_phase_one() -> None:
    planned = {"t-new": {PODS: "5", CPU: "1"}}
    zero = {"t-new": {PODS: "0", CPU: "0"}}
    unknown = {"t-old": Observed(hard={PODS: "5", CPU: "1"}, used={}, status_hard={})}
    assert quotas.first_hards({PODS: "10", CPU: "2"}, unknown, planned) == zero
    over = {"t-old": synced({PODS: "5", CPU: "1"}, {PODS: "12", CPU: "0"})}
    assert quotas.first_hards({PODS: "10", CPU: "2"}, over, planned) == {
        "t-new": {PODS: "0", CPU: "1"}
    }
    # An old namespace without a quota object has an unknown commitment.
    assert quotas.first_hards({PODS: "10", CPU: "2"}, {}, planned, namespaces=["t-old"]) == zero


def test_a_namespace_that_already_has_a_quota_is_not_new() -> None:
    observed = {"t-a": synced({PODS: "1"})}
    assert quotas.first_hards({PODS: "10"}, observed, {"t-a": {PODS: "5"}}) == {}


def test_suspended_new_namespaces_keep_pods_at_zero() -> None:
    allocation = quotas.allocate({CPU: "2"}, ["t-a"], {}, suspended=True)
    first = quotas.first_hards({CPU: "2"}, {}, allocation.hard)
    assert first == {"t-a": {CPU: "2", PODS: "0", "count/pods": "0"}}


def test_a_quota_grants_something_when_a_hard_is_above_zero() -> None:
    assert quotas.grants_any({PODS: "0", CPU: "1m"})
    assert not quotas.grants_any({PODS: "0", CPU: "0"})
    assert not quotas.grants_any({})


@pytest.mark.parametrize("seed", range(300))
def test_first_hards_stay_within_the_slack_and_the_plan(seed: int) -> None:
    tenant, names, observed = random_case(random.Random(seed))
    new = [name for name in names if name not in observed]
    allocation = quotas.allocate(tenant, names, observed)
    planned = {name: allocation.hard[name] for name in new}
    first = quotas.first_hards(tenant, observed, planned)
    assert set(first) == set(new)
    for resource, limit in tenant.items():
        others = [commitment(quota, resource) for quota in observed.values()]
        given = sum(quantity.to_milli(first[name][resource]) for name in new)
        if any(value is None for value in others):
            assert given == 0
            continue
        taken = sum(value or 0 for value in others)
        assert given <= max(0, quantity.to_milli(limit) - taken)
        for name in new:
            assert quantity.parse(first[name][resource]) <= quantity.parse(planned[name][resource])


# --- manifests ----------------------------------------------------------------------------------


def test_resource_quota_manifest() -> None:
    assert quotas.manifest("jtj", "jtj-prod", {PODS: "5"}) == {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": meta.object_meta("govcloud-quota", "jtj-prod", "jtj"),
        "spec": {"hard": {PODS: "5"}},
    }


def test_observed_from_manifest_reads_spec_and_status() -> None:
    quota = {
        "spec": {"hard": {PODS: "5"}},
        "status": {"hard": {PODS: "4"}, "used": {PODS: "1"}},
    }
    assert quotas.observed_from_manifest(quota) == Observed(
        hard={PODS: "5"}, used={PODS: "1"}, status_hard={PODS: "4"}
    )
    assert quotas.observed_from_manifest({"spec": {"hard": {PODS: "5"}}}) == Observed(
        hard={PODS: "5"}, used={}, status_hard={}
    )


# --- properties ---------------------------------------------------------------------------------

RESOURCES = (CPU, MEMORY, PODS, "count/services")


def random_amount(rng: random.Random, resource: str, scale: int) -> int:
    """A random amount in milli-units, in the units people actually use for ``resource``."""
    if resource == CPU:
        return rng.randrange(scale * 1000)
    if resource == MEMORY:
        return rng.randrange(scale) * rng.choice([1000, 1024 * 1000, 1024**2 * 1000])
    return rng.randrange(scale) * 1000


def random_case(
    rng: random.Random,
) -> tuple[dict[str, str], list[str], dict[str, Observed]]:
    resources = rng.sample(RESOURCES, rng.randint(1, len(RESOURCES)))
    names = [f"t-{index}" for index in range(rng.randint(1, 6))]
    tenant = {r: quantity.from_milli(random_amount(rng, r, 40)) for r in resources}
    observed: dict[str, Observed] = {}
    for name in names:
        if rng.random() < 0.2:
            continue
        held = [r for r in resources if rng.random() < 0.9]
        hard = {r: quantity.from_milli(random_amount(rng, r, 20)) for r in held}
        used = {r: quantity.from_milli(random_amount(rng, r, 12)) for r in held}
        observed[name] = Observed(hard=hard, used=used)
    return tenant, names, observed


def used_milli(observed: Mapping[str, Observed], name: str, resource: str) -> int:
    quota = observed.get(name)
    return quantity.to_milli(quota.used.get(resource, "0")) if quota else 0


@pytest.mark.parametrize("seed", range(400))
def test_final_hards_never_exceed_the_tenant_and_cover_usage(seed: int) -> None:
    tenant, names, observed = random_case(random.Random(seed))
    allocation = quotas.allocate(tenant, names, observed)
    for resource, limit in tenant.items():
        hards = {name: quantity.to_milli(allocation.hard[name][resource]) for name in names}
        used = {name: used_milli(observed, name, resource) for name in names}
        assert sum(hards.values()) <= quantity.to_milli(limit)
        if sum(used.values()) <= quantity.to_milli(limit):
            assert all(hards[name] >= used[name] for name in names)
            assert resource not in allocation.over_committed
        else:
            assert all(hards[name] <= used[name] for name in names)
            assert allocation.over_committed[resource] == (
                quantity.from_milli(sum(used.values()), binary=quantity.is_binary(resource)),
                quantity.from_milli(quantity.to_milli(limit), binary=quantity.is_binary(resource)),
            )


@pytest.mark.parametrize("seed", range(400))
def test_allocation_is_idempotent(seed: int) -> None:
    tenant, names, observed = random_case(random.Random(seed))
    suspended = seed % 5 == 0
    first = quotas.allocate(tenant, names, observed, suspended=suspended)
    applied = {
        name: Observed(
            hard=first.hard[name],
            used={r: (observed[name].used if name in observed else {}).get(r, "0") for r in tenant},
        )
        for name in names
    }
    second = quotas.allocate(tenant, names, applied, suspended=suspended)
    assert second.hard == first.hard
    assert not second.changed


@pytest.mark.parametrize("seed", range(400))
def test_phase_one_alone_never_raises_a_hard(seed: int) -> None:
    tenant, names, observed = random_case(random.Random(seed))
    allocation = quotas.allocate(tenant, names, observed)
    for name, hard in allocation.decreases.items():
        current = observed[name].hard if name in observed else {}
        for resource, value in hard.items():
            if resource in current:
                assert quantity.parse(value) <= quantity.parse(current[resource])
        assert set(current) <= set(hard)


# --- the guarantee, on a simulated cluster -------------------------------------------------------


@dataclass
class SimulatedQuota:
    spec: dict[str, int]
    status: dict[str, int] = field(default_factory=dict)
    reported: set[str] = field(default_factory=set)


@dataclass
class SimulatedCluster:
    """Quota admission as the API server does it, with a lagging quota controller.

    Usage grows only within ``status.hard`` (what admission enforces) of a synced quota;
    syncing copies spec to status and reports usage. Namespaces without a quota do not grow:
    nobody has access to them yet.
    """

    tenant: dict[str, int]
    used: dict[str, dict[str, int]]
    quotas: dict[str, SimulatedQuota]
    rng: random.Random
    bound: dict[str, int] = field(default_factory=dict)
    writes: dict[str, int] = field(default_factory=dict)
    wanted: dict[str, dict[str, str]] = field(default_factory=dict)  # room asked for

    def commitment(self, resource: str) -> int:
        total_commitment = 0
        for name, used in self.used.items():
            quota = self.quotas.get(name)
            values = [used.get(resource, 0)]
            if quota is not None:
                values += [quota.spec.get(resource, 0), quota.status.get(resource, 0)]
            total_commitment += max(values)
        return total_commitment

    def reset_bounds(self) -> None:
        self.bound = {r: max(limit, self.commitment(r)) for r, limit in self.tenant.items()}

    def check_invariant(self) -> None:
        """Σ commitment <= T if it held; if it did not, it never gets worse."""
        for resource, limit in self.tenant.items():
            now = self.commitment(resource)
            assert now <= self.bound[resource], (resource, now, limit)
            self.bound[resource] = max(limit, now)

    def observe(self) -> dict[str, Observed]:
        def text(values: Mapping[str, int]) -> dict[str, str]:
            return {r: quantity.from_milli(v) for r, v in values.items()}

        return {
            name: Observed(
                hard=text(quota.spec),
                used=text({r: self.used[name].get(r, 0) for r in quota.reported}),
                status_hard=text(quota.status),
            )
            for name, quota in self.quotas.items()
        }

    def write(self, name: str, hard: Mapping[str, str]) -> None:
        self.writes[name] = self.writes.get(name, 0) + 1
        spec = {r: quantity.to_milli(v) for r, v in hard.items()}
        if name in self.quotas:
            self.quotas[name].spec = spec
        else:
            self.quotas[name] = SimulatedQuota(spec=spec)
        self.check_invariant()

    def sync(self, name: str) -> None:
        quota = self.quotas[name]
        quota.status = dict(quota.spec)
        quota.reported = set(quota.spec)

    def churn(self, steps: int) -> None:
        for _ in range(steps):
            name = self.rng.choice(sorted(self.used))
            quota = self.quotas.get(name)
            if quota is not None and self.rng.random() < 0.3:
                self.sync(name)
            elif quota is not None and quota.status:
                resource = self.rng.choice(sorted(quota.status))
                used = self.used[name].get(resource, 0)
                if self.rng.random() < 0.7:
                    room = max(0, quota.status[resource] - used)
                    self.used[name][resource] = used + self.rng.randint(0, room)
                else:
                    self.used[name][resource] = self.rng.randint(0, used)
            self.check_invariant()

    def reconcile(self, names: Sequence[str], churn: int) -> int:
        """One reconcile pass as the reconciler runs it; returns the number of writes."""
        tenant = {r: quantity.from_milli(v) for r, v in self.tenant.items()}
        allocation = quotas.allocate(tenant, names, self.observe(), wanted=self.wanted)
        for name, hard in self.shuffled(allocation.decreases):
            self.churn(churn)
            self.write(name, hard)
        self.churn(churn)
        capped = quotas.cap_increases(
            tenant, self.observe(), allocation.increases, namespaces=names
        )
        for name, hard in self.shuffled(capped):
            self.churn(churn)
            self.write(name, hard)
        return len(allocation.decreases) + len(capped)

    def onboard(self, names: Sequence[str], created: Sequence[str], churn: int) -> None:
        """A pass that just created ``created``, as the reconciler runs it: phase 1 for the
        others, then each new quota in one write from a fresh read, then phase 2.

        The reconciler grants access to a new namespace only once its quota is enforced and
        the namespace found empty; here that is the cluster's rule that usage grows only
        within a synced quota's ``status.hard``.
        """
        tenant = {r: quantity.from_milli(v) for r, v in self.tenant.items()}
        allocation = quotas.allocate(tenant, names, self.observe())
        others = {name: hard for name, hard in allocation.decreases.items() if name not in created}
        for name, hard in self.shuffled(others):
            self.churn(churn)
            self.write(name, hard)
        self.churn(churn)
        planned = {name: allocation.hard[name] for name in created}
        first = quotas.first_hards(tenant, self.observe(), planned, namespaces=names)
        for name, hard in self.shuffled(first):
            self.churn(churn)
            self.write(name, hard)
        self.churn(churn)
        capped = quotas.cap_increases(
            tenant, self.observe(), allocation.increases, namespaces=names
        )
        for name, hard in self.shuffled(capped):
            self.churn(churn)
            self.write(name, hard)

    def shuffled(
        self, writes: Mapping[str, Mapping[str, str]]
    ) -> list[tuple[str, Mapping[str, str]]]:
        items = list(writes.items())
        self.rng.shuffle(items)
        return items


def random_cluster(rng: random.Random) -> tuple[SimulatedCluster, list[str]]:
    resources = rng.sample(RESOURCES, rng.randint(1, len(RESOURCES)))
    names = [f"t-{index}" for index in range(rng.randint(1, 5))]
    tenant = {r: random_amount(rng, r, 30) for r in resources}
    cluster = SimulatedCluster(tenant=tenant, used={}, quotas={}, rng=rng)
    for name in names:
        cluster.used[name] = {}
        if rng.random() < 0.25:
            continue
        spec = {r: random_amount(rng, r, 12) for r in resources if rng.random() < 0.9}
        status = spec if rng.random() < 0.7 else {r: random_amount(rng, r, 12) for r in spec}
        cluster.quotas[name] = SimulatedQuota(spec=spec, status=dict(status), reported=set(spec))
        cluster.used[name] = {r: rng.randint(0, max(status[r], 1)) for r in status}
    cluster.reset_bounds()
    return cluster, names


@pytest.mark.parametrize("seed", range(300))
def test_no_interleaving_of_writes_usage_and_quota_sync_breaks_the_invariant(seed: int) -> None:
    rng = random.Random(seed)
    cluster, names = random_cluster(rng)
    for _ in range(4):
        cluster.reconcile(names, churn=rng.randint(0, 4))
        if rng.random() < 0.3:
            cluster.tenant = {
                r: max(0, v + rng.randint(-5000, 5000)) for r, v in cluster.tenant.items()
            }
            cluster.reset_bounds()


@pytest.mark.parametrize("seed", range(200))
def test_a_quiet_cluster_converges_then_makes_no_writes(seed: int) -> None:
    rng = random.Random(seed)
    cluster, names = random_cluster(rng)
    for _ in range(3):
        cluster.reconcile(names, churn=0)
        for name in cluster.quotas:
            cluster.sync(name)
    assert cluster.reconcile(names, churn=0) == 0
    total_used = {r: sum(used.get(r, 0) for used in cluster.used.values()) for r in cluster.tenant}
    for resource, limit in cluster.tenant.items():
        if total_used[resource] <= limit:
            assert cluster.commitment(resource) <= limit


@pytest.mark.parametrize("seed", range(300))
def test_new_namespaces_quota_in_one_write_never_breaks_the_invariant(seed: int) -> None:
    rng = random.Random(seed)
    cluster, names = random_cluster(rng)
    created = [name for name in names if name not in cluster.quotas]
    cluster.onboard(names, created, churn=rng.randint(0, 4))
    for _ in range(3):
        cluster.reconcile(names, churn=rng.randint(0, 4))


@pytest.mark.parametrize("seed", range(100))
def test_a_new_tenant_writes_each_quota_once_at_its_final_hard(seed: int) -> None:
    rng = random.Random(seed)
    resources = rng.sample(RESOURCES, rng.randint(1, len(RESOURCES)))
    names = [f"t-{index}" for index in range(rng.randint(1, 5))]
    tenant = {r: random_amount(rng, r, 30) for r in resources}
    cluster = SimulatedCluster(tenant=tenant, used={name: {} for name in names}, quotas={}, rng=rng)
    cluster.reset_bounds()
    cluster.onboard(names, names, churn=0)
    assert cluster.writes == dict.fromkeys(names, 1)
    final = quotas.allocate({r: quantity.from_milli(v) for r, v in tenant.items()}, names, {})
    for name in names:
        assert cluster.quotas[name].spec == {
            r: quantity.to_milli(v) for r, v in final.hard[name].items()
        }
        cluster.sync(name)
    assert cluster.reconcile(names, churn=0) == 0


# --- room asked for: requests quota admission refused ---------------------------------------

THREE = ["t-a", "t-b", "t-c"]
REFUSAL = (
    'Error creating: pods "web-7d4b9c-x2x9z" is forbidden: exceeded quota: govcloud-quota,'
    " requested: requests.cpu=1, used: requests.cpu=3, limited: requests.cpu=3333m"
)


def slivers() -> dict[str, Observed]:
    """The issue's tenant: 10 CPU over three namespaces, each using 3 of ~3.33."""
    hards = {"t-a": "3334m", "t-b": "3333m", "t-c": "3333m"}
    return {name: synced({CPU: hard}, {CPU: "3"}) for name, hard in hards.items()}


def test_a_refusal_message_says_what_the_request_needed() -> None:
    assert quotas.needed_by_refusal(REFUSAL) == {CPU: "4"}  # used 3 + requested 1


def test_a_refusal_of_several_resources_names_each() -> None:
    message = (
        '(combined from similar events): Error creating: pods "p" is forbidden: exceeded'
        " quota: govcloud-quota, requested: pods=1,requests.memory=2Gi, used: pods=9,"
        "requests.memory=1Gi, limited: pods=9,requests.memory=2Gi"
    )
    assert quotas.needed_by_refusal(message) == {PODS: "10", MEMORY: "3Gi"}


@pytest.mark.parametrize(
    "message",
    [
        REFUSAL.replace("govcloud-quota", "someone-elses"),
        'pods "p" is forbidden: failed quota: govcloud-quota: must specify requests.cpu',
        "Error creating: pods is forbidden: error looking up service account",
        "exceeded quota: govcloud-quota, requested: requests.cpu=lots, used: x",
        "",
    ],
)
def test_anything_else_asks_for_nothing(message: str) -> None:
    assert quotas.needed_by_refusal(message) == {}


def test_slivers_of_the_free_quota_are_kept_without_a_request() -> None:
    assert not quotas.allocate({CPU: "10"}, THREE, slivers()).changed


def test_a_refused_request_that_fits_the_free_quota_gets_room_in_its_namespace() -> None:
    allocation = quotas.allocate({CPU: "10"}, THREE, slivers(), wanted={"t-b": {CPU: "4"}})

    assert allocation.hard == {"t-a": {CPU: "3"}, "t-b": {CPU: "4"}, "t-c": {CPU: "3"}}
    assert allocation.decreases == {"t-a": {CPU: "3"}, "t-c": {CPU: "3"}}
    assert allocation.increases == {"t-b": {CPU: "4"}}


def test_room_already_given_is_kept_while_it_is_asked_for() -> None:
    given = {
        "t-a": synced({CPU: "3"}, {CPU: "3"}),
        "t-b": synced({CPU: "4"}, {CPU: "3"}),
        "t-c": synced({CPU: "3"}, {CPU: "3"}),
    }
    assert not quotas.allocate({CPU: "10"}, THREE, given, wanted={"t-b": {CPU: "4"}}).changed
    # Nobody asks any more (the pod never came): the room goes back to an even split.
    even = quotas.allocate({CPU: "10"}, THREE, given)
    assert even.hard == {"t-a": {CPU: "3334m"}, "t-b": {CPU: "3333m"}, "t-c": {CPU: "3333m"}}


def test_a_need_met_holds_no_more_room() -> None:
    # The refused pod got in: t-b uses the 4 it needed, and no more is kept for it.
    met = {
        "t-a": synced({CPU: "3"}, {CPU: "3"}),
        "t-b": synced({CPU: "4"}, {CPU: "4"}),
        "t-c": synced({CPU: "3"}, {CPU: "3"}),
    }
    allocation = quotas.allocate({CPU: "11"}, THREE, met, wanted={"t-b": {CPU: "4"}})
    assert allocation.hard == {"t-a": {CPU: "3334m"}, "t-b": {CPU: "4333m"}, "t-c": {CPU: "3333m"}}


def test_a_request_bigger_than_the_free_quota_moves_nothing() -> None:
    wanted = {"t-b": {CPU: "4500m"}}
    assert not quotas.allocate({CPU: "10"}, THREE, slivers(), wanted=wanted).changed


def test_a_request_the_headroom_already_covers_moves_nothing() -> None:
    wanted = {"t-b": {CPU: "3300m"}}
    assert not quotas.allocate({CPU: "10"}, THREE, slivers(), wanted=wanted).changed


def test_the_smallest_requests_are_served_first_and_the_rest_is_shared() -> None:
    observed = {name: synced({CPU: "3"}, {CPU: "3"}) for name in THREE}
    wanted = {"t-a": {CPU: "5"}, "t-b": {CPU: "3500m"}, "t-c": {CPU: "4"}}

    allocation = quotas.allocate({CPU: "11"}, THREE, observed, wanted=wanted)

    # free 2: t-b's 500m and t-c's 1 fit, t-a's 2 does not; 500m left, shared evenly.
    assert allocation.hard == {
        "t-a": {CPU: "3167m"},
        "t-b": {CPU: "3667m"},
        "t-c": {CPU: "4166m"},
    }


def random_wanted(rng: random.Random, tenant: Mapping[str, str], names: Sequence[str]) -> Hards:
    """Hards refused requests needed: up to a little above what the namespace may use."""
    return {
        name: {r: quantity.from_milli(random_amount(rng, r, 16) + 1) for r in tenant}
        for name in names
        if rng.random() < 0.5
    }


Hards = dict[str, dict[str, str]]


@pytest.mark.parametrize("seed", range(300))
def test_room_asked_for_never_lets_final_hards_exceed_the_tenant(seed: int) -> None:
    rng = random.Random(seed)
    tenant, names, observed = random_case(rng)
    allocation = quotas.allocate(tenant, names, observed, wanted=random_wanted(rng, tenant, names))
    for resource, limit in tenant.items():
        hards = {name: quantity.to_milli(allocation.hard[name][resource]) for name in names}
        used = {name: used_milli(observed, name, resource) for name in names}
        assert sum(hards.values()) <= quantity.to_milli(limit)
        if sum(used.values()) <= quantity.to_milli(limit):
            assert all(hards[name] >= used[name] for name in names)


@pytest.mark.parametrize("seed", range(300))
def test_room_asked_for_is_a_fixed_point(seed: int) -> None:
    rng = random.Random(seed)
    tenant, names, observed = random_case(rng)
    wanted = random_wanted(rng, tenant, names)
    first = quotas.allocate(tenant, names, observed, wanted=wanted)
    applied = {
        name: Observed(
            hard=first.hard[name],
            used={r: (observed[name].used if name in observed else {}).get(r, "0") for r in tenant},
        )
        for name in names
    }
    assert not quotas.allocate(tenant, names, applied, wanted=wanted).changed


@pytest.mark.parametrize("seed", range(300))
def test_room_asked_for_keeps_the_invariant_under_any_interleaving(seed: int) -> None:
    rng = random.Random(seed)
    cluster, names = random_cluster(rng)
    tenant = {r: quantity.from_milli(v) for r, v in cluster.tenant.items()}
    for _ in range(4):
        cluster.wanted = random_wanted(rng, tenant, names)
        cluster.reconcile(names, churn=rng.randint(0, 4))
