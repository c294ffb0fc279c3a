"""The tenant quota is never over-committed, even under concurrency, and headroom follows demand."""

from __future__ import annotations

import concurrent.futures
import threading
import time
import uuid

import pytest
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException

from govcloud.desired import quantity
from govcloud.dev import testing

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def core(hub) -> k8s_client.CoreV1Api:
    api = k8s_config.new_client_from_config(config_file=str(hub.kubeconfig))
    api.configuration.connection_pool_maxsize = 32
    return k8s_client.CoreV1Api(api)


def _pod(name: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "registry.local/app:1",
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                }
            ]
        },
    }


def _try_create(core: k8s_client.CoreV1Api, namespace: str) -> bool:
    try:
        core.create_namespaced_pod(namespace, _pod(f"p-{uuid.uuid4().hex[:8]}"))
    except ApiException as error:
        if error.status == 403 and "exceeded quota" in str(error.body):
            return False
        raise
    return True


def _pod_count(core: k8s_client.CoreV1Api, namespaces: list[str]) -> dict[str, int]:
    return {namespace: len(core.list_namespaced_pod(namespace).items) for namespace in namespaces}


def _hard_sum(kubectl: testing.Kubectl, namespaces: list[str], resource: str) -> int:
    total = 0
    for namespace in namespaces:
        quota = kubectl.json("get", "resourcequota", "govcloud-quota", "-n", namespace)
        total += quantity.to_milli(quota["spec"]["hard"][resource])
    return total


def test_concurrent_pods_in_several_namespaces_never_exceed_the_tenant_quota(
    tenants, kubectl, core
) -> None:
    name = tenants.create(
        "burst",
        namespaces=[{"name": "a"}, {"name": "b"}, {"name": "c"}],
        quota={"pods": "7", "requests.cpu": "10"},
    )
    tenants.wait_ready(name)
    namespaces = [f"{name}-{short}" for short in "abc"]
    stop = threading.Event()
    peak = [0]

    def watch_usage() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], sum(_pod_count(core, namespaces).values()))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch_usage)
    watcher.start()
    try:
        # Far more attempts than fit, from 12 threads at once, while the operator rebalances.
        with concurrent.futures.ThreadPoolExecutor(max_workers=12) as pool:
            attempts = [pool.submit(_try_create, core, namespaces[i % 3]) for i in range(60)]
            admitted = sum(future.result() for future in attempts)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and sum(_pod_count(core, namespaces).values()) < 7:
            for namespace in namespaces:
                _try_create(core, namespace)
    finally:
        stop.set()
        watcher.join()
    counts = _pod_count(core, namespaces)
    assert admitted <= 7
    assert sum(counts.values()) <= 7, counts
    assert peak[0] <= 7
    assert _hard_sum(kubectl, namespaces, "pods") <= quantity.to_milli("7")


def test_headroom_moves_to_the_namespace_that_needs_it(tenants, kubectl, core) -> None:
    name = tenants.create(
        "elastic", namespaces=[{"name": "busy"}, {"name": "idle"}], quota={"pods": "6"}
    )
    tenants.wait_ready(name)
    busy, idle = f"{name}-busy", f"{name}-idle"
    initial = kubectl.json("get", "resourcequota", "govcloud-quota", "-n", busy)["spec"]["hard"]
    assert quantity.parse(initial["pods"]) < 6  # the idle namespace holds part of the quota

    def six_in_busy() -> bool:
        _try_create(core, busy)
        return len(core.list_namespaced_pod(busy).items) >= 6

    testing.eventually(six_in_busy, timeout=60, what="all six pods admitted in one namespace")
    assert len(core.list_namespaced_pod(busy).items) == 6
    assert not _try_create(core, busy)
    assert not _try_create(core, idle)
    assert _hard_sum(kubectl, [busy, idle], "pods") <= quantity.to_milli("6")
    events = kubectl.json(
        "get", "events", "-n", "default", "--field-selector", f"involvedObject.name={name}"
    )["items"]
    assert any(item["reason"] == "QuotaRebalanced" for item in events)


def test_shrinking_the_quota_below_usage_keeps_workloads_and_says_so(
    tenants, kubectl, core
) -> None:
    name = tenants.create("shrink", quota={"pods": "5"})
    tenants.wait_ready(name)
    namespace = f"{name}-app"

    def three_pods() -> bool:
        if len(core.list_namespaced_pod(namespace).items) < 3:
            _try_create(core, namespace)
        return len(core.list_namespaced_pod(namespace).items) >= 3

    testing.eventually(three_pods, what="three pods")
    running = len(core.list_namespaced_pod(namespace).items)
    tenants.patch(name, {"quota": {"pods": "2"}})

    def reported() -> dict[str, object]:
        condition = tenants.condition(name, "QuotaReady")
        return condition if condition.get("reason") == "UsageAboveQuota" else {}

    condition = testing.eventually(reported, what="QuotaReady=False UsageAboveQuota")
    assert condition["status"] == "False"
    assert "pods used" in str(condition["message"])
    assert len(core.list_namespaced_pod(namespace).items) == running
    assert not _try_create(core, namespace)

    tenants.patch(name, {"quota": {"pods": "10"}})
    testing.eventually(
        lambda: tenants.condition(name, "QuotaReady").get("status") == "True",
        what="QuotaReady to recover",
    )
    testing.eventually(lambda: _try_create(core, namespace), what="a new pod to fit again")
