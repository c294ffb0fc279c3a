"""UsageReport: one tenant's use in one billing month, accrued by metering, final once closed."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

from pydantic import ConfigDict, Field, field_validator

from govcloud.api import cel
from govcloud.api.v1alpha1 import cloudtenant
from govcloud.api.v1alpha1._base import Condition, Model

PERIOD_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])$"
PERIOD_RE = re.compile(PERIOD_PATTERN)
MAX_RESOURCES = 32
DECIMAL_MAX_LENGTH = 40

PERIOD_FORMAT = cel.Rule(
    rule=f"self.matches(r'{PERIOD_PATTERN}')",
    message="period is a calendar month written YYYY-MM, e.g. 2027-01",
)
IMMUTABLE = cel.Rule(rule="self == oldSelf", message="tenant and period of a report never change")
# Status rule: a transition rule, so it runs on updates only; the status subresource is
# validated with it, which is what makes a closed statement final.
CLOSED_IS_FINAL = cel.Rule(
    rule="!has(oldSelf.closed) || !oldSelf.closed || self == oldSelf",
    message="a closed UsageReport never changes: it is the statement of a finished period",
)
NAME_IS_TENANT_PERIOD = cel.Rule(
    rule=(
        "oldSelf.hasValue() || self.metadata.name == self.spec.tenant + '-' + self.spec.period"
        " || (has(self.spec.tenantUID) && self.metadata.name == self.spec.tenant + '-'"
        " + self.spec.period + '-' + self.spec.tenantUID)"
    ),
    optional_old_self=True,
    message=(
        "a usage report is named <tenant>-<YYYY-MM>, or <tenant>-<YYYY-MM>-<tenantUID> for a"
        " tenant re-created under a name whose report of the month exists: one report per"
        " tenant and month"
    ),
)
ROOT_RULES = (NAME_IS_TENANT_PERIOD,)


LABEL_TENANT_UID = "govcloud.io/tenant-uid"
UID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


def report_name(tenant: str, period: str, uid: str = "") -> str:
    """`<tenant>-<period>`; with `uid`, the name of a re-created tenant's report."""
    return f"{tenant}-{period}-{uid}" if uid else f"{tenant}-{period}"


def parse(name: str, spec: Mapping[str, Any]) -> UsageReportSpec:
    parsed = UsageReportSpec.model_validate(spec)
    allowed = {report_name(parsed.tenant, parsed.period)}
    if parsed.tenant_uid:
        allowed.add(report_name(parsed.tenant, parsed.period, parsed.tenant_uid))
    if name not in allowed:
        raise ValueError(NAME_IS_TENANT_PERIOD.message)
    return parsed


class UsageReportSpec(Model):
    """Which tenant and month; written by the operator when the month's metering starts."""

    model_config = ConfigDict(json_schema_extra=cel.validations(IMMUTABLE))

    tenant: str = Field(
        min_length=1,
        max_length=cloudtenant.MAX_TENANT_NAME_LENGTH,
        pattern=cloudtenant.TENANT_NAME_PATTERN,
        description="The CloudTenant.",
    )
    period: str = Field(
        max_length=7,
        description="The billing month, YYYY-MM, in the billing time zone.",
        json_schema_extra=cel.validations(PERIOD_FORMAT),
    )
    tenant_uid: str | None = Field(
        default=None,
        alias="tenantUID",
        max_length=36,
        pattern=UID_PATTERN,
        description=(
            "metadata.uid of the CloudTenant: a tenant deleted and created again under the"
            " same name is another tenant with reports of its own. Absent on reports written"
            " by earlier releases: those belong to the tenant of that name that existed when"
            " the report was created."
        ),
    )

    @field_validator("period")
    @classmethod
    def _period(cls, value: str) -> str:
        if not PERIOD_RE.match(value):
            raise ValueError(PERIOD_FORMAT.message)
        return value


def _decimal(description: str) -> dict[str, Any]:
    return {"default": None, "max_length": DECIMAL_MAX_LENGTH, "description": description}


class ResourceUsage(Model):
    """One resource over the period: allocated and requested unit-hours, and its charge."""

    resource: str = Field(max_length=253, description="ResourceQuota resource name.")
    unit: str = Field(max_length=16, description="core, GiB or unit.")
    allocated_hours: str | None = Field(
        alias="allocatedHours",
        **_decimal("Quota hard x hours, in unit-hours: shows idle allocation (R2)."),
    )
    requested_hours: str | None = Field(
        alias="requestedHours",
        **_decimal("Quota used x hours, in unit-hours: the billed basis."),
    )
    amount: str | None = Field(**_decimal("Exact charge so far, CNY, before rounding."))
    charge: str | None = Field(**_decimal("Charge, CNY, rounded to fen (2 decimals)."))


class ReportUnit(Model):
    """The unit billed, as its CloudTenant said while the period was metered."""

    code: str | None = Field(default=None, max_length=63, description="spec.unit.code")
    name: str | None = Field(
        default=None, max_length=256, description="spec.displayName, e.g. 市交通运输局"
    )
    region: str | None = Field(default=None, max_length=128, description="spec.unit.region")


class UsageReportStatus(Model):
    """The accruals of the period; once `closed`, nothing here ever changes."""

    model_config = ConfigDict(json_schema_extra=cel.validations(CLOSED_IS_FINAL))

    tier: cloudtenant.Tier | None = Field(default=None, description="Funding tier of the tenant.")
    unit: ReportUnit | None = Field(default=None, description="The unit billed.")
    payer: str | None = Field(
        default=None,
        max_length=200,
        description=(
            "The level that pays: city, county:<region> or devzone:<region> (from the unit's"
            " tier and region); statements subtotal by it."
        ),
    )
    currency: str | None = Field(default=None, max_length=3)
    period_start: datetime | None = Field(default=None, alias="periodStart")
    period_end: datetime | None = Field(default=None, alias="periodEnd")
    resources: list[ResourceUsage] = Field(
        default_factory=list,
        max_length=MAX_RESOURCES,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["resource"],
        },
    )
    total: str | None = Field(
        default=None, max_length=DECIMAL_MAX_LENGTH, description="Sum of the charges, CNY."
    )
    samples: int = Field(
        default=0,
        ge=0,
        description="Accruals written (ticks that changed nothing billable write none).",
    )
    first_sample_time: datetime | None = Field(default=None, alias="firstSampleTime")
    last_sample_time: datetime | None = Field(
        default=None,
        alias="lastSampleTime",
        description="Accrued up to here; the next tick accrues from here to its own time.",
    )
    gap_seconds: str | None = Field(
        default=None,
        alias="gapSeconds",
        max_length=DECIMAL_MAX_LENGTH,
        description=(
            "Seconds billed by the gap rule (no metering, e.g. the operator was down): at the"
            " usage observed right after the gap."
        ),
    )
    unmetered_seconds: str | None = Field(
        default=None,
        alias="unmeteredSeconds",
        max_length=DECIMAL_MAX_LENGTH,
        description=(
            "Seconds not billed at all because the tenant's sub-center could not be read"
            " (unreachable, or its credentials unusable): usage unknown, charged nothing."
        ),
    )
    unrated_resources: list[Annotated[str, Field(max_length=253)]] = Field(
        default_factory=list,
        alias="unratedResources",
        max_length=MAX_RESOURCES,
        description="Requested resources used in the period while no rate was in force.",
    )
    closed: bool = Field(default=False, description="The period ended; the report is final.")
    closed_at: datetime | None = Field(default=None, alias="closedAt")
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=4,
        description="Rated: every requested resource has a price.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
