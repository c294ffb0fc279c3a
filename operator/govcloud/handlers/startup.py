"""Start-up and clean-up: settings, caches, the scheduler, leadership and the metrics server.

Every kind the passes read is watched once per cluster into a cache (govcloud.k8s.cache); a
watch event routes to the handler of its kind, which queues a pass. Only the replica holding
the Lease acts: it routes events and runs the one scheduler that decides when each object is
looked at again. kopf runs standalone; it gives the operator its loop, Events and probes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import kopf
import prometheus_client

from govcloud import constants, logs, metrics, settings
from govcloud.k8s import cache, client, clusters, lease, posting
from govcloud.reconcile import events, queue, scheduler, tenant_types
from govcloud.reconcile import failures as failure_conditions

log = logging.getLogger(__name__)

RBAC = "rbac.authorization.k8s.io/v1"
MANAGED_SELECTOR = f"{constants.LABEL_MANAGED_BY}={constants.MANAGED_BY}"
# What a pass reads on the hub: the operator's own kinds whole, child kinds by its label.
HUB_KINDS: tuple[tuple[str, str, str | None], ...] = (
    (constants.API_VERSION, "CloudTenant", None),
    (constants.API_VERSION, "SubCenter", None),
    (constants.API_VERSION, "MigrationPlan", None),
    (constants.API_VERSION, "ResourcePlan", None),
    (constants.API_VERSION, "ResourceRequest", None),
    (constants.API_VERSION, "NetworkGrant", None),
    (constants.API_VERSION, "BackupRestore", None),
    (constants.API_VERSION, "RateCard", None),
    ("v1", "Namespace", None),
    ("v1", "ResourceQuota", MANAGED_SELECTOR),
    ("v1", "LimitRange", MANAGED_SELECTOR),
    ("networking.k8s.io/v1", "NetworkPolicy", MANAGED_SELECTOR),
    (RBAC, "RoleBinding", MANAGED_SELECTOR),
    (RBAC, "ClusterRole", MANAGED_SELECTOR),
    (RBAC, "ClusterRoleBinding", MANAGED_SELECTOR),
)
# What a pass reads on a sub-center: the tenants' namespaces and what the operator puts there.
SITE_KINDS: tuple[tuple[str, str, str | None], ...] = (
    ("v1", "Namespace", None),
    ("v1", "ResourceQuota", MANAGED_SELECTOR),
    ("v1", "LimitRange", MANAGED_SELECTOR),
    ("networking.k8s.io/v1", "NetworkPolicy", MANAGED_SELECTOR),
    (RBAC, "RoleBinding", MANAGED_SELECTOR),
)
# With backups on: Velero's Schedules the operator keeps and the Backups they make, in
# Velero's namespace only, on the hub and on every sub-center (a tenant's lives where it does).
BACKUP_KINDS = (("velero.io/v1", "Schedule"), ("velero.io/v1", "Backup"))
# With backups on, on the hub only: the Velero Restores of tenants' BackupRestores.
RESTORE_KINDS = (("velero.io/v1", "Restore"),)
SITE_EVENTS = "site"  # the route kind of every event from a sub-center's caches
# Quota refusals that controllers record (Events of this reason) wake the refused tenant.
REFUSALS = "reason=FailedCreate"
SYNC_TIMEOUT = 60.0

Route = Callable[[kopf.Memo, str, dict[str, Any]], None]
Requester = Callable[[kopf.Memo, str], None]
Activation = Callable[[kopf.Memo], None]


@dataclass(frozen=True)
class _Route:
    handler: Route
    always: bool  # also on a replica that does not lead (feeding a cache, not acting)


ROUTES: dict[str, list[_Route]] = {}
REQUESTERS: dict[str, Requester] = {}
ACTIVATIONS: list[Activation] = []
EntrySource = Callable[[kopf.Memo], list[metrics.Entries]]
ENTRY_SOURCES: list[EntrySource] = []


def route(kind: str, *, always: bool = False) -> Callable[[Route], Route]:
    """Register `handler(memo, event_type, object)` for watch events of `kind`."""

    def register(handler: Route) -> Route:
        ROUTES.setdefault(kind, []).append(_Route(handler, always))
        return handler

    return register


def requester(kind: str) -> Callable[[Requester], Requester]:
    """Register how a due scheduler entry of `kind` is served (usually: queue a pass)."""

    def register(function: Requester) -> Requester:
        REQUESTERS[kind] = function
        return function

    return register


def on_activate(function: Activation) -> Activation:
    """Register what to do when this replica starts to lead (look at everything once)."""
    ACTIVATIONS.append(function)
    return function


def entries_source(function: EntrySource) -> EntrySource:
    """Register a per-object store of another module for `govcloud_operator_entries`."""
    ENTRY_SOURCES.append(function)
    return function


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config = _load_settings()
    settings.posting.enabled = False  # the operator posts its own Events (govcloud.k8s.posting)
    registry = prometheus_client.CollectorRegistry()
    recorder = metrics.Recorder(registry)
    memo.config = config
    memo.recorder = recorder
    memo.executor = concurrent.futures.ThreadPoolExecutor(
        max_workers=config.workers, thread_name_prefix="reconcile"
    )
    # Probes get their own threads: a sub-center that does not answer holds one of these,
    # never a reconcile thread of the hub's tenants.
    memo.probe_executor = concurrent.futures.ThreadPoolExecutor(
        max_workers=config.probe_concurrency, thread_name_prefix="probe"
    )
    memo.active = False
    memo.failures = {}
    memo.queues = {}
    memo.scheduler = scheduler.Scheduler()
    memo.scheduler_task = None
    memo.lease_failing_since = None
    memo.background = set()
    dispatch = _dispatcher(memo)

    def site_dispatch(event_type: str, _kind: str, obj: dict[str, Any]) -> None:
        dispatch(event_type, SITE_EVENTS, obj)

    direct = client.Cluster(
        client.load_api_client(),
        "hub",
        on_write=lambda verb, kind: recorder.count_write("hub", verb, kind),
        on_read=lambda verb, kind: recorder.count_read("hub", verb, kind),
    )
    memo.hub = cache.CachedCluster(
        direct,
        _informers(direct, HUB_KINDS, dispatch)
        + _backup_informers(direct, config, dispatch)
        + _drill_informers(direct, config, dispatch)
        + _backup_informers(direct, config, dispatch, RESTORE_KINDS),
    )
    memo.poster = posting.Poster(
        client.Cluster(direct.api, "hub"),
        component=constants.MANAGED_BY,
        instance=config.identity or lease.default_identity(),
    )
    memo.poster.start()
    memo.clusters = clusters.ClusterRegistry(
        memo.hub,
        on_write=lambda verb, kind: recorder.count_write("subcenter", verb, kind),
        on_read=lambda verb, kind: recorder.count_read("subcenter", verb, kind),
        secret_namespace=config.subcenter_secret_namespace or config.operator_namespace,
        wrap=lambda site: cache.CachedCluster(
            site,
            _informers(site, SITE_KINDS, site_dispatch)
            + _backup_informers(site, config, site_dispatch),
        ),
    )
    memo.hub.start()
    memo.refusals = FieldSelectedInformer(
        direct, "v1", "Event", field_selector=REFUSALS, on_event=dispatch
    )
    memo.refusals.start()
    recorder.watch_caches(lambda: cache_sizes(memo))
    recorder.watch_entries(lambda: operator_entries(memo))
    if config.metrics_port:
        memo.metrics_server = metrics.serve(recorder, config.metrics_port, config.metrics_host)
        log.info("serving /metrics on %s:%s", config.metrics_host, config.metrics_port)
    memo.standalone = config.standalone
    # Lease renewals are not the operator's writes to its objects: a client that counts none.
    memo.elector = None if config.standalone else _elector(memo, client.Cluster(direct.api, "hub"))
    memo.leadership = asyncio.get_running_loop().create_task(_lead(memo))


def cache_sizes(memo: kopf.Memo) -> list[metrics.CacheSize]:
    """Objects and approximate bytes per cluster and kind, for /metrics."""
    clusters_seen: list[tuple[str, Any]] = [("hub", memo.hub), *memo.clusters.built()]
    return [
        (name, informer.kind, len(informer.store), informer.store.approximate_bytes())
        for name, cluster in clusters_seen
        if isinstance(cluster, cache.CachedCluster)
        for informer in cluster.informers
    ]


def operator_entries(memo: kopf.Memo) -> list[metrics.Entries]:
    """What this process holds per object, for /metrics: it must not grow with churn."""
    held = [
        ("scheduler", len(memo.scheduler)),
        ("scheduler_heap", memo.scheduler.heap_size()),
        ("queued", sum(len(found) for found in memo.queues.values())),
        ("failures", len(memo.failures)),
        *memo.recorder.entries(),
    ]
    for source in ENTRY_SOURCES:
        held += source(memo)
    return held


class FieldSelectedInformer(cache.Informer):
    """An informer of the objects a field selector picks (the Events of one reason); kept out
    of the hub's CachedCluster, whose reads it would answer with only those."""

    def __init__(self, *args: Any, field_selector: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.field_selector = field_selector

    def _call(self, path: str, query: list[tuple[str, Any]], read_timeout: float) -> Any:
        return super()._call(path, [*query, ("fieldSelector", self.field_selector)], read_timeout)


def _informers(
    cluster: client.Cluster,
    kinds: tuple[tuple[str, str, str | None], ...],
    dispatch: Callable[[str, str, dict[str, Any]], None],
) -> list[cache.Informer]:
    return [
        cache.Informer(cluster, api_version, kind, label_selector=selector, on_event=dispatch)
        for api_version, kind, selector in kinds
    ]


def _backup_informers(
    cluster: client.Cluster,
    config: settings.Settings,
    dispatch: Callable[[str, str, dict[str, Any]], None],
    kinds: tuple[tuple[str, str], ...] = BACKUP_KINDS,
) -> list[cache.Informer]:
    """Velero's kinds in its namespace, by the operator's label; none with backups off."""
    if not config.backup_enabled:
        return []
    return [
        cache.Informer(
            cluster,
            api_version,
            kind,
            label_selector=MANAGED_SELECTOR,
            on_event=dispatch,
            namespace=config.backup_namespace,
        )
        for api_version, kind in kinds
    ]


def _drill_informers(
    cluster: client.Cluster,
    config: settings.Settings,
    dispatch: Callable[[str, str, dict[str, Any]], None],
) -> list[cache.Informer]:
    """RecoveryDrills (restore drills, docs/backup.md), on the hub; none with backups off."""
    if not config.backup_enabled:
        return []
    return [cache.Informer(cluster, constants.API_VERSION, "RecoveryDrill", on_event=dispatch)]


def _dispatcher(memo: kopf.Memo) -> Callable[[str, str, dict[str, Any]], None]:
    """Hand each watch event from a cache's thread to the operator's loop, in kopf's context
    (so that the passes it queues can post Events)."""
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()

    def dispatch(event_type: str, kind: str, obj: dict[str, Any]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closing: the operator stops
            loop.call_soon_threadsafe(deliver, memo, event_type, kind, obj, context=context)

    return dispatch


def deliver(memo: kopf.Memo, event_type: str, kind: str, obj: dict[str, Any]) -> None:
    for entry in ROUTES.get(kind, ()):
        if not (entry.always or memo.active):
            continue
        try:
            entry.handler(memo, event_type, obj)
        except Exception:  # one bad object must not stop the events of every other
            log.exception("handling a %s event of %s failed", event_type, kind)


# -- leadership ---------------------------------------------------------------------------


def _elector(memo: kopf.Memo, direct: client.Cluster) -> lease.Elector:
    config = memo.config
    return lease.Elector(
        direct,
        config.lease_namespace or config.operator_namespace,
        config.lease_name,
        config.identity or lease.default_identity(),
        duration=config.lease_duration_seconds,
        renew_deadline=config.lease_renew_deadline_seconds,
        retry_period=config.lease_retry_period_seconds,
    )


async def _lead(memo: kopf.Memo) -> None:
    """Act while this replica leads (always, when standalone); stand by otherwise."""
    await asyncio.get_running_loop().run_in_executor(
        memo.executor, memo.hub.wait_synced, SYNC_TIMEOUT
    )
    elector: lease.Elector | None = memo.elector
    if elector is None:
        activate(memo)
        return
    config = memo.config
    log.info("leader election on Lease %s", config.lease_name)
    # Its own thread: slow sub-centers or a burst of passes must never delay a renewal.
    memo.lease_executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="lease")
    while True:
        leading = await asyncio.get_running_loop().run_in_executor(
            memo.lease_executor, elector.attempt
        )
        memo.lease_failing_since = (
            None if elector.error is None else memo.lease_failing_since or time.monotonic()
        )
        if leading and not memo.active:
            log.info("leading (Lease %s): this replica acts", config.lease_name)
            activate(memo)
        elif not leading and memo.active:
            log.warning("no longer leading (holder %s): this replica stands by", elector.holder)
            deactivate(memo)
        await asyncio.sleep(elector.retry_period)


def activate(memo: kopf.Memo) -> None:
    memo.active = True
    memo.active_since = time.monotonic()
    for function in ACTIVATIONS:
        function(memo)
    memo.scheduler_task = asyncio.get_running_loop().create_task(
        memo.scheduler.run(lambda key: fire(memo, key))
    )


def leading(memo: kopf.Memo) -> bool:
    """Whether this replica may act now: it is active and (unless standalone) its Lease was
    renewed within the renew deadline, checked again before every pass."""
    elector: lease.Elector | None = memo.elector
    return bool(memo.active) and (elector is None or elector.leading())


def deactivate(memo: kopf.Memo) -> None:
    memo.active = False
    if memo.scheduler_task is not None:
        memo.scheduler_task.cancel()
        memo.scheduler_task = None
    for pending in memo.queues.values():
        pending.cancel_all()


def fire(memo: kopf.Memo, key: scheduler.Key) -> None:
    kind, name = key
    serve = REQUESTERS.get(kind)
    if serve is None:
        log.warning("nothing serves scheduled %s %s", kind, name)
        return
    serve(memo, name)


@kopf.on.probe(id="leadership")
async def leadership_probe(memo: kopf.Memo, **_: Any) -> str:
    """Health fails while the Lease cannot be read or written for a whole lease duration,
    instead of a replica that silently never acts."""
    elector: lease.Elector | None = getattr(memo, "elector", None)
    if elector is None:
        return "standalone"
    if elector.leading():
        return "leader"
    since = getattr(memo, "lease_failing_since", None)
    failing = since is not None and time.monotonic() - since >= memo.config.lease_duration_seconds
    if elector.error and failing:
        raise kopf.PermanentError(f"leader election fails: {elector.error}")
    return f"standby (holder {elector.holder or 'none'})"


def _load_settings() -> settings.Settings:
    try:
        return settings.load()
    except ValueError as error:
        raise kopf.PermanentError(f"invalid GOVCLOUD_* setting: {error}") from error


# -- work queues --------------------------------------------------------------------------


def queue_for(memo: kopf.Memo, kind: str, work: Any) -> queue.Coalescer:
    """The work queue of one kind, made on first use inside the operator's event loop."""
    queues: dict[str, queue.Coalescer] = memo.queues
    if kind not in queues:
        queues[kind] = queue.Coalescer(guarded(memo, kind, work), concurrency=memo.config.workers)
    return queues[kind]


def queue_for_probes(memo: kopf.Memo, kind: str, work: Any) -> queue.Coalescer:
    """Like `queue_for`, bounded by the probe concurrency instead of the workers."""
    queues: dict[str, queue.Coalescer] = memo.queues
    if kind not in queues:
        queues[kind] = queue.Coalescer(
            guarded(memo, kind, work), concurrency=memo.config.probe_concurrency
        )
    return queues[kind]


def guarded(memo: kopf.Memo, kind: str, work: Any) -> Any:
    """`work` whose failures are never silent: each is counted (`result="error"`), said in a
    Warning Event and the condition `Reconciled=False` on the object (dropped once a pass
    succeeds), and retried with per-object exponential backoff."""

    async def run(key: str) -> None:
        if not leading(memo):
            return  # queued before this replica stopped leading
        try:
            await work(key)
        except asyncio.CancelledError:
            raise
        except tenant_types.NotLeadingError as error:
            log.warning("%s %s: %s; this replica stands by", kind, key, error)
        except Exception as error:  # any bug or API failure in a pass; the operator goes on
            failed(memo, kind, key, error)
        else:
            if memo.failures.pop(f"{kind}/{key}", None) is not None:
                in_background(memo, failure_conditions.clear, memo.hub, kind, key)

    return run


def failed(memo: kopf.Memo, kind: str, key: str, error: Exception) -> None:
    failures = memo.failures.get(f"{kind}/{key}", 0) + 1
    memo.failures[f"{kind}/{key}"] = failures
    delay = queue.backoff(failures)
    log.exception(
        "%s %s: the pass failed (%d in a row); retrying in %.0fs", kind, key, failures, delay
    )
    memo.recorder.reconciles.labels(kind=kind, result="error").inc()
    cause = logs.redact(f"the pass failed ({type(error).__name__}: {error})")[:1000]
    target: Any = reference(kind, key)
    said = f"{cause}; retrying in {delay:.0f}s"
    post(memo, target, events.Event("Warning", failure_conditions.REASON, said))
    # Without the delay: the same failure again leaves the condition as it is, so writing it
    # does not wake the object's next pass before its backoff.
    in_background(memo, failure_conditions.show, memo.hub, kind, key, cause)
    memo.scheduler.at((kind, key), delay)


def post(memo: kopf.Memo, obj: Any, event: events.Event) -> None:
    """Post a Kubernetes Event about `obj` (in the background; never fails the caller)."""
    memo.poster.post(obj, event.type, event.reason, event.message)


def reference(kind: str, key: str) -> dict[str, Any]:
    """Enough of the object for an Event: `key` is "name" or "namespace/name"."""
    namespace, _, name = key.rpartition("/")
    metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": constants.API_VERSION, "kind": kind, "metadata": metadata}


def next_look(memo: kopf.Memo, kind: str, key: str, delay: float | None = None) -> None:
    """When to look at the object again: in `delay` seconds if that comes before the next
    (jittered) resync, else at the resync: a far deadline never postpones the level-based look."""
    resync = scheduler.jittered(memo.config.resync_seconds)
    memo.scheduler.at((kind, key), resync if delay is None else min(delay, resync))


def forget(memo: kopf.Memo, kind: str, key: str) -> None:
    memo.scheduler.cancel((kind, key))
    memo.failures.pop(f"{kind}/{key}", None)


def cached(memo: kopf.Memo, api_version: str, kind: str) -> list[dict[str, Any]]:
    """Every object of a kind the hub's cache holds (for activation: look at each once)."""
    informer = memo.hub.informer(api_version, kind)
    return informer.store.list() if informer is not None else []


async def run_in_executor(memo: kopf.Memo, function: Any, *args: Any) -> Any:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(memo.executor, function, *args)


def in_background(memo: kopf.Memo, function: Any, *args: Any) -> None:
    """Run `function(*args)` on a reconcile thread; a failure is logged, never raised."""

    async def run() -> None:
        try:
            await run_in_executor(memo, function, *args)
        except Exception:
            log.exception("%s failed", getattr(function, "__name__", "background work"))

    task = asyncio.get_running_loop().create_task(run())
    memo.background.add(task)
    task.add_done_callback(memo.background.discard)


async def run_probe(memo: kopf.Memo, function: Any, *args: Any) -> Any:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(memo.probe_executor, function, *args)


@kopf.on.cleanup()
async def shutdown(memo: kopf.Memo, **_: Any) -> None:
    leadership = getattr(memo, "leadership", None)
    if leadership is not None:
        leadership.cancel()
    if getattr(memo, "active", False):
        deactivate(memo)
    elector: lease.Elector | None = getattr(memo, "elector", None)
    if elector is not None and elector.leading():
        await asyncio.get_running_loop().run_in_executor(None, elector.release)
    for caches in (
        getattr(memo, "clusters", None),
        getattr(memo, "hub", None),
        getattr(memo, "refusals", None),
        getattr(memo, "poster", None),
    ):
        if caches is not None:
            caches.stop()
    server = getattr(memo, "metrics_server", None)
    if server is not None:
        server.shutdown()
    for name in ("executor", "probe_executor", "lease_executor"):
        executor = getattr(memo, name, None)
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
