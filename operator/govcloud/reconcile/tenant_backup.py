"""CloudTenant backups: keep the tenant's Velero Schedule where its namespaces live, and say
whether its recovery-point objective holds (status.backup, BackupHealthy, metrics).

Only with the operator's backup setting on; off, a pass reads and writes nothing of Velero.
Schedules and Backups are read from the watch-fed cache; a cluster where Velero's CRDs are not
served gets no Schedule and the condition says so. What is decided is pure (desired.backups).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from govcloud import constants, metrics
from govcloud.api.v1alpha1 import cloudtenant
from govcloud.desired import backups, restores
from govcloud.k8s import cache, client
from govcloud.reconcile import conditions, events, tenant_lifecycle, tenant_types

log = logging.getLogger(__name__)

BACKUP_HEALTHY = "BackupHealthy"
RPO_MISSED = "RPOMissed"
VELERO_NOT_INSTALLED = "VeleroNotInstalled"
OVERRIDE_REFUSED = "OverrideRefused"
SCHEDULE_NOT_APPLIED = "ScheduleNotApplied"

Manifest = dict[str, Any]


@dataclass
class Outcome:
    """What the backup part of a pass decided: the condition, status.backup, metrics, and in
    how many seconds the objective would be missed unless a backup completes."""

    condition: conditions.Condition
    status: Manifest
    snapshot: metrics.BackupSnapshot | None = None
    due_in: float | None = None
    events: list[events.Event] = field(default_factory=list)


def enabled(settings: Any) -> bool:
    return bool(getattr(settings, "backup_enabled", False))


def _velero(
    target: client.Cluster, kind: str, namespace: str, selector: str
) -> list[Manifest] | None:
    """The tenant's Velero objects of `kind` (from the cache); None when Velero's CRDs are not
    served there (the informer knows; without a cache, the API server's 404 says so)."""
    if isinstance(target, cache.CachedCluster):
        informer = target.informer(backups.VELERO_API_VERSION, kind)
        if informer is not None and informer.not_served and not informer.synced:
            return None
    try:
        found = target.list(
            backups.VELERO_API_VERSION, kind, namespace=namespace, label_selector=selector
        )
    except client.ApiError as error:
        if error.status == 404 or "not found" in str(error).lower():
            return None
        raise
    for item in found:
        item.setdefault("apiVersion", backups.VELERO_API_VERSION)
        item.setdefault("kind", kind)
    return found


def velero_objects(
    target: client.Cluster, kind: str, namespace: str, selector: str
) -> list[Manifest] | None:
    """Velero's `kind` objects by `selector` (from the cache); None when its CRDs are not
    served there. Shared with the ledger's backups (reconcile.ledger)."""
    return _velero(target, kind, namespace, selector)


def converge(
    hub: client.Cluster,
    target: client.Cluster,
    observed: tenant_types.Observed,
    spec: cloudtenant.CloudTenantSpec,
    usable: Sequence[str],
    settings: Any,
    now: datetime,
) -> Outcome | None:
    """Keep the tenant's Schedule on `target` and judge its recovery point; None when the
    operator does not do backups."""
    if not enabled(settings):
        return None
    tenant = str(observed.tenant["metadata"]["name"])
    policy: backups.Policy = settings.backup_policy
    plan = backups.plan_for(spec.security_level, spec.backup, policy)
    said: list[events.Event] = []
    name = backups.schedule_name(tenant)
    status: Manifest = {
        "enabled": plan.enabled,
        "cron": plan.schedule,
        "ttl": backups.format_duration(plan.ttl),
        "rpo": backups.format_duration(plan.rpo),
    }
    found = _velero(target, backups.SCHEDULE_KIND, policy.namespace, backups.selector(tenant))
    if found is None:
        status["rpoMet"] = False
        message = (
            f"Velero is not installed on {target.name} (its Schedule kind is not served): the"
            " tenant's namespaces are not backed up; install Velero there (docs/backup.md)"
        )
        return Outcome(
            conditions.Condition(BACKUP_HEALTHY, conditions.FALSE, VELERO_NOT_INSTALLED, message),
            status,
            metrics.BackupSnapshot(rpo_met=False, rpo_seconds=plan.rpo),
        )
    wanted = backups.schedule(tenant, usable, plan, policy)
    errors: list[str] = []
    applier = tenant_types.Applier(hub, target, observed, said, errors)
    for item in found:
        applier.current[tenant_types.key_of(item)] = item
    if wanted is not None:
        applier.ensure(wanted)
    for item in found:
        if wanted is not None and item["metadata"]["name"] == name:
            continue
        try:
            target.delete(
                backups.VELERO_API_VERSION, backups.SCHEDULE_KIND, item["metadata"]["name"],
                policy.namespace,
            )  # fmt: skip
        except client.ApiError as error:
            errors.append(
                f"pruning Schedule {policy.namespace}/{item['metadata']['name']}: {error}"
            )
            continue
        said.append(
            events.Event(
                "Normal",
                "Pruned",
                f"deleted Schedule {policy.namespace}/{item['metadata']['name']}, no longer wanted",
            )
        )
    if not plan.enabled or wanted is None:
        why = (
            "spec.backup.enabled is false: the tenant's namespaces are not backed up"
            if not plan.enabled
            else f"the tenant has no namespace on {target.name} to back up"
        )
        reason = "BackupDisabled" if not plan.enabled else "NothingToBackUp"
        return _outcome(
            conditions.Condition(BACKUP_HEALTHY, conditions.TRUE, reason, why),
            status,
            None,
            None,
            said,
        )
    status["schedule"] = f"{policy.namespace}/{name}"
    current = applier.current.get(tenant_types.key_of(wanted))
    created = backups.parse_time(((current or {}).get("metadata") or {}).get("creationTimestamp"))
    made = _velero(
        target,
        backups.BACKUP_KIND,
        policy.namespace,
        f"{backups.selector(tenant)},{backups.SCHEDULE_NAME_LABEL}={name}",
    )
    point = backups.recovery(created, made or [], plan.rpo, now, name)
    _list_recent(target, tenant, policy.namespace, status)
    if point.last_backup is not None and point.last_time is not None:
        status["lastBackup"] = point.last_backup
        status["lastBackupTime"] = point.last_time.strftime("%Y-%m-%dT%H:%M:%SZ")
    status["rpoMet"] = point.rpo_met
    snapshot = metrics.BackupSnapshot(
        rpo_met=point.rpo_met,
        rpo_seconds=plan.rpo,
        last_success=point.last_time.timestamp() if point.last_time is not None else None,
    )
    due_in = (
        max(1.0, (point.deadline - now).total_seconds() + 1.0)
        if point.rpo_met and point.deadline is not None
        else None
    )
    return _outcome(decide(plan, point, errors, status), status, snapshot, due_in, said)


def _list_recent(target: client.Cluster, tenant: str, namespace: str, status: Manifest) -> None:
    """status.backup.recent: the tenant's newest backups there, which its admins may restore
    (BackupRestore) and read here, as they cannot read Velero's namespace."""
    found = _velero(target, backups.BACKUP_KIND, namespace, backups.selector(tenant)) or []
    listed = restores.recent(found, tenant)
    if listed:
        status["recent"] = listed


def conditions_of(
    backed: Outcome | None, result: tenant_types.Result
) -> list[conditions.Condition]:
    """BackupHealthy for the status; the pass's result takes the Events, the metrics and when
    to look again."""
    if backed is None:
        return []
    result.events.extend(backed.events)
    result.backup, result.due_in = backed.snapshot, backed.due_in
    return [backed.condition]


def status_of(backed: Outcome | None, tenant: Manifest) -> Manifest:
    """status.backup; removed once the operator no longer does backups."""
    if backed is not None:
        return {"backup": backed.status}
    return {"backup": None} if "backup" in (tenant.get("status") or {}) else {}


def _outcome(
    condition: conditions.Condition,
    status: Manifest,
    snapshot: metrics.BackupSnapshot | None,
    due_in: float | None,
    said: list[events.Event],
) -> Outcome:
    return Outcome(condition, status, snapshot, due_in, said)


def decide(
    plan: backups.TenantPlan,
    point: backups.Recovery,
    errors: Sequence[str],
    status: Manifest,
) -> conditions.Condition:
    """BackupHealthy: the worst news first (the Schedule not written, the RPO missed, an
    override refused); its message changes only with what it reports, never with the clock."""
    rpo = status["rpo"]
    if errors:
        return conditions.Condition(
            BACKUP_HEALTHY, conditions.FALSE, SCHEDULE_NOT_APPLIED, "; ".join(errors)[:1500]
        )
    if not point.rpo_met:
        since = (
            f"the newest completed backup, {point.last_backup}, finished at"
            f" {status.get('lastBackupTime')}"
            if point.last_backup
            else "no backup has completed since the Schedule was created"
        )
        return conditions.Condition(
            BACKUP_HEALTHY,
            conditions.FALSE,
            RPO_MISSED,
            f"the recovery-point objective ({rpo}) is missed: {since}; see the Velero Backups"
            f" of Schedule {status.get('schedule')} (velero backup get)",
        )
    if plan.refused:
        return conditions.Condition(
            BACKUP_HEALTHY,
            conditions.FALSE,
            OVERRIDE_REFUSED,
            "; ".join(plan.refused)[:1500] + "; the level's policy applies instead",
        )
    if point.last_backup is None:
        deadline = point.deadline.strftime("%Y-%m-%dT%H:%M:%SZ") if point.deadline else ""
        return conditions.Condition(
            BACKUP_HEALTHY,
            conditions.TRUE,
            "FirstBackupPending",
            f"no backup has completed yet; the first must complete by {deadline} (one RPO,"
            f" {rpo}, after the Schedule was created)",
        )
    return conditions.Condition(
        BACKUP_HEALTHY,
        conditions.TRUE,
        "RPOMet",
        f"backup {point.last_backup} completed at {status.get('lastBackupTime')}, within the"
        f" recovery-point objective ({rpo})",
    )


def finalize(
    hub: client.Cluster, target: client.Cluster, body: Manifest, settings: Any
) -> tuple[list[events.Event], list[str]]:
    """The tenant is being deleted: delete its Schedules (its Backups stay until their ttl).
    Not while the CloudTenant CRD itself goes (an uninstall keeps everything)."""
    if not enabled(settings):
        return [], []
    if constants.FINALIZER not in (body["metadata"].get("finalizers") or []):
        return [], []
    if tenant_lifecycle.crd_deleting(hub):
        return [], []
    tenant = str(body["metadata"]["name"])
    namespace = settings.backup_policy.namespace
    found = _velero(target, backups.SCHEDULE_KIND, namespace, backups.selector(tenant)) or []
    said: list[events.Event] = []
    errors: list[str] = []
    for item in found:
        schedule = item["metadata"]["name"]
        try:
            target.delete(backups.VELERO_API_VERSION, backups.SCHEDULE_KIND, schedule, namespace)
        except client.ApiError as error:
            errors.append(f"deleting Schedule {namespace}/{schedule}: {error}")
            continue
        said.append(events.Event("Normal", "Pruned", f"deleted Schedule {namespace}/{schedule}"))
    return said, errors
