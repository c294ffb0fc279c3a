"""Tenant namespaces carry ownership, tier, level and Pod Security labels users cannot override."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from govcloud import constants
from govcloud.api.v1alpha1 import cloudtenant
from govcloud.desired import namespaces

SpecFactory = Callable[..., cloudtenant.CloudTenantSpec]


@pytest.mark.parametrize(
    ("level", "enforce"), [(1, "baseline"), (2, "baseline"), (3, "restricted")]
)
def test_pod_security_follows_the_security_level(level: int, enforce: str) -> None:
    assert namespaces.pod_security_labels(level) == {
        "pod-security.kubernetes.io/enforce": enforce,
        "pod-security.kubernetes.io/enforce-version": "latest",
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/audit": "restricted",
    }


def test_namespace_manifest(make_spec: SpecFactory) -> None:
    spec = make_spec(securityLevel=2)
    manifest = namespaces.build("jtj", spec, spec.namespaces[1])
    assert manifest == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": "jtj-dev",
            "labels": {
                "team": "web",
                "govcloud.io/tier": "city",
                "govcloud.io/security-level": "2",
                "govcloud.io/namespace": "dev",
                "govcloud.io/quota": "required",
                "pod-security.kubernetes.io/enforce": "baseline",
                "pod-security.kubernetes.io/enforce-version": "latest",
                "pod-security.kubernetes.io/warn": "restricted",
                "pod-security.kubernetes.io/audit": "restricted",
                "app.kubernetes.io/managed-by": "govcloud-operator",
                "govcloud.io/tenant": "jtj",
            },
            "annotations": {"govcloud.io/display-name": "市交通运输局"},
        },
    }


@pytest.mark.parametrize(
    "key",
    [
        constants.LABEL_TENANT,
        constants.LABEL_TIER,
        constants.LABEL_MANAGED_BY,
        constants.LABEL_ORPHANED,
        constants.PSA_ENFORCE,
        constants.PSA_ENFORCE_VERSION,
        "pod-security.kubernetes.io/warn-version",
        "kubernetes.io/metadata.name",
    ],
)
def test_user_labels_cannot_set_reserved_keys(make_spec: SpecFactory, key: str) -> None:
    # The API refuses these labels; a spec stored before that check must still not win.
    namespace = cloudtenant.TenantNamespace.model_construct(
        name="prod", labels={key: "v1.0", "ok": "yes"}, adopt=False
    )
    labels = namespaces.build("jtj", make_spec(), namespace)["metadata"]["labels"]
    assert labels.get(key) != "v1.0"
    assert labels["ok"] == "yes"


def test_metadata_name_label_is_left_to_the_api_server(make_spec: SpecFactory) -> None:
    spec = make_spec()
    labels = namespaces.build("jtj", spec, spec.namespaces[0])["metadata"]["labels"]
    assert "kubernetes.io/metadata.name" not in labels


def test_build_all_keeps_spec_order(make_spec: SpecFactory) -> None:
    names = [ns["metadata"]["name"] for ns in namespaces.build_all("jtj", make_spec())]
    assert names == ["jtj-prod", "jtj-dev"]


def test_only_namespaces_of_a_tenant_with_a_quota_make_pods_wait_for_it(
    make_spec: SpecFactory,
) -> None:
    limited = namespaces.build("jtj", make_spec(), make_spec().namespaces[0])
    unlimited = namespaces.build("jtj", make_spec(quota={}), make_spec(quota={}).namespaces[0])
    assert limited["metadata"]["labels"][constants.LABEL_QUOTA] == constants.QUOTA_REQUIRED
    assert constants.LABEL_QUOTA not in unlimited["metadata"]["labels"]
