"""A sub-center is never over-committed: not by a burst of tenants, not by a tenant growing."""

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


def test_a_placed_tenant_grows_only_into_room_and_keeps_what_it_was_granted(
    kubectl: testing.Kubectl,
    site_kubectl: testing.Kubectl,
    subcenter: cluster.ControlPlane,
    sites: sc.Sites,
    placed: sc.PlacedTenants,
) -> None:
    site = sites.create(helpers.unique("grow"), sc.kubeconfig_of(subcenter))
    body = sites.wait(site, ready_with_room, "Ready with allocatable", 60)
    pods = int(quantity.parse(allocatable(body)["pods"]))
    third = pods // 3
    big, small = helpers.unique("growbig"), helpers.unique("growsmall")
    placed.place(big, site, quota={"requests.cpu": "1", "pods": str(third)})
    placed.place(small, site, quota={"requests.cpu": "1", "pods": str(third)})
    for name in (big, small):
        helpers.wait_phase(kubectl, name, "Active", timeout=60)

    def asks(name: str, wanted: int) -> None:
        placed.place(name, site, quota={"requests.cpu": "1", "pods": str(wanted)})

    def granted(name: str, wanted: int, status: str) -> Manifest:
        return helpers.wait_tenant(
            kubectl,
            name,
            lambda body: (
                helpers.current(body)
                and helpers.phase(body) == "Active"
                and body["status"]["quota"]["hard"]["pods"] == str(wanted)
                and helpers.condition(body, "QuotaGranted").get("status") == status
            ),
            f"{name} granted {wanted} pods (QuotaGranted={status})",
        )

    def site_quota(name: str) -> str:
        found = site_kubectl.get("resourcequota", "govcloud-quota", f"{name}-apps")
        assert found is not None
        return str(found["spec"]["hard"]["pods"])

    with sc.watching(kubectl, "subcenter", site) as watch:
        # Growth into exactly the room left is granted whole.
        asks(big, pods - third)
        granted(big, pods - third, "True")
        # Growth beyond it is held back: the tenant keeps what it was granted and says why.
        asks(big, pods - third + 10)
        capped = granted(big, pods - third, "False")
        # The other tenant cannot grow into room the first one only asked for, either.
        asks(small, third + 10)  # nor once the first one shrinks by 5 below: 5 < 10
        granted(small, third, "False")
        # Asking for what fits again clears the condition.
        asks(big, pods - third - 5)
        granted(big, pods - third - 5, "True")
        final = sites.wait(
            site,
            lambda body: body["status"]["allocated"].get("pods") == str(pods - 5),
            "the site to count what is granted",
        )
    reason = helpers.condition(capped, "QuotaGranted")
    assert reason["reason"] == "InsufficientCapacity"
    assert (
        f"pods {pods - third + 10} is more than the {pods - third} pods free" in reason["message"]
    )
    assert helpers.condition(capped, "Ready")["status"] == "True"
    assert testing.eventually(
        lambda: site_quota(small) == str(third), timeout=30, what="the site's quota unchanged"
    )
    warned = [
        event
        for event in helpers.events_for(kubectl, big)
        if event["type"] == "Warning" and event["reason"] == "InsufficientCapacity"
    ]
    assert warned, helpers.events_for(kubectl, big)
    assert {event["message"] for event in warned} == {reason["message"]}
    assert site_quota(big) == str(pods - third - 5)
    for version in [body, final, *watch.versions()]:
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
