"""The platform ledger's backups (pure): the Velero Schedule of the operator's own records, the
Restore that brings them back into an empty hub, and whether its recovery point is recent enough.

The ledger is what finance and the bureau rely on and what no department's backup holds whole:
CloudTenants, SubCenters, the RateCard, ResourcePlans (their decisions and history) and
UsageReports, all cluster-scoped, and ResourceRequests (in-year amendments of a plan, kept in the
departments' namespaces). Only these kinds, with their status, and the namespace objects Velero
adds (names, labels, annotations: a restored request's namespace is made from it, with its
tenant's label, so the tenant takes it), never what a department runs: those are the tenants'
own Schedules (desired.backups).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from govcloud import constants
from govcloud.desired import backups

Manifest = dict[str, Any]

# Not a tenant's Schedule (govcloud-<tenant>: a tenant name has no dot), so never confused with one.
SCHEDULE_NAME = "govcloud.ledger"
LABEL_LEDGER = "govcloud.io/ledger"
LEDGER = "platform"
CLUSTER_SCOPED = (
    f"cloudtenants.{constants.GROUP}",
    f"subcenters.{constants.GROUP}",
    f"ratecards.{constants.GROUP}",
    f"resourceplans.{constants.GROUP}",
    f"usagereports.{constants.GROUP}",
)
NAMESPACED = (f"resourcerequests.{constants.GROUP}",)
KINDS = CLUSTER_SCOPED + NAMESPACED


@dataclass(frozen=True)
class Policy:
    """When the ledger is backed up, how long each backup is kept, and the objective."""

    namespace: str
    schedule: str  # Velero cron (UTC) or @every <duration>
    ttl: float  # seconds
    rpo: float  # seconds: the newest completed backup may be at most this old


def labels() -> dict[str, str]:
    """On the ledger's Schedule and every Backup it makes (no tenant label: no tenant's)."""
    return {constants.LABEL_MANAGED_BY: constants.MANAGED_BY, LABEL_LEDGER: LEDGER}


def selector() -> str:
    return ",".join(f"{key}={value}" for key, value in labels().items())


def schedule(policy: Policy) -> Manifest:
    """The ledger's Velero Schedule: the operator's kinds with their status, in every namespace,
    and nothing else (no namespace object, no department's resource)."""
    return {
        "apiVersion": backups.VELERO_API_VERSION,
        "kind": backups.SCHEDULE_KIND,
        "metadata": {"name": SCHEDULE_NAME, "namespace": policy.namespace, "labels": labels()},
        "spec": {
            "schedule": policy.schedule,
            "skipImmediately": False,  # as Velero writes it back: no write at rest
            "useOwnerReferencesInBackup": False,
            "template": {
                "metadata": {"labels": labels()},
                "includedNamespaces": ["*"],
                "includedClusterScopedResources": list(CLUSTER_SCOPED),
                "includedNamespaceScopedResources": list(NAMESPACED),
                "snapshotVolumes": False,
                "ttl": backups.format_duration(policy.ttl),
            },
        },
    }


def restore(name: str, backup: str, namespace: str, kinds: Sequence[str] = KINDS) -> Manifest:
    """The Velero Restore of `kinds` of the ledger from `backup`, their status too (Velero
    restores no status unless asked), existing objects left as they are; while the operator
    does not run (docs/backup.md)."""
    return {
        "apiVersion": backups.VELERO_API_VERSION,
        "kind": "Restore",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "backupName": backup,
            "includedResources": list(kinds),
            "includedNamespaces": ["*"],
            "restoreStatus": {"includedResources": list(kinds)},
            "existingResourcePolicy": "none",
        },
    }


def tenant_uid(tenant: Mapping[str, Any]) -> str:
    """The UID a tenant's records are kept under: status.ledgerUID (its UID when the operator
    first saw it, kept by a restore, which gives the tenant a new UID), else its own. Only the
    operator writes a tenant's status, so nobody else can claim another tenant's records."""
    status = tenant.get("status") or {}
    return str(status.get("ledgerUID") or (tenant.get("metadata") or {}).get("uid") or "")


def recovery(
    schedule_created: datetime | None,
    made: Sequence[Mapping[str, Any]],
    policy: Policy,
    now: datetime,
) -> backups.Recovery:
    """The newest Completed Backup of the ledger's Schedule, and whether it is within the RPO
    (a new Schedule has one RPO from its creation)."""
    return backups.recovery(schedule_created, made, policy.rpo, now, SCHEDULE_NAME)
