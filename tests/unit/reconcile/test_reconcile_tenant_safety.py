"""Deletion needs the tenant's confirmation and its own UID; access needs the quota first."""

from __future__ import annotations

from typing import Any

from govcloud import constants
from govcloud.reconcile import tenant, tenant_lifecycle, tenant_types

Manifest = dict[str, Any]


def a_tenant(uid: str = "uid-1", confirm: str | None = "t1") -> Manifest:
    annotations = {constants.ANNOTATION_CONFIRM_DELETE: confirm} if confirm else {}
    return {"metadata": {"name": "t1", "uid": uid, "annotations": annotations}}


def a_namespace(uid: str | None = "uid-1", adopted: bool = False) -> Manifest:
    annotations: dict[str, str] = {}
    if uid:
        annotations[constants.ANNOTATION_TENANT_UID] = uid
    if adopted:
        annotations[constants.ANNOTATION_ADOPTED] = "true"
    return {"metadata": {"name": "t1-app", "annotations": annotations}}


def test_a_confirmed_tenant_deletes_the_namespaces_it_created() -> None:
    assert tenant_lifecycle.why_kept(a_tenant(), a_namespace()) is None


def test_without_confirmation_delete_keeps_the_namespace_and_says_how_to_confirm() -> None:
    why = tenant_lifecycle.why_kept(a_tenant(confirm=None), a_namespace())

    assert why is not None
    assert "govcloud.io/confirm-delete=t1" in why


def test_a_confirmation_naming_another_tenant_confirms_nothing() -> None:
    assert tenant_lifecycle.why_kept(a_tenant(confirm="t2"), a_namespace()) is not None


def test_a_namespace_created_by_an_earlier_tenant_of_the_same_name_is_kept() -> None:
    why = tenant_lifecycle.why_kept(a_tenant(uid="uid-2"), a_namespace(uid="uid-1"))

    assert why is not None
    assert "earlier CloudTenant t1 (uid uid-1)" in why


def test_a_namespace_without_a_record_of_its_creator_is_kept() -> None:
    assert tenant_lifecycle.why_kept(a_tenant(), a_namespace(uid=None)) is not None


def test_an_adopted_namespace_is_kept_even_when_confirmed() -> None:
    assert tenant_lifecycle.why_kept(a_tenant(), a_namespace(adopted=True)) is not None


def test_the_first_recorded_creator_is_never_overwritten() -> None:
    assert tenant.creator_uid(a_tenant(uid="uid-2"), a_namespace(uid="uid-1")) == "uid-1"
    assert tenant.creator_uid(a_tenant(uid="uid-2"), None) == "uid-2"
    assert tenant.creator_uid(a_tenant(uid="uid-2"), a_namespace(uid=None)) == "uid-2"


def applier_with(quota_hard: dict[str, str] | None) -> tenant_types.Applier:
    objects: dict[tenant_types.ObjectKey, Manifest] = {}
    if quota_hard is not None:
        objects[("ResourceQuota", "t1-app", "govcloud-quota")] = {
            "kind": "ResourceQuota",
            "metadata": {"name": "govcloud-quota", "namespace": "t1-app"},
            "spec": {"hard": quota_hard},
        }
    observed = tenant_types.Observed(tenant=a_tenant(), namespaces={}, objects=objects)
    return tenant_types.Applier(None, None, observed, [], [])  # type: ignore[arg-type]


def test_a_namespace_whose_quota_failed_to_be_written_is_without_quota() -> None:
    errors = ["ResourceQuota t1-app/govcloud-quota: 422 Invalid"]

    missing = tenant.without_quota(applier_with(None), {"pods": "10"}, ["t1-app"], errors)

    assert missing == {"t1-app": errors[0]}


def test_a_quota_lacking_a_key_of_the_tenant_quota_is_incomplete() -> None:
    missing = tenant.without_quota(
        applier_with({"pods": "10"}), {"pods": "10", "requests.cpu": "2"}, ["t1-app"], []
    )

    assert "lacks requests.cpu" in missing["t1-app"]


def test_a_complete_quota_or_no_tenant_quota_withholds_nothing() -> None:
    assert tenant.without_quota(applier_with({"pods": "0"}), {"pods": "10"}, ["t1-app"], []) == {}
    assert tenant.without_quota(applier_with(None), {}, ["t1-app"], []) == {}


def test_only_role_bindings_wait_for_the_quota() -> None:
    unquoted = {"t1-app": "no quota"}
    binding = {"kind": "RoleBinding", "metadata": {"name": "govcloud-admin", "namespace": "t1-app"}}
    policy = {"kind": "NetworkPolicy", "metadata": {"name": "x", "namespace": "t1-app"}}

    assert tenant.withheld(binding, unquoted)
    assert not tenant.withheld(policy, unquoted)
    assert not tenant.withheld(binding, {})
