"""The tests' direct writes leave what kubectl's commands leave, and answer as kubectl does."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from govcloud.dev import cluster, testing, writes

pytestmark = pytest.mark.integration


def real_kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        ["kubectl", f"--kubeconfig={kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout


@pytest.fixture
def namespace(hub: cluster.ControlPlane) -> Iterator[str]:
    name = f"writes-{uuid.uuid4().hex[:6]}"
    direct = testing.Kubectl(hub.kubeconfig).run("create", "namespace", name)
    assert direct.returncode == 0, direct.stderr
    yield name
    real_kubectl(hub.kubeconfig, "delete", "namespace", name, "--wait=false")


def config_map(name: str, namespace: str, **data: str) -> str:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}
    return json.dumps({**body, "metadata": {"name": name, "namespace": namespace}})


def test_the_common_forms_are_carried_out_without_kubectl(
    hub: cluster.ControlPlane, namespace: str
) -> None:
    reader = testing.Kubectl(hub.kubeconfig)._reader()
    assert reader is not None
    for args, stdin in (
        (("apply", "-f", "-"), config_map("a", namespace, x="1")),
        (("label", "configmap", "a", "-n", namespace, "team=a"), None),
        (("annotate", "configmap", "a", "-n", namespace, "note=x", "--overwrite"), None),
        (("patch", "configmap", "a", "-n", namespace, "--type=merge", "-p", "{}"), None),
        (("delete", "configmap", "a", "-n", namespace, "--wait=false"), None),
    ):
        assert writes.run(reader, args, stdin) is not None, args
    # An apply that would update an object is kubectl's own three-way merge.
    kubectl = testing.Kubectl(hub.kubeconfig)
    kubectl("apply", "-f", "-", stdin=config_map("b", namespace, x="1"))
    assert writes.run(reader, ("apply", "-f", "-"), config_map("b", namespace, x="2")) is None
    assert writes.run(reader, ("delete", "configmap", "-l", "x=y"), None) is None


def test_direct_writes_leave_what_kubectl_leaves(hub: cluster.ControlPlane, namespace: str) -> None:
    kubectl = testing.Kubectl(hub.kubeconfig)
    kubectl("apply", "-f", "-", stdin=config_map("direct", namespace, x="1"))
    real_kubectl(hub.kubeconfig, "apply", "-f", "-", stdin=config_map("real", namespace, x="1"))
    for name in ("direct", "real"):
        kubectl("label", "configmap", name, "-n", namespace, "team=a", "gone=yes")
        kubectl("label", "configmap", name, "-n", namespace, "gone-")
        kubectl("annotate", "configmap", name, "-n", namespace, "note=x")
        kubectl(
            "patch", "configmap", name, "-n", namespace, "--type=merge", "-p", '{"data":{"y":"2"}}'
        )
    kubectl("apply", "-f", "-", stdin=config_map("direct", namespace, x="3"))  # kubectl's update
    real_kubectl(hub.kubeconfig, "apply", "-f", "-", stdin=config_map("real", namespace, x="3"))

    direct = kubectl.get("configmap", "direct", namespace)
    real = kubectl.get("configmap", "real", namespace)
    assert direct is not None
    assert real is not None
    assert direct["data"] == real["data"] == {"x": "3", "y": "2"}
    assert direct["metadata"]["labels"] == real["metadata"]["labels"] == {"team": "a"}
    for found in (direct, real):
        annotations = found["metadata"]["annotations"]
        assert annotations["note"] == "x"
        applied = json.loads(annotations[writes.LAST_APPLIED])
        assert applied["data"] == {"x": "3"}


def test_refusals_read_as_kubectl_prints_them(hub: cluster.ControlPlane, namespace: str) -> None:
    kubectl = testing.Kubectl(hub.kubeconfig)
    kubectl("apply", "-f", "-", stdin=config_map("a", namespace, x="1"))
    kubectl("label", "configmap", "a", "-n", namespace, "team=a")

    clash = kubectl.run("label", "configmap", "a", "-n", namespace, "team=b")
    missing = kubectl.run("delete", "configmap", "nothing", "-n", namespace, "--wait=false")
    invalid = kubectl.run("apply", "-f", "-", stdin=config_map("Not_Valid", namespace, x="1"))

    assert clash.returncode == 1
    assert "'team' already has a value (a), and --overwrite is false" in clash.stderr
    assert missing.returncode == 1
    assert 'Error from server (NotFound): configmaps "nothing" not found' in missing.stderr
    assert invalid.returncode == 1
    assert invalid.stderr.startswith('Error from server (Invalid): error when creating "STDIN"')
    assert (
        kubectl.run(
            "delete", "configmap", "nothing", "-n", namespace, "--ignore-not-found"
        ).returncode
        == 0
    )


def test_a_delete_waits_until_the_object_is_gone(hub: cluster.ControlPlane) -> None:
    kubectl = testing.Kubectl(hub.kubeconfig)
    name = f"writes-gone-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)

    kubectl("delete", "namespace", name, "--timeout=60s")

    assert kubectl.get("namespace", name) is None
