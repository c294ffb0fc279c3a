"""Everything a CloudTenant should own, built from its spec: the entry point of ``desired``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from govcloud.api.v1alpha1 import cloudtenant
from govcloud.desired import limitranges, meta, namespaces, networkpolicies, quotas, rbac

# Kinds the operator creates for a tenant and may prune by label (namespaces follow the
# deletion policy instead).
PRUNABLE_NAMESPACED_KINDS = ("ResourceQuota", "LimitRange", "NetworkPolicy", "RoleBinding")
PRUNABLE_CLUSTER_KINDS = ("ClusterRole", "ClusterRoleBinding")


@dataclass(frozen=True)
class DesiredTenant:
    """The objects a tenant should have, grouped in the order they are applied.

    1. ``namespaces``; 2. quota phase 1 (``Allocation.decreases``; a namespace the pass has
    just created gets its final share in one write instead, G3 in ``quotas``), so a new
    namespace is limited before anyone is granted access to it; 3. ``namespaced`` (LimitRanges,
    NetworkPolicies, then RoleBindings) and ``cluster_scoped``; 4. quota phase 2
    (``quotas.cap_increases`` over ``Allocation.increases``). ``quotas`` holds the final
    ResourceQuotas, for drift checks and pruning; they are written only through the phases.
    """

    namespaces: tuple[meta.Manifest, ...]
    namespaced: tuple[meta.Manifest, ...]
    cluster_scoped: tuple[meta.Manifest, ...]
    quotas: tuple[meta.Manifest, ...]

    @property
    def namespace_names(self) -> list[str]:
        return [str(namespace["metadata"]["name"]) for namespace in self.namespaces]


def namespace_names(tenant: str, spec: cloudtenant.CloudTenantSpec) -> list[str]:
    """The real names of the tenant's namespaces, in spec order; the allocator needs them."""
    return [meta.namespace_name(tenant, namespace.name) for namespace in spec.namespaces]


def build(
    tenant: str,
    spec: cloudtenant.CloudTenantSpec,
    *,
    platform_namespaces: Sequence[str],
    allocation: quotas.Allocation,
    reports: Sequence[str] = (),
    egress: networkpolicies.Egress | None = None,
    payer: str = "",
) -> DesiredTenant:
    """Build every object of the tenant; raises ``meta.SpecError`` for specs that cannot work.
    ``reports``: the tenant's UsageReports its members may read (``rbac.own_reports``);
    ``payer``: the level that pays its bills, whose finance staff may read those reports."""
    names = namespace_names(tenant, spec)
    return DesiredTenant(
        namespaces=tuple(namespaces.build_all(tenant, spec)),
        namespaced=tuple(
            manifest
            for name in names
            for manifest in namespaced_objects(tenant, spec, name, platform_namespaces, egress)
        ),
        cluster_scoped=tuple(rbac.cluster_scoped(tenant, spec, names, reports, payer)),
        quotas=tuple(quota_objects(tenant, names, allocation)),
    )


def namespaced_objects(
    tenant: str,
    spec: cloudtenant.CloudTenantSpec,
    namespace: str,
    platform: Sequence[str],
    egress: networkpolicies.Egress | None = None,
) -> list[meta.Manifest]:
    """LimitRange, NetworkPolicy and RoleBindings of one namespace (those that are wanted)."""
    optional = [
        limitranges.build(tenant, namespace, spec.limit_range),
        networkpolicies.build(tenant, namespace, spec.network, platform, egress),
    ]
    return [
        *(manifest for manifest in optional if manifest is not None),
        *rbac.role_bindings(tenant, namespace, spec),
    ]


def quota_objects(
    tenant: str, names: Sequence[str], allocation: quotas.Allocation
) -> list[meta.Manifest]:
    """The final ResourceQuota of each namespace; none where the allocation sets no hard."""
    missing = [name for name in names if name not in allocation.hard]
    if missing:
        # Building without them would prune their quotas and leave the namespaces unlimited.
        raise ValueError(f"the quota allocation does not cover namespaces {missing}")
    return [
        quotas.manifest(tenant, name, allocation.hard[name])
        for name in names
        if allocation.hard[name]
    ]
