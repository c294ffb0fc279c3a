"""Backups by policy (issue 17, item 1): the operator, with backups on, keeps each tenant's
Velero Schedule of exactly its namespaces; the backup Velero makes from it shows in the tenant's
status and /metrics; a tenant whose RPO passes with no backup says so (condition, Event,
metric); deleting the tenant deletes its Schedule; the object store's credentials appear nowhere
it writes."""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Iterator
from typing import Any

import _subcenter_helpers as sc
import _tenant_helpers as helpers
import _velero_helpers as vh
import pytest

from govcloud.desired import ledger
from govcloud.dev import cluster, objectstore, testing, velero
from govcloud.reconcile import tenant_backup

pytestmark = pytest.mark.integration

Manifest = dict[str, Any]


@pytest.fixture(scope="module")
def store() -> Iterator[objectstore.ObjectStore]:
    with vh.object_store() as started:
        yield started


# -- backups by policy: the operator keeps the Schedules --------------------------------------

# Level 3: an RPO of two hours (met once a backup completes). Level 2: an RPO of 20 s, so that
# one with no backup misses it within the test. Yearly crons: Velero's clock makes no backup
# while the test runs (Velero 1.18 does not back up when a Schedule is created either); the
# test makes the backup from the Schedule, as `velero backup create --from-schedule` does.
BACKUP_LEVELS = {
    "2": {"schedule": "0 0 1 1 *", "interval": "10s", "ttl": "1h", "rpo": "20s"},
    "3": {"schedule": "0 0 1 1 *", "interval": "1h", "ttl": "720h", "rpo": "2h"},
}


def condition(kubectl: testing.Kubectl, name: str, type_: str) -> Manifest:
    found = kubectl.get("cloudtenant", name) or {}
    for item in (found.get("status") or {}).get("conditions") or []:
        if item["type"] == type_:
            return dict(item)
    return {}


def backup_status(kubectl: testing.Kubectl, name: str) -> Manifest:
    return dict(((kubectl.get("cloudtenant", name) or {}).get("status") or {}).get("backup") or {})


def test_the_operator_keeps_each_tenants_schedule_and_reports_its_recovery_point(
    hub: cluster.ControlPlane,
    subcenter: cluster.ControlPlane,
    kubectl: testing.Kubectl,
    site_kubectl: testing.Kubectl,
    system_namespace: str,
    store: objectstore.ObjectStore,
    operator: testing.OperatorProcess,
) -> None:
    kept, late = helpers.unique("bk-keep"), helpers.unique("bk-late")
    onsite = helpers.unique("bk-site")  # placed on the sub-center: its Schedule lives there
    other = helpers.unique("bk-other")  # a namespace of no tenant: never in a Schedule
    server: velero.VeleroServer | None = None
    backing: testing.OperatorProcess | None = None
    sites = sc.Sites(kubectl)
    placed = sc.PlacedTenants(kubectl, site_kubectl)
    operator.stop()  # the shared operator does no backups: one that does, in its place
    try:
        for plane in (kubectl, site_kubectl):
            testing.eventually(
                lambda plane=plane: vh.velero_gone(plane),
                timeout=120,
                what="Velero's CRDs and namespace of an earlier test to be gone",
            )
        # Velero installed on the sub-center too (its server is not needed to hold Schedules).
        velero.VeleroServer(
            subcenter.kubeconfig, store, vh.BUCKET, vh.LOGS / f"velero-site-{os.getpid()}.log"
        ).install(site_kubectl)
        server = vh.running_velero(hub, store, read_only=False)
        kubectl("create", "namespace", other)
        backing = testing.OperatorProcess(
            hub.kubeconfig,
            vh.LOGS / f"operator-backup-{os.getpid()}.log",
            env={
                "GOVCLOUD_RESYNC_SECONDS": "5",
                "GOVCLOUD_PLATFORM_NAMESPACES": "monitoring",
                "GOVCLOUD_BACKUP_ENABLED": "true",
                "GOVCLOUD_BACKUP_LEVELS": json.dumps(BACKUP_LEVELS),
            },
            args=("--verbose",),  # its log names each object it writes
        ).start()
        # Level 3, asking for backups every hour (its level: at least hourly here) kept 1000 h.
        asking = vh.backed_up_tenant(kept, 3)
        asking["spec"]["backup"] = {"every": "1h", "ttl": "1000h"}
        kubectl.apply(asking)
        site = sites.create(helpers.unique("bk-county"), sc.kubeconfig_of(subcenter))

        # The Schedule: in Velero's namespace, of exactly the tenant's two namespaces.
        schedule_name = f"govcloud-{kept}"
        schedule = testing.eventually(
            lambda: kubectl.get("schedule", schedule_name, velero.NAMESPACE),
            timeout=60,
            what=f"the Schedule of {kept}",
        )
        template = schedule["spec"]["template"]
        assert sorted(template["includedNamespaces"]) == [f"{kept}-db", f"{kept}-web"]
        assert template["ttl"] == "1000h0m0s"
        assert schedule["spec"]["schedule"] == "@every 1h0m0s"
        # Velero validates the Schedule (its cron parser takes @every) and enables it.
        testing.eventually(
            lambda: vh.phase_of(server, kubectl, "schedule", schedule_name) == "Enabled",
            timeout=30,
            what=f"Velero to enable the Schedule {schedule_name}",
        )
        assert schedule["spec"]["useOwnerReferencesInBackup"] is False
        assert schedule["metadata"]["labels"]["govcloud.io/tenant"] == kept

        # A backup from the Schedule, as `velero backup create --from-schedule` makes one (its
        # template and labels, the schedule-name label); Velero runs it, it completes, and the
        # tenant's status, condition and /metrics show it.
        made_name = f"{schedule_name}-manual"
        kubectl.apply(
            {
                "apiVersion": "velero.io/v1",
                "kind": "Backup",
                "metadata": {
                    "name": made_name,
                    "namespace": velero.NAMESPACE,
                    "labels": {
                        **template["metadata"]["labels"],
                        "velero.io/schedule-name": schedule_name,
                    },
                },
                "spec": {k: v for k, v in template.items() if k != "metadata"},
            }
        )
        assert vh.finished(server, kubectl, "backup", made_name) == "Completed", server.log_tail()
        made = kubectl.get("backup", made_name, velero.NAMESPACE)
        assert made is not None
        assert made["spec"]["includedNamespaces"] == template["includedNamespaces"]
        assert made["metadata"]["labels"]["govcloud.io/tenant"] == kept
        written = store.keys(vh.BUCKET, f"backups/{made['metadata']['name']}/")
        assert f"backups/{made['metadata']['name']}/{made['metadata']['name']}.tar.gz" in written
        status = testing.eventually(
            lambda: (found := backup_status(kubectl, kept)).get("lastBackup") and found,
            timeout=60,
            what=f"status.backup of {kept} to name its backup",
        )
        assert status["lastBackup"] == made["metadata"]["name"]
        assert status["rpoMet"] is True
        assert status["schedule"] == f"{velero.NAMESPACE}/{schedule_name}"
        assert status["lastBackupTime"] == made["status"]["completionTimestamp"]
        healthy = condition(kubectl, kept, tenant_backup.BACKUP_HEALTHY)
        assert (healthy["status"], healthy["reason"]) == ("True", "RPOMet"), healthy
        header, row = kubectl("get", "ct", kept).splitlines()[:2]
        assert header.split()[-1] == "LAST-BACKUP", header
        assert row.split()[-1] != "<none>", row  # its age, e.g. 5s
        columns = kubectl("get", "ct", kept, "--no-headers", "-o", "wide")
        assert columns.split()[-1] == "true", columns  # RPO-MET
        assert backing.metric_value("govcloud_tenant_backup_rpo_met", tenant=kept) == 1
        completed_at = backing.metric_value(
            "govcloud_tenant_backup_last_success_timestamp_seconds", tenant=kept
        )
        assert completed_at > 0
        assert abs(completed_at - _unix(made["status"]["completionTimestamp"])) < 1

        # At rest: passes of the tenant write nothing (its Schedule, status, nothing).
        writes, offset = helpers.writes_by_series(backing), backing.log_path.stat().st_size
        _wait_resyncs(backing, kept, 2)
        assert not helpers.new_writes(writes, helpers.writes_by_series(backing)), (
            helpers.writes_logged(backing, offset)
        )

        # No Velero server any more: the next tenant's Schedule gets no backup, and once its
        # RPO (20 s at level 2) has passed from the Schedule's creation, it is missed.
        server.stop()
        kubectl.apply(vh.backed_up_tenant(late, 2))
        sites.wait_ready(site, timeout=60)
        placed.place(onsite, site, namespaces=("web",), level=2)

        # A placed tenant's Schedule is on its sub-center, of its namespace there; none on the hub.
        on_site = testing.eventually(
            lambda: site_kubectl.get("schedule", f"govcloud-{onsite}", velero.NAMESPACE),
            timeout=60,
            what=f"the Schedule of {onsite} on the sub-center",
        )
        assert on_site["spec"]["template"]["includedNamespaces"] == [f"{onsite}-web"]
        assert kubectl.get("schedule", f"govcloud-{onsite}", velero.NAMESPACE) is None
        testing.eventually(
            lambda: (
                backup_status(kubectl, onsite).get("schedule")
                == f"{velero.NAMESPACE}/govcloud-{onsite}"
            ),
            timeout=30,
            what=f"status.backup of {onsite} to name its Schedule",
        )
        testing.eventually(
            lambda: kubectl.get("schedule", f"govcloud-{late}", velero.NAMESPACE),
            timeout=60,
            what=f"the Schedule of {late}",
        )
        missed = testing.eventually(
            lambda: (
                (found := condition(kubectl, late, tenant_backup.BACKUP_HEALTHY)).get("reason")
                == tenant_backup.RPO_MISSED
                and found
            ),
            timeout=60,
            what=f"{late} to miss its RPO",
        )
        assert missed["status"] == "False"
        assert backup_status(kubectl, late)["rpoMet"] is False
        assert "lastBackup" not in backup_status(kubectl, late)
        # The metric is recorded once the pass that wrote the status returns (a moment later
        # on a loaded machine).
        testing.eventually(
            lambda: backing.metric_value("govcloud_tenant_backup_rpo_met", tenant=late) == 0,
            timeout=15,
            what=f"govcloud_tenant_backup_rpo_met of {late} to be 0",
        )
        warnings = testing.eventually(
            lambda: [
                item
                for item in kubectl.json(
                    "get", "events", "-A", "--field-selector",
                    f"involvedObject.name={late},reason={tenant_backup.RPO_MISSED}",
                )["items"]
                if item["type"] == "Warning"
            ],
            timeout=30,
            what=f"a Warning Event {tenant_backup.RPO_MISSED} on {late}",
        )  # fmt: skip
        assert len(warnings) == 1, warnings  # once, not once per pass
        assert (warnings[0].get("count") or 1) == 1
        # The level-3 tenant still meets its objective; no tenant's Schedule names a foreign
        # namespace, and the platform ledger's (every namespace) holds only the operator's kinds.
        assert backing.metric_value("govcloud_tenant_backup_rpo_met", tenant=kept) == 1
        for item in kubectl.json("get", "schedules", "-n", velero.NAMESPACE)["items"]:
            template = item["spec"]["template"]
            if item["metadata"]["name"] == ledger.SCHEDULE_NAME:
                kinds = template["includedNamespaceScopedResources"]
                assert kinds, template
                assert all(kind.endswith(".govcloud.io") for kind in kinds), kinds
                continue
            assert helpers.labels_of(item).get("govcloud.io/tenant"), item["metadata"]
            assert other not in template["includedNamespaces"]
            assert "*" not in template["includedNamespaces"]

        # Deleting a tenant deletes its Schedule (its Backups stay until their ttl).
        kubectl("delete", "cloudtenant", kept, "--wait=false")
        testing.eventually(
            lambda: kubectl.get("schedule", schedule_name, velero.NAMESPACE) is None,
            timeout=60,
            what=f"the Schedule of {kept} to be deleted with it",
        )
        testing.eventually(
            lambda: kubectl.get("cloudtenant", kept) is None, timeout=60, what=f"{kept} to go"
        )
        assert kubectl.get("backup", made["metadata"]["name"], velero.NAMESPACE) is not None
        # Its series go with it (forgotten once its finalizer is done: soon after, not before).
        testing.eventually(
            lambda: f'tenant="{kept}"' not in backing.metrics(),
            timeout=30,
            what=f"the series of {kept} to be gone from /metrics",
        )
        assert backing.metric_value("govcloud_tenant_backup_rpo_met", tenant=kept) == 0

        # So does deleting a placed tenant, on its sub-center.
        kubectl("delete", "cloudtenant", onsite, "--wait=false")
        testing.eventually(
            lambda: site_kubectl.get("schedule", f"govcloud-{onsite}", velero.NAMESPACE) is None,
            timeout=60,
            what=f"the Schedule of {onsite} to be deleted on the sub-center",
        )

        # The object store's credentials appear nowhere the operator writes.
        places = {
            "log": backing.log_path.read_text(errors="replace"),
            "events": json.dumps(kubectl.json("get", "events", "-A")),
            "tenants": json.dumps(kubectl.json("get", "cloudtenants")),
            "metrics": backing.metrics(),
        }
        for where, text in places.items():
            assert store.secret_key not in text, where
            assert store.access_key not in text, where
    finally:
        for name in (kept, late):
            kubectl.run("delete", "cloudtenant", name, "--wait=false", "--ignore-not-found")
        try:
            if backing is not None:
                placed.cleanup()
                for name in (kept, late):
                    testing.eventually(
                        lambda name=name: kubectl.get("cloudtenant", name) is None,
                        timeout=60,
                        what=f"CloudTenant {name} to be deleted",
                    )
                sites.cleanup()
        finally:
            if backing is not None:
                backing.stop()
            if server is not None:
                server.stop()
            kubectl.run("delete", "namespace", other, "--wait=false", "--ignore-not-found")
            vh.uninstall(kubectl)
            vh.uninstall(site_kubectl)
            operator.start()


def _unix(text: str) -> float:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _wait_resyncs(process: testing.OperatorProcess, tenant: str, passes: int) -> None:
    """Until the tenant has had `passes` more passes (its last-reconcile time moves)."""
    seen = process.metric_value("govcloud_tenant_last_reconcile_timestamp_seconds", tenant=tenant)
    for _ in range(passes):
        seen = testing.eventually(
            lambda seen=seen: (
                (
                    value := process.metric_value(
                        "govcloud_tenant_last_reconcile_timestamp_seconds", tenant=tenant
                    )
                )
                > seen
                and value
            ),
            timeout=30,
            what=f"another pass of {tenant}",
        )


@pytest.mark.parametrize(
    ("level", "backup", "message"),
    [
        (
            3,
            {"enabled": False},
            "backups of a security level 3 (等保三级) system cannot be turned off",
        ),
        (2, {"every": "1d"}, "a duration in hours and minutes, e.g. 6h, 90m or 720h"),
        (2, {"ttl": ""}, "a duration in hours and minutes, e.g. 6h, 90m or 720h"),
    ],
)
def test_the_api_server_refuses_backup_overrides_no_policy_allows(
    kubectl: testing.Kubectl, crds: None, level: int, backup: Manifest, message: str
) -> None:
    tenant = vh.backed_up_tenant(helpers.unique("bk-refused"), level)
    tenant["spec"]["backup"] = backup
    result = kubectl.run("apply", "--dry-run=server", "-f", "-", stdin=json.dumps(tenant))
    assert result.returncode != 0, f"spec.backup {backup} was accepted at level {level}"
    assert message in result.stderr, result.stderr
    allowed = vh.backed_up_tenant(helpers.unique("bk-allowed"), 2)
    allowed["spec"]["backup"] = {"enabled": False, "every": "6h", "ttl": "2160h"}
    result = kubectl.run("apply", "--dry-run=server", "-f", "-", stdin=json.dumps(allowed))
    assert result.returncode == 0, result.stderr
