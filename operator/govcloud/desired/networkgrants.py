"""A NetworkGrant's opening, pure: its state at a given time, and the two kinds of
NetworkPolicy an active grant adds (NetworkPolicies are additive, so these only ever open).

- In the provider namespace: ingress to the Service's pods (its selector) from the consumer
  namespaces (by name *and* the consumer tenant's label), on the granted ports only.
- In each consumer namespace: egress from every pod to those pods, on those ports only.

They carry the managed-by label and ``govcloud.io/network-grant: <grant uid>``, never
``govcloud.io/tenant``: a tenant's pass prunes what carries its tenant label, so it neither
counts nor deletes them; the grant's pass (and the sweep for grants gone) prunes them by uid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from govcloud import constants
from govcloud.api.v1alpha1 import networkgrant
from govcloud.desired import meta

LABEL_GRANT = f"{constants.GROUP}/network-grant"
LABEL_SIDE = f"{constants.GROUP}/grant-side"
ANNOTATION_GRANT = f"{constants.GROUP}/network-grant"
NAME_PREFIX = "govcloud-grant-"

Manifest = dict[str, Any]
State = networkgrant.GrantState


@dataclass(frozen=True)
class Target:
    """What a grant opens: the pods behind the Service and the ports they serve it on."""

    selector: Mapping[str, str]
    ports: tuple[tuple[str, int | str], ...]  # (protocol, targetPort)

    def describe(self) -> str:
        return ",".join(f"{port}/{protocol}" for protocol, port in self.ports)


def resolve(service: Manifest | None, wanted: Sequence[str]) -> tuple[Target | None, list[str]]:
    """The Service's pods and the target ports of the granted Service ports, or why not."""
    if service is None:
        return None, ["the Service does not exist"]
    spec = service.get("spec") or {}
    selector = dict(spec.get("selector") or {})
    problems: list[str] = []
    if not selector:
        problems.append(
            "the Service selects no pods (no spec.selector): a grant opens the pods behind a"
            " Service, never a whole namespace"
        )
    declared = list(spec.get("ports") or [])
    ports: list[tuple[str, int | str]] = []
    for name in wanted:
        match = next(
            (p for p in declared if p.get("name") == name or str(p.get("port")) == name), None
        )
        if match is None:
            problems.append(f"the Service has no port {name}")
            continue
        target = match.get("targetPort", match.get("port"))
        entry = (str(match.get("protocol") or "TCP"), target)
        if entry not in ports:
            ports.append(entry)
    if problems:
        return None, problems
    return Target(selector, tuple(ports)), []


def expiry(
    created: datetime, asked: datetime | None, default: timedelta, longest: timedelta
) -> tuple[datetime, str | None]:
    """When the grant ends, and why it is invalid if it asks for longer than the maximum."""
    if asked is None:
        return created + default, None
    if asked > created + longest:
        return asked, (
            f"spec.expires {asked.isoformat()} is more than {longest.days} days after the grant"
            " was filed; ask for less (the platform's maximum)"
        )
    return asked, None


def state(
    spec: networkgrant.NetworkGrantSpec,
    *,
    now: datetime,
    expires_at: datetime,
    consented: bool,
    problems: Sequence[str],
) -> State:
    """Revoked and expired are final; an unresolved grant opens nothing; else consent decides."""
    if spec.revocation is not None:
        return State.REVOKED
    if now >= expires_at:
        return State.EXPIRED
    if problems:
        return State.INVALID
    return State.ACTIVE if consented else State.PENDING


def policy_name(uid: str) -> str:
    return f"{NAME_PREFIX}{uid}"


def _meta(uid: str, namespace: str, side: str, grant: str) -> Manifest:
    return {
        "name": policy_name(uid),
        "namespace": namespace,
        "labels": {
            constants.LABEL_MANAGED_BY: constants.MANAGED_BY,
            LABEL_GRANT: uid,
            LABEL_SIDE: side,
        },
        "annotations": {ANNOTATION_GRANT: grant},
    }


def _ports(target: Target) -> list[Manifest]:
    return [{"protocol": protocol, "port": port} for protocol, port in target.ports]


def consumer_peer(consumer_tenant: str, namespaces: Sequence[str]) -> Manifest:
    """The consumer namespaces by name, and only while they are still the consumer's."""
    return {
        "namespaceSelector": {
            "matchLabels": {constants.LABEL_TENANT: consumer_tenant},
            "matchExpressions": [
                {"key": meta.LABEL_NAMESPACE_NAME, "operator": "In", "values": sorted(namespaces)}
            ],
        }
    }


def policies(
    *,
    uid: str,
    grant: str,
    provider_namespace: str,
    provider_tenant: str,
    consumer_tenant: str,
    consumer_namespaces: Sequence[str],
    target: Target,
) -> list[Manifest]:
    """The ingress policy in the provider namespace and an egress policy per consumer one."""
    ingress: Manifest = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(uid, provider_namespace, "ingress", grant),
        "spec": {
            "podSelector": {"matchLabels": dict(target.selector)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [consumer_peer(consumer_tenant, consumer_namespaces)],
                    "ports": _ports(target),
                }
            ],
        },
    }
    to = {
        "namespaceSelector": {
            "matchLabels": {
                constants.LABEL_TENANT: provider_tenant,
                meta.LABEL_NAMESPACE_NAME: provider_namespace,
            }
        },
        "podSelector": {"matchLabels": dict(target.selector)},
    }
    egress = [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _meta(uid, namespace, "egress", grant),
            "spec": {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [{"to": [to], "ports": _ports(target)}],
            },
        }
        for namespace in sorted(set(consumer_namespaces))
    ]
    return [ingress, *egress]
