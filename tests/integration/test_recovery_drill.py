"""Restore drills (issue 17, item 3): a RecoveryDrill restores a department's backup, made by
the real Velero server on the hub, onto a sub-center through that sub-center's own Velero
reading the same bucket; the operator records who ran it, what was restored, the recovery time
and that every restored object equals the backup's; it keeps the result while told to and
deletes it after. A drill naming another tenant's backup is refused with nothing restored; one
past its timeout fails as Overdue; the failures show in conditions, Events and /metrics. The
chart's admission policy records the requester as the user who created the drill.

This is also item 4's proof of a backup and a restore onto a second control plane with the real
Velero server and object store: the restored objects are compared with the originals."""

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
from _chart_helpers import Release, installed_release

from govcloud.dev import cluster, objectstore, testing, velero

pytestmark = pytest.mark.integration

Manifest = dict[str, Any]
# Yearly crons: the tests make each backup from its tenant's Schedule, as
# `velero backup create --from-schedule` does.
BACKUP_LEVELS = {
    "2": {"schedule": "0 0 1 1 *", "interval": "1h", "ttl": "720h", "rpo": "2h"},
    "3": {"schedule": "0 0 1 1 *", "interval": "1h", "ttl": "720h", "rpo": "2h"},
}


@pytest.fixture(scope="module")
def store() -> Iterator[objectstore.ObjectStore]:
    with vh.object_store() as started:
        yield started


def drill(name: str, of: str, site: str, by: str, **spec: Any) -> Manifest:
    return {
        "apiVersion": "govcloud.io/v1alpha1",
        "kind": "RecoveryDrill",
        "metadata": {"name": name},
        "spec": {"tenant": of, "target": {"site": site}, "requestedBy": by, **spec},
    }


def backed_up(
    kubectl: testing.Kubectl, server: velero.VeleroServer, of: str, name: str
) -> Manifest:
    """A backup from the tenant's Schedule (its template and labels), Completed."""
    schedule = testing.eventually(
        lambda: kubectl.get("schedule", f"govcloud-{of}", velero.NAMESPACE),
        timeout=60,
        what=f"the Schedule of {of}",
    )
    template = schedule["spec"]["template"]
    kubectl.apply(
        {
            "apiVersion": "velero.io/v1",
            "kind": "Backup",
            "metadata": {
                "name": name,
                "namespace": velero.NAMESPACE,
                "labels": {
                    **template["metadata"]["labels"],
                    "velero.io/schedule-name": f"govcloud-{of}",
                },
            },
            "spec": {k: v for k, v in template.items() if k != "metadata"},
        }
    )
    assert vh.finished(server, kubectl, "backup", name) == "Completed", server.log_tail()
    found = kubectl.get("backup", name, velero.NAMESPACE)
    assert found is not None
    return found


def status_of(kubectl: testing.Kubectl, name: str) -> Manifest:
    return dict((kubectl.get("recoverydrill", name) or {}).get("status") or {})


def condition(status: Manifest, type_: str) -> Manifest:
    for item in status.get("conditions") or []:
        if item["type"] == type_:
            return dict(item)
    return {}


def finished(kubectl: testing.Kubectl, name: str, timeout: float) -> Manifest:
    return testing.eventually(
        lambda: (
            (found := status_of(kubectl, name)).get("phase") in ("Succeeded", "Failed") and found
        ),
        timeout=timeout,
        what=f"RecoveryDrill {name} to finish",
    )


def test_a_drill_restores_a_department_on_a_sub_center_verifies_it_and_cleans_up(
    hub: cluster.ControlPlane,
    subcenter: cluster.ControlPlane,
    kubectl: testing.Kubectl,
    site_kubectl: testing.Kubectl,
    system_namespace: str,
    store: objectstore.ObjectStore,
    operator: testing.OperatorProcess,
) -> None:
    dept, other = helpers.unique("dr-dept"), helpers.unique("dr-other")
    names = {key: helpers.unique(f"drill-{key}") for key in ("refused", "late", "run")}
    hub_server: velero.VeleroServer | None = None
    site_server: velero.VeleroServer | None = None
    drilling: testing.OperatorProcess | None = None
    sites = sc.Sites(kubectl)
    me = kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").strip()
    operator.stop()  # the shared operator does no backups: one that does, in its place
    try:
        for plane in (kubectl, site_kubectl):
            testing.eventually(
                lambda plane=plane: vh.velero_gone(plane),
                timeout=120,
                what="Velero's CRDs and namespace of an earlier test to be gone",
            )
        # The sub-center's Velero reads the hub's bucket, read-only (its server starts later:
        # one velero server per machine).
        site_log = vh.LOGS / f"velero-drill-site-{os.getpid()}.log"
        velero.VeleroServer(
            subcenter.kubeconfig, store, vh.BUCKET, site_log, read_only=True
        ).install(site_kubectl)
        hub_server = vh.running_velero(hub, store, read_only=False)
        drilling = testing.OperatorProcess(
            hub.kubeconfig,
            vh.LOGS / f"operator-drill-{os.getpid()}.log",
            env={
                "GOVCLOUD_RESYNC_SECONDS": "5",
                "GOVCLOUD_PLATFORM_NAMESPACES": "monitoring",
                "GOVCLOUD_BACKUP_ENABLED": "true",
                "GOVCLOUD_BACKUP_LEVELS": json.dumps(BACKUP_LEVELS),
                "GOVCLOUD_DRILL_POLL_SECONDS": "1",
            },
        ).start()
        kubectl.apply(vh.backed_up_tenant(dept, 3, "演练"))
        kubectl.apply(vh.backed_up_tenant(other, 2, "演练"))
        site = sites.create(helpers.unique("dr-county"), sc.kubeconfig_of(subcenter))
        web = f"{dept}-web"
        testing.eventually(
            lambda: kubectl.get("namespace", web), timeout=60, what=f"namespace {web}"
        )
        for manifest in vh.department(web):
            kubectl.apply(manifest)
        # A record of the platform's in the department's namespace (an in-year request): a
        # govcloud.io kind the sub-center does not serve. The drill leaves it out of the
        # restore (Velero would fail the restore on it) and out of the comparison.
        kubectl.apply(platform_record(web))
        originals = {
            (item["kind"], item["metadata"]["name"]): kubectl.get(
                item["kind"].lower(), item["metadata"]["name"], web
            )
            for item in vh.department(web)
        }
        backup = backed_up(kubectl, hub_server, dept, f"govcloud-{dept}-drill")
        foreign = backed_up(kubectl, hub_server, other, f"govcloud-{other}-drill")
        sites.wait_ready(site, timeout=60)

        # Another tenant's backup named for this tenant: refused, nothing restored anywhere.
        kubectl.apply(drill(names["refused"], dept, site, me, backup=foreign["metadata"]["name"]))
        # A drill that cannot finish in time (the sub-center's Velero is not running, so the
        # backup never reaches it): Overdue after its 8 s.
        kubectl.apply(drill(names["late"], other, site, me, timeout="8s"))
        refused = finished(kubectl, names["refused"], 60)
        assert refused["phase"] == "Failed", refused
        said = condition(refused, "Succeeded")
        assert (said["status"], said["reason"]) == ("False", "BackupNotTenants"), said
        assert foreign["metadata"]["name"] in said["message"]
        assert "restoredNamespaces" not in refused
        assert "restore" not in refused
        assert refused["requestedBy"] == me
        assert site_kubectl.json("get", "restores", "-n", velero.NAMESPACE)["items"] == []
        late = finished(kubectl, names["late"], 60)
        said = condition(late, "Succeeded")
        assert (late["phase"], said["reason"]) == ("Failed", "Overdue"), late
        assert late["backup"] == foreign["metadata"]["name"]
        assert site_kubectl.json("get", "restores", "-n", velero.NAMESPACE)["items"] == []
        for name, reason in ((names["refused"], "BackupNotTenants"), (names["late"], "Overdue")):
            testing.eventually(
                lambda name=name, reason=reason: kubectl.json(
                    "get", "events", "--field-selector",
                    f"involvedObject.name={name},reason={reason},type=Warning", "-A",
                )["items"],
                timeout=30,
                what=f"a Warning Event {reason} on {name}",
            )  # fmt: skip
        assert drilling.metric_value("govcloud_recovery_drill_failed", tenant=other) == 1
        assert drilling.metric_value("govcloud_recovery_drill_failed", tenant=dept) == 1
        assert drilling.metric_value("govcloud_recovery_drill_overdue", tenant=dept) == 0

        # The drill: onto the sub-center, through its own Velero (one server at a time).
        hub_server.stop()
        available_already(site_kubectl)
        site_server = vh.running_velero(subcenter, store, read_only=True)
        kubectl.apply(drill(names["run"], dept, site, me, keep=True))
        finished(kubectl, names["run"], vh.SYNC_TIMEOUT + 60)
        run = testing.eventually(  # the pass after the one that ended it records the cleanup
            lambda: (found := status_of(kubectl, names["run"])).get("cleanup") and found,
            timeout=30,
            what=f"RecoveryDrill {names['run']} to record its cleanup",
        )
        assert run["phase"] == "Succeeded", (run, site_server.log_tail())
        said = condition(run, "Succeeded")
        assert (said["status"], said["reason"]) == ("True", "Matched"), said
        assert run["requestedBy"] == me
        assert run["backup"] == backup["metadata"]["name"]  # the newest, chosen by itself
        assert run["backupCompletedAt"] == backup["status"]["completionTimestamp"]
        assert run["restoredNamespaces"] == sorted(backup["spec"]["includedNamespaces"])
        assert run["restoredNamespaces"] == [f"{dept}-db", web]
        restore = run["restore"].split("/")[1]
        assert run["restore"] == f"{velero.NAMESPACE}/drill-{names['run']}"
        assert run["matched"] is True
        assert run["mismatches"] == []
        assert run["compared"] >= len(originals)
        assert run["itemsRestored"] == run["totalItems"] > 0
        assert 0 <= run["recoveryTimeSeconds"] <= vh.SYNC_TIMEOUT + 60
        assert run["cleanup"] == "Kept"
        # What the operator says matches holds: the restored department equals the original.
        for (kind, name), original in originals.items():
            assert original is not None
            restored = site_kubectl.get(kind.lower(), name, web)
            assert restored is not None, f"{kind} {name} was not restored"
            assert vh.comparable(kind, restored) == vh.comparable(kind, original), kind
        made = site_kubectl.get("restore", restore, velero.NAMESPACE)
        assert made is not None
        assert sorted(made["spec"]["includedNamespaces"]) == [f"{dept}-db", web]
        assert made["spec"]["backupName"] == backup["metadata"]["name"]
        assert "*.govcloud.io" in made["spec"]["excludedResources"]  # Velero adds its own
        assert made["status"]["phase"] == "Completed"
        assert not made["status"].get("errors"), made["status"]
        header, row = kubectl("get", "drills", names["run"]).splitlines()[:2]
        assert header.split()[:8] == [
            "NAME", "TENANT", "SITE", "BACKUP", "PHASE", "MATCHED", "RTO", "CLEANUP"
        ], header  # fmt: skip
        assert row.split()[1:6] == [dept, site, backup["metadata"]["name"], "Succeeded", "true"]
        assert drilling.metric_value("govcloud_recovery_drill_failed", tenant=dept) == 0
        assert drilling.metric_value("govcloud_recovery_drill_overdue", tenant=dept) == 0
        assert drilling.metric_value(
            "govcloud_recovery_drill_recovery_time_seconds", tenant=dept
        ) == float(run["recoveryTimeSeconds"])
        assert drilling.metric_value(
            "govcloud_recovery_drill_last_success_timestamp_seconds", tenant=dept
        ) == pytest.approx(unix(run["completedAt"]))

        # Kept while told to; deleted (namespaces and Restore) once keep is false.
        kubectl(
            "patch", "recoverydrill", names["run"], "--type=merge", "-p", '{"spec":{"keep":false}}'
        )
        cleaned = testing.eventually(
            lambda: (
                (found := status_of(kubectl, names["run"])).get("cleanup") == "Deleted" and found
            ),
            timeout=30,
            what=f"RecoveryDrill {names['run']} to clean up",
        )
        assert condition(cleaned, "CleanedUp")["status"] == "True"
        testing.eventually(
            lambda: all(
                deleted(site_kubectl.get("namespace", ns)) for ns in run["restoredNamespaces"]
            ),
            timeout=60,
            what="the restored namespaces to be deleted from the sub-center",
        )
        testing.eventually(
            lambda: site_kubectl.get("restore", restore, velero.NAMESPACE) is None,
            timeout=30,
            what="the drill's Restore to be gone",
        )
        # The hub's department was never touched.
        assert kubectl.get("configmap", "permits-config", web) is not None
        assert kubectl.get("resourcerequest", "more-cpu", web) is not None

        # The object store's credentials appear nowhere the operator writes.
        places = {
            "log": drilling.log_path.read_text(errors="replace"),
            "events": json.dumps(kubectl.json("get", "events", "-A")),
            "drills": json.dumps(kubectl.json("get", "recoverydrills")),
            "metrics": drilling.metrics(),
        }
        for where, text in places.items():
            assert store.secret_key not in text, where
            assert store.access_key not in text, where
    finally:
        for name in names.values():
            kubectl.run("delete", "recoverydrill", name, "--ignore-not-found", "--wait=false")
        for name in (dept, other):
            kubectl.run("delete", "cloudtenant", name, "--wait=false", "--ignore-not-found")
        try:
            if drilling is not None:
                for name in (dept, other):
                    testing.eventually(
                        lambda name=name: kubectl.get("cloudtenant", name) is None,
                        timeout=60,
                        what=f"CloudTenant {name} to be deleted",
                    )
                sites.cleanup()
        finally:
            if drilling is not None:
                drilling.stop()
            for server in (hub_server, site_server):
                if server is not None:
                    server.stop()
            for ns in (f"{dept}-web", f"{dept}-db"):
                site_kubectl.run("delete", "namespace", ns, "--wait=false", "--ignore-not-found")
            vh.uninstall(kubectl)
            vh.uninstall(site_kubectl)
            operator.start()


def platform_record(namespace: str) -> Manifest:
    return {
        "apiVersion": "govcloud.io/v1alpha1",
        "kind": "ResourceRequest",
        "metadata": {"name": "more-cpu", "namespace": namespace},
        "spec": {
            "year": datetime.datetime.now(datetime.UTC).year,
            "lines": [{"resources": {"requests.cpu": "2"}, "reason": "汛期扩容"}],
        },
    }


def deleted(found: Manifest | None) -> bool:
    """Gone, or being deleted (its namespace controller empties it first)."""
    return found is None or bool(found["metadata"].get("deletionTimestamp"))


def available_already(kubectl: testing.Kubectl) -> None:
    """The sub-center's storage location as a standby site's long-running Velero has it:
    Available. Velero syncs backups from a location once a minute, and only from one it holds
    Available; a server started here would otherwise skip its first sync and wait a minute.
    (Its own validation, every few seconds, still decides from then on.)"""
    kubectl(
        "patch", "backupstoragelocation", "default", "-n", velero.NAMESPACE,
        "--type=merge", "-p", '{"status":{"phase":"Available"}}',
    )  # fmt: skip


def unix(text: str) -> float:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@pytest.fixture(scope="module")
def release(hub: cluster.ControlPlane, kubectl: testing.Kubectl, crds: None) -> Iterator[Release]:
    """The chart with backups on: its platform roles and the drill admission policy."""
    yield from installed_release(
        hub, kubectl, "--set", "backup.enabled=true", "--set", "backup.namespace=default"
    )


def test_only_the_platform_runs_drills_and_the_requester_is_whoever_creates_it(
    release: Release, kubectl: testing.Kubectl
) -> None:
    binding = f"{release.fullname}-drill-alice"
    kubectl(
        "create", "clusterrolebinding", binding,
        f"--clusterrole={release.fullname}:platform-admin", "--user=platform-alice",
    )  # fmt: skip
    try:
        alice = kubectl.impersonate("platform-alice")
        name = helpers.unique("drill-who")

        def attempt(who: testing.Kubectl, by: str) -> Any:
            return who.run(
                "create", "--dry-run=server", "-f", "-",
                stdin=json.dumps(drill(name, "finance", "county", by)),
            )  # fmt: skip

        # A policy is enforced a moment after it is created.
        refused = testing.eventually(
            lambda: (result := attempt(alice, "bob")).returncode != 0 and result,
            timeout=30,
            what="the drill admission policy to refuse a requester who is not the creator",
        )
        assert "spec.requestedBy must be the user creating the drill (platform-alice)" in (
            refused.stderr
        )
        allowed = attempt(alice, "platform-alice")
        assert allowed.returncode == 0, allowed.stderr
        # A department's admins (or anyone else) cannot run a drill at all.
        tenant_admin = kubectl.impersonate("dept-li", "finance-admins")
        assert helpers.forbidden(attempt(tenant_admin, "dept-li"), "recoverydrills")
    finally:
        kubectl.run("delete", "clusterrolebinding", binding, "--ignore-not-found")
