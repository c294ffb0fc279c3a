"""MigrationPlan handlers: every change of a plan queues one pass; busy plans are polled."""

from __future__ import annotations

import time
from typing import Any

import kopf

from govcloud import constants
from govcloud.handlers import startup
from govcloud.reconcile import migration

PLURAL = "migrationplans"
KIND = "MigrationPlan"
TICK_SECONDS = 1.0


def _queue(memo: kopf.Memo) -> Any:
    async def work(key: str) -> None:
        await reconcile(key, memo)

    return startup.queue_for(memo, KIND, work)


async def reconcile(key: str, memo: kopf.Memo) -> migration.Result:
    namespace, _, name = key.partition("/")
    recorder = memo.recorder
    with recorder.reconcile_seconds.labels(kind=KIND).time():
        result: migration.Result = await startup.run_in_executor(
            memo, migration.reconcile, memo.hub, memo.clusters, namespace, name, memo.config
        )
    recorder.reconciles.labels(kind=KIND, result=result.outcome).inc()
    memo.last_pass[f"{KIND}/{key}"] = time.monotonic()
    if result.outcome == "deleted":
        recorder.forget_migration(key)
        startup.cancel_timer(memo, f"{KIND}/{key}")
        memo.last_pass.pop(f"{KIND}/{key}", None)
    elif result.snapshot is not None:
        recorder.record_migration(key, result.snapshot)
    body: Any = result.body
    if body is not None:
        for event in result.events:
            kopf.event(body, type=event.type, reason=event.reason, message=event.message)
    if result.requeue is not None and result.outcome not in ("deleted", "finalizing"):
        startup.call_later(memo, f"{KIND}/{key}", result.requeue, _queue(memo).request, key)
    return result


@kopf.on.event(constants.GROUP, constants.VERSION, PLURAL)
async def plan_changed(
    event: kopf.RawEvent, name: str, namespace: str | None, memo: kopf.Memo, **_: Any
) -> None:
    key = f"{namespace}/{name}"
    if event["type"] == "DELETED":
        memo.recorder.forget_migration(key)
    _queue(memo).request(key)  # a deleted plan's pass updates its tenant's roll-up


@kopf.timer(constants.GROUP, constants.VERSION, PLURAL, interval=TICK_SECONDS)
async def plan_tick(name: str, namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    """Requeues (busy plans, windows, deadlines) and the level-based resync, on kopf's timer
    so a standby replica stays idle."""
    key = f"{namespace}/{name}"
    if startup.fire_due(memo, f"{KIND}/{key}"):
        return
    last = memo.last_pass.get(f"{KIND}/{key}", 0.0)
    if time.monotonic() - last >= memo.config.resync_seconds:
        _queue(memo).request(key)


@kopf.on.delete(constants.GROUP, constants.VERSION, PLURAL)
async def plan_deleting(name: str, namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    """kopf stops an object's timers once its deletion begins: a deletion that must wait (the
    source scaling back up before the copies go) is retried by kopf until it is done."""
    result = await reconcile(f"{namespace}/{name}", memo)
    if result.outcome == "finalizing":
        raise kopf.TemporaryError(result.message, delay=memo.config.migration_poll_seconds)
