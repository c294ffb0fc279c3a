"""ResourcePlan handlers: a plan event queues one reconcile; a decision re-caps its tenant."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from govcloud import constants, settings
from govcloud.handlers import cloudtenant, startup
from govcloud.reconcile import plan

log = logging.getLogger(__name__)

PLURAL = "resourceplans"
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
            kopf.event(result.body, type=event.type, reason=event.reason, message=event.message)
    if result.tenant_affected and result.tenant:
        cloudtenant.request(memo, result.tenant)


async def plan_changed(
    event: kopf.RawEvent, name: str, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    if event["type"] == "DELETED":
        tenant = (body.get("spec") or {}).get("tenant")
        if tenant:
            memo.recorder.billing.forget_plan(tenant)
            cloudtenant.request(memo, tenant)
        return
    _queue(memo).request(name)


async def plan_resync(name: str, memo: kopf.Memo, **_: Any) -> None:
    _queue(memo).request(name)


def _register() -> None:
    config = settings.load()
    if not config.billing_enabled:
        return
    kopf.on.event(constants.GROUP, constants.VERSION, PLURAL, id="plan-changed")(plan_changed)
    kopf.timer(
        constants.GROUP,
        constants.VERSION,
        PLURAL,
        interval=config.resync_seconds,
        id="plan-resync",
    )(plan_resync)


_register()
