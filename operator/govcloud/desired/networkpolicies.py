"""Network isolation of a tenant namespace: ingress only from the tenant, its peers, the
platform; egress only to DNS, the tenant, the platform, tenants that let it in, the extranet.

One NetworkPolicy selects every pod of the namespace, which makes both directions default-deny
for them. Ingress is allowed from (a) every namespace of the same tenant, (b) each
``allowFrom`` peer and (c) the platform namespaces named in the operator settings. Egress is
allowed to (a) the cluster DNS (port 53 in the DNS namespace), (b) every namespace of the same
tenant, (c) the platform namespaces, (d) the namespaces of every tenant whose ``allowFrom``
names this tenant — they carry the label ``allow-from.govcloud.io/<this tenant>``, which the
operator puts on the receiver's own namespaces, so neither tenant's pass reads the other —
(e) the e-government extranet (``GOVCLOUD_EXTRANET_CIDRS``) and (f) each ``egressTo`` network
the platform allows (``GOVCLOUD_EGRESS_ALLOWED_CIDRS``) for a tenant below security level 3;
a level-3 tenant gets the strict default (a) to (e) only. A selector-form ``allowFrom`` peer is
let in by the receiver, but a source that is itself an isolated tenant reaches it only through
a tenant-form entry (its egress has no way to know the receiver's selector matched it).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from govcloud import constants
from govcloud.api.v1alpha1 import cloudtenant
from govcloud.desired import meta

Peer = dict[str, Any]
ALLOW_FROM_PREFIX = f"allow-from.{constants.GROUP}/"
STRICT_LEVEL = 3  # MLPS (等保) level from which egress gets the strict default only
DNS_PORTS = ({"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53})


@dataclass(frozen=True)
class EgressPolicy:
    """What the platform lets isolated tenants reach: the extranet, the DNS namespace, and the
    networks tenants below level 3 may ask for."""

    extranet: Sequence[str] = ()
    allowed: Sequence[str] = ()
    dns_namespace: str = "kube-system"


@dataclass(frozen=True)
class Egress:
    """The egress the tenant gets: the platform's policy and the ``egressTo`` entries granted,
    and why each other entry was not."""

    policy: EgressPolicy = field(default_factory=EgressPolicy)
    granted: tuple[cloudtenant.EgressRule, ...] = ()
    refused: tuple[str, ...] = ()


def grant_egress(spec: cloudtenant.CloudTenantSpec, policy: EgressPolicy) -> Egress:
    """Each ``egressTo`` network granted if the tenant is below level 3 and the network lies
    inside one the platform allows; else refused, saying why."""
    granted: list[cloudtenant.EgressRule] = []
    refused: list[str] = []
    allowed = [ipaddress.ip_network(item) for item in policy.allowed]
    for rule in spec.network.egress_to:
        asked = ipaddress.ip_network(rule.cidr)
        if spec.security_level >= STRICT_LEVEL:
            refused.append(
                f"{rule.cidr}: security level {spec.security_level} gets the strict default"
            )
        elif not any(asked.version == net.version and asked.subnet_of(net) for net in allowed):  # type: ignore[arg-type]
            refused.append(f"{rule.cidr}: not inside a network the platform allows")
        else:
            granted.append(rule)
    return Egress(policy, tuple(granted), tuple(refused))


def tenant_peer(tenant: str) -> Peer:
    """Every namespace labelled as belonging to ``tenant``."""
    return {"namespaceSelector": {"matchLabels": {constants.LABEL_TENANT: tenant}}}


def allow_from_label(tenant: str) -> str:
    """The namespace label saying: ``tenant``'s pods may connect here (an allowFrom entry)."""
    return f"{ALLOW_FROM_PREFIX}{tenant}"


def door_labels(network: cloudtenant.NetworkSpec) -> dict[str, str]:
    """The labels a receiving tenant's namespaces carry for its tenant-form allowFrom peers."""
    if not network.isolated:
        return {}
    return {allow_from_label(peer.tenant): "true" for peer in network.allow_from if peer.tenant}


def allow_from_peer(peer: cloudtenant.NetworkPeer) -> Peer | None:
    """The policy peer for an ``allowFrom`` entry; both fields given means both must match.

    An entry that selects nothing yields None: an empty namespaceSelector would admit every
    namespace of the cluster, the opposite of what an incomplete entry means.
    """
    match_labels = dict(peer.namespace_selector or {})
    if peer.tenant:
        match_labels[constants.LABEL_TENANT] = peer.tenant
    if not match_labels:
        return None
    return {"namespaceSelector": {"matchLabels": match_labels}}


def platform_peer(platform_namespaces: Sequence[str]) -> Peer | None:
    """Platform namespaces (e.g. monitoring) by name; None when there are none."""
    if not platform_namespaces:
        return None
    expression = {
        "key": meta.LABEL_NAMESPACE_NAME,
        "operator": "In",
        "values": sorted(set(platform_namespaces)),
    }
    return {"namespaceSelector": {"matchExpressions": [expression]}}


def _unique(candidates: Sequence[Peer | None]) -> list[Peer]:
    found: list[Peer] = []
    for peer in candidates:
        if peer is not None and peer not in found:
            found.append(peer)
    return found


def peers(tenant: str, network: cloudtenant.NetworkSpec, platform: Sequence[str]) -> list[Peer]:
    """All ingress peers, the tenant's own first, without duplicates, in a stable order."""
    return _unique(
        [
            tenant_peer(tenant),
            *(allow_from_peer(peer) for peer in network.allow_from),
            platform_peer(platform),
        ]
    )


def egress_rules(tenant: str, platform: Sequence[str], egress: Egress) -> list[dict[str, Any]]:
    """The egress the namespace's pods get, DNS first."""
    dns = {meta.LABEL_NAMESPACE_NAME: egress.policy.dns_namespace}
    inside = _unique(
        [
            tenant_peer(tenant),
            platform_peer(platform),
            {"namespaceSelector": {"matchLabels": {allow_from_label(tenant): "true"}}},
        ]
    )
    rules: list[dict[str, Any]] = [
        {"to": [{"namespaceSelector": {"matchLabels": dns}}], "ports": list(DNS_PORTS)},
        {"to": inside},
    ]
    if egress.policy.extranet:
        rules.append({"to": [{"ipBlock": {"cidr": cidr}} for cidr in egress.policy.extranet]})
    for rule in egress.granted:
        entry: dict[str, Any] = {"to": [{"ipBlock": {"cidr": rule.cidr}}]}
        if rule.ports:
            entry["ports"] = [{"protocol": p.protocol, "port": p.port} for p in rule.ports]
        rules.append(entry)
    return rules


def build(
    tenant: str,
    namespace: str,
    network: cloudtenant.NetworkSpec,
    platform_namespaces: Sequence[str],
    egress: Egress | None = None,
) -> meta.Manifest | None:
    """The ``govcloud-isolation`` policy of one namespace; None when the tenant is not isolated."""
    if not network.isolated:
        return None
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta.object_meta(meta.NETWORK_POLICY_NAME, namespace, tenant),
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": peers(tenant, network, platform_namespaces)}],
            "egress": egress_rules(tenant, platform_namespaces, egress or Egress()),
        },
    }


def released(tenant: str, namespace: str) -> meta.Manifest:
    """The isolation a released namespace keeps: no ingress at all (nobody looks after it)."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta.released_meta(meta.RELEASED_NAME, namespace, tenant),
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    }
