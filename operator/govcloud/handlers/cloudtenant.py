"""CloudTenant handlers: every event of a tenant or of an object it owns queues one pass."""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
from typing import Any

import kopf

from govcloud import constants
from govcloud.handlers import startup
from govcloud.reconcile import events, tenant, tenant_lifecycle, tenant_types

log = logging.getLogger(__name__)

KIND = "CloudTenant"
# A pass outlasting this many later deletions is not expected; older names are dropped.
DELETED_KEPT = 1024
RETRY_SECONDS = 5.0
CRD_DELETION_ATTEMPTS = 12
# Every kind the operator writes for a tenant, on the hub and on sub-centers (SITE_EVENTS).
CHILD_KINDS = (
    "Namespace",
    "ResourceQuota",
    "LimitRange",
    "NetworkPolicy",
    "RoleBinding",
    "ClusterRole",
    "ClusterRoleBinding",
    "Schedule",  # Velero's, and the Backups it makes (with the operator's backup.enabled)
    "Backup",
    startup.SITE_EVENTS,
)


def _queue(memo: kopf.Memo) -> Any:
    async def work(name: str) -> None:
        await reconcile(name, memo)

    return startup.queue_for(memo, KIND, work)


def demands(memo: kopf.Memo) -> tenant_types.Demands:
    """Room asked for in tenants' namespaces (refused requests), made on first use."""
    if getattr(memo, "demands", None) is None:
        memo.demands = tenant_types.Demands()
    found: tenant_types.Demands = memo.demands
    return found


async def reconcile(name: str, memo: kopf.Memo) -> tenant_types.Result:
    recorder = memo.recorder
    context = tenant_types.QuotaContext(
        wanted=demands(memo).of(name), leading=lambda: startup.leading(memo)
    )
    run = functools.partial(tenant.reconcile, context=context)
    with recorder.reconcile_seconds.labels(kind=KIND).time():
        result: tenant_types.Result = await startup.run_in_executor(
            memo, run, memo.hub, name, memo.config, None, memo.clusters
        )
    recorder.reconciles.labels(kind=KIND, result=result.outcome).inc()
    if result.outcome == "deleted" or (result.snapshot is not None and name in deleted(memo)):
        # Deleted, or deleted while this pass ran (its DELETED event already forgot it):
        # recording now would bring back series nothing would ever remove.
        recorder.forget_tenant(name)
    elif result.snapshot is not None:  # a pass that converged: its backups too (None: none)
        recorder.record_tenant(name, result.snapshot)
        recorder.backup.record(name, result.backup)
    body: Any = result.body
    if body is not None:
        for event in events.coalesce(result.events):
            startup.post(memo, body, event)
    if result.outcome == "deleted":
        startup.forget(memo, KIND, name)
    else:
        delays = [RETRY_SECONDS] if result.retry else []
        if result.due_in is not None:  # its backups' objective would be missed then
            delays.append(result.due_in)
        startup.next_look(memo, KIND, name, min(delays) if delays else None)
    return result


class Deleted:
    """The tenants whose DELETED event came last, the newest DELETED_KEPT of them: a pass that
    was running when one came must not record its series again."""

    def __init__(self) -> None:
        self._names: collections.OrderedDict[str, None] = collections.OrderedDict()

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def add(self, name: str) -> None:
        self._names[name] = None
        self._names.move_to_end(name)
        while len(self._names) > DELETED_KEPT:
            self._names.popitem(last=False)

    def discard(self, name: str) -> None:
        self._names.pop(name, None)


def deleted(memo: kopf.Memo) -> Deleted:
    """The tenants deleted last (made on first use)."""
    if getattr(memo, "deleted_tenants", None) is None:
        memo.deleted_tenants = Deleted()
    found: Deleted = memo.deleted_tenants
    return found


@startup.requester(KIND)
def request(memo: kopf.Memo, name: str) -> None:
    """Queue a pass over the tenant `name` (also used by other kinds, e.g. after a probe)."""
    _queue(memo).request(name)


@startup.route(KIND)
def tenant_changed(memo: kopf.Memo, event_type: str, obj: dict[str, Any]) -> None:
    name = obj["metadata"]["name"]
    if event_type == "DELETED":
        deleted(memo).add(name)
        memo.recorder.forget_tenant(name)
        demands(memo).forget(name)
        startup.forget(memo, KIND, name)
        return
    deleted(memo).discard(name)  # created again under the same name
    request(memo, name)


@startup.route("Event")
def quota_refused(memo: kopf.Memo, event_type: str, obj: dict[str, Any]) -> None:
    """A controller recorded a request that a tenant namespace's quota refused (FailedCreate):
    hold room for it there and look at the tenant now."""
    if event_type == "DELETED":
        return
    refused = tenant.refused_in(memo.hub, obj)
    if refused is not None:
        owner, namespace, requested = refused
        demands(memo).record(owner, namespace, requested)
        request(memo, owner)


def child_changed(memo: kopf.Memo, _event_type: str, obj: dict[str, Any]) -> None:
    owner = (obj["metadata"].get("labels") or {}).get(constants.LABEL_TENANT)
    if owner:
        request(memo, owner)


for _kind in CHILD_KINDS:
    startup.route(_kind)(child_changed)


@startup.on_activate
def look_at_every_tenant(memo: kopf.Memo) -> None:
    for item in startup.cached(memo, constants.API_VERSION, KIND):
        request(memo, item["metadata"]["name"])


@kopf.on.event(
    "apiextensions.k8s.io",
    "v1",
    "customresourcedefinitions",
    when=lambda name, **_: name == tenant_lifecycle.CRD_NAME,
    id="tenant-crd",
)
async def crd_changed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Deleting the CloudTenant CRD deletes every tenant at once; none is finalized."""
    if not body.get("metadata", {}).get("deletionTimestamp") or not memo.active:
        return
    # kopf may put its finalizer back until it notices the CRD going: repeat while it does.
    for _attempt in range(CRD_DELETION_ATTEMPTS):
        let_go = await startup.run_in_executor(memo, tenant_lifecycle.let_go_all, memo.hub)
        for item in let_go:
            startup.post(
                memo,
                item,
                events.Event("Warning", "CRDDeleted", tenant_lifecycle.CRD_DELETED_MESSAGE),
            )
        if not let_go:
            return
        await asyncio.sleep(RETRY_SECONDS)
