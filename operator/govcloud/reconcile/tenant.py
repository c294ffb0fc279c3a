"""CloudTenant reconciler: gather, decide with pure code, apply in a safe order, write status once.

Every pass is level-based: it computes the whole desired state from the spec and converges
to it, so a missed event, a restart or a hand edit all heal the same way. A pass that finds
nothing to change makes no write at all, not even to the status.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pydantic

from govcloud import constants, metrics
from govcloud.api.v1alpha1 import cloudtenant
from govcloud.desired import compare, meta, networkpolicies, protection, quantity, quotas
from govcloud.desired import namespaces as desired_namespaces
from govcloud.desired import tenant as desired_tenant
from govcloud.federation import placement as federation_placement
from govcloud.k8s import client, clusters
from govcloud.reconcile import conditions, events, placement, plan

log = logging.getLogger(__name__)

KIND = "CloudTenant"
RBAC = "rbac.authorization.k8s.io/v1"
NAMESPACED_KINDS = (
    ("v1", "ResourceQuota"),
    ("v1", "LimitRange"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    (RBAC, "RoleBinding"),
)
CLUSTER_KINDS = ((RBAC, "ClusterRole"), (RBAC, "ClusterRoleBinding"))
API_NETWORK_POLICY = ("networking.k8s.io/v1", "NetworkPolicy")
API_VERSIONS = {kind: api_version for api_version, kind in NAMESPACED_KINDS + CLUSTER_KINDS}
CLUSTER_KIND_NAMES = frozenset(kind for _, kind in CLUSTER_KINDS)

READY = "Ready"
NAMESPACES_READY = "NamespacesReady"
QUOTA_READY = "QuotaReady"
ACCESS_READY = "AccessReady"
NETWORK_ISOLATED = "NetworkIsolated"
QUOTA_GRANTED = "QuotaGranted"
QUOTA_MISSING = "QuotaMissing"
DELETION_CONFIRMED = "DeletionConfirmed"

# kopf's own finalizer (its default), held while a timer runs on the object; kopf stops serving
# a resource whose CRD is terminating, so only this operator's code can remove it then.
KOPF_FINALIZER = "kopf.zalando.org/KopfFinalizerMarker"
CRD_API_VERSION = "apiextensions.k8s.io/v1"
CRD_NAME = f"{meta.CLOUDTENANT_PLURAL}.{constants.GROUP}"
CRD_DELETED_MESSAGE = (
    "the CloudTenant CRD is being deleted: the tenant's namespaces, quotas, network policies"
    " and RoleBindings are all kept as they are; reinstall the CRD and apply the tenant again"
    " to manage them"
)

Manifest = dict[str, Any]
ObjectKey = tuple[str, str, str]  # kind, namespace ("" when cluster-scoped), name


Event = events.Event


@dataclass
class Result:
    """What a pass did: the tenant as last seen, events to post, metrics, and how it went."""

    outcome: str
    body: Manifest | None = None
    events: list[Event] = field(default_factory=list)
    snapshot: metrics.TenantSnapshot | None = None
    retry: bool = False


@dataclass(frozen=True)
class Observed:
    """The tenant and everything of it found in the cluster at the start of a pass."""

    tenant: Manifest
    namespaces: Mapping[str, Manifest]
    objects: Mapping[ObjectKey, Manifest]


@dataclass(frozen=True)
class NamespaceVerdict:
    """Whether the operator may manage a namespace the spec asks for, and why not."""

    name: str
    usable: bool
    phase: str
    message: str = ""
    adopt: bool = False
    reason: str = "NamespaceConflict"  # the Warning Event's reason when not usable


def key_of(manifest: Mapping[str, Any]) -> ObjectKey:
    metadata = manifest["metadata"]
    return str(manifest["kind"]), str(metadata.get("namespace") or ""), str(metadata["name"])


# -- the pass ------------------------------------------------------------------------------


def reconcile(
    hub: client.Cluster,
    name: str,
    settings: Any,
    now: datetime | None = None,
    registry: clusters.ClusterRegistry | None = None,
) -> Result:
    """One level-based pass over the CloudTenant `name`."""
    now = now or datetime.now(UTC)
    body = hub.get(constants.API_VERSION, KIND, name)
    if body is None:
        return Result(outcome="deleted")
    try:
        spec = cloudtenant.CloudTenantSpec.model_validate(body.get("spec") or {})
    except pydantic.ValidationError as error:
        if body["metadata"].get("deletionTimestamp"):
            return finalize(hub, hub, body)
        return refuse(hub, body, _validation_message(error), now)
    return reconcile_valid(hub, registry, body, spec, settings, now)


def reconcile_valid(
    hub: client.Cluster,
    registry: clusters.ClusterRegistry | None,
    body: Manifest,
    spec: cloudtenant.CloudTenantSpec,
    settings: Any,
    now: datetime,
) -> Result:
    """The pass once the spec is valid: find the tenant's cluster, then converge or finalize."""
    deleting = bool(body["metadata"].get("deletionTimestamp"))
    target = placement.resolve(hub, registry, body, spec, deleting=deleting)
    if target.cluster is None:
        return (
            finalize_unplaced(hub, body, target) if deleting else unplaced(hub, body, target, now)
        )
    try:
        if deleting:
            return finalize(hub, target.cluster, body)
        if constants.FINALIZER not in (body["metadata"].get("finalizers") or []):
            if crd_deleting(hub):  # let_go_all took it off: the tenant is about to go
                return Result(outcome="deleted", body=body)
            body = add_finalizer(hub, body)
        observed = gather(hub, target.cluster, body, spec)
        return converge(
            hub, target.cluster, observed, spec, settings, now, target.name, target.grant
        )
    except client.ApiError as error:
        if target.cluster is hub:
            raise
        return site_unreachable(hub, body, target, str(error), now)


def unplaced(
    hub: client.Cluster, body: Manifest, target: placement.Target, now: datetime
) -> Result:
    """Placement refused or impossible: nothing is created anywhere, and the status says why."""
    generation = body["metadata"].get("generation")
    previous = (body.get("status") or {}).get("conditions") or []
    wanted = [
        conditions.Condition(READY, conditions.FALSE, target.reason, target.message),
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
    changed = (body.get("status") or {}).get("conditions") != status["conditions"]
    write_status(hub, body, status)
    return Result(
        outcome="unplaced",
        body=body,
        events=[Event("Warning", target.reason, target.message)] if changed else [],
        retry=True,
    )


def site_unreachable(
    hub: client.Cluster, body: Manifest, target: placement.Target, error: str, now: datetime
) -> Result:
    """The tenant's sub-center did not answer: keep everything, say so, try again later."""
    generation = body["metadata"].get("generation")
    message = f"SubCenter {target.name} cannot be reached; nothing was changed: {error}"[:2000]
    status = {
        **(body.get("status") or {}),
        "conditions": conditions.merge(
            (body.get("status") or {}).get("conditions") or [],
            [
                conditions.Condition(READY, conditions.FALSE, "SubCenterUnreachable", message),
                *[
                    conditions.Condition(
                        item["type"], item["status"], item["reason"], item.get("message", "")
                    )
                    for item in (body.get("status") or {}).get("conditions") or []
                    if item["type"] != READY
                ],
            ],
            generation,
            now,
        ),
    }
    write_status(hub, body, status)
    return Result(outcome="error", body=body, retry=True)


def finalize_unplaced(hub: client.Cluster, body: Manifest, target: placement.Target) -> Result:
    """A deleting tenant whose site cannot be reached: hold the finalizer until it can."""
    if placement.current_cluster(body) in (None, cloudtenant.HUB_CLUSTER):
        return finalize(hub, hub, body)
    return Result(
        outcome="error",
        body=body,
        events=[Event("Warning", "CleanupWaiting", target.message)],
        retry=True,
    )


def converge(
    hub: client.Cluster,
    target: client.Cluster,
    observed: Observed,
    spec: cloudtenant.CloudTenantSpec,
    settings: Any,
    now: datetime,
    where: str = cloudtenant.HUB_CLUSTER,
    grant: federation_placement.Grant | None = None,
) -> Result:
    name = observed.tenant["metadata"]["name"]
    result = Result(outcome="success", body=observed.tenant)
    spec, site_capacity = apply_grant(observed.tenant, spec, where, grant, result.events)
    # With requireApprovedPlan, the approved ResourcePlan (or the starter allowance) caps the
    # quota: everything below (allocation, status.quota.hard) works on the effective quota.
    cap = plan.cap_for(hub, name, dict(spec.quota), settings, now)
    if cap is not None:
        spec = spec.model_copy(update={"quota": cap.quota})
    verdicts = judge_namespaces(name, spec, observed, protection.of_settings(settings))
    result.events.extend(refusal_events(observed.tenant, verdicts))
    usable = [verdict.name for verdict in verdicts if verdict.usable]
    observed_quotas = quotas_of(observed, usable)
    try:
        allocation = quotas.allocate(spec.quota, usable, observed_quotas, suspended=spec.suspended)
        # Build only for the namespaces the tenant may manage: a conflicting namespace gets no
        # quota share and must not appear in the members' self-view role either.
        wanted = desired_tenant.build(
            name,
            usable_only(name, spec, usable),
            platform_namespaces=settings.platform_namespaces,
            allocation=allocation,
        )
    except (meta.SpecError, quantity.QuantityError, ValueError) as error:
        return refuse(hub, observed.tenant, str(error), now)
    errors: list[str] = []
    applied = Applier(hub, target, observed, result.events, errors)
    adopted = {verdict.name for verdict in verdicts if verdict.adopt} | {
        name for name, found in observed.namespaces.items() if was_adopted(found)
    }
    for namespace_manifest in wanted.namespaces:
        real = namespace_manifest["metadata"]["name"]
        if real in usable:
            owned = desired_namespaces.with_owner(
                namespace_manifest, creator_uid(observed.tenant, observed.namespaces.get(real))
            )
            applied.ensure(mark_adopted(owned) if real in adopted else owned)
            thaw(applied, owned)
    for namespace, hard in allocation.decreases.items():
        applied.ensure(quotas.manifest(name, namespace, hard), reason="QuotaRebalanced")
    # Quota before access: a namespace whose quota is not in place gets no RoleBindings.
    unquoted = without_quota(applied, spec.quota, usable, errors)
    for manifest in wanted.namespaced:
        if manifest["metadata"]["namespace"] in usable and not withheld(manifest, unquoted):
            applied.ensure(manifest)
    for manifest in wanted.cluster_scoped:
        applied.ensure(manifest)
    final_quotas = raise_quotas(target, name, spec, usable, allocation, applied)
    keep = {
        key_of(item)
        for item in (*wanted.namespaced, *wanted.cluster_scoped, *wanted.quotas)
        if not withheld(item, unquoted)
    }
    applied.prune(keep, usable)
    release_namespaces(
        target, observed, spec, set(usable) | conflicted(verdicts), result.events, errors
    )
    within_plan = (
        [conditions.Condition(plan.WITHIN_PLAN, cap.status, cap.reason, cap.message)]
        if cap is not None
        else []
    )
    within_plan += site_capacity
    within_plan += deletion_condition(observed.tenant, spec)
    status = tenant_status(
        observed, spec, verdicts, final_quotas, allocation, errors, now, within_plan, unquoted
    )
    status["placement"] = {"cluster": where}
    write_status(hub, observed.tenant, status)
    result.snapshot = snapshot(spec, status)
    if errors:
        result.outcome, result.retry = "error", True
    elif any(verdict.phase == "Pending" for verdict in verdicts) or allocation_pending(
        allocation, final_quotas
    ):
        result.retry = True
    return result


# -- gather --------------------------------------------------------------------------------


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


def gather(
    hub: client.Cluster,
    target: client.Cluster,
    tenant: Manifest,
    spec: cloudtenant.CloudTenantSpec | None,
) -> Observed:
    """Read the tenant's namespaces and every object labelled as the tenant's (O(kinds) calls).

    Namespaces and namespaced objects come from `target` (the hub or the tenant's
    sub-center); the self-view ClusterRole and binding always live on the hub.
    """
    name = tenant["metadata"]["name"]
    selector = meta.selector(name)
    namespaces = {
        item["metadata"]["name"]: item
        for item in target.list("v1", "Namespace", label_selector=selector)
    }
    for namespace in spec.namespaces if spec is not None else ():
        real = f"{name}-{namespace.name}"
        if real not in namespaces:
            found = target.get("v1", "Namespace", real)
            if found is not None:
                namespaces[real] = found
    objects: dict[ObjectKey, Manifest] = {}
    for cluster, kinds in ((target, NAMESPACED_KINDS), (hub, CLUSTER_KINDS)):
        for api_version, kind in kinds:
            for item in cluster.list(api_version, kind, label_selector=selector):
                item.setdefault("kind", kind)
                item.setdefault("apiVersion", api_version)
                objects[key_of(item)] = item
    return Observed(tenant=tenant, namespaces=namespaces, objects=objects)


def quotas_of(observed: Observed, namespaces: Sequence[str]) -> dict[str, quotas.ObservedQuota]:
    found: dict[str, quotas.ObservedQuota] = {}
    for namespace in namespaces:
        quota = observed.objects.get(("ResourceQuota", namespace, meta.QUOTA_NAME))
        if quota is not None:
            found[namespace] = quotas.observed_from_manifest(quota)
    return found


# -- decide --------------------------------------------------------------------------------


def judge_namespaces(
    name: str,
    spec: cloudtenant.CloudTenantSpec,
    observed: Observed,
    protected: protection.Protected | None = None,
) -> list[NamespaceVerdict]:
    """Which of the spec's namespaces the operator may manage; a conflict is never a steal."""
    previously_ours = {
        item.get("name")
        for item in (observed.tenant.get("status") or {}).get("namespaces") or []
        if item.get("phase") == "Active"
    }
    verdicts = []
    for namespace in spec.namespaces:
        real = f"{name}-{namespace.name}"
        verdicts.append(
            judge(
                name,
                real,
                namespace.adopt,
                observed.namespaces.get(real),
                previously_ours,
                protected or protection.Protected(),
            )
        )
    return verdicts


def judge(
    tenant: str,
    real: str,
    adopt: bool,
    found: Manifest | None,
    previously_ours: set[Any],
    protected: protection.Protected | None = None,
) -> NamespaceVerdict:
    """Whether the tenant may manage namespace `real`: never a protected one, never another
    tenant's, and an existing one only with a grant written on it."""
    refused = why_protected(real, found, protected or protection.Protected())
    if refused is not None:
        return NamespaceVerdict(
            real, usable=False, phase="Conflict", message=refused, reason="NamespaceProtected"
        )
    if found is None:
        return NamespaceVerdict(real, usable=True, phase="Pending", message="creating")
    labels = found["metadata"].get("labels") or {}
    owner = labels.get(constants.LABEL_TENANT)
    if found["metadata"].get("deletionTimestamp"):
        return NamespaceVerdict(
            real, usable=False, phase="Terminating", message="namespace is being deleted"
        )
    if owner == tenant:
        return NamespaceVerdict(real, usable=True, phase="Active")
    return judge_foreign(tenant, real, adopt, found, previously_ours)


def judge_foreign(
    tenant: str, real: str, adopt: bool, found: Manifest, previously_ours: set[Any]
) -> NamespaceVerdict:
    """An existing namespace not labelled as the tenant's: usable only with a grant on it."""
    owner = (found["metadata"].get("labels") or {}).get(constants.LABEL_TENANT)
    if owner is not None:
        return NamespaceVerdict(
            real,
            usable=False,
            phase="Conflict",
            message=f"namespace {real} belongs to tenant {owner}; it is never taken over",
        )
    granted = protection.granted_to(found) == tenant
    if granted and (adopt or real in previously_ours):
        return NamespaceVerdict(real, usable=True, phase="Active", adopt=adopt)
    return NamespaceVerdict(
        real,
        usable=False,
        phase="Conflict",
        message=not_granted(tenant, real, adopt),
        reason="AdoptionNotGranted",
    )


def why_protected(real: str, found: Manifest | None, protected: protection.Protected) -> str | None:
    """Why no tenant may manage namespace `real` (by its name or its protected label)."""
    why = protection.why_protected(found or {"metadata": {"name": real}}, protected)
    if why is None:
        return None
    return f"{why}: it is protected and never managed by a tenant; choose another namespace name"


def not_granted(tenant: str, real: str, adopt: bool) -> str:
    """What to do about an existing namespace that no tenant owns and nobody granted."""
    grant = f"kubectl label namespace {real} {constants.ADOPTABLE_BY}={tenant}"
    if not adopt:
        return (
            f"namespace {real} already exists and is not managed by govcloud; to take it over"
            f" (its workloads stay), set adopt: true on this namespace entry and have someone who"
            f" may write namespaces grant it: {grant}"
        )
    return (
        f"namespace {real} already exists and nobody granted it to tenant {tenant}: adopt: true"
        f" needs a grant written on the namespace by someone who may write namespaces: {grant}"
    )


def refusal_events(tenant: Manifest, verdicts: Sequence[NamespaceVerdict]) -> list[Event]:
    """A Warning per namespace newly refused (protected, not granted or another tenant's)."""
    before = {
        item.get("name"): (item.get("phase"), item.get("message"))
        for item in (tenant.get("status") or {}).get("namespaces") or []
    }
    return [
        Event("Warning", verdict.reason, verdict.message)
        for verdict in verdicts
        if verdict.phase == "Conflict" and before.get(verdict.name) != ("Conflict", verdict.message)
    ]


def usable_only(
    name: str, spec: cloudtenant.CloudTenantSpec, usable: Sequence[str]
) -> cloudtenant.CloudTenantSpec:
    """The spec restricted to the namespaces the operator may manage."""
    kept = [
        namespace
        for namespace in spec.namespaces
        if cloudtenant.namespace_name(name, namespace.name) in usable
    ]
    return spec.model_copy(update={"namespaces": kept})


def thaw(applied: Applier, manifest: Manifest) -> None:
    """Lift the frozen label from a namespace whose tenant is no longer suspended, or that a
    tenant took back after it was released (then the released quota and policy go too).

    A server-side apply that stops setting a label removes it, but drift detection tolerates
    extra labels, so the apply alone would never be sent.
    """
    name = manifest["metadata"]["name"]
    found = applied.current.get(("Namespace", "", name)) or {}
    frozen = (found.get("metadata", {}).get("labels") or {}).get(constants.LABEL_FROZEN)
    if frozen is None or constants.LABEL_FROZEN in manifest["metadata"]["labels"]:
        return
    try:
        if frozen == desired_namespaces.FROZEN_RELEASED:
            for api_version, kind in (("v1", "ResourceQuota"), API_NETWORK_POLICY):
                applied.target.delete(api_version, kind, meta.RELEASED_NAME, name)
        patch = {"metadata": {"labels": {constants.LABEL_FROZEN: None}}}
        thawed = applied.target.patch_merge("v1", "Namespace", name, patch)
        applied.current[("Namespace", "", name)] = thawed or found
    except client.ApiError as error:
        applied.errors.append(f"Namespace {name}: {error}")


def without_quota(
    applied: Applier, tenant_quota: Mapping[str, str], usable: Sequence[str], errors: Sequence[str]
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


def withheld(manifest: Mapping[str, Any], unquoted: Mapping[str, str]) -> bool:
    """A RoleBinding in a namespace without its quota: access waits for the quota."""
    namespace = manifest["metadata"].get("namespace")
    return manifest["kind"] == "RoleBinding" and namespace in unquoted


def conflicted(verdicts: Sequence[NamespaceVerdict]) -> set[str]:
    return {verdict.name for verdict in verdicts if not verdict.usable}


def allocation_pending(
    allocation: quotas.Allocation, final: Mapping[str, Mapping[str, str]]
) -> bool:
    """Whether some increase was capped and must be granted by a later pass."""
    return any(
        not _same_hard(allocation.hard.get(namespace, {}), final.get(namespace, {}))
        for namespace in allocation.increases
    )


def _same_hard(left: Mapping[str, str], right: Mapping[str, str]) -> bool:
    return left.keys() == right.keys() and all(
        quantity.equal(value, right[key]) for key, value in left.items()
    )


# -- apply ---------------------------------------------------------------------------------


class Applier:
    """Writes only what differs, remembers what it wrote, and turns failures into messages."""

    def __init__(
        self,
        hub: client.Cluster,
        target: client.Cluster,
        observed: Observed,
        events: list[Event],
        errors: list[str],
    ) -> None:
        self.hub = hub
        self.target = target
        self.observed = observed
        self.events = events
        self.errors = errors
        self.current: dict[ObjectKey, Manifest] = dict(observed.objects)
        for namespace in observed.namespaces.values():
            self.current[key_of({**namespace, "kind": "Namespace"})] = namespace

    def cluster_for(self, kind: str) -> client.Cluster:
        """Cluster-scoped RBAC (the self-view of the CloudTenant) lives on the hub."""
        return self.hub if kind in CLUSTER_KIND_NAMES else self.target

    def ensure(self, manifest: Manifest, reason: str | None = None) -> None:
        key = key_of(manifest)
        existing = self.current.get(key)
        if not compare.needs_update(manifest, existing):
            return
        cluster = self.cluster_for(key[0])
        try:
            if compare.needs_replace(manifest, existing):
                cluster.delete(manifest["apiVersion"], manifest["kind"], key[2], key[1] or None)
            self.current[key] = cluster.apply(manifest)
        except client.ApiError as error:
            self.errors.append(f"{describe(key)}: {error}")
            return
        self.events.append(Event("Normal", *self._why(key, existing, reason)))

    def _why(
        self, key: ObjectKey, existing: Manifest | None, reason: str | None
    ) -> tuple[str, str]:
        if reason is not None and existing is not None:
            hard = (self.current[key].get("spec") or {}).get("hard") or {}
            return reason, f"{describe(key)} hard set to {format_amounts(hard)}"
        if existing is None and key[0] == "Namespace":
            return "NamespaceCreated", f"created {describe(key)}"
        if existing is None and self._tenant_was_ready():
            return "DriftRepaired", f"restored {describe(key)}, which had been deleted"
        if existing is None:
            return "Created", f"created {describe(key)}"
        return (
            "DriftRepaired" if self._tenant_was_ready() else "Updated",
            f"updated {describe(key)}",
        )

    def _tenant_was_ready(self) -> bool:
        status = self.observed.tenant.get("status") or {}
        return any(
            item.get("type") == READY and item.get("status") == conditions.TRUE
            for item in status.get("conditions") or []
        ) and self.observed.tenant["metadata"].get("generation") == status.get("observedGeneration")

    def prune(self, keep: set[ObjectKey], namespaces: Sequence[str]) -> None:
        """Delete objects labelled as the tenant's that the spec no longer wants."""
        for key in list(self.current):
            if key[0] == "Namespace" or key in keep:
                continue
            if key[1] and key[1] not in namespaces:
                continue  # objects in released namespaces are handled with the namespace
            try:
                self.cluster_for(key[0]).delete(
                    API_VERSIONS[key[0]], key[0], key[2], key[1] or None
                )
            except client.ApiError as error:
                self.errors.append(f"pruning {describe(key)}: {error}")
                continue
            self.current.pop(key, None)
            self.events.append(
                Event("Normal", "Pruned", f"deleted {describe(key)}, no longer wanted")
            )


def raise_quotas(
    hub: client.Cluster,
    name: str,
    spec: cloudtenant.CloudTenantSpec,
    usable: Sequence[str],
    allocation: quotas.Allocation,
    applied: Applier,
) -> dict[str, dict[str, str]]:
    """Phase 2: re-read the quotas, cap each planned raise to the slack left, apply it."""
    if allocation.increases:
        fresh = {
            item["metadata"]["namespace"]: quotas.observed_from_manifest(item)
            for item in hub.list("v1", "ResourceQuota", label_selector=meta.selector(name))
            if item["metadata"]["name"] == meta.QUOTA_NAME
        }
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
        capped = quotas.cap_increases(spec.quota, fresh, allocation.increases, namespaces=usable)
        for namespace, hard in capped.items():
            applied.ensure(quotas.manifest(name, namespace, hard), reason="QuotaRebalanced")
    final: dict[str, dict[str, str]] = {}
    for namespace in usable:
        quota = applied.current.get(("ResourceQuota", namespace, meta.QUOTA_NAME))
        if quota is not None:
            final[namespace] = dict((quota.get("spec") or {}).get("hard") or {})
    return final


def release_namespaces(
    hub: client.Cluster,
    observed: Observed,
    spec: cloudtenant.CloudTenantSpec | None,
    wanted: set[str],
    events: list[Event],
    errors: list[str],
) -> None:
    """Namespaces the tenant owns but no longer wants follow its deletion policy.

    Delete deletes only a namespace this very tenant created (its UID is recorded on it) and
    only when the tenant confirms it; otherwise the namespace is released as under Retain.
    """
    tenant = observed.tenant["metadata"]["name"]
    policy = spec.deletion_policy if spec is not None else _policy_of(observed.tenant)
    for name, namespace in observed.namespaces.items():
        labels = namespace["metadata"].get("labels") or {}
        if name in wanted or labels.get(constants.LABEL_TENANT) != tenant:
            continue
        kept = (
            why_kept(observed.tenant, namespace)
            if policy == cloudtenant.DeletionPolicy.DELETE
            else "deletionPolicy: Retain"
        )
        try:
            if kept is None:
                if not namespace["metadata"].get("deletionTimestamp"):
                    hub.delete("v1", "Namespace", name)
                    events.append(
                        Event(
                            "Normal",
                            "NamespaceDeleted",
                            f"deleted namespace {name} (deletionPolicy: Delete, confirmed)",
                        )
                    )
            else:
                orphan(hub, tenant, name, observed)
                events.append(
                    Event(
                        "Normal" if policy == cloudtenant.DeletionPolicy.RETAIN else "Warning",
                        "NamespaceRetained",
                        f"released namespace {name}; it and its data are kept ({kept})",
                    )
                )
        except client.ApiError as error:
            errors.append(f"releasing namespace {name}: {error}")


def why_kept(tenant: Manifest, namespace: Manifest) -> str | None:
    """Why deletionPolicy Delete keeps `namespace`; None when it may be deleted."""
    name = tenant["metadata"]["name"]
    if was_adopted(namespace):
        return "it was adopted, and a namespace the tenant did not create is never deleted"
    if not delete_confirmed(tenant):
        return (
            f"deletionPolicy: Delete is not confirmed; to delete, annotate the CloudTenant"
            f" {constants.ANNOTATION_CONFIRM_DELETE}={name}"
        )
    creator = desired_namespaces.owner_uid(namespace)
    if creator != tenant["metadata"].get("uid"):
        return (
            f"it was created by an earlier CloudTenant {name} (uid {creator})"
            if creator
            else "it carries no record of the CloudTenant that created it"
        )
    return None


def deletion_condition(
    tenant: Manifest, spec: cloudtenant.CloudTenantSpec
) -> list[conditions.Condition]:
    """DeletionConfirmed, for a Delete tenant: whether its namespaces would really be deleted."""
    if spec.deletion_policy != cloudtenant.DeletionPolicy.DELETE:
        return []
    name = tenant["metadata"]["name"]
    if delete_confirmed(tenant):
        return [
            conditions.Condition(
                DELETION_CONFIRMED,
                conditions.TRUE,
                "Confirmed",
                "deleting the tenant, or removing a namespace from the spec, deletes the"
                " namespaces this tenant created, with their data",
            )
        ]
    return [
        conditions.Condition(
            DELETION_CONFIRMED,
            conditions.FALSE,
            "NotConfirmed",
            f"deletionPolicy: Delete is not confirmed, so namespaces are released (kept) as with"
            f" Retain; to delete them, annotate the CloudTenant"
            f" {constants.ANNOTATION_CONFIRM_DELETE}={name}",
        )
    ]


def delete_confirmed(tenant: Manifest) -> bool:
    """Whether the tenant carries govcloud.io/confirm-delete: <its own name>."""
    annotations = tenant["metadata"].get("annotations") or {}
    return bool(annotations.get(constants.ANNOTATION_CONFIRM_DELETE) == tenant["metadata"]["name"])


def creator_uid(tenant: Manifest, found: Manifest | None) -> str:
    """The UID to record on a namespace: the creator's, kept once written; else this tenant's."""
    recorded = desired_namespaces.owner_uid(found) if found is not None else None
    return recorded or str(tenant["metadata"].get("uid") or "")


def was_adopted(namespace: Manifest) -> bool:
    annotations = namespace["metadata"].get("annotations") or {}
    return annotations.get(constants.ANNOTATION_ADOPTED) == "true"


def mark_adopted(manifest: Manifest) -> Manifest:
    """The namespace manifest with the adopted mark: such a namespace is never deleted."""
    metadata = manifest["metadata"]
    annotations = {**(metadata.get("annotations") or {}), constants.ANNOTATION_ADOPTED: "true"}
    return {**manifest, "metadata": {**metadata, "annotations": annotations}}


def orphan(hub: client.Cluster, tenant: str, namespace: str, observed: Observed) -> None:
    """Keep a namespace and its data, bounded: a frozen quota (no new pods) and no ingress
    replace the operator's objects, and the namespace is marked orphaned and frozen."""
    previous = observed.objects.get(("ResourceQuota", namespace, meta.QUOTA_NAME)) or {}
    hub.apply(quotas.released(tenant, namespace, (previous.get("spec") or {}).get("hard") or {}))
    hub.apply(networkpolicies.released(tenant, namespace))
    for key in list(observed.objects):
        if key[1] == namespace:
            hub.delete(API_VERSIONS[key[0]], key[0], key[2], namespace)
    hub.patch_merge(
        "v1",
        "Namespace",
        namespace,
        {
            "metadata": {
                "labels": {
                    constants.LABEL_MANAGED_BY: None,
                    constants.LABEL_TENANT: None,
                    constants.LABEL_ORPHANED: tenant,
                    constants.LABEL_FROZEN: desired_namespaces.FROZEN_RELEASED,
                },
                "annotations": {
                    constants.ANNOTATION_ORPHANED_AT: datetime.now(UTC).strftime(
                        "%Y-%m-%dT%H:%M:%SZ"
                    )
                },
            }
        },
    )


def _policy_of(tenant: Manifest) -> cloudtenant.DeletionPolicy:
    raw = (tenant.get("spec") or {}).get("deletionPolicy")
    return (
        cloudtenant.DeletionPolicy.DELETE
        if raw == cloudtenant.DeletionPolicy.DELETE.value
        else cloudtenant.DeletionPolicy.RETAIN
    )


# -- deletion ------------------------------------------------------------------------------


def add_finalizer(hub: client.Cluster, body: Manifest) -> Manifest:
    return hub.add_finalizer(
        {**body, "apiVersion": constants.API_VERSION, "kind": KIND}, constants.FINALIZER
    )


def finalize(hub: client.Cluster, target: client.Cluster, body: Manifest) -> Result:
    """The tenant is being deleted: release its namespaces per policy, remove its RBAC, let go."""
    name = body["metadata"]["name"]
    result = Result(outcome="deleted", body=body)
    if constants.FINALIZER not in (body["metadata"].get("finalizers") or []):
        return result
    if crd_deleting(hub):
        # The CRD itself is going away (an uninstall, or a reinstall from Git): every tenant is
        # being deleted at once, and none of them means it. Keep everything as it is.
        result.events.append(Event("Warning", "CRDDeleted", CRD_DELETED_MESSAGE))
        let_go(hub, body)
        return result
    status = body.get("status") or {}
    if status.get("phase") != cloudtenant.Phase.TERMINATING.value:
        hub.patch_status(
            constants.API_VERSION, KIND, name, {"phase": cloudtenant.Phase.TERMINATING.value}
        )
    observed = gather(hub, target, body, None)
    errors: list[str] = []
    release_namespaces(target, observed, None, set(), result.events, errors)
    for key in list(observed.objects):
        if not key[1]:
            try:
                hub.delete(API_VERSIONS[key[0]], key[0], key[2])
            except client.ApiError as error:
                errors.append(f"deleting {describe(key)}: {error}")
    if errors:
        result.outcome, result.retry = "error", True
        result.events.append(Event("Warning", "CleanupFailed", "; ".join(errors)))
        return result
    let_go(hub, body)
    return result


def let_go(hub: client.Cluster, body: Manifest) -> None:
    """Remove the operator's finalizer; once more from a fresh read if the list moved (kopf
    takes its own finalizer off a deleted object meanwhile)."""
    try:
        hub.remove_finalizer(body, constants.FINALIZER)
    except client.ApiError as error:
        if error.status not in (409, 422):
            raise
        fresh = hub.get(constants.API_VERSION, KIND, body["metadata"]["name"])
        if fresh is not None:
            hub.remove_finalizer(fresh, constants.FINALIZER)


def crd_deleting(hub: client.Cluster) -> bool:
    """Whether the CloudTenant CRD is being deleted (or already gone)."""
    crd = hub.get(CRD_API_VERSION, "CustomResourceDefinition", CRD_NAME)
    return crd is None or bool(crd["metadata"].get("deletionTimestamp"))


def let_go_all(hub: client.Cluster) -> list[Manifest]:
    """The CRD is being deleted: drop the finalizer of every tenant, changing nothing else.

    The API server deletes every CloudTenant next, and none of them means it; without the
    finalizer they go without a finalization pass, so no namespace is deleted or released.
    kopf's finalizer goes too: kopf stops serving a resource whose CRD is terminating, so it
    would hold the CRD in Terminating for ever. Returns the tenants let go.
    """
    if not crd_deleting(hub):
        return []
    try:
        bodies = hub.list(constants.API_VERSION, KIND)
    except client.ApiError as error:
        if error.status == 404:  # the CRD and every tenant are gone
            return []
        raise
    released = []
    for body in bodies:
        current: Manifest | None = {**body, "apiVersion": constants.API_VERSION, "kind": KIND}
        held = body["metadata"].get("finalizers") or []
        for finalizer in (constants.FINALIZER, KOPF_FINALIZER):
            if current is not None and finalizer in (current["metadata"].get("finalizers") or []):
                current = hub.remove_finalizer(current, finalizer)
        if constants.FINALIZER in held or KOPF_FINALIZER in held:
            released.append(body)
    return released


# -- status --------------------------------------------------------------------------------


def refuse(hub: client.Cluster, body: Manifest, message: str, now: datetime) -> Result:
    """A spec the operator cannot act on: phase Error and a condition saying what to fix."""
    generation = body["metadata"].get("generation")
    previous = (body.get("status") or {}).get("conditions") or []
    wanted = [conditions.Condition(READY, conditions.FALSE, "InvalidSpec", message)]
    status = {
        "phase": cloudtenant.Phase.ERROR.value,
        "observedGeneration": generation,
        "conditions": conditions.merge(previous, wanted, generation, now),
    }
    write_status(hub, body, status)
    return Result(
        outcome="invalid",
        body=body,
        events=[Event("Warning", "InvalidSpec", message)],
    )


_validation_message = events.validation_message


def tenant_status(
    observed: Observed,
    spec: cloudtenant.CloudTenantSpec,
    verdicts: Sequence[NamespaceVerdict],
    final_quotas: Mapping[str, Mapping[str, str]],
    allocation: quotas.Allocation,
    errors: Sequence[str],
    now: datetime,
    extra: Sequence[conditions.Condition] = (),
    unquoted: Mapping[str, str] | None = None,
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
        *decide_conditions(spec, namespace_entries, allocation, errors, total_used, unquoted or {}),
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


def decide_conditions(
    spec: cloudtenant.CloudTenantSpec,
    namespaces: Sequence[Mapping[str, Any]],
    allocation: quotas.Allocation,
    errors: Sequence[str],
    total_used: Mapping[str, str],
    unquoted: Mapping[str, str] | None = None,
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
    network = (
        conditions.Condition(
            NETWORK_ISOLATED,
            conditions.TRUE,
            "IngressRestricted",
            "ingress only from the tenant, allowFrom peers and platform namespaces",
        )
        if spec.network.isolated
        else conditions.Condition(
            NETWORK_ISOLATED, conditions.FALSE, "IsolationDisabled", "network.isolated is false"
        )
    )
    if errors:
        access_or_error = conditions.Condition(
            READY, conditions.FALSE, "ApplyFailed", "; ".join(errors)[:2000]
        )
    else:
        blocking = [
            item for item in (ns_condition, quota_condition) if item.status != conditions.TRUE
        ]
        access_or_error = (
            conditions.Condition(READY, conditions.FALSE, blocking[0].reason, blocking[0].message)
            if blocking and (blocking[0] is ns_condition or blocking[0].reason == QUOTA_MISSING)
            else conditions.Condition(
                READY, conditions.TRUE, "Reconciled", "everything the spec asks for is in place"
            )
        )
    return [access_or_error, ns_condition, quota_condition, access, network]


def decide_phase(spec: cloudtenant.CloudTenantSpec, wanted: Sequence[conditions.Condition]) -> str:
    ready = conditions.is_true(wanted, READY)
    if any(item.type == READY and item.reason == "ApplyFailed" for item in wanted):
        return cloudtenant.Phase.ERROR.value
    if not ready:
        return cloudtenant.Phase.PENDING.value
    return cloudtenant.Phase.SUSPENDED.value if spec.suspended else cloudtenant.Phase.ACTIVE.value


def write_status(hub: client.Cluster, body: Manifest, status: Manifest) -> None:
    """Patch the status only when it differs from what is stored."""
    current = body.get("status") or {}
    if all(current.get(key) == value for key, value in status.items()):
        return
    patch = compare.merge_patch(current, status)
    # status.migrations is written by the MigrationPlan reconciler; it is never cleared here.
    patch.pop("migrations", None)
    hub.patch_status(constants.API_VERSION, KIND, body["metadata"]["name"], patch)


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


def format_amounts(amounts: Mapping[str, str]) -> str:
    return ", ".join(f"{resource}={value}" for resource, value in sorted(amounts.items()))


def describe(key: ObjectKey) -> str:
    kind, namespace, name = key
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"
