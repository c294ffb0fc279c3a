"""Restore drills (pure): which backup a drill restores, whether it is the tenant's, the Velero
Restore and DownloadRequest it needs on the target, the backup's objects compared with their
restored copies, and the drill record per tenant that the metrics and alerts read.

Nothing here reads a cluster or the clock: the reconciler passes in what it observed and `now`.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from govcloud import constants
from govcloud.desired import backups, meta

Manifest = dict[str, Any]

RESTORE_KIND = "Restore"
DOWNLOAD_KIND = "DownloadRequest"
RESTORE_PREFIX = "drill-"
LABEL_DRILL = "govcloud.io/recovery-drill"
# Velero's phases of a Restore not yet ended: it still restores, runs plugin operations, or
# finalizes (a Restore passes through Finalizing for a moment before Completed).
RESTORE_RUNNING = frozenset(
    {
        "", "New", "InProgress", "WaitingForPluginOperations",
        "WaitingForPluginOperationsPartiallyFailed", "Finalizing", "FinalizingPartiallyFailed",
    }
)  # fmt: skip
RESTORE_COMPLETED = "Completed"
# Objects a cluster makes by itself in every namespace, or controllers make from others: they
# are not what a department backed up, so they are not compared.
DERIVED_KINDS = frozenset(
    {
        "Pod", "ReplicaSet", "ControllerRevision", "Endpoints", "EndpointSlice", "Event",
        "Lease", "PodMetrics",
    }
)  # fmt: skip
CLUSTER_MADE = frozenset({("ConfigMap", "kube-root-ca.crt"), ("ServiceAccount", "default")})
# The platform's own records in a department's namespaces (MigrationPlans, ResourceRequests):
# the hub's operator keeps them, and a target has no such API, so a drill restores and compares
# the department's objects without them (a glob Velero's excludedResources matches).
PLATFORM_RESOURCES = f"*.{constants.GROUP}"
SERVICE_ACCOUNT_TOKEN = "kubernetes.io/service-account-token"
# What Velero, or the target's API server, assigns anew on a restore (not the department's).
IGNORED_ANNOTATIONS = ("deployment.kubernetes.io/revision", "kubectl.kubernetes.io/")
IGNORED_LABEL_PREFIXES = ("velero.io/",)
SERVICE_ASSIGNED = ("clusterIP", "clusterIPs", "healthCheckNodePort")


def restore_name(drill: str) -> str:
    """The drill's Restore in Velero's namespace on the target."""
    return f"{RESTORE_PREFIX}{drill}"


def tenant_namespaces(tenant: str, tenant_spec: Mapping[str, Any]) -> set[str]:
    """The namespaces the tenant's spec declares (``<tenant>-<name>``)."""
    found = set()
    for item in tenant_spec.get("namespaces") or []:
        name = str((item or {}).get("name") or "")
        if name:
            found.add(f"{tenant}-{name}")
    return found


def _labels(item: Mapping[str, Any]) -> dict[str, str]:
    return dict((item.get("metadata") or {}).get("labels") or {})


def completed_at(backup: Mapping[str, Any]) -> datetime | None:
    return backups.parse_time((backup.get("status") or {}).get("completionTimestamp"))


def choose_backup(
    found: Iterable[Mapping[str, Any]], tenant: str, wanted: str | None
) -> Mapping[str, Any] | None:
    """The backup a drill restores: `wanted` by name, else the newest Completed one the
    tenant's Schedule made."""
    if wanted is not None:
        return next((item for item in found if item["metadata"]["name"] == wanted), None)
    schedule = backups.schedule_name(tenant)
    candidates = [
        (when, item["metadata"]["name"], item)
        for item in found
        if _labels(item).get(backups.SCHEDULE_NAME_LABEL) == schedule
        and _labels(item).get(constants.LABEL_TENANT) == tenant
        and (item.get("status") or {}).get("phase") == backups.COMPLETED
        and (when := completed_at(item)) is not None
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda entry: (entry[0], entry[1]))[2]


def refusal(backup: Mapping[str, Any], tenant: str, namespaces: set[str]) -> tuple[str, str] | None:
    """(reason, message) when the backup may not be restored for `tenant`: not made by its
    Schedule, not Completed, or holding a namespace that is not the tenant's."""
    name = backup["metadata"]["name"]
    labels = _labels(backup)
    schedule = backups.schedule_name(tenant)
    if (
        labels.get(constants.LABEL_TENANT) != tenant
        or labels.get(backups.SCHEDULE_NAME_LABEL) != schedule
    ):
        return (
            "BackupNotTenants",
            f"backup {name} was not made by tenant {tenant}'s Schedule {schedule} (its labels"
            f" {constants.LABEL_TENANT} and {backups.SCHEDULE_NAME_LABEL}): a drill restores"
            " only the tenant's own backups; nothing was restored",
        )
    phase = (backup.get("status") or {}).get("phase")
    if phase != backups.COMPLETED:
        return (
            "BackupNotCompleted",
            f"backup {name} is {phase or 'not finished'}, not Completed: choose a completed"
            " backup (velero backup get), or leave spec.backup out for the newest",
        )
    included = list((backup.get("spec") or {}).get("includedNamespaces") or [])
    foreign = sorted(set(included) - namespaces)
    if not included or "*" in included or foreign:
        what = "every namespace" if not included or "*" in included else ", ".join(foreign)
        return (
            "BackupNotTenants",
            f"backup {name} holds {what}, which is not tenant {tenant}'s own (its spec's"
            " namespaces); nothing was restored",
        )
    return None


def restore(
    drill: str, backup: str, namespaces: Sequence[str], velero_namespace: str, tenant: str
) -> Manifest:
    """The Velero Restore of exactly the tenant's namespaces from the backup, into namespaces of
    the same names, API objects only (no cluster-scoped objects, no volumes, none of the
    platform's own records)."""
    labels = {**meta.common_labels(tenant), LABEL_DRILL: drill}
    return {
        "apiVersion": backups.VELERO_API_VERSION,
        "kind": RESTORE_KIND,
        "metadata": {"name": restore_name(drill), "namespace": velero_namespace, "labels": labels},
        "spec": {
            "backupName": backup,
            "includedNamespaces": sorted(namespaces),
            "excludedResources": [PLATFORM_RESOURCES],
            "includeClusterResources": False,
            "restorePVs": False,
        },
    }


def download_request(drill: str, backup: str, velero_namespace: str, tenant: str) -> Manifest:
    """Asks Velero on the target for a short-lived link to the backup's contents."""
    labels = {**meta.common_labels(tenant), LABEL_DRILL: drill}
    return {
        "apiVersion": backups.VELERO_API_VERSION,
        "kind": DOWNLOAD_KIND,
        "metadata": {
            "name": f"{restore_name(drill)}-contents",
            "namespace": velero_namespace,
            "labels": labels,
        },
        "spec": {"target": {"kind": "BackupContents", "name": backup}},
    }


# -- the backup's objects and their restored copies -----------------------------------------


UNPACKED_LIMIT_FACTOR = 4


def backup_items(contents: bytes, namespaces: set[str], limit: int) -> list[Manifest]:
    """The namespaced objects of `namespaces` in a Velero backup tarball (gzip): one per kind,
    namespace and name, the preferred API version's copy when there are several."""
    found: dict[tuple[str, str, str], tuple[bool, Manifest]] = {}
    unpacked = 0  # what the objects read take once unpacked: a small archive can hold a lot
    with tarfile.open(fileobj=io.BytesIO(contents), mode="r:gz") as archive:
        for member in archive:
            if not member.isfile() or not member.name.endswith(".json"):
                continue
            parts = member.name.split("/")
            if "resources" not in parts or "namespaces" not in parts:
                continue
            namespace = parts[parts.index("namespaces") + 1]
            if namespace not in namespaces:
                continue
            unpacked += member.size
            if member.size > limit or unpacked > UNPACKED_LIMIT_FACTOR * limit:
                raise ValueError(
                    f"the backup's objects unpack to more than {UNPACKED_LIMIT_FACTOR} times"
                    f" {limit // 2**20} MiB"
                )
            handle = archive.extractfile(member)
            if handle is None:
                continue
            item = json.loads(handle.read())
            key = (str(item.get("kind")), namespace, str(item["metadata"]["name"]))
            preferred = any(part.endswith("-preferredversion") for part in parts)
            if key not in found or (preferred and not found[key][0]):
                found[key] = (preferred, item)
    return [item for _, (_, item) in sorted(found.items())]


def compared_kind(item: Mapping[str, Any]) -> bool:
    """Whether the object is the department's own (not one the cluster or a controller made,
    nor one of the platform's records, which the drill does not restore)."""
    kind = str(item.get("kind"))
    name = str(item["metadata"]["name"])
    if kind in DERIVED_KINDS or (kind, name) in CLUSTER_MADE:
        return False
    if str(item.get("apiVersion", "")).startswith(f"{constants.GROUP}/"):
        return False
    return not (kind == "Secret" and item.get("type") == SERVICE_ACCOUNT_TOKEN)


def comparable(item: Mapping[str, Any]) -> Manifest:
    """What must survive a backup and restore: labels, annotations and the content, without what
    the cluster, a controller or Velero assigns (status, uid, versions, a Service's IPs)."""
    metadata = item.get("metadata") or {}
    labels = {
        key: value
        for key, value in (metadata.get("labels") or {}).items()
        if not key.startswith(IGNORED_LABEL_PREFIXES)
    }
    annotations = {
        key: value
        for key, value in (metadata.get("annotations") or {}).items()
        if not key.startswith(IGNORED_ANNOTATIONS) and not key.startswith("velero.io/")
    }
    content = {
        key: value
        for key, value in item.items()
        if key not in ("apiVersion", "kind", "metadata", "status")
    }
    if item.get("kind") == "Service" and isinstance(content.get("spec"), dict):
        spec = {k: v for k, v in content["spec"].items() if k not in SERVICE_ASSIGNED}
        spec["ports"] = [
            {k: v for k, v in port.items() if k != "nodePort"} for port in spec.get("ports") or []
        ]
        content["spec"] = spec
    if item.get("kind") == "ServiceAccount":
        content.pop("secrets", None)
    return {"labels": labels, "annotations": annotations, "content": content}


def differences(original: Mapping[str, Any], restored: Mapping[str, Any] | None) -> str | None:
    """What differs between a backed-up object and its restored copy, by field name only (never
    a value: Secrets are compared too); None when they are equal."""
    if restored is None:
        return "missing"
    left, right = comparable(original), comparable(restored)
    if left == right:
        return None
    fields = []
    for part in ("labels", "annotations"):
        if left[part] != right[part]:
            fields.append(f"metadata.{part}")
    keys = sorted(set(left["content"]) | set(right["content"]))
    fields += [key for key in keys if left["content"].get(key) != right["content"].get(key)]
    return "differs in " + ", ".join(fields)


def compare(
    items: Sequence[Mapping[str, Any]],
    restored: Callable[[Mapping[str, Any]], Mapping[str, Any] | None],
) -> tuple[int, list[str]]:
    """(objects compared, mismatches as "<Kind> <namespace>/<name>: what")."""
    compared, mismatches = 0, []
    for item in items:
        if not compared_kind(item):
            continue
        compared += 1
        found = differences(item, restored(item))
        if found is not None:
            where = f"{item['metadata'].get('namespace')}/{item['metadata']['name']}"
            mismatches.append(f"{item.get('kind')} {where}: {found}")
    return compared, mismatches


# -- the drill record of each tenant: metrics and alerts -----------------------------------


@dataclass(frozen=True)
class TenantDrills:
    """What a tenant's drills show: its newest success, whether its newest finished drill
    failed, and whether a drill is overdue under the platform's policy."""

    tenant: str
    last_success: float | None  # Unix time the newest successful drill completed
    recovery_time: float | None  # its recovery time, seconds
    newest_finished: str | None  # the newest finished drill's name
    failed: bool  # that one failed
    overdue: bool | None  # None: the policy does not apply (not level 3)


def _finished(drill: Mapping[str, Any]) -> datetime | None:
    return backups.parse_time((drill.get("status") or {}).get("completedAt"))


def tenant_drills(
    tenants: Sequence[Mapping[str, Any]],
    drills: Sequence[Mapping[str, Any]],
    now: datetime,
    period: float,
    level: int = backups.REQUIRED_LEVEL,
) -> list[TenantDrills]:
    """Per tenant with a drill or of `level`: the record the metrics export. A tenant of
    `level` is overdue when no drill of it succeeded within `period` seconds (a new tenant has
    one period from its creation)."""
    by_tenant: dict[str, list[Mapping[str, Any]]] = {}
    for drill in drills:
        tenant = str((drill.get("spec") or {}).get("tenant") or "")
        if tenant and _finished(drill) is not None:
            by_tenant.setdefault(tenant, []).append(drill)
    levels = {
        str(item["metadata"]["name"]): (
            int((item.get("spec") or {}).get("securityLevel") or 0),
            backups.parse_time(item["metadata"].get("creationTimestamp")),
        )
        for item in tenants
    }
    found = []
    for tenant in sorted(
        set(by_tenant) | {name for name, (lv, _) in levels.items() if lv >= level}
    ):
        if tenant not in levels:
            continue  # a drill of a tenant that is gone: its record is the drill object
        own = sorted(by_tenant.get(tenant, []), key=lambda d: (_finished(d), d["metadata"]["name"]))
        wins = [d for d in own if (d.get("status") or {}).get("phase") == "Succeeded"]
        best = wins[-1] if wins else None
        last = _finished(best) if best is not None else None
        rto = (best.get("status") or {}).get("recoveryTimeSeconds") if best is not None else None
        overdue: bool | None = None
        tenant_level, created = levels[tenant]
        if tenant_level >= level:
            since = last or created
            overdue = since is None or (now - since).total_seconds() > period
        newest = own[-1] if own else None
        found.append(
            TenantDrills(
                tenant=tenant,
                last_success=last.timestamp() if last is not None else None,
                recovery_time=float(rto) if rto is not None else None,
                newest_finished=newest["metadata"]["name"] if newest is not None else None,
                failed=newest is not None and (newest.get("status") or {}).get("phase") == "Failed",
                overdue=overdue,
            )
        )
    return found
