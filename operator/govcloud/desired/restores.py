"""Self-service restores (pure): a tenant's BackupRestore -> judged against the Backup and the
namespaces' owners -> the exact Velero Restore, or a refusal a person can act on.

Safe by default: the Backup must be the same tenant's (the label the operator's Schedules put
on it) and Completed; every namespace restored must be the tenant's now (the namespace label
only the operator sets) and in the backup; Velero restores them under their own names (no
namespace mapping), never cluster-scoped objects, never the platform's own objects in them
(quotas, limit ranges, network policies, the operator's RoleBindings), which the operator keeps.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from govcloud import constants
from govcloud.api.v1alpha1 import backuprestore
from govcloud.desired import backups, meta

Manifest = dict[str, Any]
Phase = backuprestore.RestorePhase

RESTORE_KIND = "Restore"
RESTORE_PREFIX = "govcloud-restore-"
# On the Velero Restore: the BackupRestore it serves (<namespace>/<name>), to route its events.
ANNOTATION_REQUEST = f"{constants.GROUP}/backup-restore"
# Objects in a tenant namespace that only the platform writes: never restored by a tenant's
# request (the operator puts its own back; a stale copy would undo a change of quota, isolation
# or access). Velero's names: <plural>[.<group>]. The platform's records there (ResourceRequests
# and their decisions, NetworkGrants and their consent, MigrationPlans and their progress) come
# back only with the ledger: re-created without their status, a request's old decision could
# bind again to other content, a consent reopen a port, a finished migration start over.
EXCLUDED_RESOURCES = (
    "resourcequotas",
    "limitranges",
    "networkpolicies.networking.k8s.io",
    f"*.{constants.GROUP}",
)
RECENT = 10  # backups listed in a tenant's status.backup.recent

# Refusals (the Accepted condition's reason, Event reason).
NOT_A_TENANT_NAMESPACE = "NotATenantNamespace"
BACKUP_NOT_FOUND = "BackupNotFound"
BACKUP_NOT_COMPLETED = "BackupNotCompleted"
NAMESPACE_NOT_OWNED = "NamespaceNotOwned"
NAMESPACE_NOT_IN_BACKUP = "NamespaceNotInBackup"
NOTHING_TO_RESTORE = "NothingToRestore"
TENANT_SUSPENDED = "TenantSuspended"

# Velero's Restore phases -> the request's.
_PHASES = {
    "Completed": Phase.COMPLETED,
    "PartiallyFailed": Phase.PARTIALLY_FAILED,
    "Failed": Phase.FAILED,
    "FailedValidation": Phase.FAILED,
}


@dataclass(frozen=True)
class Refusal:
    reason: str
    message: str


@dataclass(frozen=True)
class Judgement:
    """Either the namespaces to restore (accepted) or why not (refused)."""

    namespaces: tuple[str, ...] = ()
    refusal: Refusal | None = None
    backup_completed_at: str | None = None


def restore_name(uid: str) -> str:
    """The Velero Restore of one request: from its UID, so a pass that finds it knows it made
    it (a label value: at most 63 characters)."""
    return f"{RESTORE_PREFIX}{uid}"


def backup_namespaces(backup: Mapping[str, Any]) -> list[str]:
    """The namespaces a Backup names explicitly (a wildcard or an empty list names none)."""
    included = (backup.get("spec") or {}).get("includedNamespaces") or []
    return sorted({str(name) for name in included if "*" not in str(name)})


def backup_tenant(backup: Mapping[str, Any]) -> str | None:
    """The tenant whose Schedule made the Backup (its labels), else None."""
    labels = (backup.get("metadata") or {}).get("labels") or {}
    if labels.get(constants.LABEL_MANAGED_BY) != constants.MANAGED_BY:
        return None
    owner = labels.get(constants.LABEL_TENANT)
    return str(owner) if owner else None


def judge(
    tenant: str | None,
    request_namespace: str,
    backup_name: str,
    backup: Mapping[str, Any] | None,
    requested: Sequence[str],
    owners: Mapping[str, str | None],
    *,
    suspended: bool = False,
) -> Judgement:
    """Whether the tenant owning the request's namespace may restore `backup` into
    `requested` (empty: every namespace of its in the backup); `owners` maps each namespace
    named by the request or the backup to its tenant (None: nobody's, or it does not exist)."""
    refusal = _who(tenant, request_namespace, suspended) or _which_backup(
        tenant, backup_name, backup
    )
    if refusal is not None or tenant is None or backup is None:
        return Judgement(refusal=refusal)
    inside = backup_namespaces(backup)
    wanted = sorted(set(requested)) if requested else inside
    refusal = _where(tenant, backup_name, inside, wanted, owners, explicit=bool(requested))
    if refusal is not None:
        return Judgement(refusal=refusal)
    chosen = tuple(name for name in wanted if owners.get(name) == tenant)
    completed = _text((backup.get("status") or {}).get("completionTimestamp"))
    return Judgement(chosen, None, completed)


def _who(tenant: str | None, request_namespace: str, suspended: bool) -> Refusal | None:
    if tenant is None:
        return Refusal(
            NOT_A_TENANT_NAMESPACE,
            f"namespace {request_namespace} belongs to no CloudTenant: a BackupRestore is"
            " created in one of the tenant's own namespaces",
        )
    if suspended:
        return Refusal(
            TENANT_SUSPENDED,
            f"tenant {tenant} is suspended: nothing is restored into its namespaces until the"
            " platform team lifts the suspension",
        )
    return None


def _which_backup(
    tenant: str | None, backup_name: str, backup: Mapping[str, Any] | None
) -> Refusal | None:
    # The same answer whether the Backup is missing or another tenant's: a request never tells
    # whether another department has a backup of that name.
    if backup is None or backup_tenant(backup) != tenant:
        return Refusal(
            BACKUP_NOT_FOUND,
            f"tenant {tenant} has no backup named {backup_name}; the CloudTenant's"
            f" status.backup.recent lists its backups (kubectl get ct {tenant} -o"
            " jsonpath='{.status.backup.recent}')",
        )
    phase = (backup.get("status") or {}).get("phase") or "New"
    if phase != backups.COMPLETED:
        return Refusal(
            BACKUP_NOT_COMPLETED,
            f"backup {backup_name} is {phase}, not Completed: only a completed backup is"
            " restored; choose a Completed one from status.backup.recent of the CloudTenant",
        )
    return None


def _where(
    tenant: str,
    backup_name: str,
    inside: Sequence[str],
    wanted: Sequence[str],
    owners: Mapping[str, str | None],
    *,
    explicit: bool,
) -> Refusal | None:
    """Every namespace named must be the tenant's and in the backup (by default, the
    backup's namespaces that are the tenant's now are taken, the others left out)."""
    foreign = [name for name in wanted if owners.get(name) != tenant]
    if explicit and foreign:
        many = len(foreign) > 1
        return Refusal(
            NAMESPACE_NOT_OWNED,
            f"namespace{'s' if many else ''} {', '.join(foreign)} {'are' if many else 'is'} not"
            f" tenant {tenant}'s (or does not exist yet): a restore goes only into the tenant's"
            " own namespaces, which the operator creates from its spec",
        )
    missing = [name for name in wanted if name not in inside]
    if missing:
        return Refusal(
            NAMESPACE_NOT_IN_BACKUP,
            f"backup {backup_name} does not hold namespace {', '.join(missing)}; it holds"
            f" {', '.join(inside) or 'no namespace by name'}",
        )
    if len(foreign) == len(wanted):
        return Refusal(
            NOTHING_TO_RESTORE,
            f"none of the namespaces in backup {backup_name} is tenant {tenant}'s now (or they"
            " do not exist yet): nothing to restore",
        )
    return None


def restore(
    *,
    name: str,
    velero_namespace: str,
    tenant: str,
    request: str,
    backup: str,
    namespaces: Collection[str],
    existing: backuprestore.ExistingResources,
) -> Manifest:
    """The Velero Restore of exactly `namespaces` from `backup`, each under its own name."""
    if not namespaces:  # an empty includedNamespaces would mean every namespace to Velero
        raise meta.SpecError("a restore names at least one namespace")
    return {
        "apiVersion": backups.VELERO_API_VERSION,
        "kind": RESTORE_KIND,
        "metadata": meta.object_meta(
            name, velero_namespace, tenant, annotations={ANNOTATION_REQUEST: request}
        ),
        "spec": {
            "backupName": backup,
            "includedNamespaces": sorted(set(namespaces)),
            "includeClusterResources": False,
            "excludedResources": list(EXCLUDED_RESOURCES),
            # What the operator writes in a tenant's namespaces (its RoleBindings among them)
            # stays the operator's: a backed-up copy would bring back a removed member's access.
            "labelSelector": {
                "matchExpressions": [
                    {
                        "key": constants.LABEL_MANAGED_BY,
                        "operator": "NotIn",
                        "values": [constants.MANAGED_BY],
                    }
                ]
            },
            "existingResourcePolicy": existing.value,
        },
    }


@dataclass(frozen=True)
class Progress:
    """What Velero says of a Restore, as the request reports it."""

    phase: Phase
    started_at: str | None = None
    completed_at: str | None = None
    items_restored: int | None = None
    total_items: int | None = None
    warnings: int = 0
    errors: int = 0
    failure: str = ""  # Velero's own words, when it failed


def progress(found: Mapping[str, Any]) -> Progress:
    status = found.get("status") or {}
    counts = status.get("progress") or {}
    validation = "; ".join(str(item) for item in status.get("validationErrors") or [])
    return Progress(
        phase=_PHASES.get(str(status.get("phase") or ""), Phase.IN_PROGRESS),
        started_at=_text(status.get("startTimestamp")),
        completed_at=_text(status.get("completionTimestamp")),
        items_restored=_count(counts.get("itemsRestored")),
        total_items=_count(counts.get("totalItems")),
        warnings=_count(status.get("warnings")) or 0,
        errors=_count(status.get("errors")) or 0,
        failure=str(status.get("failureReason") or validation),
    )


def outcome_message(backup: str, restore_ref: str, done: Progress) -> str:
    """What the request's Restored condition and Event say once Velero has finished."""
    counts = (
        f"{done.items_restored or 0} objects restored, {done.warnings} warnings,"
        f" {done.errors} errors"
    )
    if done.phase == Phase.COMPLETED:
        return f"restored from backup {backup}: {counts}"
    why = f" ({done.failure})" if done.failure else ""
    return (
        f"Velero's restore {restore_ref} ended {done.phase.value}{why}: {counts}; the platform"
        f" team reads its log with `velero restore logs {restore_ref.rpartition('/')[2]}`"
    )


def recent(found: Sequence[Mapping[str, Any]], tenant: str, limit: int = RECENT) -> list[Manifest]:
    """The tenant's newest backups (its own by label, newest first) as its status lists
    them: name, phase, when it completed and until when it is kept."""
    mine = [item for item in found if backup_tenant(item) == tenant]
    mine.sort(
        key=lambda item: (
            str((item.get("status") or {}).get("startTimestamp") or ""),
            str(item["metadata"].get("creationTimestamp") or ""),
            str(item["metadata"]["name"]),
        ),
        reverse=True,
    )
    listed: list[Manifest] = []
    for item in mine[:limit]:
        status = item.get("status") or {}
        entry: Manifest = {
            "name": str(item["metadata"]["name"]),
            "phase": str(status.get("phase") or "New"),
        }
        for key, source in (("completedAt", "completionTimestamp"), ("expiresAt", "expiration")):
            if (moment := _text(status.get(source))) is not None:
                entry[key] = moment
        listed.append(entry)
    return listed


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _text(value: Any) -> str | None:
    moment = backups.parse_time(value)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment is not None else None
