"""Checks over the whole run, after every scenario: the operator did all of it with the chart's
ServiceAccount and never hit a permission it lacks (the chart's RBAC is sufficient), and
exactly one replica, a running one, holds the leader-election Lease and keeps renewing it."""

from __future__ import annotations

import re

import pytest

import harness
from govcloud.dev import testing

pytestmark = pytest.mark.e2e_last

# Every kind the CloudTenant scenarios make the operator write.
WRITTEN = {
    "namespaces",
    "resourcequotas",
    "limitranges",
    "networkpolicies",
    "rolebindings",
    "clusterroles",
    "clusterrolebindings",
    "cloudtenants",
    "events",
    "leases",
}
# How a refusal shows in kopf's and the kubernetes client's logs ("403" alone would also match
# the milliseconds of a timestamp).
FORBIDDEN = re.compile(r"forbidden|status=403|\(403\)|not enough permissions", re.I)


def test_the_operator_never_met_a_permission_it_lacks(cloud: harness.Cloud) -> None:
    log = cloud.operator_log()
    assert log.strip(), "the operator wrote no log"
    refused = [line for line in log.splitlines() if FORBIDDEN.search(line)]
    assert not refused, "the chart's RBAC is missing something:\n" + "\n".join(refused[:20])


def test_the_operator_wrote_as_the_charts_service_account(cloud: harness.Cloud) -> None:
    if not cloud.local:
        # In a cluster the pods themselves run as the ServiceAccount.
        pods = cloud.kubectl.json(
            "get",
            "pods",
            "-n",
            cloud.namespace,
            "-l",
            f"app.kubernetes.io/instance={cloud.release}",
        )["items"]
        assert pods
        for pod in pods:
            assert pod["spec"]["serviceAccountName"] == cloud.service_account
        return
    writes = [
        event
        for event in harness.audit_writes(cloud)
        if event["user"].get("username") == cloud.user
    ]
    kinds = {event["objectRef"]["resource"] for event in writes}
    assert kinds >= WRITTEN, f"no write as {cloud.user} to {sorted(WRITTEN - kinds)}"
    refused = [event for event in writes if event["responseStatus"]["code"] == 403]
    assert not refused, harness.dump(refused[:5])


def test_exactly_one_running_replica_holds_the_lease_and_renews_it(cloud: harness.Cloud) -> None:
    lease = cloud.lease_object()
    holder = lease["spec"].get("holderIdentity")
    assert holder, harness.dump(lease)
    if cloud.local:
        assert cloud.operator is not None
        assert holder == cloud.operator.env["GOVCLOUD_IDENTITY"], harness.dump(lease)
    else:
        deployment = cloud.kubectl.json(
            "get", "deployment", cloud.deployment, "-n", cloud.namespace
        )
        assert deployment["status"].get("readyReplicas", 0) == deployment["spec"]["replicas"]
        pods = cloud.kubectl.json(
            "get", "pods", "-n", cloud.namespace,
            "-l", f"app.kubernetes.io/instance={cloud.release}",
        )["items"]  # fmt: skip
        running = {
            pod["metadata"]["name"] for pod in pods if pod["status"].get("phase") == "Running"
        }
        assert holder in running, f"{holder} is not a running pod: {sorted(running)}"
    # The holder is alive: it renews within a lease duration (a record that changes), and it
    # stays the holder (no other replica takes over from a live leader).
    seen = lease["metadata"]["resourceVersion"]

    def renewal() -> harness.Manifest | None:
        found = cloud.lease_object()
        return found if found["metadata"]["resourceVersion"] != seen else None

    renewed = testing.eventually(
        renewal,
        timeout=float(lease["spec"].get("leaseDurationSeconds") or 15),
        interval=0.5,
        what=f"{holder} to renew the Lease",
    )
    assert renewed["spec"]["holderIdentity"] == holder, harness.dump(renewed)
