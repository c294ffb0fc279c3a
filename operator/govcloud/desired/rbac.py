"""RBAC of a tenant: RoleBindings per namespace, and a cluster-scoped view of its own CloudTenant.

Each RoleBinding is named after the ClusterRole it grants (``govcloud-admin`` -> ``admin``), so
a given name always has the same ``roleRef``; roleRef is immutable, and suspension therefore
swaps *which* bindings exist (only ``govcloud-view``, holding every member) instead of editing
one. The bindings that are no longer wanted are pruned by label.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from govcloud import constants
from govcloud.api.v1alpha1 import cloudtenant, resourceplan
from govcloud.desired import meta

RBAC_GROUP = "rbac.authorization.k8s.io"
RBAC_API_VERSION = f"{RBAC_GROUP}/v1"
ROLE_ADMIN = "admin"
ROLE_EDIT = "edit"
ROLE_VIEW = "view"
SELF_VIEW_VERBS = ("get", "list", "watch")
FILE_PLAN_VERB = "fileplan"
RESOURCEPLAN_PLURAL = "resourceplans"
USAGEREPORT_PLURAL = "usagereports"

Subject = dict[str, str]


def role_binding_name(cluster_role: str) -> str:
    """The name of the RoleBinding granting ``cluster_role`` in a tenant namespace."""
    return f"govcloud-{cluster_role}"


def self_view_name(tenant: str) -> str:
    """The name of the per-tenant ClusterRole and ClusterRoleBinding (self view)."""
    return f"govcloud:tenant:{tenant}:self-view"


def plan_filer_name(tenant: str) -> str:
    """The per-tenant ClusterRole and ClusterRoleBinding that let its admins file plans."""
    return f"govcloud:tenant:{tenant}:plan-filer"


def finance_name(tenant: str) -> str:
    """The per-tenant ClusterRole its paying level's finance role aggregates (never bound)."""
    return f"govcloud:tenant:{tenant}:finance"


def payer_label(payer: str) -> str:
    """The label value naming a paying level (``city``, ``county:<region>``, ...): the first
    16 hex digits of its UTF-8 SHA-256, as the chart computes it (``sha256sum | trunc 16``);
    a region's Chinese name cannot be a label value itself."""
    return hashlib.sha256(payer.encode()).hexdigest()[:16]


def plan_names(tenant: str) -> list[str]:
    """Every name a ResourcePlan of the tenant can have (<tenant>-<year>, one per year)."""
    return [
        resourceplan.plan_name(tenant, year)
        for year in range(resourceplan.MIN_YEAR, resourceplan.MAX_YEAR + 1)
    ]


def subjects(members: cloudtenant.Members) -> list[Subject]:
    """RBAC subjects for users, groups and ``<namespace>/<name>`` service accounts."""
    found = [{"kind": "User", "apiGroup": RBAC_GROUP, "name": user} for user in members.users]
    found += [{"kind": "Group", "apiGroup": RBAC_GROUP, "name": group} for group in members.groups]
    found += [service_account_subject(account) for account in members.service_accounts]
    return unique(found)


def service_account_subject(reference: str) -> Subject:
    """The subject for a service account written as ``<namespace>/<name>``."""
    namespace, _, name = reference.partition("/")
    if not namespace or not name or "/" in name:
        raise meta.SpecError(f"service account {reference!r} must be written <namespace>/<name>")
    return {"kind": "ServiceAccount", "namespace": namespace, "name": name}


def member_allowed(subject: Mapping[str, Any], own_namespaces: Collection[str]) -> bool:
    """Whether a binding subject may be a tenant's member: never one of Kubernetes' own
    (``system:*``), and a ServiceAccount only from the tenant's own namespaces."""
    if str(subject.get("name", "")).startswith("system:"):
        return False
    if subject.get("kind") == "ServiceAccount":
        return subject.get("namespace") in own_namespaces
    return True


def unique(found: Iterable[Subject]) -> list[Subject]:
    """Drop repeated subjects, keeping the first occurrence so the order is stable."""
    seen: list[Subject] = []
    for subject in found:
        if subject not in seen:
            seen.append(subject)
    return seen


def all_members(spec: cloudtenant.CloudTenantSpec) -> list[Subject]:
    """Every admin, editor and viewer of the tenant, once each."""
    return unique([*subjects(spec.admins), *subjects(spec.editors), *subjects(spec.viewers)])


def grants(spec: cloudtenant.CloudTenantSpec) -> dict[str, list[Subject]]:
    """ClusterRole -> subjects in each namespace; a suspended tenant's members get ``view`` only."""
    if spec.suspended:
        return {ROLE_VIEW: all_members(spec)}
    return {
        ROLE_ADMIN: subjects(spec.admins),
        ROLE_EDIT: subjects(spec.editors),
        ROLE_VIEW: subjects(spec.viewers),
    }


def role_bindings(
    tenant: str, namespace: str, spec: cloudtenant.CloudTenantSpec
) -> list[meta.Manifest]:
    """The RoleBindings of one namespace; a role with no subjects gets no binding."""
    return [
        {
            "apiVersion": RBAC_API_VERSION,
            "kind": "RoleBinding",
            "metadata": meta.object_meta(role_binding_name(role), namespace, tenant),
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
            "subjects": granted,
        }
        for role, granted in grants(spec).items()
        if granted
    ]


def own_reports(tenant: str, uid: str, names: Iterable[Any]) -> list[str]:
    """Of `names` (status.billing.reports), those that can only be this tenant's UsageReports:
    ``<tenant>-<YYYY-MM>``, or ``<tenant>-<YYYY-MM>-<uid>`` with this tenant's own UID (never
    another UID: a report of an earlier tenant of the same name is not its members' to read).
    """
    suffix = f"(-{re.escape(uid)})?" if uid else ""
    pattern = re.compile(rf"{re.escape(tenant)}-[0-9]{{4}}-[0-9]{{2}}{suffix}")
    return sorted({name for name in names if isinstance(name, str) and pattern.fullmatch(name)})


def self_view_role(
    tenant: str, namespaces: Iterable[str], reports: Sequence[str] = ()
) -> meta.Manifest:
    """A ClusterRole to read the tenant's own CloudTenant, namespaces, ResourcePlans and
    UsageReports (`reports`: from ``own_reports``).

    ``resourceNames`` authorizes ``get`` directly. For ``list`` and ``watch`` the API server
    only applies resourceNames when the request carries ``fieldSelector=metadata.name=<name>``
    (``kubectl get cloudtenant <name>`` uses get; ``-w`` sends that field selector), so an
    unfiltered list of all CloudTenants stays forbidden.
    """
    rules = [
        {
            "apiGroups": [constants.GROUP],
            "resources": [meta.CLOUDTENANT_PLURAL, f"{meta.CLOUDTENANT_PLURAL}/status"],
            "resourceNames": [tenant],
            "verbs": list(SELF_VIEW_VERBS),
        }
    ]
    # Every member may read the tenant's own plans (its budget); filing is for admins only
    # (`plan_filer_role`).
    rules.append(
        {
            "apiGroups": [constants.GROUP],
            "resources": [RESOURCEPLAN_PLURAL],
            "resourceNames": plan_names(tenant),
            "verbs": list(SELF_VIEW_VERBS),
        }
    )
    # An empty resourceNames list would mean "every one", so no names means no rule.
    if reports:
        rules.append(
            {
                "apiGroups": [constants.GROUP],
                "resources": [USAGEREPORT_PLURAL],
                "resourceNames": sorted(set(reports)),
                "verbs": list(SELF_VIEW_VERBS),
            }
        )
    names = sorted(set(namespaces))
    if names:
        rules.append(
            {
                "apiGroups": [""],
                "resources": ["namespaces"],
                "resourceNames": names,
                "verbs": list(SELF_VIEW_VERBS),
            }
        )
    return {
        "apiVersion": RBAC_API_VERSION,
        "kind": "ClusterRole",
        "metadata": meta.object_meta(self_view_name(tenant), None, tenant),
        "rules": rules,
    }


def self_view_binding(tenant: str, spec: cloudtenant.CloudTenantSpec) -> meta.Manifest | None:
    """Binds every member to the self-view ClusterRole; None when the tenant has no members."""
    members = all_members(spec)
    if not members:
        return None
    return {
        "apiVersion": RBAC_API_VERSION,
        "kind": "ClusterRoleBinding",
        "metadata": meta.object_meta(self_view_name(tenant), None, tenant),
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": self_view_name(tenant)},
        "subjects": members,
    }


def plan_filer_role(tenant: str) -> meta.Manifest:
    """A ClusterRole holding the custom verb `fileplan` ("may file ResourcePlans for this
    tenant") on the tenant's CloudTenant. RBAC itself ignores the verb; the admission policy
    govcloud-resourceplan-review asks the authorizer for it before it admits a plan."""
    return {
        "apiVersion": RBAC_API_VERSION,
        "kind": "ClusterRole",
        "metadata": meta.object_meta(plan_filer_name(tenant), None, tenant),
        "rules": [
            {
                "apiGroups": [constants.GROUP],
                "resources": [meta.CLOUDTENANT_PLURAL],
                "resourceNames": [tenant],
                "verbs": [FILE_PLAN_VERB],
            }
        ],
    }


def plan_filer_binding(tenant: str, spec: cloudtenant.CloudTenantSpec) -> meta.Manifest | None:
    """Binds the tenant's admins (only) to its plan-filer role; none while it is suspended."""
    admins = subjects(spec.admins)
    if not admins or spec.suspended:
        return None
    return {
        "apiVersion": RBAC_API_VERSION,
        "kind": "ClusterRoleBinding",
        "metadata": meta.object_meta(plan_filer_name(tenant), None, tenant),
        "roleRef": {
            "apiGroup": RBAC_GROUP,
            "kind": "ClusterRole",
            "name": plan_filer_name(tenant),
        },
        "subjects": admins,
    }


def finance_role(tenant: str, payer: str, reports: Sequence[str]) -> meta.Manifest | None:
    """``get`` on the tenant's UsageReports by name, labelled with its paying level: the
    chart's ``govcloud:finance:<payer>`` ClusterRole aggregates every such role of its level
    (the controller-manager fills it in), so that level's finance staff read these bills and no
    other. Nothing to read (no reports, or no payer), no role."""
    if not reports or not payer:
        return None
    return {
        "apiVersion": RBAC_API_VERSION,
        "kind": "ClusterRole",
        "metadata": meta.object_meta(
            finance_name(tenant),
            None,
            tenant,
            extra_labels={constants.LABEL_FINANCE_PAYER: payer_label(payer)},
            annotations={constants.ANNOTATION_PAYER: payer},
        ),
        "rules": [
            {
                "apiGroups": [constants.GROUP],
                "resources": [USAGEREPORT_PLURAL],
                "resourceNames": sorted(set(reports)),
                "verbs": ["get"],
            }
        ],
    }


def cluster_scoped(
    tenant: str,
    spec: cloudtenant.CloudTenantSpec,
    namespaces: Iterable[str],
    reports: Sequence[str] = (),
    payer: str = "",
) -> list[meta.Manifest]:
    """The tenant's cluster-scoped RBAC objects: self-view and plan-filer roles and bindings,
    and the finance role its paying level reads its bills through."""
    binding = self_view_binding(tenant, spec)
    filer = plan_filer_binding(tenant, spec)
    finance = finance_role(tenant, payer, reports)
    return [
        self_view_role(tenant, namespaces, reports),
        *([binding] if binding else []),
        plan_filer_role(tenant),
        *([filer] if filer else []),
        *([finance] if finance else []),
    ]
