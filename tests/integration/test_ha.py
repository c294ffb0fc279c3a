"""High availability: two operator processes elect one leader with a coordination.k8s.io Lease;
only the holder acts. kill -9 it and the other takes over within leaseDuration + retryPeriod
and converges without duplicates; SIGTERM it and it hands over at once; take its Lease away
and it stops acting; skewed clocks change nothing.

The replicas run with a short lease (duration 6 s, renew deadline 4 s, retry period 1 s, set
through GOVCLOUD_LEASE_*), each in its own Lease for the test. Who acts is seen from outside:
the Lease's holderIdentity, and each replica's /metrics (reconcile passes and API writes).

Clock skew: a replica's wall clock can't be changed here, and it does not need to be. No
replica ever compares another one's renewTime with its own clock: a standby takes over only
after seeing the Lease record unchanged for a whole duration on its own monotonic clock. So
a renewTime written by a replica whose clock is a year ahead (or behind) is, to a standby,
just a change of the record. The live test writes such a renewTime by hand, once while the
leader is alive (the standby keeps off) and once after the leader died (the standby takes
over one duration later, not a year later); tests/unit/k8s/test_lease.py covers the skewed
replica itself with injected clocks. The first tests run the Elector in-process against the
real API server, for what only a real one can show (MicroTime, 409s, RBAC, missing namespaces).
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from govcloud.dev import cluster, testing
from govcloud.k8s import client, lease

pytestmark = pytest.mark.integration

REPO_ROOT = testing.REPO_ROOT
DURATION, RENEW_DEADLINE, RETRY = 6.0, 4.0, 1.0
# Polling, one API round trip and a busy 2-core machine, on top of the bound the design gives.
MARGIN = 5.0
TAKEOVER_LIMIT = DURATION + RETRY + MARGIN
YEAR = timedelta(days=365)


@dataclass(frozen=True)
class LeaseRef:
    namespace: str
    name: str


@pytest.fixture(scope="module")
def lease_namespace(kubectl: testing.Kubectl) -> Iterator[str]:
    name = f"ha-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false")


@pytest.fixture
def ref(lease_namespace: str) -> LeaseRef:
    """A Lease of this test's own (the replicas create it)."""
    return LeaseRef(lease_namespace, f"ha-{uuid.uuid4().hex[:6]}")


def read_lease(kubectl: testing.Kubectl, ref: LeaseRef) -> dict[str, Any] | None:
    return kubectl.get("lease", ref.name, ref.namespace)


def holder(kubectl: testing.Kubectl, ref: LeaseRef) -> str | None:
    found = read_lease(kubectl, ref)
    return ((found or {}).get("spec") or {}).get("holderIdentity") or None


def wait_holder(kubectl: testing.Kubectl, ref: LeaseRef, identity: str, timeout: float) -> None:
    testing.eventually(
        lambda: holder(kubectl, ref) == identity,
        timeout=timeout,
        interval=0.2,
        what=f"{identity} to hold Lease {ref.namespace}/{ref.name}",
    )


def patch_lease(kubectl: testing.Kubectl, ref: LeaseRef, spec: dict[str, Any]) -> None:
    kubectl(
        "patch", "lease", ref.name, "-n", ref.namespace, "--type=merge",
        "-p", testing.json_text({"spec": spec}),
    )  # fmt: skip


# -- the Elector in-process against the real API server -----------------------------------


class Clock:
    """A monotonic clock the test moves by hand (the API server is real, time is not)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def hub_cluster(hub: cluster.ControlPlane, impersonate: str | None = None) -> client.Cluster:
    api = client.load_api_client(str(hub.kubeconfig))
    if impersonate:
        api.set_default_header("Impersonate-User", impersonate)
    return client.Cluster(api, "hub")


def elector(
    cluster_: client.Cluster, ref: LeaseRef, identity: str, clock: Clock, **options: Any
) -> lease.Elector:
    return lease.Elector(
        cluster_,
        ref.namespace,
        ref.name,
        identity,
        duration=DURATION,
        renew_deadline=RENEW_DEADLINE,
        retry_period=RETRY,
        clock=clock,
        **options,
    )


def test_electors_share_a_real_lease_and_take_over_only_after_a_silent_duration(
    hub: cluster.ControlPlane, kubectl: testing.Kubectl, ref: LeaseRef
) -> None:
    clock = Clock()
    first = elector(hub_cluster(hub), ref, "replica-a", clock)
    second = elector(hub_cluster(hub), ref, "replica-b", clock)

    assert first.attempt() is True, first.error
    stored = read_lease(kubectl, ref)
    assert stored is not None
    assert stored["spec"]["holderIdentity"] == "replica-a"
    assert stored["spec"]["leaseDurationSeconds"] == 6
    # The API server accepted and kept MicroTime: RFC 3339, microseconds, UTC.
    assert stored["spec"]["renewTime"].endswith("Z")
    assert len(stored["spec"]["renewTime"].split(".")[1]) == len("000000Z")

    assert second.attempt() is False
    assert second.error is None
    assert second.holder == "replica-a"
    clock.now += RENEW_DEADLINE - RETRY
    assert first.attempt() is True  # a renewal: a new record, so b's wait starts again
    clock.now += RETRY
    assert second.attempt() is False
    clock.now += DURATION
    assert second.attempt() is True, second.error
    stored = read_lease(kubectl, ref)
    assert stored is not None
    assert stored["spec"]["holderIdentity"] == "replica-b"
    assert stored["spec"]["leaseTransitions"] == 1
    assert first.attempt() is False
    assert first.holder == "replica-b"


class WritesFirst(client.Cluster):
    """A cluster on which someone else writes the Lease just before our write goes out."""

    def __init__(self, inner: client.Cluster, kubectl: testing.Kubectl, ref: LeaseRef) -> None:
        super().__init__(inner.api, "hub")
        self.kubectl, self.ref = kubectl, ref

    def patch_merge(self, *args: Any, **kwargs: Any) -> client.Manifest:
        patch_lease(self.kubectl, self.ref, {"holderIdentity": "replica-c"})
        return super().patch_merge(*args, **kwargs)


def test_a_write_decided_on_a_stale_record_is_refused_by_the_api_server(
    hub: cluster.ControlPlane, kubectl: testing.Kubectl, ref: LeaseRef
) -> None:
    clock = Clock()
    assert elector(hub_cluster(hub), ref, "replica-a", clock).attempt() is True
    patch_lease(kubectl, ref, {"holderIdentity": ""})  # free: b may take it at once
    racing = elector(WritesFirst(hub_cluster(hub), kubectl, ref), ref, "replica-b", clock)

    assert racing.attempt() is False
    assert racing.error is None  # a lost race is no failure
    assert holder(kubectl, ref) == "replica-c"


def test_an_elector_without_permission_says_so_and_never_leads(
    hub: cluster.ControlPlane, ref: LeaseRef
) -> None:
    nobody = elector(hub_cluster(hub, impersonate="nobody"), ref, "replica-a", Clock())

    assert nobody.attempt() is False
    assert nobody.error is not None
    assert nobody.error.startswith(f"forbidden: cannot get Lease {ref.namespace}/{ref.name}")
    assert "cannot get resource" in nobody.error
    assert not nobody.leading()


def test_an_elector_in_a_missing_namespace_names_it(hub: cluster.ControlPlane) -> None:
    missing = LeaseRef(f"no-such-{uuid.uuid4().hex[:6]}", "govcloud-operator")
    homeless = elector(hub_cluster(hub), missing, "replica-a", Clock())

    assert homeless.attempt() is False
    assert homeless.error is not None
    assert homeless.error.startswith(f"notfound: cannot create Lease {missing.namespace}/")
    assert f'namespaces "{missing.namespace}" not found' in homeless.error


def test_release_empties_the_holder_of_a_real_lease(
    hub: cluster.ControlPlane, kubectl: testing.Kubectl, ref: LeaseRef
) -> None:
    clock = Clock()
    leader = elector(hub_cluster(hub), ref, "replica-a", clock)
    assert leader.attempt() is True

    leader.release()

    assert holder(kubectl, ref) is None
    assert not leader.leading()
    assert elector(hub_cluster(hub), ref, "replica-b", clock).attempt() is True


# -- two operator processes -----------------------------------------------------------------


def start_replica(
    kubeconfig: Path, ref: LeaseRef, identity: str, **timing: float
) -> testing.OperatorProcess:
    duration = timing.get("duration", DURATION)
    renew_deadline = timing.get("renew_deadline", RENEW_DEADLINE)
    return testing.OperatorProcess(
        kubeconfig,
        REPO_ROOT / ".cache" / "logs" / f"operator-{ref.name}-{identity}.log",
        env={
            "GOVCLOUD_STANDALONE": "false",
            "GOVCLOUD_LEASE_NAMESPACE": ref.namespace,
            "GOVCLOUD_LEASE_NAME": ref.name,
            "GOVCLOUD_IDENTITY": identity,
            "GOVCLOUD_LEASE_DURATION_SECONDS": str(duration),
            "GOVCLOUD_LEASE_RENEW_DEADLINE_SECONDS": str(renew_deadline),
            "GOVCLOUD_LEASE_RETRY_PERIOD_SECONDS": str(RETRY),
            "GOVCLOUD_RESYNC_SECONDS": "5",
        },
    ).start()


def activity(replica: testing.OperatorProcess, **labels: str) -> float:
    """Reconcile passes (and probes) plus API writes other than its Lease: what it acted on."""
    writes = replica.metric_value("govcloud_api_writes_total", **labels)
    renewals = replica.metric_value("govcloud_api_writes_total", kind="Lease", **labels)
    return replica.metric_value("govcloud_reconcile_total", **labels) + writes - renewals


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


def assert_no_duplicates(kubectl: testing.Kubectl, name: str, namespaces: list[str]) -> None:
    expected = sorted(f"{name}-{item}" for item in namespaces)
    testing.eventually(
        lambda: (
            managed(kubectl, "resourcequotas", name)
            == [f"{namespace}/govcloud-quota" for namespace in expected]
        ),
        timeout=30,
        what="one ResourceQuota per namespace",
    )
    testing.eventually(
        lambda: all(
            {item.partition("/")[0] for item in managed(kubectl, kind, name)} == set(expected)
            for kind in ("limitranges", "networkpolicies")
        ),
        timeout=30,
        what="the LimitRanges and NetworkPolicies of every namespace",
    )
    assert managed(kubectl, "namespaces", name) == [f"/{ns}" for ns in expected]
    for kind in ("limitranges", "networkpolicies"):
        # The same object names in every namespace, once: nothing made twice under another
        # name by two replicas.
        per_namespace: dict[str, list[str]] = {}
        for item in managed(kubectl, kind, name):
            namespace, _, object_name = item.partition("/")
            per_namespace.setdefault(namespace, []).append(object_name)
        assert sorted(per_namespace) == expected, kind
        assert len({tuple(names) for names in per_namespace.values()}) == 1, per_namespace
    assert len(managed(kubectl, "limitranges", name)) == len(expected)
    assert managed(kubectl, "clusterroles", name) == [
        f"/govcloud:tenant:{name}:plan-filer",
        f"/govcloud:tenant:{name}:self-view",
    ]
    # Access follows the quota once quota admission enforces it: possibly a pass later.
    testing.eventually(
        lambda: (
            managed(kubectl, "rolebindings", name)
            == [f"{namespace}/govcloud-admin" for namespace in expected]
        ),
        timeout=30,
        what="one admins' RoleBinding per namespace",
    )


def test_one_replica_acts_and_the_other_takes_over_after_kill_9(
    hub: cluster.ControlPlane, kubectl: testing.Kubectl, crds: None, ref: LeaseRef
) -> None:
    # The first replica up takes the Lease; the one that joins must never act.
    active = start_replica(hub.kubeconfig, ref, "replica-active")
    replicas = [active]
    name = f"ha-{uuid.uuid4().hex[:6]}"
    try:
        wait_holder(kubectl, ref, "replica-active", timeout=30)
        standby = start_replica(hub.kubeconfig, ref, "replica-standby")
        replicas.append(standby)
        kubectl.apply(tenant(name, ["app"]))
        testing.eventually(
            lambda: active.metric_value("govcloud_tenant_phase", tenant=name, phase="Active"),
            timeout=60,
            what=f"the leader to onboard {name}",
        )
        kubectl.apply(tenant(name, ["app", "web"]))
        testing.eventually(
            lambda: kubectl.get("namespace", f"{name}-web") is not None,
            timeout=30,
            what="the leader to converge a change",
        )
        # Two more resync passes of the leader over the tenant (resync: 5 s).
        converged = active.metric_value(
            "govcloud_tenant_last_reconcile_timestamp_seconds", tenant=name
        )
        testing.eventually(
            lambda: (
                active.metric_value("govcloud_tenant_last_reconcile_timestamp_seconds", tenant=name)
                >= converged + 10
            ),
            timeout=60,
            what="two resync passes of the leader",
        )
        assert activity(standby) == 0, standby.log_tail()
        assert standby.metric_value("govcloud_api_writes_total") == 0, "a standby wrote"
        assert not standby.metric_value("govcloud_tenant_phase", tenant=name)
        assert holder(kubectl, ref) == "replica-active"

        # kill -9: no goodbye. The standby sees the Lease unchanged for a whole duration on
        # its own clock, takes it over, looks at everything and converges.
        active.kill()
        killed_at = time.monotonic()
        wait_holder(kubectl, ref, "replica-standby", timeout=TAKEOVER_LIMIT + 5)
        takeover = time.monotonic() - killed_at
        print(f"takeover {takeover:.1f}s after kill -9 (lease duration {DURATION:g}s)")
        assert takeover <= TAKEOVER_LIMIT
        assert takeover >= DURATION - RETRY - 0.5, "taken over before the lease could expire"
        testing.eventually(
            lambda: standby.metric_value("govcloud_tenant_phase", tenant=name, phase="Active"),
            timeout=60,
            interval=0.5,
            what="the new leader to look at the tenant",
        )

        # The new leader acts on changes: a third namespace appears.
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
            what="the new leader to reconcile the change",
        )
        assert_no_duplicates(kubectl, name, ["app", "data", "web"])
        stored = read_lease(kubectl, ref)
        assert stored is not None
        assert stored["spec"]["leaseTransitions"] == 1, stored
    finally:
        try:
            delete_and_wait(kubectl, "cloudtenant", name)  # the surviving replica finalizes it
        finally:
            for replica in replicas:
                replica.stop()


def test_a_sigtermed_leader_hands_over_at_once(
    hub: cluster.ControlPlane, kubectl: testing.Kubectl, crds: None, ref: LeaseRef
) -> None:
    """A rolling update or a drain: the leader releases its Lease on the way out, so the
    standby takes over on its next try instead of waiting out the lease (here a long one)."""
    long = {"duration": 30.0, "renew_deadline": 20.0}
    old = start_replica(hub.kubeconfig, ref, "replica-old", **long)
    replicas = [old]
    name = f"ha-term-{uuid.uuid4().hex[:6]}"
    try:
        wait_holder(kubectl, ref, "replica-old", timeout=30)
        new = start_replica(hub.kubeconfig, ref, "replica-new", **long)
        replicas.append(new)
        kubectl.apply(tenant(name, ["app"]))
        testing.eventually(
            lambda: old.metric_value("govcloud_tenant_phase", tenant=name, phase="Active"),
            timeout=60,
            what=f"the leader to onboard {name}",
        )

        stopping_at = time.monotonic()
        old.stop()  # SIGTERM, and wait for the exit
        wait_holder(kubectl, ref, "replica-new", timeout=15)
        handover = time.monotonic() - stopping_at
        print(f"handed over {handover:.1f}s after SIGTERM (lease duration 30s)")
        # Without the release the standby would wait out the whole 30 s lease.
        assert handover < 15
        assert "released by replica-old" in old.log_path.read_text()

        kubectl.apply(tenant(name, ["app", "web"]))
        testing.eventually(
            lambda: kubectl.get("namespace", f"{name}-web") is not None,
            timeout=60,
            what="the new leader to converge a change",
        )
        assert new.metric_value("govcloud_reconcile_total", kind="CloudTenant") > 0
        assert_no_duplicates(kubectl, name, ["app", "web"])
    finally:
        try:
            delete_and_wait(kubectl, "cloudtenant", name)
        finally:
            for replica in replicas:
                replica.stop()


def test_renew_times_from_a_skewed_clock_change_no_decision(
    hub: cluster.ControlPlane, kubectl: testing.Kubectl, crds: None, ref: LeaseRef
) -> None:
    leader = start_replica(hub.kubeconfig, ref, "replica-leader")
    replicas = [leader]
    try:
        wait_holder(kubectl, ref, "replica-leader", timeout=30)
        standby = start_replica(hub.kubeconfig, ref, "replica-standby")
        replicas.append(standby)

        # A renewTime a year in the past, as a leader whose clock is a year behind writes it:
        # the leader is alive and renewing, so the standby keeps off.
        patch_lease(kubectl, ref, {"renewTime": lease.micro_time(datetime.now(UTC) - YEAR)})
        # Held through enough renewals to span two lease durations: the standby judges
        # expiry by what it sees change, not by the renewTime written.
        renewals: set[str] = set()

        def renewed_by_the_leader() -> bool:
            found = read_lease(kubectl, ref) or {}
            assert (found.get("spec") or {}).get("holderIdentity") == "replica-leader"
            renewals.add(str(found["metadata"]["resourceVersion"]))
            return len(renewals) > (2 * DURATION + RETRY) / RETRY

        testing.eventually(
            renewed_by_the_leader,
            timeout=4 * DURATION,
            interval=0.5,
            what="the leader to keep its Lease through two lease durations",
        )

        # The leader dies, and its last renewTime says a year ahead, as a leader whose clock
        # is a year ahead writes it: the standby takes over one duration after it last saw
        # the record change, not a year later.
        leader.kill()
        patch_lease(kubectl, ref, {"renewTime": lease.micro_time(datetime.now(UTC) + YEAR)})
        patched_at = time.monotonic()
        wait_holder(kubectl, ref, "replica-standby", timeout=TAKEOVER_LIMIT + 5)
        takeover = time.monotonic() - patched_at
        print(f"takeover {takeover:.1f}s after a renewTime a year ahead")
        assert DURATION - RETRY - 0.5 <= takeover <= TAKEOVER_LIMIT
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


def test_a_replica_whose_lease_is_taken_stops_acting(
    hub: cluster.ControlPlane, kubectl: testing.Kubectl, crds: None, ref: LeaseRef
) -> None:
    """The leader loses its Lease while it runs (here by hand, as after a partition longer
    than the renew deadline): from then on it does nothing — no reconcile, no probe, no
    write — and the new holder does the work."""
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
    old = start_replica(hub.kubeconfig, ref, "replica-old")
    replicas = [old]
    try:
        wait_holder(kubectl, ref, "replica-old", timeout=30)
        new = start_replica(hub.kubeconfig, ref, "replica-new")
        replicas.append(new)
        testing.eventually(
            lambda: old.metric_value("govcloud_reconcile_total", kind="SubCenter") >= 2,
            timeout=60,
            what="the leader to probe the sub-center",
        )
        assert activity(new) == 0, new.log_tail()

        patch_lease(kubectl, ref, {"holderIdentity": "replica-new"})
        testing.eventually(
            lambda: new.metric_value("govcloud_reconcile_total", kind="SubCenter") >= 1,
            timeout=60,
            what="the new holder to take over the probes",
        )

        def probes_by_new() -> float:
            return new.metric_value("govcloud_reconcile_total", kind="SubCenter")

        # One more probe by the new holder: whatever the old one had in flight has finished.
        seen = probes_by_new()
        testing.eventually(lambda: probes_by_new() > seen, timeout=30, what="a probe by new")
        stopped_at = activity(old)
        seen = probes_by_new()
        testing.eventually(
            lambda: probes_by_new() >= seen + 4, timeout=60, what="four more probes by new"
        )
        assert activity(old) == stopped_at, "the replica that lost its Lease kept acting"
        assert holder(kubectl, ref) == "replica-new"
    finally:
        try:
            delete_and_wait(kubectl, "subcenter", site)
        finally:
            kubectl.run("delete", "secret", site, "-n", "default", "--wait=false")
            for replica in replicas:
                replica.stop()
