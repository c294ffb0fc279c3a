"""Namespace manifests of a tenant: ownership, tier, security level and Pod Security labels."""

from __future__ import annotations

from collections.abc import Mapping

from govcloud import constants
from govcloud.api.v1alpha1 import cloudtenant
from govcloud.desired import meta, networkpolicies

PSA_VERSION = "latest"
PSA_RESTRICTED = "restricted"
PSA_BASELINE = "baseline"
# Values of the govcloud.io/frozen label: the chart's admission policy freezes such namespaces.
FROZEN_SUSPENDED = "suspended"
FROZEN_RELEASED = "released"
_HIGHEST_LEVEL = 3

# Label keys a user may never set on a tenant namespace: ours, Pod Security Admission's
# (any of them, e.g. a pinned old *-version, would weaken the policy) and the API server's.
# allow-from.govcloud.io/<tenant> opens <tenant>'s egress to the namespace: only the operator
# sets it, from the receiving tenant's own allowFrom.
_RESERVED_PREFIXES = (
    f"{constants.GROUP}/",
    networkpolicies.ALLOW_FROM_PREFIX,
    "pod-security.kubernetes.io/",
)
_RESERVED_KEYS = frozenset({constants.LABEL_MANAGED_BY, meta.LABEL_NAMESPACE_NAME})


def pod_security_labels(security_level: int) -> dict[str, str]:
    """PSA labels: level 3 enforces ``restricted``; lower levels enforce ``baseline``.

    Every level warns and audits against ``restricted`` so teams see what level 3 would refuse.
    """
    enforce = PSA_RESTRICTED if security_level >= _HIGHEST_LEVEL else PSA_BASELINE
    return {
        constants.PSA_ENFORCE: enforce,
        constants.PSA_ENFORCE_VERSION: PSA_VERSION,
        constants.PSA_WARN: PSA_RESTRICTED,
        constants.PSA_AUDIT: PSA_RESTRICTED,
    }


def user_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """The user's namespace labels minus any key the operator or the API server owns."""
    return {
        key: value
        for key, value in labels.items()
        if key not in _RESERVED_KEYS and not key.startswith(_RESERVED_PREFIXES)
    }


def labels(
    spec: cloudtenant.CloudTenantSpec, namespace: cloudtenant.TenantNamespace
) -> dict[str, str]:
    """All labels of a tenant namespace; ours and the PSA labels override the user's."""
    ours = {
        constants.LABEL_TIER: spec.unit.tier.value,
        constants.LABEL_SECURITY_LEVEL: str(spec.security_level),
        constants.LABEL_TENANT_NAMESPACE: namespace.name,
        **pod_security_labels(spec.security_level),
        **({constants.LABEL_FROZEN: FROZEN_SUSPENDED} if spec.suspended else {}),
        **({constants.LABEL_QUOTA: constants.QUOTA_REQUIRED} if spec.quota else {}),
        **networkpolicies.door_labels(spec.network),
    }
    return {**user_labels(namespace.labels), **ours}


def build(
    tenant: str, spec: cloudtenant.CloudTenantSpec, namespace: cloudtenant.TenantNamespace
) -> meta.Manifest:
    """The Namespace manifest for one of the tenant's namespaces."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": meta.object_meta(
            meta.namespace_name(tenant, namespace.name),
            None,
            tenant,
            extra_labels=labels(spec, namespace),
            annotations={constants.ANNOTATION_DISPLAY_NAME: spec.display_name},
        ),
    }


def build_all(tenant: str, spec: cloudtenant.CloudTenantSpec) -> list[meta.Manifest]:
    """Namespace manifests for every namespace in the spec, in spec order."""
    return [build(tenant, spec, namespace) for namespace in spec.namespaces]


def with_owner(manifest: meta.Manifest, tenant_uid: str) -> meta.Manifest:
    """The namespace manifest recording the UID of the CloudTenant that created it."""
    metadata = manifest["metadata"]
    annotations = {
        **(metadata.get("annotations") or {}),
        constants.ANNOTATION_TENANT_UID: tenant_uid,
    }
    return {**manifest, "metadata": {**metadata, "annotations": annotations}}


def owner_uid(namespace: meta.Manifest) -> str | None:
    """The UID of the CloudTenant that created the namespace, if it was recorded."""
    annotations = namespace["metadata"].get("annotations") or {}
    found = annotations.get(constants.ANNOTATION_TENANT_UID)
    return str(found) if found else None
