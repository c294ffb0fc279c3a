"""Onboarding a department (JOURNEYS 4-5): `kubectl apply -f` an example, and seconds later it
is Active with its namespaces, a quota that sums to at most the tenant's, isolation, defaults
and access for its own people — and nothing of anyone else's."""

from __future__ import annotations

from typing import Any

import pytest

import harness
from govcloud.desired import quantity
from govcloud.dev import testing

TRANSPORT = "tenant-city-transport.yaml"  # 市交通运输局: city tier, level 3, three namespaces
ZONE = "tenant-hightech-zone.yaml"  # 高新区管委会: devzone tier, level 2


@pytest.fixture(scope="module")
def transport(onboard: Any) -> dict[str, Any]:
    tenant: dict[str, Any] = onboard(TRANSPORT)
    return tenant


@pytest.fixture(scope="module")
def zone(onboard: Any) -> dict[str, Any]:
    tenant: dict[str, Any] = onboard(ZONE)
    return tenant


def owned(kubectl: testing.Kubectl, kind: str, tenant: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = kubectl.json(
        "get", kind, "-A", "-l", f"govcloud.io/tenant={tenant}"
    )["items"]
    return items


def namespaces_of(tenant: dict[str, Any]) -> list[str]:
    name = tenant["metadata"]["name"]
    return [f"{name}-{entry['name']}" for entry in tenant["spec"]["namespaces"]]


def test_a_department_is_active_with_its_labelled_namespaces(
    transport: dict[str, Any], kubectl: testing.Kubectl
) -> None:
    status = transport["status"]
    assert status["phase"] == "Active"
    assert status["namespaceCount"] == 3
    expected = namespaces_of(transport)
    assert sorted(item["name"] for item in status["namespaces"]) == sorted(expected)
    for name in expected:
        namespace = kubectl.get("namespace", name)
        assert namespace is not None, f"namespace {name} was not created"
        labels = namespace["metadata"]["labels"]
        assert labels["govcloud.io/tenant"] == "city-transport"
        assert labels["govcloud.io/tier"] == "city"
        assert labels["govcloud.io/security-level"] == "3"
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"  # level 3
    prod = kubectl.get("namespace", "city-transport-prod")
    assert prod is not None
    assert prod["metadata"]["labels"]["environment"] == "production"


def test_quota_is_spread_over_namespaces_and_never_exceeds_the_tenant(
    transport: dict[str, Any], kubectl: testing.Kubectl
) -> None:
    tenant_quota: dict[str, str] = transport["spec"]["quota"]
    quotas = owned(kubectl, "resourcequotas", "city-transport")
    assert sorted(item["metadata"]["namespace"] for item in quotas) == sorted(
        namespaces_of(transport)
    )
    for resource, hard in tenant_quota.items():
        total = sum(
            (quantity.parse(item["spec"]["hard"][resource]) for item in quotas),
            start=quantity.parse("0"),
        )
        assert total <= quantity.parse(hard), f"{resource}: namespaces hold {total} > {hard}"
    assert transport["status"]["usage"]["cpu"] == "0/64"
    table = kubectl("get", "cloudtenants", "city-transport")
    assert "0/64" in table
    assert "Active" in table
    assert "市交通运输局" in table


def test_namespaces_are_isolated_and_get_container_defaults(
    transport: dict[str, Any], kubectl: testing.Kubectl
) -> None:
    expected = sorted(namespaces_of(transport))
    policies = owned(kubectl, "networkpolicies", "city-transport")
    assert sorted({item["metadata"]["namespace"] for item in policies}) == expected
    limits = owned(kubectl, "limitranges", "city-transport")
    assert sorted(item["metadata"]["namespace"] for item in limits) == expected
    wanted = transport["spec"]["limitRange"]
    for item in limits:
        container = next(entry for entry in item["spec"]["limits"] if entry["type"] == "Container")
        assert container["defaultRequest"]["cpu"] == wanted["defaultRequest"]["cpu"]
        assert container["default"]["memory"] == wanted["default"]["memory"]
    condition = {item["type"]: item["status"] for item in transport["status"]["conditions"]}
    assert condition["NetworkIsolated"] == "True"


def test_members_reach_their_own_tenant_and_nothing_of_another(
    transport: dict[str, Any], zone: dict[str, Any], kubectl: testing.Kubectl
) -> None:
    admin = kubectl.impersonate("wang.jianguo@jtj.hefei.gov.cn", "ldap:jtj-cloud-admins")
    own = admin.run("get", "cloudtenant", "city-transport", "-o", "jsonpath={.status.phase}")
    assert own.returncode == 0, own.stderr
    assert own.stdout == "Active"
    other = admin.run("get", "cloudtenant", zone["metadata"]["name"])
    assert other.returncode != 0
    assert "forbidden" in other.stderr.lower()

    assert can(admin, "create", "pods", "-n", "city-transport-prod")
    assert can(admin, "create", "deployments.apps", "-n", "city-transport-staging")
    assert not can(admin, "list", "pods", "-n", "hightech-zone-apps")
    assert not can(admin, "get", "secrets", "-n", "hightech-zone-apps")
    assert not can(admin, "list", "cloudtenants.govcloud.io")
    # Viewers read their tenant's namespaces and change nothing.
    viewer = kubectl.impersonate("staff@jtj.hefei.gov.cn", "ldap:jtj-staff")
    assert can(viewer, "list", "pods", "-n", "city-transport-data")
    assert not can(viewer, "create", "pods", "-n", "city-transport-data")


def can(who: testing.Kubectl, *args: str) -> bool:
    result = who.run("auth", "can-i", *args)
    assert result.stdout.strip() in {"yes", "no"}, result.stderr
    return result.stdout.strip() == "yes"


def test_onboarding_is_told_in_events(transport: dict[str, Any], cloud: harness.Cloud) -> None:
    reasons = {item["reason"] for item in cloud.events_for("city-transport")}
    assert "NamespaceCreated" in reasons, reasons
