"""Self-service restores, the pure part: a request judged against the Backup's tenant and
phase and the namespaces' owners; the exact Velero Restore; Velero's answer read back."""

from __future__ import annotations

from typing import Any

import pytest

from govcloud.api.v1alpha1 import backuprestore
from govcloud.desired import meta, restores

Manifest = dict[str, Any]
MANAGED = {"app.kubernetes.io/managed-by": "govcloud-operator"}


def backup(
    tenant: str | None = "fin",
    phase: str = "Completed",
    namespaces: tuple[str, ...] = ("fin-web", "fin-db"),
    *,
    managed: bool = True,
) -> Manifest:
    labels = {**(MANAGED if managed else {}), **({"govcloud.io/tenant": tenant} if tenant else {})}
    return {
        "metadata": {"name": "b1", "labels": labels},
        "spec": {"includedNamespaces": list(namespaces)},
        "status": {"phase": phase, "completionTimestamp": "2026-12-07T18:02:40Z"},
    }


OWNERS = {"fin-web": "fin", "fin-db": "fin", "hr-app": "hr", "gone": None}


@pytest.mark.parametrize(
    ("found", "requested", "reason"),
    [
        (None, (), restores.BACKUP_NOT_FOUND),
        (backup("hr"), (), restores.BACKUP_NOT_FOUND),  # another tenant's: as if missing
        (backup(managed=False), (), restores.BACKUP_NOT_FOUND),  # not made by the operator
        (backup(tenant=None), (), restores.BACKUP_NOT_FOUND),
        (backup(phase="InProgress"), (), restores.BACKUP_NOT_COMPLETED),
        (backup(phase="PartiallyFailed"), (), restores.BACKUP_NOT_COMPLETED),
        (backup(), ("hr-app",), restores.NAMESPACE_NOT_OWNED),
        (backup(namespaces=("fin-web", "hr-app")), ("hr-app",), restores.NAMESPACE_NOT_OWNED),
        (backup(), ("fin-web", "gone"), restores.NAMESPACE_NOT_OWNED),
        (backup(namespaces=("fin-web",)), ("fin-db",), restores.NAMESPACE_NOT_IN_BACKUP),
        (backup(namespaces=("hr-app",)), (), restores.NOTHING_TO_RESTORE),
        (backup(namespaces=("*",)), (), restores.NOTHING_TO_RESTORE),
        (backup(namespaces=()), (), restores.NOTHING_TO_RESTORE),
    ],
)
def test_a_request_beyond_the_tenants_own_is_refused(
    found: Manifest | None, requested: tuple[str, ...], reason: str
) -> None:
    judged = restores.judge("fin", "fin-web", "b1", found, requested, OWNERS)
    assert judged.refusal is not None
    assert judged.refusal.reason == reason
    assert judged.namespaces == ()


def test_the_refusal_of_another_tenants_backup_does_not_tell_it_exists() -> None:
    missing = restores.judge("fin", "fin-web", "b1", None, (), OWNERS)
    theirs = restores.judge("fin", "fin-web", "b1", backup("hr"), (), OWNERS)
    assert missing == theirs
    assert missing.refusal is not None
    assert "hr" not in missing.refusal.message


@pytest.mark.parametrize(
    ("found", "requested", "chosen"),
    [
        (backup(), (), ("fin-db", "fin-web")),
        (backup(), ("fin-web",), ("fin-web",)),
        (backup(), ("fin-web", "fin-web"), ("fin-web",)),
        # A backup labelled as the tenant's that holds another's namespace: only its own.
        (backup(namespaces=("fin-web", "hr-app", "gone")), (), ("fin-web",)),
    ],
)
def test_a_tenants_own_backup_is_restored_into_its_own_namespaces_only(
    found: Manifest, requested: tuple[str, ...], chosen: tuple[str, ...]
) -> None:
    judged = restores.judge("fin", "fin-web", "b1", found, requested, OWNERS)
    assert judged.refusal is None
    assert judged.namespaces == chosen
    assert judged.backup_completed_at == "2026-12-07T18:02:40Z"


def test_a_request_outside_a_tenant_or_of_a_suspended_one_is_refused() -> None:
    nobody = restores.judge(None, "default", "b1", backup(), (), OWNERS)
    assert nobody.refusal is not None
    assert nobody.refusal.reason == restores.NOT_A_TENANT_NAMESPACE
    suspended = restores.judge("fin", "fin-web", "b1", backup(), (), OWNERS, suspended=True)
    assert suspended.refusal is not None
    assert suspended.refusal.reason == restores.TENANT_SUSPENDED


def test_the_restore_names_exactly_the_namespaces_under_their_own_names() -> None:
    made = restores.restore(
        name=restores.restore_name("0f1e2d3c-aaaa-bbbb-cccc-111122223333"),
        velero_namespace="velero",
        tenant="fin",
        request="fin-web/bring-back",
        backup="b1",
        namespaces=["fin-web", "fin-db", "fin-web"],
        existing=backuprestore.ExistingResources.NONE,
    )
    assert len(made["metadata"]["name"]) <= 63
    assert made["metadata"]["namespace"] == "velero"
    assert made["metadata"]["labels"]["govcloud.io/tenant"] == "fin"
    assert made["metadata"]["annotations"][restores.ANNOTATION_REQUEST] == "fin-web/bring-back"
    spec = made["spec"]
    assert spec["backupName"] == "b1"
    assert spec["includedNamespaces"] == ["fin-db", "fin-web"]
    assert spec["includeClusterResources"] is False
    assert "namespaceMapping" not in spec
    assert set(spec["excludedResources"]) == {
        "resourcequotas",
        "limitranges",
        "networkpolicies.networking.k8s.io",
        "*.govcloud.io",  # requests with their decisions, grants, migrations: the ledger's
    }
    assert spec["labelSelector"]["matchExpressions"] == [
        {
            "key": "app.kubernetes.io/managed-by",
            "operator": "NotIn",
            "values": ["govcloud-operator"],
        }
    ]
    assert spec["existingResourcePolicy"] == "none"


def test_a_restore_of_no_namespace_is_never_built() -> None:
    # Velero reads an empty includedNamespaces as every namespace.
    with pytest.raises(meta.SpecError):
        restores.restore(
            name="r", velero_namespace="velero", tenant="fin", request="fin-web/x",
            backup="b1", namespaces=[], existing=backuprestore.ExistingResources.UPDATE,
        )  # fmt: skip


@pytest.mark.parametrize(
    ("velero_phase", "phase"),
    [
        ("", restores.Phase.IN_PROGRESS),
        ("New", restores.Phase.IN_PROGRESS),
        ("InProgress", restores.Phase.IN_PROGRESS),
        ("WaitingForPluginOperations", restores.Phase.IN_PROGRESS),
        ("Finalizing", restores.Phase.IN_PROGRESS),
        ("Completed", restores.Phase.COMPLETED),
        ("PartiallyFailed", restores.Phase.PARTIALLY_FAILED),
        ("Failed", restores.Phase.FAILED),
        ("FailedValidation", restores.Phase.FAILED),
    ],
)
def test_velero_phases_read_as_the_requests(velero_phase: str, phase: restores.Phase) -> None:
    assert restores.progress({"status": {"phase": velero_phase}}).phase == phase


def test_velero_counts_and_times_are_read_back() -> None:
    found = restores.progress(
        {
            "status": {
                "phase": "PartiallyFailed",
                "startTimestamp": "2026-12-07T18:00:00Z",
                "completionTimestamp": "2026-12-07T18:00:09Z",
                "progress": {"itemsRestored": 11, "totalItems": 12},
                "warnings": 3,
                "errors": 1,
                "failureReason": "one item failed",
            }
        }
    )
    assert (found.items_restored, found.total_items, found.warnings, found.errors) == (11, 12, 3, 1)
    assert (found.started_at, found.completed_at) == (
        "2026-12-07T18:00:00Z",
        "2026-12-07T18:00:09Z",
    )
    message = restores.outcome_message("b1", "velero/r1", found)
    assert "PartiallyFailed (one item failed)" in message
    assert "velero restore logs r1" in message
    odd = restores.progress({"status": {"warnings": -1, "errors": True, "progress": {"x": 1}}})
    assert (odd.warnings, odd.errors, odd.items_restored) == (0, 0, None)


def test_a_tenants_recent_backups_are_its_own_newest_first() -> None:
    def made(name: str, start: str, tenant: str = "fin", phase: str = "Completed") -> Manifest:
        found = backup(tenant, phase)
        found["metadata"] = {**found["metadata"], "name": name}
        found["status"] = {**found["status"], "startTimestamp": start, "expiration": start}
        return found

    found = [
        made("old", "2026-12-01T18:00:00Z"),
        made("theirs", "2026-12-07T18:00:00Z", tenant="hr"),
        made("new", "2026-12-06T18:00:00Z", phase="InProgress"),
    ]
    listed = restores.recent(found, "fin")
    assert [item["name"] for item in listed] == ["new", "old"]
    assert listed[0]["phase"] == "InProgress"
    assert listed[1]["expiresAt"] == "2026-12-01T18:00:00Z"
    many = [made(f"b{day:02}", f"2026-11-{day:02}T18:00:00Z") for day in range(1, 21)]
    assert [item["name"] for item in restores.recent(many, "fin")][:2] == ["b20", "b19"]
    assert len(restores.recent(many, "fin")) == restores.RECENT
