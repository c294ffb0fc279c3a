"""Onboarding writes each object once, quotas at their final hard, and never over-commits."""

from __future__ import annotations

import collections
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import _tenant_helpers as helpers
import pytest
from _chart_helpers import render
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch
from kubernetes.client.rest import ApiException

from govcloud.desired import quantity
from govcloud.dev import testing

pytestmark = pytest.mark.integration

OPERATOR_AGENT = "govcloud-operator/"
KOPF_AGENT = "kopf/"


def _kinds(writes: list[dict[str, Any]]) -> collections.Counter[tuple[str, str]]:
    """(verb, resource[/subresource]) of each write; server-side apply is audited as patch."""
    counted: collections.Counter[tuple[str, str]] = collections.Counter()
    for event in writes:
        ref = event.get("objectRef") or {}
        resource = str(ref.get("resource", ""))
        if ref.get("subresource"):
            resource = f"{resource}/{ref['subresource']}"
        counted[(str(event["verb"]), resource)] += 1
    return counted


def _objects(writes: list[dict[str, Any]], resource: str) -> collections.Counter[str]:
    return collections.Counter(
        f"{(event.get('objectRef') or {}).get('namespace', '')}/{event['objectRef']['name']}"
        for event in writes
        if (event.get("objectRef") or {}).get("resource") == resource
        and not event["objectRef"].get("subresource")
    )


def test_onboarding_writes_each_object_once_with_quotas_at_their_final_hard(
    tenants, hub, kubectl, operator
) -> None:
    name = tenants.create(
        "writes",
        namespaces=[{"name": "a"}, {"name": "b"}, {"name": "c"}],
        quota={"requests.cpu": "3", "requests.memory": "3Gi", "pods": "9"},
    )
    tenants.wait_ready(name)
    settled = time.time()

    def last_pass() -> float:
        return operator.metric_value(
            "govcloud_tenant_last_reconcile_timestamp_seconds", tenant=name
        )

    # Two resync passes (every 5 s in the test operator) after Ready must write nothing more.
    testing.eventually(
        lambda: last_pass() > settled + 10, timeout=60, what="two resync passes after Ready"
    )
    writes = helpers.tenant_writes(hub, name, (OPERATOR_AGENT,))
    kinds = _kinds(writes)
    assert kinds == collections.Counter(
        {
            ("patch", "namespaces"): 3,
            ("patch", "resourcequotas"): 3,
            ("patch", "networkpolicies"): 3,
            ("patch", "rolebindings"): 3,
            ("patch", "clusterroles"): 2,  # the tenant's self-view and plan-filer roles
            ("patch", "clusterrolebindings"): 2,
            ("patch", "cloudtenants"): 1,  # the finalizer
            ("patch", "cloudtenants/status"): 1,
        }
    ), sorted(kinds.items())
    quotas_written = _objects(writes, "resourcequotas")
    assert set(quotas_written.values()) == {1}, quotas_written
    # One write each, and each quota now holds its final share: that write was at the final hard.
    hards = [
        kubectl.json("get", "resourcequota", "govcloud-quota", "-n", f"{name}-{short}")["spec"][
            "hard"
        ]
        for short in "abc"
    ]
    assert hards == [{"requests.cpu": "1", "requests.memory": "1Gi", "pods": "3"}] * 3
    events = kubectl.json(
        "get", "events", "-n", "default", "--field-selector", f"involvedObject.name={name}"
    )["items"]
    reasons = [item["reason"] for item in events]
    assert "NamespaceCreated" in reasons, reasons
    assert len(reasons) == len(set(reasons)), reasons
    assert all((item.get("count") or 1) == 1 for item in events), events
    # kopf serves no CloudTenant handler (one scheduler of the operator's own instead of
    # per-object kopf timers): it writes no finalizer and no progress annotations on one.
    assert _kinds(helpers.tenant_writes(hub, name, (KOPF_AGENT,))) == {}


# -- the invariant under a race -----------------------------------------------------------


@dataclass
class QuotaVersions:
    """Every version of the tenant's ResourceQuotas seen by a watch, and the sums at each."""

    resource: str
    latest: dict[str, dict[str, Any]] = field(default_factory=dict)
    sums: list[tuple[int, int, int]] = field(default_factory=list)  # (spec, status, used)
    history: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    errors: list[Any] = field(default_factory=list)

    def see(self, quota: dict[str, Any]) -> None:
        namespace = quota["metadata"]["namespace"]
        self.latest[namespace] = quota
        self.history.setdefault(namespace, []).append(quota)
        self.sums.append(
            (
                self._sum(lambda item: (item.get("spec") or {}).get("hard")),
                self._sum(lambda item: (item.get("status") or {}).get("hard")),
                self._sum(lambda item: (item.get("status") or {}).get("used")),
            )
        )

    def _sum(self, part) -> int:  # type: ignore[no-untyped-def]
        return sum(
            quantity.to_milli((part(item) or {}).get(self.resource, "0"))
            for item in self.latest.values()
        )


def _api(hub, **headers: str) -> k8s_client.ApiClient:  # type: ignore[no-untyped-def]
    api = k8s_config.new_client_from_config(config_file=str(hub.kubeconfig))
    for header, value in headers.items():
        api.set_default_header(header, value)
    return api


def _pod(prefix: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{prefix}-{uuid.uuid4().hex[:8]}"},
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "registry.local/app:1",
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                }
            ]
        },
    }


def _create_pod(core: k8s_client.CoreV1Api, namespace: str, prefix: str) -> dict[str, Any] | None:
    """The created pod, or None when RBAC, an admission policy or quota admission refused it
    (a policy binding whose param is missing answers 422)."""
    try:
        created = core.create_namespaced_pod(namespace, _pod(prefix))
    except ApiException as error:
        if error.status in (403, 404, 422):
            return None
        raise
    return dict(core.api_client.sanitize_for_serialization(created))


@dataclass
class Race:
    """An admin's pods the moment each namespace and quota appear, then members filling up."""

    hub: Any
    tenant: str
    namespaces: list[str]
    stop: threading.Event = field(default_factory=threading.Event)
    early: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # the admin's pods
    admitted: collections.Counter[str] = field(default_factory=collections.Counter)
    created: list[tuple[str, str]] = field(default_factory=list)  # members' pods: (ns, rv)

    def admin(self, watched: str) -> None:
        """A cluster admin puts a pod in each namespace as soon as its `watched` object appears.

        Watching namespaces, the pod comes before the quota exists; watching quotas, it comes
        in the window before the quota controller's first sync, when admission enforces nothing.
        """
        core = k8s_client.CoreV1Api(_api(self.hub))
        listing = {
            "namespace": core.list_namespace,
            "quota": core.list_resource_quota_for_all_namespaces,
        }[watched]
        done: set[str] = set()
        stream = k8s_watch.Watch()
        selector = f"govcloud.io/tenant={self.tenant}"
        for event in stream.stream(listing, label_selector=selector, timeout_seconds=60):
            found = event["object"].metadata
            namespace = found.name if watched == "namespace" else found.namespace
            if namespace in self.namespaces and namespace not in done:
                done.add(namespace)
                pod = _create_pod(core, namespace, f"admin-{watched}")
                if pod is not None:
                    self.early.append((namespace, pod))
            if len(done) == len(self.namespaces) or self.stop.is_set():
                stream.stop()

    def member(self, namespace: str) -> None:
        """A tenant admin creating pods as fast as RBAC and quota admission allow."""
        api = _api(
            self.hub,
            **{"Impersonate-User": "racer", "Impersonate-Group": f"{self.tenant}-admins"},
        )
        core = k8s_client.CoreV1Api(api)
        while not self.stop.is_set():
            pod = _create_pod(core, namespace, "member")
            if pod is not None:
                self.admitted[namespace] += 1
                self.created.append((namespace, pod["metadata"]["resourceVersion"]))
            else:
                self.stop.wait(0.02)  # refused: try again soon, without starving the machine


def _watch_quotas(hub, tenant: str, seen: QuotaVersions, stop: threading.Event) -> None:  # type: ignore[no-untyped-def]
    """Every version of the tenant's quotas: each short watch resumes where the last one ended."""
    core = k8s_client.CoreV1Api(_api(hub))
    selector = f"govcloud.io/tenant={tenant}"
    since: dict[str, str] = {}
    while not stop.is_set():
        stream = k8s_watch.Watch()
        for event in stream.stream(
            core.list_resource_quota_for_all_namespaces,
            label_selector=selector,
            timeout_seconds=2,
            **since,
        ):
            if event["type"] == "ERROR":  # e.g. 410 Gone: versions were missed
                seen.errors.append(event["raw_object"])
                return
            quota = core.api_client.sanitize_for_serialization(event["object"])
            since = {"resource_version": quota["metadata"]["resourceVersion"]}
            seen.see(quota)


def _spec(name: str) -> dict[str, Any]:
    return {
        "displayName": f"测试单位 {name}",
        "unit": {"code": name, "tier": "county"},
        "contacts": [{"name": "测试员", "email": "test@example.gov.cn"}],
        "admins": {"groups": [f"{name}-admins"]},
        "securityLevel": 2,
        "namespaces": [{"name": short} for short in "abc"],
        "quota": {"pods": "9", "requests.cpu": "3", "requests.memory": "3Gi"},
        "deletionPolicy": "Delete",
    }


def _quota_first_policy() -> list[dict[str, Any]]:
    """The chart's policy making pods wait for their namespace's quota, and its binding."""
    return render("--show-only", "templates/quota-first.yaml")


def _refuses_pods(kubectl: testing.Kubectl, namespace: str) -> bool:
    """Whether a cluster admin's pod in `namespace` (no quota there) is refused by the policy."""
    pod = {**_pod("probe"), "metadata": {"name": "probe", "namespace": namespace}}
    result = kubectl.run("create", "--dry-run=server", "-f", "-", stdin=testing.json_text(pod))
    return result.returncode != 0 and "quota-first" in result.stderr


@pytest.fixture
def quota_first(kubectl: testing.Kubectl) -> Iterator[None]:
    """The chart's quota-first policy in force on the hub (it takes effect a moment after it
    is created: wait until it refuses a pod in a labelled namespace without a quota)."""
    policy = _quota_first_policy()
    probe = f"quota-first-{uuid.uuid4().hex[:5]}"
    for manifest in policy:
        kubectl.apply(manifest)
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": probe, "labels": {"govcloud.io/quota": "required"}},
        }
    )
    try:
        testing.eventually(lambda: _refuses_pods(kubectl, probe), what="the policy in force")
        yield
    finally:
        for manifest in reversed(policy):
            kubectl.run("delete", manifest["kind"], manifest["metadata"]["name"])
        # The API server drops a deleted policy a moment later, too: the next test must not
        # meet it.
        testing.eventually(lambda: not _refuses_pods(kubectl, probe), what="the policy gone")
        kubectl.run("delete", "namespace", probe, "--wait=false")


@pytest.fixture
def racing(hub, tenants, quota_first) -> Iterator[tuple[str, Race, QuotaVersions]]:  # type: ignore[no-untyped-def]
    """A tenant onboarded while an admin and its members race pods into its namespaces.

    The watches need no head start: a watch without a resourceVersion begins with an ADDED
    event for every object that already exists.
    """
    name = f"race-{uuid.uuid4().hex[:5]}"
    race = Race(hub, name, [f"{name}-{short}" for short in "abc"])
    seen = QuotaVersions("pods")
    workers = [
        threading.Thread(target=_watch_quotas, args=(hub, name, seen, race.stop), daemon=True),
        threading.Thread(target=race.admin, args=("namespace",), daemon=True),
        threading.Thread(target=race.admin, args=("quota",), daemon=True),
        *(
            threading.Thread(target=race.member, args=(item,), daemon=True)
            for item in race.namespaces
        ),
    ]
    for worker in workers:
        worker.start()
    try:
        tenants.apply(name, _spec(name))
        tenants.created.append(name)
        yield name, race, seen
    finally:
        race.stop.set()
        for worker in workers:
            worker.join(timeout=30)


def _story(seen: QuotaVersions, race: Race) -> str:
    """Each quota version (rv: spec, status hard, used pods) and each pod's rv, to tell apart
    an over-commit of the split from the quota controller undoing admission's count."""
    lines = [
        f"{namespace}: "
        + " ".join(
            f"{version['metadata']['resourceVersion']}:"
            f"{(version.get('spec') or {}).get('hard', {}).get('pods')}/"
            f"{((version.get('status') or {}).get('hard') or {}).get('pods')}/"
            f"{((version.get('status') or {}).get('used') or {}).get('pods')}"
            for version in history
        )
        for namespace, history in sorted(seen.history.items())
    ]
    pods = [(ns, pod["metadata"]["resourceVersion"]) for ns, pod in race.early] + race.created
    lines.append(
        "pods: " + " ".join(f"{ns}@{rv}" for ns, rv in sorted(pods, key=lambda p: int(p[1])))
    )
    return "\n".join(lines)


def _pods(kubectl: testing.Kubectl, tenant: str) -> int:
    found = kubectl.json("get", "pods", "-A", "-o", "json")["items"]
    return sum(1 for pod in found if pod["metadata"]["namespace"].startswith(f"{tenant}-"))


def _first_enforced(history: list[dict[str, Any]]) -> int | None:
    """The resourceVersion at which the quota controller first enforced the quota."""
    for version in history:
        if (version.get("status") or {}).get("hard"):
            return int(version["metadata"]["resourceVersion"])
    return None


def test_racing_pods_into_new_namespaces_never_over_commits_the_tenant(
    racing, tenants, kubectl, operator
) -> None:
    """A cluster admin puts a pod into each namespace the instant it appears, and again the
    instant its quota appears; members fill the tenant up. Without the chart's quota-first
    policy such a pod gets in uncounted (no quota, or one not enforced yet) and the quota
    controller's first count may miss it: the tenant ran 10 pods of 9 in CI. With it, no pod
    is created before its namespace's quota is enforced, and the tenant never runs more than
    its quota."""
    name, race, seen = racing
    tenants.wait_ready(name)
    testing.eventually(lambda: _pods(kubectl, name) >= 9, timeout=60, what="9 pods admitted")
    race.stop.set()
    testing.eventually(
        lambda: seen.sums and seen.sums[-1][2] >= 9000, what="the watch to see all 9 counted"
    )
    assert _pods(kubectl, name) == 9, _story(seen, race)
    assert seen.errors == []
    limit = quantity.to_milli("9")
    over = [sums for sums in seen.sums if max(sums) > limit]
    assert over == [], over
    for namespace, pod in race.early:
        enforced = _first_enforced(seen.history.get(namespace, []))
        assert enforced is not None, namespace
        # One etcd's resourceVersions are its revisions, so they order these two writes.
        assert int(pod["metadata"]["resourceVersion"]) > enforced, (
            f"{pod['metadata']['name']} was created in {namespace} before its quota was enforced"
        )
    print(f"admin pods admitted after enforcement: {len(race.early)}; admitted: {race.admitted}")


# -- a quota the quota controller has not enforced yet --------------------------------------


def test_a_new_quota_the_quota_controller_has_not_enforced_grants_no_access(
    tenants, hub, kubectl, operator
) -> None:
    hub.pause_component("kube-controller-manager")
    try:
        name = tenants.create("unenforced", quota={"pods": "1"})
        namespace = f"{name}-app"
        quota = testing.eventually(
            lambda: kubectl.get("resourcequota", "govcloud-quota", namespace), what="the quota"
        )
        assert quota["spec"]["hard"] == {"pods": "1"}  # its final share, in its first write
        assert not (quota.get("status") or {}).get("hard")
        # Why access must wait for the quota controller: until it has copied the hard into
        # status, admission enforces nothing, and a cluster admin's two pods both get in. (The
        # paused controller manager creates no default ServiceAccount, which pods need.)
        kubectl("create", "serviceaccount", "default", "-n", namespace)
        for index in range(2):
            kubectl.apply(
                {**_pod("admin"), "metadata": {"name": f"p{index}", "namespace": namespace}}
            )
        assert len(kubectl.json("get", "pods", "-n", namespace)["items"]) == 2

        def waiting() -> dict[str, Any]:
            condition = tenants.condition(name, "AccessReady")
            return condition if condition.get("reason") == "WaitingForQuota" else {}

        testing.eventually(waiting, what="AccessReady=False WaitingForQuota")
        assert "is not enforced yet" in tenants.condition(name, "QuotaReady")["message"]
        seen_at = time.time()
        testing.eventually(
            lambda: (
                operator.metric_value(
                    "govcloud_tenant_last_reconcile_timestamp_seconds", tenant=name
                )
                > seen_at
            ),
            what="a later pass while the quota is still not enforced",
        )
        assert kubectl.get("rolebinding", "govcloud-admin", namespace) is None
        assert waiting()
    finally:
        hub.resume_component("kube-controller-manager")
    tenants.wait_ready(name)
    assert kubectl.get("rolebinding", "govcloud-admin", namespace) is not None


def test_with_the_chart_policy_no_pod_is_created_before_its_quota_is_enforced(
    quota_first, tenants, hub, kubectl, operator
) -> None:
    """The window of the test above, closed at the API server for everyone, cluster admins
    included: a pod waits until the quota controller enforces its namespace's quota."""
    hub.pause_component("kube-controller-manager")
    try:
        name = tenants.create("quotafirst", quota={"pods": "1"})
        namespace = f"{name}-app"
        testing.eventually(
            lambda: kubectl.get("resourcequota", "govcloud-quota", namespace), what="the quota"
        )
        kubectl("create", "serviceaccount", "default", "-n", namespace)
        pod = {**_pod("admin"), "metadata": {"name": "p0", "namespace": namespace}}
        refused = kubectl.run("create", "-f", "-", stdin=testing.json_text(pod))
        assert refused.returncode != 0
        assert "is not enforced yet" in refused.stderr, refused.stderr
        assert kubectl.json("get", "pods", "-n", namespace)["items"] == []
    finally:
        hub.resume_component("kube-controller-manager")
    tenants.wait_ready(name)
    testing.eventually(
        lambda: kubectl.run("create", "-f", "-", stdin=testing.json_text(pod)).returncode == 0,
        what="the pod admitted once the quota is enforced",
    )

    def counted() -> bool:
        quota = kubectl.get("resourcequota", "govcloud-quota", namespace) or {}
        return (quota.get("status") or {}).get("used", {}).get("pods") == "1"

    testing.eventually(counted, what="the pod counted by the quota")
