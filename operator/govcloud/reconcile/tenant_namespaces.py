"""Which namespaces a CloudTenant may manage: the verdicts converge acts on before applying."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from govcloud import constants
from govcloud.api.v1alpha1 import cloudtenant
from govcloud.desired import protection
from govcloud.reconcile import events, tenant_types

Manifest = dict[str, Any]


Event = events.Event


@dataclass(frozen=True)
class NamespaceVerdict:
    """Whether the operator may manage a namespace the spec asks for, and why not."""

    name: str
    usable: bool
    phase: str
    message: str = ""
    adopt: bool = False
    reason: str = "NamespaceConflict"  # the Warning Event's reason when not usable


def judge_namespaces(
    name: str,
    spec: cloudtenant.CloudTenantSpec,
    observed: tenant_types.Observed,
    protected: protection.Protected | None = None,
) -> list[NamespaceVerdict]:
    """Which of the spec's namespaces the operator may manage; a conflict is never a steal."""
    previously_ours = {
        item.get("name")
        for item in (observed.tenant.get("status") or {}).get("namespaces") or []
        if item.get("phase") == "Active"
    }
    verdicts = []
    for namespace in spec.namespaces:
        real = f"{name}-{namespace.name}"
        verdicts.append(
            judge(
                name,
                real,
                namespace.adopt,
                observed.namespaces.get(real),
                previously_ours,
                protected or protection.Protected(),
            )
        )
    return verdicts


def judge(
    tenant: str,
    real: str,
    adopt: bool,
    found: Manifest | None,
    previously_ours: set[Any],
    protected: protection.Protected | None = None,
) -> NamespaceVerdict:
    """Whether the tenant may manage namespace `real`: never a protected one, never another
    tenant's, and an existing one only with a grant written on it."""
    refused = why_protected(real, found, protected or protection.Protected())
    if refused is not None:
        return NamespaceVerdict(
            real, usable=False, phase="Conflict", message=refused, reason="NamespaceProtected"
        )
    if found is None:
        return NamespaceVerdict(real, usable=True, phase="Pending", message="creating")
    labels = found["metadata"].get("labels") or {}
    owner = labels.get(constants.LABEL_TENANT)
    if found["metadata"].get("deletionTimestamp"):
        return NamespaceVerdict(
            real, usable=False, phase="Terminating", message="namespace is being deleted"
        )
    if owner == tenant:
        return NamespaceVerdict(real, usable=True, phase="Active")
    return judge_foreign(tenant, real, adopt, found, previously_ours)


def judge_foreign(
    tenant: str, real: str, adopt: bool, found: Manifest, previously_ours: set[Any]
) -> NamespaceVerdict:
    """An existing namespace not labelled as the tenant's: usable only with a grant on it."""
    owner = (found["metadata"].get("labels") or {}).get(constants.LABEL_TENANT)
    if owner is not None:
        return NamespaceVerdict(
            real,
            usable=False,
            phase="Conflict",
            message=f"namespace {real} belongs to tenant {owner}; it is never taken over",
        )
    granted = protection.granted_to(found) == tenant
    if granted and (adopt or real in previously_ours):
        return NamespaceVerdict(real, usable=True, phase="Active", adopt=adopt)
    return NamespaceVerdict(
        real,
        usable=False,
        phase="Conflict",
        message=not_granted(tenant, real, adopt),
        reason="AdoptionNotGranted",
    )


def why_protected(real: str, found: Manifest | None, protected: protection.Protected) -> str | None:
    """Why no tenant may manage namespace `real` (by its name or its protected label)."""
    why = protection.why_protected(found or {"metadata": {"name": real}}, protected)
    if why is None:
        return None
    return f"{why}: it is protected and never managed by a tenant; choose another namespace name"


def not_granted(tenant: str, real: str, adopt: bool) -> str:
    """What to do about an existing namespace that no tenant owns and nobody granted."""
    grant = f"kubectl label namespace {real} {constants.ADOPTABLE_BY}={tenant}"
    if not adopt:
        return (
            f"namespace {real} already exists and is not managed by govcloud; to take it over"
            f" (its workloads stay), set adopt: true on this namespace entry and have someone who"
            f" may write namespaces grant it: {grant}"
        )
    return (
        f"namespace {real} already exists and nobody granted it to tenant {tenant}: adopt: true"
        f" needs a grant written on the namespace by someone who may write namespaces: {grant}"
    )


def refusal_events(tenant: Manifest, verdicts: Sequence[NamespaceVerdict]) -> list[Event]:
    """A Warning per namespace newly refused (protected, not granted or another tenant's)."""
    before = {
        item.get("name"): (item.get("phase"), item.get("message"))
        for item in (tenant.get("status") or {}).get("namespaces") or []
    }
    return [
        Event("Warning", verdict.reason, verdict.message)
        for verdict in verdicts
        if verdict.phase == "Conflict" and before.get(verdict.name) != ("Conflict", verdict.message)
    ]


def conflicted(verdicts: Sequence[NamespaceVerdict]) -> set[str]:
    return {verdict.name for verdict in verdicts if not verdict.usable}


def usable_only(
    name: str, spec: cloudtenant.CloudTenantSpec, usable: Sequence[str]
) -> cloudtenant.CloudTenantSpec:
    """The spec restricted to the namespaces the operator may manage."""
    kept = [
        namespace
        for namespace in spec.namespaces
        if cloudtenant.namespace_name(name, namespace.name) in usable
    ]
    return spec.model_copy(update={"namespaces": kept})
