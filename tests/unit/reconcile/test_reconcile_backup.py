"""The backup part of a tenant pass against an in-memory cluster: the Schedule kept and pruned,
Velero absent said in a condition, the RPO judged, nothing written at rest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from govcloud import settings
from govcloud.api.v1alpha1 import cloudtenant
from govcloud.desired import backups
from govcloud.k8s import client
from govcloud.reconcile import tenant_backup, tenant_types

Manifest = dict[str, Any]
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
SETTINGS = settings.Settings(backup_enabled=True)
STAMP = "%Y-%m-%dT%H:%M:%SZ"


class Velero:
    """A cluster holding Velero objects by (kind, namespace, name); `served` False: no CRDs."""

    def __init__(self, name: str = "hub", *, served: bool = True) -> None:
        self.name = name
        self.served = served
        self.objects: dict[tuple[str, str, str], Manifest] = {}
        self.writes: list[tuple[str, str]] = []

    def list(
        self, api_version: str, kind: str, namespace: str | None = None,
        label_selector: str | None = None, **_: Any,
    ) -> list[Manifest]:  # fmt: skip
        if not self.served:
            raise client.ApiError(f"the server could not find the requested resource {kind}", 404)
        wanted = dict(term.split("=", 1) for term in (label_selector or "").split(",") if term)
        return [
            dict(item)
            for (k, ns, _), item in sorted(self.objects.items())
            if k == kind
            and (namespace is None or ns == namespace)
            and all(
                item["metadata"].get("labels", {}).get(key) == value
                for key, value in wanted.items()
            )
        ]

    def apply(self, manifest: Manifest) -> Manifest:
        stored = {
            **manifest,
            "metadata": {**manifest["metadata"], "creationTimestamp": NOW.strftime(STAMP)},
        }
        key = (manifest["kind"], manifest["metadata"]["namespace"], manifest["metadata"]["name"])
        if key in self.objects:
            stored["metadata"]["creationTimestamp"] = self.objects[key]["metadata"][
                "creationTimestamp"
            ]
        self.objects[key] = stored
        self.writes.append(("apply", manifest["metadata"]["name"]))
        return stored

    def delete(
        self, api_version: str, kind: str, name: str, namespace: str | None = None, **_: Any
    ) -> bool:
        self.writes.append(("delete", name))
        return self.objects.pop((kind, namespace or "", name), None) is not None


def tenant(name: str, level: int = 3, **spec: Any) -> tuple[Manifest, cloudtenant.CloudTenantSpec]:
    body: Manifest = {
        "displayName": name,
        "unit": {"code": name, "tier": "county"},
        "contacts": [{"name": "x", "email": "x@example.gov.cn"}],
        "securityLevel": level,
        "namespaces": [{"name": "web"}, {"name": "db"}],
        **spec,
    }
    return {
        "metadata": {"name": name, "generation": 1},
        "spec": body,
    }, cloudtenant.CloudTenantSpec.model_validate(body)


def run(
    cluster: Velero,
    name: str = "finance",
    usable: list[str] | None = None,
    now: datetime = NOW,
    **spec: Any,
) -> tenant_backup.Outcome:
    body, parsed = tenant(name, **spec)
    observed = tenant_types.Observed(tenant=body, namespaces={}, objects={})
    usable = [f"{name}-web", f"{name}-db"] if usable is None else usable
    outcome = tenant_backup.converge(cluster, cluster, observed, parsed, usable, SETTINGS, now)  # type: ignore[arg-type]
    assert outcome is not None
    return outcome


def completed(name: str, finished: datetime, tenant_name: str = "finance") -> Manifest:
    labels = {
        "app.kubernetes.io/managed-by": "govcloud-operator",
        "govcloud.io/tenant": tenant_name,
        backups.SCHEDULE_NAME_LABEL: f"govcloud-{tenant_name}",
    }
    return {
        "apiVersion": "velero.io/v1", "kind": "Backup",
        "metadata": {"name": name, "namespace": "velero", "labels": labels},
        "status": {"phase": "Completed", "completionTimestamp": finished.strftime(STAMP)},
    }  # fmt: skip


def test_the_pass_writes_the_schedule_of_exactly_the_tenants_namespaces_then_nothing() -> None:
    cluster = Velero()
    first = run(cluster)
    schedule = cluster.objects[("Schedule", "velero", "govcloud-finance")]
    assert schedule["spec"]["template"]["includedNamespaces"] == ["finance-db", "finance-web"]
    assert cluster.writes == [("apply", "govcloud-finance")]
    assert first.condition.type == "BackupHealthy"
    assert first.condition.status == "True"
    assert first.condition.reason == "FirstBackupPending"
    assert first.status["rpoMet"] is True
    assert first.status["schedule"] == "velero/govcloud-finance"
    assert first.due_in is not None
    assert abs(first.due_in - (26 * 3600 + 1)) < 2
    again = run(cluster)
    assert cluster.writes == [("apply", "govcloud-finance")], "a pass at rest writes nothing"
    assert again.status == first.status
    assert again.condition == first.condition


def test_a_completed_backup_meets_the_rpo_until_it_is_too_old() -> None:
    cluster = Velero()
    run(cluster)
    done = NOW - timedelta(hours=1)
    cluster.objects[("Backup", "velero", "b1")] = completed("b1", done)
    # Another tenant's backup never counts for this one.
    cluster.objects[("Backup", "velero", "b2")] = completed("b2", NOW, tenant_name="health")
    met = run(cluster)
    assert met.status["lastBackup"] == "b1"
    assert met.status["lastBackupTime"] == done.strftime(STAMP)
    assert met.status["rpoMet"] is True
    assert met.condition.reason == "RPOMet"
    assert met.snapshot is not None
    assert met.snapshot.last_success == done.timestamp()
    late = run(cluster, now=NOW + timedelta(hours=26))
    assert late.status["rpoMet"] is False
    assert (late.condition.status, late.condition.reason) == ("False", "RPOMissed")
    assert late.snapshot is not None
    assert not late.snapshot.rpo_met


def test_without_velero_the_condition_says_so_and_nothing_is_written() -> None:
    cluster = Velero("county-a", served=False)
    outcome = run(cluster)
    assert (outcome.condition.status, outcome.condition.reason) == ("False", "VeleroNotInstalled")
    assert "county-a" in outcome.condition.message
    assert outcome.status["rpoMet"] is False
    assert cluster.writes == []


def test_a_schedule_no_longer_wanted_is_pruned() -> None:
    cluster = Velero()
    run(cluster, level=2)
    off = run(cluster, level=2, backup={"enabled": False})
    assert ("Schedule", "velero", "govcloud-finance") not in cluster.objects
    assert off.condition.reason == "BackupDisabled"
    assert off.snapshot is None
    run(cluster, level=2)
    run(cluster, level=2, usable=[])  # no namespace of it on this cluster any more
    assert ("Schedule", "velero", "govcloud-finance") not in cluster.objects


def test_a_refused_override_is_said_and_the_level_policy_applies() -> None:
    cluster = Velero()
    outcome = run(cluster, backup={"every": "72h"})
    assert (outcome.condition.status, outcome.condition.reason) == ("False", "OverrideRefused")
    schedule = cluster.objects[("Schedule", "velero", "govcloud-finance")]
    assert schedule["spec"]["schedule"] == "0 18 * * *"


def test_deleting_the_tenant_deletes_its_schedule_only() -> None:
    cluster = Velero()
    run(cluster)
    run(cluster, name="health")
    body, _ = tenant("finance")
    body["metadata"]["finalizers"] = ["govcloud.io/finalizer"]

    class Hub(Velero):
        def get(self, *_: Any, **__: Any) -> Manifest:
            return {"metadata": {"name": "cloudtenants.govcloud.io"}}  # the CRD stays

    said, errors = tenant_backup.finalize(Hub(), cluster, body, SETTINGS)  # type: ignore[arg-type]
    assert errors == []
    assert ("Schedule", "velero", "govcloud-finance") not in cluster.objects
    assert ("Schedule", "velero", "govcloud-health") in cluster.objects
    assert [event.reason for event in said] == ["Pruned"]


def test_with_backups_off_in_the_operator_the_pass_does_nothing() -> None:
    cluster = Velero()
    body, parsed = tenant("finance")
    observed = tenant_types.Observed(tenant=body, namespaces={}, objects={})
    off = settings.Settings()
    assert (
        tenant_backup.converge(cluster, cluster, observed, parsed, ["finance-web"], off, NOW)
        is None
    )  # type: ignore[arg-type]
    assert tenant_backup.status_of(None, {"status": {}}) == {}
    assert cluster.writes == []
