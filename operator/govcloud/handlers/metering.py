"""Metering handlers: ResourceQuota events feed the usage cache; the scheduler ticks.

Ticks run on the leading replica only, while RateCard `default` exists: a tick reads the card
and the tenants from the hub's cache, the API server's time (one GET), one LIST of
UsageReports, plus one bounded LIST per sub-center that has tenants placed on it. The annual
assessment's metrics come from the same tick: the year's earlier months are held per tenant
(one more LIST at start and once a month), plans come from the cache. Usage is
stamped with the API server's time too (the node's clock corrected by the offset the last
reading showed), so a node clock that is wrong neither closes months nor shifts usage.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from typing import Any

import kopf

from govcloud import constants, settings
from govcloud.api.v1alpha1 import ratecard
from govcloud.billing import assessment, usage
from govcloud.handlers import resourceplan, startup
from govcloud.k8s import client
from govcloud.reconcile import metering

log = logging.getLogger(__name__)

KIND = "Metering"  # the scheduler's entry for the ticks
CACHE = "usage_cache"
EARLIER = "assessment_earlier_months"
CLOCK = "metering_clock"
SITES = "metering_sites"
SITE_EXECUTOR = "metering_site_executor"
UNREADABLE = "metering_unreadable"
# The first tick comes soon after start (the watch has filled the cache by then), not a whole
# interval later: a restarted operator bills its gap promptly.
FIRST_TICK_MAX_DELAY = 10.0


async def make_cache(memo: kopf.Memo, **_: Any) -> None:
    """One cache for the operator: kopf gives each object a shallow copy of this memo."""
    cache_of(memo)
    earlier_of(memo)
    clock = clock_of(memo)
    memo[UNREADABLE] = [()]
    # Sub-center reads get threads of their own: a site that does not answer holds one of
    # these (at most one per site), never a reconcile or probe thread.
    executor = concurrent.futures.ThreadPoolExecutor(
        max_workers=memo.config.probe_concurrency, thread_name_prefix="metering-site"
    )
    memo[SITE_EXECUTOR] = executor
    memo[SITES] = metering.SiteReader(memo.hub, memo.clusters, executor, clock=clock.now)
    await measure_clock(memo, clock)


async def measure_clock(memo: kopf.Memo, clock: metering.ServerClock) -> None:
    """Read the API server's time before the first quota event is stamped (a standby never
    ticks); best effort: every tick reads it again."""
    try:
        offset = await startup.run_in_executor(memo, clock.measure, memo.hub)
    except Exception as error:  # the tick reads it again, and fails loudly if it must
        unexpected = not isinstance(error, metering.ClockError)
        log.warning("metering: %s; the first tick reads it again", error, exc_info=unexpected)
        return
    if offset:
        log.warning(
            "metering: the API server's clock is %s ahead of this node's (negative: behind);"
            " billing follows the API server's",
            offset,
        )


async def stop_sites(memo: kopf.Memo, **_: Any) -> None:
    executor = memo.get(SITE_EXECUTOR)
    if executor is not None:
        executor.shutdown(wait=False, cancel_futures=True)


def cache_of(memo: kopf.Memo) -> usage.UsageCache:
    """The usage cache, made by whichever comes first: start-up or the first quota event."""
    found: usage.UsageCache = memo.setdefault(CACHE, usage.UsageCache())
    return found


def earlier_of(memo: kopf.Memo) -> assessment.EarlierMonths:
    """Per unit, the current year's earlier months the assessment metrics count (shared like
    the cache)."""
    found: assessment.EarlierMonths = memo.setdefault(EARLIER, assessment.EarlierMonths())
    return found


def clock_of(memo: kopf.Memo) -> metering.ServerClock:
    """The API server's time as this replica knows it (shared like the cache)."""
    found: metering.ServerClock = memo.setdefault(CLOCK, metering.ServerClock())
    return found


def quota_changed(memo: kopf.Memo, event_type: str, obj: dict[str, Any]) -> None:
    """Every managed ResourceQuota event, stamped with the time it arrived (on a standby
    too: the usage it holds is what a replica that takes over bills from)."""
    metadata = obj.get("metadata") or {}
    tenant = (metadata.get("labels") or {}).get(constants.LABEL_TENANT)
    if not tenant:
        return
    namespace, name = str(metadata.get("namespace")), str(metadata.get("name"))
    now = clock_of(memo).now()
    if event_type == "DELETED":
        cache_of(memo).remove(namespace, name, now)
        forget_if_gone(memo, str(tenant))
        return
    status = obj.get("status") or {}
    cache_of(memo).observe(
        namespace,
        name,
        str(tenant),
        dict(status.get("hard") or (obj.get("spec") or {}).get("hard") or {}),
        dict(status.get("used") or {}),
        now,
    )


def tenant_changed(memo: kopf.Memo, event_type: str, obj: dict[str, Any]) -> None:
    if event_type == "DELETED":
        forget_if_gone(memo, str(obj["metadata"]["name"]))


def forget_if_gone(memo: kopf.Memo, tenant: str) -> None:
    """Drop a deleted tenant's usage timeline once nothing can bill it any more (no quota left,
    no tick waiting to settle its report), as a tick would; so memory does not grow with
    tenant churn while no RateCard makes ticks run."""
    tenants = memo.hub.informer(constants.API_VERSION, "CloudTenant")
    if tenants is not None and tenants.synced and tenants.store.get(tenant) is None:
        cache_of(memo).forget_if_gone(tenant)
        earlier_of(memo).forget(tenant)


def _queue(memo: kopf.Memo) -> Any:
    async def work(name: str) -> None:
        await meter(name, memo)

    return startup.queue_for(memo, KIND, work)


def request(memo: kopf.Memo, name: str) -> None:
    _queue(memo).request(name)


async def meter(_name: str, memo: kopf.Memo) -> None:
    """One tick, then the next one an interval later (none while RateCard default is gone)."""
    card = await startup.run_in_executor(memo, default_card, memo.hub)
    if card is None:
        return  # RateCard default appearing schedules the next tick (card_changed)
    try:
        await tick(card, memo)
    finally:
        memo.scheduler.at((KIND, ratecard.DEFAULT_NAME), memo.config.metering_interval_seconds)


async def tick(card: dict[str, Any], memo: kopf.Memo) -> None:
    recorder = memo.recorder.billing
    with recorder.tick_seconds.time():
        result = await startup.run_in_executor(
            memo,
            metering.tick,
            memo.hub,
            cache_of(memo),
            card,
            memo.config,
            None,
            memo[SITES],
            clock_of(memo),
            earlier_of(memo),
        )
    recorder.ticks.labels(result="error" if result.errors else "success").inc()
    recorder.record_tick(time.time())
    if result.assessed:  # before the usage: a scrape that sees it sees the assessments too
        recorder.record_assessments(result.assessments)
    for tenant, snapshot in result.usage.items():
        recorder.record_usage(tenant, snapshot)
    for target, event in result.events:
        startup.post(memo, target, event)
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


def default_card(hub: client.Cluster) -> dict[str, Any] | None:
    """RateCard default; None while it, or its CRD, does not exist."""
    try:
        return hub.get(constants.API_VERSION, "RateCard", ratecard.DEFAULT_NAME)
    except client.ApiError as error:
        if error.status == 404:
            return None
        raise


def card_changed(memo: kopf.Memo, event_type: str, obj: dict[str, Any]) -> None:
    """RateCard default appearing starts the ticks (soon, not a whole interval later); any
    change of it re-prices every plan now (their estimated cost), not at their next resync."""
    if obj["metadata"]["name"] != ratecard.DEFAULT_NAME:
        return
    if event_type == "ADDED":
        first_tick(memo)
    resourceplan.look_at_every_plan(memo)


def first_tick(memo: kopf.Memo) -> None:
    delay = min(memo.config.metering_interval_seconds, FIRST_TICK_MAX_DELAY)
    memo.scheduler.at((KIND, ratecard.DEFAULT_NAME), delay, sooner_only=True)


def entries(memo: kopf.Memo) -> list[tuple[str, int]]:
    """The usage cache's per-tenant memory, for govcloud_operator_entries."""
    found = memo.get(CACHE)
    if found is None:
        return []
    sizes = found.sizes()
    return [
        ("usage_tenants", sizes["tenants"]),
        ("usage_points", sizes["points"]),
        ("assessment_earlier_months", len(earlier_of(memo))),
    ]


def _register() -> None:
    config = settings.load()
    if not config.billing_enabled:
        return
    kopf.on.startup(id="metering-cache")(make_cache)
    kopf.on.cleanup(id="metering-sites")(stop_sites)
    startup.route("ResourceQuota", always=True)(quota_changed)
    startup.route("RateCard")(card_changed)
    startup.route("CloudTenant", always=True)(tenant_changed)
    startup.requester(KIND)(request)
    startup.on_activate(first_tick)
    startup.entries_source(entries)


_register()
