"""Protected namespaces and adoption grants: the pure rules the operator and its tests share."""

from __future__ import annotations

import pytest

from govcloud.desired import protection

NAMES = protection.protected("govcloud-system", ["monitoring", "ingress-nginx"])


def namespace(name: str, labels: dict[str, str] | None = None, **annotations: str) -> dict:
    return {"metadata": {"name": name, "labels": labels or {}, "annotations": annotations}}


@pytest.mark.parametrize(
    "name",
    ["kube-system", "kube-public", "kube-node-lease", "kube-anything", "default",
     "govcloud-system", "monitoring", "ingress-nginx"],
)  # fmt: skip
def test_kubernetes_operator_and_platform_namespaces_are_protected_by_name(name: str) -> None:
    assert NAMES.by_name(name)
    assert protection.why_protected(namespace(name), NAMES) is not None


def test_the_protected_label_protects_any_namespace_whatever_its_value() -> None:
    labelled = namespace("finance-app", {"govcloud.io/protected": ""})
    why = protection.why_protected(labelled, NAMES)
    assert why == "namespace finance-app is labelled govcloud.io/protected"


def test_an_ordinary_tenant_namespace_is_not_protected() -> None:
    assert not NAMES.by_name("finance-app")
    assert protection.why_protected(namespace("finance-app"), NAMES) is None
    assert protection.why_protected(namespace("kubernetes-app"), NAMES) is None


def test_a_grant_is_read_from_a_label_or_an_annotation() -> None:
    assert protection.granted_to(namespace("x", {"govcloud.io/adoptable-by": "finance"})) == (
        "finance"
    )
    annotated = namespace("x", **{"govcloud.io/adoptable-by": "finance"})
    assert protection.granted_to(annotated) == "finance"
    assert protection.granted_to(namespace("x")) is None
    assert protection.granted_to({"metadata": {"name": "x"}}) is None


def test_settings_give_the_operator_namespace_and_the_platform_namespaces() -> None:
    class Settings:
        operator_namespace = "city-platform"
        platform_namespaces = ("monitoring",)

    names = protection.of_settings(Settings())
    assert names.by_name("city-platform")
    assert names.by_name("monitoring")
    assert names.by_name("default")
    assert not names.by_name("govcloud-system")
