"""NetworkGrant handlers: a grant event queues one pass; the scheduler looks again at its
expiry; a deleted grant's policies go at once, and on activation those of grants deleted
while nobody watched."""

from __future__ import annotations

from typing import Any

import kopf

from govcloud import constants
from govcloud.desired import networkgrants
from govcloud.handlers import startup
from govcloud.reconcile import events
from govcloud.reconcile import networkgrant as grants

KIND = grants.KIND


def _queue(memo: kopf.Memo) -> Any:
    async def work(key: str) -> None:
        await reconcile(key, memo)

    return startup.queue_for(memo, KIND, work)


async def reconcile(key: str, memo: kopf.Memo) -> None:
    namespace, _, name = key.partition("/")
    recorder = memo.recorder
    with recorder.reconcile_seconds.labels(kind=KIND).time():
        result = await startup.run_in_executor(
            memo, grants.reconcile, memo.hub, namespace, name, memo.config
        )
    recorder.reconciles.labels(kind=KIND, result=result.outcome).inc()
    if result.body is not None:
        for event in events.coalesce(result.events):
            startup.post(memo, result.body, event)
    if result.service is not None:
        for event in events.coalesce(result.service_events):
            startup.post(memo, result.service, event)
    if result.snapshot is not None:
        recorder.grants.record(key, result.snapshot)
    if result.outcome == "deleted":
        recorder.grants.forget(key)
        startup.forget(memo, KIND, key)
    else:
        startup.next_look(memo, KIND, key, result.next_look)


@startup.requester(KIND)
def request(memo: kopf.Memo, key: str) -> None:
    _queue(memo).request(key)


def _key(obj: dict[str, Any]) -> str:
    return f"{obj['metadata'].get('namespace')}/{obj['metadata']['name']}"


@startup.route(KIND)
def grant_changed(memo: kopf.Memo, event_type: str, obj: dict[str, Any]) -> None:
    key = _key(obj)
    if event_type == "DELETED":
        memo.recorder.grants.forget(key)
        startup.forget(memo, KIND, key)
        uid = str(obj["metadata"].get("uid") or "")
        startup.in_background(memo, grants.withdraw, memo.hub, uid, ())
        return
    request(memo, key)


@startup.route("NetworkPolicy")
def policy_changed(memo: kopf.Memo, _event_type: str, obj: dict[str, Any]) -> None:
    """A grant's policy edited or deleted by hand: its grant's pass repairs or withdraws it."""
    annotations = obj["metadata"].get("annotations") or {}
    grant = annotations.get(networkgrants.ANNOTATION_GRANT)
    labels = obj["metadata"].get("labels") or {}
    if grant and networkgrants.LABEL_GRANT in labels:
        request(memo, grant)


@startup.on_activate
def look_at_every_grant(memo: kopf.Memo) -> None:
    startup.in_background(memo, grants.sweep, memo.hub)
    for item in startup.cached(memo, constants.API_VERSION, KIND):
        request(memo, _key(item))
