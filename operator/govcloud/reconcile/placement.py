"""Where a tenant lives: the hub, or the sub-center its spec.placement names if the site fits."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Set
from dataclasses import dataclass
from typing import Any

import pydantic

from govcloud import constants
from govcloud.api.v1alpha1 import cloudtenant, subcenter
from govcloud.federation import condition as federation_condition
from govcloud.federation import credentials, identity, placement
from govcloud.k8s import cache as caches
from govcloud.k8s import client, clusters

log = logging.getLogger(__name__)

PLACED = "Placed"
SUBCENTER_UNAVAILABLE = "SubCenterUnavailable"
INVALID_KUBECONFIG = "InvalidKubeconfig"

Manifest = dict[str, Any]


@dataclass(frozen=True)
class Target:
    """The cluster a tenant's namespaces live in, or why there is none right now."""

    name: str
    cluster: client.Cluster | None
    reason: str
    message: str
    grant: placement.Grant | None = None  # for a tenant on a sub-center: the quota it may have
    unreachable: str = ""  # the site's probes say it does not answer: why (nothing is dialled)

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
    site_name = placed_on(body, spec)
    if site_name == cloudtenant.HUB_CLUSTER:
        return Target(cloudtenant.HUB_CLUSTER, hub, PLACED, "the tenant lives on the hub")
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
    if deleting:
        return connect(hub, registry, site_name, site_spec, site)
    held_unreachable = unreachable(site) if current_cluster(body) == site_name else ""
    if held_unreachable and registry is not None:
        return reported_unreachable(registry, site_name, site_spec, held_unreachable)
    return admitted_target(hub, registry, site, body, spec, site_spec)


def admitted_target(
    hub: client.Cluster,
    registry: clusters.ClusterRegistry | None,
    site: Manifest,
    body: Manifest,
    spec: cloudtenant.CloudTenantSpec,
    site_spec: subcenter.SubCenterSpec,
) -> Target:
    """The site, if it admits the tenant (and its identity is verified), with its grant."""
    site_name = site["metadata"]["name"]
    verdict = admit(hub, site, body, spec, site_spec)
    if not verdict.placed:
        return Target(site_name, None, verdict.reason, verdict.message)
    target = connect(hub, registry, site_name, site_spec, site)
    if target.placed:
        target = dataclasses.replace(
            target, grant=grant(hub, site, body, spec), unreachable=unreachable(site)
        )
    return target


def reported_unreachable(
    registry: clusters.ClusterRegistry,
    site_name: str,
    site_spec: subcenter.SubCenterSpec,
    why: str,
) -> Target:
    """A tenant placed on a site its probes hold unreachable: the site's client (nothing is
    dialled, not even to verify the site's identity) and why, for the pass to report it."""
    registry.gate(site_name).observe(why)
    try:
        opened = open_site(registry, site_name, site_spec)
    except clusters.CredentialsError as error:
        return Target(
            site_name,
            None,
            SUBCENTER_UNAVAILABLE,
            f"cannot use the credentials of SubCenter {site_name}: {error.message}",
        )
    return Target(
        site_name,
        opened.cluster,
        PLACED,
        f"the tenant lives on SubCenter {site_name}",
        unreachable=why,
    )


def unreachable(site: Manifest) -> str:
    """Why the site's probes hold it unreachable (its Reachable condition, after the failure
    threshold), or "": a tenant's pass then reads no stale cache and dials nothing there."""
    for item in (site.get("status") or {}).get("conditions") or []:
        if item.get("type") == federation_condition.REACHABLE and item.get("status") == "False":
            return str(item.get("message") or "the sub-center does not answer")
    return ""


def placed_on(body: Manifest, spec: cloudtenant.CloudTenantSpec) -> str:
    """The cluster the tenant is managed in: where it was placed, else where its spec asks.

    Placement cannot change once placed (a rule at the API server); a tenant stored before
    that rule with a changed spec.placement stays managed where its namespaces are, so that
    no namespace is stranded and removed members lose their access there.
    """
    return current_cluster(body) or (
        spec.placement.sub_center if spec.placement else cloudtenant.HUB_CLUSTER
    )


class NotLeadingError(RuntimeError):
    """This replica does not hold the Lease (any more): it admits nothing to a site."""


class Admissions:
    """Per site: a lock that makes placement decisions one at a time, and who it admitted.

    The Lease keeps one replica active, so an in-process lock held across "count what the
    other tenants hold -> decide -> record" is enough to never over-commit a site. That is
    fenced: `fence` (the operator sets it to "this replica's Lease was renewed within its
    renew deadline") is checked under the lock before each admission or growth is decided, so
    a replica that lost the Lease mid-pass admits nothing. A tenant admitted here holds its
    place before its status says so; after a restart nothing is remembered and the
    CloudTenant statuses alone are the truth.
    """

    def __init__(self) -> None:
        self.fence: Callable[[], bool] = lambda: True
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._admitted: dict[str, frozenset[str]] = {}
        self._grown: dict[tuple[str, str], dict[str, str]] = {}

    def lock(self, site_name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(site_name, threading.Lock())

    def check_fence(self, site_name: str) -> None:
        """NotLeadingError unless this replica may admit tenants now."""
        if not self.fence():
            raise NotLeadingError(
                f"no admission to SubCenter {site_name}: this replica does not hold the Lease"
            )

    def forget_tenant(self, key: str) -> None:
        """Drop the growth remembered of a tenant (it is gone): memory does not grow with churn."""
        with self._guard:
            for found in [found for found in self._grown if found[1] == key]:
                del self._grown[found]
            self._admitted = {site: admitted - {key} for site, admitted in self._admitted.items()}

    def reset(self) -> None:
        """Forget every admission and growth not yet in a status: a replica that starts to
        lead takes the statuses as the truth, as after a restart (what it admitted in an
        earlier term may never have been recorded, and the other replica decided since)."""
        with self._guard:
            self._admitted.clear()
            self._grown.clear()

    def forget(self, site_name: str) -> None:
        """Drop who was admitted to a site and their growth (it is gone); its lock stays, in
        case a pass still holds it."""
        with self._guard:
            self._admitted.pop(site_name, None)
            for key in [key for key in self._grown if key[0] == site_name]:
                del self._grown[key]

    def size(self) -> int:
        """Admissions and growths remembered (not yet in a status), over every site."""
        with self._guard:
            return sum(len(admitted) for admitted in self._admitted.values()) + len(self._grown)

    def admitted(self, site_name: str) -> frozenset[str]:
        with self._guard:
            return self._admitted.get(site_name, frozenset())

    def record(self, site_name: str, admitted: frozenset[str]) -> None:
        with self._guard:
            self._admitted[site_name] = admitted

    def grown(self, site_name: str) -> dict[str, dict[str, str]]:
        """Per tenant, the cpu/memory/pods granted by a growth its status may not show yet."""
        with self._guard:
            return {
                key: dict(amounts)
                for (site, key), amounts in self._grown.items()
                if site == site_name
            }

    def record_growth(self, site_name: str, key: str, amounts: dict[str, str] | None) -> None:
        with self._guard:
            if amounts is None:
                self._grown.pop((site_name, key), None)
            else:
                self._grown[(site_name, key)] = amounts


ADMISSIONS = Admissions()


def admit(
    hub: client.Cluster,
    site: Manifest,
    body: Manifest,
    spec: cloudtenant.CloudTenantSpec,
    site_spec: subcenter.SubCenterSpec,
) -> placement.Verdict:
    """The verdict on the tenant's site; a new placement is decided and recorded under its lock.

    A tenant whose status already places it there is not checked for capacity again (only
    new placements are), so its pass lists no CloudTenant at all.
    """
    site_name = site["metadata"]["name"]
    if current_cluster(body) == site_name:
        return _decide(spec, site_name, site_spec, site_facts(site, []), already_placed=True)
    key = tenant_key(body)
    with ADMISSIONS.lock(site_name):
        ADMISSIONS.check_fence(site_name)
        tenants = asking_for(hub, site_name)
        admitted = ADMISSIONS.admitted(site_name)
        others = holding_place(tenants, site_name, admitted, besides=key)
        verdict = _decide(spec, site_name, site_spec, site_facts(site, others))
        log.info(
            "SubCenter %s: tenant %s %s (others holding a place: %s)",
            site_name,
            body["metadata"]["name"],
            "admitted" if verdict.placed else f"refused ({verdict.reason})",
            ", ".join(sorted(item["metadata"]["name"] for item in others)) or "none",
        )
        asking = {tenant_key(item) for item in tenants if asks_for(item, site_name)}
        ADMISSIONS.record(
            site_name, placement.still_admitted(admitted, asking | {key}, key, verdict.placed)
        )
        if verdict.placed:
            record_placement(hub, body, site_name)
    return verdict


def record_placement(hub: client.Cluster, body: Manifest, site_name: str) -> None:
    """Write the admission into the tenant's status before anything is made on the site, so
    that a replica taking over counts it even if this one is stopped mid-pass (checked against
    the Lease right before the write, under the site's lock)."""
    ADMISSIONS.check_fence(site_name)
    hub.patch_status(
        constants.API_VERSION,
        "CloudTenant",
        body["metadata"]["name"],
        {"placement": {"cluster": site_name, "message": None}},
    )


def grant(
    hub: client.Cluster, site: Manifest, body: Manifest, spec: cloudtenant.CloudTenantSpec
) -> placement.Grant:
    """The quota a tenant on the site may have: growth beyond its last grant must fit.

    Its last grant is the quota its status says was applied there (none yet: a new placement,
    already judged whole by `admit`). Only growth takes the site's lock and lists the tenants.
    """
    site_name = site["metadata"]["name"]
    key = tenant_key(body)
    granted = granted_quota(body)
    if current_cluster(body) != site_name or not granted:
        return placement.Grant(dict(spec.quota), [])
    if not placement.grows(spec.quota, granted):
        ADMISSIONS.record_growth(site_name, key, None)  # the status shows all it holds
        return placement.Grant(dict(spec.quota), [])
    with ADMISSIONS.lock(site_name):
        ADMISSIONS.check_fence(site_name)
        tenants = asking_for(hub, site_name)
        others = holding_place(tenants, site_name, ADMISSIONS.admitted(site_name), besides=key)
        decided = placement.grant(spec.quota, granted, site_facts(site, others))
        ADMISSIONS.record_growth(site_name, key, placement.demand(decided.quota))
    return decided


def granted_quota(tenant: Manifest) -> dict[str, str]:
    """The quota last applied for the tenant (its status.quota.hard; empty before that)."""
    return _strings(((tenant.get("status") or {}).get("quota") or {}).get("hard") or {})


def _decide(
    spec: cloudtenant.CloudTenantSpec,
    site_name: str,
    site_spec: subcenter.SubCenterSpec,
    facts: placement.SiteFacts,
    *,
    already_placed: bool = False,
) -> placement.Verdict:
    return placement.decide(
        spec.security_level,
        spec.quota,
        site_name,
        site_spec,
        facts,
        already_placed=already_placed,
    )


def tenant_key(tenant: Manifest) -> str:
    """What identifies a tenant in the admissions: its uid (a re-created tenant is another)."""
    metadata = tenant["metadata"]
    return str(metadata.get("uid") or metadata["name"])


def asking_for(hub: client.Cluster, site_name: str) -> list[Manifest]:
    """The CloudTenants whose spec names the site (from the cache, copying only those)."""
    return caches.select(
        hub, constants.API_VERSION, "CloudTenant", lambda item: asks_for(item, site_name)
    )


def asks_for(tenant: Manifest, site_name: str) -> bool:
    """Whether the tenant's spec.placement names `site_name`."""
    return ((tenant.get("spec") or {}).get("placement") or {}).get("subCenter") == site_name


def holding_place(
    tenants: Iterable[Manifest], site_name: str, admitted: Set[str], *, besides: str
) -> list[Manifest]:
    """The tenants, other than `besides`, that hold a place on the site."""
    return [
        item
        for item in tenants
        if tenant_key(item) != besides and holds_place(item, site_name, admitted)
    ]


def holds_place(tenant: Manifest, site_name: str, admitted: Set[str] | None = None) -> bool:
    """Whether a tenant whose spec names `site_name` holds a place (and its quota) there.

    A tenant placed there does (its status says so), and so does one this operator admitted
    whose status does not say so yet (`admitted`, by default what `ADMISSIONS` remembers). A
    tenant refused or not judged yet holds nothing: it neither crowds out the tenants that fit
    nor keeps the site from being deleted.
    """
    if not asks_for(tenant, site_name):
        return False
    if current_cluster(tenant) == site_name:
        return True
    held = ADMISSIONS.admitted(site_name) if admitted is None else admitted
    return tenant_key(tenant) in held


def site_facts(site: Manifest, others: Iterable[Manifest]) -> placement.SiteFacts:
    """The site's readiness and allocatable (its status), and what `others` hold there."""
    status = site.get("status") or {}
    ready = any(
        item.get("type") == "Ready" and item.get("status") == "True"
        for item in status.get("conditions") or []
    )
    site_name = site["metadata"]["name"]
    grown = ADMISSIONS.grown(site_name)
    allocated = placement.total(holding(item, site_name, grown) for item in others)
    allocatable = {
        key: str(value) for key, value in (status.get("allocatable") or {}).items() if value
    }
    return placement.SiteFacts(ready=ready, allocatable=allocatable, allocated=allocated)


def holding(
    tenant: Manifest, site_name: str, grown: Mapping[str, dict[str, str]]
) -> dict[str, str]:
    """What a tenant holding a place on the site counts there: its quota, but not growth the
    site never granted; all of it when it is admitted but not placed there yet."""
    spec_quota = _strings((tenant.get("spec") or {}).get("quota") or {})
    granted = granted_quota(tenant) if current_cluster(tenant) == site_name else {}
    return placement.larger(placement.held(spec_quota, granted), grown.get(tenant_key(tenant), {}))


@dataclass(frozen=True)
class Site:
    """A client for a site, built from the allow-listed fields of its kubeconfig Secret."""

    cluster: client.Cluster
    secret: clusters.Credentials  # the kubeconfig Secret's content and fingerprint
    endpoint: credentials.Connection

    def ca_fingerprint(self) -> str:
        return identity.ca_fingerprint(self.endpoint.ca_pem)


def open_site(
    registry: clusters.ClusterRegistry,
    site_name: str,
    site_spec: subcenter.SubCenterSpec,
    *,
    fresh: bool = False,
) -> Site:
    """The site's client; CredentialsError (reason, message) if the Secret or kubeconfig is not
    usable. The Secret is read only from the registry's namespace, and nothing of the
    kubeconfig but its server, CA, client certificate and key, and token is used.

    Only a probe reads the Secret (`fresh`); passes use what the site's last probe read (a
    rotation takes effect on the next probe), so a tenant's pass costs no GET of it.
    """
    ref = site_spec.kubeconfig_secret_ref
    found = registry.read_credentials(
        clusters.SecretRef(ref.name, ref.namespace, ref.key), site=site_name, fresh=fresh
    )
    try:
        endpoint = credentials.connection(found.kubeconfig)
    except credentials.KubeconfigError as error:
        raise clusters.CredentialsError(INVALID_KUBECONFIG, str(error)) from None
    return Site(registry.client_for(site_name, found.fingerprint, endpoint), found, endpoint)


def connect(
    hub: client.Cluster,
    registry: clusters.ClusterRegistry | None,
    site_name: str,
    site_spec: subcenter.SubCenterSpec,
    site: Manifest | None = None,
) -> Target:
    """The site's client, only while it reaches the cluster whose identity the SubCenter pinned.

    `site` is the SubCenter (read from the hub when not given).
    """
    if registry is None:
        return Target(site_name, None, SUBCENTER_UNAVAILABLE, "sub-centers are not enabled")
    try:
        opened = open_site(registry, site_name, site_spec)
    except clusters.CredentialsError as error:
        return Target(
            site_name,
            None,
            SUBCENTER_UNAVAILABLE,
            f"cannot use the credentials of SubCenter {site_name}: {error.message}",
        )
    body = site if site is not None else hub.get(constants.API_VERSION, "SubCenter", site_name)
    registry.gate(site_name).observe(unreachable(body or {}))
    refused = unverified(registry, site_name, opened, body)
    if refused is not None:
        return Target(site_name, None, SUBCENTER_UNAVAILABLE, refused)
    return Target(site_name, opened.cluster, PLACED, f"the tenant lives on SubCenter {site_name}")


def unverified(
    registry: clusters.ClusterRegistry, site_name: str, opened: Site, body: Manifest | None
) -> str | None:
    """Why nothing may be written to the site now (None: it is the cluster its status pins)."""
    pinned = identity.from_status((body or {}).get("status"))
    if pinned is None:
        return (
            f"SubCenter {site_name} has no verified identity yet; nothing is written there"
            " before a probe pins it"
        )
    try:
        uid = registry.kube_system_uid(site_name, opened.secret.fingerprint)
    except client.ApiError:
        return (
            f"the identity of SubCenter {site_name} cannot be read (its kube-system"
            " namespace); nothing is written there until it can"
        )
    if identity.Identity(uid, opened.ca_fingerprint()) != pinned:
        return (
            f"SubCenter {site_name}'s credentials reach another cluster than the one pinned in"
            " its status; nothing is written there: see its IdentityVerified condition"
        )
    return None


def _strings(quota: Mapping[str, Any]) -> dict[str, str]:
    return {key: str(value) for key, value in quota.items()}
