"""RateCard: the city's price list — unit-hour prices with effective dates, tiers, offerings."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Annotated, Any

from pydantic import Field, WithJsonSchema, field_validator

from govcloud.api import cel
from govcloud.api.v1alpha1 import cloudtenant
from govcloud.api.v1alpha1._base import Condition, Model, Quantity

# There is one price list: prices that change later are entries with a later effectiveFrom.
DEFAULT_NAME = "default"
CURRENCY = "CNY"
MAX_RATES = 64
MAX_OFFERINGS = 64
MAX_OFFERING_RESOURCES = 16
MAX_RESOURCE_NAME_LENGTH = 253

# A non-negative decimal with at most 6 decimals, written as a string so it stays exact.
PRICE_PATTERN = r"^[0-9]{1,9}(\.[0-9]{1,6})?$"
PRICE_RE = re.compile(PRICE_PATTERN)
OFFERING_NAME_PATTERN = r"^[a-z0-9]+([.-][a-z0-9]+)*$"
OFFERING_NAME_RE = re.compile(OFFERING_NAME_PATTERN)

PRICE_FORMAT = cel.Rule(
    rule=f"self.matches(r'{PRICE_PATTERN}')",
    message=(
        'prices are non-negative decimals written as strings, e.g. "0.35" (CNY per'
        " unit-hour), with at most 6 decimals"
    ),
)
MULTIPLIER_FORMAT = cel.Rule(
    rule=f"self.matches(r'{PRICE_PATTERN}')",
    message='tier multipliers are non-negative decimals written as strings, e.g. "0.8"',
)
CURRENCY_CNY = cel.Rule(
    rule=f"self == '{CURRENCY}'",
    message="currency must be CNY: the city's budget is kept in yuan",
)
RESOURCE_NAME = cel.Rule(
    rule=f"self.matches(r'{cloudtenant.QUOTA_NAME_PATTERN}')",
    message=(
        "resource must be a ResourceQuota resource name such as requests.cpu,"
        " requests.memory, requests.storage or requests.nvidia.com/gpu"
    ),
)
OFFERING_NAME = cel.Rule(
    rule=f"self.matches(r'{OFFERING_NAME_PATTERN}')",
    message=(
        "offering names are lowercase words joined by '.' or '-', e.g. ecs.4c8g or disk.ssd.100g"
    ),
)
OFFERING_RESOURCES = cel.Rule(
    rule=(f"size(self) > 0 && self.all(k, k.matches(r'{cloudtenant.QUOTA_NAME_PATTERN}'))"),
    message=(
        "an offering names at least one ResourceQuota resource, e.g."
        " {requests.cpu: 4, requests.memory: 8Gi}"
    ),
)
RATES_UNIQUE = cel.Rule(
    rule=(
        "self.all(a, self.exists_one(b, b.resource == a.resource"
        " && b.effectiveFrom == a.effectiveFrom))"
    ),
    message=(
        "two rates for the same resource and effectiveFrom: keep one, or give the new price"
        " a later effectiveFrom"
    ),
)
NAME_DEFAULT = cel.Rule(
    rule=f"oldSelf.hasValue() || self.metadata.name == '{DEFAULT_NAME}'",
    optional_old_self=True,
    message=(
        f"the rate card is one object named {DEFAULT_NAME}; add future prices to it as rates"
        " with a later effectiveFrom instead of a second card"
    ),
)
ROOT_RULES = (NAME_DEFAULT,)


def _refuse_if(broken: bool, rule: cel.Rule) -> None:
    if broken:
        raise ValueError(rule.message)


def _price_schema(rule: cel.Rule) -> dict[str, Any]:
    return {"type": "string", "maxLength": 16, **cel.validations(rule)}


Price = Annotated[str, WithJsonSchema(_price_schema(PRICE_FORMAT))]
Multiplier = Annotated[str, WithJsonSchema(_price_schema(MULTIPLIER_FORMAT))]


def check_name(name: str) -> None:
    _refuse_if(name != DEFAULT_NAME, NAME_DEFAULT)


def parse(name: str, spec: Mapping[str, Any]) -> RateCardSpec:
    """The spec of rate card `name` checked as the API server checks it; ValueError if not."""
    parsed = RateCardSpec.model_validate(spec)
    check_name(name)
    return parsed


class Rate(Model):
    """The price of one unit-hour of a resource, in force from a date on."""

    resource: str = Field(
        min_length=1,
        max_length=MAX_RESOURCE_NAME_LENGTH,
        description=(
            "ResourceQuota resource name. Units: CPU in cores, memory and storage in GiB,"
            " anything else (GPUs, counts) per unit."
        ),
        json_schema_extra=cel.validations(RESOURCE_NAME),
    )
    price: Price = Field(description='CNY per unit-hour, e.g. "0.12" per core-hour.')
    effective_from: date = Field(
        alias="effectiveFrom",
        description=(
            "From this day on (00:00 in the billing time zone) the price applies; until the"
            " next rate of the same resource."
        ),
    )

    @field_validator("resource")
    @classmethod
    def _resource_name(cls, value: str) -> str:
        _refuse_if(not cloudtenant.QUOTA_NAME_RE.match(value), RESOURCE_NAME)
        return value

    @field_validator("price")
    @classmethod
    def _price(cls, value: str) -> str:
        _refuse_if(not PRICE_RE.match(value), PRICE_FORMAT)
        return value


class TierMultipliers(Model):
    """Per-tier factors on every price; an unset tier pays the list price (1)."""

    city: Multiplier | None = None
    county: Multiplier | None = None
    devzone: Multiplier | None = None

    @field_validator("city", "county", "devzone")
    @classmethod
    def _factor(cls, value: str | None) -> str | None:
        _refuse_if(value is not None and not PRICE_RE.match(value), MULTIPLIER_FORMAT)
        return value


class Offering(Model):
    """A catalog item a department orders by name (R3), e.g. ecs.4c8g = 4 CPU + 8 GiB."""

    name: str = Field(
        min_length=1,
        max_length=63,
        description="Catalog name, e.g. ecs.4c8g or disk.ssd.100g.",
        json_schema_extra=cel.validations(OFFERING_NAME),
    )
    display_name: str | None = Field(
        default=None, alias="displayName", max_length=256, description="e.g. 通用型云服务器 4核8G."
    )
    resources: dict[str, Quantity] = Field(
        max_length=MAX_OFFERING_RESOURCES,
        description="What one unit of the offering adds to a quota, by ResourceQuota name.",
        json_schema_extra=cel.validations(OFFERING_RESOURCES),
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        _refuse_if(not OFFERING_NAME_RE.match(value), OFFERING_NAME)
        return value

    @field_validator("resources")
    @classmethod
    def _resources(cls, value: dict[str, str]) -> dict[str, str]:
        _refuse_if(
            not value or not all(cloudtenant.QUOTA_NAME_RE.match(key) for key in value),
            OFFERING_RESOURCES,
        )
        return value


class RateCardSpec(Model):
    """The price list: rates by resource and date, tier multipliers, the catalog."""

    currency: Annotated[
        str, WithJsonSchema({"type": "string", "maxLength": 3, **cel.validations(CURRENCY_CNY)})
    ] = Field(default=CURRENCY, description="Always CNY.")
    rates: list[Rate] = Field(
        max_length=MAX_RATES,
        description="Unit-hour prices; a later effectiveFrom replaces an earlier one from then on.",
        json_schema_extra=cel.validations(RATES_UNIQUE),
    )
    tier_multipliers: TierMultipliers = Field(
        default_factory=TierMultipliers,
        alias="tierMultipliers",
        description='Factors per funding tier, e.g. devzone: "0.9".',
    )
    offerings: list[Offering] = Field(
        default_factory=list,
        max_length=MAX_OFFERINGS,
        description="The self-service catalog (R3); plans order offerings by name.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        _refuse_if(value != CURRENCY, CURRENCY_CNY)
        return value

    @field_validator("rates")
    @classmethod
    def _unique_rates(cls, value: list[Rate]) -> list[Rate]:
        keys = [(rate.resource, rate.effective_from) for rate in value]
        _refuse_if(len(set(keys)) != len(keys), RATES_UNIQUE)
        return value

    @field_validator("offerings")
    @classmethod
    def _unique_offerings(cls, value: list[Offering]) -> list[Offering]:
        names = [offering.name for offering in value]
        if len(set(names)) != len(names):
            raise ValueError("offering names must be unique")
        return value


class RateCardStatus(Model):
    """What metering found about the card, written by the operator."""

    observed_generation: int | None = Field(default=None, alias="observedGeneration")
    unrated_resources: list[str] = Field(
        default_factory=list,
        alias="unratedResources",
        max_length=MAX_RATES,
        description="Resources tenants request that have no rate yet (not charged until added).",
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=8,
        description="Priced: every resource tenants request has a rate.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
