"""ResourcePlan: a unit's annual cloud resource plan (上云资源计划表), filed, reviewed, approved."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import ConfigDict, Field, WithJsonSchema, field_validator, model_validator

from govcloud.api import cel
from govcloud.api.v1alpha1 import cloudtenant, ratecard
from govcloud.api.v1alpha1._base import Condition, Model, Quantity

MIN_YEAR, MAX_YEAR = 2020, 2100
MAX_LINES = 64
MAX_PAYER_LENGTH = 128
MAX_MIGRATIONS = 128
MAX_LINE_RESOURCES = 16
MAX_COUNT = 100_000
MAX_USER_LENGTH = 253
MAX_DECIDER_GROUPS = 16
MAX_HISTORY = 64  # decisions kept on one plan (status.history); more are not recorded

DECISION_STATE_PATTERN = r"^(Approved|Rejected|ChangesRequested)$"

LINE_ONE_OF = cel.Rule(
    rule="has(self.offering) != has(self.resources)",
    message=(
        "a plan line orders exactly one of: an offering from the rate card (offering:"
        " ecs.4c8g), or raw resources (resources: {requests.cpu: 4})"
    ),
)
LINE_RESOURCES = cel.Rule(
    rule=f"size(self) > 0 && self.all(k, k.matches(r'{cloudtenant.QUOTA_NAME_PATTERN}'))",
    message=(
        "resources are ResourceQuota names with quantities, e.g. {requests.cpu: 4,"
        " requests.memory: 8Gi}"
    ),
)
COUNT_RANGE = cel.Rule(
    rule=f"self >= 1 && self <= {MAX_COUNT}",
    message=f"count is how many of the line are needed: 1 to {MAX_COUNT}",
)
YEAR_RANGE = cel.Rule(
    rule=f"self >= {MIN_YEAR} && self <= {MAX_YEAR}",
    message=f"year is the plan's calendar year, e.g. 2027 ({MIN_YEAR}..{MAX_YEAR})",
)
LINES_REQUIRED = cel.Rule(
    rule="size(self) > 0", message="a plan needs at least one line saying what is needed and why"
)
IMMUTABLE_TENANT = cel.Rule(
    rule="self == oldSelf",
    message="tenant cannot change; file a new plan named <tenant>-<year> for the other tenant",
)
IMMUTABLE_YEAR = cel.Rule(
    rule="self == oldSelf",
    message="year cannot change; file a new plan named <tenant>-<year> for the other year",
)
DECISION_STATE = cel.Rule(
    rule=f"self.matches(r'{DECISION_STATE_PATTERN}')",
    message="decision.state must be Approved, Rejected or ChangesRequested",
)
# One plan per tenant per year: the name is <tenant>-<year>, so a second plan for the same
# tenant and year collides with the first (AlreadyExists) instead of silently coexisting.
NAME_IS_TENANT_YEAR = cel.Rule(
    # string(year) is costed as unbounded by the API server, so the year is read back from
    # the name instead: <tenant>-<four digits>, and those digits are the year.
    rule=(
        "oldSelf.hasValue() || (size(self.metadata.name) == size(self.spec.tenant) + 5"
        " && self.metadata.name.startsWith(self.spec.tenant + '-')"
        " && self.metadata.name.substring(size(self.spec.tenant) + 1).matches('^[0-9]{4}$')"
        " && int(self.metadata.name.substring(size(self.spec.tenant) + 1)) == self.spec.year)"
    ),
    optional_old_self=True,
    message=(
        "a plan is named <tenant>-<year> (e.g. city-transport-2027): one plan per tenant and"
        " year; to change a filed plan, edit it"
    ),
)
ROOT_RULES = (NAME_IS_TENANT_YEAR,)


def _refuse_if(broken: bool, rule: cel.Rule) -> None:
    if broken:
        raise ValueError(rule.message)


def plan_name(tenant: str, year: int) -> str:
    return f"{tenant}-{year}"


def check_name(name: str, spec: ResourcePlanSpec) -> None:
    _refuse_if(name != plan_name(spec.tenant, spec.year), NAME_IS_TENANT_YEAR)


def parse(name: str, spec: Mapping[str, Any]) -> ResourcePlanSpec:
    """The spec of plan `name` checked as the API server checks it; ValueError if not."""
    parsed = ResourcePlanSpec.model_validate(spec)
    check_name(name, parsed)
    return parsed


class ReviewState(StrEnum):
    """Where the bureau's review of a plan stands."""

    PENDING = "Pending"
    APPROVED = "Approved"
    REJECTED = "Rejected"
    CHANGES_REQUESTED = "ChangesRequested"


DecisionStateField = Annotated[
    ReviewState,
    WithJsonSchema({"type": "string", "maxLength": 32, **cel.validations(DECISION_STATE)}),
]


class PlanLine(Model):
    """One need: `count` of an offering or of raw resources, and why."""

    model_config = ConfigDict(json_schema_extra=cel.validations(LINE_ONE_OF))

    offering: str | None = Field(
        default=None,
        max_length=63,
        description="An offering of the rate card, e.g. ecs.4c8g.",
        json_schema_extra=cel.validations(ratecard.OFFERING_NAME),
    )
    resources: dict[str, Quantity] | None = Field(
        default=None,
        max_length=MAX_LINE_RESOURCES,
        description="Raw resources instead of an offering, by ResourceQuota name.",
        json_schema_extra=cel.validations(LINE_RESOURCES),
    )
    count: int = Field(
        default=1,
        description="How many.",
        json_schema_extra={"minimum": 1, "maximum": MAX_COUNT, **cel.validations(COUNT_RANGE)},
    )
    reason: str = Field(
        min_length=1, max_length=1024, description="What it is for, e.g. 交通大数据平台扩容."
    )

    @field_validator("offering")
    @classmethod
    def _offering(cls, value: str | None) -> str | None:
        _refuse_if(
            value is not None and not ratecard.OFFERING_NAME_RE.match(value), ratecard.OFFERING_NAME
        )
        return value

    @field_validator("resources")
    @classmethod
    def _resources(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is not None:
            _refuse_if(
                not value or not all(cloudtenant.QUOTA_NAME_RE.match(key) for key in value),
                LINE_RESOURCES,
            )
        return value

    @field_validator("count")
    @classmethod
    def _count(cls, value: int) -> int:
        _refuse_if(not 1 <= value <= MAX_COUNT, COUNT_RANGE)
        return value

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        _refuse_if((self.offering is None) == (self.resources is None), LINE_ONE_OF)
        return self


class PlannedMigration(Model):
    """A legacy app the unit plans to move onto the cloud, and by when."""

    app: str = Field(min_length=1, max_length=256, description="The app, e.g. 公交调度系统.")
    target_date: date = Field(alias="targetDate", description="Moved by this day.")
    source: str | None = Field(
        default=None, max_length=256, description="Where it runs today, e.g. lujiang."
    )


class Decision(Model):
    """The bureau's decision. Only plan approvers may set it, and `by` must be themselves."""

    state: DecisionStateField = Field(description="Approved, Rejected or ChangesRequested.")
    by: str = Field(
        min_length=1,
        max_length=MAX_USER_LENGTH,
        description="The deciding user: must equal the username of whoever writes the decision.",
    )
    reason: str = Field(min_length=1, max_length=2048, description="Why.")
    approved_generation: int | None = Field(
        default=None,
        alias="approvedGeneration",
        ge=0,
        description=(
            "The plan's metadata.generation the approver read and decides on (0 when the"
            " decision is written at creation). The admission policy refuses any other value,"
            " and the operator ignores a decision once the plan changes after it."
        ),
    )
    groups: list[Annotated[str, Field(min_length=1, max_length=MAX_USER_LENGTH)]] = Field(
        default_factory=list,
        max_length=MAX_DECIDER_GROUPS,
        description=(
            "The groups through which `by` holds the approve verb (e.g."
            " govcloud:plan-approvers): the admission policy checks the decider is in each,"
            " and the operator asks the API server whether `by` with them may approve."
        ),
    )

    @field_validator("state", mode="before")
    @classmethod
    def _state(cls, value: object) -> object:
        _refuse_if(value not in tuple(ReviewState) or value == ReviewState.PENDING, DECISION_STATE)
        return value


class ResourcePlanSpec(Model):
    """What a unit asks for in a year, and the bureau's decision on it."""

    tenant: str = Field(
        min_length=1,
        max_length=cloudtenant.MAX_TENANT_NAME_LENGTH,
        pattern=cloudtenant.TENANT_NAME_PATTERN,
        description="The CloudTenant the plan is for.",
        json_schema_extra=cel.validations(IMMUTABLE_TENANT),
    )
    year: int = Field(
        description="The calendar year the plan covers.",
        json_schema_extra={
            "minimum": MIN_YEAR,
            "maximum": MAX_YEAR,
            **cel.validations(YEAR_RANGE, IMMUTABLE_YEAR),
        },
    )
    lines: list[PlanLine] = Field(
        max_length=MAX_LINES,
        description="The resources needed: offerings or raw resources, each with a reason.",
        json_schema_extra=cel.validations(LINES_REQUIRED),
    )
    migrations: list[PlannedMigration] = Field(
        default_factory=list,
        max_length=MAX_MIGRATIONS,
        description="Apps to be moved onto the cloud in the year, with target dates.",
    )
    decision: Decision | None = Field(
        default=None,
        description=(
            "Set by a plan approver (ClusterRole govcloud:plan-approver) only; an admission"
            " policy refuses anyone else, and any `by` other than the acting user."
        ),
    )

    @field_validator("year")
    @classmethod
    def _year(cls, value: int) -> int:
        _refuse_if(not MIN_YEAR <= value <= MAX_YEAR, YEAR_RANGE)
        return value

    @field_validator("lines")
    @classmethod
    def _lines(cls, value: list[PlanLine]) -> list[PlanLine]:
        _refuse_if(not value, LINES_REQUIRED)
        return value


class Review(Model):
    """Who decided, when and why; Pending until an approver decides."""

    state: ReviewState = ReviewState.PENDING
    decided_by: str | None = Field(default=None, alias="decidedBy")
    decided_at: datetime | None = Field(default=None, alias="decidedAt")
    reason: str | None = None
    observed_generation: int | None = Field(
        default=None,
        alias="observedGeneration",
        description="The plan generation the decision was seen on.",
    )
    pending_since: datetime | None = Field(
        default=None,
        alias="pendingSince",
        description="While Pending: since when the plan waits for a decision (filed or reopened).",
    )
    spec_digest: str | None = Field(
        default=None,
        alias="specDigest",
        max_length=80,
        description=(
            "sha256 of the spec (without the decision) the decision holds on: it still holds on"
            " this very content when only the generation moved (a restored object)."
        ),
    )


HISTORY_APPEND_ONLY = cel.Rule(
    rule="size(self) >= size(oldSelf) && oldSelf.all(entry, entry in self)",
    message="status.history is append-only: a recorded decision is never changed or removed",
)


class DecisionRecord(Model):
    """One decision the operator honoured, or the plan reopened (state Pending), for good."""

    state: ReviewState
    by: str | None = Field(
        default=None, max_length=MAX_USER_LENGTH, description="The deciding user."
    )
    at: datetime = Field(description="When the operator first saw the decision.")
    generation: int | None = Field(
        default=None, ge=0, description="The plan generation the decision was seen on."
    )
    reason: str | None = Field(default=None, max_length=2048)


class PlannedMigrationStatus(Model):
    """A planned app and the tenant's MigrationPlan for it, if one exists (matched by app)."""

    app: str = Field(max_length=256)
    target_date: date = Field(alias="targetDate")
    found: bool = Field(default=False, description="A MigrationPlan for the app exists.")
    migration_plan: str | None = Field(
        default=None, alias="migrationPlan", max_length=512, description="<namespace>/<name>."
    )
    phase: str | None = Field(default=None, max_length=32, description="Its phase.")
    progress: int | None = Field(default=None, ge=0, le=100, description="Percent done.")
    completed: bool = False
    completed_at: datetime | None = Field(default=None, alias="completedAt")
    on_time: bool | None = Field(
        default=None, alias="onTime", description="Completed on or before the target date."
    )


HISTORY_KEPT = cel.Rule(
    rule="has(self.history) || !has(oldSelf.history)",
    message="status.history is append-only: it cannot be removed",
)


class ResourcePlanStatus(Model):
    """The plan as the operator reads it: ceiling, estimated cost, review, conditions."""

    model_config = ConfigDict(json_schema_extra=cel.validations(HISTORY_KEPT))

    observed_generation: int | None = Field(default=None, alias="observedGeneration")
    ceiling: dict[str, str] = Field(
        default_factory=dict,
        description="The quota ceiling the plan adds up to, by ResourceQuota name.",
    )
    estimated_annual_cost: str | None = Field(
        default=None,
        alias="estimatedAnnualCost",
        description="The ceiling held for the whole year at the rate card's prices, CNY.",
    )
    currency: str | None = None
    payer: str | None = Field(
        default=None,
        max_length=MAX_PAYER_LENGTH,
        description=(
            "Who pays the tenant's bill and reviews its plans: city, county:<region> or"
            " devzone:<region>, from the tenant's unit. Approvers of that level decide the plan"
            " (the verb approve on payers.govcloud.io of this name)."
        ),
    )
    review: Review = Field(default_factory=Review)
    history: list[DecisionRecord] = Field(
        default_factory=list,
        max_length=MAX_HISTORY,
        description=(
            "Every decision on the plan in the order the operator saw them (approvals,"
            " rejections, requests for changes, reopenings): who, when, on which generation,"
            " why. Append-only."
        ),
        json_schema_extra=cel.validations(HISTORY_APPEND_ONLY),
    )
    migrations: list[PlannedMigrationStatus] = Field(
        default_factory=list,
        max_length=MAX_MIGRATIONS,
        description=(
            "Per app of spec.migrations: whether a MigrationPlan for it exists in the tenant's"
            " namespaces (matched by spec.app.name), its phase and completion. Read-only."
        ),
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready (the plan resolves and is priced) and Approved.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
