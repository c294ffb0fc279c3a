"""Network isolation of a tenant namespace: ingress only from the tenant, its peers, the platform.

One NetworkPolicy selects every pod of the namespace, which makes ingress default-deny for
them, and allows it from (a) every namespace of the same tenant, (b) each ``allowFrom`` peer and
(c) the platform namespaces named in the operator settings. Egress is not restricted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from govcloud import constants
from govcloud.api.v1alpha1 import cloudtenant
from govcloud.desired import meta

Peer = dict[str, Any]


def tenant_peer(tenant: str) -> Peer:
    """Every namespace labelled as belonging to ``tenant``."""
    return {"namespaceSelector": {"matchLabels": {constants.LABEL_TENANT: tenant}}}


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


def peers(tenant: str, network: cloudtenant.NetworkSpec, platform: Sequence[str]) -> list[Peer]:
    """All ingress peers, the tenant's own first, without duplicates, in a stable order."""
    candidates = [
        tenant_peer(tenant),
        *(allow_from_peer(peer) for peer in network.allow_from),
        platform_peer(platform),
    ]
    found: list[Peer] = []
    for peer in candidates:
        if peer is not None and peer not in found:
            found.append(peer)
    return found


def build(
    tenant: str,
    namespace: str,
    network: cloudtenant.NetworkSpec,
    platform_namespaces: Sequence[str],
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
            "policyTypes": ["Ingress"],
            "ingress": [{"from": peers(tenant, network, platform_namespaces)}],
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
