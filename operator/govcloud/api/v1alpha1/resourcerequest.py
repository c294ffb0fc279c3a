"""ResourceRequest: a department's in-year request for more (or less) than its approved plan."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from pydantic import Field, field_validator

from govcloud.api import cel
from govcloud.api.v1alpha1._base import Condition, Model
from govcloud.api.v1alpha1.resourceplan import (
    HISTORY_APPEND_ONLY,
    IMMUTABLE_YEAR,
    LINES_REQUIRED,
    MAX_HISTORY,
    MAX_LINES,
    MAX_PAYER_LENGTH,
    MAX_YEAR,
    MIN_YEAR,
    YEAR_RANGE,
    Decision,
    DecisionRecord,
    PlanLine,
    Review,
)

IMMUTABLE_DIRECTION = cel.Rule(
    rule="self == oldSelf",
    message="direction cannot change; file a new request for the other direction",
)


class Direction(StrEnum):
    """Whether the request adds to the approved plan's ceiling or gives part of it back."""

    RAISE = "Raise"
    LOWER = "Lower"


class ResourceRequestSpec(Model):
    """What a department asks for during the year, and why; the bureau's decision on it."""

    year: int = Field(
        description="The plan year the request amends (its approved ResourcePlan's year).",
        json_schema_extra={
            "minimum": MIN_YEAR,
            "maximum": MAX_YEAR,
            **cel.validations(YEAR_RANGE, IMMUTABLE_YEAR),
        },
    )
    direction: Direction = Field(
        default=Direction.RAISE,
        description="Raise (more than the plan) or Lower (give part of the plan back).",
        json_schema_extra={"maxLength": 8, **cel.validations(IMMUTABLE_DIRECTION)},
    )
    lines: list[PlanLine] = Field(
        max_length=MAX_LINES,
        description="What changes: offerings or raw resources, each with a reason.",
        json_schema_extra=cel.validations(LINES_REQUIRED),
    )
    decision: Decision | None = Field(
        default=None,
        description=(
            "Set by an approver of the tenant's paying level, as on its ResourcePlan; an"
            " admission policy refuses anyone else, and any `by` other than the acting user."
        ),
    )

    @field_validator("year")
    @classmethod
    def _year(cls, value: int) -> int:
        if not MIN_YEAR <= value <= MAX_YEAR:
            raise ValueError(YEAR_RANGE.message)
        return value

    @field_validator("lines")
    @classmethod
    def _lines(cls, value: list[PlanLine]) -> list[PlanLine]:
        if not value:
            raise ValueError(LINES_REQUIRED.message)
        return value


class ResourceRequestStatus(Model):
    """The request as the operator reads it: its tenant, the change, the review."""

    observed_generation: int | None = Field(default=None, alias="observedGeneration")
    tenant: str | None = Field(
        default=None,
        max_length=63,
        description="The CloudTenant whose namespace holds the request (the one it amends).",
    )
    payer: str | None = Field(
        default=None,
        max_length=MAX_PAYER_LENGTH,
        description="The level that pays for the tenant, whose approvers decide the request.",
    )
    change: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "What the request adds to (Raise) or takes from (Lower) the approved plan's"
            " ceiling once approved, by ResourceQuota name."
        ),
    )
    review: Review = Field(default_factory=Review)
    history: list[DecisionRecord] = Field(
        default_factory=list,
        max_length=MAX_HISTORY,
        description="Every decision on the request in the order the operator saw them.",
        json_schema_extra=cel.validations(HISTORY_APPEND_ONLY),
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready (the request resolves against an approved plan) and Approved.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


def parse(spec: Mapping[str, Any]) -> ResourceRequestSpec:
    """The spec checked as the API server checks it; pydantic.ValidationError if not."""
    return ResourceRequestSpec.model_validate(spec)
