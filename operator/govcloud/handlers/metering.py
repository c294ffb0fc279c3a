"""Metering handlers: ResourceQuota events feed the usage cache; a timer on RateCard default ticks.

The timer hangs on the one RateCard (`default`) so that kopf peering runs it on the active
replica only, and it gets the card's body for free: a tick reads no more than two LISTs.
"""

from __future__ import annotations

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


async def make_cache(memo: kopf.Memo, **_: Any) -> None:
    """One cache for the operator: kopf gives each object a shallow copy of this memo."""
    memo[CACHE] = usage.UsageCache()


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
            memo, metering.tick, memo.hub, cache_of(memo), card, memo.config
        )
    recorder.ticks.labels(result="error" if result.errors else "success").inc()
    recorder.record_tick(time.time())
    for tenant, snapshot in result.usage.items():
        recorder.record_usage(tenant, snapshot)
    for target, event in result.events:
        kopf.event(target, type=event.type, reason=event.reason, message=event.message)
    for error in result.errors:
        log.warning("metering: %s", error)
    if result.conflicts:
        log.info("metering: %d reports were written by someone else; skipped", result.conflicts)


def _is_default(name: str, **_: Any) -> bool:
    return name == ratecard.DEFAULT_NAME


def _register() -> None:
    config = settings.load()
    if not config.billing_enabled:
        return
    kopf.on.startup(id="metering-cache")(make_cache)
    kopf.on.event("", "v1", "resourcequotas", labels=MANAGED, id="metering-quotas")(quota_changed)
    kopf.timer(
        constants.GROUP,
        constants.VERSION,
        "ratecards",
        interval=config.metering_interval_seconds,
        initial_delay=config.metering_interval_seconds,
        when=_is_default,
        id="metering",
    )(meter)


_register()
