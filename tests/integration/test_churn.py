"""Tenant churn on the real API server: every per-object store of the operator returns to its
level once the tenants are gone (review M7: memory that does not grow with tenant churn).

`govcloud_operator_entries{store}` exports each store the operator keeps per object (scheduler
entries and its heap, work queues, failure backoff, metrics snapshots and lines, usage
timelines, site admissions), and `govcloud_cache_objects` the watch-fed caches. Rounds of
tenants are created, seen Ready (each store must have grown: the gauge follows the objects),
and deleted; after each round every store must come back to at most where it started. No
RateCard exists, so no metering tick forgets anything on the stores' behalf. `make soak` runs
more rounds of more tenants (GOVCLOUD_SOAK_CHURN_ROUNDS, GOVCLOUD_SOAK_CHURN_TENANTS).
"""

from __future__ import annotations

import os

import pytest

from govcloud.dev import testing

pytestmark = pytest.mark.integration

ROUNDS = int(os.environ.get("GOVCLOUD_SOAK_CHURN_ROUNDS", "2"))
PER_ROUND = int(os.environ.get("GOVCLOUD_SOAK_CHURN_TENANTS", "6"))
# Stores that hold an entry per live tenant once it is Ready (the scheduler too).
PER_TENANT = ("metrics_tenants", "metrics_lines", "usage_tenants")
CACHED_KINDS = ("CloudTenant", "Namespace", "ResourceQuota", "RoleBinding", "NetworkPolicy")


def _series(
    operator: testing.OperatorProcess, name: str, label: str, **only: str
) -> dict[str, float]:
    """`name`'s samples summed by the value of `label`, of the series whose labels include
    `only`."""
    found: dict[str, float] = {}
    for line in operator.metrics().splitlines():
        if not line.startswith(f"{name}{{"):
            continue
        series, _, value = line.rpartition(" ")
        labels = {
            key: text.strip('"')
            for key, _, text in (
                item.partition("=") for item in series[len(name) + 1 : -1].split(",")
            )
        }
        if any(labels.get(key) != wanted for key, wanted in only.items()):
            continue
        found[labels.get(label, "")] = found.get(labels.get(label, ""), 0.0) + float(value)
    return found


def entries(operator: testing.OperatorProcess) -> dict[str, float]:
    return _series(operator, "govcloud_operator_entries", "store")


def cached(operator: testing.OperatorProcess) -> dict[str, float]:
    return {
        kind: count
        for kind, count in _series(
            operator, "govcloud_cache_objects", "kind", cluster="hub"
        ).items()
        if kind in CACHED_KINDS
    }


def above(now: dict[str, float], start: dict[str, float]) -> dict[str, tuple[float, float]]:
    """Stores holding more now than at the start: (start, now)."""
    return {
        store: (start.get(store, 0.0), count)
        for store, count in now.items()
        if count > start.get(store, 0.0)
    }


def back_to_level(
    operator: testing.OperatorProcess,
    start_entries: dict[str, float],
    start_cached: dict[str, float],
    when: str,
) -> None:
    left: dict[str, dict[str, tuple[float, float]]] = {}

    def settled() -> bool:
        left["entries"] = above(entries(operator), start_entries)
        left["caches"] = above(cached(operator), start_cached)
        return not left["entries"] and not left["caches"]

    try:
        testing.eventually(settled, timeout=120, what="every store back to its level")
    except testing.WaitTimeoutError:
        pytest.fail(f"{when}: stores above their level (start, now): {left}")


def test_tenant_churn_returns_every_store_to_its_level(tenants, kubectl, operator) -> None:
    testing.eventually(  # the hub's cache holds the cluster as it is (earlier tests' leftovers
        # may still be going): read both again until they agree
        lambda: (
            cached(operator).get("Namespace", 0) == len(kubectl.json("get", "namespaces")["items"])
        ),
        timeout=60,
        what="the cache to hold every namespace of the hub",
    )
    start_entries, start_cached = entries(operator), cached(operator)
    assert {*PER_TENANT, "scheduler"} <= set(start_entries), start_entries
    for round_ in range(ROUNDS):
        names = [tenants.create(f"churn{round_}") for _ in range(PER_ROUND)]
        for name in names:
            tenants.wait_ready(name)
        grown = entries(operator)
        # At least this round's tenants (what earlier tests left may be forgotten meanwhile).
        for store in (*PER_TENANT, "scheduler"):
            assert grown[store] >= PER_ROUND, (store, grown)
        tenants.delete_all()
        tenants.created.clear()

        back_to_level(operator, start_entries, start_cached, f"round {round_ + 1}")
    print(f"{ROUNDS} rounds of {PER_ROUND} tenants; entries at the end: {entries(operator)}")
