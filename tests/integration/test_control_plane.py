"""The local control plane is a real Kubernetes: CRDs, quota admission, namespace GC, scheduling."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

import pytest
import yaml

from govcloud.dev import binaries, cluster

pytestmark = pytest.mark.integration

T = TypeVar("T")


def eventually(check: Callable[[], T | None], timeout: float = 60.0, what: str = "") -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or check}")
        time.sleep(0.25)


def kubectl(plane: cluster.ControlPlane, *args: str, stdin: str | None = None) -> str:
    return plane.kubectl(*args, input_text=stdin)


def kubectl_result(plane: cluster.ControlPlane, *args: str, stdin: str | None = None):  # type: ignore[no-untyped-def]
    return subprocess.run(
        ["kubectl", f"--kubeconfig={plane.kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.govcloud.io"},
    "spec": {
        "group": "example.govcloud.io",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {"size": {"type": "integer", "minimum": 1}},
                            },
                            "status": {
                                "type": "object",
                                "properties": {"phase": {"type": "string"}},
                            },
                        },
                    }
                },
            }
        ],
    },
}


def test_the_api_server_serves_the_pinned_kubernetes_version(hub: cluster.ControlPlane) -> None:
    version = json.loads(kubectl(hub, "version", "-o", "json"))["serverVersion"]
    assert version["gitVersion"] == binaries.kubernetes_version()


def test_rbac_authorization_is_on(hub: cluster.ControlPlane) -> None:
    allowed = kubectl_result(hub, "auth", "can-i", "list", "secrets", "--as=nobody")
    assert allowed.stdout.strip() == "no"


def test_a_crd_with_status_subresource_serves_objects_and_status(hub: cluster.ControlPlane) -> None:
    kubectl(hub, "apply", "-f", "-", stdin=json.dumps(WIDGET_CRD))
    kubectl(hub, "wait", "--for=condition=Established", "crd/widgets.example.govcloud.io")
    name = unique("w")
    widget = {
        "apiVersion": "example.govcloud.io/v1",
        "kind": "Widget",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"size": 3},
    }
    eventually(
        lambda: kubectl_result(hub, "create", "-f", "-", stdin=json.dumps(widget)).returncode == 0,
        what="the new CRD to accept objects",
    )
    rejected = kubectl_result(
        hub, "create", "-f", "-", stdin=json.dumps({**widget, "spec": {"size": 0}})
    )
    assert rejected.returncode != 0
    assert "spec.size" in rejected.stderr
    kubectl(
        hub,
        "patch",
        "widget",
        name,
        "-n",
        "default",
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status": {"phase": "Ready"}}',
    )
    stored = json.loads(kubectl(hub, "get", "widget", name, "-n", "default", "-o", "json"))
    assert stored["status"] == {"phase": "Ready"}
    assert stored["spec"] == {"size": 3}
    kubectl(hub, "delete", "widget", name, "-n", "default")


def test_quota_admission_rejects_an_object_over_quota(hub: cluster.ControlPlane) -> None:
    namespace = unique("quota")
    kubectl(hub, "create", "namespace", namespace)
    kubectl(hub, "create", "quota", "q", "-n", namespace, "--hard=configmaps=2")
    # Until kube-root-ca.crt is published and counted (later under load), two more would fit.
    eventually(
        lambda: (
            json.loads(kubectl(hub, "get", "quota", "q", "-n", namespace, "-o", "json"))
            .get("status", {})
            .get("used", {})
            .get("configmaps")
            == "1"
        ),
        what="the quota controller to count kube-root-ca.crt",
    )
    # kube-root-ca.crt is already there: one more fits, the next does not.
    kubectl(hub, "create", "configmap", "one", "-n", namespace)
    over = kubectl_result(hub, "create", "configmap", "two", "-n", namespace)
    assert over.returncode != 0
    assert "exceeded quota" in over.stderr
    kubectl(hub, "delete", "namespace", namespace, "--wait=false")


def test_the_namespace_controller_removes_a_deleted_namespace(hub: cluster.ControlPlane) -> None:
    namespace = unique("gone")
    kubectl(hub, "create", "namespace", namespace)
    kubectl(hub, "create", "configmap", "data", "-n", namespace)
    kubectl(hub, "delete", "namespace", namespace, "--wait=false")
    eventually(
        lambda: kubectl_result(hub, "get", "namespace", namespace).returncode != 0,
        what=f"namespace {namespace} to be removed",
    )


def test_a_deployment_becomes_ready_on_a_kwok_node(hub: cluster.ControlPlane) -> None:
    namespace = unique("apps")
    kubectl(hub, "create", "namespace", namespace)
    eventually(
        lambda: kubectl_result(hub, "get", "sa", "default", "-n", namespace).returncode == 0,
        what="the default service account",
    )
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
            },
        },
    }
    kubectl(hub, "apply", "-f", "-", stdin=yaml.safe_dump(deployment))

    def ready_replicas() -> bool:
        status = json.loads(
            kubectl(hub, "get", "deployment", "web", "-n", namespace, "-o", "json")
        ).get("status", {})
        return status.get("readyReplicas") == 2

    eventually(ready_replicas, timeout=90, what="2 ready replicas")
    pods = json.loads(kubectl(hub, "get", "pods", "-n", namespace, "-o", "json"))["items"]
    assert {pod["spec"]["nodeName"] for pod in pods} <= {"kwok-0"}
    kubectl(hub, "delete", "namespace", namespace, "--wait=false")


def test_the_audit_log_records_writes(hub: cluster.ControlPlane) -> None:
    name = unique("audited")
    kubectl(hub, "create", "configmap", name, "-n", "default")
    eventually(
        lambda: any(
            event.get("objectRef", {}).get("name") == name  # type: ignore[union-attr]
            for event in hub.audit_events()
        ),
        what="the audit event of a configmap create",
    )
    kubectl(hub, "delete", "configmap", name, "-n", "default")
