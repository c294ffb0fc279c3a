"""RecoveryDrill: the platform team restores a department's backup onto another cluster (a
sub-center or a standby hub registered as one), proves it matches, and cleans up (issue #17,
item 3).

Written by the platform team, not by tenants. Who ran it is `spec.requestedBy`, which the
chart's admission policy (govcloud-recoverydrill-requester) requires to be the creating user;
the spec never changes after creation except `keep` (clean up a result kept earlier).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, field_validator

from govcloud.api import cel
from govcloud.api.v1alpha1._base import DNS_LABEL_PATTERN, Condition, Model

MAX_NAME_LENGTH = 48  # the Restore on the target is drill-<name>, a label value Velero copies
MAX_USER_LENGTH = 253
MAX_MISMATCHES = 20
MAX_NAMESPACES = 64
DEFAULT_TIMEOUT = "30m"
TIMEOUT_PATTERN = r"^([0-9]{1,5}h)?([0-9]{1,5}m)?([0-9]{1,5}s)?$"
TIMEOUT_FORMAT = cel.Rule(
    rule="self != '' && self.matches(r'" + TIMEOUT_PATTERN + "')",
    message="a duration in hours, minutes and seconds, e.g. 30m, 2h or 90s",
)

IMMUTABLE = cel.Rule(
    rule="self == oldSelf",
    message=(
        "a drill's tenant, backup, target, timeout and requester never change; create a new drill"
    ),
)
NAME_LENGTH = cel.Rule(
    rule=f"oldSelf.hasValue() || size(self.metadata.name) <= {MAX_NAME_LENGTH}",
    optional_old_self=True,
    message=f"a RecoveryDrill's name is at most {MAX_NAME_LENGTH} characters (its Restore is"
    " named drill-<name>)",
)
ROOT_RULES = (NAME_LENGTH,)


class DrillPhase(StrEnum):
    """Where a drill stands."""

    PENDING = "Pending"  # not started: the target or the backup is not there yet
    WAITING_FOR_BACKUP = "WaitingForBackup"  # Velero on the target has not synced it yet
    RESTORING = "Restoring"  # Velero on the target restores
    VERIFYING = "Verifying"  # the restored objects are compared with the backup's
    SUCCEEDED = "Succeeded"  # restored, and every object matches the backup
    FAILED = "Failed"  # refused, failed, mismatched or overdue (see the Succeeded condition)


FINISHED = frozenset({DrillPhase.SUCCEEDED.value, DrillPhase.FAILED.value})


class Target(Model):
    """Where the backup is restored."""

    site: str = Field(
        min_length=1,
        max_length=63,
        pattern=DNS_LABEL_PATTERN,
        description=(
            "A SubCenter: the backup is restored onto its cluster (its Velero reads the same"
            " bucket). A standby hub is registered as a SubCenter to be a target."
        ),
    )


class RecoveryDrillSpec(Model):
    """Restore one tenant's backup onto another cluster, check it, clean up."""

    tenant: str = Field(
        min_length=1,
        max_length=40,
        pattern=DNS_LABEL_PATTERN,
        description="The CloudTenant whose backup is restored.",
        json_schema_extra=cel.validations(IMMUTABLE),
    )
    backup: str | None = Field(
        default=None,
        min_length=1,
        max_length=63,
        pattern=DNS_LABEL_PATTERN,
        description=(
            "A Velero Backup made by the tenant's Schedule; absent: its newest Completed one."
        ),
        json_schema_extra=cel.validations(IMMUTABLE),
    )
    target: Target = Field(
        description="The cluster restored onto.", json_schema_extra=cel.validations(IMMUTABLE)
    )
    keep: bool = Field(
        default=False,
        description=(
            "true: leave the restored namespaces (and the Restore) on the target for people"
            " to look at; set it back to false to have them deleted."
        ),
    )
    timeout: str = Field(
        default=DEFAULT_TIMEOUT,
        max_length=12,
        description=(
            "How long the drill may take from its start to a verified restore (e.g. 30m,"
            " 2h); past it, the drill fails as Overdue."
        ),
        json_schema_extra=cel.validations(TIMEOUT_FORMAT, IMMUTABLE),
    )

    @field_validator("timeout")
    @classmethod
    def _a_duration(cls, value: str) -> str:
        if not value or not re.match(TIMEOUT_PATTERN, value):
            raise ValueError(TIMEOUT_FORMAT.message)
        return value

    requested_by: Annotated[str, Field(min_length=1, max_length=MAX_USER_LENGTH)] = Field(
        alias="requestedBy",
        description="Who runs the drill: must be the creating user (admission policy).",
        json_schema_extra=cel.validations(IMMUTABLE),
    )


class RecoveryDrillStatus(Model):
    """What the drill did: who, what, where, how long, whether it matched, and the clean-up."""

    observed_generation: int | None = Field(default=None, alias="observedGeneration")
    phase: DrillPhase | None = Field(default=None, description="Where the drill stands.")
    requested_by: str | None = Field(
        default=None, alias="requestedBy", max_length=MAX_USER_LENGTH, description="Who ran it."
    )
    backup: str | None = Field(default=None, max_length=63, description="The backup restored.")
    backup_completed_at: datetime | None = Field(
        default=None,
        alias="backupCompletedAt",
        description="When that backup completed: the point in time recovered to.",
    )
    site: str | None = Field(default=None, max_length=63, description="The target SubCenter.")
    restore: str | None = Field(
        default=None, max_length=253, description="The Velero Restore, <namespace>/<name> there."
    )
    restored_namespaces: list[Annotated[str, Field(max_length=63)]] = Field(
        default_factory=list,
        alias="restoredNamespaces",
        max_length=MAX_NAMESPACES,
        description="The tenant's namespaces restored on the target.",
    )
    started_at: datetime | None = Field(
        default=None, alias="startedAt", description="When the operator started the drill."
    )
    completed_at: datetime | None = Field(
        default=None, alias="completedAt", description="When the drill finished (either way)."
    )
    recovery_time_seconds: int | None = Field(
        default=None,
        alias="recoveryTimeSeconds",
        ge=0,
        description=(
            "Recovery time: from the start to the Restore's completion (waiting for the"
            " backup on the target included)."
        ),
    )
    items_restored: int | None = Field(default=None, alias="itemsRestored", ge=0)
    total_items: int | None = Field(default=None, alias="totalItems", ge=0)
    compared: int | None = Field(
        default=None, ge=0, description="Objects of the backup compared with their restored copy."
    )
    matched: bool | None = Field(
        default=None, description="Whether every compared object equals the backup's."
    )
    mismatches: list[Annotated[str, Field(max_length=512)]] = Field(
        default_factory=list,
        max_length=MAX_MISMATCHES,
        description="The first differences: kind namespace/name and what differs (no values).",
    )
    cleanup: str | None = Field(
        default=None,
        max_length=32,
        description=(
            "Deleted (the restored namespaces and the Restore), Kept (spec.keep) or Failed."
        ),
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Succeeded (Unknown while running) and CleanedUp.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


def parse(spec: Mapping[str, Any]) -> RecoveryDrillSpec:
    """The spec checked as the API server checks it; pydantic.ValidationError if not."""
    return RecoveryDrillSpec.model_validate(spec)
