"""Volume data backed up and restored by Velero (issue #17, item 4), where pods and volumes are
real (the kind workflow, .github/workflows/e2e.yml): Velero installed in its pods with its node
agent, writing to an S3-compatible server (moto, in a pod of the cluster); a file a department's
pod wrote to its volume is backed up by file system, the namespace is deleted with the volume,
and the restore brings the same bytes back. The volume is an emptyDir: Velero's file-system
backup reads volumes through the kubelet's pod folders, which kind's default local-path
(hostPath) PersistentVolumes are not in; CSI volumes and snapshots need a CSI driver, which kind
does not ship, and are not proven here either (docs/backup.md).

On the local control plane (kwok nodes: no pod runs, no volume is provisioned, no node agent)
this is skipped with its reason; there, `tests/integration/test_velero_*.py` prove backups and
restores of API objects with the real Velero server.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import harness
from govcloud.dev import objectstore, testing, velero

STORE_NAMESPACE = "govcloud-objectstore"
# moto's server image, the same major version as the moto the local tests run (pyproject).
MOTO_IMAGE = "motoserver/moto:5.1.0"
BUSYBOX = "busybox:1.36.1"
BUCKET = "govcloud-volumes"
FINISHED = ("Completed", "PartiallyFailed", "Failed", "FailedValidation")
PULL_TIMEOUT = 300.0  # a real cluster pulls Velero's, its plugin's and moto's images first

Manifest = dict[str, Any]


@pytest.fixture(scope="module")
def real(kubectl: testing.Kubectl) -> testing.Kubectl:
    if harness.fake_nodes(kubectl):
        pytest.skip(
            "kwok nodes run no pod, provision no volume and run no Velero node agent: volume"
            " data is backed up and restored on kind (.github/workflows/e2e.yml); API objects"
            " are proven with the real Velero server in tests/integration/test_velero_*.py"
        )
    return kubectl


def moto(namespace: str) -> list[Manifest]:
    labels = {"app": "moto"}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "moto", "namespace": namespace},
         "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels},
                               "spec": {"containers": [{"name": "moto", "image": MOTO_IMAGE,
                                                        "ports": [{"containerPort": 5000}]}]}}}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "moto", "namespace": namespace},
         "spec": {"selector": labels, "ports": [{"port": 5000, "targetPort": 5000}]}},
    ]  # fmt: skip


def writer(namespace: str, token: str) -> list[Manifest]:
    """A department's app: a pod that wrote `token` to its volume (once) and keeps running."""
    return [
        {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": "records", "namespace": namespace},
         "spec": {"containers": [{
             "name": "app", "image": BUSYBOX,
             "command": ["sh", "-c",
                         f"[ -f /data/token ] || echo {token} > /data/token; sleep 3600"],
             "volumeMounts": [{"name": "records", "mountPath": "/data"}]}],
             "volumes": [{"name": "records", "emptyDir": {}}]}},
    ]  # fmt: skip


def ready(kubectl: testing.Kubectl, kind: str, name: str, namespace: str) -> bool:
    found = kubectl.get(kind, name, namespace) or {}
    status = found.get("status") or {}
    if kind == "daemonset":
        wanted = status.get("desiredNumberScheduled") or 0
        return bool(wanted) and status.get("numberReady") == wanted
    if kind == "pod":
        return any(
            item.get("type") == "Ready" and item.get("status") == "True"
            for item in status.get("conditions") or []
        )
    return bool(status.get("readyReplicas"))


def phase(kubectl: testing.Kubectl, kind: str, name: str) -> str | None:
    found = kubectl.get(kind, name, velero.NAMESPACE) or {}
    value = (found.get("status") or {}).get("phase")
    return str(value) if value else None


def finished(kubectl: testing.Kubectl, kind: str, name: str) -> str:
    return testing.eventually(
        lambda: (found := phase(kubectl, kind, name)) in FINISHED and found,
        timeout=PULL_TIMEOUT,
        what=f"Velero's {kind} {name} to finish",
    )


@pytest.fixture(scope="module")
def installed(real: testing.Kubectl) -> Iterator[testing.Kubectl]:
    """moto in the cluster with the bucket, and Velero with its node agent pointing at it."""
    kubectl = real
    for manifest in moto(STORE_NAMESPACE):
        kubectl.apply(manifest)
    try:
        testing.eventually(
            lambda: ready(kubectl, "deployment", "moto", STORE_NAMESPACE),
            timeout=PULL_TIMEOUT,
            what="the object store (moto) to be ready",
        )
        kubectl(
            "exec", "-n", STORE_NAMESPACE, "deploy/moto", "--", "python", "-c",
            "import urllib.request as u;"
            f" u.urlopen(u.Request('http://127.0.0.1:5000/{BUCKET}', method='PUT'))",
        )  # fmt: skip
        # Random keys (moto takes any): they go only into Velero's Secret.
        store = objectstore.ObjectStore(
            testing.REPO_ROOT / ".cache" / "logs" / "unused.log",
            access_key=f"GOVCLOUD{secrets.token_hex(6).upper()}",
        )
        items = velero.install_manifests(
            kubectl.kubeconfig,
            store,
            BUCKET,
            in_cluster_url=f"http://moto.{STORE_NAMESPACE}.svc:5000",
        )
        crds = [item for item in items if item["kind"] == "CustomResourceDefinition"]
        kubectl.apply({"apiVersion": "v1", "kind": "List", "items": crds})
        kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "-l",
                "component=velero")  # fmt: skip
        rest = [item for item in items if item["kind"] != "CustomResourceDefinition"]
        kubectl.apply({"apiVersion": "v1", "kind": "List", "items": rest})
        for kind, name in (("deployment", "velero"), ("daemonset", "node-agent")):
            testing.eventually(
                lambda kind=kind, name=name: ready(kubectl, kind, name, velero.NAMESPACE),
                timeout=PULL_TIMEOUT,
                what=f"Velero's {kind} {name} to be ready",
            )
        testing.eventually(
            lambda: phase(kubectl, "backupstoragelocation", "default") == "Available",
            timeout=120,
            what="Velero's storage location on moto to be Available",
        )
        yield kubectl
    finally:
        kubectl.run("delete", "namespace", velero.NAMESPACE, "--wait=false", "--ignore-not-found")
        kubectl.run("delete", "clusterrolebinding", "velero", "--ignore-not-found")
        kubectl.run("delete", "crd", "-l", "component=velero", "--wait=false")
        kubectl.run("delete", "namespace", STORE_NAMESPACE, "--wait=false", "--ignore-not-found")


def test_a_file_on_a_departments_volume_comes_back_byte_for_byte(
    installed: testing.Kubectl,
) -> None:
    kubectl = installed
    namespace = f"vol-{uuid.uuid4().hex[:6]}"
    token = secrets.token_hex(16)
    backup, restore = f"{namespace}-backup", f"{namespace}-restore"
    kubectl("create", "namespace", namespace)
    try:
        for manifest in writer(namespace, token):
            kubectl.apply(manifest)
        testing.eventually(
            lambda: ready(kubectl, "pod", "records", namespace),
            timeout=PULL_TIMEOUT,
            what="the department's pod on its volume",
        )
        read = ["exec", "-n", namespace, "records", "--", "cat", "/data/token"]
        assert kubectl(*read).strip() == token

        # Backed up by file system (the node agent), as the operator's Schedules ask by default.
        kubectl.apply(
            {"apiVersion": "velero.io/v1", "kind": "Backup",
             "metadata": {"name": backup, "namespace": velero.NAMESPACE},
             "spec": {"includedNamespaces": [namespace], "defaultVolumesToFsBackup": True,
                      "snapshotVolumes": False, "ttl": "1h0m0s"}}
        )  # fmt: skip
        assert finished(kubectl, "backup", backup) == "Completed", kubectl(
            "get", "podvolumebackups", "-n", velero.NAMESPACE, "-o", "yaml"
        )
        volumes = kubectl.json(
            "get", "podvolumebackups", "-n", velero.NAMESPACE,
            "-l", f"velero.io/backup-name={backup}",
        )["items"]  # fmt: skip
        assert [item["status"]["phase"] for item in volumes] == ["Completed"], volumes

        # The department's namespace and its volume are lost.
        kubectl("delete", "namespace", namespace, "--timeout=180s")

        kubectl.apply(
            {"apiVersion": "velero.io/v1", "kind": "Restore",
             "metadata": {"name": restore, "namespace": velero.NAMESPACE},
             "spec": {"backupName": backup, "restorePVs": True}}
        )  # fmt: skip
        assert finished(kubectl, "restore", restore) == "Completed", kubectl(
            "get", "podvolumerestores", "-n", velero.NAMESPACE, "-o", "yaml"
        )
        testing.eventually(
            lambda: ready(kubectl, "pod", "records", namespace),
            timeout=PULL_TIMEOUT,
            what="the restored pod on its restored volume",
        )
        assert kubectl(*read).strip() == token
    finally:
        kubectl.run("delete", "namespace", namespace, "--wait=false", "--ignore-not-found")
