"""High availability: two peered operator processes, exactly one acts; kill -9 it, the other
takes over within 90 s and converges without duplicates.

kopf peering is how the chart's two replicas share the work: every replica writes keep-alives
into one ClusterKopfPeering object, and a replica that sees a live peer with a higher priority
pauses. In the chart each replica draws a random priority at start-up; here the priorities are
set (GOVCLOUD_PEERING_PRIORITY) so that each test knows which replica must act. A replica
killed with SIGKILL cannot say goodbye, so its peers wait until its keep-alive expires
(GOVCLOUD_PEERING_LIFETIME: the chart's 60 s, used here too) and the highest remaining one
resumes.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from govcloud.dev import cluster, testing

pytestmark = pytest.mark.integration

REPO_ROOT = testing.REPO_ROOT
CHART = REPO_ROOT / "charts" / "govcloud-operator"
PEERING_CRD = CHART / "crds" / "clusterkopfpeerings.kopf.dev.yaml"
# The keep-alive lifetime the chart ships, so the takeover time measured is the product's.
LIFETIME = int(yaml.safe_load((CHART / "values.yaml").read_text())["peering"]["lifetime"])
TAKEOVER_LIMIT = 90.0
LOW, HIGH = 100, 200


@pytest.fixture
def peering(kubectl: testing.Kubectl, crds: None) -> Iterator[str]:
    """kopf's peering CRD (as the chart installs it) and one peering object for this test."""
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(PEERING_CRD))
    kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", "crd/clusterkopfpeerings.kopf.dev"
    )
    name = f"ha-{uuid.uuid4().hex[:6]}"
    kubectl.apply(
        {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": name}}
    )
    yield name
    kubectl.run("delete", "clusterkopfpeering", name, "--wait=false")


def start_replica(
    kubeconfig: Path, peering: str, identity: str, priority: int
) -> testing.OperatorProcess:
    return testing.OperatorProcess(
        kubeconfig,
        REPO_ROOT / ".cache" / "logs" / f"operator-{peering}-{identity}.log",
        env={
            "GOVCLOUD_STANDALONE": "false",
            "GOVCLOUD_PEERING_NAME": peering,
            "GOVCLOUD_PEERING_LIFETIME": str(LIFETIME),
            "GOVCLOUD_PEERING_PRIORITY": str(priority),
            "GOVCLOUD_RESYNC_SECONDS": "5",
            "POD_ID": identity,  # kopf's identity in the peering object, as in a pod
        },
    ).start()


def wait_in_peering(kubectl: testing.Kubectl, peering: str, *identities: str) -> None:
    testing.eventually(
        lambda: (
            set((kubectl.get("clusterkopfpeering", peering) or {}).get("status") or {})
            >= set(identities)
        ),
        timeout=60,
        what=f"{', '.join(identities)} in the peering object",
    )


def activity(replica: testing.OperatorProcess, **labels: str) -> float:
    """Reconcile passes (and probes) plus API writes: what the replica did to any cluster."""
    return replica.metric_value("govcloud_reconcile_total", **labels) + replica.metric_value(
        "govcloud_api_writes_total", **labels
    )


def tenant(name: str, namespaces: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "govcloud.io/v1alpha1",
        "kind": "CloudTenant",
        "metadata": {"name": name},
        "spec": {
            "displayName": f"高可用测试 {name}",
            "unit": {"code": name, "tier": "county"},
            "contacts": [{"name": "测试员", "email": "ha@test.gov.cn"}],
            "admins": {"groups": [f"{name}-admins"]},
            "securityLevel": 2,
            "namespaces": [{"name": item} for item in namespaces],
            "quota": {"requests.cpu": "2", "requests.memory": "4Gi", "pods": "10"},
            "limitRange": {"defaultRequest": {"cpu": "50m", "memory": "64Mi"}},
            "deletionPolicy": "Delete",
        },
    }


def managed(kubectl: testing.Kubectl, kind: str, name: str) -> list[str]:
    """`namespace/name` of every object of `kind` labelled as the tenant's."""
    items = kubectl.json("get", kind, "-A", "-l", f"govcloud.io/tenant={name}")["items"]
    return sorted(
        f"{item['metadata'].get('namespace', '')}/{item['metadata']['name']}" for item in items
    )


def delete_and_wait(kubectl: testing.Kubectl, kind: str, name: str) -> None:
    """Delete an object that a surviving replica must finalize, and wait until it is gone."""
    kubectl.run("delete", kind, name, "--wait=false")
    testing.eventually(
        lambda: kubectl.get(kind, name) is None, timeout=90, what=f"{kind} {name} to be deleted"
    )


def test_one_replica_acts_and_the_other_takes_over_after_kill_9(
    hub: cluster.ControlPlane, kubectl: testing.Kubectl, peering: str
) -> None:
    # The higher-priority replica is up first; the standby joins and must never act.
    active = start_replica(hub.kubeconfig, peering, "replica-active", HIGH)
    replicas = [active]
    name = f"ha-{uuid.uuid4().hex[:6]}"
    try:
        wait_in_peering(kubectl, peering, "replica-active")
        standby = start_replica(hub.kubeconfig, peering, "replica-standby", LOW)
        replicas.append(standby)
        wait_in_peering(kubectl, peering, "replica-active", "replica-standby")
        kubectl.apply(tenant(name, ["app"]))
        testing.eventually(
            lambda: active.metric_value("govcloud_tenant_phase", tenant=name, phase="Active"),
            timeout=60,
            what=f"the active replica to onboard {name}",
        )
        kubectl.apply(tenant(name, ["app", "web"]))
        testing.eventually(
            lambda: kubectl.get("namespace", f"{name}-web") is not None,
            timeout=30,
            what="the active replica to converge a change",
        )
        # Two more resync passes of the active replica over the tenant (resync: 5 s).
        converged = active.metric_value(
            "govcloud_tenant_last_reconcile_timestamp_seconds", tenant=name
        )
        testing.eventually(
            lambda: (
                active.metric_value("govcloud_tenant_last_reconcile_timestamp_seconds", tenant=name)
                >= converged + 10
            ),
            timeout=60,
            what="two resync passes of the active replica",
        )
        assert activity(standby) == 0, standby.log_tail()
        assert not standby.metric_value("govcloud_tenant_phase", tenant=name)

        # kill -9: no goodbye in the peering object; the standby waits for the keep-alive to
        # expire, then resumes, re-lists everything and converges.
        active.kill()
        killed_at = time.monotonic()
        testing.eventually(
            lambda: standby.metric_value("govcloud_tenant_phase", tenant=name, phase="Active"),
            timeout=TAKEOVER_LIMIT,
            interval=0.5,
            what="the standby to take over",
        )
        takeover = time.monotonic() - killed_at
        assert takeover < TAKEOVER_LIMIT
        print(f"takeover after {takeover:.1f}s (peering lifetime {LIFETIME}s)")

        # The new active replica acts on changes: a third namespace appears.
        before = standby.metric_value("govcloud_reconcile_total", kind="CloudTenant")
        kubectl.apply(tenant(name, ["app", "web", "data"]))
        testing.eventually(
            lambda: kubectl.get("namespace", f"{name}-data") is not None,
            timeout=30,
            what="the namespace added after the takeover",
        )
        testing.eventually(
            lambda: standby.metric_value("govcloud_reconcile_total", kind="CloudTenant") > before,
            timeout=30,
            what="the new active replica to reconcile the change",
        )

        # No duplicates: exactly one of every object the tenant should have.
        expected_namespaces = [f"{name}-{item}" for item in ("app", "data", "web")]
        testing.eventually(
            lambda: (
                managed(kubectl, "resourcequotas", name)
                == [f"{namespace}/govcloud-quota" for namespace in expected_namespaces]
            ),
            timeout=30,
            what="one ResourceQuota per namespace",
        )
        testing.eventually(
            lambda: all(
                {item.partition("/")[0] for item in managed(kubectl, kind, name)}
                == set(expected_namespaces)
                for kind in ("limitranges", "networkpolicies")
            ),
            timeout=30,
            what="the LimitRanges and NetworkPolicies of the new namespace",
        )
        assert managed(kubectl, "namespaces", name) == [f"/{ns}" for ns in expected_namespaces]
        for kind in ("limitranges", "networkpolicies"):
            # The same object names in every namespace, once: nothing made twice under
            # another name by two replicas.
            per_namespace: dict[str, list[str]] = {}
            for item in managed(kubectl, kind, name):
                namespace, _, object_name = item.partition("/")
                per_namespace.setdefault(namespace, []).append(object_name)
            assert sorted(per_namespace) == expected_namespaces, kind
            assert len({tuple(names) for names in per_namespace.values()}) == 1, per_namespace
        assert len(managed(kubectl, "limitranges", name)) == len(expected_namespaces)
        assert managed(kubectl, "clusterroles", name) == [
            f"/govcloud:tenant:{name}:plan-filer",
            f"/govcloud:tenant:{name}:self-view",
        ]
        assert managed(kubectl, "rolebindings", name) == [
            f"{namespace}/govcloud-admin" for namespace in expected_namespaces
        ]
        status = (kubectl.get("clusterkopfpeering", peering) or {}).get("status") or {}
        assert "replica-standby" in status, json.dumps(status)
    finally:
        try:
            delete_and_wait(kubectl, "cloudtenant", name)  # a surviving replica finalizes it
        finally:
            for replica in replicas:
                replica.stop()


def unreachable_kubeconfig() -> str:
    """A kubeconfig for a sub-center whose API server is gone (nothing listens there)."""
    server = f"https://127.0.0.1:{testing.free_port()}"
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "gone", "cluster": {"server": server}}],
            "users": [{"name": "gone", "user": {"token": "not-a-real-token"}}],
            "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "gone"}}],
            "current-context": "gone",
        }
    )


def test_a_replica_that_hands_over_stops_acting(
    hub: cluster.ControlPlane, kubectl: testing.Kubectl, peering: str
) -> None:
    """A rolling update: the running replica sees a newer one with a higher priority, pauses,
    and from then on does nothing — no reconcile, no probe, no write."""
    site = f"ha-site-{uuid.uuid4().hex[:6]}"
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": site, "namespace": "default"},
            "data": {"kubeconfig": base64.b64encode(unreachable_kubeconfig().encode()).decode()},
        }
    )
    kubectl.apply(
        {
            "apiVersion": "govcloud.io/v1alpha1",
            "kind": "SubCenter",
            "metadata": {"name": site},
            "spec": {
                "displayName": "高可用测试分中心",
                "region": "测试区",
                "tier": "county",
                "mode": "federated",
                "maxSecurityLevel": 2,
                "kubeconfigSecretRef": {"name": site, "namespace": "default"},
                "probe": {"intervalSeconds": 2, "timeoutSeconds": 1},
            },
        }
    )
    old = start_replica(hub.kubeconfig, peering, "replica-old", LOW)
    replicas = [old]
    try:
        testing.eventually(
            lambda: old.metric_value("govcloud_reconcile_total", kind="SubCenter") >= 2,
            timeout=60,
            what="the only replica to probe the sub-center",
        )
        new = start_replica(hub.kubeconfig, peering, "replica-new", HIGH)
        replicas.append(new)
        testing.eventually(
            lambda: new.metric_value("govcloud_reconcile_total", kind="SubCenter") >= 1,
            timeout=60,
            what="the new replica to take over the probes",
        )
        testing.eventually(
            lambda: "Pausing operations" in old.log_tail(400),
            timeout=30,
            what="the old replica to pause",
        )

        def probes_by_new() -> float:
            return new.metric_value("govcloud_reconcile_total", kind="SubCenter")

        # One more probe by the new replica: whatever the old one had in flight has finished.
        seen = probes_by_new()
        testing.eventually(lambda: probes_by_new() > seen, timeout=30, what="a probe by new")
        paused_at = activity(old)
        seen = probes_by_new()
        testing.eventually(
            lambda: probes_by_new() >= seen + 4, timeout=60, what="four more probes by new"
        )
        assert activity(old) == paused_at, "the paused replica kept acting"
    finally:
        try:
            delete_and_wait(kubectl, "subcenter", site)
        finally:
            kubectl.run("delete", "secret", site, "-n", "default", "--wait=false")
            for replica in replicas:
                replica.stop()
