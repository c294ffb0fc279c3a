"""Velero, the real parts (issue 17, item 4): the pinned `velero server` and its AWS plugin back
up a department's namespace on the hub into a bucket of a real S3-compatible server (moto), and
a second Velero on another control plane restores it from that bucket; the restored objects
equal the originals. Only API objects: volume data needs a node agent (the kind workflow)."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Iterator
from typing import Any

import _tenant_helpers as helpers
import pytest

from govcloud.dev import cluster, objectstore, testing, velero

pytestmark = pytest.mark.integration

Manifest = dict[str, Any]
LOGS = testing.REPO_ROOT / ".cache" / "logs"
BUCKET = "govcloud-backups"
FINISHED = ("Completed", "PartiallyFailed", "Failed", "FailedValidation")
# Backups found in the bucket are synced into a cluster about once a minute.
SYNC_TIMEOUT = 150.0


@pytest.fixture(scope="module")
def store() -> Iterator[objectstore.ObjectStore]:
    started = objectstore.ObjectStore(LOGS / f"moto-{os.getpid()}.log").start()
    try:
        started.create_bucket(BUCKET)
        yield started
    finally:
        started.stop()


def uninstall(kubectl: testing.Kubectl) -> None:
    kubectl.run("delete", "namespace", velero.NAMESPACE, "--wait=false", "--ignore-not-found")
    kubectl.run("delete", "clusterrolebinding", "velero", "--ignore-not-found")
    kubectl.run("delete", "crd", "-l", "component=velero", "--wait=false", "--ignore-not-found")


def running_velero(
    plane: cluster.ControlPlane, store: objectstore.ObjectStore, *, read_only: bool
) -> velero.VeleroServer:
    """Velero installed on `plane` and its server started; its storage location Available."""
    kubectl = testing.Kubectl(plane.kubeconfig)
    server = velero.VeleroServer(
        plane.kubeconfig,
        store,
        BUCKET,
        LOGS / f"velero-{plane.name}-{os.getpid()}.log",
        read_only=read_only,
    )
    server.install(kubectl)
    server.start()
    try:
        testing.eventually(
            lambda: _field(server, kubectl, "backupstoragelocation", "default") == "Available",
            timeout=60,
            what=f"Velero's storage location on {plane.name} to be Available",
        )
    except BaseException:
        server.stop()
        raise
    return server


def _field(
    server: velero.VeleroServer, kubectl: testing.Kubectl, kind: str, name: str
) -> str | None:
    if not server.running():
        raise AssertionError(f"velero server exited:\n{server.log_tail()}")
    found = kubectl.get(kind, name, velero.NAMESPACE) or {}
    phase = (found.get("status") or {}).get("phase")
    return str(phase) if phase else None


def department(namespace: str) -> list[Manifest]:
    """What a department runs: configuration, a credential, a service and its app."""
    labels = {"app": "permits"}
    return [
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "permits-config", "namespace": namespace},
         "data": {"region": "330100", "mode": "办件"}},
        {"apiVersion": "v1", "kind": "Secret",
         "metadata": {"name": "permits-db", "namespace": namespace},
         "data": {"password": base64.b64encode(uuid.uuid4().bytes).decode()}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "permits", "namespace": namespace, "labels": labels},
         "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}},
        helpers.deployment("permits", namespace, 2),
    ]  # fmt: skip


def comparable(kind: str, body: Manifest) -> Manifest:
    """What must survive a backup and restore: the content, not what the cluster assigns."""
    labels = {
        key: value
        for key, value in (body["metadata"].get("labels") or {}).items()
        if not key.startswith("velero.io/")
    }
    if kind == "Service":
        ports = [
            {k: v for k, v in port.items() if k != "nodePort"} for port in body["spec"]["ports"]
        ]
        content: Any = {"selector": body["spec"].get("selector"), "ports": ports}
    elif kind == "Deployment":
        content = {"replicas": body["spec"]["replicas"], "template": body["spec"]["template"]}
    else:
        content = body.get("data")
    return {"labels": labels, "content": content}


def finished(server: velero.VeleroServer, kubectl: testing.Kubectl, kind: str, name: str) -> str:
    return testing.eventually(
        lambda: (phase := _field(server, kubectl, kind, name)) in FINISHED and phase,
        timeout=90,
        what=f"{kind} {name} to finish",
    )


def test_a_department_backed_up_on_the_hub_is_restored_on_another_cluster_as_it_was(
    hub: cluster.ControlPlane,
    subcenter: cluster.ControlPlane,
    kubectl: testing.Kubectl,
    site_kubectl: testing.Kubectl,
    store: objectstore.ObjectStore,
) -> None:
    namespace = helpers.unique("dr-dept")
    backup = f"backup-{namespace}"
    kubectl("create", "namespace", namespace)
    hub_server: velero.VeleroServer | None = None
    site_server: velero.VeleroServer | None = None
    try:
        for manifest in department(namespace):
            kubectl.apply(manifest)
        originals = {
            (item["kind"], item["metadata"]["name"]): kubectl.get(
                item["kind"].lower(), item["metadata"]["name"], namespace
            )
            for item in department(namespace)
        }
        hub_server = running_velero(hub, store, read_only=False)
        kubectl.apply(
            {"apiVersion": "velero.io/v1", "kind": "Backup",
             "metadata": {"name": backup, "namespace": velero.NAMESPACE},
             "spec": {"includedNamespaces": [namespace], "snapshotVolumes": False,
                      "ttl": "720h0m0s"}}
        )  # fmt: skip
        assert finished(hub_server, kubectl, "backup", backup) == "Completed"
        written = store.keys(BUCKET, f"backups/{backup}/")
        assert f"backups/{backup}/{backup}.tar.gz" in written, written
        hub_server.stop()  # one Velero server per machine: its controller manager binds :8080

        site_server = running_velero(subcenter, store, read_only=True)
        testing.eventually(
            lambda: site_kubectl.get("backup", backup, velero.NAMESPACE),
            timeout=SYNC_TIMEOUT,
            what="the hub's backup to be synced from the bucket to the other cluster",
        )
        restore = f"restore-{namespace}"
        site_kubectl.apply(
            {"apiVersion": "velero.io/v1", "kind": "Restore",
             "metadata": {"name": restore, "namespace": velero.NAMESPACE},
             "spec": {"backupName": backup}}
        )  # fmt: skip
        phase = finished(site_server, site_kubectl, "restore", restore)
        assert phase == "Completed", (phase, site_server.log_tail())
        for (kind, name), original in originals.items():
            assert original is not None
            restored = site_kubectl.get(kind.lower(), name, namespace)
            assert restored is not None, f"{kind} {name} was not restored"
            assert comparable(kind, restored) == comparable(kind, original), kind
    finally:
        for server in (hub_server, site_server):
            if server is not None:
                server.stop()
        kubectl.run("delete", "namespace", namespace, "--wait=false")
        site_kubectl.run("delete", "namespace", namespace, "--wait=false", "--ignore-not-found")
        uninstall(kubectl)
        uninstall(site_kubectl)
