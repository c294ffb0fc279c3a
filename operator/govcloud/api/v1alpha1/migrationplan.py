"""MigrationPlan: move one legacy app's workloads into a tenant namespace, in audited stages."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import ConfigDict, Field, WithJsonSchema, field_validator, model_validator

from govcloud.api import cel
from govcloud.api.v1alpha1 import _base
from govcloud.api.v1alpha1._base import (
    DNS_LABEL_PATTERN,
    Condition,
    LabelValue,
    Model,
    Timestamp,
)

MAX_KINDS = 12
MAX_SELECTOR_LABELS = 16
MIN_VERIFY_SECONDS, MAX_VERIFY_SECONDS = 5, 3600
MAX_USER_LENGTH = 256
MAX_DATA_VOLUMES = 32
DIGEST_LENGTH = 64  # sha256, hex
# The kinds whose objects hold data that does not move with them: a PersistentVolumeClaim,
# and a StatefulSet with volumeClaimTemplates (its copy gets new, empty claims).
DATA_KINDS = ("PersistentVolumeClaim", "StatefulSet")

# The kinds a plan can move, in the order they are copied (config before the workloads
# that mount it). Events, Endpoints, EndpointSlices, Pods and ReplicaSets never move: they
# are made by the cluster, from the objects that do.
SUPPORTED_KINDS = (
    "ServiceAccount",
    "ConfigMap",
    "Secret",
    "PersistentVolumeClaim",
    "Service",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "Job",
    "Ingress",
)
DEFAULT_KINDS = ("ConfigMap", "Secret", "Service", "Deployment", "CronJob")
_KIND_LIST = ", ".join(f"'{kind}'" for kind in SUPPORTED_KINDS)


class Stage(StrEnum):
    """A stage that can be gated by an approval."""

    COPY = "copy"
    CUTOVER = "cutover"


class RollbackPolicy(StrEnum):
    """What happens when a stage fails: wait for a person, or roll back at once."""

    MANUAL = "Manual"
    AUTOMATIC = "Automatic"


class Phase(StrEnum):
    """Where the plan is."""

    PENDING = "Pending"
    ASSESSING = "Assessing"
    AWAITING_APPROVAL = "AwaitingApproval"
    COPYING = "Copying"
    VERIFYING = "Verifying"
    CUTTING_OVER = "CuttingOver"
    COMPLETED = "Completed"
    ROLLING_BACK = "RollingBack"
    ROLLED_BACK = "RolledBack"
    FAILED = "Failed"


KINDS_KNOWN = cel.Rule(
    rule=f"self.all(k, k in [{_KIND_LIST}])",
    message=(
        "source.kinds may name only " + ", ".join(SUPPORTED_KINDS) + " (Events, Endpoints,"
        " EndpointSlices, Pods and ReplicaSets are made by the cluster and never move)"
    ),
)
KINDS_UNIQUE = cel.Rule(
    rule="self.all(a, self.exists_one(b, b == a))", message="source.kinds lists a kind twice"
)
LEVEL_RANGE = cel.Rule(
    rule="self >= 1 && self <= 5",
    message="app.securityLevel is the system's MLPS (等保) level: 1 to 5",
)
STAGE_KNOWN = cel.Rule(
    rule="self == 'copy' || self == 'cutover'",
    message="an approval gate is one of the stages copy or cutover",
)
POLICY_KNOWN = cel.Rule(
    rule="self == 'Manual' || self == 'Automatic'",
    message=(
        "rollbackPolicy is Manual (a failed stage waits for rollback: true) or Automatic"
        " (a failed stage rolls back at once)"
    ),
)
DEADLINE_AFTER_NOT_BEFORE = cel.Rule(
    rule="!has(self.notBefore) || timestamp(self.deadline) > timestamp(self.notBefore)",
    message="deadline must be later than notBefore; the plan could never finish in time",
    field_path=".deadline",
)
SOURCE_IS_NOT_TARGET = cel.Rule(
    rule="has(self.source.subCenter) || self.source.namespace != self.targetNamespace",
    message="source.namespace and targetNamespace are the same namespace: nothing would move",
    field_path=".targetNamespace",
)
VERIFY_RANGE = cel.Rule(
    rule=f"self >= {MIN_VERIFY_SECONDS} && self <= {MAX_VERIFY_SECONDS}",
    message=f"verifyTimeoutSeconds must be between {MIN_VERIFY_SECONDS} and {MAX_VERIFY_SECONDS}",
)
NAMESPACE_FORMAT = cel.Rule(
    rule=f"self.matches(r'{DNS_LABEL_PATTERN}')",
    message="a namespace name is a DNS label: lowercase letters, digits and '-'",
)
VOLUME_REF_PATTERN = r"^(PersistentVolumeClaim|StatefulSet)/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
VOLUME_REF_RE = re.compile(VOLUME_REF_PATTERN)
VOLUME_REFS_FORMAT = cel.Rule(
    rule=f"self.all(v, v.matches(r'{VOLUME_REF_PATTERN}'))",
    message=(
        "dataMigration.volumes names each volume as PersistentVolumeClaim/<name> or"
        " StatefulSet/<name> (a StatefulSet stands for its volumeClaimTemplates)"
    ),
)
VOLUME_REFS_UNIQUE = cel.Rule(
    rule="self.all(a, self.exists_one(b, b == a))",
    message="dataMigration.volumes lists a volume twice",
)
APPROVAL_STAGES_UNIQUE = cel.Rule(
    rule="self.all(a, self.exists_one(b, b == a))",
    message="approvalsRequired lists a stage twice",
)

# Root-level rule: whether copying began is in the status, which only the root can see. It is
# a transition rule (oldSelf), so it runs on updates only; status and finalizer writes leave
# the spec as it was and always pass.
SOURCE_TARGET_FROZEN = cel.Rule(
    rule=(
        "!has(oldSelf.status) || !has(oldSelf.status.startedAt)"
        " || (self.spec.source == oldSelf.spec.source"
        " && self.spec.targetNamespace == oldSelf.spec.targetNamespace)"
    ),
    message=(
        "source and targetNamespace cannot change once copying has begun (status.startedAt is"
        " set): the copies in the target and the source's remembered replica counts belong to"
        " them. Roll this plan back with spec.rollback: true, then create a new MigrationPlan"
        " for another source or target"
    ),
    field_path=".spec.source",
)
# A Completed plan's app runs in the target and may have written data there since the
# cutover: rolling it back would delete that. Also a transition rule, so only updates see it.
NO_ROLLBACK_AFTER_COMPLETION = cel.Rule(
    rule=(
        "!has(oldSelf.status) || !has(oldSelf.status.phase)"
        " || oldSelf.status.phase != 'Completed'"
        " || !has(self.spec.rollback) || !self.spec.rollback"
        " || (has(oldSelf.spec.rollback) && oldSelf.spec.rollback)"
    ),
    message=(
        "a Completed plan cannot be rolled back: the app runs in the target now and may have"
        " written data there since the cutover. Running the old app again is a new, reviewed"
        " move: scale the source up by hand (its counts are in the annotation"
        " govcloud.io/original-replicas) and retire the copies once it runs"
    ),
    field_path=".spec.rollback",
)
ROOT_RULES = (SOURCE_TARGET_FROZEN, NO_ROLLBACK_AFTER_COMPLETION)


def _refuse_if(broken: bool, rule: cel.Rule) -> None:
    """Raises the rule's own message, so the operator says what the API server says."""
    if broken:
        raise ValueError(rule.message)


def _string(rule: cel.Rule, max_length: int) -> dict[str, Any]:
    return {"type": "string", "maxLength": max_length, **cel.validations(rule)}


class App(Model):
    """The application being moved, and what decides whether it may move."""

    name: str = Field(
        min_length=1, max_length=128, description="The app's name, e.g. 不动产登记系统."
    )
    security_level: int = Field(
        alias="securityLevel",
        description="The system's MLPS (等保) level; only levels 1 to 3 move to the cloud.",
        json_schema_extra={"minimum": 1, "maximum": 5, **cel.validations(LEVEL_RANGE)},
    )
    classified: bool = Field(
        default=False,
        description="Classified (涉密) systems are never moved: the plan reports Ineligible.",
    )

    @field_validator("security_level")
    @classmethod
    def _level(cls, value: int) -> int:
        _refuse_if(not 1 <= value <= 5, LEVEL_RANGE)
        return value


class Source(Model):
    """Where the app runs now: a namespace on the hub, or in a SubCenter's cluster."""

    sub_center: str | None = Field(
        default=None,
        alias="subCenter",
        min_length=1,
        max_length=63,
        pattern=DNS_LABEL_PATTERN,
        description="The SubCenter whose cluster runs the app; absent means the hub.",
    )
    namespace: str = Field(
        min_length=1,
        max_length=63,
        description=(
            "The namespace the app runs in. It must belong to the plan's tenant, or be granted"
            " to it by the platform team (annotation govcloud.io/migration-grant)."
        ),
        json_schema_extra=cel.validations(NAMESPACE_FORMAT),
    )
    selector: dict[str, LabelValue] = Field(
        default_factory=dict,
        max_length=MAX_SELECTOR_LABELS,
        description="matchLabels of the app's objects; empty moves every object of the kinds.",
        json_schema_extra=cel.validations(_base.LABEL_KEYS),
    )
    kinds: list[Annotated[str, WithJsonSchema({"type": "string", "maxLength": 32})]] = Field(
        default_factory=lambda: list(DEFAULT_KINDS),
        max_length=MAX_KINDS,
        description="Kinds to move: " + ", ".join(SUPPORTED_KINDS) + ".",
        json_schema_extra={
            "default": list(DEFAULT_KINDS),
            **cel.validations(KINDS_KNOWN, KINDS_UNIQUE),
        },
    )

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        _refuse_if(not _base.DNS_LABEL_RE.match(value), NAMESPACE_FORMAT)
        return value

    @field_validator("selector")
    @classmethod
    def _selector(cls, value: dict[str, str]) -> dict[str, str]:
        return _base.check_label_keys(value)

    @field_validator("kinds")
    @classmethod
    def _kinds(cls, value: list[str]) -> list[str]:
        _refuse_if(any(kind not in SUPPORTED_KINDS for kind in value), KINDS_KNOWN)
        _refuse_if(len(set(value)) != len(value), KINDS_UNIQUE)
        return value


class Approval(Model):
    """A recorded approval: who approved which stage. Only platform approvers may write it."""

    stage: Annotated[Stage, WithJsonSchema(_string(STAGE_KNOWN, 16))] = Field(
        description="The approved stage: copy or cutover."
    )
    by: str = Field(
        min_length=1,
        max_length=MAX_USER_LENGTH,
        description="The approver's user name; admission checks it is the real requester.",
    )
    comment: str | None = Field(default=None, max_length=1024, description="Why, for the record.")
    digest: str | None = Field(
        default=None,
        max_length=DIGEST_LENGTH,
        description=(
            "The plan's status.digest as the approver reviewed it. The approval counts only"
            " while the plan's digest is still the same: a change of app, source,"
            " targetNamespace or dataMigration voids it, and the stage waits for a new one."
        ),
    )


class DataMigration(Model):
    """The plan's explicit answer for volumes that hold data: they arrive empty in the target,
    and `step` says how their data follows. Without it such volumes block the assessment."""

    volumes: list[Annotated[str, WithJsonSchema({"type": "string", "maxLength": 320})]] = Field(
        min_length=1,
        max_length=MAX_DATA_VOLUMES,
        description=(
            "Every volume that arrives empty, as PersistentVolumeClaim/<name> (created empty in"
            " the target) or StatefulSet/<name> (its volumeClaimTemplates make empty claims)."
        ),
        json_schema_extra=cel.validations(VOLUME_REFS_FORMAT, VOLUME_REFS_UNIQUE),
    )
    step: str = Field(
        min_length=1,
        max_length=1024,
        description=(
            "How the data of these volumes reaches the target, in words the approver reads,"
            " e.g. 'the DBA restores the nightly dump before the cutover (ticket OPS-1234)'."
        ),
    )

    @field_validator("volumes")
    @classmethod
    def _volumes(cls, value: list[str]) -> list[str]:
        _refuse_if(any(not VOLUME_REF_RE.match(item) for item in value), VOLUME_REFS_FORMAT)
        _refuse_if(len(set(value)) != len(value), VOLUME_REFS_UNIQUE)
        return value


class MigrationPlanSpec(Model):
    """What to move, from where, into which namespace of the tenant, and by when."""

    model_config = ConfigDict(
        json_schema_extra=cel.validations(DEADLINE_AFTER_NOT_BEFORE, SOURCE_IS_NOT_TARGET)
    )

    app: App
    source: Source
    target_namespace: str = Field(
        alias="targetNamespace",
        min_length=1,
        max_length=63,
        description="A namespace of the plan's own tenant on the hub, e.g. transport-apps.",
        json_schema_extra=cel.validations(NAMESPACE_FORMAT),
    )
    deadline: Timestamp = Field(description="When the app must run on the cloud (RFC 3339).")
    not_before: Timestamp | None = Field(
        default=None,
        alias="notBefore",
        description="Copying starts no earlier than this (the maintenance window).",
    )
    approvals_required: list[Annotated[Stage, WithJsonSchema(_string(STAGE_KNOWN, 16))]] = Field(
        default_factory=lambda: [Stage.CUTOVER],
        alias="approvalsRequired",
        max_length=2,
        description="Stages that wait for a recorded approval (default: cutover).",
        json_schema_extra={"default": ["cutover"], **cel.validations(APPROVAL_STAGES_UNIQUE)},
    )
    approvals: list[Approval] = Field(
        default_factory=list,
        max_length=2,
        description="Approvals given; written only by platform approvers (admission policy).",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["stage"],
        },
    )
    rollback_policy: Annotated[RollbackPolicy, WithJsonSchema(_string(POLICY_KNOWN, 16))] = Field(
        default=RollbackPolicy.MANUAL,
        alias="rollbackPolicy",
        description="Manual: a failed stage waits for rollback: true. Automatic: rolls back.",
        json_schema_extra={"default": "Manual"},
    )
    data_migration: DataMigration | None = Field(
        default=None,
        alias="dataMigration",
        description=(
            "Volumes whose data does not move with the plan (PersistentVolumeClaims, StatefulSets"
            " with volumeClaimTemplates) block the assessment unless named here, with the step"
            " that moves their data; named ones are created empty in the target."
        ),
    )
    verify_timeout_seconds: int = Field(
        default=300,
        alias="verifyTimeoutSeconds",
        description="How long the copied workloads may take to become Available.",
        json_schema_extra={
            "minimum": MIN_VERIFY_SECONDS,
            "maximum": MAX_VERIFY_SECONDS,
            **cel.validations(VERIFY_RANGE),
        },
    )
    rollback: bool = Field(
        default=False,
        description=(
            "true rolls the migration back: the source's replica counts are restored exactly"
            " and only what the plan created in the target is deleted."
        ),
    )

    @field_validator("target_namespace")
    @classmethod
    def _target(cls, value: str) -> str:
        _refuse_if(not _base.DNS_LABEL_RE.match(value), NAMESPACE_FORMAT)
        return value

    @field_validator("approvals_required", mode="before")
    @classmethod
    def _stages(cls, value: object) -> object:
        if isinstance(value, list):
            _refuse_if(any(item not in tuple(Stage) for item in value), STAGE_KNOWN)
            _refuse_if(len(set(value)) != len(value), APPROVAL_STAGES_UNIQUE)
        return value

    @field_validator("rollback_policy", mode="before")
    @classmethod
    def _policy(cls, value: object) -> object:
        _refuse_if(value not in tuple(RollbackPolicy), POLICY_KNOWN)
        return value

    @field_validator("verify_timeout_seconds")
    @classmethod
    def _verify(cls, value: int) -> int:
        _refuse_if(not MIN_VERIFY_SECONDS <= value <= MAX_VERIFY_SECONDS, VERIFY_RANGE)
        return value

    @model_validator(mode="after")
    def _cross_fields(self) -> Self:
        _refuse_if(
            self.not_before is not None and self.deadline <= self.not_before,
            DEADLINE_AFTER_NOT_BEFORE,
        )
        _refuse_if(
            self.source.sub_center is None and self.source.namespace == self.target_namespace,
            SOURCE_IS_NOT_TARGET,
        )
        return self

    def digest(self) -> str:
        """What an approval approves: sha256 of app, source, targetNamespace and dataMigration."""
        content = self.model_dump(
            by_alias=True,
            mode="json",
            exclude_defaults=True,
            include={"app", "source", "target_namespace", "data_migration"},
        )
        text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()

    def approved(self) -> frozenset[Stage]:
        """The stages approved for the plan as it is now; an approval of another digest is stale."""
        current = self.digest()
        return frozenset(item.stage for item in self.approvals if item.digest == current)

    def stale(self) -> frozenset[Stage]:
        """The stages whose approval was given for another digest (and so no longer counts)."""
        return frozenset(item.stage for item in self.approvals) - self.approved()

    def empty_volumes(self) -> frozenset[str]:
        """The volumes the plan names as arriving empty, as Kind/name."""
        return frozenset(self.data_migration.volumes if self.data_migration else ())


def parse(spec: Mapping[str, Any]) -> MigrationPlanSpec:
    """The spec checked as the API server checks it; ValueError (pydantic) if not."""
    return MigrationPlanSpec.model_validate(spec)


class StageStatus(Model):
    """One stage of the plan: when it ran and how it went."""

    name: str
    state: str = Field(
        description="Running, Succeeded, Failed, Waiting, or Cancelled (stopped by a rollback)."
    )
    started_at: datetime | None = Field(default=None, alias="startedAt")
    finished_at: datetime | None = Field(default=None, alias="finishedAt")
    message: str = ""


class InventoryItem(Model):
    """One object of the source: whether it moves, and why not if it does not."""

    kind: str
    name: str
    action: str = Field(
        description=(
            "Move, Skip, RecreateEmpty, or NeedsDataMigration (holds data the plan does not"
            " move: blocks the assessment until spec.dataMigration names it)."
        )
    )
    reason: str = ""
    moved: bool = False


class InventorySummary(Model):
    """Counts of the inventory, for `kubectl get`."""

    move: int = 0
    skip: int = 0
    moved: int = 0


class RecordedApproval(Model):
    """An approval as the operator saw it (the audit record is the API server's)."""

    stage: str
    by: str
    observed_at: datetime | None = Field(default=None, alias="observedAt")
    digest: str | None = Field(default=None, description="The plan digest it approved.")
    current: bool = Field(
        default=False,
        description="Whether it approves the plan as it is now (false: stale, it does not count).",
    )


class MigrationPlanStatus(Model):
    """The observed state of the plan, written by the operator."""

    phase: Phase = Phase.PENDING
    observed_generation: int | None = Field(default=None, alias="observedGeneration")
    tenant: str | None = Field(default=None, description="The tenant the plan belongs to.")
    message: str = ""
    progress: int = Field(default=0, ge=0, le=100, description="Percent done.")
    stages: list[StageStatus] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    inventory: list[InventoryItem] = Field(default_factory=list)
    summary: InventorySummary = Field(default_factory=InventorySummary)
    approvals: list[RecordedApproval] = Field(default_factory=list)
    digest: str | None = Field(
        default=None,
        description=(
            "sha256 of the spec's app, source, targetNamespace and dataMigration: what an"
            " approval names (spec.approvals[].digest) to approve this plan as it is now."
        ),
    )
    started_at: datetime | None = Field(default=None, alias="startedAt")
    cutover_at: datetime | None = Field(default=None, alias="cutoverAt")
    completed_at: datetime | None = Field(default=None, alias="completedAt")
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Authorized, Eligible, Assessed, DeadlineAtRisk, Overdue.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
