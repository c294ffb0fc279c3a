"""CloudTenant handlers: every event of a tenant or of an object it owns queues one reconcile."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import kopf

from govcloud import constants
from govcloud.handlers import startup
from govcloud.reconcile import events, tenant, tenant_lifecycle, tenant_types

log = logging.getLogger(__name__)

PLURAL = "cloudtenants"
KIND = "CloudTenant"
RETRY_SECONDS = 5.0
TICK_SECONDS = 2.5
CRD_DELETION_ATTEMPTS = 12
MANAGED: dict[str, Any] = {
    constants.LABEL_MANAGED_BY: constants.MANAGED_BY,
    constants.LABEL_TENANT: kopf.PRESENT,
}
CHILDREN = (
    ("", "v1", "namespaces"),
    ("", "v1", "resourcequotas"),
    ("", "v1", "limitranges"),
    ("networking.k8s.io", "v1", "networkpolicies"),
    ("rbac.authorization.k8s.io", "v1", "rolebindings"),
    ("rbac.authorization.k8s.io", "v1", "clusterroles"),
    ("rbac.authorization.k8s.io", "v1", "clusterrolebindings"),
)


def _queue(memo: kopf.Memo) -> Any:
    async def work(name: str) -> None:
        await reconcile(name, memo)

    return startup.queue_for(memo, KIND, work)


async def reconcile(name: str, memo: kopf.Memo) -> tenant_types.Result:
    recorder = memo.recorder
    with recorder.reconcile_seconds.labels(kind=KIND).time():
        result: tenant_types.Result = await startup.run_in_executor(
            memo, tenant.reconcile, memo.hub, name, memo.config, None, memo.clusters
        )
    recorder.reconciles.labels(kind=KIND, result=result.outcome).inc()
    memo.last_pass[name] = time.monotonic()
    if result.snapshot is not None:
        recorder.record_tenant(name, result.snapshot)
    elif result.outcome == "deleted":
        recorder.forget_tenant(name)
    body: Any = result.body
    if body is not None:
        for event in events.coalesce(result.events):
            kopf.event(body, type=event.type, reason=event.reason, message=event.message)
    if result.retry:
        startup.call_later(memo, f"{KIND}/{name}", RETRY_SECONDS, _queue(memo).request, name)
    return result


def request(memo: kopf.Memo, name: str) -> None:
    """Queue a reconcile of the tenant `name` (used by other kinds, e.g. after a probe)."""
    _queue(memo).request(name)


@kopf.on.event(constants.GROUP, constants.VERSION, PLURAL)
async def tenant_changed(event: kopf.RawEvent, name: str, memo: kopf.Memo, **_: Any) -> None:
    if event["type"] == "DELETED":
        memo.recorder.forget_tenant(name)
        memo.last_pass.pop(name, None)
        startup.cancel_timer(memo, f"{KIND}/{name}")
        return
    _queue(memo).request(name)


@kopf.timer(constants.GROUP, constants.VERSION, PLURAL, interval=TICK_SECONDS)
async def tenant_tick(name: str, memo: kopf.Memo, **_: Any) -> None:
    """Retries and the level-based resync, on kopf's timer so a standby replica stays idle."""
    if startup.fire_due(memo, f"{KIND}/{name}"):
        return
    last = memo.last_pass.get(name, 0.0)
    if time.monotonic() - last >= memo.config.resync_seconds:
        _queue(memo).request(name)


@kopf.on.delete(constants.GROUP, constants.VERSION, PLURAL)
async def tenant_deleting(name: str, memo: kopf.Memo, **_: Any) -> None:
    """kopf stops an object's timers once its deletion begins, so a finalization that failed
    (CleanupFailed: a namespace that could not be deleted yet, an API error) would wait for an
    unrelated event: kopf retries this handler until the finalization is done."""
    result = await reconcile(name, memo)
    if result.retry:
        raise kopf.TemporaryError(
            f"CloudTenant {name} is not finalized yet; trying again", delay=RETRY_SECONDS
        )


@kopf.on.event(
    "apiextensions.k8s.io",
    "v1",
    "customresourcedefinitions",
    when=lambda name, **_: name == tenant_lifecycle.CRD_NAME,
    id="tenant-crd",
)
async def crd_changed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Deleting the CloudTenant CRD deletes every tenant at once; none is finalized."""
    if not body.get("metadata", {}).get("deletionTimestamp"):
        return
    # kopf may put its finalizer back until it notices the CRD going: repeat while it does.
    for _attempt in range(CRD_DELETION_ATTEMPTS):
        let_go = await startup.run_in_executor(memo, tenant_lifecycle.let_go_all, memo.hub)
        for item in let_go:
            kopf.event(
                item,
                type="Warning",
                reason="CRDDeleted",
                message=tenant_lifecycle.CRD_DELETED_MESSAGE,
            )
        if not let_go:
            return
        await asyncio.sleep(RETRY_SECONDS)


def _register_children() -> None:
    for group, version, plural in CHILDREN:
        kopf.on.event(group, version, plural, labels=MANAGED, id=f"tenant-child-{plural}")(
            child_changed
        )


async def child_changed(labels: kopf.Labels, memo: kopf.Memo, **_: Any) -> None:
    owner = labels.get(constants.LABEL_TENANT)
    if owner:
        _queue(memo).request(owner)


_register_children()
