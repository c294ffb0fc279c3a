"""RecoveryDrill passes against in-memory clusters: a refused backup restores nothing, the drill
waits for the backup on the target, creates the Restore of exactly the tenant's namespaces,
verifies the restored objects against the backup, records who/what/how long, keeps or cleans
up, fails as Overdue past its timeout, and a finished drill's resync writes nothing."""

from __future__ import annotations

import io
import json
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from _status_patch import merge_status

from govcloud import settings
from govcloud.k8s import client
from govcloud.reconcile import placement
from govcloud.reconcile import recoverydrill as reconciler

Manifest = dict[str, Any]
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
SETTINGS = settings.Settings(backup_enabled=True)
STAMP = "%Y-%m-%dT%H:%M:%SZ"


class Memory:
    """A cluster of objects by (kind, namespace, name)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.objects: dict[tuple[str, str, str], Manifest] = {}
        self.writes: list[tuple[str, str, str]] = []

    def put(self, item: Manifest) -> None:
        meta = item["metadata"]
        self.objects[(item["kind"], meta.get("namespace") or "", meta["name"])] = item

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Any:
        found = self.objects.get((kind, namespace or "", name))
        return json.loads(json.dumps(found)) if found is not None else None

    def list(
        self, api_version: str, kind: str, namespace: str | None = None,
        label_selector: str | None = None, **_: Any,
    ) -> list[Manifest]:  # fmt: skip
        wanted = dict(term.split("=", 1) for term in (label_selector or "").split(",") if term)
        return [
            json.loads(json.dumps(item))
            for (k, ns, _), item in sorted(self.objects.items())
            if k == kind
            and (namespace is None or ns == namespace)
            and all(item["metadata"].get("labels", {}).get(a) == b for a, b in wanted.items())
        ]

    def create(self, manifest: Manifest) -> Manifest:
        self.put(json.loads(json.dumps(manifest)))
        self.writes.append(("create", manifest["kind"], manifest["metadata"]["name"]))
        return manifest

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        self.writes.append(("delete", kind, name))
        if self.objects.pop((kind, namespace or "", name), None) is None:
            raise client.ApiError("not found", 404)
        return True

    def patch_status(
        self, api_version: str, kind: str, name: str, patch: Manifest, namespace: str = ""
    ) -> Manifest:
        self.writes.append(("status", kind, name))
        return merge_status(self.objects[(kind, namespace, name)], patch)


def backup(tenant: str = "fin", name: str = "bk1") -> Manifest:
    return {
        "apiVersion": "velero.io/v1",
        "kind": "Backup",
        "metadata": {
            "name": name,
            "namespace": "velero",
            "labels": {
                "app.kubernetes.io/managed-by": "govcloud-operator",
                "govcloud.io/tenant": tenant,
                "velero.io/schedule-name": f"govcloud-{tenant}",
            },
        },
        "spec": {"includedNamespaces": [f"{tenant}-db", f"{tenant}-web"]},
        "status": {"phase": "Completed", "completionTimestamp": "2026-12-07T10:00:00Z"},
    }


CONFIG = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "app", "namespace": "fin-web", "labels": {"app": "x"}},
    "data": {"mode": "办件"},
}


def contents(*items: Manifest) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for item in items:
            data = json.dumps(item).encode()
            meta = item["metadata"]
            info = tarfile.TarInfo(
                f"resources/configmaps/namespaces/{meta['namespace']}/{meta['name']}.json"
            )
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> tuple[Memory, Memory]:
    hub, site = Memory("hub"), Memory("county")
    hub.put({"apiVersion": "govcloud.io/v1alpha1", "kind": "SubCenter",
             "metadata": {"name": "county"}, "spec": {}})  # fmt: skip
    hub.put(
        {
            "apiVersion": "govcloud.io/v1alpha1",
            "kind": "CloudTenant",
            "metadata": {"name": "fin"},
            "spec": {"securityLevel": 3, "namespaces": [{"name": "web"}, {"name": "db"}]},
        }
    )
    hub.put(backup())
    hub.put(backup("health", "other"))
    monkeypatch.setattr(
        reconciler.subcenter.SubCenterSpec, "model_validate", classmethod(lambda cls, v: v)
    )
    monkeypatch.setattr(
        placement,
        "connect",
        lambda hub_, registry, name, spec, body=None: placement.Target(name, site, "Placed", ""),
    )
    return hub, site


def make_drill(hub: Memory, name: str = "d1", **spec: Any) -> None:
    hub.put(
        {
            "apiVersion": "govcloud.io/v1alpha1",
            "kind": "RecoveryDrill",
            "metadata": {"name": name, "generation": 1},
            "spec": {"tenant": "fin", "target": {"site": "county"}, "requestedBy": "li", **spec},
        }
    )


def status(hub: Memory, name: str = "d1") -> Manifest:
    return dict(hub.objects[("RecoveryDrill", "", name)].get("status") or {})


def condition(found: Manifest, type_: str) -> Manifest:
    return next(item for item in found["conditions"] if item["type"] == type_)


def run(hub: Memory, at: datetime = NOW, data: bytes = b"") -> reconciler.Result:
    return reconciler.reconcile(hub, None, "d1", SETTINGS, at, lambda url, limit: data)  # type: ignore[arg-type]


def test_another_tenants_backup_is_refused_and_nothing_is_restored(
    world: tuple[Memory, Memory],
) -> None:
    hub, site = world
    make_drill(hub, backup="other")
    result = run(hub)
    found = status(hub)
    assert found["phase"] == "Failed"
    assert condition(found, "Succeeded")["reason"] == "BackupNotTenants"
    assert condition(found, "CleanedUp")["reason"] == "NothingRestored"
    assert found["requestedBy"] == "li"
    assert site.writes == []
    assert [event.reason for event in result.events] == ["BackupNotTenants"]
    hub.writes.clear()
    run(hub, NOW + timedelta(minutes=5))  # a resync of a finished drill writes nothing
    assert hub.writes == []


def test_a_namespace_that_exists_on_the_target_refuses_the_drill(
    world: tuple[Memory, Memory],
) -> None:
    hub, site = world
    make_drill(hub)
    site.put({"kind": "Namespace", "metadata": {"name": "fin-web", "labels": {}}})
    run(hub)
    found = status(hub)
    assert condition(found, "Succeeded")["reason"] == "NamespaceTaken"
    assert "fin-web (no tenant)" in condition(found, "Succeeded")["message"]
    assert [w for w in site.writes if w[0] != "status"] == []


def test_a_drill_restores_verifies_records_and_cleans_up(world: tuple[Memory, Memory]) -> None:
    hub, site = world
    make_drill(hub, keep=True)
    run(hub)
    assert status(hub)["phase"] == "WaitingForBackup"
    assert site.writes == []
    site.put(backup())  # Velero on the target synced it from the bucket
    result = run(hub, NOW + timedelta(seconds=3))
    assert status(hub)["phase"] == "Restoring"
    restore = site.objects[("Restore", "velero", "drill-d1")]
    assert restore["spec"]["includedNamespaces"] == ["fin-db", "fin-web"]
    assert restore["spec"]["backupName"] == "bk1"
    assert [event.reason for event in result.events] == ["DrillStarted"]
    restore["status"] = {
        "phase": "Completed",
        "completionTimestamp": (NOW + timedelta(seconds=40)).strftime(STAMP),
        "progress": {"itemsRestored": 5, "totalItems": 5},
    }
    run(hub, NOW + timedelta(seconds=41))
    assert status(hub)["phase"] == "Verifying"
    request = site.objects[("DownloadRequest", "velero", "drill-d1-contents")]
    request["status"] = {"downloadURL": "http://store/signed"}
    site.put({**CONFIG, "metadata": {**CONFIG["metadata"], "uid": "x", "labels": {
        "app": "x", "velero.io/restore-name": "drill-d1"}}})  # fmt: skip
    site.put({"kind": "Namespace", "metadata": {"name": "fin-web",
              "labels": {"govcloud.io/tenant": "fin"}}})  # fmt: skip
    result = run(hub, NOW + timedelta(seconds=42), contents(CONFIG))
    found = status(hub)
    assert found["phase"] == "Succeeded"
    assert (found["matched"], found["compared"], found["mismatches"]) == (True, 1, [])
    assert found["recoveryTimeSeconds"] == 40
    assert found["backup"] == "bk1"
    assert found["backupCompletedAt"] == "2026-12-07T10:00:00Z"
    assert found["restore"] == "velero/drill-d1"
    assert found["restoredNamespaces"] == ["fin-db", "fin-web"]
    assert found["cleanup"] == "Kept"
    assert ("DownloadRequest", "velero", "drill-d1-contents") not in site.objects
    assert [event.reason for event in result.events] == ["DrillSucceeded"]

    hub.objects[("RecoveryDrill", "", "d1")]["spec"]["keep"] = False
    result = run(hub, NOW + timedelta(seconds=50))
    assert status(hub)["cleanup"] == "Deleted"
    assert ("Namespace", "", "fin-web") not in site.objects
    assert ("Restore", "velero", "drill-d1") not in site.objects
    assert [event.reason for event in result.events] == ["DrillCleanedUp"]


def test_a_restored_object_that_differs_fails_the_drill_without_saying_its_value(
    world: tuple[Memory, Memory],
) -> None:
    hub, site = world
    make_drill(hub)
    site.put(backup())
    run(hub)
    site.objects[("Restore", "velero", "drill-d1")]["status"] = {
        "phase": "Completed", "progress": {"itemsRestored": 5, "totalItems": 5}}  # fmt: skip
    run(hub)
    site.objects[("DownloadRequest", "velero", "drill-d1-contents")]["status"] = {
        "downloadURL": "http://store/signed"
    }
    site.put({**CONFIG, "data": {"mode": "changed"}})
    run(hub, NOW, contents(CONFIG))
    found = status(hub)
    assert found["phase"] == "Failed"
    assert found["matched"] is False
    assert found["mismatches"] == ["ConfigMap fin-web/app: differs in data"]
    assert "办件" not in json.dumps(found, ensure_ascii=False)
    assert "changed" not in json.dumps(found)
    assert found["cleanup"] == "Deleted"  # not kept: deleted at once


def test_a_drill_past_its_timeout_fails_as_overdue(world: tuple[Memory, Memory]) -> None:
    hub, _site = world
    make_drill(hub, timeout="30s")
    run(hub)
    assert status(hub)["phase"] == "WaitingForBackup"
    result = run(hub, NOW + timedelta(seconds=31))
    found = status(hub)
    assert found["phase"] == "Failed"
    assert condition(found, "Succeeded")["reason"] == "Overdue"
    assert "30s" in condition(found, "Succeeded")["message"]
    assert [event.reason for event in result.events] == ["Overdue"]


def test_a_running_drill_is_looked_at_again_soon_and_never_after_its_deadline(
    world: tuple[Memory, Memory],
) -> None:
    hub, _site = world
    make_drill(hub, timeout="30s")
    first = run(hub)
    assert first.next_look == 5.0
    late = run(hub, NOW + timedelta(seconds=28))
    assert late.next_look is not None
    assert late.next_look <= 2.5


def test_unreadable_backup_contents_fail_the_drill_and_the_link_is_never_shown(
    world: tuple[Memory, Memory],
) -> None:
    hub, site = world
    make_drill(hub)
    site.put(backup())
    run(hub)
    site.objects[("Restore", "velero", "drill-d1")]["status"] = {
        "phase": "Completed", "progress": {"itemsRestored": 1, "totalItems": 1}}  # fmt: skip
    run(hub)
    site.objects[("DownloadRequest", "velero", "drill-d1-contents")]["status"] = {
        "downloadURL": "http://store/signed?X-Amz-Credential=AKIDSECRET"
    }
    result = run(hub, NOW, b"not a tarball")
    found = status(hub)
    assert condition(found, "Succeeded")["reason"] == "BackupUnreadable"
    assert "AKIDSECRET" not in json.dumps(found)
    assert all("AKIDSECRET" not in event.message for event in result.events)
    assert ("DownloadRequest", "velero", "drill-d1-contents") not in site.objects


def test_a_download_link_that_is_not_http_is_never_opened(tmp_path: Path) -> None:
    # The link comes from a sub-center's Velero: it must not make the operator read its own files.
    own = tmp_path / "token"
    own.write_text("the operator's own credential")
    link = f"file://{own}"
    with pytest.raises(reconciler.Stop) as stopped:
        reconciler.download(link, 2**20)
    assert stopped.value.reason == "BackupUnreadable"
    assert link not in stopped.value.message
