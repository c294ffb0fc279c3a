"""Informers and the cached cluster against the real API server: events, reads, 410, restarts."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from govcloud.dev import cluster, etcd, testing
from govcloud.k8s import cache, client

pytestmark = pytest.mark.integration

LABEL = "cache-test"
Manifest = dict[str, Any]


@pytest.fixture
def namespace(kubectl: testing.Kubectl) -> Iterator[str]:
    name = f"cache-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false")


class CountingCluster(client.Cluster):
    """The API server, with every read it answers written down."""

    def __init__(self, hub: cluster.ControlPlane) -> None:
        super().__init__(client.load_api_client(str(hub.kubeconfig)), "hub")
        self.reads: list[str] = []

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> Manifest | None:
        self.reads.append(f"get {kind} {name}")
        return super().get(api_version, kind, name, namespace)

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        **options: Any,
    ) -> list[Manifest]:
        self.reads.append(f"list {kind} {label_selector}")
        return super().list(api_version, kind, namespace, label_selector, **options)


class Wire:
    """Every raw GET the informer sends (by wrapping its ApiClient), and how each ended."""

    def __init__(self, direct: client.Cluster) -> None:
        self.queries: list[dict[str, Any]] = []
        self.failures: list[int | str] = []
        self.watch_responses: list[Any] = []
        real = direct.api.call_api

        def recording(path: str, method: str, *args: Any, **kwargs: Any) -> Any:
            query = dict(kwargs.get("query_params") or [])
            self.queries.append(query)
            try:
                response = real(path, method, *args, **kwargs)
            except ApiException as error:
                self.failures.append(error.status)
                raise
            except Exception as error:
                self.failures.append(type(error).__name__)
                raise
            if query.get("watch") == "true":
                self.watch_responses.append(response)
            return response

        direct.api.call_api = recording

    def lists(self) -> list[dict[str, Any]]:
        """First pages of the informer's LISTs (the dynamic client never sends a limit)."""
        return [q for q in self.queries if "limit" in q and "continue" not in q]

    def watches(self) -> list[dict[str, Any]]:
        return [q for q in self.queries if q.get("watch") == "true"]


def configmap(name: str, namespace: str, **labels: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": {LABEL: namespace, **labels}},
        "data": {"k": "v"},
    }


def versions_by_kubectl(kubectl: testing.Kubectl, namespace: str) -> dict[str, str]:
    listing = kubectl.json("get", "configmaps", "-n", namespace, "-l", f"{LABEL}={namespace}")
    return {i["metadata"]["name"]: i["metadata"]["resourceVersion"] for i in listing["items"]}


def versions_in(informer: cache.Informer) -> dict[str, str]:
    return {i["metadata"]["name"]: i["metadata"]["resourceVersion"] for i in informer.store.list()}


def recorder() -> tuple[list[tuple[str, str, str | None]], cache.EventHandler]:
    events: list[tuple[str, str, str | None]] = []

    def on_event(event_type: str, kind: str, obj: Manifest) -> None:
        labels = obj["metadata"].get("labels") or {}
        events.append((event_type, obj["metadata"]["name"], labels.get("v")))

    return events, on_event


def selective(direct: client.Cluster, namespace: str, **options: Any) -> cache.Informer:
    return cache.Informer(
        direct, "v1", "ConfigMap", label_selector=f"{LABEL}={namespace}", **options
    )


@pytest.fixture
def direct(hub: cluster.ControlPlane) -> CountingCluster:
    return CountingCluster(hub)


def test_an_informer_sees_configmaps_created_updated_and_deleted(
    kubectl: testing.Kubectl, namespace: str, direct: CountingCluster
) -> None:
    kubectl.apply(configmap("before", namespace, v="1"))
    events, on_event = recorder()
    informer = selective(direct, namespace, on_event=on_event)
    informer.start()
    try:
        assert informer.wait_synced(30)
        assert events == [("ADDED", "before", "1")]
        kubectl.apply(configmap("live", namespace, v="1"))
        testing.eventually(lambda: ("ADDED", "live", "1") in events, what="ADDED live")
        kubectl("label", "configmap", "live", "-n", namespace, "v=2", "--overwrite")
        testing.eventually(lambda: ("MODIFIED", "live", "2") in events, what="MODIFIED live")
        live = informer.store.get("live", namespace)
        assert live is not None
        assert live["metadata"]["labels"]["v"] == "2"
        assert (
            live["metadata"]["resourceVersion"] == versions_by_kubectl(kubectl, namespace)["live"]
        )
        assert "managedFields" not in live["metadata"]
        kubectl("delete", "configmap", "live", "-n", namespace)
        testing.eventually(lambda: ("DELETED", "live", "2") in events, what="DELETED live")
        assert informer.store.get("live", namespace) is None
        kubectl("label", "configmap", "before", "-n", namespace, f"{LABEL}-")
        testing.eventually(lambda: ("DELETED", "before", "1") in events, what="left selection")
        assert len(informer.store) == 0
        assert direct.reads == []
    finally:
        informer.stop()
    assert not informer.running


def test_a_cached_cluster_reads_the_store_and_sends_what_it_cannot_answer_to_the_api_server(
    kubectl: testing.Kubectl, namespace: str, direct: CountingCluster
) -> None:
    kubectl.apply(configmap("gold", namespace, tier="gold"))
    kubectl.apply(configmap("silver", namespace, tier="silver"))
    cached = cache.CachedCluster(direct, [selective(direct, namespace)])
    cached.start()
    try:
        assert cached.wait_synced(30)
        selector = f"{LABEL}={namespace},tier=gold"
        found = cached.list("v1", "ConfigMap", namespace, selector)
        assert [(i["apiVersion"], i["kind"], i["metadata"]["name"]) for i in found] == [
            ("v1", "ConfigMap", "gold")
        ]
        by_kubectl = kubectl.json("get", "configmaps", "-n", namespace, "-l", selector)["items"]
        assert (
            found[0]["metadata"]["resourceVersion"] == by_kubectl[0]["metadata"]["resourceVersion"]
        )
        assert found[0]["data"] == by_kubectl[0]["data"]
        silver = cached.get("v1", "ConfigMap", "silver", namespace)
        assert silver is not None
        assert silver["metadata"]["labels"]["tier"] == "silver"
        assert cached.cached_objects() == {"ConfigMap": 2}
        assert direct.reads == []

        everywhere = cached.list("v1", "ConfigMap", None, f"tier=gold,{LABEL}")
        assert [i["metadata"]["namespace"] for i in everywhere] == [namespace]
        root_ca = cached.get("v1", "ConfigMap", "kube-root-ca.crt", namespace)
        assert root_ca is not None  # not in the selective store: the API server has it
        assert cached.list("v1", "Namespace", None, None)
        assert direct.reads == [
            f"list ConfigMap tier=gold,{LABEL}",
            "get ConfigMap kube-root-ca.crt",
            "list Namespace None",
        ]
    finally:
        cached.stop()


def test_a_write_is_read_back_at_once_without_waiting_for_the_watch(
    kubectl: testing.Kubectl, namespace: str, direct: CountingCluster
) -> None:
    events, on_event = recorder()
    informer = cache.Informer(direct, "v1", "ConfigMap", on_event=on_event)
    cached = cache.CachedCluster(direct, [informer])
    cached.start()
    try:
        assert cached.wait_synced(30)
        informer.stop()  # no watch event can arrive now: what we read came from our writes
        events.clear()
        written = cached.apply(configmap("written", namespace, v="1"))
        found = cached.get("v1", "ConfigMap", "written", namespace)
        assert found is not None
        assert found["metadata"]["resourceVersion"] == written["metadata"]["resourceVersion"]
        assert "managedFields" not in found["metadata"]
        cached.patch_merge(
            "v1", "ConfigMap", "written", {"metadata": {"labels": {"v": "2"}}}, namespace
        )
        listed = cached.list("v1", "ConfigMap", namespace, f"{LABEL}={namespace}")
        assert [i["metadata"]["labels"]["v"] for i in listed] == ["2"]
        assert cached.delete("v1", "ConfigMap", "written", namespace)
        assert cached.get("v1", "ConfigMap", "written", namespace) is None
        assert kubectl.get("configmap", "written", namespace) is None
        assert direct.reads == []
        assert events == []  # our own writes wake no one

        informer.start()  # resumes from before the writes: their older events change nothing
        marker = cached.direct.apply(configmap("marker", namespace))
        testing.eventually(
            lambda: informer.store.get("marker", namespace) is not None, what="the watch resumed"
        )
        assert cached.get("v1", "ConfigMap", "written", namespace) is None
        assert [e for e in events if e[1] in ("written", "marker")] == [("ADDED", "marker", None)]
        assert marker["metadata"]["name"] == "marker"
    finally:
        cached.stop()


def cut(response: Any) -> bool:
    """Shut a watch's socket under its reader; False when the watch has already ended."""
    try:
        response.shutdown()
    except RuntimeError:  # "connection has already been released to the pool"
        return False
    return True


def test_a_dropped_watch_resumes_where_it_was_without_listing_again(
    kubectl: testing.Kubectl, namespace: str, direct: CountingCluster
) -> None:
    wire = Wire(direct)
    informer = selective(direct, namespace, watch_seconds=1)  # the server ends each watch
    informer.start()
    try:
        assert informer.wait_synced(30)
        kubectl.apply(configmap("one", namespace))
        testing.eventually(lambda: informer.store.get("one", namespace), what="one")
        testing.eventually(lambda: len(wire.watches()) >= 4, what="watches ended by the server")
        # And one cut from under the reader: the latest watch, unless the server ended it just
        # now (its connection is back in the pool), then the next one.
        testing.eventually(lambda: cut(wire.watch_responses[-1]), what="a watch cut")
        kubectl.apply(configmap("two", namespace))
        testing.eventually(lambda: informer.store.get("two", namespace), what="two")
        assert versions_in(informer) == versions_by_kubectl(kubectl, namespace)
        assert len(wire.lists()) == 1
        assert informer.lists == 1
        assert informer.expired == 0
        resumed = [int(q["resourceVersion"]) for q in wire.watches()]
        assert resumed == sorted(resumed)
        assert resumed[0] > 0
    finally:
        informer.stop()


def test_a_resource_version_compacted_away_relists_and_reports_only_the_differences(
    hub: cluster.ControlPlane, kubectl: testing.Kubectl, namespace: str, direct: CountingCluster
) -> None:
    for name in ("keep-1", "keep-2", "change", "drop"):
        kubectl.apply(configmap(name, namespace, v="1"))
    wire = Wire(direct)
    events, on_event = recorder()
    informer = selective(direct, namespace, on_event=on_event)
    informer.start()
    assert informer.wait_synced(30)
    informer.stop()
    seen = informer.resource_version
    assert seen is not None
    events.clear()
    try:
        kubectl("label", "configmap", "change", "-n", namespace, "v=2", "--overwrite")
        kubectl("delete", "configmap", "drop", "-n", namespace)
        kubectl.apply(configmap("new", namespace, v="1"))
        # The history after `seen` is gone from etcd, and the restarted API server's watch
        # cache begins after it: resuming from `seen` can only be answered 410 Gone.
        assert etcd.compact(hub) > int(seen)
        hub.stop_component("kube-apiserver")
        hub.start_component("kube-apiserver")
        informer.start()
        testing.eventually(lambda: informer.lists == 2, timeout=60, what="a re-list")
        testing.eventually(
            lambda: versions_in(informer) == versions_by_kubectl(kubectl, namespace),
            what="the store to match the API server",
        )
        assert informer.expired >= 1
        assert len(wire.lists()) == 2
        assert sorted(events) == [
            ("ADDED", "new", "1"),
            ("DELETED", "drop", "1"),
            ("MODIFIED", "change", "2"),
        ]
    finally:
        informer.stop()


def test_an_api_server_restart_is_survived_and_the_store_converges(
    hub: cluster.ControlPlane, kubectl: testing.Kubectl, namespace: str, direct: CountingCluster
) -> None:
    kubectl.apply(configmap("a", namespace, v="1"))
    wire = Wire(direct)
    informer = selective(direct, namespace)
    informer.start()
    try:
        assert informer.wait_synced(30)
        hub.stop_component("kube-apiserver")
        attempts = len(wire.queries)
        testing.eventually(
            lambda: len(wire.failures) >= 2 and len(wire.queries) >= attempts + 2,
            what="the informer to keep trying while the API server is down",
        )
        assert informer.running
        hub.start_component("kube-apiserver")
        kubectl("label", "configmap", "a", "-n", namespace, "v=2", "--overwrite")
        kubectl.apply(configmap("b", namespace, v="1"))
        testing.eventually(
            lambda: versions_in(informer) == versions_by_kubectl(kubectl, namespace),
            timeout=60,
            what="the store to match the API server",
        )
        assert informer.running
        assert informer.synced
    finally:
        hub.start_component("kube-apiserver")  # a no-op unless the test failed while down
        informer.stop()
