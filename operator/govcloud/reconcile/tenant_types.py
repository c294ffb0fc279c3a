"""Shared by the CloudTenant reconciler modules: how a pass reads (gather) and writes (Applier)."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from govcloud import metrics
from govcloud.api.v1alpha1 import cloudtenant
from govcloud.desired import compare, meta
from govcloud.k8s import client
from govcloud.reconcile import conditions, events

KIND = "CloudTenant"
RBAC = "rbac.authorization.k8s.io/v1"
NAMESPACED_KINDS = (
    ("v1", "ResourceQuota"),
    ("v1", "LimitRange"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    (RBAC, "RoleBinding"),
)
CLUSTER_KINDS = ((RBAC, "ClusterRole"), (RBAC, "ClusterRoleBinding"))
API_VERSIONS = {kind: api_version for api_version, kind in NAMESPACED_KINDS + CLUSTER_KINDS}
CLUSTER_KIND_NAMES = frozenset(kind for _, kind in CLUSTER_KINDS)

READY = "Ready"
# How long the need of a refused request is held for its namespace. A controller retries a
# refused pod with growing backoff and records each refusal again, which renews the hold; once
# the pod is in, the need is met and holds nothing (desired.quotas, room asked for).
DEMAND_SECONDS = 60.0

Manifest = dict[str, Any]
ObjectKey = tuple[str, str, str]  # kind, namespace ("" when cluster-scoped), name


Event = events.Event

# Threads that carry the writes of passes side by side (``Applier.ensure_many``), shared by
# every pass; the pool starts its threads only when first used. Only writes run on them, so
# a pass waiting for its writes never waits for another pass.
WRITE_FAN_OUT = 32
_FAN_OUT = concurrent.futures.ThreadPoolExecutor(WRITE_FAN_OUT, thread_name_prefix="write")


@dataclass
class Result:
    """What a pass did: the tenant as last seen, events to post, metrics, and how it went."""

    outcome: str
    body: Manifest | None = None
    events: list[Event] = field(default_factory=list)
    snapshot: metrics.TenantSnapshot | None = None
    retry: bool = False
    # Backups (tenant_backup): the tenant's recovery point for /metrics, and in how many
    # seconds its objective would be missed (the scheduler looks again then).
    backup: metrics.BackupSnapshot | None = None
    due_in: float | None = None


@dataclass(frozen=True)
class Observed:
    """The tenant and everything of it found in the cluster at the start of a pass."""

    tenant: Manifest
    namespaces: Mapping[str, Manifest]
    objects: Mapping[ObjectKey, Manifest]


def always_leading() -> bool:
    """A replica that runs alone (tests, standalone) always leads."""
    return True


class NotLeadingError(Exception):
    """This replica lost its Lease during a pass: the pass stops before its next write (the
    leader, which looks at every object when it takes over, does the rest)."""


@dataclass(frozen=True)
class QuotaContext:
    """What a pass is told from outside about quota: the hards recently refused requests
    needed in its namespaces (namespace -> resource -> amount), and whether this replica
    still leads (checked right before any quota is created or raised: the fence of the
    single-writer assumption)."""

    wanted: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    leading: Callable[[], bool] = always_leading


class Demands:
    """Hards that recently refused requests needed: tenant -> namespace -> resource -> amount.

    Fed by quota refusals that controllers record (FailedCreate Events), read by the tenant's
    pass. Held DEMAND_SECONDS on our own monotonic clock, so no other node's clock matters.
    Thread-safe: recorded on the event loop, read on reconcile threads.
    """

    def __init__(
        self, seconds: float = DEMAND_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._seconds = seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._held: dict[str, dict[tuple[str, str], tuple[str, float]]] = {}

    def record(self, tenant: str, namespace: str, needed: Mapping[str, str]) -> None:
        """A request that needed hards ``needed`` was refused in ``namespace``: hold them."""
        until = self._clock() + self._seconds
        with self._lock:
            held = self._held.setdefault(tenant, {})
            for resource, amount in needed.items():
                held[(namespace, resource)] = (amount, until)

    def of(self, tenant: str) -> dict[str, dict[str, str]]:
        """The needs still held for ``tenant``'s namespaces (expired holds are dropped)."""
        now = self._clock()
        wanted: dict[str, dict[str, str]] = {}
        with self._lock:
            held = self._held.get(tenant, {})
            for key, (amount, until) in list(held.items()):
                if until <= now:
                    del held[key]
                    continue
                wanted.setdefault(key[0], {})[key[1]] = amount
            if not held:
                self._held.pop(tenant, None)
        return wanted

    def forget(self, tenant: str) -> None:
        with self._lock:
            self._held.pop(tenant, None)

    def __len__(self) -> int:
        with self._lock:
            return sum(len(held) for held in self._held.values())


def key_of(manifest: Mapping[str, Any]) -> ObjectKey:
    metadata = manifest["metadata"]
    return str(manifest["kind"]), str(metadata.get("namespace") or ""), str(metadata["name"])


def gather(
    hub: client.Cluster,
    target: client.Cluster,
    tenant: Manifest,
    spec: cloudtenant.CloudTenantSpec | None,
) -> Observed:
    """Read the tenant's namespaces and every object labelled as the tenant's (O(kinds) calls).

    Namespaces and namespaced objects come from `target` (the hub or the tenant's
    sub-center); the self-view ClusterRole and binding always live on the hub.
    """
    name = tenant["metadata"]["name"]
    selector = meta.selector(name)
    namespaces = {
        item["metadata"]["name"]: item
        for item in target.list("v1", "Namespace", label_selector=selector)
    }
    for namespace in spec.namespaces if spec is not None else ():
        real = f"{name}-{namespace.name}"
        if real not in namespaces:
            found = target.get("v1", "Namespace", real)
            if found is not None:
                namespaces[real] = found
    objects: dict[ObjectKey, Manifest] = {}
    for cluster, kinds in ((target, NAMESPACED_KINDS), (hub, CLUSTER_KINDS)):
        for api_version, kind in kinds:
            for item in cluster.list(api_version, kind, label_selector=selector):
                item.setdefault("kind", kind)
                item.setdefault("apiVersion", api_version)
                objects[key_of(item)] = item
    return Observed(tenant=tenant, namespaces=namespaces, objects=objects)


class Applier:
    """Writes only what differs, remembers what it wrote, and turns failures into messages."""

    def __init__(
        self,
        hub: client.Cluster,
        target: client.Cluster,
        observed: Observed,
        events: list[Event],
        errors: list[str],
    ) -> None:
        self.hub = hub
        self.target = target
        self.observed = observed
        self.events = events
        self.errors = errors
        # Conditional writes refused because the object changed since it was read (409).
        self.conflicts: list[str] = []
        self.current: dict[ObjectKey, Manifest] = dict(observed.objects)
        for namespace in observed.namespaces.values():
            self.current[key_of({**namespace, "kind": "Namespace"})] = namespace

    def cluster_for(self, kind: str) -> client.Cluster:
        """Cluster-scoped RBAC (the self-view of the CloudTenant) lives on the hub."""
        return self.hub if kind in CLUSTER_KIND_NAMES else self.target

    def ensure(
        self, manifest: Manifest, reason: str | None = None, *, resource_version: str = ""
    ) -> None:
        """Write ``manifest`` if the object differs; with ``resource_version``, only if the
        object is still at that version (else the write is refused and noted in conflicts)."""
        existing = self.current.get(key_of(manifest))
        if not compare.needs_update(manifest, existing):
            return
        if resource_version:
            metadata = {**manifest["metadata"], "resourceVersion": resource_version}
            manifest = {**manifest, "metadata": metadata}
        self._record(manifest, existing, self._write(manifest, existing), reason)

    def ensure_many(self, manifests: Sequence[Manifest], reason: str | None = None) -> None:
        """``ensure`` each of ``manifests``, which do not depend on each other: their writes go
        out side by side (a pass is a few round trips, not one per object), and what they did
        is recorded in the order given."""
        pending = [
            (manifest, self.current.get(key_of(manifest)))
            for manifest in manifests
            if compare.needs_update(manifest, self.current.get(key_of(manifest)))
        ]
        if len(pending) < 2:
            for manifest, existing in pending:
                self._record(manifest, existing, self._write(manifest, existing), reason)
            return
        outcomes = list(_FAN_OUT.map(lambda item: self._write(*item), pending))
        for (manifest, existing), outcome in zip(pending, outcomes, strict=True):
            self._record(manifest, existing, outcome, reason)

    def _write(self, manifest: Manifest, existing: Manifest | None) -> Manifest | client.ApiError:
        """The object as written, or the API server's refusal."""
        key = key_of(manifest)
        cluster = self.cluster_for(key[0])
        try:
            if compare.needs_replace(manifest, existing):
                cluster.delete(manifest["apiVersion"], manifest["kind"], key[2], key[1] or None)
            return cluster.apply(manifest)
        except client.ApiError as error:
            return error

    def _record(
        self,
        manifest: Manifest,
        existing: Manifest | None,
        outcome: Manifest | client.ApiError,
        reason: str | None,
    ) -> None:
        key = key_of(manifest)
        if isinstance(outcome, client.ApiError):
            if manifest["metadata"].get("resourceVersion") and outcome.status == 409:
                self.conflicts.append(describe(key))
            else:
                self.errors.append(f"{describe(key)}: {outcome}")
            return
        self.current[key] = outcome
        self.events.append(Event("Normal", *self._why(key, existing, reason)))

    def _why(
        self, key: ObjectKey, existing: Manifest | None, reason: str | None
    ) -> tuple[str, str]:
        if reason is not None and existing is not None:
            hard = (self.current[key].get("spec") or {}).get("hard") or {}
            return reason, f"{describe(key)} hard set to {format_amounts(hard)}"
        if existing is None and key[0] == "Namespace":
            return "NamespaceCreated", f"created {describe(key)}"
        if existing is None and self._tenant_was_ready():
            return "DriftRepaired", f"restored {describe(key)}, which had been deleted"
        if existing is None:
            return "Created", f"created {describe(key)}"
        return (
            "DriftRepaired" if self._tenant_was_ready() else "Updated",
            f"updated {describe(key)}",
        )

    def _tenant_was_ready(self) -> bool:
        status = self.observed.tenant.get("status") or {}
        return any(
            item.get("type") == READY and item.get("status") == conditions.TRUE
            for item in status.get("conditions") or []
        ) and self.observed.tenant["metadata"].get("generation") == status.get("observedGeneration")

    def prune(self, keep: set[ObjectKey], namespaces: Sequence[str]) -> None:
        """Delete objects labelled as the tenant's that the spec no longer wants."""
        for key in list(self.current):
            if key[0] == "Namespace" or key in keep:
                continue
            if key[1] and key[1] not in namespaces:
                continue  # objects in released namespaces are handled with the namespace
            try:
                self.cluster_for(key[0]).delete(
                    API_VERSIONS[key[0]], key[0], key[2], key[1] or None
                )
            except client.ApiError as error:
                self.errors.append(f"pruning {describe(key)}: {error}")
                continue
            self.current.pop(key, None)
            self.events.append(
                Event("Normal", "Pruned", f"deleted {describe(key)}, no longer wanted")
            )


def format_amounts(amounts: Mapping[str, str]) -> str:
    return ", ".join(f"{resource}={value}" for resource, value in sorted(amounts.items()))


def describe(key: ObjectKey) -> str:
    kind, namespace, name = key
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"
