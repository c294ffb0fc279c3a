"""Where a tenant lives: the hub, or the sub-center its spec.placement names if the site fits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pydantic

from govcloud import constants
from govcloud.api.v1alpha1 import cloudtenant, subcenter
from govcloud.federation import placement
from govcloud.k8s import client, clusters

PLACED = "Placed"
SUBCENTER_UNAVAILABLE = "SubCenterUnavailable"

Manifest = dict[str, Any]


@dataclass(frozen=True)
class Target:
    """The cluster a tenant's namespaces live in, or why there is none right now."""

    name: str
    cluster: client.Cluster | None
    reason: str
    message: str

    @property
    def placed(self) -> bool:
        return self.cluster is not None


def current_cluster(body: Manifest) -> str | None:
    """The cluster the tenant's namespaces were last placed in, from its status."""
    placed = ((body.get("status") or {}).get("placement") or {}).get("cluster")
    return str(placed) if placed else None


def resolve(
    hub: client.Cluster,
    registry: clusters.ClusterRegistry | None,
    body: Manifest,
    spec: cloudtenant.CloudTenantSpec,
    *,
    deleting: bool = False,
) -> Target:
    """The tenant's cluster: the hub without placement, else its sub-center if the site fits.

    A tenant already placed on a site stays there while the site is retired or briefly not
    Ready (nothing is ever abandoned); a deleting tenant is always sent to its site so that
    its deletion policy can be carried out there.
    """
    if spec.placement is None:
        return Target(cloudtenant.HUB_CLUSTER, hub, PLACED, "the tenant lives on the hub")
    site_name = spec.placement.sub_center
    site = hub.get(constants.API_VERSION, "SubCenter", site_name)
    if site is None:
        verdict = placement.not_found(site_name)
        return Target(site_name, None, verdict.reason, verdict.message)
    try:
        site_spec = subcenter.SubCenterSpec.model_validate(site.get("spec") or {})
    except pydantic.ValidationError:
        return Target(
            site_name,
            None,
            SUBCENTER_UNAVAILABLE,
            f"SubCenter {site_name} has an invalid spec; see its Ready condition",
        )
    if not deleting:
        verdict = placement.decide(
            spec.security_level,
            spec.quota,
            site_name,
            site_spec,
            site_facts(hub, site, body["metadata"]["name"], site_name),
            already_placed=current_cluster(body) == site_name,
        )
        if not verdict.placed:
            return Target(site_name, None, verdict.reason, verdict.message)
    return connect(hub, registry, site_name, site_spec)


def holds_place(tenant: Manifest, site_name: str) -> bool:
    """Whether a tenant whose spec names `site_name` holds a place (and its quota) there.

    A tenant placed there does, and so does one not judged yet (two tenants asking at once
    cannot both take the last room); a tenant whose placement was refused holds nothing, so
    it neither crowds out the tenants that fit nor keeps the site from being deleted.
    """
    if ((tenant.get("spec") or {}).get("placement") or {}).get("subCenter") != site_name:
        return False
    if current_cluster(tenant) == site_name:
        return True
    return not any(
        item.get("type") == PLACED and item.get("status") == "False"
        for item in (tenant.get("status") or {}).get("conditions") or []
    )


def site_facts(
    hub: client.Cluster, site: Manifest, tenant: str, site_name: str
) -> placement.SiteFacts:
    status = site.get("status") or {}
    ready = any(
        item.get("type") == "Ready" and item.get("status") == "True"
        for item in status.get("conditions") or []
    )
    others = [
        (item.get("spec") or {}).get("quota") or {}
        for item in hub.list(constants.API_VERSION, "CloudTenant")
        if holds_place(item, site_name) and item["metadata"]["name"] != tenant
    ]
    allocated = placement.total(placement.demand(_strings(quota)) for quota in others)
    allocatable = {
        key: str(value) for key, value in (status.get("allocatable") or {}).items() if value
    }
    return placement.SiteFacts(ready=ready, allocatable=allocatable, allocated=allocated)


def connect(
    hub: client.Cluster,
    registry: clusters.ClusterRegistry | None,
    site_name: str,
    site_spec: subcenter.SubCenterSpec,
) -> Target:
    if registry is None:
        return Target(site_name, None, SUBCENTER_UNAVAILABLE, "sub-centers are not enabled")
    ref = site_spec.kubeconfig_secret_ref
    try:
        credentials = clusters.read_credentials(
            hub, clusters.SecretRef(ref.name, ref.namespace, ref.key)
        )
        cluster = registry.client_for(site_name, credentials)
    except clusters.CredentialsError as error:
        return Target(
            site_name,
            None,
            SUBCENTER_UNAVAILABLE,
            f"cannot use the credentials of SubCenter {site_name}: {error.message}",
        )
    return Target(site_name, cluster, PLACED, f"the tenant lives on SubCenter {site_name}")


def _strings(quota: Mapping[str, Any]) -> dict[str, str]:
    return {key: str(value) for key, value in quota.items()}
