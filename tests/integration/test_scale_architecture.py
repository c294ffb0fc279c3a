"""A pass reads memory, not the API server: resyncs read nothing, writes nothing when nothing
changed, and objects earlier versions left a kopf finalizer on still go when deleted."""

from __future__ import annotations

import _tenant_helpers as helpers
import pytest

from govcloud.dev import testing
from govcloud.handlers import startup

pytestmark = pytest.mark.integration

tenants = helpers.tenants

# Every kind the operator keeps in its watch-fed caches on the hub.
CACHED_KINDS = sorted({kind for _, kind, _ in startup.HUB_KINDS})
KOPF_FINALIZER = "kopf.zalando.org/KopfFinalizerMarker"


def cached_reads(operator: testing.OperatorProcess) -> float:
    return sum(
        operator.metric_value("govcloud_api_reads_total", cluster="hub", kind=kind)
        for kind in CACHED_KINDS
    )


def passes(operator: testing.OperatorProcess) -> float:
    return operator.metric_value("govcloud_reconcile_total", kind="CloudTenant")


def quiet_round(operator: testing.OperatorProcess, count: int) -> bool:
    """Whether `count` more tenant passes ran (one resync of each tenant) without a write."""
    writes, before = operator.metric_value("govcloud_api_writes_total"), passes(operator)
    testing.eventually(
        lambda: passes(operator) >= before + count, timeout=30, what=f"{count} tenant passes"
    )
    return operator.metric_value("govcloud_api_writes_total") == writes


def test_resync_passes_read_the_cache_and_write_nothing(
    kubectl: testing.Kubectl, operator: testing.OperatorProcess, tenants: helpers.Tenants
) -> None:
    names = [helpers.unique("steady") for _ in range(3)]
    for name in names:
        tenants.create(name)
    for name in names:
        helpers.wait_phase(kubectl, name, "Active")
    testing.eventually(
        lambda: quiet_round(operator, len(names)), timeout=90, what="a resync round with no write"
    )
    reads, writes, before = (
        cached_reads(operator),
        helpers.writes_by_series(operator),
        passes(operator),
    )
    # The session operator resyncs every 5 s: wait for two resyncs of every tenant.
    testing.eventually(
        lambda: passes(operator) >= before + 2 * len(names),
        timeout=60,
        what="two resync passes of each tenant",
    )
    assert cached_reads(operator) == reads, "a pass read a cached kind from the API server"
    # The caches say what they hold.
    assert operator.metric_value("govcloud_cache_objects", cluster="hub", kind="CloudTenant") >= 3
    assert operator.metric_value("govcloud_cache_bytes", cluster="hub", kind="Namespace") > 0
    # The counter is live: adding each tenant's finalizer checks the CRD, a real read.
    assert operator.metric_value("govcloud_api_reads_total", kind="CustomResourceDefinition") > 0
    assert not helpers.new_writes(writes, helpers.writes_by_series(operator)), operator.log_tail(60)


def test_a_tenant_with_the_finalizer_old_versions_left_is_deleted(
    kubectl: testing.Kubectl, operator: testing.OperatorProcess, tenants: helpers.Tenants
) -> None:
    """kopf's per-object timers put kopf's own finalizer on every CloudTenant; nothing serves
    CloudTenants through kopf now, so the operator itself must let it go on deletion."""
    name = helpers.unique("legacy")
    manifest = helpers.tenant_manifest(name)
    manifest["metadata"]["finalizers"] = [KOPF_FINALIZER]
    tenants.apply(manifest)
    helpers.wait_phase(kubectl, name, "Active")
    kubectl("delete", "cloudtenant", name, "--wait=false")
    testing.eventually(
        lambda: kubectl.get("cloudtenant", name) is None,
        timeout=60,
        what="the tenant carrying kopf's old finalizer to be gone",
    )
