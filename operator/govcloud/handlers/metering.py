"""Metering handlers: ResourceQuota events feed the usage cache; a timer on RateCard default ticks.

The timer hangs on the one RateCard (`default`) so that kopf peering runs it on the active
replica only, and it gets the card's body for free: a tick reads no more than two LISTs on
the hub, plus one bounded LIST per sub-center that has tenants placed on it.
"""

from __future__ import annotations

import concurrent.futures
import copy
import logging
import time
from datetime import UTC, datetime
from typing import Any

import kopf

from govcloud import constants, settings
from govcloud.api.v1alpha1 import ratecard
from govcloud.billing import usage
from govcloud.handlers import startup
from govcloud.reconcile import metering

log = logging.getLogger(__name__)

MANAGED: dict[str, Any] = {
    constants.LABEL_MANAGED_BY: constants.MANAGED_BY,
    constants.LABEL_TENANT: kopf.PRESENT,
}
CACHE = "usage_cache"
SITES = "metering_sites"
SITE_EXECUTOR = "metering_site_executor"
UNREADABLE = "metering_unreadable"
# The first tick comes soon after start (the watch has filled the cache by then), not a whole
# interval later: a restarted operator bills its gap promptly.
FIRST_TICK_MAX_DELAY = 10.0


async def make_cache(memo: kopf.Memo, **_: Any) -> None:
    """One cache for the operator: kopf gives each object a shallow copy of this memo."""
    memo[CACHE] = usage.UsageCache()
    memo[UNREADABLE] = [()]
    # Sub-center reads get threads of their own: a site that does not answer holds one of
    # these (at most one per site), never a reconcile or probe thread.
    executor = concurrent.futures.ThreadPoolExecutor(
        max_workers=memo.config.probe_concurrency, thread_name_prefix="metering-site"
    )
    memo[SITE_EXECUTOR] = executor
    memo[SITES] = metering.SiteReader(memo.hub, memo.clusters, executor)


async def stop_sites(memo: kopf.Memo, **_: Any) -> None:
    executor = memo.get(SITE_EXECUTOR)
    if executor is not None:
        executor.shutdown(wait=False, cancel_futures=True)


def cache_of(memo: kopf.Memo) -> usage.UsageCache:
    found: usage.UsageCache = memo[CACHE]
    return found


async def quota_changed(
    event: kopf.RawEvent, body: kopf.Body, labels: kopf.Labels, memo: kopf.Memo, **_: Any
) -> None:
    """Every managed ResourceQuota event, stamped with the time it arrived."""
    metadata = body.get("metadata") or {}
    namespace, name = str(metadata.get("namespace")), str(metadata.get("name"))
    now = datetime.now(UTC)
    if event["type"] == "DELETED":
        cache_of(memo).remove(namespace, name, now)
        return
    status = body.get("status") or {}
    cache_of(memo).observe(
        namespace,
        name,
        str(labels.get(constants.LABEL_TENANT)),
        dict(status.get("hard") or (body.get("spec") or {}).get("hard") or {}),
        dict(status.get("used") or {}),
        now,
    )


async def meter(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    recorder = memo.recorder.billing
    card = copy.deepcopy(dict(body))
    with recorder.tick_seconds.time():
        result = await startup.run_in_executor(
            memo, metering.tick, memo.hub, cache_of(memo), card, memo.config, None, memo[SITES]
        )
    recorder.ticks.labels(result="error" if result.errors else "success").inc()
    recorder.record_tick(time.time())
    for tenant, snapshot in result.usage.items():
        recorder.record_usage(tenant, snapshot)
    for target, event in result.events:
        kopf.event(target, type=event.type, reason=event.reason, message=event.message)
    for error in result.errors:
        log.warning("metering: %s", error)
    unreadable = tuple(result.unreadable_sites)
    if unreadable != memo[UNREADABLE][0]:  # said once per change, not once per tick
        memo[UNREADABLE][0] = unreadable
        if unreadable:
            log.warning(
                "metering: sub-centers not read, their tenants are not billed meanwhile: %s",
                "; ".join(unreadable),
            )
        else:
            log.info("metering: every sub-center with tenants is read again")
    if result.conflicts:
        log.info("metering: %d reports were written by someone else; skipped", result.conflicts)


def _is_default(name: str, **_: Any) -> bool:
    return name == ratecard.DEFAULT_NAME


def _register() -> None:
    config = settings.load()
    if not config.billing_enabled:
        return
    kopf.on.startup(id="metering-cache")(make_cache)
    kopf.on.cleanup(id="metering-sites")(stop_sites)
    kopf.on.event("", "v1", "resourcequotas", labels=MANAGED, id="metering-quotas")(quota_changed)
    kopf.timer(
        constants.GROUP,
        constants.VERSION,
        "ratecards",
        interval=config.metering_interval_seconds,
        initial_delay=min(config.metering_interval_seconds, FIRST_TICK_MAX_DELAY),
        when=_is_default,
        id="metering",
    )(meter)


_register()
