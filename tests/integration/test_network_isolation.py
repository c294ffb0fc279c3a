"""Tenant isolation, both directions, proven by an independent NetworkPolicy engine (issue #16,
items 1 and 3).

The local control plane has no network plugin, so the policies the operator writes are judged
by cyclonus (`govcloud.dev.netpol`): it reads every NetworkPolicy from the API server, and the
namespaces and running pods are read back from it too. The test states, cell by cell, who must
reach whom on each port, and fails if a single cell differs.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import _tenant_helpers as helpers
import pytest

from govcloud.dev import cluster, netpol, testing

pytestmark = pytest.mark.integration

PORTS = (netpol.Port(80), netpol.Port(5432), netpol.Port(53, "UDP"))
PLATFORM = "monitoring"  # GOVCLOUD_PLATFORM_NAMESPACES of the integration operator


@dataclass(frozen=True)
class Layout:
    """Who owns which namespace; `doors[t]` are the tenants `t` lets in through allowFrom."""

    owner: dict[str, str | None]
    doors: dict[str, set[str]]
    isolated: set[str]

    def expected(self, source: str, destination: str) -> bool:
        """The model the operator promises (docs/network.md): a connection needs both ends."""
        return self.ingress(source, destination) and self.egress(source, destination)

    def ingress(self, source: str, destination: str) -> bool:
        """Into an isolated tenant's namespace only from its own namespaces, its allowFrom
        tenants and the platform namespaces; into anything else from anywhere."""
        target = self.owner[destination]
        if target is None or target not in self.isolated:
            return True
        origin = self.owner[source]
        if origin == target or source == PLATFORM:
            return True
        return origin is not None and origin in self.doors[target]

    def egress(self, source: str, destination: str) -> bool:
        """Out of an isolated tenant's namespace only to its own namespaces, the platform
        namespaces and isolated tenants that let it in (DNS and the extranet have no probe
        here); out of anything else to anywhere."""
        origin = self.owner[source]
        if origin is None or origin not in self.isolated:
            return True
        target = self.owner[destination]
        if target == origin or destination == PLATFORM:
            return True
        return target in self.isolated and origin in self.doors[target]


tenants = helpers.tenants


@pytest.fixture
def layout(kubectl: testing.Kubectl, tenants: helpers.Tenants) -> Layout:
    suffix = uuid.uuid4().hex[:5]
    tax, health, parks, open_ = (f"{name}-{suffix}" for name in ("tax", "health", "parks", "open"))
    specs = {
        tax: {"namespaces": [{"name": "web"}, {"name": "db"}]},
        health: {"namespaces": [{"name": "web"}]},
        parks: {"namespaces": [{"name": "web"}], "network": {"allowFrom": [{"tenant": tax}]}},
        open_: {"namespaces": [{"name": "web"}], "network": {"isolated": False}},
    }
    for name, spec in specs.items():
        manifest = helpers.tenant_manifest(name)
        manifest["spec"].update(spec)
        tenants.apply(manifest)
    shared = f"shared-{suffix}"
    platform_made = kubectl.get("namespace", PLATFORM) is None
    for namespace in (shared, *([PLATFORM] if platform_made else [])):
        kubectl("create", "namespace", namespace)
        tenants.track_namespace(namespace)
    owner: dict[str, str | None] = {shared: None, PLATFORM: None}
    for name in specs:
        body = helpers.wait_phase(kubectl, name, "Active")
        for entry in body["status"]["namespaces"]:
            owner[entry["name"]] = name
    for namespace in owner:
        helpers.create(kubectl, helpers.restricted_pod("probe", namespace))
    _wait_running(kubectl, list(owner))
    doors = {tax: set(), health: set(), parks: {tax}, open_: set()}
    return Layout(owner, doors, isolated={tax, health, parks})


def _wait_running(kubectl: testing.Kubectl, namespaces: list[str]) -> None:
    for namespace in namespaces:
        testing.eventually(
            lambda namespace=namespace: (
                (kubectl.get("pod", "probe", namespace) or {}).get("status") or {}
            ).get("podIP"),
            timeout=60,
            what=f"pod {namespace}/probe to run with an IP",
        )


def test_the_operators_policies_isolate_tenants_cell_by_cell(
    hub: cluster.ControlPlane, layout: Layout
) -> None:
    tables = netpol.probe(hub.kubeconfig, sorted(layout.owner), PORTS)
    pods = [f"{namespace}/probe" for namespace in sorted(layout.owner)]
    for port, table in tables.items():
        wrong = [
            f"{source} -> {destination} on {port}: engine says "
            f"{'allowed' if table.allowed(source, destination) else 'refused'}"
            for source in pods
            for destination in pods
            if table.allowed(source, destination)
            != layout.expected(source.split("/")[0], destination.split("/")[0])
        ]
        assert not wrong, "\n".join(wrong)
        assert len(table.combined) == len(pods) ** 2
    # The table is not vacuous: isolation refuses something in each direction.
    refused = sum(not t.allowed(s, d) for t in tables.values() for s in pods for d in pods)
    assert refused > 0
    out_only = [
        (s, d)
        for s in pods
        for d in pods
        if layout.ingress(s.split("/")[0], d.split("/")[0])
        and not layout.egress(s.split("/")[0], d.split("/")[0])
    ]
    assert out_only, "some connection must be refused by egress alone (e.g. into the shared one)"
