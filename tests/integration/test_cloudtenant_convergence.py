"""Drift heals, spec changes converge, restarts converge, an unchanged resync writes nothing."""

from __future__ import annotations

import json
import time

import _tenant_helpers as helpers
import pytest

from govcloud.dev import testing

pytestmark = pytest.mark.integration

DRIFT_DEADLINE = 10.0


def _wait_restored(kubectl: testing.Kubectl, check, what: str) -> None:  # type: ignore[no-untyped-def]
    testing.eventually(check, timeout=DRIFT_DEADLINE, what=what)


def test_hand_deleted_or_edited_objects_are_put_back_within_ten_seconds(tenants, kubectl) -> None:
    name = tenants.create(
        "drift",
        viewers={"users": ["auditor"]},
        limitRange={"default": {"cpu": "200m"}},
    )
    tenants.wait_ready(name)
    namespace = f"{name}-app"

    kubectl("delete", "resourcequota", "govcloud-quota", "-n", namespace)
    _wait_restored(
        kubectl,
        lambda: kubectl.get("resourcequota", "govcloud-quota", namespace),
        "the ResourceQuota to be restored",
    )

    kubectl(
        "patch",
        "rolebinding",
        "govcloud-view",
        "-n",
        namespace,
        "--type=json",
        "-p",
        json.dumps([{"op": "replace", "path": "/subjects/0/name", "value": "intruder"}]),
    )
    _wait_restored(
        kubectl,
        lambda: (
            kubectl.json("get", "rolebinding", "govcloud-view", "-n", namespace)["subjects"][0][
                "name"
            ]
            == "auditor"
        ),
        "the RoleBinding subjects to be restored",
    )

    kubectl("delete", "networkpolicy", "govcloud-isolation", "-n", namespace)
    _wait_restored(
        kubectl,
        lambda: kubectl.get("networkpolicy", "govcloud-isolation", namespace),
        "the NetworkPolicy to be restored",
    )

    kubectl(
        "patch",
        "limitrange",
        "govcloud-defaults",
        "-n",
        namespace,
        "--type=json",
        "-p",
        json.dumps([{"op": "replace", "path": "/spec/limits/0/default/cpu", "value": "4"}]),
    )
    _wait_restored(
        kubectl,
        lambda: (
            kubectl.json("get", "limitrange", "govcloud-defaults", "-n", namespace)["spec"][
                "limits"
            ][0]["default"]["cpu"]
            == "200m"
        ),
        "the LimitRange to be restored",
    )

    kubectl(
        "label",
        "namespace",
        namespace,
        "pod-security.kubernetes.io/enforce=privileged",
        "--overwrite",
    )
    _wait_restored(
        kubectl,
        lambda: (
            (kubectl.get("namespace", namespace) or {})["metadata"]["labels"].get(
                "pod-security.kubernetes.io/enforce"
            )
            == "baseline"
        ),
        "the Pod Security label to be restored",
    )
    events = kubectl.json(
        "get", "events", "-n", "default", "--field-selector", f"involvedObject.name={name}"
    )["items"]
    assert any(item["reason"] == "DriftRepaired" for item in events)


def test_objects_the_spec_no_longer_wants_are_pruned(tenants, kubectl) -> None:
    name = tenants.create(
        "prune", limitRange={"default": {"cpu": "200m"}}, viewers={"users": ["v"]}
    )
    tenants.wait_ready(name)
    namespace = f"{name}-app"
    assert kubectl.get("limitrange", "govcloud-defaults", namespace) is not None
    tenants.patch(name, {"limitRange": None, "viewers": None})
    testing.eventually(
        lambda: (
            kubectl.get("limitrange", "govcloud-defaults", namespace) is None
            and kubectl.get("rolebinding", "govcloud-view", namespace) is None
        ),
        what="the LimitRange and the viewers' RoleBinding to be pruned",
    )
    assert kubectl.get("rolebinding", "govcloud-admin", namespace) is not None


def test_spec_changes_converge_to_exactly_what_is_asked(tenants, kubectl) -> None:
    name = tenants.create("change", securityLevel=3)
    tenants.wait_ready(name)
    tenants.patch(
        name,
        {
            "securityLevel": 2,
            "namespaces": [{"name": "app"}, {"name": "extra"}],
            "admins": {"users": ["new-admin"], "groups": None},
            "quota": {"requests.cpu": "4", "requests.memory": "4Gi", "pods": None},
            "network": {"allowFrom": [{"namespaceSelector": {"team": "data"}}]},
        },
    )
    tenants.wait_ready(name)
    for namespace in (f"{name}-app", f"{name}-extra"):
        labels = (kubectl.get("namespace", namespace) or {})["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
        admins = kubectl.json("get", "rolebinding", "govcloud-admin", "-n", namespace)
        assert [subject["name"] for subject in admins["subjects"]] == ["new-admin"]
        policy = kubectl.json("get", "networkpolicy", "govcloud-isolation", "-n", namespace)
        assert {"matchLabels": {"team": "data"}} in [
            source["namespaceSelector"] for source in policy["spec"]["ingress"][0]["from"]
        ]
    status = tenants.get(name)["status"]
    assert status["quota"]["hard"]["requests.cpu"] == "4"
    # A resource the spec dropped leaves the status too, at every depth.
    assert "pods" not in status["quota"]["hard"]
    assert all("pods" not in item["quota"]["hard"] for item in status["namespaces"]), status
    assert status["namespaceCount"] == 2


def _events_about(kubectl: testing.Kubectl, name: str) -> list[str]:
    items = kubectl.json(
        "get", "events", "-n", "default", "--field-selector", f"involvedObject.name={name}"
    )["items"]
    return sorted(f"{item['type']} {item['reason']}: {item['message']}" for item in items)


def test_a_resync_of_an_unchanged_tenant_writes_nothing(tenants, hub, kubectl, operator) -> None:
    name = tenants.create(
        "quiet",
        namespaces=[{"name": "a"}, {"name": "b"}],
        viewers={"users": ["v"]},
        limitRange={"default": {"cpu": "200m", "memory": "256Mi"}},
        network={"allowFrom": [{"tenant": "other"}]},
    )
    tenants.wait_ready(name)

    def settled_at() -> float:
        return operator.metric_value(
            "govcloud_tenant_last_reconcile_timestamp_seconds", tenant=name
        )

    # Quota usage settles (the quota controller fills status.used) and its last pass finishes.
    testing.eventually(settled_at, what="a first reconcile")
    # The window starts on the next whole second: the audit log compares timestamps as text.
    boundary = int(time.time()) + 1
    testing.eventually(lambda: time.time() >= boundary, what="the next second")
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(boundary))
    # Three resync periods (5 s each in the test operator) must pass over the tenant.
    testing.eventually(
        lambda: settled_at() > boundary + 15,
        timeout=60,
        what="three resync passes over the unchanged tenant",
    )
    writes = helpers.tenant_writes(hub, name, ("govcloud-operator", "kopf"), since)
    assert writes == [], [(event.get("verb"), (event.get("objectRef") or {})) for event in writes]
    # kopf posts Events from a queue and stamps them when posted, so onboarding's own Events may
    # carry times inside the window. What a resync must not do is say anything again: every
    # Event is said once, and none of them is a warning or about anything but onboarding.
    said = _events_about(kubectl, name)
    assert said, "onboarding posted no Events"
    assert len(said) == len(set(said)), said
    assert {line.split(":")[0] for line in said} <= {
        "Normal NamespaceCreated",
        "Normal Created",
        "Normal QuotaRebalanced",
    }, said


def test_restarting_the_operator_mid_onboarding_converges_without_duplicates(
    tenants, kubectl, operator
) -> None:
    operator.kill()
    try:
        name = tenants.create("restart", namespaces=[{"name": "a"}, {"name": "b"}, {"name": "c"}])
    finally:
        operator.start()
    testing.eventually(
        lambda: kubectl.get("namespace", f"{name}-a"), what="onboarding to have started"
    )
    operator.kill()
    operator.start()
    tenants.wait_ready(name)
    selector = f"govcloud.io/tenant={name}"
    assert len(kubectl.json("get", "namespaces", "-l", selector)["items"]) == 3
    assert len(kubectl.json("get", "resourcequotas", "-A", "-l", selector)["items"]) == 3
    assert len(kubectl.json("get", "networkpolicies", "-A", "-l", selector)["items"]) == 3
    assert len(kubectl.json("get", "rolebindings", "-A", "-l", selector)["items"]) == 3
