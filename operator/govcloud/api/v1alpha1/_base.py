"""Shared API pieces: quantities, labels, metav1.Condition, the strict base model."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from govcloud.api import cel, quantity

# The Kubernetes resource.Quantity grammar (non-negative only), bounded as the parser is.
QUANTITY_PATTERN = quantity.PATTERN
QUANTITY_RE = re.compile(QUANTITY_PATTERN)
QUANTITY_MAX_LENGTH = quantity.MAX_LENGTH

QUANTITY_FORMAT = cel.Rule(
    # int-or-string values are `dyn` in CEL, so every access is guarded by a type test.
    # The pattern as well: it bounds the exponent (1e1000 is a quantity to the API server).
    rule=f"type(self) != string || (isQuantity(self) && self.matches(r'{QUANTITY_PATTERN}'))",
    message="must be a Kubernetes quantity such as 4, 500m, 1.5 or 8Gi",
)
QUANTITY_BOUNDED = cel.Rule(
    rule=(
        f"type(self) == string ? !isQuantity(self) || !quantity(self).isGreaterThan("
        f"quantity('{quantity.MAX_VALUE_TEXT}')) : self <= {quantity.MAX_VALUE_TEXT}"
    ),
    message=f"quantities must be at most {quantity.MAX_VALUE_TEXT} (about 8Pi)",
)
QUANTITY_NOT_NEGATIVE = cel.Rule(
    rule=(
        "type(self) == string"
        " ? !isQuantity(self) || !quantity(self).isLessThan(quantity('0'))"
        " : self >= 0"
    ),
    message="quantities must not be negative",
)

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_LABEL_RE = re.compile(DNS_LABEL_PATTERN)

LABEL_KEY_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_KEY_RE = re.compile(LABEL_KEY_PATTERN)
LABEL_KEY_PREFIX_MAX_LENGTH = 253
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
MAX_LABELS = 32

LABEL_KEYS = cel.Rule(
    rule=f"self.all(k, k.matches(r'{LABEL_KEY_PATTERN}'))",
    message=(
        "label keys must be [prefix/]name: an optional DNS subdomain prefix and a name of at"
        " most 63 letters, digits, '-', '_' or '.', starting and ending alphanumeric"
    ),
)


def _as_quantity(value: object) -> object:
    """Accepts what Kubernetes accepts for a quantity (4 or "500m") and keeps it as a string."""
    if isinstance(value, bool):
        raise ValueError(QUANTITY_FORMAT.message)
    if isinstance(value, int):
        if value < 0:
            raise ValueError(QUANTITY_NOT_NEGATIVE.message)
        if not quantity.within_bounds(Decimal(value)):
            raise ValueError(QUANTITY_BOUNDED.message)
        return str(value)
    if isinstance(value, str):
        if value.startswith("-") and QUANTITY_RE.match(value[1:]):
            raise ValueError(QUANTITY_NOT_NEGATIVE.message)
        if len(value) > QUANTITY_MAX_LENGTH or not QUANTITY_RE.match(value):
            raise ValueError(QUANTITY_FORMAT.message)
        if not quantity.within_bounds(quantity.parse(value)):
            raise ValueError(QUANTITY_BOUNDED.message)
    return value


# The only anyOf a structural schema allows for int-or-string is the bare
# [{type: integer}, {type: string}]; the bounds beside it apply to whichever type the
# value has (minimum to integers; pattern and maxLength to strings), as controller-gen
# emits for resource.Quantity.
QUANTITY_SCHEMA: dict[str, Any] = {
    "description": "A non-negative Kubernetes quantity, e.g. 4, 500m, 8Gi.",
    "x-kubernetes-int-or-string": True,
    "anyOf": [{"type": "integer"}, {"type": "string"}],
    "minimum": 0,
    # maxLength also bounds the CEL cost of the rules below; an int-or-string is
    # otherwise costed as if it were as long as a whole request.
    "maxLength": QUANTITY_MAX_LENGTH,
    "pattern": QUANTITY_PATTERN,
    **cel.validations(QUANTITY_FORMAT, QUANTITY_BOUNDED, QUANTITY_NOT_NEGATIVE),
}

Quantity = Annotated[str, BeforeValidator(_as_quantity), WithJsonSchema(QUANTITY_SCHEMA)]

LabelValue = Annotated[str, Field(max_length=63, pattern=LABEL_VALUE_PATTERN)]


# The API server's date-time format: RFC 3339 with seconds and a zone, nothing looser.
RFC3339_RE = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$"
)
RFC3339_MESSAGE = "times are RFC 3339 with seconds and a zone, e.g. 2027-06-30T18:00:00+08:00"


def _rfc3339(value: object) -> object:
    """Refuses the looser times pydantic would read (no zone, no seconds, a space) as the API
    server does: a time without a zone would later be compared with an aware one and raise."""
    if isinstance(value, str) and not RFC3339_RE.match(value):
        raise ValueError(RFC3339_MESSAGE)
    return value


def _aware(value: datetime) -> datetime:
    """A datetime handed over in Python without a zone is taken as UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


Timestamp = Annotated[datetime, BeforeValidator(_rfc3339), AfterValidator(_aware)]


def check_label_keys(labels: dict[str, str]) -> dict[str, str]:
    """Refuses label keys the API server would refuse, with the same message as the CEL rule."""
    for key in labels:
        prefix, _, _ = key.rpartition("/")
        if len(prefix) > LABEL_KEY_PREFIX_MAX_LENGTH or not LABEL_KEY_RE.match(key):
            raise ValueError(f"{LABEL_KEYS.message}: {key!r}")
    return labels


class Model(BaseModel):
    """Base of every spec/status model: camelCase on the wire, unknown fields refused."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class ConditionStatus(StrEnum):
    """The status of a condition, as in metav1.Condition."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


CONDITION_TYPE_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)


class Condition(Model):
    """A metav1.Condition: one per type, never an ever-growing list."""

    type: str = Field(max_length=316, pattern=CONDITION_TYPE_PATTERN)
    status: ConditionStatus
    reason: str = Field(
        min_length=1, max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
    )
    message: str = Field(default="", max_length=32768)
    last_transition_time: datetime = Field(alias="lastTransitionTime")
    observed_generation: int | None = Field(default=None, alias="observedGeneration", ge=0)
