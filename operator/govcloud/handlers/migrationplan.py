"""MigrationPlan handlers: every change of a plan queues one pass; busy plans are polled."""

from __future__ import annotations

from typing import Any

import kopf

from govcloud import constants, settings
from govcloud.handlers import startup
from govcloud.reconcile import migration

PLURAL = "migrationplans"
KIND = "MigrationPlan"


def _queue(memo: kopf.Memo) -> Any:
    async def work(key: str) -> None:
        await reconcile(key, memo)

    return startup.queue_for(memo, KIND, work)


async def reconcile(key: str, memo: kopf.Memo) -> None:
    namespace, _, name = key.partition("/")
    recorder = memo.recorder
    with recorder.reconcile_seconds.labels(kind=KIND).time():
        result = await startup.run_in_executor(
            memo, migration.reconcile, memo.hub, memo.clusters, namespace, name, memo.config
        )
    recorder.reconciles.labels(kind=KIND, result=result.outcome).inc()
    if result.outcome == "deleted":
        recorder.forget_migration(key)
        startup.cancel_timer(memo, f"{KIND}/{key}")
        return
    if result.snapshot is not None:
        recorder.record_migration(key, result.snapshot)
    if result.body is not None:
        for event in result.events:
            kopf.event(result.body, type=event.type, reason=event.reason, message=event.message)
    if result.requeue is not None:
        startup.call_later(memo, f"{KIND}/{key}", result.requeue, _queue(memo).request, key)


@kopf.on.event(constants.GROUP, constants.VERSION, PLURAL)
async def plan_changed(
    event: kopf.RawEvent, name: str, namespace: str | None, memo: kopf.Memo, **_: Any
) -> None:
    key = f"{namespace}/{name}"
    if event["type"] == "DELETED":
        memo.recorder.forget_migration(key)
    _queue(memo).request(key)  # a deleted plan's pass updates its tenant's roll-up


@kopf.timer(constants.GROUP, constants.VERSION, PLURAL, interval=settings.load().resync_seconds)
async def plan_resync(name: str, namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    _queue(memo).request(f"{namespace}/{name}")
