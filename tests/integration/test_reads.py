"""The tests' direct reads answer exactly what `kubectl get -o json` answers, and only for admin."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from govcloud.dev import cluster, reads, testing

pytestmark = pytest.mark.integration


@pytest.fixture
def namespace(hub: cluster.ControlPlane) -> Iterator[str]:
    admin = testing.Kubectl(hub.kubeconfig)
    name = f"reads-{uuid.uuid4().hex[:6]}"
    admin("create", "namespace", name)
    for index, tier in enumerate(("gold", "gold", "silver")):
        admin("create", "configmap", f"cm-{index}", "-n", name, f"--from-literal=tier={tier}")
        admin("label", "configmap", f"cm-{index}", "-n", name, f"tier={tier}", f"set={name}")
    yield name
    admin.run("delete", "namespace", name, "--wait=false")


def by_kubectl(kubectl: testing.Kubectl, *args: str) -> Any:
    return json.loads(kubectl("get", *args, "-o", "json"))


def names(listing: dict[str, Any]) -> list[str]:
    return sorted(item["metadata"]["name"] for item in listing["items"])


def test_an_object_reads_as_kubectl_prints_it(hub: cluster.ControlPlane, namespace: str) -> None:
    kubectl = testing.Kubectl(hub.kubeconfig)
    for args in (
        ("namespace", namespace),
        ("configmap", "cm-0", "-n", namespace),
        ("cm", "cm-2", "-n", namespace),
        ("clusterroles.rbac.authorization.k8s.io", "view"),
    ):
        direct = kubectl.json("get", *args)
        assert direct == by_kubectl(kubectl, *args), args
        assert "managedFields" not in direct["metadata"]
    found = kubectl.get("configmap", "cm-0", namespace)
    assert found is not None
    assert found["data"] == {"tier": "gold"}
    assert kubectl.get("configmap", "missing", namespace) is None
    assert kubectl.get("namespace", f"{namespace}-missing") is None
    with pytest.raises(AssertionError, match="NotFound"):
        kubectl.json("get", "configmap", "missing", "-n", namespace)


def test_a_listing_reads_as_kubectl_prints_it(hub: cluster.ControlPlane, namespace: str) -> None:
    kubectl = testing.Kubectl(hub.kubeconfig)
    selected = kubectl.json("get", "configmaps", "-n", namespace, "-l", "tier=gold")
    assert names(selected) == ["cm-0", "cm-1"]
    assert selected == by_kubectl(kubectl, "configmaps", "-n", namespace, "-l", "tier=gold")
    assert {(i["apiVersion"], i["kind"]) for i in selected["items"]} == {("v1", "ConfigMap")}
    silver = f"tier=silver,set={namespace}"
    everywhere = kubectl.json("get", "configmaps", "-A", "-l", silver)
    assert [i["metadata"]["namespace"] for i in everywhere["items"]] == [namespace]
    assert everywhere == by_kubectl(kubectl, "configmaps", "-A", "-l", silver)
    grouped = kubectl.json("get", "deployments.apps", "-n", namespace)
    assert grouped == by_kubectl(kubectl, "deployments.apps", "-n", namespace)


def test_a_kind_served_after_the_first_read_is_found(hub: cluster.ControlPlane) -> None:
    kubectl = testing.Kubectl(hub.kubeconfig)
    kubectl.json("get", "namespaces")  # discovery happens before the CRD exists
    plural = f"widgets{uuid.uuid4().hex[:6]}"
    group = "reads.example.com"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Cluster",
            "names": {"plural": plural, "singular": plural[:-1], "kind": "Widget" + plural[7:]},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object"}},
                }
            ],
        },
    }
    kubectl.apply(crd)
    try:
        kubectl("wait", "--for=condition=Established", f"crd/{plural}.{group}")
        listing = testing.eventually(
            lambda: kubectl.json("get", plural), timeout=30, what=f"{plural} to be listed"
        )
        assert listing["items"] == []
        assert kubectl.get(plural[:-1], "nothing") is None
        definition = kubectl.get("crd", f"{plural}.{group}")
        assert definition is not None
        assert definition["spec"]["group"] == group
    finally:
        kubectl.run("delete", "crd", f"{plural}.{group}", "--wait=false")


def test_impersonated_reads_are_never_made_with_the_admins_credentials(
    hub: cluster.ControlPlane, namespace: str
) -> None:
    admin = testing.Kubectl(hub.kubeconfig)
    nobody = admin.impersonate("reads-nobody", "reads-nobody-group")
    assert admin.get("configmap", "cm-0", namespace) is not None
    with pytest.raises(AssertionError, match=r"(?i)forbidden"):
        nobody.get("configmap", "cm-0", namespace)
    with pytest.raises(AssertionError, match=r"(?i)forbidden"):
        nobody.json("get", "configmaps", "-n", namespace)


def test_a_form_the_reader_does_not_know_is_left_to_kubectl(
    hub: cluster.ControlPlane, namespace: str
) -> None:
    kubectl = testing.Kubectl(hub.kubeconfig)
    sorted_listing = kubectl.json("get", "configmaps", "-n", namespace, "--sort-by=.metadata.name")
    assert names(sorted_listing) == sorted(["cm-0", "cm-1", "cm-2", "kube-root-ca.crt"])
    reader = reads.reader_for(hub.kubeconfig)
    assert reader.resolve("no-such-kind-anywhere") is None
    with pytest.raises(AssertionError, match="doesn't have a resource type"):
        kubectl.json("get", "no-such-kind-anywhere")
