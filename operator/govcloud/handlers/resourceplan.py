"""ResourcePlan handlers: a plan event queues one reconcile; a decision re-caps its tenant."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from govcloud import constants, settings
from govcloud.handlers import cloudtenant, startup
from govcloud.reconcile import plan

log = logging.getLogger(__name__)

KIND = plan.KIND


def _queue(memo: kopf.Memo) -> Any:
    async def work(name: str) -> None:
        await reconcile(name, memo)

    return startup.queue_for(memo, KIND, work)


async def reconcile(name: str, memo: kopf.Memo) -> None:
    recorder = memo.recorder
    with recorder.reconcile_seconds.labels(kind=KIND).time():
        result = await startup.run_in_executor(memo, plan.reconcile, memo.hub, name, memo.config)
    recorder.reconciles.labels(kind=KIND, result=result.outcome).inc()
    if result.snapshot is not None and result.tenant:
        recorder.billing.record_plan(result.tenant, result.snapshot)
    if result.body is not None:
        for event in result.events:
            startup.post(memo, result.body, event)
    if result.tenant_affected and result.tenant:
        cloudtenant.request(memo, result.tenant)
    if result.outcome == "deleted":
        startup.forget(memo, KIND, name)
    else:
        startup.next_look(memo, KIND, name)


def request(memo: kopf.Memo, name: str) -> None:
    _queue(memo).request(name)


def plan_changed(memo: kopf.Memo, event_type: str, obj: dict[str, Any]) -> None:
    name = obj["metadata"]["name"]
    if event_type == "DELETED":
        startup.forget(memo, KIND, name)
        tenant = (obj.get("spec") or {}).get("tenant")
        if tenant:
            memo.recorder.billing.forget_plan(tenant)
            cloudtenant.request(memo, tenant)
        return
    request(memo, name)


def look_at_every_plan(memo: kopf.Memo) -> None:
    for item in startup.cached(memo, constants.API_VERSION, KIND):
        request(memo, item["metadata"]["name"])


def _register() -> None:
    if not settings.load().billing_enabled:
        return
    startup.requester(KIND)(request)
    startup.route(KIND)(plan_changed)
    startup.on_activate(look_at_every_plan)


_register()
