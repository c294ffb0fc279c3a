"""RecoveryDrill handlers: a drill event queues one pass; a running drill is looked at again
every few seconds (its Restore lives on another cluster, not in a cache) and at its timeout."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import kopf

from govcloud import constants, metrics
from govcloud.handlers import startup
from govcloud.reconcile import events
from govcloud.reconcile import recoverydrill as drills

KIND = drills.KIND


def _queue(memo: kopf.Memo) -> Any:
    async def work(key: str) -> None:
        await reconcile(key, memo)

    return startup.queue_for(memo, KIND, work)


async def reconcile(key: str, memo: kopf.Memo) -> None:
    recorder = memo.recorder
    with recorder.reconcile_seconds.labels(kind=KIND).time():
        result = await startup.run_in_executor(
            memo, drills.reconcile, memo.hub, memo.clusters, key, memo.config
        )
    recorder.reconciles.labels(kind=KIND, result=result.outcome).inc()
    if result.body is not None:
        for event in events.coalesce(result.events):
            startup.post(memo, result.body, event)
    if result.outcome == "deleted":
        startup.forget(memo, KIND, key)
    else:
        startup.next_look(memo, KIND, key, result.next_look)


@startup.requester(KIND)
def request(memo: kopf.Memo, key: str) -> None:
    _queue(memo).request(key)


@startup.route(KIND)
def drill_changed(memo: kopf.Memo, event_type: str, obj: dict[str, Any]) -> None:
    key = obj["metadata"]["name"]
    if event_type == "DELETED":
        startup.forget(memo, KIND, key)
        return
    request(memo, key)


@startup.on_activate
def look_at_every_drill(memo: kopf.Memo) -> None:
    for item in startup.cached(memo, constants.API_VERSION, KIND):
        request(memo, item["metadata"]["name"])
    if memo.config.backup_enabled:
        memo.recorder.watch_drills(lambda: records(memo))


def records(memo: kopf.Memo) -> list[metrics.DrillRecord]:
    """Each tenant's drill record, from the hub's cache, for /metrics."""
    found = drills.records(
        startup.cached(memo, constants.API_VERSION, "CloudTenant"),
        startup.cached(memo, constants.API_VERSION, KIND),
        memo.config,
        datetime.now(UTC),
    )
    return [
        metrics.DrillRecord(
            tenant=item.tenant,
            last_success=item.last_success,
            recovery_time=item.recovery_time,
            newest_finished=item.newest_finished,
            failed=item.failed,
            overdue=item.overdue,
        )
        for item in found
    ]
