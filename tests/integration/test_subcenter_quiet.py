"""An unchanged SubCenter with placed tenants is probed once per interval and costs no writes.

Every status patch of a SubCenter is an event of that SubCenter. Before the fix each event
queued a probe, and each probe found a "lasting" change (the Reachable message carried the
probe's latency, lastSuccessfulProbeTime moved with every probe), so it patched again: a site
probed and patched several times a second. Now a site whose facts do not change is probed on
its interval, its status is written at most by the heartbeat, and its tenants are left alone.
"""

from __future__ import annotations

import datetime
import time
from typing import Any

import _subcenter_helpers as sc
import _tenant_helpers as helpers
import pytest

from govcloud.dev import cluster, testing
from govcloud.reconcile import subcenter as subcenter_reconcile

pytestmark = pytest.mark.integration

Manifest = dict[str, Any]
Audit = dict[str, Any]

INTERVAL = float(sc.FAST_PROBE["intervalSeconds"])  # the shared site is probed every 2 s
PASSES = "govcloud_reconcile_total"
# Probes to observe: ~12 s at a 2 s interval, well inside the heartbeat (60 s).
WINDOW_PROBES = 6
OPERATOR = ("govcloud-operator", "kopf")


def _stamp(event: Audit) -> datetime.datetime:
    return datetime.datetime.fromisoformat(str(event["requestReceivedTimestamp"]))


def _writes(
    plane: cluster.ControlPlane, since: datetime.datetime, until: datetime.datetime
) -> list[Audit]:
    """Writes by the operator (its client or kopf) to objects, not Events, in the window.

    kopf posts Events from a queue and stamps them when posted, so they are left out: what
    counts is what was written to the objects.
    """
    return [
        event
        for event in plane.audit_events()
        if str(event.get("userAgent", "")).startswith(OPERATOR)
        and (event.get("objectRef") or {}).get("resource") != "events"
        and since <= _stamp(event) <= until
    ]


def _ref(event: Audit) -> Manifest:
    ref: Manifest = event.get("objectRef") or {}
    return ref


def _shown(events: list[Audit]) -> list[str]:
    return [
        f"{event['requestReceivedTimestamp']} {event.get('verb')} {_ref(event).get('resource')}/"
        f"{_ref(event).get('namespace', '')}/{_ref(event).get('name')}"
        f"/{_ref(event).get('subresource', '')}"
        for event in events
    ]


def _of_tenant(event: Audit, tenant: str) -> bool:
    ref = _ref(event)
    return (
        str(ref.get("namespace", "")).startswith(f"{tenant}-")
        or str(ref.get("name", "")).startswith(tenant)
        or f":{tenant}:" in str(ref.get("name", ""))
    )


def test_an_unchanged_site_with_placed_tenants_is_probed_on_its_interval_and_left_alone(
    hub: cluster.ControlPlane,
    subcenter: cluster.ControlPlane,
    kubectl: testing.Kubectl,
    operator: testing.OperatorProcess,
    placed: sc.PlacedTenants,
    shared_site: str,
) -> None:
    names = sorted([helpers.unique("quiet-a"), helpers.unique("quiet-b")])
    for name in names:
        placed.place(name, shared_site)
    for name in names:
        helpers.wait_phase(kubectl, name, "Active", timeout=60)

    def probes() -> float:
        # The shared site is the only SubCenter of this module.
        return operator.metric_value(PASSES, kind="SubCenter")

    def settled(body: Manifest) -> bool:
        entries = (body.get("status") or {}).get("tenants") or []
        return [entry["name"] for entry in entries] == names and all(
            item["phase"] == "Active" for entry in entries for item in entry["namespaces"]
        )

    registry = sc.Sites(kubectl)
    registry.wait(shared_site, settled, "both tenants listed, their namespaces Active")
    # Two more probes after the site showed both tenants: what placing them set off is over.
    after = probes() + 2
    testing.eventually(lambda: probes() >= after, timeout=30, what="two more probes")

    since = datetime.datetime.now(datetime.UTC)
    started = time.monotonic()
    first = probes()
    last_write = datetime.datetime.fromisoformat(
        registry.get(shared_site)["status"]["lastProbeTime"]
    )
    # The window: until the site has been probed WINDOW_PROBES more times. Probed on its
    # interval that takes ~WINDOW_PROBES intervals; in a probe loop it took a second.
    testing.eventually(
        lambda: probes() >= first + WINDOW_PROBES,
        timeout=WINDOW_PROBES * INTERVAL + 30,
        what=f"{WINDOW_PROBES} probes of the unchanged site",
    )
    ran = probes() - first
    elapsed = time.monotonic() - started
    until = datetime.datetime.now(datetime.UTC)

    assert ran <= elapsed / INTERVAL + 2, (
        f"{ran:.0f} probes in {elapsed:.1f}s with a probe interval of {INTERVAL:.0f}s"
    )
    on_hub = _writes(hub, since, until)
    site_writes = [event for event in on_hub if _ref(event).get("resource") == "subcenters"]
    # Nothing changed: only the heartbeat may write the status, once, if it fell due.
    heartbeat_due = last_write + subcenter_reconcile.HEARTBEAT <= until
    assert len(site_writes) <= (1 if heartbeat_due else 0), _shown(site_writes)
    tenant_writes = [
        event
        for event in on_hub + _writes(subcenter, since, until)
        if any(_of_tenant(event, name) for name in names)
    ]
    assert tenant_writes == [], _shown(tenant_writes)
