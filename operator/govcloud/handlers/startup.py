"""Start-up and clean-up: settings, API clients, the metrics server and the resync loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import random
import time
from typing import Any

import kopf
import prometheus_client

from govcloud import constants, logs, metrics, settings
from govcloud.k8s import client, clusters
from govcloud.reconcile import queue

log = logging.getLogger(__name__)

CRD_API_VERSION = "apiextensions.k8s.io/v1"
PEERING_CRD = "clusterkopfpeerings.kopf.dev"
PEERING_MISSING = (
    "peering (high availability) is on, but the ClusterKopfPeering CRD is not installed, so"
    " the operator waits and reconciles nothing: install it (kubectl apply --server-side -f"
    " charts/govcloud-operator/crds/clusterkopfpeerings.kopf.dev.yaml), or run one replica"
    " with --standalone (GOVCLOUD_STANDALONE=true)"
)


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config = _load_settings()
    settings.posting.reporting_component = constants.MANAGED_BY
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    # kopf.run has already set `standalone` from the flag (which wins) or the setting.
    standalone = settings.peering.standalone
    settings.peering.mandatory = not standalone
    # kopf pauses every peer that sees another live peer of the same or a higher priority, so
    # equal priorities would pause all replicas: each draws its own and the highest one acts.
    settings.peering.lifetime = config.peering_lifetime
    settings.peering.priority = (
        random.randint(1, 2**31 - 1)  # an ordering among replicas, not a secret
        if config.peering_priority is None
        else config.peering_priority
    )
    if not standalone:
        log.info(
            "peering priority %d, lifetime %ds", settings.peering.priority, config.peering_lifetime
        )
    registry = prometheus_client.CollectorRegistry()
    recorder = metrics.Recorder(registry)
    memo.config = config
    memo.recorder = recorder
    memo.executor = concurrent.futures.ThreadPoolExecutor(
        max_workers=config.workers, thread_name_prefix="reconcile"
    )
    memo.hub = client.Cluster(
        client.load_api_client(),
        "hub",
        on_write=lambda verb, kind: recorder.count_write("hub", verb, kind),
    )
    memo.clusters = clusters.ClusterRegistry(
        memo.hub,
        on_write=lambda verb, kind: recorder.count_write("subcenter", verb, kind),
        secret_namespace=config.subcenter_secret_namespace or config.operator_namespace,
    )
    # Probes get their own threads: a sub-center that does not answer holds one of these,
    # never a reconcile thread of the hub's tenants.
    memo.probe_executor = concurrent.futures.ThreadPoolExecutor(
        max_workers=config.probe_concurrency, thread_name_prefix="probe"
    )
    memo.standalone = standalone
    memo.peering_missing = not standalone and not peering_installed(memo.hub)
    if memo.peering_missing:
        log.error(PEERING_MISSING)
    memo.peering_check = None
    memo.due = {}
    memo.failures = {}
    memo.queues = {}
    memo.last_pass = {}
    if config.metrics_port:
        prometheus_client.start_http_server(
            config.metrics_port, addr=config.metrics_host, registry=registry
        )
        log.info("serving /metrics on %s:%s", config.metrics_host, config.metrics_port)


def peering_installed(hub: client.Cluster) -> bool:
    """Whether the ClusterKopfPeering CRD exists (True when the API cannot tell); kopf pauses
    every handler, silently, while peering is on and that CRD is missing."""
    try:
        return hub.get(CRD_API_VERSION, "CustomResourceDefinition", PEERING_CRD) is not None
    except client.ApiError:
        return True


@kopf.on.probe(id="peering")
async def peering_probe(memo: kopf.Memo, **_: Any) -> str:
    """Health fails while peering is on without its CRD, instead of a silent pause. The check
    runs in the background, so a slow API server never holds the probe up."""
    if memo.standalone:
        return "standalone"
    if memo.peering_check is None or memo.peering_check.done():
        memo.peering_check = asyncio.get_running_loop().run_in_executor(
            memo.probe_executor, refresh_peering, memo
        )
    if memo.peering_missing:
        raise kopf.PermanentError(PEERING_MISSING)
    return "peering"


def refresh_peering(memo: kopf.Memo) -> None:
    missing = not peering_installed(memo.hub)
    if missing and not memo.peering_missing:
        log.error(PEERING_MISSING)
    elif memo.peering_missing and not missing:
        log.info("the ClusterKopfPeering CRD is installed: peering resumes")
    memo.peering_missing = missing


def _load_settings() -> settings.Settings:
    try:
        return settings.load()
    except ValueError as error:
        raise kopf.PermanentError(f"invalid GOVCLOUD_* setting: {error}") from error


def queue_for(memo: kopf.Memo, kind: str, work: Any) -> queue.Coalescer:
    """The work queue of one kind, made on first use inside the operator's event loop."""
    queues: dict[str, queue.Coalescer] = memo.queues
    if kind not in queues:
        queues[kind] = queue.Coalescer(guarded(memo, kind, work), concurrency=memo.config.workers)
    return queues[kind]


def guarded(memo: kopf.Memo, kind: str, work: Any) -> Any:
    """`work` whose failures are never silent: each is counted (`result="error"`), said in a
    Warning Event on the object, and retried with per-object exponential backoff."""

    async def run(key: str) -> None:
        try:
            await work(key)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # any bug or API failure in a pass; the operator goes on
            failed(memo, kind, key, error)
        else:
            memo.failures.pop(f"{kind}/{key}", None)

    return run


def failed(memo: kopf.Memo, kind: str, key: str, error: Exception) -> None:
    failures = memo.failures.get(f"{kind}/{key}", 0) + 1
    memo.failures[f"{kind}/{key}"] = failures
    delay = queue.backoff(failures)
    log.exception(
        "%s %s: the pass failed (%d in a row); retrying in %.0fs", kind, key, failures, delay
    )
    memo.recorder.reconciles.labels(kind=kind, result="error").inc()
    message = logs.redact(
        f"the pass failed ({type(error).__name__}: {error}); retrying in {delay:.0f}s"
    )
    target: Any = reference(kind, key)
    kopf.event(target, type="Warning", reason="ReconcileError", message=message[:1000])
    call_later(memo, f"{kind}/{key}", delay, memo.queues[kind].request, key)


def reference(kind: str, key: str) -> dict[str, Any]:
    """Enough of the object for an Event: `key` is "name" or "namespace/name"."""
    namespace, _, name = key.rpartition("/")
    metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": constants.API_VERSION, "kind": kind, "metadata": metadata}


async def run_in_executor(memo: kopf.Memo, function: Any, *args: Any) -> Any:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(memo.executor, function, *args)


async def run_probe(memo: kopf.Memo, function: Any, *args: Any) -> Any:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(memo.probe_executor, function, *args)


def queue_for_probes(memo: kopf.Memo, kind: str, work: Any) -> queue.Coalescer:
    """Like `queue_for`, bounded by the probe concurrency instead of the workers."""
    queues: dict[str, queue.Coalescer] = memo.queues
    if kind not in queues:
        queues[kind] = queue.Coalescer(
            guarded(memo, kind, work), concurrency=memo.config.probe_concurrency
        )
    return queues[kind]


def call_later(memo: kopf.Memo, key: str, delay: float, callback: Any, *args: Any) -> None:
    """Run `callback(*args)` once `delay` seconds have passed, replacing an earlier one for `key`.

    Nothing here owns an asyncio timer: the kind's kopf timer calls `fire_due` for the object,
    and kopf pauses its timers on a replica that is not the active peer, so a standby never
    acts on an old schedule.
    """
    due: dict[str, tuple[float, Any, tuple[Any, ...]]] = memo.due
    due[key] = (time.monotonic() + delay, callback, args)


def cancel_timer(memo: kopf.Memo, key: str) -> None:
    memo.due.pop(key, None)


def fire_due(memo: kopf.Memo, key: str) -> bool:
    """Run the callback scheduled for `key` if its time has come; whether one ran."""
    entry = memo.due.get(key)
    if entry is None or entry[0] > time.monotonic():
        return False
    memo.due.pop(key, None)
    entry[1](*entry[2])
    return True


@kopf.on.cleanup()
async def shutdown(memo: kopf.Memo, **_: Any) -> None:
    for pending in getattr(memo, "queues", {}).values():
        pending.cancel_all()
    getattr(memo, "due", {}).clear()
    for name in ("executor", "probe_executor"):
        executor = getattr(memo, name, None)
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
