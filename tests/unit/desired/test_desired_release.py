"""What bounds a namespace once its tenant lets go of it, and who may ever delete it."""

from __future__ import annotations

from conftest import SpecFactory
from govcloud import constants
from govcloud.desired import meta, namespaces, networkpolicies, quotas


def test_a_released_namespace_keeps_its_last_hards_and_starts_no_pod() -> None:
    frozen = quotas.released("jtj", "jtj-prod", {"requests.cpu": "4", "pods": "20"})

    assert frozen["metadata"]["name"] == meta.RELEASED_NAME
    assert frozen["spec"]["hard"] == {"requests.cpu": "4", "pods": "0"}


def test_a_namespace_released_without_a_quota_still_starts_no_pod() -> None:
    assert quotas.released("jtj", "jtj-prod", {})["spec"]["hard"] == {"pods": "0"}


def test_released_objects_are_marked_orphaned_so_the_tenant_neither_counts_nor_prunes_them() -> (
    None
):
    for manifest in (
        quotas.released("jtj", "jtj-prod", {}),
        networkpolicies.released("jtj", "jtj-prod"),
    ):
        labels = manifest["metadata"]["labels"]
        assert labels[constants.LABEL_ORPHANED] == "jtj"
        assert constants.LABEL_TENANT not in labels
        assert manifest["metadata"]["namespace"] == "jtj-prod"


def test_a_released_namespace_admits_no_ingress() -> None:
    policy = networkpolicies.released("jtj", "jtj-prod")

    assert policy["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}


def test_the_creating_tenant_uid_is_recorded_on_the_namespace(make_spec: SpecFactory) -> None:
    spec = make_spec()
    manifest = namespaces.with_owner(namespaces.build("jtj", spec, spec.namespaces[0]), "uid-1")

    assert namespaces.owner_uid(manifest) == "uid-1"
    assert manifest["metadata"]["annotations"][constants.ANNOTATION_DISPLAY_NAME]


def test_a_namespace_without_the_record_has_no_owner_uid() -> None:
    assert namespaces.owner_uid({"metadata": {"name": "x"}}) is None


def test_a_suspended_tenants_namespaces_are_frozen(make_spec: SpecFactory) -> None:
    spec = make_spec(suspended=True)

    labels = namespaces.build("jtj", spec, spec.namespaces[0])["metadata"]["labels"]

    assert labels[constants.LABEL_FROZEN] == namespaces.FROZEN_SUSPENDED


def test_an_active_tenants_namespaces_are_not_frozen(make_spec: SpecFactory) -> None:
    spec = make_spec()

    labels = namespaces.build("jtj", spec, spec.namespaces[0])["metadata"]["labels"]

    assert constants.LABEL_FROZEN not in labels
