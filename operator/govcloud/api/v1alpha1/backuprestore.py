"""BackupRestore: a department's request to restore one of its own backups into its own
namespaces (issue #17, item 5: self-service restores, safe by default).

A tenant's admins create it in one of their namespaces; the tenant is the one owning that
namespace. The operator checks that the Velero Backup is the same tenant's and Completed and
that every namespace named is the tenant's, then has Velero restore exactly those namespaces
(never into another's, never cluster-scoped objects) and reports how it went. The request is
one-shot: its spec cannot change; a new restore is a new request.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any

from pydantic import ConfigDict, Field

from govcloud.api import cel
from govcloud.api.v1alpha1._base import DNS_LABEL_PATTERN, Condition, Model

MAX_NAMESPACES = 32
# Velero names Backups as Kubernetes objects (a DNS subdomain); it labels restores with the
# backup's name, so a Backup name longer than a label value (63) is rare but possible.
BACKUP_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
MAX_MESSAGE = 1024

SPEC_IMMUTABLE = cel.Rule(
    rule="self == oldSelf",
    message="a BackupRestore cannot change once requested; create a new one instead",
)


class ExistingResources(StrEnum):
    """What Velero does with an object that exists already (its existingResourcePolicy)."""

    NONE = "none"  # leave it as it is (the restore fills in only what is missing)
    UPDATE = "update"  # patch it back to the backed-up version


class RestorePhase(StrEnum):
    """Where a restore stands."""

    PENDING = "Pending"  # not looked at yet, or Velero not answering
    REFUSED = "Refused"  # the request was refused (see the Accepted condition): nothing restored
    IN_PROGRESS = "InProgress"  # Velero is restoring
    COMPLETED = "Completed"
    PARTIALLY_FAILED = "PartiallyFailed"
    FAILED = "Failed"


FINISHED = frozenset(
    {
        RestorePhase.REFUSED,
        RestorePhase.COMPLETED,
        RestorePhase.PARTIALLY_FAILED,
        RestorePhase.FAILED,
    }
)


class BackupRestoreSpec(Model):
    """Which backup of the tenant to restore, into which of its namespaces."""

    model_config = ConfigDict(json_schema_extra=cel.validations(SPEC_IMMUTABLE))

    backup: str = Field(
        min_length=1,
        max_length=253,
        pattern=BACKUP_NAME_PATTERN,
        description=(
            "The Velero Backup to restore from (its name, as status.backup.recent of your"
            " CloudTenant lists them): one of your tenant's own, Completed."
        ),
    )
    namespaces: list[
        Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)]
    ] = Field(
        default_factory=list,
        max_length=MAX_NAMESPACES,
        description=(
            "Which of your tenant's namespaces in the backup to restore; empty: every one of"
            " them. Each must be your tenant's and in the backup; restored under its own name."
        ),
    )
    existing_resources: ExistingResources = Field(
        default=ExistingResources.NONE,
        alias="existingResources",
        description=(
            "none: objects that exist are left as they are (only what is missing comes back);"
            " update: they are patched back to their backed-up version."
        ),
        json_schema_extra={"maxLength": 8},
    )


class BackupRestoreStatus(Model):
    """How the restore went, as the operator reads it from Velero."""

    observed_generation: int | None = Field(default=None, alias="observedGeneration")
    phase: RestorePhase | None = Field(
        default=None,
        description="Pending, Refused, InProgress, Completed, PartiallyFailed, Failed.",
    )
    tenant: str | None = Field(default=None, max_length=63, description="The requesting tenant.")
    restore: str | None = Field(
        default=None, max_length=253, description="The Velero Restore (namespace/name)."
    )
    namespaces: list[Annotated[str, Field(max_length=63)]] = Field(
        default_factory=list,
        max_length=MAX_NAMESPACES,
        description="The namespaces being restored.",
    )
    backup_completed_at: str | None = Field(
        default=None,
        alias="backupCompletedAt",
        description="When the backup completed: the point in time restored to.",
        json_schema_extra={"format": "date-time"},
    )
    started_at: str | None = Field(
        default=None, alias="startedAt", json_schema_extra={"format": "date-time"}
    )
    completed_at: str | None = Field(
        default=None, alias="completedAt", json_schema_extra={"format": "date-time"}
    )
    items_restored: int | None = Field(default=None, alias="itemsRestored", ge=0)
    total_items: int | None = Field(default=None, alias="totalItems", ge=0)
    warnings: int | None = Field(default=None, ge=0)
    errors: int | None = Field(default=None, ge=0)
    message: str | None = Field(
        default=None, max_length=MAX_MESSAGE, description="What to do, when it did not go well."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Accepted (the request is the tenant's own) and Restored.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


def parse(spec: Mapping[str, Any]) -> BackupRestoreSpec:
    """The spec checked as the API server checks it; pydantic.ValidationError if not."""
    return BackupRestoreSpec.model_validate(spec)
