"""Onboarding a department from one YAML: namespaces, quota, limits, access, isolation, status."""

from __future__ import annotations

import pytest

from govcloud.desired import quantity
from govcloud.dev import testing

pytestmark = pytest.mark.integration


def _labels(kubectl: testing.Kubectl, namespace: str) -> dict[str, str]:
    found = kubectl.get("namespace", namespace)
    assert found is not None, f"namespace {namespace} is missing"
    return dict(found["metadata"].get("labels") or {})


def test_a_level_3_city_bureau_gets_everything_from_one_object(tenants, kubectl) -> None:
    name = tenants.create(
        "bureau",
        unit={"code": "jtj", "tier": "city"},
        securityLevel=3,
        namespaces=[{"name": "prod", "labels": {"environment": "production"}}, {"name": "data"}],
        admins={"groups": ["bureau-admins"], "users": ["wang"]},
        editors={"users": ["li"]},
        viewers={"groups": ["auditors"]},
        quota={"requests.cpu": "8", "requests.memory": "16Gi", "pods": "20"},
        limitRange={"defaultRequest": {"cpu": "100m", "memory": "128Mi"}},
        network={"allowFrom": [{"tenant": "data-bureau"}]},
    )
    tenant = tenants.wait_ready(name)
    namespaces = [f"{name}-prod", f"{name}-data"]

    for namespace in namespaces:
        labels = _labels(kubectl, namespace)
        assert labels["govcloud.io/tenant"] == name
        assert labels["govcloud.io/tier"] == "city"
        assert labels["govcloud.io/security-level"] == "3"
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
        assert labels["app.kubernetes.io/managed-by"] == "govcloud-operator"
    assert _labels(kubectl, f"{name}-prod")["environment"] == "production"

    hard_sums: dict[str, int] = {}
    for namespace in namespaces:
        quota = kubectl.json("get", "resourcequota", "govcloud-quota", "-n", namespace)
        for resource, value in quota["spec"]["hard"].items():
            hard_sums[resource] = hard_sums.get(resource, 0) + quantity.to_milli(value)
        limits = kubectl.json("get", "limitrange", "govcloud-defaults", "-n", namespace)
        assert limits["spec"]["limits"][0]["defaultRequest"]["cpu"] == "100m"
    assert hard_sums["requests.cpu"] <= quantity.to_milli("8")
    assert hard_sums["pods"] <= quantity.to_milli("20")

    bindings = kubectl.json("get", "rolebindings", "-n", f"{name}-prod")["items"]
    by_role = {item["roleRef"]["name"]: item["subjects"] for item in bindings}
    assert {subject["name"] for subject in by_role["admin"]} == {"bureau-admins", "wang"}
    assert [subject["name"] for subject in by_role["edit"]] == ["li"]
    assert [subject["name"] for subject in by_role["view"]] == ["auditors"]

    policy = kubectl.json("get", "networkpolicy", "govcloud-isolation", "-n", f"{name}-data")
    sources = policy["spec"]["ingress"][0]["from"]
    selectors = [source["namespaceSelector"] for source in sources]
    assert {"matchLabels": {"govcloud.io/tenant": name}} in selectors
    assert {"matchLabels": {"govcloud.io/tenant": "data-bureau"}} in selectors
    assert any(
        "monitoring" in expression.get("values", [])
        for selector in selectors
        for expression in selector.get("matchExpressions", [])
    )
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    destinations = [peer for rule in policy["spec"]["egress"] for peer in rule["to"]]
    assert {"namespaceSelector": {"matchLabels": {"govcloud.io/tenant": name}}} in destinations
    assert policy["spec"]["egress"][0]["ports"] == [
        {"protocol": "UDP", "port": 53},
        {"protocol": "TCP", "port": 53},
    ]
    # It lets data-bureau in: data-bureau's egress finds its namespaces by this label.
    labels = (kubectl.get("namespace", f"{name}-data") or {})["metadata"]["labels"]
    assert labels["allow-from.govcloud.io/data-bureau"] == "true"

    status = tenant["status"]
    assert status["phase"] == "Active"
    assert status["namespaceCount"] == 2
    assert status["usage"]["cpu"] == "0/8"
    assert {entry["name"] for entry in status["namespaces"]} == set(namespaces)
    assert {item["type"] for item in status["conditions"]} == {
        "Ready",
        "NamespacesReady",
        "QuotaReady",
        "AccessReady",
        "NetworkIsolated",
        "DeletionConfirmed",  # the fixture's tenants are deletionPolicy: Delete, confirmed
    }
    assert all(item["status"] == "True" for item in status["conditions"])
    printed = kubectl("get", "cloudtenant", name)
    header, row = printed.splitlines()[:2]
    for column in ("DISPLAY", "TIER", "LEVEL", "NAMESPACES", "CPU", "MEMORY", "PHASE", "AGE"):
        assert column in header
    for value in ("city", "3", "0/8", "0/16Gi", "Active"):
        assert value in row.split()


def test_a_level_2_office_enforces_baseline_and_warns_restricted(tenants, kubectl) -> None:
    name = tenants.create("office", securityLevel=2)
    tenants.wait_ready(name)
    labels = _labels(kubectl, f"{name}-app")
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"
    assert labels["pod-security.kubernetes.io/audit"] == "restricted"


def test_pod_security_from_the_level_is_enforced_by_the_api_server(tenants, kubectl) -> None:
    name = tenants.create("strict", securityLevel=3)
    tenants.wait_ready(name)
    privileged = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "root", "namespace": f"{name}-app"},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "busybox",
                    "resources": {"requests": {"cpu": "10m", "memory": "8Mi"}},
                }
            ]
        },
    }
    refused = kubectl.run("create", "-f", "-", stdin=testing.json_text(privileged))
    assert refused.returncode != 0
    assert "violates PodSecurity" in refused.stderr


def test_events_and_metrics_tell_what_happened(tenants, kubectl, operator) -> None:
    name = tenants.create("observed", quota={"requests.cpu": "3", "pods": "9"})
    tenants.wait_ready(name)
    reasons = testing.eventually(
        lambda: (
            {
                item["reason"]
                for item in kubectl.json(
                    "get",
                    "events",
                    "-n",
                    "default",
                    "--field-selector",
                    f"involvedObject.name={name}",
                )["items"]
            }
            >= {"NamespaceCreated", "Created"}
        ),
        what="events about the onboarding",
    )
    assert reasons

    def exported() -> bool:
        return (
            operator.metric_value(
                "govcloud_tenant_resourcequota",
                tenant=name,
                resource="requests.cpu",
                type="hard",
            )
            == 3.0
        )

    testing.eventually(exported, what="the tenant's quota in /metrics")
    assert operator.metric_value("govcloud_tenant_namespaces", tenant=name) == 1.0
    assert (
        operator.metric_value(
            "govcloud_tenant_status_condition", tenant=name, condition="Ready", status="true"
        )
        == 1.0
    )
    assert operator.metric_value("govcloud_tenant_phase", tenant=name, phase="Active") == 1.0
