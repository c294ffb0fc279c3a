"""SubCenter handlers: a new site or spec probes at once; then each on its own interval."""

from __future__ import annotations

import functools
from typing import Any

import kopf

from govcloud import constants
from govcloud.handlers import cloudtenant, startup
from govcloud.reconcile import placement, subcenter

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
        memo.scheduler.at((KIND, name), RETRY_SECONDS)
        raise
    recorder.reconciles.labels(kind=KIND, result=result.outcome).inc()
    if result.snapshot is not None:
        recorder.record_subcenter(name, result.snapshot)
    if result.body is not None:
        for event in result.events:
            startup.post(memo, result.body, event)
    if result.outcome == "deleted":
        recorder.forget_subcenter(name)
        startup.forget(memo, KIND, name)
        return
    memo.scheduler.at((KIND, name), result.interval)  # the site's own probe interval
    # Only a changed verdict on the site wakes its tenants (to report it, or to converge
    # again): a probe of a dead site must not queue a pass per tenant every interval. Their
    # own resync heals drift the site's caches missed.
    if result.wake_tenants:
        for tenant in result.placed_tenants:
            cloudtenant.request(memo, tenant)


@startup.requester(KIND)
def request(memo: kopf.Memo, name: str) -> None:
    _queue(memo).request(name)


def _seen(memo: kopf.Memo) -> dict[str, tuple[Any, ...]]:
    """The `subcenter.wake_key` of each SubCenter when its last immediate probe was queued."""
    seen: dict[str, tuple[Any, ...]] = memo.setdefault("subcenter_seen", {})
    return seen


@startup.route(KIND)
def subcenter_changed(memo: kopf.Memo, event_type: str, obj: dict[str, Any]) -> None:
    """Probe at once a site seen for the first time, whose spec changed or whose deletion began.

    Every status patch of a probe is an event of the SubCenter too: probing again for it would
    patch again, a loop. Those wait for the site's interval (the scheduler).
    """
    name = obj["metadata"]["name"]
    if event_type == "DELETED":
        memo.recorder.forget_subcenter(name)
        subcenter.forget(memo.clusters, name)
        startup.forget(memo, KIND, name)
        _seen(memo).pop(name, None)
        return
    key = subcenter.wake_key(obj)
    if _seen(memo).get(name) == key:
        return
    _seen(memo)[name] = key
    request(memo, name)


@startup.route(cloudtenant.KIND)
def tenant_gone(memo: kopf.Memo, event_type: str, obj: dict[str, Any]) -> None:
    """A tenant deleted from a site re-probes the site at once (a SubCenter whose deletion
    waits for its tenants goes as soon as the last one has gone)."""
    if event_type != "DELETED":
        return
    placement.ADMISSIONS.forget_tenant(placement.tenant_key(obj))
    site = ((obj.get("spec") or {}).get("placement") or {}).get("subCenter")
    if site:
        request(memo, str(site))


@startup.on_activate
def fence_admissions(memo: kopf.Memo) -> None:
    """Site admissions are made only while this replica holds the Lease (checked under the
    site's lock, right before each decision), with the sites' bulkhead and LIST cap set;
    admissions of an earlier term are forgotten (the statuses are the truth)."""
    placement.ADMISSIONS.reset()
    placement.ADMISSIONS.fence = functools.partial(startup.leading, memo)
    memo.clusters.configure(site_calls=memo.config.site_calls, list_cap=memo.config.site_list_cap)


@startup.entries_source
def admissions(memo: kopf.Memo) -> list[tuple[str, int]]:
    """Site admissions not yet in a status, and the sites' wake keys, for
    govcloud_operator_entries."""
    return [("site_admissions", placement.ADMISSIONS.size()), ("sites_seen", len(_seen(memo)))]


@startup.on_activate
def look_at_every_site(memo: kopf.Memo) -> None:
    _seen(memo).clear()
    for item in startup.cached(memo, constants.API_VERSION, KIND):
        _seen(memo)[item["metadata"]["name"]] = subcenter.wake_key(item)
        request(memo, item["metadata"]["name"])
