"""judge: which namespaces a tenant may manage; protected and ungranted ones never."""

from __future__ import annotations

from typing import Any

import pytest

from govcloud.desired import protection
from govcloud.reconcile import tenant_namespaces

NAMES = protection.protected("govcloud-system", ["monitoring"])


def found(name: str, labels: dict[str, str] | None = None, **annotations: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels or {}, "annotations": annotations}}


def judge(real: str, existing: dict[str, Any] | None) -> Any:
    return tenant_namespaces.judge("kube", real, True, existing, set(), NAMES)


@pytest.mark.parametrize("existing", [None, found("kube-system")])
def test_kube_system_is_never_usable_even_created_or_adopted(existing: Any) -> None:
    verdict = judge("kube-system", existing)
    assert not verdict.usable
    assert verdict.phase == "Conflict"
    assert verdict.reason == "NamespaceProtected"
    assert "belongs to Kubernetes itself" in verdict.message


def test_the_operators_namespace_is_never_usable_even_granted() -> None:
    granted = found("govcloud-system", {"govcloud.io/adoptable-by": "govcloud"})
    verdict = tenant_namespaces.judge("govcloud", "govcloud-system", True, granted, set(), NAMES)
    assert not verdict.usable
    assert verdict.reason == "NamespaceProtected"


def test_a_namespace_labelled_protected_is_never_usable_even_owned_and_granted() -> None:
    labels = {
        "govcloud.io/protected": "true",
        "govcloud.io/tenant": "fin",
        "govcloud.io/adoptable-by": "fin",
    }
    verdict = tenant_namespaces.judge(
        "fin", "fin-vault", True, found("fin-vault", labels), set(), NAMES
    )
    assert not verdict.usable
    assert "govcloud.io/protected" in verdict.message


def test_adoption_without_a_grant_leaves_the_namespace_alone_and_says_how_to_grant() -> None:
    verdict = tenant_namespaces.judge("fin", "fin-legacy", True, found("fin-legacy"), set(), NAMES)
    assert not verdict.usable
    assert verdict.reason == "AdoptionNotGranted"
    assert "kubectl label namespace fin-legacy govcloud.io/adoptable-by=fin" in verdict.message


def test_a_grant_to_another_tenant_is_no_grant() -> None:
    other = found("fin-legacy", {"govcloud.io/adoptable-by": "data"})
    assert not tenant_namespaces.judge("fin", "fin-legacy", True, other, set(), NAMES).usable


def test_adoption_with_the_grant_is_usable_and_marked_adopted() -> None:
    granted = found("fin-legacy", **{"govcloud.io/adoptable-by": "fin"})  # as an annotation
    verdict = tenant_namespaces.judge("fin", "fin-legacy", True, granted, set(), NAMES)
    assert verdict.usable
    assert verdict.adopt


def test_a_grant_without_adopt_is_not_enough() -> None:
    granted = found("fin-legacy", {"govcloud.io/adoptable-by": "fin"})
    verdict = tenant_namespaces.judge("fin", "fin-legacy", False, granted, set(), NAMES)
    assert not verdict.usable
    assert "set adopt: true" in verdict.message


def test_a_namespace_that_lost_its_tenant_label_comes_back_only_with_a_grant() -> None:
    previously = {"fin-app"}
    bare = found("fin-app")
    assert not tenant_namespaces.judge("fin", "fin-app", False, bare, previously, NAMES).usable
    granted = found("fin-app", {"govcloud.io/adoptable-by": "fin"})
    assert tenant_namespaces.judge("fin", "fin-app", False, granted, previously, NAMES).usable


def test_own_and_new_namespaces_stay_usable() -> None:
    owned = found("fin-app", {"govcloud.io/tenant": "fin"})
    assert tenant_namespaces.judge("fin", "fin-app", False, owned, set(), NAMES).usable
    assert tenant_namespaces.judge("fin", "fin-new", False, None, set(), NAMES).phase == "Pending"


def test_another_tenants_namespace_is_never_taken_even_granted() -> None:
    theirs = found("fin-app", {"govcloud.io/tenant": "data", "govcloud.io/adoptable-by": "fin"})
    verdict = tenant_namespaces.judge("fin", "fin-app", True, theirs, set(), NAMES)
    assert not verdict.usable
    assert "belongs to tenant data" in verdict.message


def test_a_refusal_is_announced_once_per_message() -> None:
    verdict = tenant_namespaces.judge("fin", "fin-legacy", True, found("fin-legacy"), set(), NAMES)
    body: dict[str, Any] = {"metadata": {"name": "fin"}, "status": {}}
    first = tenant_namespaces.refusal_events(body, [verdict])
    assert [event.reason for event in first] == ["AdoptionNotGranted"]
    body["status"]["namespaces"] = [
        {"name": "fin-legacy", "phase": "Conflict", "message": verdict.message}
    ]
    assert tenant_namespaces.refusal_events(body, [verdict]) == []
