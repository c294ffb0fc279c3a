"""A burst of tenants asking for one sub-center at once never over-commits it."""

from __future__ import annotations

import json
from typing import Any

import _subcenter_helpers as sc
import _tenant_helpers as helpers

from govcloud.desired import quantity
from govcloud.dev import cluster, testing

BURST = 8
FITS = 3  # each tenant asks for just over a quarter of the site's pods: three fit, not four

Manifest = dict[str, Any]


def test_a_burst_of_tenants_places_exactly_what_fits(
    kubectl: testing.Kubectl,
    subcenter: cluster.ControlPlane,
    sites: sc.Sites,
    placed: sc.PlacedTenants,
) -> None:
    site = sites.create(helpers.unique("burst"), sc.kubeconfig_of(subcenter))
    body = sites.wait(site, ready_with_room, "Ready with allocatable", 60)
    pods = int(quantity.parse(allocatable(body)["pods"]))
    quota = {"requests.cpu": "1", "pods": str(pods // (FITS + 1) + 1)}
    assert FITS * int(quota["pods"]) <= pods < (FITS + 1) * int(quota["pods"])

    names = [helpers.unique(f"burst{index}") for index in range(BURST)]
    manifests = {name: sc.placed_manifest(name, site, quota=quota) for name in names}
    placed.names.extend(names)
    with sc.watching(kubectl, "subcenter", site) as watch:
        apply_all(kubectl, list(manifests.values()))
        first = wait_decided(kubectl, names)
        winners = sorted(name for name, tenant in first.items() if active(tenant))
        # Every refused tenant asks again at once (an edit of its spec): still no room.
        apply_all(kubectl, [edited(manifests[name]) for name in names if name not in winners])
        outcomes = wait_decided(kubectl, names)
        final = sites.wait(
            site, lambda body: sc.tenants_listed(body) == winners, "the placed tenants listed"
        )
    assert len(winners) == FITS, statuses(first)
    assert sorted(name for name, tenant in outcomes.items() if active(tenant)) == winners, statuses(
        outcomes
    )
    for name in set(names) - set(winners):
        assert "cluster" not in (outcomes[name]["status"].get("placement") or {})
        assert helpers.condition(outcomes[name], "Placed")["message"].startswith(
            "the tenant's quota does not fit"
        )
    assert final["status"]["allocated"] == {
        "cpu": str(FITS),
        "pods": str(FITS * int(quota["pods"])),
    }
    for version in [body, *watch.versions()]:
        assert within(version), version.get("status")


def apply_all(kubectl: testing.Kubectl, manifests: list[Manifest]) -> None:
    """Create or update all the manifests in one go, so their reconciles overlap."""
    kubectl.apply({"apiVersion": "v1", "kind": "List", "items": manifests})


def edited(manifest: Manifest) -> Manifest:
    spec = {**manifest["spec"], "displayName": f"{manifest['spec']['displayName']} (再次申请)"}
    return {**manifest, "spec": spec}


def wait_decided(kubectl: testing.Kubectl, names: list[str]) -> dict[str, Manifest]:
    return {name: helpers.wait_tenant(kubectl, name, decided, "decided") for name in names}


def statuses(tenants: dict[str, Manifest]) -> str:
    return json.dumps(
        {name: body.get("status") for name, body in tenants.items()}, ensure_ascii=False
    )


def decided(tenant: Manifest) -> bool:
    """Placed and Active, or refused for want of room; anything else is still on its way."""
    return active(tenant) or sc.refused("InsufficientCapacity")(tenant)


def active(tenant: Manifest) -> bool:
    return helpers.current(tenant) and helpers.phase(tenant) == "Active"


def ready_with_room(site: Manifest) -> bool:
    return sc.is_true(site, "Ready") and bool(allocatable(site))


def allocatable(site: Manifest) -> dict[str, str]:
    return dict((site.get("status") or {}).get("allocatable") or {})


def within(site: Manifest) -> bool:
    """Whether every resource the site reports allocated fits in what it has."""
    allocated = (site.get("status") or {}).get("allocated") or {}
    room = allocatable(site)
    return all(
        quantity.parse(str(amount)) <= quantity.parse(str(room[resource]))
        for resource, amount in allocated.items()
        if resource in room
    )
