"""Restore drills, the pure part: which backup, whether it is the tenant's, the Restore, the
backup's objects read from its tarball and compared with their restored copies, and each
tenant's drill record (last success, failed, overdue)."""

from __future__ import annotations

import io
import json
import tarfile
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from govcloud.desired import drills

Manifest = dict[str, Any]
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
NAMESPACES = {"fin-web", "fin-db"}


def backup(
    name: str,
    tenant: str = "fin",
    *,
    phase: str = "Completed",
    done: str = "2026-12-07T10:00:00Z",
    schedule: str | None = None,
    namespaces: tuple[str, ...] = ("fin-db", "fin-web"),
) -> Manifest:
    return {
        "metadata": {
            "name": name,
            "labels": {
                "govcloud.io/tenant": tenant,
                "velero.io/schedule-name": schedule or f"govcloud-{tenant}",
            },
        },
        "spec": {"includedNamespaces": list(namespaces)},
        "status": {"phase": phase, "completionTimestamp": done},
    }


def test_the_newest_completed_backup_of_the_tenants_schedule_is_chosen() -> None:
    found = [
        backup("old", done="2026-12-06T10:00:00Z"),
        backup("new", done="2026-12-07T10:00:00Z"),
        backup("failed", phase="PartiallyFailed", done="2026-12-07T11:00:00Z"),
        backup("other", tenant="health", done="2026-12-07T11:30:00Z"),
        backup("by-hand", schedule="nightly", done="2026-12-07T11:40:00Z"),
    ]
    chosen = drills.choose_backup(found, "fin", None)
    assert chosen is not None
    assert chosen["metadata"]["name"] == "new"
    assert drills.choose_backup(found, "fin", "failed") == found[2]  # named: judged later
    assert drills.choose_backup(found, "fin", "missing") is None
    assert drills.choose_backup([], "fin", None) is None


@pytest.mark.parametrize(
    ("item", "reason", "says"),
    [
        (backup("b", tenant="health"), "BackupNotTenants", "not made by tenant fin's Schedule"),
        (backup("b", schedule="nightly"), "BackupNotTenants", "govcloud-fin"),
        (backup("b", phase="InProgress"), "BackupNotCompleted", "is InProgress"),
        (backup("b", namespaces=("fin-web", "health-web")), "BackupNotTenants", "health-web"),
        (backup("b", namespaces=("*",)), "BackupNotTenants", "every namespace"),
        (backup("b", namespaces=()), "BackupNotTenants", "every namespace"),
    ],
)
def test_a_backup_that_is_not_the_tenants_own_is_refused(
    item: Manifest, reason: str, says: str
) -> None:
    refused = drills.refusal(item, "fin", NAMESPACES)
    assert refused is not None
    assert refused[0] == reason
    assert says in refused[1]


def test_the_tenants_completed_backup_of_its_namespaces_is_accepted() -> None:
    assert drills.refusal(backup("b"), "fin", NAMESPACES) is None
    assert drills.refusal(backup("b", namespaces=("fin-web",)), "fin", NAMESPACES) is None


def test_the_tenants_namespaces_come_from_its_spec() -> None:
    spec = {"namespaces": [{"name": "web"}, {"name": "db"}]}
    assert drills.tenant_namespaces("fin", spec) == NAMESPACES
    assert drills.tenant_namespaces("fin", {}) == set()


def test_the_restore_is_of_exactly_the_namespaces_into_the_same_names_api_objects_only() -> None:
    made = drills.restore("d1", "bk", ["fin-web", "fin-db"], "velero", "fin")
    assert made["kind"] == "Restore"
    assert made["metadata"] == {
        "name": "drill-d1",
        "namespace": "velero",
        "labels": {
            "app.kubernetes.io/managed-by": "govcloud-operator",
            "govcloud.io/tenant": "fin",
            "govcloud.io/recovery-drill": "d1",
        },
    }
    assert made["spec"] == {
        "backupName": "bk",
        "includedNamespaces": ["fin-db", "fin-web"],
        "excludedResources": ["*.govcloud.io"],
        "includeClusterResources": False,
        "restorePVs": False,
    }
    assert "namespaceMapping" not in made["spec"]
    asked = drills.download_request("d1", "bk", "velero", "fin")
    assert asked["spec"] == {"target": {"kind": "BackupContents", "name": "bk"}}
    assert asked["metadata"]["name"] == "drill-d1-contents"


@pytest.mark.parametrize(
    "phase",
    [
        "", "New", "InProgress", "WaitingForPluginOperations",
        "WaitingForPluginOperationsPartiallyFailed", "Finalizing", "FinalizingPartiallyFailed",
    ],
)  # fmt: skip
def test_a_restore_in_any_of_velero_s_unfinished_phases_is_still_running(phase: str) -> None:
    # Finalizing comes between InProgress and Completed: read there, the drill must wait.
    assert phase in drills.RESTORE_RUNNING


@pytest.mark.parametrize("phase", ["Completed", "PartiallyFailed", "Failed", "FailedValidation"])
def test_a_restore_in_one_of_velero_s_final_phases_has_ended(phase: str) -> None:
    assert phase not in drills.RESTORE_RUNNING


def tarball(files: dict[str, Manifest]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path, item in files.items():
            data = json.dumps(item).encode()
            info = tarfile.TarInfo(path)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def config_map(name: str, namespace: str, **data: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "uid": "u1", "resourceVersion": "7"},
        "data": data,
    }


def test_the_backups_objects_are_read_from_its_tarball_one_each_the_preferred_version() -> None:
    old = {**config_map("c", "fin-web", a="old"), "apiVersion": "v1beta1"}
    contents = tarball(
        {
            "resources/configmaps/namespaces/fin-web/c.json": old,
            "resources/configmaps/v1-preferredversion/namespaces/fin-web/c.json": config_map(
                "c", "fin-web", a="1"
            ),
            "resources/configmaps/namespaces/health-web/x.json": config_map("x", "health-web"),
            "resources/namespaces/cluster/fin-web.json": {"kind": "Namespace"},
            "metadata/version": {},
        }
    )
    items = drills.backup_items(contents, NAMESPACES, 2**20)
    assert items == [config_map("c", "fin-web", a="1")]


def test_a_small_archive_that_unpacks_to_far_more_than_the_limit_is_refused() -> None:
    # Many objects, each under the limit, that together unpack past four times it: a
    # sub-center's archive must not make the operator hold more than that.
    padding = "x" * 900
    contents = tarball(
        {
            f"resources/configmaps/namespaces/fin-web/c{index}.json": config_map(
                f"c{index}", "fin-web", a=padding
            )
            for index in range(12)
        }
    )
    assert len(drills.backup_items(contents, NAMESPACES, 2**20)) == 12
    with pytest.raises(ValueError, match="unpack to more than"):
        drills.backup_items(contents, NAMESPACES, 2**11)


def test_restored_copies_equal_the_backup_without_what_the_cluster_assigns() -> None:
    original = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s", "namespace": "fin-web", "labels": {"app": "x"}},
        "spec": {"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"],
                 "ports": [{"port": 80, "nodePort": 30001}], "selector": {"app": "x"}},
        "status": {"loadBalancer": {}},
    }  # fmt: skip
    restored = {
        **original,
        "metadata": {
            "name": "s",
            "namespace": "fin-web",
            "uid": "other",
            "labels": {"app": "x", "velero.io/restore-name": "drill-d1"},
        },
        "spec": {"clusterIP": "10.9.9.9", "ports": [{"port": 80}], "selector": {"app": "x"}},
    }
    assert drills.differences(original, restored) is None


def test_a_difference_is_said_by_field_never_by_value() -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": "fin-web"},
        "data": {"password": "c2VjcmV0"},
    }
    changed = {**secret, "data": {"password": "b3RoZXI="}}
    said = drills.differences(secret, changed)
    assert said == "differs in data"
    assert drills.differences(secret, None) == "missing"
    relabelled = {**secret, "metadata": {**secret["metadata"], "labels": {"x": "y"}}}
    assert drills.differences(secret, relabelled) == "differs in metadata.labels"


def test_what_the_cluster_or_controllers_make_is_not_compared() -> None:
    items = [
        config_map("kube-root-ca.crt", "fin-web"),
        config_map("app", "fin-web", a="1"),
        {"kind": "Pod", "metadata": {"name": "p", "namespace": "fin-web"}},
        {"kind": "ReplicaSet", "metadata": {"name": "r", "namespace": "fin-web"}},
        {"kind": "ServiceAccount", "metadata": {"name": "default", "namespace": "fin-web"}},
        {"kind": "Secret", "type": "kubernetes.io/service-account-token",
         "metadata": {"name": "t", "namespace": "fin-web"}},
        # The platform's records (a migration, a request): not restored, so not compared.
        {"apiVersion": "govcloud.io/v1alpha1", "kind": "MigrationPlan",
         "metadata": {"name": "permits", "namespace": "fin-web"}},
        {"apiVersion": "govcloud.io/v1alpha1", "kind": "ResourceRequest",
         "metadata": {"name": "more", "namespace": "fin-web"}},
    ]  # fmt: skip
    compared, mismatches = drills.compare(items, lambda item: None)
    assert compared == 1
    assert mismatches == ["ConfigMap fin-web/app: missing"]
    compared, mismatches = drills.compare(items, dict)
    assert (compared, mismatches) == (1, [])


def drill(
    name: str, tenant: str, phase: str, done: datetime | None, rto: int | None = None
) -> Manifest:
    status: Manifest = {"phase": phase}
    if done is not None:
        status["completedAt"] = done.strftime("%Y-%m-%dT%H:%M:%SZ")
    if rto is not None:
        status["recoveryTimeSeconds"] = rto
    return {"metadata": {"name": name}, "spec": {"tenant": tenant}, "status": status}


def ct(name: str, level: int, created: datetime) -> Manifest:
    return {
        "metadata": {"name": name, "creationTimestamp": created.strftime("%Y-%m-%dT%H:%M:%SZ")},
        "spec": {"securityLevel": level},
    }


PERIOD = 180 * 86400.0


def test_a_level_3_tenant_without_a_recent_successful_drill_is_overdue() -> None:
    long_ago = NOW - timedelta(days=400)
    tenants = [
        ct("fin", 3, long_ago),  # drilled 10 days ago: fine
        ct("tax", 3, long_ago),  # last success 200 days ago, then a failure: overdue
        ct("new", 3, NOW - timedelta(days=5)),  # new, no drill yet: within its first period
        ct("old", 3, long_ago),  # never drilled: overdue
        ct("parks", 2, long_ago),  # level 2: the policy does not apply
    ]
    found = {
        item.tenant: item
        for item in drills.tenant_drills(
            tenants,
            [
                drill("f1", "fin", "Succeeded", NOW - timedelta(days=10), rto=42),
                drill("t1", "tax", "Succeeded", NOW - timedelta(days=200), rto=50),
                drill("t2", "tax", "Failed", NOW - timedelta(days=1)),
                drill("t3", "tax", "Restoring", None),  # running: not finished
                drill("g1", "gone", "Succeeded", NOW),  # a tenant that no longer exists
            ],
            NOW,
            PERIOD,
        )
    }
    assert set(found) == {"fin", "tax", "new", "old"}
    assert found["fin"].overdue is False
    assert found["fin"].failed is False
    assert found["fin"].recovery_time == 42
    assert found["fin"].last_success == (NOW - timedelta(days=10)).timestamp()
    assert found["tax"].overdue is True
    assert (found["tax"].failed, found["tax"].newest_finished) == (True, "t2")
    assert found["tax"].recovery_time == 50
    assert found["new"].overdue is False
    assert found["new"].newest_finished is None
    assert found["old"].overdue is True
    assert "parks" not in found
