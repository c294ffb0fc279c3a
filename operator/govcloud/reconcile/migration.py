"""MigrationPlan reconciler: authorize, gather source and target, decide (pure), act, write status.

Each pass:
1. authorize: the plan's namespace names its tenant; the target namespace must be the same
   tenant's; the source namespace must be the tenant's or granted to it by the platform team
   (annotation govcloud.io/migration-grant on the source namespace, which tenant members
   cannot write). Until that holds nothing of the source is read beyond its Namespace.
2. gather: the source objects of the plan's kinds and selector, each turned into a move/skip
   decision by `migration.transform`; the target's objects of those kinds; availability.
3. decide with `migration.machine`, carry out the one action (each one idempotent), and
   write the status once, only when it changed (an idle plan costs no writes). An action that
   writes (copy, cutover) is announced first: the status says Copying or CuttingOver, with
   the stage Running, before the first object is written, so a crash half-way is resumed as
   that stage.
4. roll the tenant's plans up into CloudTenant.status.migrations, again only on a change.

A deleted plan is released by `finalize` (the finalizer govcloud.io/finalizer): a Completed
plan only drops its bookkeeping annotations from the source; any other plan that has begun
copying is rolled back first (docs/migration.md, "Deleting a plan").
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pydantic

from govcloud import constants, metrics
from govcloud.api.v1alpha1 import migrationplan, subcenter
from govcloud.api.v1alpha1.migrationplan import Phase
from govcloud.desired import compare
from govcloud.k8s import cache, client, clusters
from govcloud.migration import machine, transform
from govcloud.reconcile import conditions, events, finalizers, placement, statuses

log = logging.getLogger(__name__)

KIND = "MigrationPlan"
# Actions whose status (Copying, CuttingOver) is written before the first object is.
ANNOUNCED = frozenset({machine.Action.COPY, machine.Action.CUTOVER})
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

AUTHORIZED = "Authorized"
ELIGIBLE = "Eligible"
ASSESSED = "Assessed"
DEADLINE_AT_RISK = "DeadlineAtRisk"
OVERDUE = "Overdue"

Manifest = dict[str, Any]


Event = events.Event


@dataclass
class Result:
    """What a pass did: the plan as seen, events to post, metrics, when to look again."""

    outcome: str
    body: Manifest | None = None
    events: list[Event] = field(default_factory=list)
    snapshot: metrics.MigrationSnapshot | None = None
    requeue: float | None = None
    message: str = ""  # why a deletion still waits (outcome "finalizing")


@dataclass(frozen=True)
class Access:
    """The plan's tenant and clusters, or why the plan may not touch anything."""

    tenant: str | None = None
    tenant_body: Manifest | None = None
    source: client.Cluster | None = None
    reason: str = ""
    message: str = ""

    @property
    def allowed(self) -> bool:
        return self.source is not None and not self.reason


@dataclass
class Inventory:
    """The source as decisions, and what the plan has in the target."""

    decisions: list[transform.Decision] = field(default_factory=list)
    sources: dict[tuple[str, str], Manifest] = field(default_factory=dict)
    ours: dict[tuple[str, str], Manifest] = field(default_factory=dict)
    clashes: list[str] = field(default_factory=list)

    @property
    def moves(self) -> list[transform.Decision]:
        return [decision for decision in self.decisions if decision.moves]


def reconcile(
    hub: client.Cluster,
    registry: clusters.ClusterRegistry | None,
    namespace: str,
    name: str,
    settings: Any,
    now: datetime | None = None,
) -> Result:
    """One level-based pass over the MigrationPlan `namespace`/`name`."""
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    body = hub.get(constants.API_VERSION, KIND, name, namespace)
    if body is None:
        tenant = statuses.tenant_of(hub, namespace)
        if tenant:
            rollup(hub, tenant, settings, now)
        return Result(outcome="deleted")
    if body["metadata"].get("deletionTimestamp"):
        return finalize(hub, registry, body, settings, now)
    body = own(hub, body)
    status = body.get("status") or {}
    phase = _phase(status.get("phase"))
    try:
        spec = migrationplan.parse(body.get("spec") or {})
    except pydantic.ValidationError as error:
        return invalid(hub, body, _validation_message(error), now)
    access = authorize(hub, registry, body, spec)
    started = _stage(status, "copy") is not None
    facts, inventory = observe(hub, access, body, spec, started)
    if facts.blocker is not None and started and phase is not Phase.ROLLING_BACK:
        # Once copying began, a lost source is waited for, never guessed about.
        return hold(hub, body, access, facts.blocker, now, settings)
    step = decided = machine.decide(phase, facts, now)
    events: list[Event] = []
    done = True
    error_message = ""
    if step.action is not machine.Action.NONE and access.source is not None:
        if step.action in ANNOUNCED:
            body = announce(hub, body, spec, access, inventory, step, facts, now, settings, events)
            status = body["status"]
        pause = float(getattr(settings, "migration_write_pause_seconds", 0.0) or 0.0)
        try:
            waiting = act(step.action, access.source, hub, body, spec, inventory, pause)
        except client.ApiError as error:
            error_message = str(error)[:1000]
        else:
            done = not waiting
            if waiting:
                step = dataclasses.replace(step, message=waiting)
    elif step.action is not machine.Action.NONE:
        done, error_message = False, facts.blocker or "the source cannot be reached"
    step, new_phase = ended(step, done, error_message, spec, events)
    new_status = plan_status(
        body,
        spec,
        access,
        inventory,
        (decided, step),
        new_phase,
        facts,
        error_message,
        now,
        settings,
    )
    events.extend(transition_events(status, new_status, spec))
    write_status(hub, body, new_status)
    if access.tenant:
        rollup(hub, access.tenant, settings, now)
    busy = new_phase in machine.BUSY or new_phase is not phase
    return Result(
        outcome="error" if error_message else "success",
        body=body,
        events=events,
        snapshot=snapshot(access, new_status),
        requeue=settings.migration_poll_seconds
        if busy
        else wake_after(spec, new_phase, now, settings),
    )


def ended(
    step: machine.Step,
    done: bool,
    error_message: str,
    spec: migrationplan.MigrationPlanSpec,
    events: list[Event],
) -> tuple[machine.Step, Phase]:
    """The step as it ended and the phase to write: failed, done, or still the step's own."""
    if error_message:
        failed_step = (
            machine.failed(spec.rollback_policy, step.stage, error_message)
            if step.action is not machine.Action.ROLLBACK
            else machine.Step(Phase.ROLLING_BACK, step.action, "RollbackRetrying", error_message)
        )
        if step.action is machine.Action.ROLLBACK:  # the phase stays: say so once a pass
            events.append(Event("Warning", failed_step.reason, failed_step.message))
        return failed_step, failed_step.phase
    if step.action is not machine.Action.NONE and done:
        return step, machine.succeeded(step)
    return step, step.phase


def own(hub: client.Cluster, body: Manifest) -> Manifest:
    """The plan with the operator's finalizer on it: a deletion always passes `finalize`."""
    current = body
    for _ in range(3):
        if constants.FINALIZER in (current["metadata"].get("finalizers") or []):
            return current
        try:
            return hub.add_finalizer(_typed(current), constants.FINALIZER)
        except client.ApiError as error:  # someone else moved the finalizer list meanwhile
            if error.status != 422:
                raise
        metadata = body["metadata"]
        current = (
            cache.uncached(hub).get(
                constants.API_VERSION, KIND, metadata["name"], metadata["namespace"]
            )
            or body
        )
    return hub.add_finalizer(_typed(current), constants.FINALIZER)


def announce(
    hub: client.Cluster,
    body: Manifest,
    spec: migrationplan.MigrationPlanSpec,
    access: Access,
    inventory: Inventory,
    step: machine.Step,
    facts: machine.Facts,
    now: datetime,
    settings: Any,
    events: list[Event],
) -> Manifest:
    """Write the step's phase, its stage Running, before its first write: the plan as stored."""
    before = body.get("status") or {}
    announced = plan_status(
        body, spec, access, inventory, (step, step), step.phase, facts, "", now, settings,
        running=True,
    )  # fmt: skip
    events.extend(transition_events(before, announced, spec))
    write_status(hub, body, announced)
    return {**body, "status": announced}


def observe(
    hub: client.Cluster,
    access: Access,
    body: Manifest,
    spec: migrationplan.MigrationPlanSpec,
    started: bool,
) -> tuple[machine.Facts, Inventory]:
    """Read the source and the target (only when authorized) into the machine's facts."""
    status = body.get("status") or {}
    blocker = None if access.allowed else access.message
    inventory = Inventory()
    problems: list[str] = []
    available = False
    if access.allowed and access.source is not None:
        try:
            inventory = gather(access.source, hub, body, spec)
            available = all_available(inventory)
        except client.ApiError as error:
            blocker = f"cannot read the source or the target: {error}"[:1000]
        if not started and blocker is None:
            problems = assessment_problems(inventory, access, spec)
    facts = machine.Facts(
        blocker=blocker,
        ineligible=ineligible(spec, access.tenant_body),
        problems=tuple(problems),
        started=started,
        available=available,
        verify_started_at=_stage_started(status, "verify"),
        verify_timeout=timedelta(seconds=spec.verify_timeout_seconds),
        not_before=spec.not_before,
        required=frozenset(spec.approvals_required),
        approved=spec.approved(),
        stale=spec.stale(),
        rollback_requested=spec.rollback,
        policy=spec.rollback_policy,
    )
    return facts, inventory


def wake_after(
    spec: migrationplan.MigrationPlanSpec, phase: Phase, now: datetime, settings: Any
) -> float | None:
    """Seconds until an idle plan must be looked at again: its window opens, or a deadline
    rule (DeadlineAtRisk, Overdue) starts to hold. A second later, so the pass sees it hold."""
    moments = [
        moment
        for moment in (
            spec.not_before,
            machine.next_deadline_change(
                phase, spec.deadline, now, timedelta(hours=settings.migration_at_risk_hours)
            ),
        )
        if moment is not None and moment > now
    ]
    if not moments:
        return None
    return max(1.0, (min(moments) - now).total_seconds() + 1.0)


# -- authorization ---------------------------------------------------------------------------


def authorize(
    hub: client.Cluster,
    registry: clusters.ClusterRegistry | None,
    body: Manifest,
    spec: migrationplan.MigrationPlanSpec,
) -> Access:
    """Who the plan acts for, and whether it may read its source and write its target."""
    namespace = body["metadata"]["namespace"]
    tenant = statuses.tenant_of(hub, namespace)
    if tenant is None:
        return Access(
            reason="NotInTenantNamespace",
            message=(
                f"namespace {namespace} belongs to no CloudTenant; create the MigrationPlan in"
                " a namespace of the tenant the app moves to"
            ),
        )
    tenant_body = hub.get(constants.API_VERSION, "CloudTenant", tenant)
    if tenant_body is None:
        return Access(tenant, reason="TenantNotFound", message=f"CloudTenant {tenant} not found")
    reason, message = target_verdict(hub, tenant, spec.target_namespace)
    if reason:
        return Access(tenant, tenant_body, reason=reason, message=message)
    source, reason, message = source_cluster(hub, registry, spec)
    if source is None:
        return Access(tenant, tenant_body, reason=reason, message=message)
    reason, message = source_verdict(source, tenant, spec)
    if reason:
        return Access(tenant, tenant_body, reason=reason, message=message)
    return Access(tenant, tenant_body, source)


def target_verdict(hub: client.Cluster, tenant: str, namespace: str) -> tuple[str, str]:
    """("", "") when the target namespace is the tenant's own, else why not. A missing
    namespace and another's get the same answer: a plan is no probe of the hub's namespaces."""
    target = hub.get("v1", "Namespace", namespace)
    if target is not None and _labels(target).get(constants.LABEL_TENANT) == tenant:
        return "", ""
    return "TargetNotOfTenant", (
        f"target namespace {namespace} is not a namespace of tenant {tenant}; a plan moves"
        " apps only into namespaces of its own tenant"
    )


def source_verdict(
    source: client.Cluster, tenant: str, spec: migrationplan.MigrationPlanSpec
) -> tuple[str, str]:
    """("", "") when the source namespace is the tenant's or granted to it, else why not.

    A missing namespace, another tenant's and an ungranted one get the same reason and
    message, so a plan cannot probe which namespaces exist or who owns them."""
    where = f"SubCenter {spec.source.sub_center}" if spec.source.sub_center else "the hub"
    try:
        found = source.get("v1", "Namespace", spec.source.namespace)
    except client.ApiError as error:
        return "SourceUnreachable", f"{where} cannot be reached: {error}"[:1000]
    if found is not None:
        source_owner = _labels(found).get(constants.LABEL_TENANT)
        grants = {
            item.strip()
            for item in str(_annotations(found).get(transform.ANNOTATION_GRANT, "")).split(",")
        }
        if source_owner == tenant or tenant in grants:
            return "", ""
    return "SourceNotGranted", (
        f"source namespace {spec.source.namespace} on {where} is not granted to tenant"
        f" {tenant}, or does not exist: nothing was read or copied. The platform team grants"
        f" a legacy namespace with the annotation {transform.ANNOTATION_GRANT}={tenant} on it"
    )


def source_cluster(
    hub: client.Cluster,
    registry: clusters.ClusterRegistry | None,
    spec: migrationplan.MigrationPlanSpec,
) -> tuple[client.Cluster | None, str, str]:
    site_name = spec.source.sub_center
    if site_name is None:
        return hub, "", ""
    site = hub.get(constants.API_VERSION, "SubCenter", site_name)
    if site is None:
        return None, "SubCenterNotFound", f"SubCenter {site_name} does not exist"
    try:
        site_spec = subcenter.SubCenterSpec.model_validate(site.get("spec") or {})
    except pydantic.ValidationError:
        return None, "SourceUnreachable", f"SubCenter {site_name} has an invalid spec"
    target = placement.connect(hub, registry, site_name, site_spec)
    if target.cluster is None:
        return None, "SourceUnreachable", target.message
    return target.cluster, "", ""


def ineligible(spec: migrationplan.MigrationPlanSpec, tenant_body: Manifest | None) -> str | None:
    """Why the app may not move to the cloud at all, if it may not."""
    if spec.app.classified:
        return "classified (涉密) systems are never moved to the government cloud"
    if spec.app.security_level > 3:
        return (
            f"MLPS level {spec.app.security_level} systems are not hosted on the government"
            " cloud, which is certified for levels 1 to 3"
        )
    tenant_level = int(((tenant_body or {}).get("spec") or {}).get("securityLevel") or 0)
    if tenant_body is not None and spec.app.security_level > tenant_level:
        return (
            f"the app is MLPS level {spec.app.security_level} but its tenant's namespaces are"
            f" protected for level {tenant_level}; raise the tenant's securityLevel first"
        )
    return None


# -- gather ----------------------------------------------------------------------------------


def plan_ref(body: Manifest) -> transform.PlanRef:
    metadata = body["metadata"]
    return transform.PlanRef(
        uid=str(metadata["uid"]), namespace=metadata["namespace"], name=metadata["name"]
    )


def gather(
    source: client.Cluster,
    target: client.Cluster,
    body: Manifest,
    spec: migrationplan.MigrationPlanSpec,
) -> Inventory:
    """Source objects as decisions and the target's objects of the same kinds (2 lists a kind).

    Secrets the operator may not read (the chart's features.migrations.copySecrets: false)
    are skipped, with one inventory line that says so, instead of failing every plan."""
    ref = plan_ref(body)
    selector = ",".join(f"{key}={value}" for key, value in sorted(spec.source.selector.items()))
    inventory = Inventory()
    kinds = [kind for kind in migrationplan.SUPPORTED_KINDS if kind in spec.source.kinds]
    for kind in kinds:
        api_version = transform.API_VERSIONS[kind]
        found = readable_list(source, kind, spec.source.namespace, label_selector=selector or None)
        if found is None:
            inventory.decisions.append(SECRETS_NOT_READABLE)
            continue
        for item in found:
            item.setdefault("kind", kind)
            item.setdefault("apiVersion", api_version)
            inventory.sources[(kind, item["metadata"]["name"])] = item
            inventory.decisions.append(
                transform.decide(
                    item,
                    target_namespace=spec.target_namespace,
                    plan=ref,
                    empty_volumes=spec.empty_volumes(),
                )
            )
        for item in readable_list(target, kind, spec.target_namespace) or []:
            item.setdefault("kind", kind)
            key = (kind, item["metadata"]["name"])
            if _labels(item).get(transform.LABEL_PLAN_UID) == ref.uid:
                inventory.ours[key] = item
            elif any(
                decision.moves and (decision.kind, decision.name) == key
                for decision in inventory.decisions
            ):
                inventory.clashes.append(
                    f"{kind} {spec.target_namespace}/{key[1]} already exists in the target and"
                    " is not the plan's: it is never overwritten; rename or remove it"
                )
    return inventory


SECRETS_NOT_READABLE = transform.Decision(
    "Secret",
    "*",
    transform.SKIP,
    "the operator may not read Secrets on this platform (chart value"
    " features.migrations.copySecrets: false): no Secret moves; create the app's Secrets in"
    " the target namespace yourself",
)


def readable_list(
    cluster: client.Cluster, kind: str, namespace: str, label_selector: str | None = None
) -> list[Manifest] | None:
    """The objects of `kind` in `namespace`; None for Secrets the operator may not list (403)."""
    try:
        return cluster.list(
            transform.API_VERSIONS[kind], kind, namespace, label_selector=label_selector
        )
    except client.ApiError as error:
        if kind == "Secret" and error.status == 403:
            return None
        raise


def assessment_problems(
    inventory: Inventory, access: Access, spec: migrationplan.MigrationPlanSpec
) -> list[str]:
    """Name clashes and quota shortfall; the copy starts only when there are none."""
    problems = list(inventory.clashes) + data_problems(inventory, spec)
    wanted: dict[str, Decimal] = {}
    for decision in inventory.moves:
        if (decision.kind, decision.name) in inventory.ours or decision.manifest is None:
            continue  # already in the target: its usage is counted by the quota
        for resource, amount in transform.demand(decision.manifest).items():
            wanted[resource] = wanted.get(resource, Decimal(0)) + amount
    quota = ((access.tenant_body or {}).get("status") or {}).get("quota") or {}
    shortfall = transform.shortfall(wanted, quota.get("hard") or {}, quota.get("used") or {})
    if shortfall:
        problems.append(
            f"the app does not fit the free quota of tenant {access.tenant}: "
            + "; ".join(shortfall)
        )
    if not inventory.decisions:
        problems.append(
            f"nothing to move: no {', '.join(spec.source.kinds)} in {spec.source.namespace}"
            + (" matching the selector" if spec.source.selector else "")
        )
    return problems


def data_problems(inventory: Inventory, spec: migrationplan.MigrationPlanSpec) -> list[str]:
    """Volumes whose data would not move, and dataMigration names that match nothing."""
    problems = [
        f"{decision.kind} {decision.name}: {decision.reason}"
        for decision in inventory.decisions
        if decision.action == transform.NEEDS_DATA
    ]
    known = {
        f"{decision.kind}/{decision.name}"
        for decision in inventory.decisions
        if decision.kind in migrationplan.DATA_KINDS
    }
    problems += [
        f"spec.dataMigration.volumes names {ref}, which is not among the objects the plan moves"
        for ref in sorted(spec.empty_volumes() - known)
    ]
    return problems


def available(workload: Mapping[str, Any]) -> bool:
    """Whether a Deployment or StatefulSet runs all its replicas, ready, at its generation."""
    spec = workload.get("spec") or {}
    status = workload.get("status") or {}
    wanted = int(spec.get("replicas", 1) or 0)
    generation = (workload.get("metadata") or {}).get("generation") or 0
    if int(status.get("observedGeneration") or 0) < int(generation):
        return False
    ready_field = "availableReplicas" if workload.get("kind") == "Deployment" else "readyReplicas"
    return int(status.get(ready_field) or 0) >= wanted


def all_available(inventory: Inventory) -> bool:
    """Whether every moving workload exists in the target as the plan's, and is Available."""
    for decision in inventory.moves:
        if decision.kind in transform.WORKLOADS:
            found = inventory.ours.get((decision.kind, decision.name))
            if found is None or not available(found):
                return False
    return True


# -- act -------------------------------------------------------------------------------------


def act(
    action: machine.Action,
    source: client.Cluster,
    target: client.Cluster,
    body: Manifest,
    spec: migrationplan.MigrationPlanSpec,
    inventory: Inventory,
    pause: float = 0.0,
) -> str:
    """Carry out one action; "" when it is done, else what it waits for (a rollback may take
    several passes).

    `pause` (the testing-only GOVCLOUD_MIGRATION_WRITE_PAUSE_SECONDS, 0 in production)
    waits after each object the copy or the cutover writes.
    """
    if action is machine.Action.COPY:
        copy(target, inventory, pause)
        return ""
    if action is machine.Action.CUTOVER:
        cutover(source, target, spec, inventory, pause)
        return ""
    return rollback(source, target, body, spec, inventory)


def copy(target: client.Cluster, inventory: Inventory, pause: float = 0.0) -> None:
    """Server-side apply every moving object into the target, in kind order."""
    for decision in inventory.moves:
        assert decision.manifest is not None
        applied = target.apply(decision.manifest)
        applied.setdefault("kind", decision.kind)
        inventory.ours[(decision.kind, decision.name)] = applied
        _pause(pause)


def _pause(seconds: float) -> None:
    if seconds > 0:
        time.sleep(seconds)  # testing only: lets a test stop the operator half-way


def cutover(
    source: client.Cluster,
    target: client.Cluster,
    spec: migrationplan.MigrationPlanSpec,
    inventory: Inventory,
    pause: float = 0.0,
) -> None:
    """Scale the source down (remembering each count once), suspend its CronJobs, resume ours.

    Each source object gets its annotation and its new scale in one merge patch, and the
    annotation is written only if absent: a pass that dies half-way and runs again never
    replaces a remembered count with the 0 it set itself.
    """
    namespace = spec.source.namespace
    for decision in inventory.moves:
        found = inventory.sources.get((decision.kind, decision.name))
        if found is None:
            continue
        notes = _annotations(found)
        api_version = transform.API_VERSIONS[decision.kind]
        if decision.kind in transform.WORKLOADS:
            replicas = int((found.get("spec") or {}).get("replicas", 1) or 0)
            if transform.ANNOTATION_ORIGINAL_REPLICAS in notes and replicas == 0:
                continue
            patch: Manifest = {"spec": {"replicas": 0}}
            if transform.ANNOTATION_ORIGINAL_REPLICAS not in notes:
                patch["metadata"] = {
                    "annotations": {transform.ANNOTATION_ORIGINAL_REPLICAS: str(replicas)}
                }
            source.patch_merge(api_version, decision.kind, decision.name, patch, namespace)
            _pause(pause)
        elif decision.kind == "CronJob":
            suspended = bool((found.get("spec") or {}).get("suspend"))
            if transform.ANNOTATION_ORIGINAL_SUSPEND in notes and suspended:
                continue
            patch = {"spec": {"suspend": True}}
            if transform.ANNOTATION_ORIGINAL_SUSPEND not in notes:
                patch["metadata"] = {
                    "annotations": {
                        transform.ANNOTATION_ORIGINAL_SUSPEND: "true" if suspended else "false"
                    }
                }
            source.patch_merge(api_version, decision.kind, decision.name, patch, namespace)
            _pause(pause)
    for (kind, name), ours in inventory.ours.items():
        if kind not in transform.SUSPENDABLE:
            continue
        resume = not (
            kind == "CronJob"
            and _annotations(ours).get(transform.ANNOTATION_ORIGINAL_SUSPEND) == "true"
        )
        if bool((ours.get("spec") or {}).get("suspend")) == (not resume):
            continue
        target.patch_merge(
            transform.API_VERSIONS[kind],
            kind,
            name,
            {"spec": {"suspend": not resume}},
            spec.target_namespace,
        )


def rollback(
    source: client.Cluster,
    target: client.Cluster,
    body: Manifest,
    spec: migrationplan.MigrationPlanSpec,
    inventory: Inventory,
) -> str:
    """Restore the source exactly, wait until it runs, then delete what the plan made; ""
    when done, else what it waits for.

    A remembered count is restored first and its annotation removed only once the workload
    is Available again. The target is emptied only when every workload the plan has there
    runs in the source again: present, Available, and running pods if its copy does. So a
    source that is gone, or was scaled down by hand, keeps the copies (the app runs on at
    least one side throughout). PersistentVolumeClaims are never deleted: they may hold data.
    """
    restoring = restore_source(source, spec, inventory)
    missing = not_running_in_source(inventory, spec)
    if restoring or missing:
        return (
            "rolling back: the plan's copies in the target stay until the source runs again;"
            f" waiting for {', '.join(restoring + missing)}"
        )[:2000]
    uid = plan_ref(body).uid
    for kind in spec.source.kinds:
        if kind == "PersistentVolumeClaim":
            continue
        found = readable_list(
            target, kind, spec.target_namespace, f"{transform.LABEL_PLAN_UID}={uid}"
        )
        for item in found or []:
            target.delete(
                transform.API_VERSIONS[kind], kind, item["metadata"]["name"], spec.target_namespace
            )
    inventory.ours.clear()
    return ""


def restore_source(
    source: client.Cluster, spec: migrationplan.MigrationPlanSpec, inventory: Inventory
) -> list[str]:
    """Put back each remembered count and CronJob suspension; the workloads still coming up."""
    namespace = spec.source.namespace
    restoring = []
    for (kind, name), found in inventory.sources.items():
        notes = _annotations(found)
        api_version = transform.API_VERSIONS[kind]
        if kind in transform.WORKLOADS and transform.ANNOTATION_ORIGINAL_REPLICAS in notes:
            original = int(notes[transform.ANNOTATION_ORIGINAL_REPLICAS] or 0)
            current = int((found.get("spec") or {}).get("replicas", 1) or 0)
            if current != original:
                source.patch_merge(
                    api_version, kind, name, {"spec": {"replicas": original}}, namespace
                )
                restoring.append(f"{kind} {namespace}/{name} to scale back to {original}")
            elif available(found):
                source.patch_merge(
                    api_version,
                    kind,
                    name,
                    {"metadata": {"annotations": {transform.ANNOTATION_ORIGINAL_REPLICAS: None}}},
                    namespace,
                )
            else:
                restoring.append(f"{kind} {namespace}/{name} to become Available")
        elif kind == "CronJob" and transform.ANNOTATION_ORIGINAL_SUSPEND in notes:
            source.patch_merge(
                api_version,
                kind,
                name,
                {
                    "metadata": {"annotations": {transform.ANNOTATION_ORIGINAL_SUSPEND: None}},
                    "spec": {"suspend": notes[transform.ANNOTATION_ORIGINAL_SUSPEND] == "true"},
                },
                namespace,
            )
    return restoring


def not_running_in_source(inventory: Inventory, spec: migrationplan.MigrationPlanSpec) -> list[str]:
    """Each workload the plan has in the target that does not run in the source, in words."""
    namespace = spec.source.namespace
    missing = []
    for (kind, name), ours in sorted(inventory.ours.items()):
        if kind not in transform.WORKLOADS:
            continue
        found = inventory.sources.get((kind, name))
        if found is None or (found.get("metadata") or {}).get("deletionTimestamp"):
            missing.append(f"{kind} {namespace}/{name} to exist in the source")
            continue
        remembered = _annotations(found).get(transform.ANNOTATION_ORIGINAL_REPLICAS)
        wanted = int(remembered or 0) if remembered is not None else _replicas(found)
        if _replicas(ours) > 0 and wanted == 0:
            missing.append(f"{kind} {namespace}/{name} to be scaled up in the source")
        elif remembered is None and not available(found):  # restore_source watches the rest
            missing.append(f"{kind} {namespace}/{name} to become Available")
    return missing


def _replicas(workload: Mapping[str, Any]) -> int:
    return int((workload.get("spec") or {}).get("replicas", 1) or 0)


# -- status ----------------------------------------------------------------------------------


def plan_status(
    body: Manifest,
    spec: migrationplan.MigrationPlanSpec,
    access: Access,
    inventory: Inventory,
    steps: tuple[machine.Step, machine.Step],
    phase: Phase,
    facts: machine.Facts,
    error: str,
    now: datetime,
    settings: Any,
    *,
    running: bool = False,
) -> Manifest:
    """The whole status: `steps` is the step as decided and as it ended (after a failure).

    `running`: the status announced before the step's action, its stage Running.
    """
    decided, step = steps
    previous = body.get("status") or {}
    generation = body["metadata"].get("generation")
    stages = _stages(previous, decided, phase, facts, error, now, running)
    started = any(item["name"] == "copy" for item in stages)
    status: Manifest = {
        "phase": phase.value,
        "observedGeneration": generation,
        "tenant": access.tenant,
        "message": step.message[:2000],
        "progress": machine.progress(phase, started, int(previous.get("progress") or 0)),
        "stages": stages,
        "approvals": _approvals(previous, spec, now),
        "digest": spec.digest(),
    }
    if inventory.decisions or not access.allowed:
        status["inventory"] = [
            {
                "kind": decision.kind,
                "name": decision.name,
                "action": decision.action,
                "reason": decision.reason,
                "moved": (decision.kind, decision.name) in inventory.ours,
            }
            for decision in inventory.decisions
        ]
        status["summary"] = {
            "move": len(inventory.moves),
            "skip": len(inventory.decisions) - len(inventory.moves),
            "moved": sum(1 for item in status["inventory"] if item["moved"]),
        }
    else:  # a pass that could not look keeps the last inventory it saw
        for key in ("inventory", "summary"):
            if key in previous:
                status[key] = previous[key]
    for key, stage_name in (("startedAt", "copy"), ("cutoverAt", "cutover")):
        stamp = next((item.get("startedAt") for item in stages if item["name"] == stage_name), None)
        if stamp:
            status[key] = stamp
    if phase is Phase.COMPLETED:
        status["completedAt"] = previous.get("completedAt") or _stamp(now)
    completed_at = _parse_time(status.get("completedAt"))
    verdict = machine.deadline(
        phase,
        spec.deadline,
        now,
        timedelta(hours=settings.migration_at_risk_hours),
        completed_at,
        blocked=not access.allowed,
    )
    wanted = [
        conditions.Condition(
            AUTHORIZED,
            conditions.TRUE if access.allowed else conditions.FALSE,
            "Granted" if access.allowed else access.reason,
            "the plan may read its source and write its target"
            if access.allowed
            else access.message,
        ),
        _eligible_condition(facts),
        _assessed_condition(facts, access, inventory),
        conditions.Condition(
            DEADLINE_AT_RISK,
            conditions.TRUE if verdict.at_risk else conditions.FALSE,
            verdict.at_risk_reason,
            verdict.at_risk_message,
        ),
        conditions.Condition(
            OVERDUE,
            conditions.TRUE if verdict.overdue else conditions.FALSE,
            verdict.overdue_reason,
            verdict.overdue_message,
        ),
    ]
    status["conditions"] = conditions.merge(
        previous.get("conditions") or [], wanted, generation, now
    )
    return status


def _eligible_condition(facts: machine.Facts) -> conditions.Condition:
    if facts.ineligible:
        return conditions.Condition(ELIGIBLE, conditions.FALSE, "Ineligible", facts.ineligible)
    return conditions.Condition(
        ELIGIBLE, conditions.TRUE, "Eligible", "the app may move to the government cloud"
    )


def _assessed_condition(
    facts: machine.Facts, access: Access, inventory: Inventory
) -> conditions.Condition:
    if not access.allowed or facts.blocker:
        return conditions.Condition(
            ASSESSED, conditions.UNKNOWN, "NotAssessed", "not assessed: " + (facts.blocker or "")
        )
    if facts.started:
        return conditions.Condition(
            ASSESSED, conditions.TRUE, "Assessed", "assessed before copying began"
        )
    if facts.problems:
        return conditions.Condition(
            ASSESSED, conditions.FALSE, _problem_reason(inventory), "; ".join(facts.problems)[:4000]
        )
    moves = len(inventory.moves)
    return conditions.Condition(
        ASSESSED,
        conditions.TRUE,
        "Assessed",
        f"{moves} objects will move, {len(inventory.decisions) - moves} are skipped;"
        " nothing was written to the target",
    )


def _problem_reason(inventory: Inventory) -> str:
    if inventory.clashes:
        return "NameClash"
    if any(decision.action == transform.NEEDS_DATA for decision in inventory.decisions):
        return "NeedsDataMigration"
    return "AssessmentFailed"


def _stages(  # noqa: PLR0912 - one stage rule a branch
    previous: Mapping[str, Any],
    step: machine.Step,
    phase: Phase,
    facts: machine.Facts,
    error: str,
    now: datetime,
    running: bool = False,
) -> list[Manifest]:
    """The timed list of stages: `step` (as decided, before any failure) marks its stage."""
    stages = [dict(item) for item in previous.get("stages") or []]

    def mark(name: str, state: str, message: str = "") -> None:
        entry = next((item for item in stages if item["name"] == name), None)
        if entry is None:
            entry = {"name": name, "startedAt": _stamp(now)}
            stages.append(entry)
        if entry.get("state") == state and entry.get("message", "") == message:
            return
        entry["state"] = state
        entry["message"] = message
        if state in ("Succeeded", "Failed", "Cancelled"):
            entry["finishedAt"] = _stamp(now)
        else:
            entry.pop("finishedAt", None)

    action = step.action
    if not facts.started and action is not machine.Action.ROLLBACK:
        if (
            action is machine.Action.COPY
            or step.phase is Phase.AWAITING_APPROVAL
            or step.reason == "WaitingForWindow"
        ):
            mark("assess", "Succeeded")
        else:
            state = "Failed" if step.phase is Phase.FAILED else "Waiting"
            mark("assess", state, step.message[:1000])
    if action is machine.Action.COPY:
        if running:
            mark("copy", "Running")
        elif error:
            mark("copy", "Failed", error)
        else:
            mark("copy", "Succeeded")
            mark("verify", "Running")
    if step.reason == "AwaitingCutoverApproval":
        mark("verify", "Succeeded")
    if action is machine.Action.CUTOVER:
        mark("verify", "Succeeded")
        if running:
            mark("cutover", "Running")
        else:
            mark("cutover", "Failed" if error else "Succeeded", error)
    if step.reason == "StageFailed" and step.stage in ("verify", "cutover"):
        mark(step.stage, "Failed", step.message[:1000])
    if action is machine.Action.ROLLBACK:
        for entry in stages:  # a stage a crash or a failure left Running never finishes now
            if entry["name"] != "rollback" and entry.get("state") == "Running":
                mark(entry["name"], "Cancelled", "stopped by the rollback")
        done = phase is Phase.ROLLED_BACK
        mark("rollback", "Succeeded" if done else "Running", "" if done else error)
    elif phase is Phase.ROLLING_BACK:
        mark("rollback", "Running")
    order = ["assess", "copy", "verify", "cutover", "rollback"]
    return sorted(stages, key=lambda item: order.index(item["name"]))


def _approvals(
    previous: Mapping[str, Any], spec: migrationplan.MigrationPlanSpec, now: datetime
) -> list[Manifest]:
    seen = {
        (item.get("stage"), item.get("by"), item.get("digest")): item.get("observedAt")
        for item in previous.get("approvals") or []
    }
    approved = spec.approved()
    return [
        {
            "stage": item.stage.value,
            "by": item.by,
            "observedAt": seen.get((item.stage.value, item.by, item.digest)) or _stamp(now),
            **({"digest": item.digest} if item.digest else {}),
            "current": item.stage in approved,
        }
        for item in spec.approvals
    ]


def transition_events(
    before: Mapping[str, Any], after: Mapping[str, Any], spec: migrationplan.MigrationPlanSpec
) -> list[Event]:
    events = []
    if before.get("phase") != after.get("phase"):
        bad = after.get("phase") in (Phase.FAILED.value,)
        events.append(
            Event(
                "Warning" if bad else "Normal",
                str(after.get("phase")),
                f"{before.get('phase') or 'new'} -> {after.get('phase')}: {after.get('message')}",
            )
        )
    events.extend(approval_events(before, after, spec))
    before_conditions = {item.get("type"): item for item in before.get("conditions") or []}
    for item in after.get("conditions") or []:
        old = before_conditions.get(item["type"])
        if item["type"] in (AUTHORIZED, OVERDUE, DEADLINE_AT_RISK) and (
            old is None or old.get("status") != item["status"]
        ):
            bad = (item["type"] == AUTHORIZED) != (item["status"] == conditions.TRUE)
            if bad or old is not None:
                events.append(
                    Event(
                        "Warning" if bad else "Normal",
                        str(item["reason"]),
                        f"{item['type']}={item['status']}: {item['message']}",
                    )
                )
    return events


def approval_events(
    before: Mapping[str, Any], after: Mapping[str, Any], spec: migrationplan.MigrationPlanSpec
) -> list[Event]:
    """Approved for each new approval; ApprovalStale when one stops counting."""
    old = {
        (item.get("stage"), item.get("by"), item.get("digest")): item
        for item in before.get("approvals") or []
    }
    events = []
    for item, recorded in zip(spec.approvals, after.get("approvals") or [], strict=False):
        previous = old.get((item.stage.value, item.by, item.digest))
        if previous is None and recorded.get("current"):
            events.append(
                Event(
                    "Normal",
                    "Approved",
                    f"stage {item.stage.value} approved by {item.by}"
                    + (f": {item.comment}" if item.comment else ""),
                )
            )
        elif not recorded.get("current") and (previous is None or previous.get("current")):
            events.append(
                Event(
                    "Warning",
                    "ApprovalStale",
                    f"the approval of stage {item.stage.value} by {item.by} does not count: it"
                    f" names digest {item.digest or '(none)'}, the plan is now"
                    f" {after.get('digest')} (its app, source, targetNamespace or dataMigration"
                    " changed); an approver approves it again",
                )
            )
    return events


def write_status(hub: client.Cluster, body: Manifest, status: Manifest) -> None:
    """Patch the status only when it differs from what is stored."""
    current = body.get("status") or {}
    if all(current.get(key) == value for key, value in status.items()):
        return
    patch = compare.merge_patch(current, status)  # gone keys, nested ones too, sent as null
    hub.patch_status(
        constants.API_VERSION, KIND, body["metadata"]["name"], patch, body["metadata"]["namespace"]
    )


def hold(
    hub: client.Cluster,
    body: Manifest,
    access: Access,
    message: str,
    now: datetime,
    settings: Any,
) -> Result:
    """Copying began but the source cannot be used right now: change nothing, say why."""
    status = dict(body.get("status") or {})
    generation = body["metadata"].get("generation")
    kept = [
        conditions.Condition(item["type"], item["status"], item["reason"], item.get("message", ""))
        for item in status.get("conditions") or []
        if item["type"] != AUTHORIZED
    ]
    status["conditions"] = conditions.merge(
        status.get("conditions") or [],
        [
            conditions.Condition(
                AUTHORIZED,
                conditions.TRUE if access.allowed else conditions.FALSE,
                access.reason or "SourceUnavailable",
                f"waiting, nothing changed: {message}"[:2000],
            ),
            *kept,
        ],
        generation,
        now,
    )
    write_status(hub, body, status)
    return Result(
        outcome="error",
        body=body,
        snapshot=snapshot(access, status),
        requeue=settings.migration_poll_seconds * 5,
    )


def invalid(hub: client.Cluster, body: Manifest, message: str, now: datetime) -> Result:
    """A stored spec the schema would refuse today: Failed, with what to fix; nothing touched."""
    previous = body.get("status") or {}
    generation = body["metadata"].get("generation")
    status = {
        **previous,
        "phase": Phase.FAILED.value,
        "observedGeneration": generation,
        "message": message[:2000],
        "conditions": conditions.merge(
            previous.get("conditions") or [],
            [conditions.Condition(ASSESSED, conditions.FALSE, "InvalidSpec", message[:4000])],
            generation,
            now,
        ),
    }
    write_status(hub, body, status)
    return Result(
        outcome="invalid", body=body, events=[Event("Warning", "InvalidSpec", message[:1000])]
    )


_validation_message = events.validation_message


# -- deletion --------------------------------------------------------------------------------


def finalize(  # noqa: PLR0911 - each kind of deleted plan is let go its own way
    hub: client.Cluster,
    registry: clusters.ClusterRegistry | None,
    body: Manifest,
    settings: Any,
    now: datetime,
) -> Result:
    """A deleted plan leaves the app running on one side and none of its bookkeeping behind.

    - Never copied, or RolledBack: nothing of the plan is left anywhere; the finalizer goes.
    - Completed: the copies are the app now and stay; the source stays scaled down and its
      CronJobs suspended; only the plan's annotations are removed from the source objects.
    - Any other plan that began copying is rolled back exactly as `spec.rollback: true` does:
      the source's counts are restored, and once it runs again the plan's copies are deleted.
    A source that cannot be reached holds the deletion (outcome "finalizing") until it can.
    """
    if constants.FINALIZER not in (body["metadata"].get("finalizers") or []):
        return Result(outcome="deleted", body=body)
    status = body.get("status") or {}
    phase = _phase(status.get("phase"))
    if _stage(status, "copy") is None or phase is Phase.ROLLED_BACK:
        return release(hub, body, [])
    try:
        spec = migrationplan.parse(body.get("spec") or {})
    except pydantic.ValidationError as error:
        return release(
            hub, body, [_left_alone(f"the spec is invalid: {_validation_message(error)}")]
        )
    tenant = statuses.tenant_of(hub, body["metadata"]["namespace"]) or status.get("tenant")
    source, reason, message = source_cluster(hub, registry, spec)
    if source is not None and tenant:
        reason, message = source_verdict(source, str(tenant), spec)
    if reason == "SourceUnreachable":
        return finalizing(hub, body, f"the source cannot be reached: {message}", settings)
    if source is None or reason or not tenant:
        return release(hub, body, [_left_alone(message or "the plan has no tenant")])
    try:
        inventory = gather(source, hub, body, spec)
        if phase is Phase.COMPLETED:
            forget_source(source, spec, inventory)
            waiting = ""
        else:
            waiting = rollback(source, hub, body, spec, inventory)
    except client.ApiError as error:
        return finalizing(hub, body, f"cannot undo the plan yet: {error}", settings)
    if waiting:
        return finalizing(hub, body, f"before the plan goes, {waiting}", settings)
    if phase is Phase.COMPLETED:
        said = "the plan is gone; the app stays in the target, the source stays scaled down"
    else:
        said = "rolled back before the plan went: the source runs with its own counts again"
    return release(hub, body, [Event("Normal", "Finalized", said)])


def forget_source(
    source: client.Cluster, spec: migrationplan.MigrationPlanSpec, inventory: Inventory
) -> None:
    """Remove the plan's bookkeeping annotations from the source; replicas stay as they are."""
    for (kind, name), found in inventory.sources.items():
        notes = _annotations(found)
        drop = {
            key: None
            for key in (
                transform.ANNOTATION_ORIGINAL_REPLICAS,
                transform.ANNOTATION_ORIGINAL_SUSPEND,
            )
            if key in notes
        }
        if drop:
            source.patch_merge(
                transform.API_VERSIONS[kind],
                kind,
                name,
                {"metadata": {"annotations": drop}},
                spec.source.namespace,
            )


def finalizing(hub: client.Cluster, body: Manifest, message: str, settings: Any) -> Result:
    """The deletion waits: say why in the status (once), and look again soon."""
    status = body.get("status") or {}
    text = f"deleting: {message}"[:2000]
    write_status(hub, body, {**status, "message": text})
    return Result(
        outcome="finalizing",
        body=body,
        requeue=settings.migration_poll_seconds,
        message=text,
    )


def release(hub: client.Cluster, body: Manifest, said: list[Event]) -> Result:
    """Remove the operator's finalizer. Someone else may edit the finalizers at the same time,
    so a failed test-and-remove (422) reads the plan again, from the API server."""
    current: Manifest | None = body
    for _ in range(3):
        if current is None or constants.FINALIZER not in (
            current["metadata"].get("finalizers") or []
        ):
            break
        try:
            finalizers.let_go(hub, _typed(current))
            break
        except client.ApiError as error:
            if error.status != 422:
                raise
        metadata = body["metadata"]
        current = cache.uncached(hub).get(
            constants.API_VERSION, KIND, metadata["name"], metadata["namespace"]
        )
    return Result(outcome="deleted", body=body, events=said)


def _left_alone(why: str) -> Event:
    return Event(
        "Warning",
        "SourceLeftAsIs",
        f"the plan was deleted without touching its source or target: {why}"[:1000],
    )


# -- the tenant's roll-up and metrics --------------------------------------------------------


def rollup(hub: client.Cluster, tenant: str, settings: Any, now: datetime) -> None:
    """CloudTenant.status.migrations from the tenant's plans; written only when it changed.

    The plans are read namespace by namespace of the tenant (both indexed in the watch-fed
    cache), not from a list of every plan: a pass costs the tenant's plans, not the city's."""
    namespaces = hub.list("v1", "Namespace", label_selector=f"{constants.LABEL_TENANT}={tenant}")
    plans = [
        item
        for namespace in namespaces
        for item in hub.list(constants.API_VERSION, KIND, namespace["metadata"]["name"])
        if (item.get("status") or {}).get("tenant") == tenant
    ]
    summary = summarize(plans)
    body = hub.get(constants.API_VERSION, "CloudTenant", tenant)
    if body is None or (body.get("status") or {}).get("migrations") == summary:
        return
    hub.patch_status(constants.API_VERSION, "CloudTenant", tenant, {"migrations": summary})


def summarize(plans: Sequence[Manifest]) -> dict[str, int]:
    """planned, completed, overdue, atRisk and onTimePercent of a tenant's plans."""
    completed = overdue = at_risk = on_time = 0
    for plan in plans:
        status = plan.get("status") or {}
        found = {item.get("type"): item for item in status.get("conditions") or []}
        if status.get("phase") == Phase.COMPLETED.value:
            completed += 1
            on_time += int((found.get(OVERDUE) or {}).get("reason") == "CompletedOnTime")
        if (found.get(OVERDUE) or {}).get("status") == conditions.TRUE:
            overdue += 1
        if (found.get(DEADLINE_AT_RISK) or {}).get("status") == conditions.TRUE:
            at_risk += 1
    summary = {
        "planned": len(plans),
        "completed": completed,
        "overdue": overdue,
        "atRisk": at_risk,
    }
    if completed + overdue:
        summary["onTimePercent"] = round(100 * on_time / (completed + overdue))
    return summary


def snapshot(access: Access, status: Mapping[str, Any]) -> metrics.MigrationSnapshot | None:
    if not access.tenant:
        return None
    tier = (((access.tenant_body or {}).get("spec") or {}).get("unit") or {}).get("tier") or ""
    found = {item.get("type"): item for item in status.get("conditions") or []}
    return metrics.MigrationSnapshot(
        tenant=access.tenant,
        tier=str(tier),
        phase=str(status.get("phase") or Phase.PENDING.value),
        overdue=(found.get(OVERDUE) or {}).get("status") == conditions.TRUE,
        at_risk=(found.get(DEADLINE_AT_RISK) or {}).get("status") == conditions.TRUE,
        completed_on_time=(found.get(OVERDUE) or {}).get("reason") == "CompletedOnTime",
    )


# -- small helpers ---------------------------------------------------------------------------


def _typed(body: Manifest) -> Manifest:
    return {**body, "apiVersion": constants.API_VERSION, "kind": KIND}


def _phase(value: Any) -> Phase:
    try:
        return Phase(value or Phase.PENDING.value)
    except ValueError:
        return Phase.PENDING


def _stage(status: Mapping[str, Any], name: str) -> Manifest | None:
    return next((item for item in status.get("stages") or [] if item.get("name") == name), None)


def _stage_started(status: Mapping[str, Any], name: str) -> datetime | None:
    return _parse_time((_stage(status, name) or {}).get("startedAt"))


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.strptime(str(value), TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


def _labels(item: Mapping[str, Any]) -> dict[str, str]:
    return dict((item.get("metadata") or {}).get("labels") or {})


def _annotations(item: Mapping[str, Any]) -> dict[str, str]:
    return dict((item.get("metadata") or {}).get("annotations") or {})
