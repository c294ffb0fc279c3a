"""NetworkGrant: a consented, expiring opening from one tenant's namespaces to another tenant's
named Service ports (issue #16, sharing by grant).

The consumer's admins file it in one of their namespaces (that is the request); the provider's
admins consent (or the platform, on both sides' behalf); either side or the platform revokes.
Who may set which field is enforced at admission (files/network/grants.yaml) and checked again
by the operator (SubjectAccessReview) before a consent opens anything.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import ConfigDict, Field, field_validator

from govcloud.api import cel
from govcloud.api.v1alpha1._base import DNS_LABEL_PATTERN, Condition, Model

MAX_USER_LENGTH = 253
MAX_GROUPS = 16
MAX_PORTS = 16
MAX_CONSUMERS = 16
MAX_HISTORY = 64
PORT_PATTERN = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?|[1-9][0-9]{0,4})$"

IMMUTABLE = cel.Rule(
    rule="self == oldSelf",
    message="the provider and the requester cannot change; file a new grant instead",
)
REVOCATION_FINAL = cel.Rule(
    rule=(
        "!has(oldSelf.revocation) ||"
        " (has(self.revocation) && self.revocation == oldSelf.revocation)"
    ),
    message="a revocation is final: it cannot be changed or removed; file a new grant instead",
)
PORT_NAMES = cel.Rule(
    rule=f"size(self) > 0 && self.all(p, p.matches(r'{PORT_PATTERN}'))",
    message="ports are the Service's port names (e.g. https) or numbers (e.g. 443), at least one",
)
HISTORY_APPEND_ONLY = cel.Rule(
    rule="size(self) >= size(oldSelf) && oldSelf.all(entry, entry in self)",
    message="status.history is append-only: a recorded act is never changed or removed",
)

User = Annotated[str, Field(min_length=1, max_length=MAX_USER_LENGTH)]
Groups = list[Annotated[str, Field(min_length=1, max_length=MAX_USER_LENGTH)]]


class GrantState(StrEnum):
    """Where a grant stands."""

    PENDING = "Pending"  # requested, waiting for the provider's consent
    ACTIVE = "Active"  # consented, not expired: the policies are in place
    EXPIRED = "Expired"
    REVOKED = "Revoked"
    INVALID = "Invalid"  # does not resolve (see the Ready condition): nothing is open


class Provider(Model):
    """What the consumer wants to reach: a Service of another tenant, on some of its ports."""

    namespace: str = Field(
        min_length=1,
        max_length=63,
        pattern=DNS_LABEL_PATTERN,
        description="The provider tenant's namespace holding the Service.",
    )
    service: str = Field(
        min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN, description="The Service's name."
    )
    ports: list[Annotated[str, Field(max_length=15)]] = Field(
        max_length=MAX_PORTS,
        description=(
            "The Service ports granted, by name (https) or number (443); the pods behind them"
            " are reached on each port's targetPort, and on nothing else."
        ),
        json_schema_extra=cel.validations(PORT_NAMES),
    )

    @field_validator("ports")
    @classmethod
    def _ports(cls, value: list[str]) -> list[str]:
        if not value or not all(re.match(PORT_PATTERN, port) for port in value):
            raise ValueError(PORT_NAMES.message)
        return value


class Act(Model):
    """Who did something to the grant: `by` must be the acting user (admission policy)."""

    by: User = Field(description="The acting user: must equal the username of whoever writes it.")
    groups: Groups = Field(
        default_factory=list,
        max_length=MAX_GROUPS,
        description=(
            "The groups through which `by` holds the right (e.g. the tenant's admin group): the"
            " admission policy checks `by` is in each, and the operator asks the API server"
            " whether `by` with them may act."
        ),
    )
    reason: str | None = Field(default=None, max_length=1024, description="Why, in a word.")


class Consent(Act):
    """The data owner's (or the platform's) consent to the grant as it was read."""

    generation: int = Field(
        ge=0,
        description=(
            "The grant's metadata.generation the consenting user read (0 when the platform"
            " consents at creation): a grant changed after its consent is not consented."
        ),
    )


class NetworkGrantSpec(Model):
    """Tenant A's namespaces may reach tenant B's Service ports, for a purpose, until a date."""

    model_config = ConfigDict(json_schema_extra=cel.validations(REVOCATION_FINAL))

    provider: Provider = Field(
        description="The Service reached, in another tenant's namespace.",
        json_schema_extra=cel.validations(IMMUTABLE),
    )
    consumers: list[
        Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)]
    ] = Field(
        default_factory=list,
        max_length=MAX_CONSUMERS,
        description=(
            "The consumer tenant's namespaces whose pods may connect; empty: the grant's own"
            " namespace. Each must belong to the same tenant as the grant's namespace."
        ),
    )
    purpose: str = Field(
        min_length=1, max_length=1024, description="What the data is used for, e.g. 社保资格核验."
    )
    expires: datetime | None = Field(
        default=None,
        description=(
            "When the opening ends by itself (RFC 3339). Absent: the operator's default"
            " duration from creation; later than the maximum duration from creation: invalid."
        ),
    )
    requested_by: User = Field(
        alias="requestedBy",
        description="The consumer admin (or platform user) filing the grant: the acting user.",
        json_schema_extra=cel.validations(IMMUTABLE),
    )
    consent: Consent | None = Field(
        default=None,
        description=(
            "Set by an admin of the provider namespace (verb consent on networkgrants there) or"
            " the platform (verb approve): never by the consumer. Bound to the generation read."
        ),
    )
    revocation: Act | None = Field(
        default=None,
        description=(
            "Set by either side's admins or the platform to withdraw the grant for good; the"
            " policies are removed at once."
        ),
    )

    def consumer_namespaces(self, own: str) -> list[str]:
        return sorted(set(self.consumers)) if self.consumers else [own]


class HistoryRecord(Model):
    """One act on the grant, as the operator saw it: requested, consented, activated, expired,
    revoked, a consent ignored."""

    event: str = Field(max_length=64)
    by: str | None = Field(default=None, max_length=MAX_USER_LENGTH)
    at: datetime
    generation: int | None = Field(default=None, ge=0)
    reason: str | None = Field(default=None, max_length=1024)


class NetworkGrantStatus(Model):
    """The grant as the operator reads it: the two tenants, its state, until when, the record."""

    observed_generation: int | None = Field(default=None, alias="observedGeneration")
    state: GrantState | None = Field(default=None, description="Pending, Active, Expired, ...")
    provider_tenant: str | None = Field(default=None, alias="providerTenant", max_length=63)
    consumer_tenant: str | None = Field(default=None, alias="consumerTenant", max_length=63)
    ports: str | None = Field(
        default=None, max_length=512, description="The granted ports as the pods serve them."
    )
    expires_at: datetime | None = Field(
        default=None, alias="expiresAt", description="When the grant ends by itself."
    )
    consented_by: str | None = Field(default=None, alias="consentedBy", max_length=MAX_USER_LENGTH)
    policies: list[Annotated[str, Field(max_length=253)]] = Field(
        default_factory=list,
        max_length=2 * MAX_CONSUMERS + 1,
        description="The NetworkPolicies in place for the grant, as <namespace>/<name>.",
    )
    history: list[HistoryRecord] = Field(
        default_factory=list,
        max_length=MAX_HISTORY,
        description="Who requested, consented, revoked; when it expired. Append-only.",
        json_schema_extra=cel.validations(HISTORY_APPEND_ONLY),
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready (the grant resolves) and Active (the opening is in place).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


def parse(spec: Mapping[str, Any]) -> NetworkGrantSpec:
    """The spec checked as the API server checks it; pydantic.ValidationError if not."""
    return NetworkGrantSpec.model_validate(spec)
