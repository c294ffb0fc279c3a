"""BackupRestore passes: judge a department's restore request once (its Backup, its
namespaces' owners: desired.restores), create the one Velero Restore it allows or refuse with
a condition and an Event, then follow the Restore to its end and report it.

Reads come from the hub's caches (namespaces, Velero's Backups and Restores in its namespace).
A request is decided once: a refused or finished one is a record, and its passes read and
write nothing. Velero's own words copied into a status or an Event are redacted first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pydantic

from govcloud import constants, logs
from govcloud.api.v1alpha1 import backuprestore
from govcloud.desired import backups, restores
from govcloud.k8s import client
from govcloud.reconcile import conditions, events, plan, statuses

KIND = "BackupRestore"
RESTORE_EVENTS = restores.RESTORE_KIND  # the route of the hub's Velero Restore events
ACCEPTED = "Accepted"
RESTORED = "Restored"
BACKUPS_OFF = "BackupsNotEnabled"
BACKUPS_OFF_MESSAGE = (
    "the platform's backups are not turned on (chart value backup.enabled): nothing can be"
    " restored yet; ask the platform team"
)
VELERO_MISSING = "VeleroNotInstalled"
VELERO_MISSING_MESSAGE = (
    "Velero is not installed on the hub (its Backup kind is not served): nothing can be"
    " restored until the platform team installs it (docs/backup.md)"
)
RESTORE_GONE = "RestoreDeleted"
NOT_APPLIED = "RestoreNotCreated"

Manifest = dict[str, Any]
Event = events.Event
Phase = backuprestore.RestorePhase

# The result label of govcloud_backup_restores_total, per final phase.
RESULTS = {
    Phase.REFUSED: "refused",
    Phase.COMPLETED: "completed",
    Phase.PARTIALLY_FAILED: "partially_failed",
    Phase.FAILED: "failed",
}


@dataclass
class Result:
    outcome: str
    body: Manifest | None = None
    events: list[Event] = field(default_factory=list)
    tenant: str = ""
    finished: str | None = None  # a RESULTS value when the request ended in this pass


def reconcile(
    hub: client.Cluster, namespace: str, name: str, settings: Any, now: datetime | None = None
) -> Result:
    """One pass over the BackupRestore `namespace`/`name`."""
    now = now or datetime.now(UTC)
    body = hub.get(constants.API_VERSION, KIND, name, namespace)
    if body is None:
        return Result("deleted")
    status = body.get("status") or {}
    generation = body["metadata"].get("generation")
    if status.get("phase") in backuprestore.FINISHED and (
        status.get("observedGeneration") == generation
    ):
        return Result("success", body, tenant=str(status.get("tenant") or ""))
    tenant = statuses.tenant_of(hub, namespace)
    try:
        spec = backuprestore.parse(body.get("spec") or {})
    except (pydantic.ValidationError, ValueError) as error:
        refusal = restores.Refusal("InvalidSpec", plan.spec_message(error))
        return _refuse(hub, body, tenant, refusal, now)
    if not getattr(settings, "backup_enabled", False):
        return _pending(hub, body, tenant, now, BACKUPS_OFF, BACKUPS_OFF_MESSAGE)
    return _serve(hub, body, tenant, spec, settings.backup_policy.namespace, now)


def _serve(
    hub: client.Cluster,
    body: Manifest,
    tenant: str | None,
    spec: backuprestore.BackupRestoreSpec,
    velero_namespace: str,
    now: datetime,
) -> Result:
    """Follow the request's Restore; without one, judge the request and make it (once)."""
    metadata = body["metadata"]
    restore_name = restores.restore_name(str(metadata.get("uid") or ""))
    found = _restore(hub, restore_name, velero_namespace)
    if found is not None:
        return _follow(hub, body, tenant, spec, found, None, now, started=False)
    if (body.get("status") or {}).get("restore"):
        return _gone(hub, body, tenant, spec, body["status"], now)
    try:
        judged = _judge(hub, tenant, metadata["namespace"], spec, velero_namespace)
    except client.ApiError as error:
        if error.status != 404:
            raise
        return _pending(hub, body, tenant, now, VELERO_MISSING, VELERO_MISSING_MESSAGE)
    if judged.refusal is not None or tenant is None:
        refusal = judged.refusal or restores.Refusal(restores.NOT_A_TENANT_NAMESPACE, "")
        return _refuse(hub, body, tenant, refusal, now)
    manifest = restores.restore(
        name=restore_name,
        velero_namespace=velero_namespace,
        tenant=tenant,
        request=f"{metadata['namespace']}/{metadata['name']}",
        backup=spec.backup,
        namespaces=judged.namespaces,
        existing=spec.existing_resources,
    )
    try:
        found = _create(hub, manifest)
    except client.ApiError as error:
        return _not_created(hub, body, tenant, velero_namespace, restore_name, error, now)
    return _follow(hub, body, tenant, spec, found, judged, now, started=True)


def _judge(
    hub: client.Cluster,
    tenant: str | None,
    namespace: str,
    spec: backuprestore.BackupRestoreSpec,
    velero_namespace: str,
) -> restores.Judgement:
    """The request judged against what the hub holds now (from its caches)."""
    if tenant is None:
        return restores.judge(None, namespace, spec.backup, None, spec.namespaces, {})
    owner = hub.get(constants.API_VERSION, "CloudTenant", tenant) or {}
    suspended = bool((owner.get("spec") or {}).get("suspended"))
    backup = hub.get(backups.VELERO_API_VERSION, backups.BACKUP_KIND, spec.backup, velero_namespace)
    named = set(spec.namespaces)
    if backup is not None and restores.backup_tenant(backup) == tenant:
        named |= set(restores.backup_namespaces(backup))
    owners = {item: statuses.tenant_of(hub, item) for item in sorted(named)}
    return restores.judge(
        tenant, namespace, spec.backup, backup, spec.namespaces, owners, suspended=suspended
    )


def _restore(hub: client.Cluster, name: str, velero_namespace: str) -> Manifest | None:
    try:
        return hub.get(backups.VELERO_API_VERSION, restores.RESTORE_KIND, name, velero_namespace)
    except client.ApiError as error:
        if error.status == 404:  # Velero's CRDs are not served
            return None
        raise


def _create(hub: client.Cluster, manifest: Manifest) -> Manifest:
    """Create the Restore; one that exists already (a pass that died before its status write)
    is the same request's: its name comes from the request's UID."""
    try:
        return hub.create(manifest)
    except client.ApiError as error:
        if error.status != 409:
            raise
    metadata = manifest["metadata"]
    found = hub.get(
        manifest["apiVersion"], manifest["kind"], metadata["name"], metadata["namespace"]
    )
    if found is None:
        raise client.ApiError(f"Restore {metadata['name']} exists and cannot be read", 409)
    return found


def _follow(
    hub: client.Cluster,
    body: Manifest,
    tenant: str | None,
    spec: backuprestore.BackupRestoreSpec,
    found: Manifest,
    judged: restores.Judgement | None,
    now: datetime,
    *,
    started: bool,
) -> Result:
    """Report the Velero Restore the request made: its phase, counts and times."""
    old = body.get("status") or {}
    where = f"{found['metadata']['namespace']}/{found['metadata']['name']}"
    done = restores.progress(found)
    namespaces = list((found.get("spec") or {}).get("includedNamespaces") or [])
    failure = logs.redact(done.failure)[:500]
    shown = restores.Progress(**{**done.__dict__, "failure": failure})
    if done.phase == Phase.IN_PROGRESS:
        restored = conditions.Condition(
            RESTORED, conditions.FALSE, "InProgress", f"Velero is restoring ({where})"
        )
    else:
        restored = conditions.Condition(
            RESTORED,
            conditions.TRUE if done.phase == Phase.COMPLETED else conditions.FALSE,
            done.phase.value,
            restores.outcome_message(spec.backup, where, shown),
        )
    accepted = conditions.Condition(
        ACCEPTED,
        conditions.TRUE,
        ACCEPTED,
        f"backup {spec.backup} is tenant {tenant}'s and Completed; restoring"
        f" {', '.join(namespaces)} under their own names",
    )
    new: Manifest = {
        "observedGeneration": body["metadata"].get("generation"),
        "phase": done.phase.value,
        "tenant": tenant,
        "restore": where,
        "namespaces": namespaces,
        "backupCompletedAt": (
            judged.backup_completed_at if judged is not None else old.get("backupCompletedAt")
        ),
        "startedAt": done.started_at,
        "completedAt": done.completed_at,
        "itemsRestored": done.items_restored,
        "totalItems": done.total_items,
        "warnings": done.warnings,
        "errors": done.errors,
        "message": restored.message[: backuprestore.MAX_MESSAGE]
        if done.phase in (Phase.PARTIALLY_FAILED, Phase.FAILED)
        else None,
        "conditions": conditions.merge(
            old.get("conditions") or [],
            [accepted, restored],
            body["metadata"].get("generation"),
            now,
        ),
    }
    new = {key: value for key, value in new.items() if value is not None}
    _write(hub, body, new)
    said: list[Event] = []
    if started:
        said.append(
            Event(
                "Normal",
                "RestoreStarted",
                f"restoring namespaces {', '.join(namespaces)} of tenant {tenant} from backup"
                f" {spec.backup} (Velero Restore {where})",
            )
        )
    finished = None
    if done.phase != Phase.IN_PROGRESS and old.get("phase") != done.phase.value:
        kind = "Normal" if done.phase == Phase.COMPLETED else "Warning"
        said.append(Event(kind, f"Restore{done.phase.value}", restored.message))
        finished = RESULTS[done.phase]
    return Result("success", body, said, tenant or "", finished)


def _refuse(
    hub: client.Cluster,
    body: Manifest,
    tenant: str | None,
    refusal: restores.Refusal,
    now: datetime,
) -> Result:
    """Refused: nothing was created; the condition and one Event say why and what to do."""
    old = body.get("status") or {}
    generation = body["metadata"].get("generation")
    new = {
        "observedGeneration": generation,
        "phase": Phase.REFUSED.value,
        "tenant": tenant,
        "message": refusal.message[: backuprestore.MAX_MESSAGE],
        "conditions": conditions.merge(
            old.get("conditions") or [],
            [
                conditions.Condition(ACCEPTED, conditions.FALSE, refusal.reason, refusal.message),
                conditions.Condition(
                    RESTORED, conditions.FALSE, Phase.REFUSED.value, "refused: nothing restored"
                ),
            ],
            generation,
            now,
        ),
    }
    _write(hub, body, {key: value for key, value in new.items() if value is not None})
    said = [] if old.get("phase") == Phase.REFUSED.value else [
        Event("Warning", refusal.reason, refusal.message)
    ]  # fmt: skip
    return Result("invalid", body, said, tenant or "", None if not said else RESULTS[Phase.REFUSED])


def _pending(
    hub: client.Cluster,
    body: Manifest,
    tenant: str | None,
    now: datetime,
    reason: str,
    message: str,
) -> Result:
    """The platform does not do backups, or Velero is not installed: wait, deciding nothing."""
    old = body.get("status") or {}
    generation = body["metadata"].get("generation")
    new = {
        "observedGeneration": generation,
        "phase": Phase.PENDING.value,
        "tenant": tenant,
        "conditions": conditions.merge(
            old.get("conditions") or [],
            [conditions.Condition(ACCEPTED, conditions.UNKNOWN, reason, message)],
            generation,
            now,
        ),
    }
    changed = _write(hub, body, {key: value for key, value in new.items() if value is not None})
    said = [Event("Warning", reason, message)] if changed else []
    return Result("success", body, said, tenant or "")


def _gone(
    hub: client.Cluster,
    body: Manifest,
    tenant: str | None,
    spec: backuprestore.BackupRestoreSpec,
    status: Manifest,
    now: datetime,
) -> Result:
    """The request's Restore was deleted before it was seen to finish: Failed, not redone (a
    second restore nobody asked for again could overwrite what was changed since)."""
    where = str(status.get("restore"))
    message = (
        f"Velero's restore {where} was deleted before it finished; how far it got is unknown."
        f" Create a new BackupRestore of backup {spec.backup} to restore again"
    )
    generation = body["metadata"].get("generation")
    new = {
        **{key: value for key, value in status.items() if key != "conditions"},
        "observedGeneration": generation,
        "phase": Phase.FAILED.value,
        "message": message,
        "conditions": conditions.merge(
            status.get("conditions") or [],
            [
                *_kept(status, ACCEPTED),
                conditions.Condition(RESTORED, conditions.FALSE, RESTORE_GONE, message),
            ],
            generation,
            now,
        ),
    }
    _write(hub, body, new)
    return Result(
        "success", body, [Event("Warning", RESTORE_GONE, message)], tenant or "",
        RESULTS[Phase.FAILED],
    )  # fmt: skip


def _not_created(
    hub: client.Cluster,
    body: Manifest,
    tenant: str | None,
    velero_namespace: str,
    restore_name: str,
    error: client.ApiError,
    now: datetime,
) -> Result:
    """Velero's Restore could not be created (Velero not installed, the operator's Role
    missing): Pending, tried again at the next pass."""
    message = logs.redact(
        f"could not create Velero Restore {velero_namespace}/{restore_name}: {error}"
    )[: backuprestore.MAX_MESSAGE]
    old = body.get("status") or {}
    generation = body["metadata"].get("generation")
    new = {
        "observedGeneration": generation,
        "phase": Phase.PENDING.value,
        "tenant": tenant,
        "message": message,
        "conditions": conditions.merge(
            old.get("conditions") or [],
            [conditions.Condition(ACCEPTED, conditions.UNKNOWN, NOT_APPLIED, message)],
            generation,
            now,
        ),
    }
    changed = _write(hub, body, {key: value for key, value in new.items() if value is not None})
    return Result(
        "error", body, [Event("Warning", NOT_APPLIED, message)] if changed else [], tenant or ""
    )


def _kept(status: Manifest, type_: str) -> list[conditions.Condition]:
    for item in status.get("conditions") or []:
        if item.get("type") == type_:
            return [
                conditions.Condition(
                    type_, str(item["status"]), str(item["reason"]), str(item.get("message") or "")
                )
            ]
    return []


def _write(hub: client.Cluster, body: Manifest, status: Manifest) -> bool:
    return statuses.replace(hub, constants.API_VERSION, KIND, body, status)


def request_of(restore: Manifest) -> str | None:
    """The BackupRestore (<namespace>/<name>) a Velero Restore of the operator serves."""
    metadata = restore.get("metadata") or {}
    labels = metadata.get("labels") or {}
    if labels.get(constants.LABEL_MANAGED_BY) != constants.MANAGED_BY:
        return None
    key = (metadata.get("annotations") or {}).get(restores.ANNOTATION_REQUEST)
    return str(key) if key and "/" in str(key) else None
