"""ResourceRequest handlers: a request event queues one pass; a decision re-caps its tenant."""

from __future__ import annotations

from typing import Any

import kopf

from govcloud import constants, settings
from govcloud.handlers import cloudtenant, startup
from govcloud.reconcile import request as requests

KIND = requests.KIND


def _queue(memo: kopf.Memo) -> Any:
    async def work(key: str) -> None:
        await reconcile(key, memo)

    return startup.queue_for(memo, KIND, work)


async def reconcile(key: str, memo: kopf.Memo) -> None:
    namespace, _, name = key.partition("/")
    recorder = memo.recorder
    with recorder.reconcile_seconds.labels(kind=KIND).time():
        result = await startup.run_in_executor(
            memo, requests.reconcile, memo.hub, namespace, name, memo.config
        )
    recorder.reconciles.labels(kind=KIND, result=result.outcome).inc()
    if result.body is not None:
        for event in result.events:
            startup.post(memo, result.body, event)
    if result.tenant_affected and result.tenant:
        cloudtenant.request(memo, result.tenant)
    if result.outcome == "deleted":
        startup.forget(memo, KIND, key)
    else:
        startup.next_look(memo, KIND, key)


def request(memo: kopf.Memo, key: str) -> None:
    _queue(memo).request(key)


def _key(obj: dict[str, Any]) -> str:
    return f"{obj['metadata'].get('namespace')}/{obj['metadata']['name']}"


def request_changed(memo: kopf.Memo, event_type: str, obj: dict[str, Any]) -> None:
    key = _key(obj)
    if event_type == "DELETED":
        startup.forget(memo, KIND, key)
        tenant = (obj.get("status") or {}).get("tenant")
        if tenant:  # an approved request taken back no longer moves the cap
            cloudtenant.request(memo, tenant)
        return
    request(memo, key)


def look_at_every_request(memo: kopf.Memo) -> None:
    for item in startup.cached(memo, constants.API_VERSION, KIND):
        request(memo, _key(item))


def _register() -> None:
    if not settings.load().billing_enabled:
        return
    startup.requester(KIND)(request)
    startup.route(KIND)(request_changed)
    startup.on_activate(look_at_every_request)


_register()
