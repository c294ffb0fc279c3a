"""Tenant placement on sub-centers (pure): may this tenant live on that site, and what is used.

`decide` answers for one tenant and one site from facts gathered beforehand. A refusal never
means "delete": a tenant already placed on a site keeps everything it has there; the verdict
only says that the spec as written cannot be honoured, and what to change.

Capacity is counted in tenant quota, not in pods running: a site is full when the quotas of the
tenants placed on it add up to its allocatable resources, so placing a tenant can never
over-commit a site however its workloads grow. Only cpu, memory and pods are counted (a tenant
quota that does not bound one of them reserves none of it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Set
from decimal import Decimal

from govcloud.api.v1alpha1 import subcenter
from govcloud.desired import quantity

PLACED = "Placed"
SECURITY_LEVEL_TOO_HIGH = "SecurityLevelTooHigh"
SITE_BEING_RETIRED = "SiteBeingRetired"
SUBCENTER_NOT_READY = "SubCenterNotReady"
INSUFFICIENT_CAPACITY = "InsufficientCapacity"
SUBCENTER_NOT_FOUND = "SubCenterNotFound"

# Site resource -> the tenant quota names that bound it. `cpu` and `requests.cpu` both cap
# the sum of CPU requests, so the smaller of the two is what the tenant can take.
RESOURCES: Mapping[str, tuple[str, ...]] = {
    "cpu": ("requests.cpu", "cpu"),
    "memory": ("requests.memory", "memory"),
    "pods": ("pods",),
}
_UNITS = {"cpu": "CPU", "memory": "memory", "pods": "pods"}


@dataclasses.dataclass(frozen=True)
class SiteFacts:
    """What the hub knows of a site right now (from its status and the other tenants)."""

    ready: bool
    allocatable: Mapping[str, str]  # cpu/memory/pods of the site's nodes
    allocated: Mapping[str, str]  # cpu/memory/pods reserved by the *other* placed tenants


@dataclasses.dataclass(frozen=True)
class Verdict:
    """Whether the tenant may be (or stay) on the site; reason and message for a condition."""

    placed: bool
    reason: str
    message: str


def demand(quota: Mapping[str, str]) -> dict[str, str]:
    """The cpu/memory/pods a tenant quota reserves on its site (bounds it does not set: none)."""
    return {resource: _format(resource, amount) for resource, (_, amount) in _bounds(quota).items()}


def held(spec_quota: Mapping[str, str], granted: Mapping[str, str]) -> dict[str, str]:
    """The cpu/memory/pods a placed tenant holds: what it asks, but no more than it was granted.

    `granted` is the quota last applied on its site (status.quota.hard; empty before the first
    pass): growth the site has not granted is not held.
    """
    given = demand(granted)
    return {
        resource: amount
        if resource not in given or quantity.parse(amount) <= quantity.parse(given[resource])
        else given[resource]
        for resource, amount in demand(spec_quota).items()
    }


def larger(first: Mapping[str, str], second: Mapping[str, str]) -> dict[str, str]:
    """Per resource, the larger of two cpu/memory/pods amounts."""
    merged = dict(first)
    for resource, amount in second.items():
        if resource not in merged or quantity.parse(amount) > quantity.parse(merged[resource]):
            merged[resource] = amount
    return merged


def _bounds(quota: Mapping[str, str]) -> dict[str, tuple[str, Decimal]]:
    """Per site resource, the quota name that bounds it most tightly and its amount."""
    bounds: dict[str, tuple[str, Decimal]] = {}
    for resource, names in RESOURCES.items():
        found = [(name, quantity.parse(quota[name])) for name in names if name in quota]
        if found:
            bounds[resource] = min(found, key=lambda item: item[1])
    return bounds


def total(amounts: Iterable[Mapping[str, str]]) -> dict[str, str]:
    """The sum of cpu/memory/pods amounts, e.g. node allocatables or tenant demands."""
    sums: dict[str, Decimal] = {}
    for amount in amounts:
        for resource in RESOURCES:
            if resource in amount:
                sums[resource] = sums.get(resource, Decimal(0)) + quantity.parse(amount[resource])
    return {resource: _format(resource, value) for resource, value in sums.items()}


def summary(allocated: Mapping[str, str], allocatable: Mapping[str, str]) -> dict[str, str]:
    """allocated/allocatable per resource the site reports, for the printer columns."""
    return {
        resource: f"{allocated.get(resource, '0')}/{allocatable[resource]}"
        for resource in RESOURCES
        if resource in allocatable
    }


def _format(resource: str, value: Decimal) -> str:
    return quantity.to_string(value, binary=resource == "memory")


def decide(
    tenant_level: int,
    tenant_quota: Mapping[str, str],
    site_name: str,
    site: subcenter.SubCenterSpec,
    facts: SiteFacts,
    *,
    already_placed: bool = False,
    admitted_quota: Mapping[str, str] | None = None,
) -> Verdict:
    """May a tenant of MLPS level `tenant_level` with `tenant_quota` live on `site`?

    Refused, with every reason that applies (the first one is the condition's reason):
    - SecurityLevelTooHigh: the tenant's level is above the site's maxSecurityLevel;
    - SiteBeingRetired: the site is hosted (new placements only; tenants there stay until
      they are migrated);
    - SubCenterNotReady: the site is not Ready (new placements only; a placed tenant is not
      abandoned because its site is briefly unreachable);
    - InsufficientCapacity: the tenant's cpu/memory/pods quota does not fit in allocatable
      minus what the other tenants hold. For a placed tenant only growth is checked, against
      `admitted_quota` (what the site already granted it): a site that shrinks (a node lost)
      never evicts anyone, and without `admitted_quota` a placed tenant is not checked.
    """
    where = f"SubCenter {site_name}"
    refusals: list[tuple[str, str]] = []
    if tenant_level > site.max_security_level:
        refusals.append(
            (
                SECURITY_LEVEL_TOO_HIGH,
                f"the tenant's securityLevel {tenant_level} is above the highest MLPS (等保) level"
                f" {where} is certified for ({site.max_security_level}); place it on a site"
                f" certified for level {tenant_level}, or remove spec.placement to keep it on"
                " the hub",
            )
        )
    if not already_placed and site.mode is subcenter.Mode.HOSTED:
        retire_by = f" by {site.retire_by.isoformat()}" if site.retire_by else ""
        refusals.append(
            (
                SITE_BEING_RETIRED,
                f"{where} is hosted: its apps are moving to the hub and the site is retired"
                f"{retire_by}, so it takes no new tenants; choose a federated sub-center or"
                " remove spec.placement to keep the tenant on the hub",
            )
        )
    if not already_placed and not facts.ready:
        refusals.append(
            (
                SUBCENTER_NOT_READY,
                f"{where} is not Ready (see its Ready condition); the tenant is placed once the"
                " site is Ready, or remove spec.placement to keep it on the hub",
            )
        )
    shortfalls = _shortfalls(tenant_quota, facts, admitted_quota, already_placed=already_placed)
    if shortfalls:
        refusals.append(
            (
                INSUFFICIENT_CAPACITY,
                f"the tenant's quota does not fit in {where}: {'; '.join(shortfalls)};"
                " lower spec.quota, or place the tenant on a site with room",
            )
        )
    if refusals:
        return Verdict(False, refusals[0][0], "; ".join(message for _, message in refusals))
    return Verdict(True, PLACED, f"the tenant is placed on {where}")


@dataclasses.dataclass(frozen=True)
class Shortfall:
    """One site resource the tenant's quota asks more of than is free."""

    resource: str
    free: Decimal
    message: str


def _shortfalls(
    tenant_quota: Mapping[str, str],
    facts: SiteFacts,
    admitted_quota: Mapping[str, str] | None,
    *,
    already_placed: bool,
) -> list[str]:
    if already_placed and admitted_quota is None:
        return []
    admitted = admitted_quota if already_placed and admitted_quota is not None else {}
    return [item.message for item in _missing(tenant_quota, facts, admitted)]


def _missing(
    tenant_quota: Mapping[str, str], facts: SiteFacts, admitted_quota: Mapping[str, str]
) -> list[Shortfall]:
    admitted = _bounds(admitted_quota)
    shortfalls: list[Shortfall] = []
    for resource, (name, need) in _bounds(tenant_quota).items():
        if resource not in facts.allocatable:
            continue  # the site has not said how much it has; nothing to hold against
        if resource in admitted and need <= admitted[resource][1]:
            continue  # not growing: what the site granted before stays granted
        allocatable = quantity.parse(facts.allocatable[resource])
        allocated = quantity.parse(facts.allocated.get(resource, "0"))
        free = max(allocatable - allocated, Decimal(0))
        if need > free:
            message = (
                f"{name} {tenant_quota[name]} is more than the {_format(resource, free)}"
                f" {_UNITS[resource]} free ({_format(resource, allocated)} of"
                f" {_format(resource, allocatable)} is held by other tenants)"
            )
            shortfalls.append(Shortfall(resource, free, message))
    return shortfalls


def grows(tenant_quota: Mapping[str, str], granted: Mapping[str, str]) -> bool:
    """Whether the quota asks its site for more cpu, memory or pods than it was granted."""
    before = _bounds(granted)
    return any(
        resource not in before or need > before[resource][1]
        for resource, (_, need) in _bounds(tenant_quota).items()
    )


@dataclasses.dataclass(frozen=True)
class Grant:
    """What a tenant already on a site gets: the quota to apply, and what was held back."""

    quota: dict[str, str]
    shortfalls: list[str]


def grant(tenant_quota: Mapping[str, str], granted: Mapping[str, str], facts: SiteFacts) -> Grant:
    """A placed tenant's quota, except growth its site has no room for.

    Growth that does not fit stays at what the site granted before (`granted`), or at what is
    free when the tenant never bounded that resource. The tenant is never evicted, and never
    shrunk below its grant however full the site is; other growth and other keys apply as asked.
    """
    quota = dict(tenant_quota)
    missing = _missing(tenant_quota, facts, granted)
    before = _bounds(granted)
    for shortfall in missing:
        if shortfall.resource in before:
            name, amount = before[shortfall.resource]
            allowed, text = amount, granted[name]
        else:
            allowed, text = shortfall.free, _format(shortfall.resource, shortfall.free)
        for key in RESOURCES[shortfall.resource]:
            if key in quota and quantity.parse(quota[key]) > allowed:
                quota[key] = text
    return Grant(quota, [item.message for item in missing])


def still_admitted(
    admitted: Set[str], asking: Set[str], tenant: str, placed: bool
) -> frozenset[str]:
    """The tenants a site has admitted once `tenant` was decided (placed or refused).

    Only tenants still asking for the site keep an admission (a deleted tenant, or one whose
    spec now names another site, holds nothing there); `tenant` joins when placed and leaves
    when refused.
    """
    kept = frozenset(admitted) & frozenset(asking)
    return kept | {tenant} if placed else kept - {tenant}


def not_found(site_name: str) -> Verdict:
    """The verdict when spec.placement names a SubCenter that does not exist."""
    return Verdict(
        False,
        SUBCENTER_NOT_FOUND,
        f"there is no SubCenter {site_name}; create it (kubectl get subcenters lists the sites),"
        " fix spec.placement.subCenter, or remove spec.placement to keep the tenant on the hub",
    )
