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


@dataclass(frozen=True)
class MigrationSnapshot:
    """One MigrationPlan as the last pass saw it; series aggregate plans per tenant and tier."""

    tenant: str
    tier: str
    phase: str
    overdue: bool = False
    at_risk: bool = False
    completed_on_time: bool = False


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
        yield from _migration_families(self._recorder.migrations())


def _migration_families(plans: Mapping[str, MigrationSnapshot]) -> Iterator[GaugeMetricFamily]:
    by_phase = GaugeMetricFamily(
        "govcloud_migration_plans",
        "MigrationPlans per tenant, tier and phase.",
        labels=["tenant", "tier", "phase"],
    )
    overdue = GaugeMetricFamily(
        "govcloud_migration_plans_overdue",
        "MigrationPlans past their deadline and not Completed.",
        labels=["tenant", "tier"],
    )
    at_risk = GaugeMetricFamily(
        "govcloud_migration_plans_at_risk",
        "MigrationPlans whose DeadlineAtRisk condition is True.",
        labels=["tenant", "tier"],
    )
    on_time = GaugeMetricFamily(
        "govcloud_migration_plans_completed_on_time",
        "MigrationPlans Completed by their deadline.",
        labels=["tenant", "tier"],
    )
    phases: dict[tuple[str, str, str], int] = {}
    totals: dict[tuple[str, str], list[int]] = {}
    for plan in plans.values():
        key = (plan.tenant, plan.tier)
        phases[(*key, plan.phase)] = phases.get((*key, plan.phase), 0) + 1
        counts = totals.setdefault(key, [0, 0, 0])
        counts[0] += int(plan.overdue)
        counts[1] += int(plan.at_risk)
        counts[2] += int(plan.completed_on_time)
    for labels, count in sorted(phases.items()):
        by_phase.add_metric(list(labels), count)
    for (tenant, tier), (late, risky, timely) in sorted(totals.items()):
        overdue.add_metric([tenant, tier], late)
        at_risk.add_metric([tenant, tier], risky)
        on_time.add_metric([tenant, tier], timely)
    yield from (by_phase, overdue, at_risk, on_time)


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
        self._migrations: dict[str, MigrationSnapshot] = {}
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
        self.billing = BillingRecorder(registry)

    def record_tenant(self, name: str, snapshot: TenantSnapshot) -> None:
        with self._lock:
            self._tenants[name] = snapshot

    def forget_tenant(self, name: str) -> None:
        with self._lock:
            self._tenants.pop(name, None)
        self.billing.forget_tenant(name)

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

    def record_migration(self, key: str, snapshot: MigrationSnapshot) -> None:
        with self._lock:
            self._migrations[key] = snapshot

    def forget_migration(self, key: str) -> None:
        with self._lock:
            self._migrations.pop(key, None)

    def migrations(self) -> dict[str, MigrationSnapshot]:
        with self._lock:
            return dict(self._migrations)

    def count_write(self, cluster: str, verb: str, kind: str) -> None:
        self.api_writes.labels(cluster=cluster, verb=verb, kind=kind).inc()


# -- billing: plans, metering, usage reports ---------------------------------------------


@dataclass(frozen=True)
class UsageSnapshot:
    """A tenant's current-period UsageReport, as last written by metering."""

    tier: str
    period: str
    charge: float
    requested_hours: Mapping[str, float] = field(default_factory=dict)
    allocated_hours: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class PlanSnapshot:
    """A tenant's ResourcePlan of the current year."""

    tier: str
    state: str
    ceiling: Mapping[str, float] = field(default_factory=dict)
    estimated_annual_cost: float | None = None
    updated_at: float = 0.0
    pending_since: float | None = None  # Unix time, while the plan waits for a decision


PLAN_STATES = ("Pending", "Approved", "Rejected", "ChangesRequested")


class _BillingCollector(Collector):
    def __init__(self, recorder: BillingRecorder) -> None:
        self._recorder = recorder

    def collect(self) -> Iterator[GaugeMetricFamily]:
        usage, plans, last_tick = self._recorder.state()
        charge = GaugeMetricFamily(
            "govcloud_usage_charge_cny",
            "Charge of the tenant's current-period UsageReport so far, CNY.",
            labels=["tenant", "tier"],
        )
        hours = GaugeMetricFamily(
            "govcloud_usage_resource_hours",
            "Unit-hours of the current period (cores, GiB or units); type is requested"
            " (billed: quota used x hours) or allocated (quota hard x hours).",
            labels=["tenant", "tier", "resource", "type"],
        )
        tier_charge = GaugeMetricFamily(
            "govcloud_usage_tier_charge_cny",
            "Sum of the current-period charges of the tier's tenants, CNY.",
            labels=["tier"],
        )
        ceiling = GaugeMetricFamily(
            "govcloud_plan_ceiling",
            "Quota ceiling of the tenant's ResourcePlan of the current year, base units.",
            labels=["tenant", "tier", "resource"],
        )
        cost = GaugeMetricFamily(
            "govcloud_plan_estimated_annual_cost_cny",
            "Estimated annual cost of the tenant's ResourcePlan of the current year, CNY.",
            labels=["tenant", "tier"],
        )
        state = GaugeMetricFamily(
            "govcloud_plan_review_state",
            "1 for the review state of the tenant's ResourcePlan of the current year.",
            labels=["tenant", "state"],
        )
        pending = GaugeMetricFamily(
            "govcloud_plan_pending_since_timestamp_seconds",
            "Since when the tenant's ResourcePlan of the current year waits for a decision"
            " (Unix time); only while it is Pending.",
            labels=["tenant", "tier"],
        )
        tick = GaugeMetricFamily(
            "govcloud_metering_last_tick_timestamp_seconds",
            "When the last metering tick finished (Unix time).",
        )
        tiers: dict[str, float] = {}
        for tenant, snapshot in sorted(usage.items()):
            charge.add_metric([tenant, snapshot.tier], snapshot.charge)
            tiers[snapshot.tier] = tiers.get(snapshot.tier, 0.0) + snapshot.charge
            for resource, value in sorted(snapshot.requested_hours.items()):
                hours.add_metric([tenant, snapshot.tier, resource, "requested"], value)
            for resource, value in sorted(snapshot.allocated_hours.items()):
                hours.add_metric([tenant, snapshot.tier, resource, "allocated"], value)
        for tier, value in sorted(tiers.items()):
            tier_charge.add_metric([tier], value)
        for tenant, plan in sorted(plans.items()):
            for resource, value in sorted(plan.ceiling.items()):
                ceiling.add_metric([tenant, plan.tier, resource], value)
            if plan.estimated_annual_cost is not None:
                cost.add_metric([tenant, plan.tier], plan.estimated_annual_cost)
            for candidate in PLAN_STATES:
                state.add_metric([tenant, candidate], 1 if plan.state == candidate else 0)
            if plan.state == "Pending" and plan.pending_since is not None:
                pending.add_metric([tenant, plan.tier], plan.pending_since)
        if last_tick is not None:
            tick.add_metric([], last_tick)
        yield from (charge, hours, tier_charge, ceiling, cost, state, pending, tick)


class BillingRecorder:
    """The billing part of the recorder: usage per tenant, plans per tenant, metering ticks."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._lock = threading.Lock()
        self._usage: dict[str, UsageSnapshot] = {}
        self._plans: dict[str, PlanSnapshot] = {}
        self._last_tick: float | None = None
        self.tick_seconds = Histogram(
            "govcloud_metering_tick_duration_seconds",
            "Time one metering tick took (every tenant).",
            registry=registry,
        )
        self.ticks = Counter(
            "govcloud_metering_ticks_total",
            "Metering ticks by result (success, error).",
            ["result"],
            registry=registry,
        )
        registry.register(_BillingCollector(self))

    def record_usage(self, tenant: str, snapshot: UsageSnapshot) -> None:
        with self._lock:
            self._usage[tenant] = snapshot

    def record_tick(self, finished_at: float) -> None:
        with self._lock:
            self._last_tick = finished_at

    def record_plan(self, tenant: str, snapshot: PlanSnapshot) -> None:
        with self._lock:
            self._plans[tenant] = snapshot

    def forget_plan(self, tenant: str) -> None:
        with self._lock:
            self._plans.pop(tenant, None)

    def forget_tenant(self, tenant: str) -> None:
        with self._lock:
            self._usage.pop(tenant, None)
            self._plans.pop(tenant, None)

    def state(self) -> tuple[dict[str, UsageSnapshot], dict[str, PlanSnapshot], float | None]:
        with self._lock:
            return dict(self._usage), dict(self._plans), self._last_tick
