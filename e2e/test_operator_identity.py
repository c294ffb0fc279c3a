"""Checks over the whole run, after every scenario: the operator did all of it with the chart's
ServiceAccount and never hit a permission it lacks (the chart's RBAC is sufficient), and
exactly one replica was active."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

import harness

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
    "clusterkopfpeerings",
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


def test_exactly_one_replica_holds_the_work(cloud: harness.Cloud) -> None:
    peering = cloud.kubectl.json("get", "clusterkopfpeerings")["items"]
    now = datetime.now(UTC)
    peers = {
        identity
        for item in peering
        for identity, info in (item.get("status") or {}).items()
        if isinstance(info, dict)
        and datetime.fromisoformat(info["lastseen"]) + timedelta(seconds=info["lifetime"]) > now
    }
    if cloud.local:
        assert len(peers) == 1, harness.dump(peering)
        return
    deployment = cloud.kubectl.json("get", "deployment", cloud.deployment, "-n", cloud.namespace)
    ready = deployment["status"].get("readyReplicas", 0)
    assert ready == deployment["spec"]["replicas"]
    assert len(peers) == ready, harness.dump(peering)
    # Every replica draws its own priority, so exactly one is the highest (the active one).
    priorities = [
        info["priority"]
        for item in peering
        for info in (item.get("status") or {}).values()
        if isinstance(info, dict)
    ]
    assert len(set(priorities)) == len(priorities), harness.dump(peering)
