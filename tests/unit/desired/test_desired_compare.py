"""needs_update flags real drift only, so a resync of an unchanged tenant makes zero writes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from govcloud.desired import compare, meta

QUOTA: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "ResourceQuota",
    "metadata": meta.object_meta("govcloud-quota", "jtj-prod", "jtj"),
    "spec": {"hard": {"requests.cpu": "1", "requests.memory": "1536Mi", "pods": "10"}},
}
BINDING: dict[str, Any] = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "RoleBinding",
    "metadata": meta.object_meta("govcloud-admin", "jtj-prod", "jtj"),
    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
    "subjects": [
        {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"},
        {"kind": "ServiceAccount", "namespace": "ci", "name": "deployer"},
    ],
}
LIMITS: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "LimitRange",
    "metadata": meta.object_meta("govcloud-defaults", "jtj-prod", "jtj"),
    "spec": {"limits": [{"type": "Container", "max": {"cpu": "2", "memory": "1Gi"}}]},
}
NAMESPACE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Namespace",
    "metadata": meta.object_meta(
        "jtj-prod",
        None,
        "jtj",
        {"pod-security.kubernetes.io/enforce": "restricted"},
        {"govcloud.io/display-name": "市交通运输局"},
    ),
}
POLICY: dict[str, Any] = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "NetworkPolicy",
    "metadata": meta.object_meta("govcloud-isolation", "jtj-prod", "jtj"),
    "spec": {
        "podSelector": {},
        "policyTypes": ["Ingress"],
        "ingress": [
            {"from": [{"namespaceSelector": {"matchLabels": {"govcloud.io/tenant": "jtj"}}}]}
        ],
    },
}


def as_served(desired: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The object as the API server returns it: server fields added, then ``changes`` applied."""
    observed = copy.deepcopy(desired)
    observed["metadata"].update(uid="1234", resourceVersion="42", managedFields=[{}])
    observed["status"] = {"anything": True}
    for dotted, value in changes.items():
        target = observed
        *parents, last = dotted.split("__")
        for key in parents:
            target = target[key] if not isinstance(target, list) else target[int(key)]
        if value is DELETE:
            del target[last]
        else:
            target[last] = value
    return observed


DELETE = object()


@pytest.mark.parametrize("desired", [QUOTA, BINDING, LIMITS, NAMESPACE, POLICY])
def test_an_object_as_served_needs_no_update(desired: dict[str, Any]) -> None:
    assert not compare.needs_update(desired, as_served(desired))


@pytest.mark.parametrize("desired", [QUOTA, BINDING, LIMITS, NAMESPACE, POLICY])
def test_a_missing_object_needs_creating(desired: dict[str, Any]) -> None:
    assert compare.needs_update(desired, None)


def test_listed_objects_without_kind_and_api_version_still_match() -> None:
    observed = as_served(QUOTA)
    del observed["kind"], observed["apiVersion"]
    assert not compare.needs_update(QUOTA, observed)


@pytest.mark.parametrize(
    ("desired", "changes", "drift"),
    [
        # Quantities by value, keys exactly.
        (
            QUOTA,
            {"spec__hard": {"requests.cpu": "1000m", "requests.memory": "1.5Gi", "pods": "1e1"}},
            False,
        ),
        (QUOTA, {"spec__hard__pods": "11"}, True),
        (QUOTA, {"spec__hard__services": "0"}, True),
        (QUOTA, {"spec__hard__pods": DELETE}, True),
        (QUOTA, {"spec__hard__pods": "not-a-quantity"}, True),
        # Labels and annotations: ours must be there, others are tolerated.
        (QUOTA, {"metadata__labels__other.io/x": "y"}, False),
        (QUOTA, {"metadata__labels__govcloud.io/tenant": "szj"}, True),
        (NAMESPACE, {"metadata__labels__pod-security.kubernetes.io/enforce": "privileged"}, True),
        (NAMESPACE, {"metadata__labels__kubernetes.io/metadata.name": "jtj-prod"}, False),
        (NAMESPACE, {"metadata__annotations__govcloud.io/display-name": "x"}, True),
        (NAMESPACE, {"metadata__annotations": DELETE}, True),
        (NAMESPACE, {"spec": {"finalizers": ["kubernetes"]}}, False),
        # Lists exactly: a subject added or removed by hand is drift.
        (
            BINDING,
            {"subjects": [*BINDING["subjects"], {"kind": "User", "name": "mallory"}]},
            True,
        ),
        (BINDING, {"subjects": BINDING["subjects"][:1]}, True),
        (BINDING, {"subjects": BINDING["subjects"][::-1]}, True),
        (BINDING, {"subjects__0__name": "mallory"}, True),
        # Defaults the API server adds inside our maps are tolerated...
        (LIMITS, {"spec__limits__0__default": {"cpu": "2", "memory": "1Gi"}}, False),
        (LIMITS, {"spec__limits__0__max__cpu": "2000m"}, False),
        # ...but our values must hold.
        (LIMITS, {"spec__limits__0__max__cpu": "3"}, True),
        (LIMITS, {"spec__limits__0__max": DELETE}, True),
        (POLICY, {"spec__policyTypes": ["Ingress", "Egress"]}, True),
        (POLICY, {"spec__podSelector": {"matchLabels": {"app": "x"}}}, True),
        (POLICY, {"spec__ingress": []}, True),
        # Nested maps exactly: a narrowed selector or an added field is drift...
        (POLICY, {"spec__ingress__0__from__0__podSelector": {"matchLabels": {"a": "b"}}}, True),
        (POLICY, {"spec__egress": [{}]}, True),
        # ...but null or empty fields are the same as absent ones.
        (POLICY, {"spec__egress": None, "spec__ingress__0__ports": None}, False),
        (BINDING, {"subjects__1__apiGroup": ""}, False),
        (LIMITS, {"spec__limits__0__defaultRequest": {"ephemeral-storage": "1Gi"}}, False),
    ],
)
def test_drift(desired: dict[str, Any], changes: dict[str, Any], drift: bool) -> None:
    assert compare.needs_update(desired, as_served(desired, **changes)) is drift


def test_an_empty_desired_field_may_be_omitted_by_the_server() -> None:
    assert not compare.needs_update(POLICY, as_served(POLICY, spec__podSelector=DELETE))


def test_a_changed_role_ref_needs_replacing_not_updating() -> None:
    observed = as_served(BINDING, roleRef={**BINDING["roleRef"], "name": "edit"})
    assert compare.needs_replace(BINDING, observed)
    assert not compare.needs_replace(BINDING, as_served(BINDING))
    assert not compare.needs_replace(QUOTA, as_served(QUOTA))
    assert not compare.needs_replace(BINDING, None)


def test_merge_patch_sends_null_for_keys_gone_at_any_depth() -> None:
    current = {"quota": {"hard": {"pods": "10", "requests.cpu": "2"}}, "phase": "Active"}
    wanted = {"quota": {"hard": {"requests.cpu": "4"}}}
    assert compare.merge_patch(current, wanted) == {
        "quota": {"hard": {"requests.cpu": "4", "pods": None}},
        "phase": None,
    }


def test_merge_patch_replaces_lists_and_scalars_whole() -> None:
    current = {"conditions": [{"type": "Ready"}], "count": 1}
    wanted = {"conditions": [], "count": 2, "new": {"a": 1}}
    assert compare.merge_patch(current, wanted) == {"conditions": [], "count": 2, "new": {"a": 1}}
