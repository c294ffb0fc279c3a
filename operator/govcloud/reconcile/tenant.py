"""CloudTenant reconciler: gather, decide with pure code, apply in a safe order, write status once.

Every pass is level-based: it computes the whole desired state from the spec and converges
to it, so a missed event, a restart or a hand edit all heal the same way. A pass that finds
nothing to change makes no write at all, not even to the status. Which namespaces the tenant
may manage is judged in tenant_namespaces, releasing and deleting them is tenant_lifecycle,
and what all three share (gather, Applier, Result) is tenant_types.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pydantic

from govcloud import constants, metrics
from govcloud.api.v1alpha1 import cloudtenant
from govcloud.billing import plans, statement
from govcloud.desired import (
    compare,
    ledger,
    meta,
    networkpolicies,
    protection,
    quantity,
    quotas,
    rbac,
)
from govcloud.desired import namespaces as desired_namespaces
from govcloud.desired import tenant as desired_tenant
from govcloud.federation import placement as federation_placement
from govcloud.k8s import cache, client, clusters
from govcloud.reconcile import (
    conditions,
    events,
    placement,
    plan,
    tenant_backup,
    tenant_lifecycle,
    tenant_namespaces,
    tenant_types,
)

log = logging.getLogger(__name__)

NAMESPACES_READY = "NamespacesReady"
QUOTA_READY = "QuotaReady"
ACCESS_READY = "AccessReady"
NETWORK_ISOLATED = "NetworkIsolated"
QUOTA_GRANTED = "QuotaGranted"
QUOTA_MISSING = "QuotaMissing"
# How long a pass waits for the quota controller to enforce a new namespace's quota before it
# grants access there (it usually takes well under a second), and how often it looks. It
# looks in the watch-fed cache, which the controller's status write reaches within
# milliseconds: waiting costs the API server nothing.
ENFORCE_DEADLINE = 5.0
ENFORCE_POLL = 0.02
# How long a namespace's quota must have stayed unchanged before a pass rebalances it. A
# quota write makes the quota controller recount the namespace from its own cache, which may
# not hold yet a pod quota admission has just counted: it then reports less than runs, and
# admission lets that many more in (kubernetes/kubernetes#123434). A quota that changed this
# recently may be counting pods right now; it is rebalanced by a later pass.
QUIET_SECONDS = 2.0

Manifest = dict[str, Any]


Event = events.Event


# -- the pass -----------------------------------------------------------------------------


def reconcile(
    hub: client.Cluster,
    name: str,
    settings: Any,
    now: datetime | None = None,
    registry: clusters.ClusterRegistry | None = None,
    *,
    context: tenant_types.QuotaContext | None = None,
) -> tenant_types.Result:
    """One level-based pass over the CloudTenant `name`."""
    now = now or datetime.now(UTC)
    body = hub.get(constants.API_VERSION, tenant_types.KIND, name)
    if body is None:
        return tenant_types.Result(outcome="deleted")
    try:
        spec = cloudtenant.CloudTenantSpec.model_validate(body.get("spec") or {})
    except pydantic.ValidationError as error:
        if body["metadata"].get("deletionTimestamp"):
            return tenant_lifecycle.finalize(hub, hub, body)
        return refuse(hub, body, _validation_message(error), now)
    return reconcile_valid(hub, registry, body, spec, settings, now, context)


def reconcile_valid(
    hub: client.Cluster,
    registry: clusters.ClusterRegistry | None,
    body: Manifest,
    spec: cloudtenant.CloudTenantSpec,
    settings: Any,
    now: datetime,
    context: tenant_types.QuotaContext | None = None,
) -> tenant_types.Result:
    """The pass once the spec is valid: find the tenant's cluster, then converge or finalize."""
    deleting = bool(body["metadata"].get("deletionTimestamp"))
    target = placement.resolve(hub, registry, body, spec, deleting=deleting)
    if target.cluster is None:
        return (
            finalize_unplaced(hub, body, target) if deleting else unplaced(hub, body, target, now)
        )
    if target.unreachable and not deleting:
        return site_unreachable(hub, body, target, target.unreachable, now)
    try:
        if deleting:
            return finalize(hub, target.cluster, body, settings)
        if constants.FINALIZER not in (body["metadata"].get("finalizers") or []):
            if tenant_lifecycle.crd_deleting(
                hub
            ):  # let_go_all took it off: the tenant is about to go
                return tenant_types.Result(outcome="deleted", body=body)
            body = add_finalizer(hub, body)
        observed = tenant_types.gather(hub, target.cluster, body, spec)
        return converge(
            hub,
            target.cluster,
            observed,
            spec,
            settings,
            now,
            target.name,
            target.grant,
            context=context,
        )
    except client.ApiError as error:
        if target.cluster is hub:
            raise
        return site_unreachable(hub, body, target, str(error), now)


def finalize(
    hub: client.Cluster, target: client.Cluster, body: Manifest, settings: Any
) -> tenant_types.Result:
    """The tenant is going: its backup Schedules first (its Backups stay until their ttl),
    then its namespaces and access (tenant_lifecycle); held while a Schedule cannot go."""
    pruned, errors = tenant_backup.finalize(hub, target, body, settings)
    if errors:
        warning = Event("Warning", "CleanupFailed", "; ".join(errors)[:1000])
        return tenant_types.Result(
            outcome="error", body=body, events=[*pruned, warning], retry=True
        )
    result = tenant_lifecycle.finalize(hub, target, body)
    result.events[:0] = pruned
    return result


def unplaced(
    hub: client.Cluster, body: Manifest, target: placement.Target, now: datetime
) -> tenant_types.Result:
    """Placement refused or impossible: nothing is created anywhere, and the status says why."""
    generation = body["metadata"].get("generation")
    previous = (body.get("status") or {}).get("conditions") or []
    wanted = [
        conditions.Condition(tenant_types.READY, conditions.FALSE, target.reason, target.message),
        conditions.Condition(placement.PLACED, conditions.FALSE, target.reason, target.message),
    ]
    status = {
        **(body.get("status") or {}),
        "phase": cloudtenant.Phase.PENDING.value,
        "observedGeneration": generation,
        "placement": {
            "cluster": placement.current_cluster(body),
            "message": target.message,
        },
        "conditions": conditions.merge(previous, wanted, generation, now),
    }
    if not status["placement"]["cluster"]:
        status["placement"].pop("cluster")
    return tenant_types.Result(
        outcome="unplaced", body=body, events=write_status(hub, body, status), retry=True
    )


def site_unreachable(
    hub: client.Cluster, body: Manifest, target: placement.Target, error: str, now: datetime
) -> tenant_types.Result:
    """The tenant's sub-center did not answer: keep everything, say so, try again later."""
    generation = body["metadata"].get("generation")
    message = f"SubCenter {target.name} cannot be reached; nothing was changed: {error}"[:2000]
    status = {
        **(body.get("status") or {}),
        "conditions": conditions.merge(
            (body.get("status") or {}).get("conditions") or [],
            [
                conditions.Condition(
                    tenant_types.READY, conditions.FALSE, "SubCenterUnreachable", message
                ),
                *[
                    conditions.Condition(
                        item["type"], item["status"], item["reason"], item.get("message", "")
                    )
                    for item in (body.get("status") or {}).get("conditions") or []
                    if item["type"] != tenant_types.READY
                ],
            ],
            generation,
            now,
        ),
    }
    said = write_status(hub, body, status)
    return tenant_types.Result(outcome="error", body=body, events=said, retry=True)


def finalize_unplaced(
    hub: client.Cluster, body: Manifest, target: placement.Target
) -> tenant_types.Result:
    """A deleting tenant whose site cannot be reached: hold the finalizer until it can."""
    if placement.current_cluster(body) in (None, cloudtenant.HUB_CLUSTER):
        return tenant_lifecycle.finalize(hub, hub, body)
    return tenant_types.Result(
        outcome="error",
        body=body,
        events=[Event("Warning", "CleanupWaiting", target.message)],
        retry=True,
    )


def add_finalizer(hub: client.Cluster, body: Manifest) -> Manifest:
    return hub.add_finalizer(
        {**body, "apiVersion": constants.API_VERSION, "kind": tenant_types.KIND},
        constants.FINALIZER,
    )


def converge(
    hub: client.Cluster,
    target: client.Cluster,
    observed: tenant_types.Observed,
    spec: cloudtenant.CloudTenantSpec,
    settings: Any,
    now: datetime,
    where: str = cloudtenant.HUB_CLUSTER,
    grant: federation_placement.Grant | None = None,
    *,
    context: tenant_types.QuotaContext | None = None,
) -> tenant_types.Result:
    name = observed.tenant["metadata"]["name"]
    context = context or tenant_types.QuotaContext()
    result = tenant_types.Result(outcome="success", body=observed.tenant)
    spec, site_capacity = apply_grant(observed.tenant, spec, where, grant, result.events)
    # With requireApprovedPlan, the approved ResourcePlan (or the starter allowance) caps the
    # quota: everything below (allocation, status.quota.hard) works on the effective quota.
    cap = plan.cap_for(hub, name, dict(spec.quota), settings, now)
    if cap is not None:
        spec = spec.model_copy(update={"quota": cap.quota})
    verdicts = tenant_namespaces.judge_namespaces(
        name, spec, observed, protection.of_settings(settings)
    )
    result.events.extend(tenant_namespaces.refusal_events(observed.tenant, verdicts))
    usable = [verdict.name for verdict in verdicts if verdict.usable]
    try:
        allocation, read = allocate(target, name, spec, usable, observed, context.wanted)
        # Build only for the namespaces the tenant may manage: a conflicting namespace gets no
        # quota share and must not appear in the members' self-view role either.
        wanted = desired_tenant.build(
            name,
            tenant_namespaces.usable_only(name, spec, usable),
            platform_namespaces=settings.platform_namespaces,
            allocation=allocation,
            reports=billed_reports(observed.tenant),
            egress=egress_of(spec, settings),
            payer=statement.payer_of(spec.unit.tier.value, spec.unit.region),
        )
    except (meta.SpecError, quantity.QuantityError, ValueError) as error:
        return refuse(hub, observed.tenant, str(error), now)
    errors: list[str] = []
    applied = tenant_types.Applier(hub, target, observed, result.events, errors)
    adopted = {verdict.name for verdict in verdicts if verdict.adopt} | {
        name for name, found in observed.namespaces.items() if tenant_lifecycle.was_adopted(found)
    }
    owned = [
        desired_namespaces.with_owner(
            manifest, creator_uid(observed.tenant, observed.namespaces.get(real))
        )
        for manifest in wanted.namespaces
        if (real := manifest["metadata"]["name"]) in usable
    ]
    applied.ensure_many(
        [
            tenant_lifecycle.mark_adopted(manifest)
            if manifest["metadata"]["name"] in adopted
            else manifest
            for manifest in owned
        ]
    )
    for manifest in owned:
        tenant_lifecycle.thaw(applied, manifest)
    created = created_by_pass(observed, applied, usable)
    settled = spec_settled(observed.tenant)
    busy = busy_quotas(target, spec, allocation, read, exclude=created) if settled else frozenset()
    for namespace, hard in allocation.decreases.items():
        if namespace not in created and namespace not in busy:
            applied.ensure(
                quotas.manifest(name, namespace, hard),
                reason="QuotaRebalanced",
                resource_version=read[namespace].resource_version if namespace in read else "",
            )
    granted = write_first_quotas(
        target, name, spec, usable, created, allocation, applied, context.leading
    )
    # What grants no access goes out while the quota controller enforces the new quotas.
    ensure_all(applied, wanted, usable, access=False)
    raced = verify_first_quotas(target, name, granted, allocation, applied)
    # Quota before access: a namespace whose quota is not in place gets no RoleBindings, and
    # one nobody has access to yet gets none before quota admission enforces its quota.
    unquoted = without_quota(applied, spec.quota, usable, errors)
    waiting = {**not_enforced(applied, usable), **unquoted}
    ensure_all(applied, wanted, usable, access=True, waiting=waiting)
    final_quotas = raise_quotas(
        target,
        name,
        spec,
        usable,
        allocation,
        applied,
        held_back=raced | busy,
        leading=context.leading,
        wait_quiet=settled,
    )
    keep = {
        tenant_types.key_of(item)
        for item in (*wanted.namespaced, *wanted.cluster_scoped, *wanted.quotas)
        if not withheld(item, unquoted)
    }
    applied.prune(keep, usable)
    tenant_lifecycle.release_namespaces(
        target,
        observed,
        spec,
        set(usable) | tenant_namespaces.conflicted(verdicts),
        result.events,
        errors,
    )
    within_plan = extra_conditions(cap, site_capacity, observed.tenant, spec)
    backed = tenant_backup.converge(hub, target, observed, spec, usable, settings, now)
    within_plan += tenant_backup.conditions_of(backed, result)
    status = tenant_status(
        with_quotas_as_applied(observed, applied),
        spec,
        verdicts,
        final_quotas,
        allocation,
        errors,
        now,
        within_plan,
        waiting,
        egress_of(spec, settings).refused,
    )
    status.update(placement={"cluster": where}, **tenant_backup.status_of(backed, observed.tenant))
    if not context.leading():  # the status records a site admission: only the leader's
        raise tenant_types.NotLeadingError(f"not leading: the status of {name} is left")
    result.events.extend(write_status(hub, observed.tenant, status))
    result.snapshot = snapshot(spec, status)
    if errors:
        result.outcome, result.retry = "error", True
    else:
        result.retry = unsettled(verdicts, allocation, final_quotas, waiting, applied)
    return result


def extra_conditions(
    cap: plans.Cap | None,
    site_capacity: Sequence[conditions.Condition],
    tenant: Manifest,
    spec: cloudtenant.CloudTenantSpec,
) -> list[conditions.Condition]:
    """WithinPlan (with a cap), QuotaGranted (on a sub-center) and the deletion condition."""
    within_plan = (
        [conditions.Condition(plan.WITHIN_PLAN, cap.status, cap.reason, cap.message)]
        if cap is not None
        else []
    )
    return [*within_plan, *site_capacity, *tenant_lifecycle.deletion_condition(tenant, spec)]


def unsettled(
    verdicts: Sequence[tenant_namespaces.NamespaceVerdict],
    allocation: quotas.Allocation,
    final_quotas: Mapping[str, Mapping[str, str]],
    waiting: Mapping[str, str],
    applied: tenant_types.Applier,
) -> bool:
    """Whether the pass left something to look at again soon (a retry, not a resync)."""
    return bool(
        any(verdict.phase == "Pending" for verdict in verdicts)
        or allocation_pending(allocation, final_quotas)
        or waiting
        or applied.conflicts
    )


# -- gather -------------------------------------------------------------------------------


def refused_in(hub: client.Cluster, event: Manifest) -> tuple[str, str, dict[str, str]] | None:
    """(tenant, namespace, hards needed) of an Event recording a request refused by a tenant
    namespace's govcloud-quota; None for any other Event. The tenant is the one the namespace
    is labelled for (a label only the operator and cluster admins can set)."""
    needed = quotas.needed_by_refusal(str(event.get("message") or ""))
    namespace = (event.get("metadata") or {}).get("namespace")
    if not needed or not namespace:
        return None
    found = hub.get("v1", "Namespace", namespace) or {}
    owner = ((found.get("metadata") or {}).get("labels") or {}).get(constants.LABEL_TENANT)
    return (owner, namespace, needed) if owner else None


def apply_grant(
    tenant: Manifest,
    spec: cloudtenant.CloudTenantSpec,
    where: str,
    grant: federation_placement.Grant | None,
    said: list[Event],
) -> tuple[cloudtenant.CloudTenantSpec, list[conditions.Condition]]:
    """On a sub-center, growth the site has no room for is held back (never over-committed)."""
    if grant is None:
        return spec, []
    condition = capacity_condition(where, grant)
    if grant.shortfalls:
        spec = spec.model_copy(update={"quota": grant.quota})
        if not said_before(tenant, condition):
            said.append(Event("Warning", condition.reason, condition.message))
    return spec, [condition]


def capacity_condition(where: str, grant: federation_placement.Grant) -> conditions.Condition:
    """QuotaGranted: whether the tenant's sub-center has room for the whole of its quota."""
    if not grant.shortfalls:
        return conditions.Condition(
            QUOTA_GRANTED, conditions.TRUE, "Granted", f"SubCenter {where} has room for the quota"
        )
    return conditions.Condition(
        QUOTA_GRANTED,
        conditions.FALSE,
        federation_placement.INSUFFICIENT_CAPACITY,
        f"the quota increase does not fit in SubCenter {where}: {'; '.join(grant.shortfalls)};"
        " the tenant keeps the quota it was granted until the site has room or spec.quota is"
        " lowered",
    )


def said_before(tenant: Manifest, condition: conditions.Condition) -> bool:
    """Whether the tenant's status already holds this condition with the same message."""
    return any(
        item.get("type") == condition.type
        and item.get("status") == condition.status
        and item.get("message") == condition.message
        for item in (tenant.get("status") or {}).get("conditions") or []
    )


def allocate(
    target: client.Cluster,
    name: str,
    spec: cloudtenant.CloudTenantSpec,
    usable: Sequence[str],
    observed: tenant_types.Observed,
    wanted: quotas.Hards | None = None,
) -> tuple[quotas.Allocation, Mapping[str, quotas.ObservedQuota]]:
    """The split of the tenant quota, from the cache; when that would write any quota, from a
    fresh read instead, returned with it (phase-1 writes are conditional on its versions). A
    split from usage the cache has not caught up with could lower a quota below what already
    runs there, and the quota controller, recounting after such a change from its own lagging
    cache, may then report less than runs: the invariant's c_i would no longer bound the
    namespace's usage. ``wanted``: room asked for per namespace."""
    cached = quotas.allocate(
        spec.quota, usable, quotas_of(observed, usable), suspended=spec.suspended, wanted=wanted
    )
    if not (cached.decreases or cached.increases):
        return cached, {}  # a resync of a settled tenant reads nothing
    fresh = {
        namespace: quota
        for namespace, quota in read_quotas(target, name).items()
        if namespace in usable
    }
    return (
        quotas.allocate(spec.quota, usable, fresh, suspended=spec.suspended, wanted=wanted),
        fresh,
    )


def spec_settled(tenant: Manifest) -> bool:
    """Whether the last pass applied the tenant's current spec: quota writes that only follow
    usage wait for quiet quotas (``busy_quotas``); those a changed spec asks for do not."""
    status = tenant.get("status") or {}
    return bool(status.get("observedGeneration") == tenant["metadata"].get("generation"))


def busy_quotas(
    target: client.Cluster,
    spec: cloudtenant.CloudTenantSpec,
    allocation: quotas.Allocation,
    read: Mapping[str, quotas.ObservedQuota],
    exclude: Sequence[str] = (),
) -> frozenset[str]:
    """The namespaces the allocation would rebalance whose quota may be counting pods right
    now: it changed less than ``QUIET_SECONDS`` ago, or after the watch-fed cache last saw
    it (``read`` is newer). A later pass rebalances them. Never held back: what suspends the
    tenant or brings it back within its quota."""
    if spec.suspended or allocation.over_committed:
        return frozenset()
    busy: set[str] = set()
    for namespace in {*allocation.decreases, *allocation.increases} - set(exclude):
        cached = target.get("v1", "ResourceQuota", meta.QUOTA_NAME, namespace)
        version = str(((cached or {}).get("metadata") or {}).get("resourceVersion") or "")
        fresh = read.get(namespace)
        if recently_changed(target, namespace) or (
            fresh is not None and fresh.resource_version != version
        ):
            busy.add(namespace)
    return frozenset(busy)


def recently_changed(target: client.Cluster, namespace: str) -> bool:
    """Whether the namespace's quota changed less than ``QUIET_SECONDS`` ago, as the
    watch-fed cache saw it (a client without a cache does not know: False)."""
    changed = target.changed_at("v1", "ResourceQuota", meta.QUOTA_NAME, namespace)
    return changed is not None and time.monotonic() - changed < QUIET_SECONDS


def quotas_of(
    observed: tenant_types.Observed, namespaces: Sequence[str]
) -> dict[str, quotas.ObservedQuota]:
    found: dict[str, quotas.ObservedQuota] = {}
    for namespace in namespaces:
        quota = observed.objects.get(("ResourceQuota", namespace, meta.QUOTA_NAME))
        if quota is not None:
            found[namespace] = quotas.observed_from_manifest(quota)
    return found


# -- decide -------------------------------------------------------------------------------


def ensure_all(
    applied: tenant_types.Applier,
    wanted: desired_tenant.DesiredTenant,
    usable: Sequence[str],
    *,
    access: bool,
    waiting: Mapping[str, str] | None = None,
) -> None:
    """Apply the wanted RoleBindings (``access``, except where access waits), or else
    everything else: LimitRanges, NetworkPolicies and the cluster-scoped objects."""
    chosen = [
        manifest
        for manifest in wanted.namespaced
        if manifest["metadata"]["namespace"] in usable
        and (manifest["kind"] == "RoleBinding") == access
        and not (access and withheld(manifest, waiting or {}))
    ]
    if access:
        applied.ensure_many(chosen)
        return
    # A binding goes out after the role it names: the operator may bind only roles whose
    # permissions it holds, which the API server cannot check on a role that does not exist yet.
    bindings = [item for item in wanted.cluster_scoped if item["kind"] == "ClusterRoleBinding"]
    roles = [item for item in wanted.cluster_scoped if item["kind"] != "ClusterRoleBinding"]
    applied.ensure_many([*chosen, *roles])
    applied.ensure_many(bindings)


def without_quota(
    applied: tenant_types.Applier,
    tenant_quota: Mapping[str, str],
    usable: Sequence[str],
    errors: Sequence[str],
) -> dict[str, str]:
    """Namespaces whose govcloud-quota is missing or lacks a key of the tenant quota, and why."""
    if not tenant_quota:
        return {}
    missing: dict[str, str] = {}
    for namespace in usable:
        quota = applied.current.get(("ResourceQuota", namespace, meta.QUOTA_NAME))
        hard = ((quota or {}).get("spec") or {}).get("hard") or {}
        lacking = sorted(set(tenant_quota) - set(hard))
        if quota is not None and not lacking:
            continue
        failed = [error for error in errors if f"ResourceQuota {namespace}/" in error]
        missing[namespace] = (
            failed[-1]
            if failed
            else f"ResourceQuota {namespace}/{meta.QUOTA_NAME} lacks {', '.join(lacking)}"
        )
    return missing


def not_enforced(applied: tenant_types.Applier, usable: Sequence[str]) -> dict[str, str]:
    """Namespaces nobody has access to yet whose quota admission does not enforce yet, and why.

    A quota is enforced once the quota controller has copied its hard into ``status.hard``; a
    new one has no status. Access already granted is not withdrawn for that (a quota deleted
    by hand and put back is enforced again a moment later).
    """
    waiting: dict[str, str] = {}
    for namespace in usable:
        quota = applied.current.get(_quota_key(namespace))
        if quota is None or (quota.get("status") or {}).get("hard"):
            continue
        if any(key[0] == "RoleBinding" and key[1] == namespace for key in applied.current):
            continue
        waiting[namespace] = f"ResourceQuota {namespace}/{meta.QUOTA_NAME} is not enforced yet"
    return waiting


def withheld(manifest: Mapping[str, Any], unquoted: Mapping[str, str]) -> bool:
    """A RoleBinding in a namespace without its quota: access waits for the quota."""
    namespace = manifest["metadata"].get("namespace")
    return manifest["kind"] == "RoleBinding" and namespace in unquoted


def allocation_pending(
    allocation: quotas.Allocation, final: Mapping[str, Mapping[str, str]]
) -> bool:
    """Whether some write was held back or capped and must be made by a later pass."""
    return any(
        not _same_hard(allocation.hard.get(namespace, {}), final.get(namespace, {}))
        for namespace in {*allocation.increases, *allocation.decreases}
    )


def _same_hard(left: Mapping[str, str], right: Mapping[str, str]) -> bool:
    return left.keys() == right.keys() and all(
        quantity.equal(value, right[key]) for key, value in left.items()
    )


# -- apply --------------------------------------------------------------------------------


def write_first_quotas(
    target: client.Cluster,
    name: str,
    spec: cloudtenant.CloudTenantSpec,
    usable: Sequence[str],
    created: Sequence[str],
    allocation: quotas.Allocation,
    applied: tenant_types.Applier,
    leading: Callable[[], bool] = tenant_types.always_leading,
) -> list[str]:
    """Create the quota of each namespace this pass created at its final share, in one write;
    the namespaces whose quota grants something (to verify before anyone gets access).

    The share comes out of the slack left by the tenant's other quotas, read afresh (module
    docstring of ``desired.quotas``, Guarantee G3). A replica that no longer leads creates
    none: the namespaces stay without quota, so without access, until a leader's pass.
    """
    planned = {
        namespace: allocation.hard[namespace]
        for namespace in created
        if allocation.hard.get(namespace)
    }
    if not planned:
        return []
    if not leading():
        log.warning("tenant %s: no longer leading; new quotas wait for the leader", name)
        return []
    first = quotas.first_hards(spec.quota, read_quotas(target, name), planned, namespaces=usable)
    applied.ensure_many(
        [quotas.manifest(name, namespace, hard) for namespace, hard in first.items()],
        reason="QuotaRebalanced",
    )
    return [
        namespace
        for namespace, hard in first.items()
        if quotas.grants_any(hard) and _quota_key(namespace) in applied.current
    ]


def verify_first_quotas(
    target: client.Cluster,
    name: str,
    granted: Sequence[str],
    allocation: quotas.Allocation,
    applied: tenant_types.Applier,
) -> frozenset[str]:
    """Wait until quota admission enforces the quotas of ``granted`` and check that they count
    nothing (G3). A namespace found not empty falls back to phase 1: its quota is lowered to 0
    and raised by a later pass; those are returned. One whose quota is not enforced by the
    deadline waits (``not_enforced``)."""
    if not granted:
        return frozenset()
    enforced = wait_enforced(target, name, granted, time.monotonic() + ENFORCE_DEADLINE)
    for namespace, quota in enforced.items():
        applied.current[_quota_key(namespace)] = {
            **applied.current[_quota_key(namespace)],
            "status": quota.get("status") or {},
        }
    raced = frozenset(
        namespace for namespace, quota in enforced.items() if not found_empty(target, quota)
    )
    for namespace in sorted(raced):
        log.warning(
            "tenant %s: namespace %s was not empty when its quota was enforced; its quota is"
            " lowered to 0 and raised once the quota controller has counted what runs there",
            name,
            namespace,
        )
        applied.ensure(
            quotas.manifest(name, namespace, allocation.decreases[namespace]),
            reason="QuotaRebalanced",
        )
    return raced


def created_by_pass(
    observed: tenant_types.Observed, applied: tenant_types.Applier, usable: Sequence[str]
) -> list[str]:
    """The namespaces this pass created: absent when it gathered, present once applied."""
    return [
        namespace
        for namespace in usable
        if namespace not in observed.namespaces and ("Namespace", "", namespace) in applied.current
    ]


def read_quotas(target: client.Cluster, name: str) -> dict[str, quotas.ObservedQuota]:
    """The tenant's govcloud-quotas as the API server has them now (not as gathered)."""
    return {
        item["metadata"]["namespace"]: quotas.observed_from_manifest(item)
        for item in cache.uncached(target).list(
            "v1", "ResourceQuota", label_selector=meta.selector(name)
        )
        if item["metadata"]["name"] == meta.QUOTA_NAME
    }


def wait_enforced(
    target: client.Cluster, name: str, namespaces: Sequence[str], deadline: float
) -> dict[str, Manifest]:
    """The quotas of ``namespaces`` once quota admission enforces them, polled until ``deadline``.

    Admission enforces only what the quota controller copied to ``status.hard`` (a new quota
    has no status), and refuses pods while ``status.used`` lacks a key of it. Polled in the
    watch-fed cache: the controller's status write reaches it within milliseconds, and the
    API server is not asked again and again while a burst of tenants waits.
    """
    enforced: dict[str, Manifest] = {}
    while True:
        for item in target.list("v1", "ResourceQuota", label_selector=meta.selector(name)):
            namespace = item["metadata"]["namespace"]
            wanted = namespace in namespaces and item["metadata"]["name"] == meta.QUOTA_NAME
            if wanted and is_enforced(item):
                enforced[namespace] = item
        if len(enforced) == len(set(namespaces)) or time.monotonic() >= deadline:
            return enforced
        time.sleep(ENFORCE_POLL)


def is_enforced(quota: Mapping[str, Any]) -> bool:
    """Whether admission enforces the quota's spec: status.hard equals it, usage is counted."""
    observed = quotas.observed_from_manifest(quota)
    return _same_hard(observed.hard, observed.status_hard or {}) and set(observed.hard) <= set(
        observed.used
    )


def found_empty(_target: client.Cluster, quota: Mapping[str, Any]) -> bool:
    """Whether nothing counts against the enforced quota (the quota controller's count; the
    operator may not list pods: least privilege)."""
    used = quotas.observed_from_manifest(quota).used
    return not any(quantity.parse(value) > 0 for value in used.values())


def with_quotas_as_applied(
    observed: tenant_types.Observed, applied: tenant_types.Applier
) -> tenant_types.Observed:
    """``observed`` with the quotas as last read or written by this pass.

    The status then reports the usage a new namespace's enforced quota already shows, rather
    than none, and the next pass has nothing to correct in it (one status write, not two).
    """
    latest = {key: item for key, item in applied.current.items() if key[0] == "ResourceQuota"}
    return replace(observed, objects={**observed.objects, **latest})


def _quota_key(namespace: str) -> tenant_types.ObjectKey:
    return ("ResourceQuota", namespace, meta.QUOTA_NAME)


def raise_quotas(
    hub: client.Cluster,
    name: str,
    spec: cloudtenant.CloudTenantSpec,
    usable: Sequence[str],
    allocation: quotas.Allocation,
    applied: tenant_types.Applier,
    held_back: frozenset[str] = frozenset(),
    leading: Callable[[], bool] = tenant_types.always_leading,
    wait_quiet: bool = True,
) -> dict[str, dict[str, str]]:
    """Phase 2: re-read the quotas, cap each planned raise to the slack left, apply it.

    Namespaces ``held_back`` keep their lowered quota until a later pass, as do, with
    ``wait_quiet``, those whose quota changed meanwhile (``recently_changed``: this pass's
    own phase-1 writes too). The
    raises are fenced: none while this replica does not lead (checked after the re-read,
    right before the writes), and each is conditional on the resourceVersion it was capped
    from.
    """
    planned = {
        namespace: hard
        for namespace, hard in allocation.increases.items()
        if namespace not in held_back and not (wait_quiet and recently_changed(hub, namespace))
    }
    if planned:
        fresh = read_quotas(hub, name)
        for item_namespace, observed_quota in fresh.items():
            key = ("ResourceQuota", item_namespace, meta.QUOTA_NAME)
            if key in applied.current:
                applied.current[key] = {
                    **applied.current[key],
                    "spec": {"hard": dict(observed_quota.hard)},
                    "status": {
                        "used": dict(observed_quota.used),
                        "hard": dict(observed_quota.status_hard or {}),
                    },
                }
        capped = quotas.cap_increases(spec.quota, fresh, planned, namespaces=usable)
        if capped and not leading():
            log.warning("tenant %s: no longer leading; quota raises wait for the leader", name)
            capped = {}
        for namespace, hard in capped.items():
            read = fresh.get(namespace)
            applied.ensure(
                quotas.manifest(name, namespace, hard),
                reason="QuotaRebalanced",
                resource_version=read.resource_version if read is not None else "",
            )
    final: dict[str, dict[str, str]] = {}
    for namespace in usable:
        quota = applied.current.get(("ResourceQuota", namespace, meta.QUOTA_NAME))
        if quota is not None:
            final[namespace] = dict((quota.get("spec") or {}).get("hard") or {})
    return final


def creator_uid(tenant: Manifest, found: Manifest | None) -> str:
    """The UID to record on a namespace: the creator's, kept once written; else this tenant's."""
    recorded = desired_namespaces.owner_uid(found) if found is not None else None
    return recorded or str(tenant["metadata"].get("uid") or "")


# -- status -------------------------------------------------------------------------------


def refuse(hub: client.Cluster, body: Manifest, message: str, now: datetime) -> tenant_types.Result:
    """A spec the operator cannot act on: phase Error and a condition saying what to fix.

    Such a spec was stored before a rule that now refuses it; the access it was given then to
    members no tenant may have is withdrawn all the same.
    """
    generation = body["metadata"].get("generation")
    previous = (body.get("status") or {}).get("conditions") or []
    wanted = [conditions.Condition(tenant_types.READY, conditions.FALSE, "InvalidSpec", message)]
    status = {
        "phase": cloudtenant.Phase.ERROR.value,
        "observedGeneration": generation,
        "conditions": conditions.merge(previous, wanted, generation, now),
    }
    withdrawn = withdraw_forbidden_members(hub, body)
    said = write_status(hub, body, status)
    # A new refusal of the same kind (another field to fix) is news too.
    if not said and not said_before(body, wanted[0]):
        said = [Event("Warning", "InvalidSpec", message)]
    return tenant_types.Result(outcome="invalid", body=body, events=[*said, *withdrawn])


def withdraw_forbidden_members(hub: client.Cluster, body: Manifest) -> list[Event]:
    """Take `system:*` subjects and other namespaces' ServiceAccounts out of the bindings the
    operator made for this tenant on the hub, keeping every other member's access."""
    if placement.current_cluster(body) not in (None, cloudtenant.HUB_CLUSTER):
        return []  # a placed tenant's bindings live on its site (docs/security.md, limits)
    name = body["metadata"]["name"]
    selector = meta.selector(name)
    own = {
        item["metadata"]["name"] for item in hub.list("v1", "Namespace", label_selector=selector)
    }
    found: list[Event] = []
    for api_version, kind in (*tenant_types.NAMESPACED_KINDS, *tenant_types.CLUSTER_KINDS):
        if not kind.endswith("Binding"):
            continue
        for binding in hub.list(api_version, kind, label_selector=selector):
            found.extend(withdraw_from(hub, api_version, kind, binding, own))
    return found


def withdraw_from(
    hub: client.Cluster, api_version: str, kind: str, binding: Manifest, own: set[str]
) -> list[Event]:
    """One binding without its forbidden subjects (deleted when none is left)."""
    subjects = binding.get("subjects") or []
    kept = [subject for subject in subjects if rbac.member_allowed(subject, own)]
    if len(kept) == len(subjects):
        return []
    removed = ", ".join(subject["name"] for subject in subjects if subject not in kept)
    name, namespace = binding["metadata"]["name"], binding["metadata"].get("namespace")
    where = f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"
    try:
        if kept:
            hub.patch_merge(api_version, kind, name, {"subjects": kept}, namespace=namespace)
        else:
            hub.delete(api_version, kind, name, namespace)
    except client.ApiError as error:
        return [
            Event(
                "Warning", "AccessNotWithdrawn", f"could not remove {removed} from {where}: {error}"
            )
        ]
    return [
        Event(
            "Warning",
            "AccessWithdrawn",
            f"removed {removed} from {where}: users and groups named system:* and ServiceAccounts"
            " of other namespaces are never a tenant's members",
        )
    ]


_validation_message = events.validation_message


def tenant_status(
    observed: tenant_types.Observed,
    spec: cloudtenant.CloudTenantSpec,
    verdicts: Sequence[tenant_namespaces.NamespaceVerdict],
    final_quotas: Mapping[str, Mapping[str, str]],
    allocation: quotas.Allocation,
    errors: Sequence[str],
    now: datetime,
    extra: Sequence[conditions.Condition] = (),
    unquoted: Mapping[str, str] | None = None,
    egress_refused: Sequence[str] = (),
) -> Manifest:
    generation = observed.tenant["metadata"].get("generation")
    used_by_namespace = {
        namespace: dict(
            (
                (observed.objects.get(("ResourceQuota", namespace, meta.QUOTA_NAME)) or {}).get(
                    "status"
                )
                or {}
            ).get("used")
            or {}
        )
        for namespace in final_quotas
    }
    namespace_entries = [
        {
            "name": verdict.name,
            "phase": verdict.phase
            if verdict.phase != "Pending" or verdict.name not in final_quotas
            else "Active",
            "message": verdict.message if verdict.phase != "Pending" else "",
            "quota": {
                "hard": dict(final_quotas.get(verdict.name, {})),
                "used": {
                    key: value
                    for key, value in used_by_namespace.get(verdict.name, {}).items()
                    if key in final_quotas.get(verdict.name, {})
                },
            },
        }
        for verdict in verdicts
    ]
    total_used = sum_used(spec.quota, used_by_namespace.values())
    wanted = [
        *decide_conditions(
            spec, namespace_entries, allocation, errors, total_used, unquoted or {}, egress_refused
        ),
        *extra,
    ]
    phase = decide_phase(spec, wanted)
    return {
        "phase": phase,
        "observedGeneration": generation,
        "namespaceCount": sum(1 for entry in namespace_entries if entry["phase"] == "Active"),
        "usage": usage_summary(spec.quota, total_used),
        "namespaces": namespace_entries,
        "quota": {"hard": dict(spec.quota), "used": total_used},
        "conditions": conditions.merge(
            (observed.tenant.get("status") or {}).get("conditions") or [], wanted, generation, now
        ),
    }


def sum_used(
    tenant_hard: Mapping[str, str], used: Sequence[Mapping[str, str]] | Any
) -> dict[str, str]:
    totals: dict[str, str] = {}
    for resource in tenant_hard:
        amount = sum(
            (quantity.parse(item[resource]) for item in used if resource in item),
            start=quantity.parse("0"),
        )
        totals[resource] = quantity.to_string(amount, binary=quantity.is_binary(resource))
    return totals


def usage_summary(hard: Mapping[str, str], used: Mapping[str, str]) -> dict[str, str]:
    summary = {}
    for label, candidates in (
        ("cpu", ("requests.cpu", "cpu", "limits.cpu")),
        ("memory", ("requests.memory", "memory", "limits.memory")),
    ):
        for resource in candidates:
            if resource in hard:
                summary[label] = f"{used.get(resource, '0')}/{hard[resource]}"
                break
    return summary


def egress_of(spec: cloudtenant.CloudTenantSpec, settings: Any) -> networkpolicies.Egress:
    """The egress the platform's settings grant the tenant (pure: cheap to ask twice)."""
    policy = networkpolicies.EgressPolicy(
        extranet=tuple(getattr(settings, "extranet_cidrs", ()) or ()),
        allowed=tuple(getattr(settings, "egress_allowed_cidrs", ()) or ()),
        dns_namespace=str(getattr(settings, "dns_namespace", "kube-system") or "kube-system"),
    )
    return networkpolicies.grant_egress(spec, policy)


def network_condition(
    spec: cloudtenant.CloudTenantSpec, egress_refused: Sequence[str] = ()
) -> conditions.Condition:
    """NetworkIsolated: what the policies allow, and each egressTo network not granted."""
    if not spec.network.isolated:
        return conditions.Condition(
            NETWORK_ISOLATED, conditions.FALSE, "IsolationDisabled", "network.isolated is false"
        )
    message = (
        "ingress only from the tenant, allowFrom peers and platform namespaces; egress only to"
        " DNS, the tenant, the platform namespaces, tenants that let it in, the e-government"
        " extranet and granted egressTo networks"
    )
    if egress_refused:
        return conditions.Condition(
            NETWORK_ISOLATED,
            conditions.TRUE,
            "EgressNotGranted",
            f"{message}; not granted: {'; '.join(egress_refused)}"[:2000],
        )
    return conditions.Condition(NETWORK_ISOLATED, conditions.TRUE, "Restricted", message)


def decide_conditions(
    spec: cloudtenant.CloudTenantSpec,
    namespaces: Sequence[Mapping[str, Any]],
    allocation: quotas.Allocation,
    errors: Sequence[str],
    total_used: Mapping[str, str],
    unquoted: Mapping[str, str] | None = None,
    egress_refused: Sequence[str] = (),
) -> list[conditions.Condition]:
    not_active = [entry for entry in namespaces if entry["phase"] != "Active"]
    if not_active:
        ns_condition = conditions.Condition(
            NAMESPACES_READY,
            conditions.FALSE,
            "NamespaceConflict"
            if any(entry["phase"] == "Conflict" for entry in not_active)
            else "NamespacesPending",
            "; ".join(
                f"{entry['name']}: {entry['phase']}"
                + (f" ({entry['message']})" if entry["message"] else "")
                for entry in not_active
            ),
        )
    else:
        ns_condition = conditions.Condition(
            NAMESPACES_READY,
            conditions.TRUE,
            "AllNamespacesActive",
            f"{len(namespaces)} namespaces active",
        )
    if unquoted:
        quota_condition = conditions.Condition(
            QUOTA_READY,
            conditions.FALSE,
            QUOTA_MISSING,
            "; ".join(f"{namespace}: {why}" for namespace, why in sorted(unquoted.items()))[:1500]
            + "; members get no access to these namespaces until their quota is in place",
        )
    elif allocation.over_committed:
        details = ", ".join(
            f"{resource} used {used} > quota {hard}"
            for resource, (used, hard) in sorted(allocation.over_committed.items())
        )
        quota_condition = conditions.Condition(
            QUOTA_READY,
            conditions.FALSE,
            "UsageAboveQuota",
            f"{details}; running workloads keep running, nothing new starts until usage drops",
        )
    elif not spec.quota:
        quota_condition = conditions.Condition(
            QUOTA_READY, conditions.TRUE, "NoQuota", "the tenant sets no quota"
        )
    else:
        quota_condition = conditions.Condition(
            QUOTA_READY,
            conditions.TRUE,
            "QuotaEnforced",
            "per-namespace quotas sum to at most the tenant quota",
        )
    access = (
        conditions.Condition(
            ACCESS_READY,
            conditions.FALSE,
            "WaitingForQuota",
            f"no access is granted in {', '.join(sorted(unquoted))} until its quota is in place",
        )
        if unquoted
        else conditions.Condition(
            ACCESS_READY,
            conditions.TRUE,
            "Suspended",
            "tenant suspended: members have read-only access",
        )
        if spec.suspended
        else conditions.Condition(
            ACCESS_READY,
            conditions.TRUE,
            "RoleBindingsReady",
            "admins, editors and viewers are bound",
        )
    )
    network = network_condition(spec, egress_refused)
    if errors:
        access_or_error = conditions.Condition(
            tenant_types.READY, conditions.FALSE, "ApplyFailed", "; ".join(errors)[:2000]
        )
    else:
        blocking = [
            item for item in (ns_condition, quota_condition) if item.status != conditions.TRUE
        ]
        access_or_error = (
            conditions.Condition(
                tenant_types.READY, conditions.FALSE, blocking[0].reason, blocking[0].message
            )
            if blocking and (blocking[0] is ns_condition or blocking[0].reason == QUOTA_MISSING)
            else conditions.Condition(
                tenant_types.READY,
                conditions.TRUE,
                "Reconciled",
                "everything the spec asks for is in place",
            )
        )
    return [access_or_error, ns_condition, quota_condition, access, network]


def decide_phase(spec: cloudtenant.CloudTenantSpec, wanted: Sequence[conditions.Condition]) -> str:
    ready = conditions.is_true(wanted, tenant_types.READY)
    if any(item.type == tenant_types.READY and item.reason == "ApplyFailed" for item in wanted):
        return cloudtenant.Phase.ERROR.value
    if not ready:
        return cloudtenant.Phase.PENDING.value
    return cloudtenant.Phase.SUSPENDED.value if spec.suspended else cloudtenant.Phase.ACTIVE.value


def billed_reports(tenant: Manifest) -> list[str]:
    """The tenant's UsageReports metering listed in status.billing, that its members may read."""
    billing = (tenant.get("status") or {}).get("billing") or {}
    metadata = tenant.get("metadata") or {}
    return rbac.own_reports(
        str(metadata.get("name")), str(metadata.get("uid") or ""), billing.get("reports") or []
    )


def write_status(hub: client.Cluster, body: Manifest, status: Manifest) -> list[Event]:
    """Patch the status only when it differs from what is stored; a Warning for each condition
    whose news turned bad (each once: the next pass finds it stored)."""
    current = body.get("status") or {}
    # The UID its records are kept under, once and for good (kept by a restore: docs/backup.md).
    if ledger.tenant_uid(body):
        status = {**status, "ledgerUID": ledger.tenant_uid(body)}
    if all(current.get(key) == value for key, value in status.items()):
        return []
    patch = compare.merge_patch(current, status)
    # status.migrations is written by the MigrationPlan reconciler, status.billing by metering;
    # they are never cleared here.
    patch.pop("migrations", None)
    patch.pop("billing", None)
    hub.patch_status(constants.API_VERSION, tenant_types.KIND, body["metadata"]["name"], patch)
    return events.bad_news(current.get("conditions") or [], status.get("conditions") or [])


def snapshot(
    spec: cloudtenant.CloudTenantSpec, status: Mapping[str, Any]
) -> metrics.TenantSnapshot:
    quota = status.get("quota") or {}
    return metrics.TenantSnapshot(
        tier=spec.unit.tier.value,
        phase=str(status.get("phase")),
        namespaces=int(status.get("namespaceCount") or 0),
        hard={
            key: float(quantity.parse(value)) for key, value in (quota.get("hard") or {}).items()
        },
        used={
            key: float(quantity.parse(value)) for key, value in (quota.get("used") or {}).items()
        },
        conditions={item["type"]: item["status"] for item in status.get("conditions") or []},
        reconciled_at=time.time(),
    )
