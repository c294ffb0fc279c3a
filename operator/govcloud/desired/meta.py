"""Names and labels shared by every desired-state builder (namespaces, quotas, RBAC, policies)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from govcloud import constants

# Not (yet) in constants.py: the plural the API server serves CloudTenants under.
CLOUDTENANT_PLURAL = "cloudtenants"

QUOTA_NAME = "govcloud-quota"
LIMIT_RANGE_NAME = "govcloud-defaults"
NETWORK_POLICY_NAME = "govcloud-isolation"
# The frozen quota and the isolation a namespace keeps once its tenant released it.
RELEASED_NAME = "govcloud-released"

# Set by the API server on every namespace; used to select platform namespaces by name.
LABEL_NAMESPACE_NAME = "kubernetes.io/metadata.name"

_DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_LABEL_MAX = 63

Manifest = dict[str, Any]


class SpecError(ValueError):
    """A spec that slipped past API validation and cannot be turned into objects."""


def namespace_name(tenant: str, short_name: str) -> str:
    """The real namespace name for a tenant's namespace: ``<tenant>-<short name>``."""
    name = f"{tenant}-{short_name}"
    if len(name) > _DNS_LABEL_MAX or not _DNS_LABEL_RE.match(name):
        raise SpecError(
            f"namespace {short_name!r} of tenant {tenant!r} gives {name!r}, which is not a DNS "
            f"label of at most {_DNS_LABEL_MAX} characters; shorten the tenant or namespace name"
        )
    return name


def common_labels(tenant: str) -> dict[str, str]:
    """Labels on every object the operator manages for a tenant; pruning selects on them."""
    return {constants.LABEL_MANAGED_BY: constants.MANAGED_BY, constants.LABEL_TENANT: tenant}


def selector(tenant: str) -> str:
    """A label selector string matching every object managed for ``tenant``."""
    return ",".join(f"{key}={value}" for key, value in common_labels(tenant).items())


def object_meta(
    name: str,
    namespace: str | None,
    tenant: str,
    extra_labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> Manifest:
    """``metadata`` for a managed object; the common labels always win over ``extra_labels``."""
    metadata: Manifest = {"name": name, "labels": {**(extra_labels or {}), **common_labels(tenant)}}
    if namespace is not None:
        metadata["namespace"] = namespace
    if annotations:
        metadata["annotations"] = dict(annotations)
    return metadata


def released_meta(name: str, namespace: str, tenant: str) -> Manifest:
    """``metadata`` of an object left in a released namespace: the orphaned label, not the
    tenant's, so the tenant neither counts nor prunes it."""
    return {
        "name": name,
        "namespace": namespace,
        "labels": {
            constants.LABEL_MANAGED_BY: constants.MANAGED_BY,
            constants.LABEL_ORPHANED: tenant,
        },
    }
