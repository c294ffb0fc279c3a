"""MigrationPlan handlers: every change of a plan queues one pass; busy plans are polled."""

from __future__ import annotations

from typing import Any

import kopf

from govcloud import constants
from govcloud.handlers import startup
from govcloud.reconcile import migration

KIND = "MigrationPlan"


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
    if result.outcome == "deleted":
        recorder.forget_migration(key)
    elif result.snapshot is not None:
        recorder.record_migration(key, result.snapshot)
    body: Any = result.body
    if body is not None:
        for event in result.events:
            startup.post(memo, body, event)
    if result.outcome == "deleted":
        startup.forget(memo, KIND, key)
    else:  # busy plans, windows and deadlines, a deletion that waits; else the resync
        startup.next_look(memo, KIND, key, result.requeue)
    return result


@startup.requester(KIND)
def request(memo: kopf.Memo, key: str) -> None:
    _queue(memo).request(key)


@startup.route(KIND)
def plan_changed(memo: kopf.Memo, event_type: str, obj: dict[str, Any]) -> None:
    metadata = obj["metadata"]
    key = f"{metadata.get('namespace')}/{metadata['name']}"
    if event_type == "DELETED":
        memo.recorder.forget_migration(key)
    request(memo, key)  # a deleted plan's pass updates its tenant's roll-up


@startup.on_activate
def look_at_every_plan(memo: kopf.Memo) -> None:
    for item in startup.cached(memo, constants.API_VERSION, KIND):
        metadata = item["metadata"]
        request(memo, f"{metadata.get('namespace')}/{metadata['name']}")
