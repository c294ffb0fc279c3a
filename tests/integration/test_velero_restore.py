"""Velero, the real parts (issue 17, item 4): the pinned `velero server` and its AWS plugin back
up a department's namespace on the hub into a bucket of a real S3-compatible server (moto), and
a second Velero on another control plane restores it from that bucket; the restored objects
equal the originals. Only API objects: volume data needs a node agent (the kind workflow)."""

from __future__ import annotations

from collections.abc import Iterator

import _tenant_helpers as helpers
import _velero_helpers as vh
import pytest

from govcloud.dev import cluster, objectstore, testing, velero

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def store() -> Iterator[objectstore.ObjectStore]:
    with vh.object_store() as started:
        yield started


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
        for manifest in vh.department(namespace):
            kubectl.apply(manifest)
        originals = {
            (item["kind"], item["metadata"]["name"]): kubectl.get(
                item["kind"].lower(), item["metadata"]["name"], namespace
            )
            for item in vh.department(namespace)
        }
        hub_server = vh.running_velero(hub, store, read_only=False)
        kubectl.apply(
            {"apiVersion": "velero.io/v1", "kind": "Backup",
             "metadata": {"name": backup, "namespace": velero.NAMESPACE},
             "spec": {"includedNamespaces": [namespace], "snapshotVolumes": False,
                      "ttl": "720h0m0s"}}
        )  # fmt: skip
        assert vh.finished(hub_server, kubectl, "backup", backup) == "Completed"
        written = store.keys(vh.BUCKET, f"backups/{backup}/")
        assert f"backups/{backup}/{backup}.tar.gz" in written, written
        hub_server.stop()  # one Velero server per machine: its controller manager binds :8080

        site_server = vh.running_velero(subcenter, store, read_only=True)
        testing.eventually(
            lambda: site_kubectl.get("backup", backup, velero.NAMESPACE),
            timeout=vh.SYNC_TIMEOUT,
            what="the hub's backup to be synced from the bucket to the other cluster",
        )
        restore = f"restore-{namespace}"
        site_kubectl.apply(
            {"apiVersion": "velero.io/v1", "kind": "Restore",
             "metadata": {"name": restore, "namespace": velero.NAMESPACE},
             "spec": {"backupName": backup}}
        )  # fmt: skip
        phase = vh.finished(site_server, site_kubectl, "restore", restore)
        assert phase == "Completed", (phase, site_server.log_tail())
        for (kind, name), original in originals.items():
            assert original is not None
            restored = site_kubectl.get(kind.lower(), name, namespace)
            assert restored is not None, f"{kind} {name} was not restored"
            assert vh.comparable(kind, restored) == vh.comparable(kind, original), kind
    finally:
        for server in (hub_server, site_server):
            if server is not None:
                server.stop()
        kubectl.run("delete", "namespace", namespace, "--wait=false")
        site_kubectl.run("delete", "namespace", namespace, "--wait=false", "--ignore-not-found")
        vh.uninstall(kubectl)
        vh.uninstall(site_kubectl)
