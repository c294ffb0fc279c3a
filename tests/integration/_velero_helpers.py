"""What the Velero tests share: the object store, Velero's install and uninstall on a control
plane, its server started there, and a department's objects compared across a restore."""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import _tenant_helpers as helpers
import boto3

from govcloud.dev import cluster, objectstore, testing, velero

Manifest = dict[str, Any]
LOGS = testing.REPO_ROOT / ".cache" / "logs"
BUCKET = "govcloud-backups"
FINISHED = ("Completed", "PartiallyFailed", "Failed", "FailedValidation")
# Backups found in the bucket are synced into a cluster about once a minute.
SYNC_TIMEOUT = 150.0


@contextlib.contextmanager
def object_store() -> Iterator[objectstore.ObjectStore]:
    """The S3-compatible server (moto) with Velero's bucket, for one test module."""
    started = objectstore.ObjectStore(LOGS / f"moto-{os.getpid()}.log").start()
    try:
        started.create_bucket(BUCKET)
        yield started
    finally:
        started.stop()


def uninstall(kubectl: testing.Kubectl) -> None:
    # Velero's server is stopped by now: the finalizers it puts on its objects (a Restore's) would
    # never go, and the CRDs would wait for them forever, so a later install could not start.
    for kind in ("restores", "backups"):
        listed = kubectl.run("get", kind, "-n", velero.NAMESPACE, "-o", "name")
        for name in listed.stdout.split():
            kubectl.run(
                "patch", name, "-n", velero.NAMESPACE, "--type=merge",
                "-p", '{"metadata":{"finalizers":null}}',
            )  # fmt: skip
    kubectl.run("delete", "namespace", velero.NAMESPACE, "--wait=false", "--ignore-not-found")
    kubectl.run("delete", "clusterrolebinding", "velero", "--ignore-not-found")
    kubectl.run("delete", "crd", "-l", "component=velero", "--wait=false", "--ignore-not-found")
    # The next install must not meet a namespace still terminating (it refuses new objects).
    testing.eventually(
        lambda: velero_gone(kubectl), timeout=120, what="Velero's CRDs and namespace to be gone"
    )


def velero_gone(kubectl: testing.Kubectl) -> bool:
    """No Velero CRD and no Velero namespace left."""
    crds = kubectl.json("get", "crd", "-l", "component=velero")["items"]
    return not crds and kubectl.get("namespace", velero.NAMESPACE) is None


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
            lambda: phase_of(server, kubectl, "backupstoragelocation", "default") == "Available",
            timeout=60,
            what=f"Velero's storage location on {plane.name} to be Available",
        )
    except BaseException:
        server.stop()
        raise
    return server


def phase_of(
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
        lambda: (phase := phase_of(server, kubectl, kind, name)) in FINISHED and phase,
        timeout=90,
        what=f"{kind} {name} to finish",
    )


def backed_up_tenant(name: str, level: int, display: str = "备份测试") -> Manifest:
    """A county CloudTenant of two namespaces (web, db) at security `level`, for backups."""
    return {
        "apiVersion": "govcloud.io/v1alpha1",
        "kind": "CloudTenant",
        "metadata": {"name": name, "annotations": {"govcloud.io/confirm-delete": name}},
        "spec": {
            "displayName": f"{display} {name}",
            "unit": {"code": name[:30], "tier": "county"},
            "contacts": [{"name": "测试员", "email": "test@example.gov.cn"}],
            "admins": {"groups": [f"{name}-admins"]},
            "securityLevel": level,
            "namespaces": [{"name": "web"}, {"name": "db"}],
            "deletionPolicy": "Delete",
        },
    }


def resource_list(store: objectstore.ObjectStore, backup: str) -> dict[str, list[str]]:
    """What Velero says the backup holds (its resource list in the bucket), by kind."""
    s3 = boto3.client(
        "s3",
        endpoint_url=store.url,
        region_name=objectstore.REGION,
        aws_access_key_id=store.access_key,
        aws_secret_access_key=store.secret_key,
    )
    key = f"backups/{backup}/{backup}-resource-list.json.gz"
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    found: dict[str, list[str]] = json.loads(gzip.decompress(body))
    return found
