"""BackupRestore handlers: a request's event, or one of the Velero Restore it made, queues one
pass; a request that ends is counted once in govcloud_backup_restores_total."""

from __future__ import annotations

from typing import Any

import kopf

from govcloud import constants
from govcloud.handlers import startup
from govcloud.reconcile import backuprestore, events

KIND = backuprestore.KIND


def _queue(memo: kopf.Memo) -> Any:
    async def work(key: str) -> None:
        await reconcile(key, memo)

    return startup.queue_for(memo, KIND, work)


async def reconcile(key: str, memo: kopf.Memo) -> None:
    namespace, _, name = key.partition("/")
    recorder = memo.recorder
    with recorder.reconcile_seconds.labels(kind=KIND).time():
        result = await startup.run_in_executor(
            memo, backuprestore.reconcile, memo.hub, namespace, name, memo.config
        )
    recorder.reconciles.labels(kind=KIND, result=result.outcome).inc()
    if result.body is not None:
        for event in events.coalesce(result.events):
            startup.post(memo, result.body, event)
    if result.finished is not None:
        recorder.restores.count(result.tenant, result.finished)
    if result.outcome == "deleted":
        startup.forget(memo, KIND, key)
    else:
        startup.next_look(memo, KIND, key)


@startup.requester(KIND)
def request(memo: kopf.Memo, key: str) -> None:
    _queue(memo).request(key)


@startup.route(KIND)
def restore_requested(memo: kopf.Memo, event_type: str, obj: dict[str, Any]) -> None:
    key = f"{obj['metadata'].get('namespace')}/{obj['metadata']['name']}"
    if event_type == "DELETED":
        startup.forget(memo, KIND, key)
        return
    request(memo, key)


@startup.route(backuprestore.RESTORE_EVENTS)
def velero_restore_changed(memo: kopf.Memo, _event_type: str, obj: dict[str, Any]) -> None:
    """Velero moved a Restore of the operator's on: its request reports it."""
    key = backuprestore.request_of(obj)
    if key is not None:
        request(memo, key)


@startup.on_activate
def look_at_every_request(memo: kopf.Memo) -> None:
    for item in startup.cached(memo, constants.API_VERSION, KIND):
        request(memo, f"{item['metadata'].get('namespace')}/{item['metadata']['name']}")
