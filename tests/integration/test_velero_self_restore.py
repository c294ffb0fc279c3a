"""Self-service restores, safe by default (issue 17, item 5): a department's admin, impersonated
against the chart's roles on the real control plane, reads its backups in its CloudTenant's
status and restores one into its own namespace with a BackupRestore; the real Velero server
restores it from the real object store (moto) and the objects equal the originals, while the
platform's record in that namespace (an in-year request, in the backup too) stays gone. Naming
another department's backup or namespace is refused and creates no Velero Restore; Velero's
namespace and other departments' namespaces stay out of reach; the object store's credentials
appear nowhere the operator writes."""

from __future__ import annotations

import datetime
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import _tenant_helpers as helpers
import _velero_helpers as vh
import pytest

from govcloud.cli import main as plugin_main
from govcloud.dev import cluster, objectstore, testing, velero
from govcloud.reconcile import backuprestore as brs

pytestmark = pytest.mark.integration

Manifest = dict[str, Any]
ROLES = testing.REPO_ROOT / "charts/govcloud-operator/files/backup/restores.yaml"
PLATFORM_RECORD = "more-cpu"
# Yearly crons: Velero makes no backup by itself while the test runs; the test makes each
# backup from the tenant's Schedule, as `velero backup create --from-schedule` does.
BACKUP_LEVELS = {"2": {"schedule": "0 0 1 1 *", "interval": "1h", "ttl": "720h", "rpo": "2h"}}


def department_tenant(name: str) -> Manifest:
    return {
        "apiVersion": "govcloud.io/v1alpha1",
        "kind": "CloudTenant",
        "metadata": {"name": name, "annotations": {helpers.CONFIRM_DELETE: name}},
        "spec": {
            "displayName": f"恢复测试 {name}",
            "unit": {"code": name[:30], "tier": "county"},
            "contacts": [{"name": "测试员", "email": "test@example.gov.cn"}],
            "admins": {"groups": [f"{name}-admins"]},
            "editors": {"groups": [f"{name}-editors"]},
            "securityLevel": 2,
            "namespaces": [{"name": "app"}],
            "deletionPolicy": "Delete",
        },
    }


@dataclass
class Department:
    """A tenant with one namespace, its objects, and a Completed backup of them."""

    name: str
    namespace: str
    backup: str
    originals: dict[tuple[str, str], Manifest]

    def admin(self, kubectl: testing.Kubectl) -> testing.Kubectl:
        return kubectl.impersonate(f"admin-of-{self.name}", f"{self.name}-admins")


@dataclass
class World:
    a: Department
    b: Department
    operator: testing.OperatorProcess
    server: velero.VeleroServer
    store: objectstore.ObjectStore


@pytest.fixture(scope="module")
def world(
    hub: cluster.ControlPlane,
    kubectl: testing.Kubectl,
    operator: testing.OperatorProcess,
    crds: None,
) -> Iterator[World]:
    """Velero on the hub, an operator doing backups, the chart's restore roles, and two
    departments each with its own Completed backup."""
    names = [helpers.unique("rs-a"), helpers.unique("rs-b")]
    server: velero.VeleroServer | None = None
    backing: testing.OperatorProcess | None = None
    operator.stop()  # the shared operator does no backups: one that does, in its place
    kubectl("apply", "-f", str(ROLES))
    try:
        with vh.object_store() as store:
            testing.eventually(
                lambda: vh.velero_gone(kubectl),
                timeout=120,
                what="Velero's CRDs and namespace of an earlier test to be gone",
            )
            server = vh.running_velero(hub, store, read_only=False)
            backing = testing.OperatorProcess(
                hub.kubeconfig,
                vh.LOGS / f"operator-restore-{os.getpid()}.log",
                env={
                    "GOVCLOUD_RESYNC_SECONDS": "5",
                    "GOVCLOUD_PLATFORM_NAMESPACES": "monitoring",
                    "GOVCLOUD_BACKUP_ENABLED": "true",
                    "GOVCLOUD_BACKUP_LEVELS": json.dumps(BACKUP_LEVELS),
                },
            ).start()
            for name in names:
                kubectl.apply(department_tenant(name))
            made = [_backed_up(kubectl, server, name) for name in names]
            yield World(made[0], made[1], backing, server, store)
    finally:
        for name in names:  # none left for the shared operator (which does no backups)
            kubectl.run("delete", "backuprestores", "--all", "-n", f"{name}-app")
            kubectl.run("delete", "cloudtenant", name, "--wait=false", "--ignore-not-found")
        try:
            for name in names:
                testing.eventually(
                    lambda name=name: kubectl.get("cloudtenant", name) is None,
                    timeout=60,
                    what=f"CloudTenant {name} to be deleted",
                )
        finally:
            if backing is not None:
                backing.stop()
            if server is not None:
                server.stop()
            vh.uninstall(kubectl)
            kubectl.run("delete", "-f", str(ROLES), "--ignore-not-found")
            operator.start()


def _backed_up(kubectl: testing.Kubectl, server: velero.VeleroServer, tenant: str) -> Department:
    """The tenant's namespace filled with a department's objects, then backed up from its
    Schedule (Completed)."""
    namespace = f"{tenant}-app"
    helpers.wait_tenant(
        kubectl, tenant, lambda body: helpers.phase(body) == "Active", "Active", timeout=60
    )
    for manifest in vh.department(namespace):
        kubectl.apply(manifest)
    kubectl.apply(platform_record(namespace))
    originals = {
        (item["kind"], item["metadata"]["name"]): kubectl.get(
            item["kind"].lower(), item["metadata"]["name"], namespace
        )
        or {}
        for item in vh.department(namespace)
    }
    schedule_name = f"govcloud-{tenant}"
    schedule = testing.eventually(
        lambda: kubectl.get("schedule", schedule_name, velero.NAMESPACE),
        timeout=60,
        what=f"the Schedule of {tenant}",
    )
    template = schedule["spec"]["template"]
    backup = f"{schedule_name}-manual"
    kubectl.apply(
        {
            "apiVersion": "velero.io/v1",
            "kind": "Backup",
            "metadata": {
                "name": backup,
                "namespace": velero.NAMESPACE,
                "labels": {
                    **template["metadata"]["labels"],
                    "velero.io/schedule-name": schedule_name,
                },
            },
            "spec": {key: value for key, value in template.items() if key != "metadata"},
        }
    )
    assert vh.finished(server, kubectl, "backup", backup) == "Completed", server.log_tail()
    return Department(tenant, namespace, backup, originals)


def platform_record(namespace: str) -> Manifest:
    """One of the platform's records in a department's namespace: an in-year request."""
    return {
        "apiVersion": "govcloud.io/v1alpha1",
        "kind": "ResourceRequest",
        "metadata": {"name": PLATFORM_RECORD, "namespace": namespace},
        "spec": {
            "year": datetime.datetime.now(datetime.UTC).year,
            "lines": [{"resources": {"requests.cpu": "2"}, "reason": "汛期扩容"}],
        },
    }


def request(name: str, namespace: str, backup: str, *namespaces: str) -> Manifest:
    spec: Manifest = {"backup": backup}
    if namespaces:
        spec["namespaces"] = list(namespaces)
    return {
        "apiVersion": "govcloud.io/v1alpha1",
        "kind": "BackupRestore",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def plugin(kubectl: testing.Kubectl, who: testing.Kubectl, *args: str) -> tuple[int, str, str]:
    """`kubectl govcloud ...` (its entry point, in this process) as `who`."""
    argv = ["--kubeconfig", str(kubectl.kubeconfig), "--as", str(who.as_user)]
    for group in who.as_groups:
        argv += ["--as-group", group]
    out, err = io.StringIO(), io.StringIO()
    code = plugin_main.run([*argv, *args], out, err)
    return code, out.getvalue(), err.getvalue()


def file_request(admin: testing.Kubectl, manifest: Manifest) -> None:
    """Create as the department's admin (once the chart's role has aggregated into admin)."""
    testing.eventually(
        lambda: helpers.create(admin, manifest).returncode == 0,
        timeout=30,
        what=f"{admin.as_user} to create BackupRestore {manifest['metadata']['name']}",
    )


def finished(kubectl: testing.Kubectl, name: str, namespace: str) -> Manifest:
    return testing.eventually(
        lambda: (
            (found := kubectl.get("backuprestore", name, namespace) or {})
            .get("status", {})
            .get("phase")
            in ("Refused", "Completed", "PartiallyFailed", "Failed")
            and found
        ),
        timeout=90,
        what=f"BackupRestore {namespace}/{name} to end",
    )


def restores(kubectl: testing.Kubectl) -> list[str]:
    items = kubectl.json("get", "restores", "-n", velero.NAMESPACE)["items"]
    return sorted(item["metadata"]["name"] for item in items)


def events(kubectl: testing.Kubectl, namespace: str, name: str) -> dict[str, Manifest]:
    found = kubectl.json(
        "get", "events", "-n", namespace, "--field-selector", f"involvedObject.name={name}"
    )["items"]
    return {item["reason"]: item for item in found}


def test_a_departments_admin_restores_its_own_backup_into_its_own_namespace_as_it_was(
    kubectl: testing.Kubectl, world: World
) -> None:
    a = world.a
    admin = a.admin(kubectl)
    completed_before = _restores_total(world, a.name, "completed")
    # The admin reads the department's backups in its CloudTenant (its self-view role), as it
    # cannot read Velero's namespace: with kubectl, and with `kubectl govcloud backup list`.
    seen = testing.eventually(
        lambda: [
            item
            for item in json.loads(admin("get", "ct", a.name, "-o", "json"))["status"]
            .get("backup", {})
            .get("recent", [])
            if item["name"] == a.backup
        ],
        timeout=30,
        what=f"{a.backup} in status.backup.recent of {a.name}",
    )
    assert seen[0]["phase"] == "Completed", seen
    assert seen[0]["completedAt"], seen
    code, out, err = plugin(kubectl, admin, "backup", "list", "--tenant", a.name)
    assert code == 0, err
    assert [a.name, a.backup, "Completed"] in [line.split()[:3] for line in out.splitlines()], out
    # The department loses its objects, then restores them with the plugin. The platform's
    # record in its namespace (an in-year request, in the backup too) was withdrawn meanwhile:
    # a department's restore must not bring it back, or an old decision with it.
    held = vh.resource_list(world.store, a.backup).get("govcloud.io/v1alpha1/ResourceRequest")
    assert held == [f"{a.namespace}/{PLATFORM_RECORD}"], held
    for kind, name in [*a.originals, ("ResourceRequest", PLATFORM_RECORD)]:
        kubectl("delete", kind.lower(), name, "-n", a.namespace, "--wait=true")
    asked = ("backup", "restore", a.backup, "--name", "bring-back", "-n", a.namespace)
    testing.eventually(
        lambda: plugin(kubectl, admin, *asked)[0] == 0,
        timeout=30,
        what=f"{admin.as_user} to request the restore (once the chart's role aggregated)",
    )
    done = finished(kubectl, "bring-back", a.namespace)
    status = done["status"]
    assert status["phase"] == "Completed", status
    assert status["tenant"] == a.name
    assert status["namespaces"] == [a.namespace]
    assert status["itemsRestored"] > 0, status
    assert status["errors"] == 0, status
    assert status["startedAt"], status
    assert status["completedAt"], status
    assert status["backupCompletedAt"], status
    for (kind, name), original in a.originals.items():
        restored = kubectl.get(kind.lower(), name, a.namespace)
        assert restored is not None, f"{kind} {name} was not restored"
        assert vh.comparable(kind, restored) == vh.comparable(kind, original), kind

    # The Velero Restore the operator made: exactly the department's namespace, under its own
    # name, no cluster-scoped objects, none of the platform's objects in it.
    made = kubectl.get("restore", status["restore"].split("/")[1], velero.NAMESPACE)
    assert made is not None
    spec = made["spec"]
    assert spec["backupName"] == a.backup
    assert spec["includedNamespaces"] == [a.namespace]
    assert spec["includeClusterResources"] is False
    assert "namespaceMapping" not in spec
    assert "networkpolicies.networking.k8s.io" in spec["excludedResources"]
    assert made["metadata"]["labels"]["govcloud.io/tenant"] == a.name
    assert kubectl.get("resourcerequest", PLATFORM_RECORD, a.namespace) is None
    # The operator's RoleBindings were not in the restore, and are the operator's still.
    binding = kubectl.get("rolebinding", "govcloud-admin", a.namespace)
    assert binding is not None
    assert "velero.io/restore-name" not in binding["metadata"]["labels"]

    # What the department sees: Events, printer columns (as its admin), the metric.
    said = events(kubectl, a.namespace, "bring-back")
    assert {"RestoreStarted", "RestoreCompleted"} <= said.keys(), said.keys()
    header, row = admin("get", "brs", "bring-back", "-n", a.namespace).splitlines()[:2]
    assert header.split()[:3] == ["NAME", "BACKUP", "PHASE"], header
    assert row.split()[1:3] == [a.backup, "Completed"], row
    code, out, err = plugin(kubectl, admin, "backup", "restores", "--tenant", a.name)
    assert code == 0, err
    assert [a.namespace, "bring-back", a.backup, "Completed"] in [
        line.split()[:4] for line in out.splitlines()
    ], out
    assert _restores_total(world, a.name, "completed") == completed_before + 1
    # A finished request is a record: it cannot be changed (the CRD), only replaced.
    changed = kubectl.run(
        "patch", "brs", "bring-back", "-n", a.namespace, "--type=merge",
        "-p", json.dumps({"spec": {"backup": world.b.backup}}),
    )  # fmt: skip
    assert changed.returncode != 0
    assert "cannot change once requested" in changed.stderr


def test_another_departments_backup_or_namespace_is_refused_and_nothing_is_created(
    kubectl: testing.Kubectl, world: World
) -> None:
    a, b = world.a, world.b
    admin = a.admin(kubectl)
    # A backup labelled as A's that also holds B's namespace (made by hand by the platform):
    # B's namespace is still not A's to restore into.
    wide = _wide_backup(kubectl, world, a, b)
    refused_before = _restores_total(world, a.name, "refused")
    before = restores(kubectl)
    cases = (
        ("their-backup", request("their-backup", a.namespace, b.backup), "BackupNotFound"),
        (
            "their-namespace",
            request("their-namespace", a.namespace, wide, b.namespace),
            "NamespaceNotOwned",
        ),
    )
    for name, manifest, reason in cases:
        file_request(admin, manifest)
        done = finished(kubectl, name, a.namespace)
        status = done["status"]
        assert status["phase"] == "Refused", status
        accepted = helpers.condition(done, brs.ACCEPTED)
        assert (accepted["status"], accepted["reason"]) == ("False", reason), accepted
        said = testing.eventually(
            lambda name=name: events(kubectl, a.namespace, name),
            timeout=30,
            what=f"the Warning Event of {name}",
        )
        assert said[reason]["type"] == "Warning"
        assert said[reason]["message"] == accepted["message"]
        assert "restore" not in status
    # The refusal about B's backup does not tell whether B has one of that name.
    message = helpers.condition(
        kubectl.get("backuprestore", "their-backup", a.namespace), brs.ACCEPTED
    )["message"]
    assert "has no backup named" in message
    assert restores(kubectl) == before  # no Velero Restore was created
    assert _restores_total(world, a.name, "refused") == refused_before + 2
    # By default, only A's own namespaces of that backup are restored: never B's.
    file_request(admin, request("whole-backup", a.namespace, wide))
    done = finished(kubectl, "whole-backup", a.namespace)
    assert done["status"]["phase"] == "Completed", done["status"]
    assert done["status"]["namespaces"] == [a.namespace]
    made = kubectl.get("restore", done["status"]["restore"].split("/")[1], velero.NAMESPACE)
    assert made is not None
    assert made["spec"]["includedNamespaces"] == [a.namespace]


def _wide_backup(kubectl: testing.Kubectl, world: World, a: Department, b: Department) -> str:
    name = f"govcloud-{a.name}-wide"
    kubectl.apply(
        {
            "apiVersion": "velero.io/v1",
            "kind": "Backup",
            "metadata": {
                "name": name,
                "namespace": velero.NAMESPACE,
                "labels": {
                    "app.kubernetes.io/managed-by": "govcloud-operator",
                    "govcloud.io/tenant": a.name,
                },
            },
            "spec": {"includedNamespaces": [a.namespace, b.namespace], "ttl": "1h0m0s"},
        }
    )
    phase = vh.finished(world.server, kubectl, "backup", name)
    assert phase == "Completed", world.server.log_tail()
    return name


def _restores_total(world: World, tenant: str, result: str) -> float:
    return world.operator.metric_value(
        "govcloud_backup_restores_total", tenant=tenant, result=result
    )


def test_a_departments_admin_reaches_neither_velero_nor_another_departments_namespace(
    kubectl: testing.Kubectl, world: World
) -> None:
    a, b = world.a, world.b
    admin = a.admin(kubectl)
    direct = {
        "apiVersion": "velero.io/v1",
        "kind": "Restore",
        "metadata": {"name": helpers.unique("direct"), "namespace": velero.NAMESPACE},
        "spec": {"backupName": b.backup, "namespaceMapping": {b.namespace: a.namespace}},
    }
    assert helpers.forbidden(helpers.create(admin, direct), "restores.velero.io")
    assert helpers.forbidden(admin.run("get", "backups", "-n", velero.NAMESPACE))
    assert helpers.forbidden(admin.run("get", "backup", b.backup, "-n", velero.NAMESPACE))
    into_b = request(helpers.unique("into-b"), b.namespace, b.backup)
    assert helpers.forbidden(helpers.create(admin, into_b), "backuprestores")
    assert kubectl.get("backuprestore", into_b["metadata"]["name"], b.namespace) is None
    # Editors read requests but do not restore; admins do, in their own namespace only.
    editor = kubectl.impersonate(f"editor-of-{a.name}", f"{a.name}-editors")
    can = ("auth", "can-i", "create", "backuprestores.govcloud.io", "-n")
    assert editor.run(*can, a.namespace).stdout.strip() == "no"
    assert editor.run("get", "brs", "-n", a.namespace).returncode == 0
    assert admin.run(*can, a.namespace).stdout.strip() == "yes"
    assert admin.run(*can, b.namespace).stdout.strip() == "no"


def test_the_object_stores_credentials_appear_nowhere_the_operator_writes(
    kubectl: testing.Kubectl, world: World
) -> None:
    places = {
        "log": world.operator.log_path.read_text(errors="replace"),
        "events": json.dumps(kubectl.json("get", "events", "-A")),
        "requests": json.dumps(kubectl.json("get", "backuprestores", "-A")),
        "tenants": json.dumps(kubectl.json("get", "cloudtenants")),
        "metrics": world.operator.metrics(),
    }
    assert "govcloud_backup_restores_total" in places["metrics"]
    for where, text in places.items():
        assert world.store.secret_key not in text, where
        assert world.store.access_key not in text, where
