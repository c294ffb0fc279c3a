"""One writer (M4): the quota raises the over-commit proof depends on are fenced.

First, against the real API server, a raise decided on a read that another writer has
overtaken: it carries the resourceVersion it was capped from, so the API server refuses it
(409) and the quota keeps what the other writer set; unfenced, the tenant's hards would sum
above its quota. (The fence also covers a writer that raised a *different* quota meanwhile
only through the Lease check made right before every raise; tests/unit/reconcile covers that
a replica that no longer leads raises and creates no quota.)

Then two operator processes, started at the same moment against one cluster with wall clocks
an hour apart (each process's time.time and datetime.now are shifted by a sitecustomize on its
PYTHONPATH; its monotonic clock, like a skewed node's, is not), take a burst of pods into one
tenant, and the leader is frozen (SIGSTOP) mid-burst for longer than the lease, so the other
takes over while a pass of the frozen one may be half done, then thawed. Every version of the
tenant's ResourceQuotas is watched: the hards never sum above the tenant's quota, and neither
does the usage the quota controller reports. GOVCLOUD_SOAK_FENCING_HANDOVERS (default 1)
sets how many times the leader is frozen during the burst.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import _subcenter_helpers as sc
import _tenant_helpers as helpers
import pytest
from _quota_watch import QuotaVersions
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch
from kubernetes.client.rest import ApiException

from govcloud.api.v1alpha1 import cloudtenant
from govcloud.desired import meta, quantity, quotas
from govcloud.dev import cluster, testing
from govcloud.k8s import client
from govcloud.reconcile import tenant, tenant_types

pytestmark = pytest.mark.integration

REPO_ROOT = testing.REPO_ROOT
CPU, PODS = "requests.cpu", "pods"
DURATION, RENEW_DEADLINE, RETRY = 6.0, 4.0, 1.0
SKEW_SECONDS = 3600.0
TENANT_QUOTA = {CPU: "3", PODS: "40"}  # CPU binds: the burst moves the CPU split
BURST_SECONDS = 20.0
# Leader freezes (and takeovers) during the burst; `make soak` sets more.
HANDOVERS = int(os.environ.get("GOVCLOUD_SOAK_FENCING_HANDOVERS", "1"))
STOOD_DOWN = "no longer leading"
SITECUSTOMIZE = '''
"""Shift this process's wall clock by GOVCLOUD_TEST_CLOCK_SKEW seconds (a skewed node)."""
import datetime as _datetime
import os as _os
import time as _time

_skew = float(_os.environ.get("GOVCLOUD_TEST_CLOCK_SKEW", "0"))
if _skew:
    _real_time = _time.time
    _time.time = lambda: _real_time() + _skew
    _time.time_ns = lambda: int((_real_time() + _skew) * 1e9)

    class _Skewed(_datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return super().now(tz) + _datetime.timedelta(seconds=_skew)

        @classmethod
        def utcnow(cls):
            return super().utcnow() + _datetime.timedelta(seconds=_skew)

    _datetime.datetime = _Skewed
'''


# -- a stale raise against the real API server --------------------------------------------


def quota_manifest(tenant_name: str, namespace: str, hard: dict[str, str]) -> dict[str, Any]:
    return {**quotas.manifest(tenant_name, namespace, hard)}


def enforced(kubectl: testing.Kubectl, namespace: str) -> bool:
    found = kubectl.get("resourcequota", meta.QUOTA_NAME, namespace) or {}
    return CPU in ((found.get("status") or {}).get("used") or {})


class OvertakenRead(client.Cluster):
    """A hub on which another writer moves quota right after our fresh read of the quotas:
    it lowers `a` to 2 and raises `b` to 6 (8 in all, the tenant's quota)."""

    def __init__(self, inner: client.Cluster, kubectl: testing.Kubectl, names: list[str]) -> None:
        super().__init__(inner.api, "hub")
        self.kubectl, self.names = kubectl, names

    def list(self, *args: Any, **kwargs: Any) -> list[client.Manifest]:
        found = super().list(*args, **kwargs)
        for namespace, cpu in zip(self.names, ("2", "6"), strict=True):
            self.kubectl(
                "patch", "resourcequota", meta.QUOTA_NAME, "-n", namespace, "--type=merge",
                "-p", json.dumps({"spec": {"hard": {CPU: cpu}}}),
            )  # fmt: skip
        return found


def a_spec(names: list[str]) -> cloudtenant.CloudTenantSpec:
    return cloudtenant.CloudTenantSpec.model_validate(
        {
            "displayName": "fence",
            "unit": {"code": "fence", "tier": "county"},
            "contacts": [{"name": "a", "email": "a@example.gov.cn"}],
            "securityLevel": 2,
            "namespaces": [{"name": name.rpartition("-")[2]} for name in names],
            "quota": {CPU: "8"},
        }
    )


def test_a_raise_decided_on_an_overtaken_read_is_refused_by_the_api_server(
    hub: cluster.ControlPlane, kubectl: testing.Kubectl
) -> None:
    name = f"fence-{uuid.uuid4().hex[:5]}"
    names = [f"{name}-a", f"{name}-b"]
    try:
        for namespace in names:
            kubectl("create", "namespace", namespace)
            kubectl.apply(quota_manifest(name, namespace, {CPU: "3"}))
        testing.eventually(
            lambda: all(enforced(kubectl, namespace) for namespace in names),
            timeout=30,
            what="the quota controller to count both quotas",
        )
        direct = client.Cluster(client.load_api_client(str(hub.kubeconfig)), "hub")
        objects = {
            ("ResourceQuota", namespace, meta.QUOTA_NAME): kubectl.get(
                "resourcequota", meta.QUOTA_NAME, namespace
            )
            for namespace in names
        }
        observed = tenant_types.Observed(
            tenant={"metadata": {"name": name}}, namespaces={}, objects=objects
        )
        applied = tenant_types.Applier(direct, direct, observed, [], [])
        # The stale writer planned a: 3 -> 5 into the slack of 2 its read shows.
        allocation = quotas.Allocation(
            hard={names[0]: {CPU: "5"}, names[1]: {CPU: "3"}},
            decreases={},
            increases={names[0]: {CPU: "5"}},
        )

        tenant.raise_quotas(
            OvertakenRead(direct, kubectl, names), name, a_spec(names), names, allocation, applied
        )

        hards = {
            namespace: (kubectl.get("resourcequota", meta.QUOTA_NAME, namespace) or {})["spec"][
                "hard"
            ][CPU]
            for namespace in names
        }
        assert hards == {names[0]: "2", names[1]: "6"}, hards
        assert applied.conflicts == [f"ResourceQuota {names[0]}/{meta.QUOTA_NAME}"]
        assert applied.errors == []
    finally:
        kubectl.run("delete", "namespace", *names, "--wait=false")


# -- two replicas with skewed clocks under a burst ----------------------------------------


@dataclass
class QuotaWatch(QuotaVersions):
    """The sums of spec.hard and status.used at every version, and each above the quota."""

    over: list[tuple[str, str, int]] = field(default_factory=list)  # (hard|used, resource, sum)

    def on_version(self) -> None:
        for resource, limit in TENANT_QUOTA.items():
            for what, part, field_name in (
                ("spec.hard", "spec", "hard"),
                ("status.used", "status", "used"),
            ):
                total = self.total(part, field_name, resource)
                if total > quantity.to_milli(limit):
                    self.over.append((what, resource, total))


def start_replica(
    kubeconfig: Path, lease: tuple[str, str], identity: str, skew: float, site: Path
) -> testing.OperatorProcess:
    return testing.OperatorProcess(
        kubeconfig,
        REPO_ROOT / ".cache" / "logs" / f"operator-{lease[1]}-{identity}.log",
        env={
            "GOVCLOUD_STANDALONE": "false",
            "GOVCLOUD_LEASE_NAMESPACE": lease[0],
            "GOVCLOUD_LEASE_NAME": lease[1],
            "GOVCLOUD_IDENTITY": identity,
            "GOVCLOUD_LEASE_DURATION_SECONDS": str(DURATION),
            "GOVCLOUD_LEASE_RENEW_DEADLINE_SECONDS": str(RENEW_DEADLINE),
            "GOVCLOUD_LEASE_RETRY_PERIOD_SECONDS": str(RETRY),
            "GOVCLOUD_RESYNC_SECONDS": "5",
            "GOVCLOUD_TEST_CLOCK_SKEW": str(skew),
            "PYTHONPATH": str(site),
        },
    )


def start_at_once(replicas: list[testing.OperatorProcess]) -> None:
    """Start every replica at the same moment (each waits for its own /metrics)."""
    failures: list[BaseException] = []

    def start(replica: testing.OperatorProcess) -> None:
        try:
            replica.start()
        except BaseException as error:  # reported below, on the test's thread
            failures.append(error)

    threads = [threading.Thread(target=start, args=(replica,)) for replica in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures


@pytest.fixture
def only_these_replicas(operator: testing.OperatorProcess) -> Iterator[None]:
    """The session's standalone operator would be a third, unfenced writer: stopped for the
    test, started again after it."""
    operator.stop()
    try:
        yield
    finally:
        operator.start()


@pytest.fixture
def lease_namespace(kubectl: testing.Kubectl) -> Iterator[str]:
    name = f"fence-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false")


class Burst:
    """Pods created as fast as admission takes them in every namespace of the tenant; after
    each refusal the oldest one is deleted, so usage and the split keep moving."""

    def __init__(self, hub: cluster.ControlPlane, namespaces: list[str]) -> None:
        self.core = k8s_client.CoreV1Api(
            k8s_config.new_client_from_config(config_file=str(hub.kubeconfig))
        )
        self.namespaces = namespaces
        self.stop = threading.Event()
        self.admitted = 0
        self.refused = 0
        self.deleted = 0

    def run(self, namespace: str) -> None:
        mine: list[str] = []
        while not self.stop.is_set():
            pod = helpers.restricted_pod(f"burst-{uuid.uuid4().hex[:6]}", namespace)
            pod["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "100m"}}
            try:
                self.core.create_namespaced_pod(namespace, pod)
                mine.append(pod["metadata"]["name"])
                self.admitted += 1
            except ApiException as error:
                if error.status == 409:  # quota admission lost its compare-and-swap: again
                    continue
                if error.status != 403:
                    raise
                self.refused += 1
                if mine:
                    self.core.delete_namespaced_pod(mine.pop(0), namespace, grace_period_seconds=0)
                    self.deleted += 1
                self.stop.wait(0.05)


def test_two_replicas_with_clocks_an_hour_apart_never_over_commit_under_a_burst(
    hub: cluster.ControlPlane,
    kubectl: testing.Kubectl,
    crds: None,
    only_these_replicas: None,
    lease_namespace: str,
    tmp_path: Path,
) -> None:
    (tmp_path / "sitecustomize.py").write_text(SITECUSTOMIZE)
    lease = (lease_namespace, f"fence-{uuid.uuid4().hex[:6]}")
    replicas = [
        start_replica(hub.kubeconfig, lease, "replica-ahead", SKEW_SECONDS, tmp_path),
        start_replica(hub.kubeconfig, lease, "replica-behind", -SKEW_SECONDS, tmp_path),
    ]
    name = f"fence-{uuid.uuid4().hex[:5]}"
    namespaces = [f"{name}-{short}" for short in "abc"]
    watch = QuotaWatch(k8s_config.new_client_from_config(config_file=str(hub.kubeconfig)), name)
    watcher = threading.Thread(target=watch.run, daemon=True)
    burst = Burst(hub, namespaces)
    workers = [threading.Thread(target=burst.run, args=(ns,), daemon=True) for ns in namespaces]
    try:
        start_at_once(replicas)
        watcher.start()
        kubectl.apply(helpers.tenant_manifest(name, namespaces=("a", "b", "c"), quota=TENANT_QUOTA))
        testing.eventually(
            lambda: (
                all(kubectl.get("sa", "default", ns) for ns in namespaces)
                and all(enforced(kubectl, ns) for ns in namespaces)
            ),
            timeout=60,
            what="the tenant's namespaces with enforced quotas",
        )
        for worker in workers:
            worker.start()
        for namespace in namespaces:
            web = helpers.deployment("web", namespace, replicas=6)
            web["spec"]["template"]["spec"]["containers"][0]["resources"] = {
                "requests": {"cpu": "200m"}
            }
            kubectl.apply(json.dumps(web))
        assert skewed_by(kubectl, lease) > SKEW_SECONDS / 2, "the leader's clock is not skewed"
        for _ in range(HANDOVERS):
            time.sleep(BURST_SECONDS / 2)  # the burst runs; the watch checks every version
            freeze_the_leader(kubectl, lease, replicas)
        time.sleep(BURST_SECONDS / 2)
        burst.stop.set()
        for worker in workers:
            worker.join(timeout=30)

        print(
            f"{watch.versions} quota versions checked over {HANDOVERS} handovers; pods"
            f" admitted {burst.admitted}, refused {burst.refused}, deleted {burst.deleted}"
        )
        assert watch.errors == []
        assert watch.versions > 10, "the burst moved no quota"
        assert burst.admitted > 0
        assert burst.refused > 0, "the burst never reached the quota"
        assert watch.over == [], watch.over[:10]
    finally:
        burst.stop.set()
        watch.stop.set()
        for replica in replicas:
            if replica.process is not None and replica.process.poll() is None:
                replica.process.send_signal(signal.SIGCONT)
        try:
            kubectl.run("delete", "cloudtenant", name, "--wait=false")
            testing.eventually(
                lambda: kubectl.get("cloudtenant", name) is None,
                timeout=90,
                what=f"CloudTenant {name} to be deleted",
            )
        finally:
            for replica in replicas:
                replica.stop()


def freeze_the_leader(
    kubectl: testing.Kubectl, lease: tuple[str, str], replicas: list[testing.OperatorProcess]
) -> None:
    """SIGSTOP the leader past its lease: the other takes over while the frozen one may be
    mid-pass; thawed, it must stand by and not raise on what it read before."""
    leader = holder_process(kubectl, lease, replicas)
    stood_down = leader.log_path.read_text(errors="replace").count(STOOD_DOWN)
    assert leader.process is not None
    leader.process.send_signal(signal.SIGSTOP)
    other = next(replica for replica in replicas if replica is not leader)
    try:
        testing.eventually(
            lambda: holder_process(kubectl, lease, replicas) is other,
            timeout=DURATION + RETRY + 10,
            what="the other replica to take the Lease over",
        )
    finally:
        leader.process.send_signal(signal.SIGCONT)
    testing.eventually(
        lambda: leader.log_path.read_text(errors="replace").count(STOOD_DOWN) > stood_down,
        timeout=30,
        what="the thawed replica to stand by",
    )


def skewed_by(kubectl: testing.Kubectl, lease: tuple[str, str]) -> float:
    """How far the renewTime the holder last wrote is from our own clock, in seconds."""
    found = kubectl.get("lease", lease[1], lease[0]) or {}
    renewed = datetime.strptime(found["spec"]["renewTime"], "%Y-%m-%dT%H:%M:%S.%fZ")
    return abs((renewed.replace(tzinfo=UTC) - datetime.now(UTC)).total_seconds())


def holder_process(
    kubectl: testing.Kubectl, lease: tuple[str, str], replicas: list[testing.OperatorProcess]
) -> testing.OperatorProcess:
    """The replica that holds the Lease now (waits until one does)."""

    def current() -> testing.OperatorProcess | None:
        found = kubectl.get("lease", lease[1], lease[0]) or {}
        identity = (found.get("spec") or {}).get("holderIdentity")
        for replica in replicas:
            if replica.env["GOVCLOUD_IDENTITY"] == identity:
                return replica
        return None

    found: testing.OperatorProcess = testing.eventually(
        current, timeout=30, what="a replica to hold the Lease"
    )
    return found


# -- two replicas admitting tenants to one site ---------------------------------------------

SITE_PODS = 110  # the sub-center's one kwok node
PLACED_QUOTA = {CPU: "1", "requests.memory": "1Gi", PODS: "30"}  # pods bind: 3 of them fit
PLACED_TENANTS = 8


@dataclass
class Placements:
    """Every version of every CloudTenant: the pods of those placed on `site` at each moment."""

    api: Any
    site: str
    latest: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: int = 0
    most: int = 0
    errors: list[Any] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        custom = k8s_client.CustomObjectsApi(self.api)
        since: dict[str, str] = {}
        while not self.stop.is_set():
            for event in k8s_watch.Watch().stream(
                custom.list_cluster_custom_object,
                "govcloud.io",
                "v1alpha1",
                "cloudtenants",
                timeout_seconds=2,
                **since,
            ):
                if event["type"] == "ERROR":
                    self.errors.append(event["object"])
                    return
                body = event["object"]
                since = {"resource_version": body["metadata"]["resourceVersion"]}
                self.versions += 1
                self.latest[body["metadata"]["name"]] = body
                self.most = max(self.most, self.placed_pods())

    def placed(self) -> list[str]:
        return sorted(name for name, body in self.latest.items() if self.holds(body))

    def holds(self, body: dict[str, Any] | None) -> bool:
        """Whether the tenant holds room on the site: placed there, its quota granted."""
        placement = ((body or {}).get("status") or {}).get("placement") or {}
        granted = helpers.condition(body, "QuotaGranted").get("status") == "True"
        return placement.get("cluster") == self.site and granted

    def settled(self, names: list[str], fit: int) -> bool:
        """Exactly `fit` tenants placed and Ready, the others refused for want of room, each
        at its current generation."""
        ready, refused = 0, 0
        for name in names:
            body = self.latest.get(name)
            if body is None or not helpers.current(body):
                return False
            if self.holds(body) and helpers.condition(body, "Ready").get("status") == "True":
                ready += 1
            elif helpers.condition(body, "Placed").get("status") == "False":
                refused += 1
        return ready == fit and ready + refused == len(names)

    def describe(self, names: list[str]) -> dict[str, Any]:
        """Per tenant: placement, and each condition's type, status and reason."""
        described: dict[str, Any] = {}
        for name in names:
            status = (self.latest.get(name) or {}).get("status") or {}
            described[name] = [
                status.get("placement"),
                [
                    (c["type"], c["status"], c["reason"], c.get("lastTransitionTime"))
                    for c in status.get("conditions") or []
                    if c["type"] in ("QuotaGranted", "Placed")
                ],
            ]
        return described

    def placed_pods(self) -> int:
        return sum(int(self.latest[name]["spec"]["quota"].get(PODS, "0")) for name in self.placed())


def tenants_with(kubectl: testing.Kubectl, kind: str) -> set[str]:
    """The tenants that own objects of `kind` in that cluster (by the tenant label)."""
    items = kubectl.json("get", kind, "-A", "-l", "govcloud.io/tenant")["items"]
    return {item["metadata"]["labels"]["govcloud.io/tenant"] for item in items}


def test_two_replicas_with_clocks_an_hour_apart_never_over_commit_a_site(
    hub: cluster.ControlPlane,
    subcenter: cluster.ControlPlane,
    kubectl: testing.Kubectl,
    site_kubectl: testing.Kubectl,
    crds: None,
    system_namespace: str,
    only_these_replicas: None,
    lease_namespace: str,
    tmp_path: Path,
) -> None:
    """Tenants asking for more than the site holds are placed at once while the leader is
    frozen past its lease: at no version do those placed on the site hold more pods than it
    has, exactly as many as fit are placed, and only theirs let anyone in there."""
    (tmp_path / "sitecustomize.py").write_text(SITECUSTOMIZE)
    lease = (lease_namespace, f"fence-{uuid.uuid4().hex[:6]}")
    replicas = [
        start_replica(hub.kubeconfig, lease, "site-ahead", SKEW_SECONDS, tmp_path),
        start_replica(hub.kubeconfig, lease, "site-behind", -SKEW_SECONDS, tmp_path),
    ]
    sites = sc.Sites(kubectl)
    tenants = sc.PlacedTenants(kubectl, site_kubectl)
    site = helpers.unique("fence-site")
    watch = Placements(k8s_config.new_client_from_config(config_file=str(hub.kubeconfig)), site)
    watcher = threading.Thread(target=watch.run, daemon=True)
    names = [helpers.unique("fence-placed") for _ in range(PLACED_TENANTS)]
    fit = SITE_PODS // int(PLACED_QUOTA[PODS])
    try:
        start_at_once(replicas)
        sites.create(site, sc.kubeconfig_of(subcenter))
        sites.wait_ready(site, timeout=60)
        watcher.start()
        for index, name in enumerate(names):
            tenants.place(
                name,
                site,
                namespaces=("apps",),
                quota=dict(PLACED_QUOTA),
                admins={"groups": [f"{name}-admins"]},
            )
            if index == PLACED_TENANTS // 2:
                freeze_the_leader(kubectl, lease, replicas)
        try:
            testing.eventually(
                lambda: watch.settled(names, fit),
                timeout=120,
                what=f"{fit} tenants placed and Ready, the others refused",
            )
        except testing.WaitTimeoutError as error:
            raise AssertionError(f"{error}: {watch.describe(names)}") from None
        placed = watch.placed()
        on_site = tenants_with(site_kubectl, "namespaces") & set(names)
        with_access = tenants_with(site_kubectl, "rolebindings") & set(names)
        print(
            f"{watch.versions} tenant versions; placed {len(placed)} of {PLACED_TENANTS},"
            f" most pods placed at once {watch.most} of {SITE_PODS}; namespaces of refused"
            f" tenants left on the site by the frozen leader: {len(on_site - set(placed))}"
        )
        assert watch.errors == []
        assert watch.most <= SITE_PODS, (watch.most, watch.describe(names))
        assert len(placed) == fit, watch.describe(names)
        # A pass of the frozen leader may have made a tenant's namespace before it was frozen;
        # refused, that tenant holds no place and no one is let in there (no RoleBinding).
        assert with_access == set(placed), (with_access, placed)
        assert set(placed) <= on_site, (on_site, placed)
    finally:
        watch.stop.set()
        for replica in replicas:
            if replica.process is not None and replica.process.poll() is None:
                replica.process.send_signal(signal.SIGCONT)
        try:
            tenants.cleanup()
            sites.cleanup()
        finally:
            for replica in replicas:
                replica.stop()
