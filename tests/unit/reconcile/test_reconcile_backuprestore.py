"""BackupRestore passes against an in-memory hub: one Velero Restore for an accepted request
and none for a refused one, its end reported and counted once, a finished request left alone,
a Restore deleted by hand not redone, Velero's words redacted."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from _status_patch import merge_status

from govcloud import settings
from govcloud.k8s import client
from govcloud.reconcile import backuprestore

Manifest = dict[str, Any]
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
SETTINGS = settings.Settings(backup_enabled=True)
MANAGED = {"app.kubernetes.io/managed-by": "govcloud-operator"}
UID = "0f1e2d3c-aaaa-bbbb-cccc-111122223333"


class Hub:
    """Objects by (kind, namespace, name); records every write."""

    name = "hub"

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], Manifest] = {}
        self.writes: list[tuple[str, str]] = []

    def put(self, body: Manifest) -> None:
        metadata = body["metadata"]
        self.objects[(body["kind"], metadata.get("namespace", ""), metadata["name"])] = body

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> Manifest | None:
        found = self.objects.get((kind, namespace or "", name))
        return copy.deepcopy(found) if found is not None else None

    def create(self, manifest: Manifest) -> Manifest:
        key = (manifest["kind"], manifest["metadata"]["namespace"], manifest["metadata"]["name"])
        if key in self.objects:
            raise client.ApiError("exists", 409)
        self.writes.append(("create", manifest["kind"]))
        self.objects[key] = copy.deepcopy(manifest)
        return copy.deepcopy(manifest)

    def patch_status(
        self, api_version: str, kind: str, name: str, patch: Manifest, namespace: str = ""
    ) -> Manifest:
        self.writes.append(("status", kind))
        return merge_status(self.objects[(kind, namespace, name)], patch)

    def restores(self) -> list[Manifest]:
        return [item for (kind, _, _), item in self.objects.items() if kind == "Restore"]


def world(*, backup_tenant: str = "fin") -> Hub:
    hub = Hub()
    for name, owner in (("fin-web", "fin"), ("hr-app", "hr")):
        hub.put({"kind": "Namespace", "metadata": {"name": name, "labels": {
            **MANAGED, "govcloud.io/tenant": owner}}})  # fmt: skip
    hub.put({"kind": "CloudTenant", "metadata": {"name": "fin"}, "spec": {}})
    hub.put(
        {
            "kind": "Backup",
            "metadata": {
                "name": "b1",
                "namespace": "velero",
                "labels": {**MANAGED, "govcloud.io/tenant": backup_tenant},
            },
            "spec": {"includedNamespaces": ["fin-web"]},
            "status": {"phase": "Completed", "completionTimestamp": "2026-12-07T10:00:00Z"},
        }
    )
    return hub


def ask(hub: Hub, name: str = "bring-back", **spec: Any) -> None:
    hub.put(
        {
            "kind": "BackupRestore",
            "metadata": {"name": name, "namespace": "fin-web", "uid": UID, "generation": 1},
            "spec": {"backup": "b1", **spec},
        }
    )


def status(hub: Hub, name: str = "bring-back") -> Manifest:
    return dict(hub.objects[("BackupRestore", "fin-web", name)].get("status") or {})


def velero_says(hub: Hub, **found: Any) -> None:
    (restore,) = hub.restores()
    restore["status"] = found


def test_an_accepted_request_makes_one_restore_and_reports_it_to_its_end() -> None:
    hub = world()
    ask(hub)
    first = backuprestore.reconcile(hub, "fin-web", "bring-back", SETTINGS, NOW)
    (made,) = hub.restores()
    assert made["metadata"]["name"] == f"govcloud-restore-{UID}"
    assert made["spec"]["includedNamespaces"] == ["fin-web"]
    assert [event.reason for event in first.events] == ["RestoreStarted"]
    assert status(hub)["phase"] == "InProgress"
    assert status(hub)["restore"] == f"velero/govcloud-restore-{UID}"
    assert first.finished is None
    # A resync while Velero works: no second Restore, no write.
    writes = list(hub.writes)
    again = backuprestore.reconcile(hub, "fin-web", "bring-back", SETTINGS, NOW)
    assert hub.writes == writes
    assert again.events == []
    velero_says(
        hub, phase="Completed", progress={"itemsRestored": 9, "totalItems": 9}, warnings=2,
        startTimestamp="2026-12-07T12:00:01Z", completionTimestamp="2026-12-07T12:00:05Z",
    )  # fmt: skip
    done = backuprestore.reconcile(hub, "fin-web", "bring-back", SETTINGS, NOW)
    assert done.finished == "completed"
    assert done.tenant == "fin"
    assert [event.reason for event in done.events] == ["RestoreCompleted"]
    shown = status(hub)
    assert (shown["phase"], shown["itemsRestored"], shown["warnings"]) == ("Completed", 9, 2)
    assert shown["backupCompletedAt"] == "2026-12-07T10:00:00Z"
    # Finished: a record; its passes read nothing more and write nothing.
    writes = list(hub.writes)
    settled = backuprestore.reconcile(hub, "fin-web", "bring-back", SETTINGS, NOW)
    assert (hub.writes, settled.events, settled.finished) == (writes, [], None)
    assert len(hub.restores()) == 1


def test_a_refused_request_creates_nothing_and_is_said_once() -> None:
    hub = world(backup_tenant="hr")
    ask(hub)
    refused = backuprestore.reconcile(hub, "fin-web", "bring-back", SETTINGS, NOW)
    assert hub.restores() == []
    assert refused.finished == "refused"
    assert [event.reason for event in refused.events] == ["BackupNotFound"]
    assert status(hub)["phase"] == "Refused"
    writes = list(hub.writes)
    again = backuprestore.reconcile(hub, "fin-web", "bring-back", SETTINGS, NOW)
    assert (hub.writes, again.events, again.finished) == (writes, [], None)


def test_another_tenants_namespace_is_refused() -> None:
    hub = world()
    ask(hub, namespaces=["hr-app"])
    backuprestore.reconcile(hub, "fin-web", "bring-back", SETTINGS, NOW)
    assert hub.restores() == []
    accepted = status(hub)["conditions"][0]
    assert (accepted["type"], accepted["reason"]) == ("Accepted", "NamespaceNotOwned")


def test_a_restore_deleted_before_its_end_fails_the_request_and_is_not_redone() -> None:
    hub = world()
    ask(hub)
    backuprestore.reconcile(hub, "fin-web", "bring-back", SETTINGS, NOW)
    hub.objects.pop(("Restore", "velero", f"govcloud-restore-{UID}"))
    gone = backuprestore.reconcile(hub, "fin-web", "bring-back", SETTINGS, NOW)
    assert hub.restores() == []
    assert gone.finished == "failed"
    assert status(hub)["phase"] == "Failed"


def test_velero_failure_text_is_redacted_before_it_is_shown() -> None:
    hub = world()
    ask(hub)
    backuprestore.reconcile(hub, "fin-web", "bring-back", SETTINGS, NOW)
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlc2lnbmF0dXJl"
    velero_says(hub, phase="Failed", failureReason=f"store refused: Authorization: Bearer {token}")
    failed = backuprestore.reconcile(hub, "fin-web", "bring-back", SETTINGS, NOW)
    assert failed.finished == "failed"
    assert token not in str(status(hub))
    assert all(token not in event.message for event in failed.events)


def test_without_backups_a_request_waits_deciding_nothing() -> None:
    hub = world()
    ask(hub)
    off = settings.Settings(backup_enabled=False)
    waiting = backuprestore.reconcile(hub, "fin-web", "bring-back", off, NOW)
    assert hub.restores() == []
    assert status(hub)["phase"] == "Pending"
    assert waiting.finished is None


def test_a_restore_made_by_a_pass_that_died_before_its_status_is_adopted() -> None:
    hub = world()
    ask(hub)
    backuprestore.reconcile(hub, "fin-web", "bring-back", SETTINGS, NOW)
    hub.objects[("BackupRestore", "fin-web", "bring-back")].pop("status")
    backuprestore.reconcile(hub, "fin-web", "bring-back", SETTINGS, NOW)
    assert len(hub.restores()) == 1
    assert status(hub)["phase"] == "InProgress"


def test_a_velero_restore_routes_to_its_request_only_when_the_operators() -> None:
    ours = {"metadata": {"labels": MANAGED, "annotations": {
        "govcloud.io/backup-restore": "fin-web/bring-back"}}}  # fmt: skip
    assert backuprestore.request_of(ours) == "fin-web/bring-back"
    assert (
        backuprestore.request_of({"metadata": {"annotations": ours["metadata"]["annotations"]}})
        is None
    )


class NoVelero(Hub):
    """A hub where Velero's CRDs are not served."""

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> Manifest | None:
        if api_version == "velero.io/v1":
            raise client.ApiError(f"{kind} ({api_version}) is not served by hub", 404)
        return super().get(api_version, kind, name, namespace)


def test_without_velero_a_request_waits_and_says_so() -> None:
    hub = NoVelero()
    hub.objects = world().objects
    ask(hub)
    waiting = backuprestore.reconcile(hub, "fin-web", "bring-back", SETTINGS, NOW)
    assert status(hub)["phase"] == "Pending"
    assert status(hub)["conditions"][0]["reason"] == "VeleroNotInstalled"
    assert [event.reason for event in waiting.events] == ["VeleroNotInstalled"]
    assert waiting.finished is None
