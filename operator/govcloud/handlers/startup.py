"""Start-up and clean-up: settings, API clients, the metrics server and the resync loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from typing import Any

import kopf
import prometheus_client

from govcloud import constants, metrics, settings
from govcloud.k8s import client
from govcloud.reconcile import queue

log = logging.getLogger(__name__)


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config = _load_settings()
    settings.posting.reporting_component = constants.MANAGED_BY
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.peering.mandatory = not config.standalone
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
    memo.queues = {}
    if config.metrics_port:
        prometheus_client.start_http_server(
            config.metrics_port, addr=config.metrics_host, registry=registry
        )
        log.info("serving /metrics on %s:%s", config.metrics_host, config.metrics_port)


def _load_settings() -> settings.Settings:
    try:
        return settings.load()
    except ValueError as error:
        raise kopf.PermanentError(f"invalid GOVCLOUD_* setting: {error}") from error


def queue_for(memo: kopf.Memo, kind: str, work: Any) -> queue.Coalescer:
    """The work queue of one kind, made on first use inside the operator's event loop."""
    queues: dict[str, queue.Coalescer] = memo.queues
    if kind not in queues:
        queues[kind] = queue.Coalescer(work, concurrency=memo.config.workers)
    return queues[kind]


async def run_in_executor(memo: kopf.Memo, function: Any, *args: Any) -> Any:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(memo.executor, function, *args)


@kopf.on.cleanup()
async def shutdown(memo: kopf.Memo, **_: Any) -> None:
    for pending in getattr(memo, "queues", {}).values():
        pending.cancel_all()
    executor = getattr(memo, "executor", None)
    if executor is not None:
        executor.shutdown(wait=False, cancel_futures=True)
