"""SubCenter handlers: a new site or spec probes at once; then each on its own interval."""

from __future__ import annotations

from typing import Any

import kopf

from govcloud import constants
from govcloud.handlers import cloudtenant, startup
from govcloud.reconcile import subcenter

PLURAL = "subcenters"
KIND = "SubCenter"
RETRY_SECONDS = 10.0


def _queue(memo: kopf.Memo) -> Any:
    async def work(name: str) -> None:
        await probe(name, memo)

    return startup.queue_for_probes(memo, KIND, work)


async def probe(name: str, memo: kopf.Memo) -> None:
    recorder = memo.recorder
    try:
        with recorder.reconcile_seconds.labels(kind=KIND).time():
            result = await startup.run_probe(
                memo, subcenter.reconcile, memo.hub, memo.clusters, name
            )
    except Exception:
        # A pass that fails (the hub briefly unreachable, a bug) must not end the site's probes.
        recorder.reconciles.labels(kind=KIND, result="exception").inc()
        startup.call_later(memo, f"{KIND}/{name}", RETRY_SECONDS, _queue(memo).request, name)
        raise
    recorder.reconciles.labels(kind=KIND, result=result.outcome).inc()
    if result.snapshot is not None:
        recorder.record_subcenter(name, result.snapshot)
    if result.body is not None:
        for event in result.events:
            kopf.event(result.body, type=event.type, reason=event.reason, message=event.message)
    if result.outcome == "deleted":
        recorder.forget_subcenter(name)
        startup.cancel_timer(memo, f"{KIND}/{name}")
        return
    startup.call_later(memo, f"{KIND}/{name}", result.interval, _queue(memo).request, name)
    # Drift in a sub-center raises no event on the hub: each probe resyncs its tenants.
    for tenant in result.placed_tenants:
        cloudtenant.request(memo, tenant)


@kopf.timer(constants.GROUP, constants.VERSION, PLURAL, interval=1.0)
async def subcenter_tick(name: str, memo: kopf.Memo, **_: Any) -> None:
    """Probes on each site's own interval, on kopf's timer so a standby replica stays idle."""
    startup.fire_due(memo, f"{KIND}/{name}")


def _seen(memo: kopf.Memo) -> dict[str, tuple[Any, ...]]:
    """The `subcenter.wake_key` of each SubCenter when its last immediate probe was queued."""
    seen: dict[str, tuple[Any, ...]] = memo.setdefault("subcenter_seen", {})
    return seen


@kopf.on.event(constants.GROUP, constants.VERSION, PLURAL)
async def subcenter_changed(event: kopf.RawEvent, name: str, memo: kopf.Memo, **_: Any) -> None:
    """Probe at once a site seen for the first time, whose spec changed or whose deletion began.

    Every status patch of a probe is an event of the SubCenter too: probing again for it would
    patch again, a loop. Those wait for the site's interval (`subcenter_tick`).
    """
    if event["type"] == "DELETED":
        memo.recorder.forget_subcenter(name)
        memo.clusters.forget(name)
        startup.cancel_timer(memo, f"{KIND}/{name}")
        _seen(memo).pop(name, None)
        return
    key = subcenter.wake_key(event["object"])
    if _seen(memo).get(name) == key:
        return
    _seen(memo)[name] = key
    _queue(memo).request(name)


@kopf.on.event(constants.GROUP, constants.VERSION, cloudtenant.PLURAL, id="subcenter-tenant-gone")
async def tenant_gone(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    """A tenant deleted from a site re-probes the site at once.

    A SubCenter whose deletion waits for its tenants has nothing else to wake it: kopf stops
    an object's timers once its deletion has begun, so `subcenter_tick` no longer runs for it.
    """
    if event["type"] != "DELETED":
        return
    site = ((event["object"].get("spec") or {}).get("placement") or {}).get("subCenter")
    if site:
        _queue(memo).request(str(site))
