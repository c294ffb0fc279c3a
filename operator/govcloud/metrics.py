"""The metrics recorder: every series the operator exports, on an injected CollectorRegistry."""

from __future__ import annotations

import bisect
import contextlib
import contextvars
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, utils
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from govcloud import metrics_http

CONDITION_STATUSES = ("true", "false", "unknown")

# Set while `Recorder.exposition` reads the registry: the snapshot collectors then yield
# nothing, since their families follow as pre-rendered text.
_PRE_RENDERED = contextvars.ContextVar("govcloud_metrics_pre_rendered", default=False)

# prometheus_client leaves it unannotated; strict mypy wants a typed callable.
_go_float: Callable[[float], str] = utils.floatToGoString


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


# -- gauge families and their text --------------------------------------------------------


def _escape_label_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


class Family:
    """One gauge family: its name, HELP and labels, and its lines in the Prometheus text
    format exactly as `prometheus_client.generate_latest` writes them."""

    def __init__(self, name: str, documentation: str, labels: Sequence[str] = ()) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = tuple(labels)
        escaped = documentation.replace("\\", r"\\").replace("\n", r"\n")
        self.header = f"# HELP {name} {escaped}\n# TYPE {name} gauge\n"
        # generate_latest writes labels sorted by name, not in declaration order.
        self._order = sorted(range(len(self.labels)), key=self.labels.__getitem__)

    def line(self, values: Sequence[str], value: float) -> str:
        """One sample line; `values` in the order of `labels`."""
        if not self.labels:
            return f"{self.name} {_go_float(value)}\n"
        pairs = ",".join(
            f'{self.labels[index]}="{_escape_label_value(values[index])}"' for index in self._order
        )
        return f"{self.name}{{{pairs}}} {_go_float(value)}\n"

    def gauge(self) -> GaugeMetricFamily:
        """An empty family for a collector, with the same name, HELP and labels."""
        return GaugeMetricFamily(self.name, self.documentation, labels=list(self.labels))


TENANT_QUOTA = Family(
    "govcloud_tenant_resourcequota",
    "Tenant-wide quota per resource in base units; type is hard or used.",
    ["tenant", "tier", "resource", "type"],
)
TENANT_NAMESPACES = Family(
    "govcloud_tenant_namespaces", "Namespaces of a tenant.", ["tenant", "tier"]
)
TENANT_PHASE = Family(
    "govcloud_tenant_phase", "1 for the phase a tenant is in.", ["tenant", "phase"]
)
TENANT_CONDITION = Family(
    "govcloud_tenant_status_condition",
    "1 for the status of each tenant condition (true, false, unknown).",
    ["tenant", "condition", "status"],
)
TENANT_RECONCILED = Family(
    "govcloud_tenant_last_reconcile_timestamp_seconds",
    "When the tenant's last reconcile pass finished (Unix time).",
    ["tenant"],
)
SUBCENTER_UP = Family(
    "govcloud_subcenter_up",
    "1 when the sub-center's API server answers (after failure hysteresis).",
    ["subcenter", "mode", "tier"],
)
SUBCENTER_READY = Family(
    "govcloud_subcenter_ready", "1 when the sub-center is Ready.", ["subcenter"]
)
SUBCENTER_LATENCY = Family(
    "govcloud_subcenter_probe_latency_seconds", "Latency of the last answered probe.", ["subcenter"]
)
SUBCENTER_CAPACITY = Family(
    "govcloud_subcenter_capacity",
    "Sub-center capacity in base units; type is allocatable or allocated (to tenants).",
    ["subcenter", "resource", "type"],
)
SUBCENTER_TENANTS = Family(
    "govcloud_subcenter_tenants", "Tenants placed on the sub-center.", ["subcenter"]
)
SUBCENTER_EXPIRY = Family(
    "govcloud_subcenter_credential_expiry_timestamp_seconds",
    "When the sub-center credential expires (Unix time), where known.",
    ["subcenter"],
)
MIGRATION_PLANS = Family(
    "govcloud_migration_plans",
    "MigrationPlans per tenant, tier and phase.",
    ["tenant", "tier", "phase"],
)
MIGRATION_OVERDUE = Family(
    "govcloud_migration_plans_overdue",
    "MigrationPlans past their deadline and not Completed.",
    ["tenant", "tier"],
)
MIGRATION_AT_RISK = Family(
    "govcloud_migration_plans_at_risk",
    "MigrationPlans whose DeadlineAtRisk condition is True.",
    ["tenant", "tier"],
)
MIGRATION_ON_TIME = Family(
    "govcloud_migration_plans_completed_on_time",
    "MigrationPlans Completed by their deadline.",
    ["tenant", "tier"],
)
USAGE_CHARGE = Family(
    "govcloud_usage_charge_cny",
    "Charge of the tenant's current-period UsageReport so far, CNY.",
    ["tenant", "tier"],
)
USAGE_HOURS = Family(
    "govcloud_usage_resource_hours",
    "Unit-hours of the current period (cores, GiB or units); type is requested"
    " (billed: quota used x hours) or allocated (quota hard x hours).",
    ["tenant", "tier", "resource", "type"],
)
USAGE_TIER_CHARGE = Family(
    "govcloud_usage_tier_charge_cny",
    "Sum of the current-period charges of the tier's tenants, CNY.",
    ["tier"],
)
PLAN_CEILING = Family(
    "govcloud_plan_ceiling",
    "Quota ceiling of the tenant's ResourcePlan of the current year, base units.",
    ["tenant", "tier", "resource"],
)
PLAN_COST = Family(
    "govcloud_plan_estimated_annual_cost_cny",
    "Estimated annual cost of the tenant's ResourcePlan of the current year, CNY.",
    ["tenant", "tier"],
)
PLAN_STATE = Family(
    "govcloud_plan_review_state",
    "1 for the review state of the tenant's ResourcePlan of the current year.",
    ["tenant", "state"],
)
PLAN_PENDING = Family(
    "govcloud_plan_pending_since_timestamp_seconds",
    "Since when the tenant's ResourcePlan of the current year waits for a decision"
    " (Unix time); only while it is Pending.",
    ["tenant", "tier"],
)
PLAN_APPS_MISSING = Family(
    "govcloud_plan_apps_missing",
    "Apps the tenant's approved ResourcePlan of the current year plans to migrate whose target"
    " date has passed with no MigrationPlan for them (the annual assessment counts them).",
    ["tenant", "tier"],
)
PAYER_CEILING = Family(
    "govcloud_plan_approved_ceiling_by_payer",
    "Sum of the approved ceilings of the current year's ResourcePlans of the tenants the level"
    " pays for (city, county:<region>, devzone:<region>), base units: its budget basis.",
    ["payer", "resource"],
)
PAYER_COST = Family(
    "govcloud_plan_approved_cost_by_payer_cny",
    "Sum of the estimated annual costs of the current year's approved ResourcePlans of the"
    " tenants the level pays for, CNY.",
    ["payer"],
)
ASSESSMENT_UTILISATION = Family(
    "govcloud_assessment_quota_utilisation_ratio",
    "Annual assessment, current year to date: the tenant's requested over allocated hours of"
    " the resource in its UsageReports of the year (quota used vs granted, 0 to 1); only where"
    " some was allocated.",
    ["tenant", "tier", "resource"],
)
ASSESSMENT_SPEND = Family(
    "govcloud_assessment_spend_cny",
    "Annual assessment, current year to date: the sum of the totals of the tenant's"
    " UsageReports of the year, CNY (its approved budget is"
    " govcloud_plan_estimated_annual_cost_cny).",
    ["tenant", "tier"],
)
ASSESSMENT_LAGGING = Family(
    "govcloud_assessment_lagging",
    "Annual assessment, current year to date: 1 when the platform's rule finds the tenant"
    " Lagging, 0 when OnTrack (as `report assessment` says).",
    ["tenant", "tier", "payer"],
)
ASSESSMENT_REASONS = Family(
    "govcloud_assessment_lagging_reasons",
    "Annual assessment, current year to date: how many of the rule's reasons the tenant lags"
    " for (low cpu quota utilisation, overdue migrations, planned apps with no MigrationPlan).",
    ["tenant", "tier"],
)
METERING_TICK = Family(
    "govcloud_metering_last_tick_timestamp_seconds",
    "When the last metering tick finished (Unix time).",
)

TENANT_FAMILIES = (
    TENANT_QUOTA,
    TENANT_NAMESPACES,
    TENANT_PHASE,
    TENANT_CONDITION,
    TENANT_RECONCILED,
)
SUBCENTER_FAMILIES = (
    SUBCENTER_UP,
    SUBCENTER_READY,
    SUBCENTER_LATENCY,
    SUBCENTER_CAPACITY,
    SUBCENTER_TENANTS,
    SUBCENTER_EXPIRY,
)
MIGRATION_TOTALS = (MIGRATION_OVERDUE, MIGRATION_AT_RISK, MIGRATION_ON_TIME)
MIGRATION_FAMILIES = (MIGRATION_PLANS, *MIGRATION_TOTALS)
USAGE_FAMILIES = (USAGE_CHARGE, USAGE_HOURS)
PLAN_FAMILIES = (PLAN_CEILING, PLAN_COST, PLAN_STATE, PLAN_PENDING, PLAN_APPS_MISSING)
PAYER_FAMILIES = (PAYER_CEILING, PAYER_COST)
ASSESSMENT_FAMILIES = (
    ASSESSMENT_UTILISATION,
    ASSESSMENT_SPEND,
    ASSESSMENT_LAGGING,
    ASSESSMENT_REASONS,
)
BILLING_FAMILIES = (
    *USAGE_FAMILIES,
    USAGE_TIER_CHARGE,
    *PLAN_FAMILIES,
    *PAYER_FAMILIES,
    *ASSESSMENT_FAMILIES,
    METERING_TICK,
)
GAUGE_FAMILIES: tuple[Family, ...] = (
    *TENANT_FAMILIES,
    *SUBCENTER_FAMILIES,
    *MIGRATION_FAMILIES,
    *BILLING_FAMILIES,
)

_Key = tuple[str, ...]


class _Rendered:
    """The lines of one family, kept per object in the order the collectors write them (keys
    sorted); the family's text is joined again only after a change. The caller holds the lock."""

    def __init__(self, family: Family) -> None:
        self.family = family
        self._lines: dict[_Key, str] = {}
        self._keys: list[_Key] = []
        self._text: str | None = None

    def put(self, key: _Key, lines: str) -> None:
        if not lines:
            self.drop(key)
            return
        if key not in self._lines:
            bisect.insort(self._keys, key)
        self._lines[key] = lines
        self._text = None

    def drop(self, key: _Key) -> None:
        if self._lines.pop(key, None) is not None:
            del self._keys[bisect.bisect_left(self._keys, key)]
            self._text = None

    def __len__(self) -> int:
        return len(self._lines)

    def text(self) -> str:
        if self._text is None:
            self._text = self.family.header + "".join(map(self._lines.__getitem__, self._keys))
        return self._text


def _put_all(stores: Sequence[_Rendered], key: _Key, chunks: Sequence[str]) -> None:
    for store, lines in zip(stores, chunks, strict=True):
        store.put(key, lines)


def _drop_all(stores: Sequence[_Rendered], key: _Key) -> None:
    for store in stores:
        store.drop(key)


def _tenant_lines(name: str, snapshot: TenantSnapshot) -> tuple[str, ...]:
    tier = snapshot.tier
    quota = [
        TENANT_QUOTA.line((name, tier, resource, kind), value)
        for kind, values in (("hard", snapshot.hard), ("used", snapshot.used))
        for resource, value in sorted(values.items())
    ]
    conditions = [
        TENANT_CONDITION.line((name, condition, candidate), 1 if status.lower() == candidate else 0)
        for condition, status in sorted(snapshot.conditions.items())
        for candidate in CONDITION_STATUSES
    ]
    return (
        "".join(quota),
        TENANT_NAMESPACES.line((name, tier), snapshot.namespaces),
        TENANT_PHASE.line((name, snapshot.phase), 1),
        "".join(conditions),
        TENANT_RECONCILED.line((name,), snapshot.reconciled_at),
    )


def _subcenter_lines(name: str, site: SubCenterSnapshot) -> tuple[str, ...]:
    capacity = [
        SUBCENTER_CAPACITY.line((name, resource, kind), value)
        for kind, values in (("allocatable", site.allocatable), ("allocated", site.allocated))
        for resource, value in sorted(values.items())
    ]
    latency, expiry = site.latency_seconds, site.credential_expiry
    return (
        SUBCENTER_UP.line((name, site.mode, site.tier), 1 if site.up else 0),
        SUBCENTER_READY.line((name,), 1 if site.ready else 0),
        "" if latency is None else SUBCENTER_LATENCY.line((name,), latency),
        "".join(capacity),
        SUBCENTER_TENANTS.line((name,), site.tenants),
        "" if expiry is None else SUBCENTER_EXPIRY.line((name,), expiry),
    )


# -- registry collectors: the same families, built from the snapshots when collected -------


CacheSize = tuple[str, str, int, int]  # cluster, kind, objects held, approximate bytes


class _CacheCollector(Collector):
    """The watch-fed caches' sizes, read at scrape time (a few series per cluster)."""

    def __init__(self, source: Callable[[], Sequence[CacheSize]]) -> None:
        self._source = source

    def collect(self) -> Iterator[GaugeMetricFamily]:
        objects = GaugeMetricFamily(
            "govcloud_cache_objects",
            "Objects held in the operator's watch-fed caches, per cluster and kind.",
            labels=["cluster", "kind"],
        )
        size = GaugeMetricFamily(
            "govcloud_cache_bytes",
            "Approximate serialized size of what the caches hold (managedFields stripped).",
            labels=["cluster", "kind"],
        )
        for cluster, kind, count, approximate in self._source():
            objects.add_metric([cluster, kind], count)
            size.add_metric([cluster, kind], approximate)
        yield from (objects, size)


Entries = tuple[str, int]  # store, entries held


class _EntriesCollector(Collector):
    """What the operator keeps in memory per object, read at scrape time (a series per store)."""

    def __init__(self, source: Callable[[], Sequence[Entries]]) -> None:
        self._source = source

    def collect(self) -> Iterator[GaugeMetricFamily]:
        entries = GaugeMetricFamily(
            "govcloud_operator_entries",
            "Entries the operator holds in memory per store (scheduler, work queues, failure"
            " backoff, usage timelines, the assessment's earlier months, metrics snapshots, site"
            " admissions); each follows the objects that exist and returns to its level when"
            " they are deleted.",
            labels=["store"],
        )
        for store, count in self._source():
            entries.add_metric([store], count)
        yield entries


class _SnapshotCollector(Collector):
    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if _PRE_RENDERED.get():
            return
        tenants = self._recorder.tenants()
        quota, namespaces, phase, condition, reconciled = (f.gauge() for f in TENANT_FAMILIES)
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
    by_phase, overdue, at_risk, on_time = (f.gauge() for f in MIGRATION_FAMILIES)
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
    up, ready, latency, capacity, tenants, expiry = (f.gauge() for f in SUBCENTER_FAMILIES)
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


# -- the recorder -------------------------------------------------------------------------


@dataclass
class _PlanCounts:
    plans: int = 0
    overdue: int = 0
    at_risk: int = 0
    on_time: int = 0


class Recorder:
    """Records what the reconcilers observe; registered on the registry it is given.

    Nothing is registered at import time. An object's gauge lines are rendered in the thread
    that records its snapshot, so a scrape (`exposition`, `serve`) only joins text already
    written; under one lock `record_*`/`forget_*` replace or drop every series of an object at
    once, and a scrape never sees half of one. Collectors on the registry build the same
    families from the snapshots, for `generate_latest(registry)` and anything else reading it.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._lock = threading.Lock()
        self._tenants: dict[str, TenantSnapshot] = {}
        self._subcenters: dict[str, SubCenterSnapshot] = {}
        self._migrations: dict[str, MigrationSnapshot] = {}
        self._tenant_text = [_Rendered(family) for family in TENANT_FAMILIES]
        self._subcenter_text = [_Rendered(family) for family in SUBCENTER_FAMILIES]
        self._phase_text = _Rendered(MIGRATION_PLANS)
        self._totals_text = [_Rendered(family) for family in MIGRATION_TOTALS]
        self._phase_counts: dict[tuple[str, str, str], int] = {}
        self._plan_counts: dict[tuple[str, str], _PlanCounts] = {}
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
        self.api_reads = Counter(
            "govcloud_api_reads_total",
            "Reads (get, list) the operator's passes sent to an API server, past its caches.",
            ["cluster", "verb", "kind"],
            registry=registry,
        )
        registry.register(_SnapshotCollector(self))
        self.billing = BillingRecorder(registry)
        self.grants = GrantRecorder(registry)
        self.backup = BackupRecorder(registry)
        self._drills = _DrillCollector()
        registry.register(self._drills)
        self.restores = RestoreRecorder(registry)
        self.ledger = LedgerRecorder(registry)

    def record_tenant(self, name: str, snapshot: TenantSnapshot) -> None:
        lines = _tenant_lines(name, snapshot)
        with self._lock:
            self._tenants[name] = snapshot
            _put_all(self._tenant_text, (name,), lines)

    def forget_tenant(self, name: str) -> None:
        with self._lock:
            self._tenants.pop(name, None)
            _drop_all(self._tenant_text, (name,))
        self.billing.forget_tenant(name)
        self.backup.record(name, None)
        self.restores.forget(name)

    def tenants(self) -> dict[str, TenantSnapshot]:
        with self._lock:
            return dict(self._tenants)

    def record_subcenter(self, name: str, snapshot: SubCenterSnapshot) -> None:
        lines = _subcenter_lines(name, snapshot)
        with self._lock:
            self._subcenters[name] = snapshot
            _put_all(self._subcenter_text, (name,), lines)

    def forget_subcenter(self, name: str) -> None:
        with self._lock:
            self._subcenters.pop(name, None)
            _drop_all(self._subcenter_text, (name,))

    def subcenters(self) -> dict[str, SubCenterSnapshot]:
        with self._lock:
            return dict(self._subcenters)

    def record_migration(self, key: str, snapshot: MigrationSnapshot) -> None:
        with self._lock:
            previous = self._migrations.get(key)
            self._migrations[key] = snapshot
            if previous is not None:
                self._count_plan(previous, -1)
            self._count_plan(snapshot, 1)

    def forget_migration(self, key: str) -> None:
        with self._lock:
            previous = self._migrations.pop(key, None)
            if previous is not None:
                self._count_plan(previous, -1)

    def migrations(self) -> dict[str, MigrationSnapshot]:
        with self._lock:
            return dict(self._migrations)

    def count_write(self, cluster: str, verb: str, kind: str) -> None:
        self.api_writes.labels(cluster=cluster, verb=verb, kind=kind).inc()

    def watch_caches(self, source: Callable[[], Sequence[CacheSize]]) -> None:
        """Export the caches' sizes: `source` is asked at each scrape."""
        self.registry.register(_CacheCollector(source))

    def watch_drills(self, source: Callable[[], Sequence[DrillRecord]]) -> None:
        """Export each tenant's restore drills: `source` is asked at each scrape (the same
        source again when this replica leads again)."""
        self._drills.source = source

    def watch_entries(self, source: Callable[[], Sequence[Entries]]) -> None:
        """Export the operator's per-object memory: `source` is asked at each scrape."""
        self.registry.register(_EntriesCollector(source))

    def entries(self) -> list[Entries]:
        """The recorder's own per-object stores."""
        with self._lock:
            held = [
                ("metrics_tenants", len(self._tenants)),
                ("metrics_subcenters", len(self._subcenters)),
                ("metrics_migrations", len(self._migrations)),
                ("metrics_lines", sum(len(text) for text in self._tenant_text)),
            ]
        return held + self.billing.entries() + self.grants.entries() + self.backup.entries()

    def count_read(self, cluster: str, verb: str, kind: str) -> None:
        self.api_reads.labels(cluster=cluster, verb=verb, kind=kind).inc()

    def exposition(self) -> bytes:
        """What /metrics answers: the registry's other metrics (counters, histograms) as
        `generate_latest` writes them, then the gauge families from their pre-rendered lines."""
        token = _PRE_RENDERED.set(True)
        try:
            classic = generate_latest(self.registry)
        finally:
            _PRE_RENDERED.reset(token)
        with self._lock:
            texts = [store.text() for store in self._stores()]
        texts += self.billing.texts()
        texts += self.backup.texts()
        return classic + "".join(texts).encode()

    def _stores(self) -> list[_Rendered]:
        return [*self._tenant_text, *self._subcenter_text, self._phase_text, *self._totals_text]

    def _count_plan(self, plan: MigrationSnapshot, delta: int) -> None:
        """Adds (+1) or removes (-1) one plan from the per tenant and tier aggregates, and
        renders the lines it changes; the caller holds the lock."""
        phase_key = (plan.tenant, plan.tier, plan.phase)
        phase_count = self._phase_counts.get(phase_key, 0) + delta
        if phase_count:
            self._phase_counts[phase_key] = phase_count
            self._phase_text.put(phase_key, MIGRATION_PLANS.line(phase_key, phase_count))
        else:
            self._phase_counts.pop(phase_key, None)
            self._phase_text.drop(phase_key)
        key = (plan.tenant, plan.tier)
        counts = self._plan_counts.setdefault(key, _PlanCounts())
        counts.plans += delta
        counts.overdue += delta * plan.overdue
        counts.at_risk += delta * plan.at_risk
        counts.on_time += delta * plan.completed_on_time
        if not counts.plans:
            del self._plan_counts[key]
            _drop_all(self._totals_text, key)
            return
        values = (counts.overdue, counts.at_risk, counts.on_time)
        lines = [
            family.line(key, value) for family, value in zip(MIGRATION_TOTALS, values, strict=True)
        ]
        _put_all(self._totals_text, key, lines)


def serve(recorder: Recorder, port: int, host: str) -> metrics_http.MetricsServer:
    """Serves `recorder.exposition()` on http://host:port/metrics from its own thread, until
    `shutdown()`; port 0 picks a free one (see `.port`)."""
    return metrics_http.serve(recorder.exposition, port, host)


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
    payer: str = ""  # the level paying for the tenant, whose budget an approved plan enters
    apps_missing: int = 0  # planned apps past their target date with no MigrationPlan


PLAN_STATES = ("Pending", "Approved", "Rejected", "ChangesRequested")


@dataclass(frozen=True)
class AssessmentSnapshot:
    """A tenant's annual assessment of the current year so far, as `report assessment` makes
    it (metering builds it each tick with the same function and rule)."""

    tier: str
    payer: str
    spend: float
    utilisation: Mapping[str, float] = field(default_factory=dict)  # ratio per resource
    lagging: bool = False
    reasons: int = 0


def _assessment_lines(tenant: str, found: AssessmentSnapshot) -> tuple[str, ...]:
    tier = found.tier
    return (
        "".join(
            ASSESSMENT_UTILISATION.line((tenant, tier, resource), value)
            for resource, value in sorted(found.utilisation.items())
        ),
        ASSESSMENT_SPEND.line((tenant, tier), found.spend),
        ASSESSMENT_LAGGING.line((tenant, tier, found.payer), 1 if found.lagging else 0),
        ASSESSMENT_REASONS.line((tenant, tier), found.reasons),
    )


def _add_assessments(
    assessments: Mapping[str, AssessmentSnapshot], *families: GaugeMetricFamily
) -> None:
    """The assessment families, for the collector."""
    utilisation, spend, lagging, reasons = families
    for tenant, found in sorted(assessments.items()):
        for resource, value in sorted(found.utilisation.items()):
            utilisation.add_metric([tenant, found.tier, resource], value)
        spend.add_metric([tenant, found.tier], found.spend)
        lagging.add_metric([tenant, found.tier, found.payer], 1 if found.lagging else 0)
        reasons.add_metric([tenant, found.tier], found.reasons)


def _usage_lines(tenant: str, snapshot: UsageSnapshot) -> tuple[str, ...]:
    tier = snapshot.tier
    hours = [
        USAGE_HOURS.line((tenant, tier, resource, kind), value)
        for kind, values in (
            ("requested", snapshot.requested_hours),
            ("allocated", snapshot.allocated_hours),
        )
        for resource, value in sorted(values.items())
    ]
    return USAGE_CHARGE.line((tenant, tier), snapshot.charge), "".join(hours)


def _payer_sums(
    plans: Iterable[PlanSnapshot],
) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Per payer, the approved ceilings and costs summed in the order given."""
    ceilings: dict[str, dict[str, float]] = {}
    costs: dict[str, float] = {}
    for plan in plans:
        if plan.state != "Approved" or not plan.payer:
            continue
        sums = ceilings.setdefault(plan.payer, {})
        for resource, value in sorted(plan.ceiling.items()):
            sums[resource] = sums.get(resource, 0.0) + value
        if plan.estimated_annual_cost is not None:
            costs[plan.payer] = costs.get(plan.payer, 0.0) + plan.estimated_annual_cost
    return ceilings, costs


def _payer_lines(payer: str, plans: Iterable[PlanSnapshot]) -> tuple[str, str]:
    ceilings, costs = _payer_sums(plans)
    ceiling = ceilings.get(payer, {})
    return (
        "".join(
            PAYER_CEILING.line((payer, resource), value)
            for resource, value in sorted(ceiling.items())
        ),
        PAYER_COST.line((payer,), costs[payer]) if payer in costs else "",
    )


def _plan_lines(tenant: str, plan: PlanSnapshot) -> tuple[str, ...]:
    tier, cost, since = plan.tier, plan.estimated_annual_cost, plan.pending_since
    ceiling = [
        PLAN_CEILING.line((tenant, tier, resource), value)
        for resource, value in sorted(plan.ceiling.items())
    ]
    states = [
        PLAN_STATE.line((tenant, candidate), 1 if plan.state == candidate else 0)
        for candidate in PLAN_STATES
    ]
    pending = (
        "" if plan.state != "Pending" or since is None else PLAN_PENDING.line((tenant, tier), since)
    )
    missing = (
        PLAN_APPS_MISSING.line((tenant, tier), plan.apps_missing)
        if plan.state == "Approved"
        else ""
    )
    return (
        "".join(ceiling),
        "" if cost is None else PLAN_COST.line((tenant, tier), cost),
        "".join(states),
        pending,
        missing,
    )


def _add_plans(plans: Mapping[str, PlanSnapshot], *families: GaugeMetricFamily) -> None:
    """The plan families and the per-payer sums, for the collector."""
    ceiling, cost, state, pending, missing, by_payer, payer_cost = families
    for tenant, plan in sorted(plans.items()):
        for resource, value in sorted(plan.ceiling.items()):
            ceiling.add_metric([tenant, plan.tier, resource], value)
        if plan.estimated_annual_cost is not None:
            cost.add_metric([tenant, plan.tier], plan.estimated_annual_cost)
        for candidate in PLAN_STATES:
            state.add_metric([tenant, candidate], 1 if plan.state == candidate else 0)
        if plan.state == "Pending" and plan.pending_since is not None:
            pending.add_metric([tenant, plan.tier], plan.pending_since)
        if plan.state == "Approved":
            missing.add_metric([tenant, plan.tier], plan.apps_missing)
    ceilings, costs = _payer_sums(plan for _, plan in sorted(plans.items()))
    for payer, sums in sorted(ceilings.items()):
        for resource, value in sorted(sums.items()):
            by_payer.add_metric([payer, resource], value)
    for payer, value in sorted(costs.items()):
        payer_cost.add_metric([payer], value)


class _BillingCollector(Collector):
    def __init__(self, recorder: BillingRecorder) -> None:
        self._recorder = recorder

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if _PRE_RENDERED.get():
            return
        usage, plans, last_tick = self._recorder.state()
        assessments = self._recorder.assessments()
        families = [f.gauge() for f in BILLING_FAMILIES]
        charge, hours, tier_charge = families[:3]
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
        plan_end = 3 + len(PLAN_FAMILIES) + len(PAYER_FAMILIES)
        _add_plans(plans, *families[3:plan_end])
        _add_assessments(assessments, *families[plan_end:-1])
        if last_tick is not None:
            families[-1].add_metric([], last_tick)
        yield from families


class BillingRecorder:
    """The billing part of the recorder: usage per tenant, plans per tenant, metering ticks."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._lock = threading.Lock()
        self._usage: dict[str, UsageSnapshot] = {}
        self._plans: dict[str, PlanSnapshot] = {}
        self._last_tick: float | None = None
        self._tier_tenants: dict[str, list[str]] = {}  # sorted, as the tier sum adds them
        self._usage_text = [_Rendered(family) for family in USAGE_FAMILIES]
        self._tier_text = _Rendered(USAGE_TIER_CHARGE)
        self._plan_text = [_Rendered(family) for family in PLAN_FAMILIES]
        self._payer_tenants: dict[str, list[str]] = {}  # sorted, as the payer sums add them
        self._payer_text = [_Rendered(family) for family in PAYER_FAMILIES]
        self._assessments: dict[str, AssessmentSnapshot] = {}
        self._assessment_text = [_Rendered(family) for family in ASSESSMENT_FAMILIES]
        self._tick_text = _Rendered(METERING_TICK)
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

    def entries(self) -> list[Entries]:
        with self._lock:
            return [
                ("metrics_usage", len(self._usage)),
                ("metrics_plans", len(self._plans)),
                ("metrics_assessments", len(self._assessments)),
            ]

    def record_usage(self, tenant: str, snapshot: UsageSnapshot) -> None:
        lines = _usage_lines(tenant, snapshot)
        with self._lock:
            previous = self._usage.get(tenant)
            self._usage[tenant] = snapshot
            _put_all(self._usage_text, (tenant,), lines)
            if previous is None or previous.tier != snapshot.tier:
                if previous is not None:
                    self._leave_tier(tenant, previous.tier)
                bisect.insort(self._tier_tenants.setdefault(snapshot.tier, []), tenant)
            self._render_tier(snapshot.tier)

    def record_assessment(self, tenant: str, snapshot: AssessmentSnapshot) -> None:
        """The tenant's assessment; its lines are rendered again only when it changed."""
        with self._lock:
            if self._assessments.get(tenant) == snapshot:
                return
        lines = _assessment_lines(tenant, snapshot)
        with self._lock:
            self._assessments[tenant] = snapshot
            _put_all(self._assessment_text, (tenant,), lines)

    def record_assessments(self, found: Mapping[str, AssessmentSnapshot]) -> None:
        """Every tenant's assessment as one tick made it: a tenant not in `found` is dropped
        (gone, or deleted while the tick ran)."""
        with self._lock:
            gone = [tenant for tenant in self._assessments if tenant not in found]
            for tenant in gone:
                del self._assessments[tenant]
                _drop_all(self._assessment_text, (tenant,))
        for tenant, snapshot in sorted(found.items()):
            self.record_assessment(tenant, snapshot)

    def assessments(self) -> dict[str, AssessmentSnapshot]:
        with self._lock:
            return dict(self._assessments)

    def record_tick(self, finished_at: float) -> None:
        line = METERING_TICK.line((), finished_at)
        with self._lock:
            self._last_tick = finished_at
            self._tick_text.put((), line)

    def record_plan(self, tenant: str, snapshot: PlanSnapshot) -> None:
        lines = _plan_lines(tenant, snapshot)
        with self._lock:
            previous = self._plans.get(tenant)
            self._plans[tenant] = snapshot
            _put_all(self._plan_text, (tenant,), lines)
            if previous is not None and previous.payer != snapshot.payer:
                self._leave_payer(tenant, previous.payer)
            if previous is None or previous.payer != snapshot.payer:
                bisect.insort(self._payer_tenants.setdefault(snapshot.payer, []), tenant)
            self._render_payer(snapshot.payer)

    def forget_plan(self, tenant: str) -> None:
        with self._lock:
            self._forget_plan(tenant)

    def forget_tenant(self, tenant: str) -> None:
        with self._lock:
            usage = self._usage.pop(tenant, None)
            self._forget_plan(tenant)
            _drop_all(self._usage_text, (tenant,))
            self._assessments.pop(tenant, None)
            _drop_all(self._assessment_text, (tenant,))
            if usage is not None:
                self._leave_tier(tenant, usage.tier)

    def _forget_plan(self, tenant: str) -> None:
        plan = self._plans.pop(tenant, None)
        _drop_all(self._plan_text, (tenant,))
        if plan is not None:
            self._leave_payer(tenant, plan.payer)

    def _leave_payer(self, tenant: str, payer: str) -> None:
        members = self._payer_tenants[payer]
        members.remove(tenant)
        if not members:
            del self._payer_tenants[payer]
        self._render_payer(payer)

    def _render_payer(self, payer: str) -> None:
        members = self._payer_tenants.get(payer, [])
        _put_all(self._payer_text, (payer,), _payer_lines(payer, (self._plans[t] for t in members)))

    def state(self) -> tuple[dict[str, UsageSnapshot], dict[str, PlanSnapshot], float | None]:
        with self._lock:
            return dict(self._usage), dict(self._plans), self._last_tick

    def texts(self) -> list[str]:
        """The billing families' text, as it stands after the last record or forget."""
        stores = [
            *self._usage_text,
            self._tier_text,
            *self._plan_text,
            *self._payer_text,
            *self._assessment_text,
            self._tick_text,
        ]
        with self._lock:
            return [store.text() for store in stores]

    def _leave_tier(self, tenant: str, tier: str) -> None:
        members = self._tier_tenants[tier]
        members.remove(tenant)
        if not members:
            del self._tier_tenants[tier]
        self._render_tier(tier)

    def _render_tier(self, tier: str) -> None:
        members = self._tier_tenants.get(tier)
        if not members:
            self._tier_text.drop((tier,))
            return
        # Added one by one in tenant order from 0.0, as the collector does: the same float.
        total = 0.0
        for tenant in members:
            total += self._usage[tenant].charge
        self._tier_text.put((tier,), USAGE_TIER_CHARGE.line((tier,), total))


# -- network grants (issue #16): active and expiring grants per tenant, read at scrape --------

GRANT_EXPIRING_SECONDS = 7 * 86400.0  # "expiring": active, and ending within this
GRANT_SIDES = ("provider", "consumer")


@dataclass(frozen=True)
class GrantSnapshot:
    """One NetworkGrant as its last pass saw it."""

    provider: str
    consumer: str
    state: str
    expires_at: float  # Unix time


class _GrantCollector(Collector):
    """Per tenant and side, the grants active and those active but expiring soon; counted at
    each scrape, so a grant crosses into "expiring" without a pass."""

    def __init__(self, recorder: GrantRecorder) -> None:
        self._recorder = recorder

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from grant_families(
            self._recorder.grants(), self._recorder.now(), self._recorder.window
        )


def grant_families(
    grants: Mapping[str, GrantSnapshot], now: float, window: float
) -> Iterator[GaugeMetricFamily]:
    active = GaugeMetricFamily(
        "govcloud_network_grants_active",
        "Active NetworkGrants per tenant and side (provider: others reach its services;"
        " consumer: it reaches others').",
        labels=["tenant", "side"],
    )
    expiring = GaugeMetricFamily(
        "govcloud_network_grants_expiring",
        "Active NetworkGrants per tenant and side that end within the warning window.",
        labels=["tenant", "side"],
    )
    pending = GaugeMetricFamily(
        "govcloud_network_grants_pending",
        "NetworkGrants per tenant and side waiting for the provider's consent.",
        labels=["tenant", "side"],
    )
    window_family = GaugeMetricFamily(
        "govcloud_network_grant_expiry_warning_seconds",
        "How long before its expiry an active grant counts as expiring.",
    )
    counts: dict[tuple[str, str], list[int]] = {}
    for grant in grants.values():
        for side, tenant in zip(GRANT_SIDES, (grant.provider, grant.consumer), strict=True):
            if not tenant:
                continue
            row = counts.setdefault((tenant, side), [0, 0, 0])
            if grant.state == "Active" and grant.expires_at > now:
                row[0] += 1
                row[1] += grant.expires_at - now <= window
            row[2] += grant.state == "Pending"
    for (tenant, side), (on, ending, waiting) in sorted(counts.items()):
        active.add_metric([tenant, side], on)
        expiring.add_metric([tenant, side], ending)
        pending.add_metric([tenant, side], waiting)
    window_family.add_metric([], window)
    yield from (active, expiring, pending, window_family)


class GrantRecorder:
    """The NetworkGrants' snapshots, by <namespace>/<name>; forgotten when a grant is deleted."""

    def __init__(
        self,
        registry: CollectorRegistry,
        window: float = GRANT_EXPIRING_SECONDS,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._grants: dict[str, GrantSnapshot] = {}
        self.window = window
        self.now = clock or time.time
        registry.register(_GrantCollector(self))

    def record(self, key: str, snapshot: GrantSnapshot) -> None:
        with self._lock:
            self._grants[key] = snapshot

    def forget(self, key: str) -> None:
        with self._lock:
            self._grants.pop(key, None)

    def grants(self) -> dict[str, GrantSnapshot]:
        with self._lock:
            return dict(self._grants)

    def entries(self) -> list[Entries]:
        with self._lock:
            return [("metrics_grants", len(self._grants))]


# -- backups: each tenant's recovery point ------------------------------------------------


@dataclass(frozen=True)
class BackupSnapshot:
    """A tenant's backups as its last pass saw them."""

    rpo_met: bool
    rpo_seconds: float
    last_success: float | None = None  # Unix time the newest completed backup finished


BACKUP_LAST_SUCCESS = Family(
    "govcloud_tenant_backup_last_success_timestamp_seconds",
    "When the tenant's newest completed Velero backup finished (Unix time), once there is one.",
    ["tenant"],
)
BACKUP_RPO_MET = Family(
    "govcloud_tenant_backup_rpo_met",
    "1 while the tenant's newest completed backup is within its recovery-point objective.",
    ["tenant"],
)
BACKUP_RPO = Family(
    "govcloud_tenant_backup_rpo_seconds",
    "The tenant's recovery-point objective (its security level's policy), seconds.",
    ["tenant"],
)
BACKUP_FAMILIES = (BACKUP_LAST_SUCCESS, BACKUP_RPO_MET, BACKUP_RPO)
GAUGE_FAMILIES = (*GAUGE_FAMILIES, *BACKUP_FAMILIES)


def _backup_lines(tenant: str, snapshot: BackupSnapshot) -> tuple[str, ...]:
    last = snapshot.last_success
    return (
        "" if last is None else BACKUP_LAST_SUCCESS.line((tenant,), last),
        BACKUP_RPO_MET.line((tenant,), 1 if snapshot.rpo_met else 0),
        BACKUP_RPO.line((tenant,), snapshot.rpo_seconds),
    )


class _BackupCollector(Collector):
    def __init__(self, recorder: BackupRecorder) -> None:
        self._recorder = recorder

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if _PRE_RENDERED.get():
            return
        last, met, rpo = (family.gauge() for family in BACKUP_FAMILIES)
        for tenant, snapshot in sorted(self._recorder.state().items()):
            if snapshot.last_success is not None:
                last.add_metric([tenant], snapshot.last_success)
            met.add_metric([tenant], 1 if snapshot.rpo_met else 0)
            rpo.add_metric([tenant], snapshot.rpo_seconds)
        yield from (last, met, rpo)


class BackupRecorder:
    """The backup part of the recorder: one snapshot per backed-up tenant."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._lock = threading.Lock()
        self._tenants: dict[str, BackupSnapshot] = {}
        self._text = [_Rendered(family) for family in BACKUP_FAMILIES]
        registry.register(_BackupCollector(self))

    def record(self, tenant: str, snapshot: BackupSnapshot | None) -> None:
        """The tenant's recovery point; None: it is not backed up (no series)."""
        with self._lock:
            if snapshot is None:
                self._tenants.pop(tenant, None)
                _drop_all(self._text, (tenant,))
                return
            self._tenants[tenant] = snapshot
            _put_all(self._text, (tenant,), _backup_lines(tenant, snapshot))

    def state(self) -> dict[str, BackupSnapshot]:
        with self._lock:
            return dict(self._tenants)

    def entries(self) -> list[Entries]:
        with self._lock:
            return [("metrics_backups", len(self._tenants))]

    def texts(self) -> list[str]:
        with self._lock:
            return [store.text() for store in self._text]


# -- restore drills: each tenant's record, read from the hub's cache at scrape time ------------


@dataclass(frozen=True)
class DrillRecord:
    """A tenant's RecoveryDrills as the metrics show them."""

    tenant: str
    last_success: float | None  # Unix time its newest successful drill completed
    recovery_time: float | None  # that drill's recovery time, seconds
    newest_finished: str | None  # its newest finished drill
    failed: bool  # ... failed
    overdue: bool | None  # None: the drill policy does not apply to it (not level 3)


DRILL_LAST_SUCCESS = Family(
    "govcloud_recovery_drill_last_success_timestamp_seconds",
    "When the tenant's newest successful RecoveryDrill completed (Unix time), once there is one.",
    ["tenant"],
)
DRILL_RECOVERY_TIME = Family(
    "govcloud_recovery_drill_recovery_time_seconds",
    "The recovery time of the tenant's newest successful RecoveryDrill, seconds.",
    ["tenant"],
)
DRILL_FAILED = Family(
    "govcloud_recovery_drill_failed",
    "1 when the tenant's newest finished RecoveryDrill (label drill) failed, else 0.",
    ["tenant", "drill"],
)
DRILL_OVERDUE = Family(
    "govcloud_recovery_drill_overdue",
    "1 when a security level 3 tenant has had no successful RecoveryDrill within the drill"
    " period (GOVCLOUD_DRILL_PERIOD_DAYS), else 0.",
    ["tenant"],
)
DRILL_FAMILIES = (DRILL_LAST_SUCCESS, DRILL_RECOVERY_TIME, DRILL_FAILED, DRILL_OVERDUE)


class _DrillCollector(Collector):
    """Per tenant: its drills' record, from a source asked at scrape time (none: no series)."""

    def __init__(self) -> None:
        self.source: Callable[[], Sequence[DrillRecord]] | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        source = self.source
        if source is None:
            return
        last, rto, failed, overdue = (family.gauge() for family in DRILL_FAMILIES)
        for record in source():
            if record.last_success is not None:
                last.add_metric([record.tenant], record.last_success)
            if record.recovery_time is not None:
                rto.add_metric([record.tenant], record.recovery_time)
            if record.newest_finished is not None:
                failed.add_metric(
                    [record.tenant, record.newest_finished], 1 if record.failed else 0
                )
            if record.overdue is not None:
                overdue.add_metric([record.tenant], 1 if record.overdue else 0)
        yield from (last, rto, failed, overdue)


# -- self-service restores: how each tenant's BackupRestores ended ---------------------------

RESTORE_RESULTS = ("completed", "partially_failed", "failed", "refused")


class RestoreRecorder:
    """Counts each tenant's BackupRestores as they end (once each), by result."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.total = Counter(
            "govcloud_backup_restores_total",
            "BackupRestores (department self-service restores) that ended, by tenant and result"
            " (completed, partially_failed, failed, refused).",
            ["tenant", "result"],
            registry=registry,
        )

    def count(self, tenant: str, result: str) -> None:
        self.total.labels(tenant=tenant, result=result).inc()

    def forget(self, tenant: str) -> None:
        """The tenant is gone: its series go too."""
        for result in RESTORE_RESULTS:
            with contextlib.suppress(KeyError):
                self.total.remove(tenant, result)


# -- the platform ledger's backups -------------------------------------------------------


@dataclass(frozen=True)
class LedgerSnapshot:
    """The ledger's backups as the last look saw them."""

    rpo_met: bool
    rpo_seconds: float
    last_success: float | None = None  # Unix time the newest completed backup finished


LEDGER_LAST_SUCCESS = "govcloud_ledger_backup_last_success_timestamp_seconds"
LEDGER_RPO_MET = "govcloud_ledger_backup_rpo_met"
LEDGER_RPO = "govcloud_ledger_backup_rpo_seconds"


class LedgerRecorder(Collector):
    """The ledger's recovery point: no series until the operator backs the ledger up."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._lock = threading.Lock()
        self._snapshot: LedgerSnapshot | None = None
        registry.register(self)

    def record(self, snapshot: LedgerSnapshot | None) -> None:
        with self._lock:
            self._snapshot = snapshot

    def state(self) -> LedgerSnapshot | None:
        with self._lock:
            return self._snapshot

    def collect(self) -> Iterator[GaugeMetricFamily]:
        snapshot = self.state()
        if snapshot is None:
            return
        if snapshot.last_success is not None:
            yield GaugeMetricFamily(
                LEDGER_LAST_SUCCESS,
                "When the newest completed Velero backup of the platform ledger finished (Unix"
                " time), once there is one.",
                value=snapshot.last_success,
            )
        yield GaugeMetricFamily(
            LEDGER_RPO_MET,
            "1 while the platform ledger's newest completed backup is within its"
            " recovery-point objective.",
            value=1 if snapshot.rpo_met else 0,
        )
        yield GaugeMetricFamily(
            LEDGER_RPO,
            "The platform ledger's recovery-point objective (backup.ledger.rpo), seconds.",
            value=snapshot.rpo_seconds,
        )
