"""A site that is dead, slow, huge or hostile costs the hub little: gate, pagination, parsing."""

from __future__ import annotations

import base64
import threading
import time
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
import urllib3
import yaml
from federation_fixtures import kubeconfig

from govcloud.api.v1alpha1 import cloudtenant, subcenter
from govcloud.k8s import client, clusters
from govcloud.reconcile import placement
from govcloud.reconcile import subcenter as subcenter_reconcile

Manifest = dict[str, Any]
SITE = "feixi"
NAMESPACE = "govcloud-system"


# -- the gate: breaker -----------------------------------------------------------------------


def test_a_site_its_probes_hold_unreachable_is_not_dialled() -> None:
    gate = clusters.SiteGate(SITE)
    gate.mark("the API server did not answer in time")
    dialled: list[str] = []

    with pytest.raises(clusters.SiteRefusedError) as refused, gate.call("apply"):
        dialled.append("apply")

    assert dialled == []
    assert "not attempted" in str(refused.value)
    assert "did not answer in time" in str(refused.value)
    gate.mark("")  # the next probe got an answer
    with gate.call("apply"):
        dialled.append("apply")
    assert dialled == ["apply"]


def test_the_status_is_heeded_only_until_this_process_has_probed_the_site() -> None:
    fresh = clusters.SiteGate(SITE)
    fresh.observe("cannot connect to the API server")  # what a restart finds in the status
    with pytest.raises(clusters.SiteRefusedError):
        fresh.check("get")

    probed = clusters.SiteGate(SITE)
    probed.mark("")
    probed.observe("cannot connect to the API server")  # a status older than the probe
    probed.check("get")


# -- the gate: bulkhead ----------------------------------------------------------------------


def _hold(gate: clusters.SiteGate, release: threading.Event, entered: threading.Event) -> None:
    with gate.call("apply"):
        entered.set()
        release.wait(10)


def test_a_slow_site_holds_only_its_slots_and_every_other_call_fails_at_once() -> None:
    gate = clusters.SiteGate(SITE, limit=2, slot_wait=10.0, slow_call=0.3)
    release = threading.Event()
    holders = []
    for _ in range(2):
        entered = threading.Event()
        thread = threading.Thread(target=_hold, args=(gate, release, entered), daemon=True)
        thread.start()
        assert entered.wait(5)
        holders.append(thread)
    try:
        started = time.monotonic()
        with pytest.raises(clusters.SiteRefusedError) as refused, gate.call("apply"):
            pass
        waited = time.monotonic() - started
        # It waited only until the calls in flight had run slow_call (0.3 s), not slot_wait.
        assert waited < 3.0, waited
        assert "slow to answer" in str(refused.value)
        assert gate.in_flight == 2
    finally:
        release.set()
        for thread in holders:
            thread.join(5)
    assert gate.in_flight == 0
    with gate.call("apply"):  # free again
        assert gate.in_flight == 1


def test_a_busy_but_brisk_site_makes_calls_wait_for_a_slot_not_fail() -> None:
    gate = clusters.SiteGate(SITE, limit=1, slot_wait=10.0, slow_call=5.0)
    release = threading.Event()
    entered = threading.Event()
    holder = threading.Thread(target=_hold, args=(gate, release, entered), daemon=True)
    holder.start()
    assert entered.wait(5)
    threading.Timer(0.2, release.set).start()

    with gate.call("apply"):
        assert gate.in_flight == 1
    holder.join(5)
    assert gate.refused == 0


# -- the site client fails fast --------------------------------------------------------------


def test_a_call_to_a_site_that_does_not_answer_gives_up_after_seconds_not_thirty() -> None:
    site = clusters.SiteCluster(SimpleNamespace(), SITE)
    attempts: list[float] = []

    def timing_out() -> None:
        attempts.append(time.monotonic())
        raise urllib3.exceptions.ConnectTimeoutError(None, "connect timed out (10.1.2.3:6443)")

    started = time.monotonic()
    with pytest.raises(client.ApiError) as failed:
        site._retry("get", timing_out)

    took = time.monotonic() - started
    assert took < clusters.SITE_RETRY_DEADLINE + 3.0, took  # the hub's deadline is 30 s
    assert len(attempts) >= 1
    # What reaches a status says what failed, never the site's addresses.
    assert str(failed.value) == f"get failed: sub-center {SITE} did not answer"
    assert "10.1.2.3" not in str(failed.value)


# -- LISTs are paginated and capped ----------------------------------------------------------


class Pages:
    """A resource whose LIST answers `total` objects in pages of at most `limit`."""

    def __init__(self, total: int, kind: str = "ResourceQuota") -> None:
        self.total = total
        self.kind = kind
        self.asked: list[dict[str, Any]] = []

    def get(self, **query: Any) -> Any:
        self.asked.append(query)
        offset = int(query.get("_continue") or 0)
        limit = int(query["limit"])
        end = min(self.total, offset + limit)
        items = [
            {"metadata": {"name": f"q{index}", "namespace": "apps"}} for index in range(offset, end)
        ]
        metadata = {"continue": str(end)} if end < self.total else {}
        page = {"kind": f"{self.kind}List", "items": items, "metadata": metadata}
        return SimpleNamespace(to_dict=lambda: page)


def _site_listing(pages: Pages, cap: int) -> clusters.SiteCluster:
    site = clusters.SiteCluster(SimpleNamespace(), SITE, list_cap=cap)
    site.resource = lambda api_version, kind: pages  # type: ignore[method-assign]
    return site


def test_a_site_list_is_read_page_by_page() -> None:
    pages = Pages(1_201)
    site = _site_listing(pages, cap=5_000)

    items = site.list("v1", "ResourceQuota", label_selector="a=b")

    assert len(items) == 1_201
    assert [query["limit"] for query in pages.asked] == [clusters.LIST_PAGE] * 3
    assert [query["_continue"] for query in pages.asked] == [None, "500", "1000"]
    assert {query["label_selector"] for query in pages.asked} == {"a=b"}


def test_a_site_holding_more_than_the_cap_is_refused_without_reading_it_all() -> None:
    pages = Pages(100_000)
    site = _site_listing(pages, cap=1_000)

    with pytest.raises(clusters.SiteRefusedError) as refused:
        site.list("v1", "ResourceQuota")

    assert "more than 1000 ResourceQuota" in str(refused.value)
    assert "GOVCLOUD_SITE_LIST_CAP" in str(refused.value)
    assert len(pages.asked) == 3  # 500 + 500, then the page past the cap: no further


def test_a_page_larger_than_asked_is_refused() -> None:
    class Flood(Pages):
        def get(self, **query: Any) -> Any:
            return super().get(**{**query, "limit": 10_000})

    with pytest.raises(clusters.SiteRefusedError):
        _site_listing(Flood(2_000), cap=100_000).list("v1", "Namespace")


def test_nodes_are_listed_page_by_page_and_a_site_with_too_many_is_unhealthy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[Any] = []

    class CoreV1Api:
        def __init__(self, api: Any) -> None:
            pass

        def list_node(self, **query: Any) -> Any:
            asked.append(query.get("_continue"))
            offset = int(query.get("_continue") or 0)
            end = min(1_200, offset + int(query["limit"]))
            items = [_node("4", "8Gi", "110") for _ in range(offset, end)]
            token = str(end) if end < 1_200 else None
            return SimpleNamespace(items=items, metadata=SimpleNamespace(_continue=token))

    monkeypatch.setattr("govcloud.k8s.clusters.k8s_client.CoreV1Api", CoreV1Api)

    assert len(clusters.list_nodes(SimpleNamespace(), 2.0, cap=5_000)) == 1_200
    assert asked == [None, "500", "1000"]
    with pytest.raises(clusters.TooManyNodesError):
        clusters.list_nodes(SimpleNamespace(), 2.0, cap=1_000)


# -- what a site reports is untrusted --------------------------------------------------------


def _node(cpu: Any, memory: Any, pods: Any) -> Any:
    allocatable = {"cpu": cpu, "memory": memory, "pods": pods}
    return SimpleNamespace(status=SimpleNamespace(allocatable=allocatable))


@pytest.mark.parametrize(
    ("cpu", "memory", "pods"),
    [
        ("1e999", "8Gi", "110"),  # a million cores is the most one object may claim
        ("4", "-8Gi", "110"),  # negative
        ("4", "8Gi", "lots"),  # not a quantity
        ("4", "9" * 70, "110"),  # longer than the grammar takes
        ("4", "2000Ei", "110"),  # more than an exbibyte
        ("4", "8Gi", "1e12"),  # a trillion pods
    ],
)
def test_a_node_reporting_absurd_allocatable_is_not_counted(
    cpu: str, memory: str, pods: str
) -> None:
    totals = clusters._sum_allocatable([_node("4", "8Gi", "110"), _node(cpu, memory, pods)])

    assert totals == {"cpu": "4", "memory": "8Gi", "pods": "110"}


def test_absurd_quota_amounts_and_labels_of_a_site_are_dropped_not_billed() -> None:
    item = {
        "metadata": {
            "name": "quota",
            "namespace": "apps",
            "labels": {"govcloud.io/tenant": "water", "evil": "x" * 100, "bad": "a b"},
        },
        "spec": {"hard": {"requests.cpu": "4", "pods": "1e30"}},
        "status": {
            "hard": {"requests.cpu": "4", "requests.memory": "8Gi"},
            "used": {
                "requests.cpu": "1e999",
                "requests.memory": "-1",
                "pods": "3",
                "bad key!": "1",
                "requests.storage": 5,
            },
        },
    }

    sane = clusters.untrusted("ResourceQuota", item)

    assert sane["metadata"]["labels"] == {"govcloud.io/tenant": "water"}
    assert sane["spec"]["hard"] == {"requests.cpu": "4"}
    assert sane["status"]["hard"] == {"requests.cpu": "4", "requests.memory": "8Gi"}
    assert sane["status"]["used"] == {"pods": "3", "requests.storage": "5"}


def test_site_amounts_within_bounds_parse_exactly() -> None:
    assert clusters.amount("requests.cpu", "1500m") == Decimal("1.5")
    assert clusters.amount("limits.memory", "1Ei") == Decimal(2**60)
    assert clusters.amount("count/pods", "0") == Decimal(0)
    assert clusters.amount("requests.cpu", True) is None
    assert clusters.amount("requests.cpu", None) is None


# -- a tenant's pass reads no Secret ---------------------------------------------------------


class Hub(client.Cluster):
    """The hub as far as these passes read it: SubCenters, CloudTenants and one Secret."""

    def __init__(self, objects: dict[tuple[str, str], Manifest]) -> None:
        self.name = "hub"
        self.objects = objects
        self.gets: list[tuple[str, str]] = []
        self.status_patches: list[tuple[str, Manifest]] = []

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> Manifest | None:
        self.gets.append((kind, name))
        return self.objects.get((kind, name))

    def list(self, api_version: str, kind: str, *args: Any, **kwargs: Any) -> list[Manifest]:
        return [obj for (found, _), obj in self.objects.items() if found == kind]

    def patch_status(self, api_version: str, kind: str, name: str, *args: Any, **_: Any) -> Any:
        self.status_patches.append((name, args[0]))
        return {}


def _secret(name: str) -> Manifest:
    text = yaml.safe_dump(kubeconfig({"token": "opaque-token"})).encode()
    return {"metadata": {"name": name}, "data": {"kubeconfig": base64.b64encode(text).decode()}}


def _site(conditions: list[Manifest]) -> Manifest:
    return {
        "metadata": {"name": SITE},
        "spec": {
            "displayName": "肥西",
            "region": "肥西县",
            "tier": "county",
            "mode": "federated",
            "maxSecurityLevel": 2,
            "kubeconfigSecretRef": {"name": "feixi-kubeconfig", "namespace": NAMESPACE},
        },
        "status": {"conditions": conditions},
    }


def _tenant(name: str, placed: bool = True) -> Manifest:
    body: Manifest = {
        "metadata": {"name": name, "uid": f"uid-{name}"},
        "spec": {
            "displayName": "水务",
            "unit": {"code": name, "tier": "city"},
            "contacts": [{"name": "测试员", "email": f"{name}@test.gov.cn"}],
            "securityLevel": 2,
            "placement": {"subCenter": SITE},
            "quota": {"requests.cpu": "2"},
            "namespaces": [{"name": "apps"}],
            "admins": {"groups": ["water-admins"]},
        },
    }
    if placed:
        body["status"] = {"placement": {"cluster": SITE}, "quota": {"hard": {"requests.cpu": "2"}}}
    return body


def _registry(hub: Hub) -> clusters.ClusterRegistry:
    return clusters.ClusterRegistry(hub, secret_namespace=NAMESPACE)


def _spec(body: Manifest) -> subcenter.SubCenterSpec:
    return subcenter.SubCenterSpec.model_validate(body["spec"])


def test_passes_use_the_credentials_the_last_probe_read_and_rotation_is_seen_by_the_probe() -> None:
    site = _site([])
    hub = Hub({("SubCenter", SITE): site, ("Secret", "feixi-kubeconfig"): _secret("x")})
    registry = _registry(hub)

    probed = placement.open_site(registry, SITE, _spec(site), fresh=True)
    for _ in range(20):
        passed = placement.open_site(registry, SITE, _spec(site))
        assert passed.secret.fingerprint == probed.secret.fingerprint

    assert hub.gets.count(("Secret", "feixi-kubeconfig")) == 1
    rotated = kubeconfig({"token": "rotated-token"})
    hub.objects[("Secret", "feixi-kubeconfig")]["data"]["kubeconfig"] = base64.b64encode(
        yaml.safe_dump(rotated).encode()
    ).decode()
    placement.open_site(registry, SITE, _spec(site), fresh=True)  # the next probe
    after = placement.open_site(registry, SITE, _spec(site))
    assert after.secret.fingerprint != probed.secret.fingerprint
    assert hub.gets.count(("Secret", "feixi-kubeconfig")) == 2


def test_a_deleted_secret_is_forgotten_so_passes_do_not_keep_using_it() -> None:
    site = _site([])
    hub = Hub({("SubCenter", SITE): site, ("Secret", "feixi-kubeconfig"): _secret("x")})
    registry = _registry(hub)
    placement.open_site(registry, SITE, _spec(site), fresh=True)

    del hub.objects[("Secret", "feixi-kubeconfig")]
    with pytest.raises(clusters.CredentialsError):
        placement.open_site(registry, SITE, _spec(site), fresh=True)
    with pytest.raises(clusters.CredentialsError):
        placement.open_site(registry, SITE, _spec(site))


def test_a_tenant_on_a_site_held_unreachable_is_reported_without_dialling_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    down = {"type": "Reachable", "status": "False", "message": "cannot connect to the API server"}
    site = _site([down])
    body = _tenant("water")
    hub = Hub(
        {
            ("SubCenter", SITE): site,
            ("Secret", "feixi-kubeconfig"): _secret("x"),
            ("CloudTenant", "water"): body,
        }
    )
    registry = _registry(hub)

    def dialled(*args: Any, **kwargs: Any) -> str:
        raise AssertionError("the site's identity was read from a site known to be down")

    monkeypatch.setattr(registry, "kube_system_uid", dialled)
    spec = cloudtenant.CloudTenantSpec.model_validate(body["spec"])

    target = placement.resolve(hub, registry, body, spec)

    assert target.unreachable == "cannot connect to the API server"
    assert target.cluster is not None
    # Whatever would still call the site now fails at once: the gate knows from the status.
    with pytest.raises(clusters.SiteRefusedError):
        target.cluster.get("v1", "Namespace", "water-apps")


# -- admissions are fenced by the Lease ------------------------------------------------------


def test_a_replica_that_does_not_hold_the_lease_admits_no_tenant(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ready = {"type": "Ready", "status": "True", "reason": "Healthy"}
    site = _site([ready])
    site["status"]["allocatable"] = {"cpu": "64", "memory": "256Gi", "pods": "1000"}
    newcomer = _tenant("roads", placed=False)
    hub = Hub({("SubCenter", SITE): site, ("CloudTenant", "roads"): newcomer})
    spec = cloudtenant.CloudTenantSpec.model_validate(newcomer["spec"])
    admissions = placement.Admissions()
    monkeypatch.setattr(placement, "ADMISSIONS", admissions)
    site_spec = _spec(site)

    admissions.fence = lambda: False
    with pytest.raises(placement.NotLeadingError):
        placement.admit(hub, site, newcomer, spec, site_spec)
    assert admissions.admitted(SITE) == frozenset()
    assert hub.status_patches == []

    admissions.fence = lambda: True
    assert placement.admit(hub, site, newcomer, spec, site_spec).placed
    assert admissions.admitted(SITE) == {"uid-roads"}
    assert hub.status_patches == [("roads", {"placement": {"cluster": SITE, "message": None}})]


def test_a_deleted_tenant_and_a_deleted_site_are_forgotten() -> None:
    admissions = placement.Admissions()
    admissions.record(SITE, frozenset({"uid-a", "uid-b"}))
    admissions.record_growth(SITE, "uid-a", {"cpu": "2"})

    admissions.forget_tenant("uid-a")
    assert admissions.admitted(SITE) == {"uid-b"}
    assert admissions.grown(SITE) == {}
    admissions.forget(SITE)
    assert admissions.admitted(SITE) == frozenset()


# -- a probe wakes the site's tenants only when its verdict changes --------------------------


def _status(ready: str, reachable: str) -> Manifest:
    return {
        "conditions": [
            {"type": "Ready", "status": ready},
            {"type": "Reachable", "status": reachable},
            {"type": "CredentialsValid", "status": "True"},
        ]
    }


def test_only_a_changed_ready_or_reachable_verdict_wakes_the_sites_tenants() -> None:
    healthy = _status("True", "True")
    assert not subcenter_reconcile.verdict_changed({"status": healthy}, healthy)
    still_down = _status("False", "False")
    assert not subcenter_reconcile.verdict_changed({"status": still_down}, still_down)
    assert subcenter_reconcile.verdict_changed({"status": healthy}, _status("False", "True"))
    assert subcenter_reconcile.verdict_changed({"status": healthy}, _status("False", "False"))
    assert subcenter_reconcile.verdict_changed({}, healthy)  # the first probe
    expiring = _status("True", "True")
    expiring["conditions"][2]["status"] = "False"
    assert not subcenter_reconcile.verdict_changed({"status": healthy}, expiring)
