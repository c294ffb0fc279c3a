"""The informer cache without a cluster: selectors, the indexed store, versions, re-list diffs."""

from __future__ import annotations

import json
import threading
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from govcloud import constants
from govcloud.api.v1alpha1 import cloudtenant
from govcloud.desired import meta, quotas
from govcloud.desired import tenant as desired_tenant
from govcloud.dev import testing
from govcloud.k8s import cache, client

Manifest = dict[str, Any]
REAL_BACKOFF = cache.backoff_delay


@pytest.fixture(params=[False, True], ids=["dicts", "packed"])
def store(request: pytest.FixtureRequest) -> cache.Store:
    """A store holding its objects as dicts, and one holding them packed: both behave alike."""
    return cache.Store(packed=request.param)


def configmap(name: str, rv: int | str, namespace: str = "ns", **labels: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "resourceVersion": str(rv),
            "labels": dict(labels),
        },
    }


def tenant_labels(tenant: str) -> dict[str, str]:
    return meta.common_labels(tenant)


# -- selectors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ("a=1", {"a": "1"}, True),
        ("a==1", {"a": "1"}, True),
        ("a=1", {"a": "2"}, False),
        ("a!=1", {"a": "2"}, True),
        ("a!=1", {}, True),
        ("a!=1", {"a": "1"}, False),
        ("a", {"a": ""}, True),
        ("a", {"b": "1"}, False),
        ("!a", {"b": "1"}, True),
        ("!a", {"a": "1"}, False),
        ("a in (1, 2)", {"a": "2"}, True),
        ("a in (1,2)", {"a": "3"}, False),
        ("a notin (1,2)", {"a": "3"}, True),
        ("a notin (1,2)", {}, True),
        ("a notin (1,2)", {"a": "1"}, False),
        ("a=1, b in (x,y) ,!c", {"a": "1", "b": "y"}, True),
        ("a=1,b in (x,y),!c", {"a": "1", "b": "y", "c": "z"}, False),
        ("", {"a": "1"}, True),
        (meta.selector("t1"), tenant_labels("t1"), True),
        (meta.selector("t1"), tenant_labels("t2"), False),
    ],
)
def test_a_selector_matches_labels_as_the_api_server_does(
    text: str, labels: dict[str, str], expected: bool
) -> None:
    assert cache.selects(cache.parse_selector(text), labels) is expected


@pytest.mark.parametrize(
    "text", ["a>1", "a=b=c", "a in (1", "a=1,", ",", "a in 1", "-a=1", "a=b c", "a=(1)"]
)
def test_an_unknown_selector_form_is_refused(text: str) -> None:
    with pytest.raises(cache.SelectorError):
        cache.parse_selector(text)


def test_equal_requirements_are_equal_whatever_their_spelling() -> None:
    spellings = ["a=1", "a==1", "a in (1)", " a = 1 "]
    assert len({cache.parse_selector(text) for text in spellings}) == 1
    assert cache.parse_selector("a!=1") == cache.parse_selector("a notin (1)")


def test_a_selector_implies_another_only_when_it_holds_all_its_terms() -> None:
    held = cache.parse_selector(f"{constants.LABEL_MANAGED_BY}={constants.MANAGED_BY}")
    assert cache.implies(cache.parse_selector(meta.selector("t1")), held)
    assert cache.implies(cache.parse_selector(meta.selector("t1")), frozenset())
    assert not cache.implies(cache.parse_selector(f"{constants.LABEL_TENANT}=t1"), held)
    assert not cache.implies(frozenset(), held)


# -- the store -------------------------------------------------------------------------------


@pytest.fixture
def big_store() -> cache.Store:
    """10,000 objects: 1,000 tenants with 10 each, spread over 100 namespaces."""
    store = cache.Store()
    for index in range(10_000):
        tenant = f"t{index // 10}"
        store.upsert(
            configmap(f"cm-{index}", index + 1, f"ns-{index % 100}", **tenant_labels(tenant))
        )
    return store


def count_matches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the objects the store examines (each costs one `selects` call)."""
    examined = [0]
    real = cache.selects

    def counting(selector: cache.Selector, labels: dict[str, str]) -> bool:
        examined[0] += 1
        return real(selector, labels)

    monkeypatch.setattr(cache, "selects", counting)
    return examined


def test_a_tenant_lookup_examines_only_that_tenants_objects(
    big_store: cache.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    examined = count_matches(monkeypatch)
    found = big_store.list(label_selector=meta.selector("t7"))
    assert sorted(item["metadata"]["name"] for item in found) == sorted(
        f"cm-{index}" for index in range(70, 80)
    )
    assert examined[0] == 10
    examined[0] = 0
    assert len(big_store.list(label_selector=f"{constants.LABEL_TENANT} in (t1,t2)")) == 20
    assert examined[0] == 20


def test_a_namespace_lookup_examines_only_that_namespace(
    big_store: cache.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    examined = count_matches(monkeypatch)
    assert len(big_store.list(namespace="ns-3")) == 100
    assert examined[0] == 100
    examined[0] = 0
    both = big_store.list(namespace="ns-71", label_selector=meta.selector("t7"))
    assert [item["metadata"]["name"] for item in both] == ["cm-71"]
    assert examined[0] == 1


def test_a_selector_the_index_cannot_answer_is_checked_against_every_object(
    big_store: cache.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    examined = count_matches(monkeypatch)
    assert len(big_store.list(label_selector=f"{constants.LABEL_TENANT}!=t1")) == 9_990
    assert examined[0] == 10_000


def test_a_relabelled_object_moves_to_its_new_tenant_and_a_deleted_one_leaves_the_index(
    store: cache.Store,
) -> None:
    store.upsert(configmap("cm", 1, **tenant_labels("old")))
    store.upsert(configmap("cm", 2, **tenant_labels("new")))
    assert store.list(label_selector=meta.selector("old")) == []
    assert [
        o["metadata"]["resourceVersion"] for o in store.list(label_selector=meta.selector("new"))
    ] == ["2"]
    assert store.remove(configmap("cm", 3)) is not None
    assert store.list(label_selector=meta.selector("new")) == []
    assert store.list(namespace="ns") == []
    assert len(store) == 0


def test_an_older_or_equal_version_never_overwrites_a_newer_one(store: cache.Store) -> None:
    assert store.upsert(configmap("cm", 10, v="new")) == cache.ADDED
    assert store.upsert(configmap("cm", 9, v="old")) is None
    assert store.upsert(configmap("cm", 10, v="same")) is None
    assert store.remove(configmap("cm", 8)) is None
    found = store.get("cm", "ns")
    assert found is not None
    assert found["metadata"]["labels"] == {"v": "new"}
    assert store.upsert(configmap("cm", 11, v="newer")) == cache.MODIFIED


def test_the_store_knows_when_it_took_each_objects_current_version(store: cache.Store) -> None:
    assert store.changed_at("a", "ns") is None
    before = time.monotonic()
    store.upsert(configmap("a", 5))
    taken = store.changed_at("a", "ns")
    assert taken is not None
    assert taken >= before

    store.upsert(configmap("a", 4))  # older: not taken, the time stays
    assert store.changed_at("a", "ns") == taken
    store.upsert(configmap("a", 6))
    assert (store.changed_at("a", "ns") or 0.0) >= taken

    store.forget("a", "ns")
    assert store.changed_at("a", "ns") is None


def test_versions_compare_as_integers_and_otherwise_replace() -> None:
    assert cache.is_newer("10", "9")
    assert not cache.is_newer("9", "10")
    assert not cache.is_newer("10", "10")
    assert cache.is_newer("abc", "10")
    assert cache.is_newer("10", "abc")


def test_an_object_we_deleted_is_not_brought_back_by_an_older_event(store: cache.Store) -> None:
    store.upsert(configmap("cm", 5))
    assert store.forget("cm", "ns") is not None
    assert store.upsert(configmap("cm", 4)) is None
    assert store.upsert(configmap("cm", 5)) is None
    assert store.get("cm", "ns") is None
    assert store.upsert(configmap("cm", 6)) == cache.ADDED  # e.g. its deletionTimestamp


def test_a_relist_reports_only_what_changed(store: cache.Store) -> None:
    for name, rv in (("same", 1), ("changed", 2), ("gone", 3), ("written-after", 30)):
        store.upsert(configmap(name, rv))
    events = store.replace(
        [configmap("same", 1), configmap("changed", 12), configmap("new", 13)], "20"
    )
    assert sorted((kind, obj["metadata"]["name"]) for kind, obj in events) == [
        (cache.ADDED, "new"),
        (cache.DELETED, "gone"),
        (cache.MODIFIED, "changed"),
    ]
    held = sorted(name for _, name in store.object_keys())
    assert held == ["changed", "new", "same", "written-after"]


def test_readers_get_copies_that_cannot_corrupt_the_store(store: cache.Store) -> None:
    store.upsert(configmap("cm", 1, **tenant_labels("t")))
    got = store.get("cm", "ns")
    assert got is not None
    got["metadata"]["labels"]["mutated"] = "yes"
    got.setdefault("spec", {})["x"] = 1
    listed = store.list(label_selector=meta.selector("t"))
    listed[0]["metadata"]["name"] = "renamed"
    again = store.get("cm", "ns")
    assert again == configmap("cm", 1, **tenant_labels("t"))


def test_approximate_bytes_grows_with_the_objects_held(store: cache.Store) -> None:
    assert store.approximate_bytes() == 0
    store.upsert(configmap("a", 1))
    assert store.approximate_bytes() > 0
    for index in range(100):
        store.upsert(configmap(f"b{index}", index + 2))
    one = len(json.dumps(configmap("b0", 2), separators=(",", ":")))
    assert store.approximate_bytes() > 100 * one


# -- the informer loop against a scripted API ------------------------------------------------


class Response:
    """A raw response: a LIST body, or WATCH lines that end, fail, or block until shutdown."""

    def __init__(self, body: Any = None, lines: list[Any] | None = None, block: bool = False):
        self.data = json.dumps(body).encode() if body is not None else b""
        self.lines = lines or []
        self.block = block
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[bytes]:
        for line in self.lines:
            if isinstance(line, Exception):
                raise line
            yield json.dumps(line).encode() + b"\n"
        if self.block and not self.closed.wait(10):
            raise AssertionError("the informer never closed its watch")
        if self.block:
            raise urllib3.exceptions.ProtocolError("connection closed")

    def shutdown(self) -> None:
        self.closed.set()

    def release_conn(self) -> None:
        pass


class ScriptedApi:
    """Answers LIST and WATCH from scripts; when a script runs out, a watch blocks."""

    def __init__(self, lists: list[Any], watches: list[Any]) -> None:
        self.lists, self.watches = lists, watches
        self.queries: list[dict[str, Any]] = []

    def call_api(self, path: str, method: str, *, query_params: Any, **_: Any) -> Response:
        query = dict(query_params)
        self.queries.append(query)
        script = self.watches if query.get("watch") == "true" else self.lists
        answer = script.pop(0) if script else Response(block=True)
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[no-any-return]

    def watch_versions(self) -> list[str]:
        return [q["resourceVersion"] for q in self.queries if q.get("watch") == "true"]

    def list_count(self) -> int:
        return sum(1 for q in self.queries if q.get("watch") != "true" and "continue" not in q)


class ScriptedCluster(client.Cluster):
    def __init__(self, api: ScriptedApi) -> None:
        super().__init__(api, "scripted")  # type: ignore[arg-type]

    def resource(self, api_version: str, kind: str) -> Any:
        return SimpleNamespace(path=lambda: "/api/v1/configmaps")


def page(items: list[Manifest], rv: str, token: str = "") -> Response:
    for item in items:  # LIST items carry neither kind nor apiVersion
        item.pop("kind"), item.pop("apiVersion")
    return Response({"metadata": {"resourceVersion": rv, "continue": token}, "items": items})


def event(kind: str, obj: Manifest) -> Manifest:
    return {"type": kind, "object": obj}


@pytest.fixture
def recorded() -> list[tuple[str, str, str]]:
    return []


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scripted watches end at once, which the informer backs off from: keep that short."""
    monkeypatch.setattr(cache, "backoff_delay", lambda failures: 0.01)


def test_the_backoff_grows_to_its_cap_with_jitter() -> None:
    delays = [REAL_BACKOFF(n) for n in range(1, 20)]
    assert 0.5 * cache.BACKOFF_BASE <= delays[0] <= 1.5 * cache.BACKOFF_BASE
    assert all(0.5 * cache.BACKOFF_CAP <= delay <= 1.5 * cache.BACKOFF_CAP for delay in delays[10:])
    assert len(set(delays)) == len(delays)  # jittered: no two informers retry in step


def start(api: ScriptedApi, events: list[tuple[str, str, str]], **options: Any) -> cache.Informer:
    def on_event(event_type: str, kind: str, obj: Manifest) -> None:
        events.append((event_type, kind, obj["metadata"]["name"]))

    informer = cache.Informer(ScriptedCluster(api), "v1", "ConfigMap", on_event=on_event, **options)
    informer.start()
    return informer


@pytest.mark.parametrize(
    "answer",
    [
        ApiException(status=404, reason="Not Found"),  # discovery still listed the kind
        client.ApiError("ConfigMap (v1) is not served", status=404),
    ],
    ids=["api-404", "not-in-discovery"],
)
def test_a_kind_not_served_is_not_waited_for(answer: Exception) -> None:
    api = ScriptedApi(lists=[answer, answer, answer, answer], watches=[])
    informer = cache.Informer(ScriptedCluster(api), "v1", "ConfigMap")
    cached = cache.CachedCluster(ScriptedCluster(api), [informer])
    informer.start()
    try:
        settle(lambda: informer.not_served)
        began = time.monotonic()
        assert cached.wait_synced(30) is False  # nothing listed, and nothing to wait for
        assert time.monotonic() - began < 5
    finally:
        informer.stop()


def settle(check: Any, timeout: float = 5.0) -> None:
    testing.eventually(check, timeout=timeout, interval=0.01, what="the informer to settle")


def test_a_410_relists_and_reports_only_the_differences(
    recorded: list[tuple[str, str, str]],
) -> None:
    api = ScriptedApi(
        lists=[
            page([configmap("a", 1), configmap("b", 2)], "10", token="next"),
            page([configmap("c", 3)], "10"),
            page([configmap("a", 11), configmap("b", 12), configmap("d", 13)], "20"),
        ],
        watches=[
            Response(lines=[event("MODIFIED", configmap("a", 11))]),
            Response(lines=[{"type": "ERROR", "object": {"kind": "Status", "code": 410}}]),
        ],
    )
    informer = start(api, recorded, page_size=2)
    try:
        settle(lambda: informer.lists == 2 and len(api.watch_versions()) == 3)
        assert recorded == [
            ("ADDED", "ConfigMap", "a"),
            ("ADDED", "ConfigMap", "b"),
            ("ADDED", "ConfigMap", "c"),
            ("MODIFIED", "ConfigMap", "a"),
            ("DELETED", "ConfigMap", "c"),
            ("MODIFIED", "ConfigMap", "b"),
            ("ADDED", "ConfigMap", "d"),
        ]
        assert api.watch_versions() == ["10", "11", "20"]
        assert [q.get("continue") for q in api.queries if "limit" in q] == [None, "next", None]
        assert informer.expired == 1
        assert {(o["kind"], o["apiVersion"]) for o in informer.store.list()} == {
            ("ConfigMap", "v1")
        }
    finally:
        informer.stop()
    assert not informer.running


def test_a_dropped_watch_resumes_from_its_last_version_without_listing(
    recorded: list[tuple[str, str, str]],
) -> None:
    api = ScriptedApi(
        lists=[page([configmap("a", 1)], "10")],
        watches=[
            Response(
                lines=[
                    event("ADDED", configmap("b", 14)),
                    urllib3.exceptions.ProtocolError("connection reset"),
                ]
            ),
            ApiException(status=503, reason="Service Unavailable"),
            Response(lines=[event("BOOKMARK", {"metadata": {"resourceVersion": "17"}})]),
            Response(lines=[event("DELETED", configmap("b", 18))]),
        ],
    )
    informer = start(api, recorded)
    try:
        settle(lambda: len(api.watch_versions()) == 5)
        assert api.watch_versions() == ["10", "14", "14", "17", "18"]
        assert api.list_count() == 1
        assert recorded == [
            ("ADDED", "ConfigMap", "a"),
            ("ADDED", "ConfigMap", "b"),
            ("DELETED", "ConfigMap", "b"),
        ]
    finally:
        informer.stop()


def test_a_failing_event_handler_neither_stops_the_informer_nor_the_store() -> None:
    api = ScriptedApi(
        lists=[page([configmap("a", 1)], "10")],
        watches=[Response(lines=[event("ADDED", configmap("b", 11))])],
    )

    def explode(event_type: str, kind: str, obj: Manifest) -> None:
        raise RuntimeError("handler bug")

    informer = cache.Informer(ScriptedCluster(api), "v1", "ConfigMap", on_event=explode)
    informer.start()
    try:
        settle(lambda: len(informer.store) == 2 and len(api.watch_versions()) == 2)
        assert informer.running
    finally:
        informer.stop()


def test_managed_fields_and_the_last_applied_annotation_are_not_kept() -> None:
    listed = configmap("a", 1)
    listed["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    listed["metadata"]["annotations"] = {cache.LAST_APPLIED: "{}"}
    watched = configmap("b", 11)
    watched["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    watched["metadata"]["annotations"] = {cache.LAST_APPLIED: "{}", "keep": "me"}
    api = ScriptedApi(
        lists=[page([listed], "10")], watches=[Response(lines=[event("ADDED", watched)])]
    )
    informer = start(api, [])
    try:
        settle(lambda: len(informer.store) == 2)
        a, b = informer.store.get("a", "ns"), informer.store.get("b", "ns")
        assert a is not None
        assert b is not None
        assert "managedFields" not in a["metadata"]
        assert "annotations" not in a["metadata"]
        assert "managedFields" not in b["metadata"]
        assert b["metadata"]["annotations"] == {"keep": "me"}
    finally:
        informer.stop()


def test_secrets_are_never_cached() -> None:
    with pytest.raises(ValueError, match="never cached"):
        cache.Informer(ScriptedCluster(ScriptedApi([], [])), "v1", "Secret")


# -- read-your-writes and routing ------------------------------------------------------------


class RecordingCluster(client.Cluster):
    """A direct cluster that answers from canned objects and records every call."""

    def __init__(self) -> None:
        super().__init__(ScriptedApi([], []), "direct")  # type: ignore[arg-type]
        self.calls: list[str] = []
        self.answer: Manifest = {}

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Any:
        self.calls.append(f"get {name}")
        return None

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: Any = None,
        label_selector: Any = None,
        **_: Any,
    ) -> Any:
        self.calls.append(f"list {label_selector}")
        return []

    def apply(self, manifest: Manifest) -> Manifest:
        self.calls.append("apply")
        return self.answer

    def delete(
        self, api_version: str, kind: str, name: str, namespace: Any = None, **_: Any
    ) -> bool:
        self.calls.append(f"delete {name}")
        return True


def synced_informer(
    direct: client.Cluster, selector: str | None, *objects: Manifest, on_event: Any = None
) -> cache.Informer:
    informer = cache.Informer(direct, "v1", "ConfigMap", label_selector=selector, on_event=on_event)
    informer.store.replace([cache.clone(obj) for obj in objects], "100")
    informer._synced.set()  # as after the first LIST, without a thread
    return informer


def test_reads_a_selective_informer_can_answer_never_reach_the_api_server() -> None:
    direct = RecordingCluster()
    informer = synced_informer(direct, "team=a", configmap("x", 5, team="a", tier="gold"))
    cached = cache.CachedCluster(direct, [informer])
    assert [
        o["metadata"]["name"] for o in cached.list("v1", "ConfigMap", "ns", "team=a,tier=gold")
    ] == ["x"]
    assert cached.list("v1", "ConfigMap", None, "team==a,tier!=gold") == []
    found = cached.get("v1", "ConfigMap", "x", "ns")
    assert found is not None
    assert found["kind"] == "ConfigMap"
    assert direct.calls == []
    assert cached.list("v1", "ConfigMap", "ns", "tier=gold") == []
    assert cached.list("v1", "ConfigMap", "ns", "team>1") == []
    assert cached.list("v1", "ConfigMap", "ns") == []
    assert cached.get("v1", "ConfigMap", "missing", "ns") is None
    assert cached.list("v1", "Namespace") == []
    assert direct.calls == [
        "list tier=gold",
        "list team>1",
        "list None",
        "get missing",
        "list None",
    ]


def test_an_unsynced_informer_that_is_not_running_sends_reads_to_the_api_server() -> None:
    direct = RecordingCluster()
    informer = cache.Informer(direct, "v1", "ConfigMap")
    cached = cache.CachedCluster(direct, [informer])
    started = time.monotonic()
    assert cached.get("v1", "ConfigMap", "x", "ns") is None
    assert time.monotonic() - started < 1.0
    assert direct.calls == ["get x"]


def test_a_write_is_read_back_at_once_and_a_delete_is_gone_at_once() -> None:
    direct = RecordingCluster()
    events: list[str] = []
    informer = synced_informer(
        direct, None, configmap("x", 5, v="1"), on_event=lambda *event: events.append(event[0])
    )
    cached = cache.CachedCluster(direct, [informer])
    direct.answer = configmap("x", 7, v="2")
    direct.answer["metadata"]["managedFields"] = [{"manager": "govcloud-operator"}]
    returned = cached.apply(configmap("x", 0, v="2"))
    returned["metadata"]["labels"]["v"] = "mutated by the caller"
    found = cached.get("v1", "ConfigMap", "x", "ns")
    assert found is not None
    assert found["metadata"]["labels"] == {"v": "2"}
    assert "managedFields" not in found["metadata"]
    direct.answer = configmap("x", 6, v="stale")
    cached.apply(configmap("x", 0, v="stale"))
    assert cached.get("v1", "ConfigMap", "x", "ns")["metadata"]["labels"] == {"v": "2"}  # type: ignore[index]
    assert cached.delete("v1", "ConfigMap", "x", "ns")
    assert cached.get("v1", "ConfigMap", "x", "ns") is None
    assert direct.calls == ["apply", "apply", "delete x"]
    assert events == []  # our own writes wake no one
    assert informer.store.upsert(configmap("x", 7, v="2")) is None  # its watch events
    assert informer.store.remove(configmap("x", 8)) is None
    assert cached.cached_objects() == {"ConfigMap": 0}
    assert cache.uncached(cached) is direct
    assert cache.uncached(direct) is direct


def test_a_write_that_takes_an_object_out_of_the_selection_removes_it() -> None:
    direct = RecordingCluster()
    informer = synced_informer(direct, "team=a", configmap("x", 5, team="a"))
    cached = cache.CachedCluster(direct, [informer])
    direct.answer = configmap("x", 6, team="b")
    cached.apply(configmap("x", 0, team="b"))
    assert len(informer.store) == 0
    assert informer.store.upsert(configmap("x", 5, team="a")) is None  # a late older event
    assert informer.store.upsert(configmap("x", 7, team="a")) == cache.ADDED  # back again


def test_a_late_answer_to_the_write_that_let_go_never_brings_the_deleted_object_back() -> None:
    """The patch removing the last finalizer answers after the watch said DELETED."""
    direct = RecordingCluster()
    informer = synced_informer(direct, None, configmap("x", 5))
    cached = cache.CachedCluster(direct, [informer])
    assert informer.store.remove(configmap("x", 8)) is not None  # the watch: DELETED at 8
    direct.answer = configmap("x", 7)  # the patch's answer: deleting, no finalizer left
    direct.answer["metadata"]["deletionTimestamp"] = "2026-12-07T00:00:00Z"
    cached.apply(configmap("x", 0))
    assert cached.get("v1", "ConfigMap", "x", "ns") is None
    assert informer.store.upsert(configmap("x", 7)) is None  # nor a late MODIFIED event
    assert informer.store.upsert(configmap("x", 9)) == cache.ADDED  # a new one of that name


def test_an_answer_without_finalizers_while_deleting_means_the_object_is_gone() -> None:
    direct = RecordingCluster()
    informer = synced_informer(direct, None, configmap("x", 5))
    cached = cache.CachedCluster(direct, [informer])
    direct.answer = configmap("x", 6)
    direct.answer["metadata"]["deletionTimestamp"] = "2026-12-07T00:00:00Z"
    cached.apply(configmap("x", 0))
    assert cached.get("v1", "ConfigMap", "x", "ns") is None
    assert informer.store.upsert(configmap("x", 6)) is None


def test_select_copies_only_the_objects_it_keeps(
    big_store: cache.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A probe of one site reads its few tenants out of thousands without copying the rest."""
    copies = [0]
    real = cache.clone

    def counting(value: Any) -> Any:
        copies[0] += isinstance(value, dict) and "metadata" in value  # whole objects only
        return real(value)

    monkeypatch.setattr(cache, "clone", counting)
    found = big_store.select(lambda obj: obj["metadata"]["namespace"] == "ns-3")
    assert [item["metadata"]["name"] for item in found] == sorted(
        f"cm-{index}" for index in range(3, 10_000, 100)
    )
    assert copies[0] == 100
    found[0]["metadata"]["name"] = "changed"  # a copy: the store keeps its own
    assert big_store.get("cm-103", "ns-3") is not None


def test_a_namespaced_informer_answers_reads_of_its_namespace_only() -> None:
    direct = RecordingCluster()
    informer = cache.Informer(direct, "v1", "ConfigMap", label_selector="team=a", namespace="ns")
    informer.store.replace([configmap("x", 5, team="a")], "100")
    informer._synced.set()
    cached = cache.CachedCluster(direct, [informer])
    assert [o["metadata"]["name"] for o in cached.list("v1", "ConfigMap", "ns", "team=a")] == ["x"]
    assert direct.calls == []
    # Another namespace, or every namespace, is not what it holds: the API server answers.
    assert cached.list("v1", "ConfigMap", "other", "team=a") == []
    assert cached.list("v1", "ConfigMap", None, "team=a") == []
    assert direct.calls == ["list team=a", "list team=a"]


TENANT_SPEC = {
    "displayName": "市交通运输局",
    "unit": {"code": "jtj", "tier": "city"},
    "contacts": [{"name": "张三", "email": "zhang@example.gov.cn"}],
    "admins": {"users": ["alice"], "groups": ["jtj-admins"]},
    "editors": {"users": ["bob"], "serviceAccounts": ["ci/deployer"]},
    "viewers": {"groups": ["auditors"]},
    "securityLevel": 2,
    "namespaces": [{"name": "prod"}, {"name": "dev"}, {"name": "data"}],
    "quota": {"requests.cpu": "10", "requests.memory": "20Gi", "pods": "50"},
}


def _as_served(manifest: Manifest, version: int) -> Manifest:
    """A tenant object as a watch delivers it: with the fields the API server adds."""
    metadata = {
        **manifest["metadata"],
        "uid": str(uuid.UUID(int=version)),
        "resourceVersion": str(version),
        "creationTimestamp": "2026-12-08T04:00:00Z",
    }
    return {**manifest, "metadata": metadata}


def _tenant_objects(count: int) -> list[Manifest]:
    spec = cloudtenant.CloudTenantSpec.model_validate(TENANT_SPEC)
    found: list[Manifest] = []
    for index in range(count):
        name = f"t{index}"
        names = desired_tenant.namespace_names(name, spec)
        allocation = quotas.allocate(spec.quota, names, {}, suspended=False)
        wanted = desired_tenant.build(
            name, spec, platform_namespaces=["monitoring"], allocation=allocation
        )
        for manifest in (*wanted.quotas, *wanted.namespaced):
            found.append(_as_served(manifest, len(found) + 1))
    return found


def _held_memory(objects: list[Manifest], packed: bool) -> int:
    """Bytes a store allocates to hold `objects`, measured by tracemalloc."""
    tracemalloc.start()
    try:
        store = cache.Store(packed=packed)
        for obj in objects:
            store.upsert(json.loads(json.dumps(obj)))  # decoded from the watch, as informers do
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(store) == len(objects)
    return held


def test_a_packed_store_holds_a_tenants_objects_in_less_than_half_the_memory() -> None:
    objects = _tenant_objects(40)
    packed, dicts = _held_memory(objects, packed=True), _held_memory(objects, packed=False)
    assert packed < dicts / 2, (packed, dicts)
