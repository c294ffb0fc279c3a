"""The metrics recorder: every series the operator exports, on an injected CollectorRegistry.

Nothing is registered at import time. Per-object series live in snapshots that a custom
collector renders at scrape time, so `forget_*` drops every series of a deleted object at
once and a scrape never sees a half-updated tenant.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

CONDITION_STATUSES = ("true", "false", "unknown")


@dataclass(frozen=True)
class TenantSnapshot:
    """What one tenant looks like right now, in base units (cores, bytes, counts)."""

    tier: str
    phase: str
    namespaces: int
    hard: Mapping[str, float] = field(default_factory=dict)
    used: Mapping[str, float] = field(default_factory=dict)
    conditions: Mapping[str, str] = field(default_factory=dict)
    reconciled_at: float = 0.0


@dataclass(frozen=True)
class SubCenterSnapshot:
    """What the last probe of a sub-center found, in base units."""

    mode: str
    tier: str
    up: bool
    ready: bool
    latency_seconds: float | None
    allocatable: Mapping[str, float] = field(default_factory=dict)
    allocated: Mapping[str, float] = field(default_factory=dict)
    tenants: int = 0
    credential_expiry: float | None = None


class _SnapshotCollector(Collector):
    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder

    def collect(self) -> Iterator[GaugeMetricFamily]:
        tenants = self._recorder.tenants()
        quota = GaugeMetricFamily(
            "govcloud_tenant_resourcequota",
            "Tenant-wide quota per resource in base units; type is hard or used.",
            labels=["tenant", "tier", "resource", "type"],
        )
        namespaces = GaugeMetricFamily(
            "govcloud_tenant_namespaces", "Namespaces of a tenant.", labels=["tenant", "tier"]
        )
        phase = GaugeMetricFamily(
            "govcloud_tenant_phase", "1 for the phase a tenant is in.", labels=["tenant", "phase"]
        )
        reconciled = GaugeMetricFamily(
            "govcloud_tenant_last_reconcile_timestamp_seconds",
            "When the tenant's last reconcile pass finished (Unix time).",
            labels=["tenant"],
        )
        condition = GaugeMetricFamily(
            "govcloud_tenant_status_condition",
            "1 for the status of each tenant condition (true, false, unknown).",
            labels=["tenant", "condition", "status"],
        )
        for name, snapshot in sorted(tenants.items()):
            for resource, value in sorted(snapshot.hard.items()):
                quota.add_metric([name, snapshot.tier, resource, "hard"], value)
            for resource, value in sorted(snapshot.used.items()):
                quota.add_metric([name, snapshot.tier, resource, "used"], value)
            namespaces.add_metric([name, snapshot.tier], snapshot.namespaces)
            phase.add_metric([name, snapshot.phase], 1)
            reconciled.add_metric([name], snapshot.reconciled_at)
            for condition_type, status in sorted(snapshot.conditions.items()):
                for candidate in CONDITION_STATUSES:
                    condition.add_metric(
                        [name, condition_type, candidate], 1 if status.lower() == candidate else 0
                    )
        yield from (quota, namespaces, phase, condition, reconciled)
        yield from _subcenter_families(self._recorder.subcenters())


def _subcenter_families(sites: Mapping[str, SubCenterSnapshot]) -> Iterator[GaugeMetricFamily]:
    up = GaugeMetricFamily(
        "govcloud_subcenter_up",
        "1 when the sub-center's API server answers (after failure hysteresis).",
        labels=["subcenter", "mode", "tier"],
    )
    ready = GaugeMetricFamily(
        "govcloud_subcenter_ready", "1 when the sub-center is Ready.", labels=["subcenter"]
    )
    latency = GaugeMetricFamily(
        "govcloud_subcenter_probe_latency_seconds",
        "Latency of the last answered probe.",
        labels=["subcenter"],
    )
    capacity = GaugeMetricFamily(
        "govcloud_subcenter_capacity",
        "Sub-center capacity in base units; type is allocatable or allocated (to tenants).",
        labels=["subcenter", "resource", "type"],
    )
    tenants = GaugeMetricFamily(
        "govcloud_subcenter_tenants", "Tenants placed on the sub-center.", labels=["subcenter"]
    )
    expiry = GaugeMetricFamily(
        "govcloud_subcenter_credential_expiry_timestamp_seconds",
        "When the sub-center credential expires (Unix time), where known.",
        labels=["subcenter"],
    )
    for name, site in sorted(sites.items()):
        up.add_metric([name, site.mode, site.tier], 1 if site.up else 0)
        ready.add_metric([name], 1 if site.ready else 0)
        if site.latency_seconds is not None:
            latency.add_metric([name], site.latency_seconds)
        for resource, value in sorted(site.allocatable.items()):
            capacity.add_metric([name, resource, "allocatable"], value)
        for resource, value in sorted(site.allocated.items()):
            capacity.add_metric([name, resource, "allocated"], value)
        tenants.add_metric([name], site.tenants)
        if site.credential_expiry is not None:
            expiry.add_metric([name], site.credential_expiry)
    yield from (up, ready, latency, capacity, tenants, expiry)


class Recorder:
    """Records what the reconcilers observe; registered on the registry it is given."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._lock = threading.Lock()
        self._tenants: dict[str, TenantSnapshot] = {}
        self._subcenters: dict[str, SubCenterSnapshot] = {}
        self.reconciles = Counter(
            "govcloud_reconcile_total",
            "Reconcile passes by kind and result (success, error, invalid).",
            ["kind", "result"],
            registry=registry,
        )
        self.reconcile_seconds = Histogram(
            "govcloud_reconcile_duration_seconds",
            "Time spent in one reconcile pass.",
            ["kind"],
            registry=registry,
        )
        self.api_writes = Counter(
            "govcloud_api_writes_total",
            "Write calls the operator made to an API server.",
            ["cluster", "verb", "kind"],
            registry=registry,
        )
        registry.register(_SnapshotCollector(self))

    def record_tenant(self, name: str, snapshot: TenantSnapshot) -> None:
        with self._lock:
            self._tenants[name] = snapshot

    def forget_tenant(self, name: str) -> None:
        with self._lock:
            self._tenants.pop(name, None)

    def tenants(self) -> dict[str, TenantSnapshot]:
        with self._lock:
            return dict(self._tenants)

    def record_subcenter(self, name: str, snapshot: SubCenterSnapshot) -> None:
        with self._lock:
            self._subcenters[name] = snapshot

    def forget_subcenter(self, name: str) -> None:
        with self._lock:
            self._subcenters.pop(name, None)

    def subcenters(self) -> dict[str, SubCenterSnapshot]:
        with self._lock:
            return dict(self._subcenters)

    def count_write(self, cluster: str, verb: str, kind: str) -> None:
        self.api_writes.labels(cluster=cluster, verb=verb, kind=kind).inc()
