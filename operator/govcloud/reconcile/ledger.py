"""The platform ledger's backups: keep its Velero Schedule in Velero's namespace on the hub and
judge its recovery point (metrics, the alert GovcloudLedgerBackupRPOMissed).

Only with the operator's backup setting (and its ledger setting) on. The Schedule and its
Backups are read from the watch-fed cache of Velero's namespace; a look that finds the Schedule
as wanted writes nothing. What is decided is pure (desired.ledger).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from govcloud import metrics
from govcloud.desired import backups, compare, ledger
from govcloud.k8s import client
from govcloud.reconcile import tenant_backup

Manifest = dict[str, Any]


@dataclass
class Outcome:
    """What a look decided: the metrics, what is wrong (said once per change), when the
    objective would be missed unless a backup completes, and whether it wrote."""

    snapshot: metrics.LedgerSnapshot
    problems: list[str] = field(default_factory=list)
    due_in: float | None = None
    wrote: bool = False


def enabled(settings: Any) -> bool:
    return tenant_backup.enabled(settings) and bool(
        getattr(settings, "ledger_backup_enabled", True)
    )


def converge(hub: client.Cluster, settings: Any, now: datetime) -> Outcome:
    """Keep the ledger's Schedule and judge its newest completed Backup."""
    policy: ledger.Policy = settings.ledger_policy
    found = tenant_backup.velero_objects(
        hub, backups.SCHEDULE_KIND, policy.namespace, ledger.selector()
    )
    if found is None:
        return Outcome(
            metrics.LedgerSnapshot(rpo_met=False, rpo_seconds=policy.rpo),
            [
                "Velero is not installed on the hub (its Schedule kind is not served): the"
                " platform ledger is not backed up; install Velero there (docs/backup.md)"
            ],
        )
    wanted = ledger.schedule(policy)
    current = next(
        (item for item in found if item["metadata"]["name"] == ledger.SCHEDULE_NAME), None
    )
    problems: list[str] = []
    wrote = False
    if compare.needs_update(wanted, current):
        try:
            current = hub.apply(wanted)
            wrote = True
        except client.ApiError as error:
            problems.append(
                f"the ledger's Schedule {policy.namespace}/{ledger.SCHEDULE_NAME} could not be"
                f" written: {error}"
            )
    created = backups.parse_time(((current or {}).get("metadata") or {}).get("creationTimestamp"))
    made = tenant_backup.velero_objects(
        hub,
        backups.BACKUP_KIND,
        policy.namespace,
        f"{ledger.selector()},{backups.SCHEDULE_NAME_LABEL}={ledger.SCHEDULE_NAME}",
    )
    point = ledger.recovery(created, made or [], policy, now)
    if not point.rpo_met:
        since = (
            f"the newest completed backup, {point.last_backup}, finished at {point.last_time}"
            if point.last_backup
            else "no backup has completed since the Schedule was created"
        )
        problems.append(
            f"the platform ledger misses its recovery-point objective"
            f" ({backups.format_duration(policy.rpo)}): {since}; see velero backup get -l"
            f" {backups.SCHEDULE_NAME_LABEL}={ledger.SCHEDULE_NAME}"
        )
    due_in = (
        max(1.0, (point.deadline - now).total_seconds() + 1.0)
        if point.rpo_met and point.deadline is not None
        else None
    )
    return Outcome(
        metrics.LedgerSnapshot(
            rpo_met=point.rpo_met,
            rpo_seconds=policy.rpo,
            last_success=point.last_time.timestamp() if point.last_time is not None else None,
        ),
        problems,
        due_in,
        wrote,
    )
