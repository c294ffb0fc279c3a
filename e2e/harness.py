"""The cluster the e2e scenarios run against: any cluster with the chart installed, or a fresh
local control plane where the chart is installed with helm and the operator runs out of
cluster with the chart's ServiceAccount token (its exact identity, so its exact RBAC).

Modes
-----
* ``GOVCLOUD_E2E_KUBECONFIG`` set: an existing cluster (kind in CI, or any other) where the
  chart is already installed and its Deployment runs the operator. ``GOVCLOUD_E2E_NAMESPACE``
  (default ``govcloud-system``) and ``GOVCLOUD_E2E_RELEASE`` (default ``govcloud``) name the
  installation.
* unset: a local control plane named ``e2e`` is started; ``helm install`` puts the chart in with
  ``replicaCount=0`` (kwok would fake the operator pods as Running without running anything),
  and the operator runs here as a process whose kubeconfig holds a token of the chart's
  ServiceAccount, with the environment the chart's Deployment would give it.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from govcloud.dev import binaries, cluster, testing

REPO_ROOT = testing.REPO_ROOT
CHART = REPO_ROOT / "charts" / "govcloud-operator"
EXAMPLES = REPO_ROOT / "examples"
STATE_ROOT = REPO_ROOT / ".cache" / "clusters"
LOG_DIR = REPO_ROOT / ".cache" / "logs"
E2E_LABEL = "govcloud.io/e2e"
TOKEN_DURATION = "4h"

Manifest = dict[str, Any]


def fake_nodes(kubectl: testing.Kubectl) -> bool:
    """kwok's nodes (the local control plane) run no pod, no network plugin and no volume."""
    nodes = kubectl.json("get", "nodes")["items"]
    return any(
        cluster.KWOK_NODE_ANNOTATION in (node["metadata"].get("annotations") or {})
        for node in nodes
    )


def helm(*args: str, kubeconfig: Path) -> str:
    home = REPO_ROOT / ".cache" / "helm"
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    result = subprocess.run(
        [str(binaries.ensure("helm")), *args, f"--kubeconfig={kubeconfig}"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=600,
    )
    if result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


@dataclass
class Cloud:
    """The cluster under test and the installed operator."""

    kubectl: testing.Kubectl
    namespace: str
    release: str
    service_account: str
    deployment: str
    local: bool
    lease: str = "govcloud-operator"
    plane: cluster.ControlPlane | None = None
    operator: testing.OperatorProcess | None = None

    @property
    def user(self) -> str:
        """The operator's identity as the API server sees it."""
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"

    # -- the operator -----------------------------------------------------------------------

    def operator_log(self) -> str:
        if self.operator is not None:
            return self.operator.log_path.read_text(errors="replace")
        return self.kubectl(
            "logs", "-n", self.namespace, "-l", f"app.kubernetes.io/instance={self.release}",
            "--all-containers", "--prefix", "--tail=-1",
        )  # fmt: skip

    def lease_object(self) -> Manifest:
        """The leader-election Lease the replicas share (in the release namespace)."""
        found = self.kubectl.get("lease", self.lease, self.namespace)
        assert found is not None, f"no Lease {self.namespace}/{self.lease}"
        return found

    # -- tenants ----------------------------------------------------------------------------

    def example(self, file_name: str) -> Manifest:
        """An example manifest as shipped, marked as e2e's so leftovers can be found."""
        manifest: Manifest = yaml.safe_load((EXAMPLES / file_name).read_text())
        manifest["metadata"].setdefault("labels", {})[E2E_LABEL] = "true"
        return manifest

    def onboard(self, manifest: Manifest, timeout: float = 120.0) -> Manifest:
        """Apply a CloudTenant and wait until it is Active and Ready for its generation."""
        self.kubectl.apply(manifest)
        return self.wait_ready(manifest["metadata"]["name"], timeout)

    def wait_ready(self, name: str, timeout: float = 120.0) -> Manifest:
        def ready() -> Manifest | None:
            found = self.kubectl.get("cloudtenant", name)
            if found is None:
                return None
            status = found.get("status") or {}
            conditions = {item["type"]: item["status"] for item in status.get("conditions") or []}
            if (
                status.get("observedGeneration") == found["metadata"]["generation"]
                and status.get("phase") == "Active"
                and conditions.get("Ready") == "True"
            ):
                return found
            return None

        return testing.eventually(ready, timeout=timeout, what=f"CloudTenant {name} Active")

    def offboard(self, name: str) -> None:
        """Delete a tenant and whatever its Retain policy kept (e2e cleans up after itself)."""
        self.kubectl.run("delete", "cloudtenant", name, "--wait=false")
        testing.eventually(
            lambda: self.kubectl.get("cloudtenant", name) is None,
            timeout=120,
            what=f"CloudTenant {name} deleted",
        )
        self.kubectl.run(
            "delete", "namespace", "-l", f"govcloud.io/orphaned={name}", "--wait=false"
        )  # fmt: skip

    def remove_leftovers(self) -> None:
        """Tenants an interrupted earlier run left behind on a long-lived cluster."""
        found = self.kubectl.json("get", "cloudtenants", "-l", f"{E2E_LABEL}=true")
        for item in found["items"]:
            self.offboard(item["metadata"]["name"])

    def events_for(self, name: str) -> list[Manifest]:
        found = self.kubectl.json(
            "get", "events", "-A",
            "--field-selector", f"involvedObject.kind=CloudTenant,involvedObject.name={name}",
        )  # fmt: skip
        items: list[Manifest] = found["items"]
        return items


# -- bring-up ------------------------------------------------------------------------------


def external() -> Cloud:
    """The cluster named by GOVCLOUD_E2E_KUBECONFIG, where the chart runs the operator."""
    kubeconfig = Path(os.environ["GOVCLOUD_E2E_KUBECONFIG"]).expanduser()
    namespace = os.environ.get("GOVCLOUD_E2E_NAMESPACE", "govcloud-system")
    release = os.environ.get("GOVCLOUD_E2E_RELEASE", "govcloud")
    kubectl = testing.Kubectl(kubeconfig)
    deployments = kubectl.json(
        "get", "deployments", "-n", namespace, "-l", f"app.kubernetes.io/instance={release}"
    )["items"]
    if len(deployments) != 1:
        raise AssertionError(
            f"expected the chart's Deployment (release {release!r}) in namespace {namespace!r}, "
            f"found {len(deployments)}; install it with helm first (see e2e/README.md)"
        )
    deployment = deployments[0]
    kubectl(
        "rollout", "status", "-n", namespace, f"deployment/{deployment['metadata']['name']}",
        "--timeout=300s",
    )  # fmt: skip
    return Cloud(
        kubectl=kubectl,
        namespace=namespace,
        release=release,
        service_account=deployment["spec"]["template"]["spec"]["serviceAccountName"],
        deployment=deployment["metadata"]["name"],
        local=False,
        lease=lease_name(deployment["spec"]["template"]["spec"]["containers"][0]),
    )


def local() -> Cloud:
    """A fresh local control plane with the chart installed and the operator running as its
    ServiceAccount."""
    plane = cluster.ControlPlane(name="e2e", state_root=STATE_ROOT, log=lambda _: None)
    plane.start()
    try:
        return _install_locally(plane)
    except BaseException:
        plane.stop()
        raise


def _install_locally(plane: cluster.ControlPlane) -> Cloud:
    namespace, release = "govcloud-system", "govcloud"
    kubectl = testing.Kubectl(plane.kubeconfig)
    # The platform's namespace enforces Pod Security "restricted", as a careful platform would.
    kubectl("create", "namespace", namespace)
    kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    helm(
        "install", release, str(CHART), "-n", namespace,
        "--set", "replicaCount=0",
        "--wait", "--timeout=180s",
        kubeconfig=plane.kubeconfig,
    )  # fmt: skip
    manifests = [
        item
        for item in yaml.safe_load_all(
            helm("get", "manifest", release, "-n", namespace, kubeconfig=plane.kubeconfig)
        )
        if item
    ]
    deployment = next(item for item in manifests if item["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    service_account = pod["serviceAccountName"]
    token = kubectl(
        "create", "token", service_account, "-n", namespace, f"--duration={TOKEN_DURATION}"
    ).strip()
    sa_kubeconfig = plane.state_dir / "operator-serviceaccount.kubeconfig"
    _write_token_kubeconfig(plane.kubeconfig, sa_kubeconfig, token)
    operator = testing.OperatorProcess(
        sa_kubeconfig,
        LOG_DIR / "operator-e2e.log",
        env=chart_environment(pod["containers"][0]),
    )
    with contextlib.suppress(FileNotFoundError):
        operator.log_path.unlink()
    cloud = Cloud(
        kubectl=kubectl,
        namespace=namespace,
        release=release,
        service_account=service_account,
        deployment=deployment["metadata"]["name"],
        local=True,
        lease=lease_name(pod["containers"][0]),
        plane=plane,
        operator=operator,
    )
    operator.start()
    return cloud


# Where the process listens: OperatorProcess picks a free loopback port for /metrics and
# turns /healthz off, instead of the pod's 0.0.0.0:8080 and :8081.
LISTENERS = {"GOVCLOUD_METRICS_HOST", "GOVCLOUD_METRICS_PORT", "GOVCLOUD_LIVENESS_PORT"}


def chart_environment(container: Manifest) -> dict[str, str]:
    """The environment the chart's Deployment gives the operator, for a process on this host."""
    env: dict[str, str] = {}
    for item in container.get("env") or []:
        if item["name"] in LISTENERS:
            continue
        if "value" in item:
            env[item["name"]] = str(item["value"])
        elif item["name"] == "GOVCLOUD_IDENTITY":  # the pod name (downward API) in a cluster
            env["GOVCLOUD_IDENTITY"] = f"e2e-local-{uuid.uuid4().hex[:5]}"
    assert env.get("GOVCLOUD_STANDALONE") == "false", "the chart runs leader election"
    assert env.get("GOVCLOUD_IDENTITY"), "the chart names each replica in the Lease"
    return env


def lease_name(container: Manifest) -> str:
    """The Lease the chart's Deployment names (GOVCLOUD_LEASE_NAME)."""
    env = {item["name"]: item.get("value") for item in container.get("env") or []}
    name = env.get("GOVCLOUD_LEASE_NAME")
    assert name, "the chart's Deployment sets GOVCLOUD_LEASE_NAME"
    return str(name)


def _write_token_kubeconfig(admin: Path, target: Path, token: str) -> None:
    """The admin kubeconfig's cluster, with the ServiceAccount token as the only user."""
    config = yaml.safe_load(admin.read_text())
    context = config["contexts"][0]
    context["context"]["user"] = "operator"
    config["users"] = [{"name": "operator", "user": {"token": token}}]
    config["contexts"] = [context]
    target.write_text(yaml.safe_dump(config))
    target.chmod(0o600)


def start() -> Cloud:
    cloud = external() if os.environ.get("GOVCLOUD_E2E_KUBECONFIG") else local()
    try:
        cloud.remove_leftovers()
    except BaseException:
        stop(cloud)
        raise
    return cloud


def stop(cloud: Cloud) -> None:
    try:
        if cloud.operator is not None:
            cloud.operator.stop()
    finally:
        if cloud.plane is not None:
            cloud.plane.stop()


def audit_writes(cloud: Cloud) -> list[dict[str, Any]]:
    """Write requests the API server recorded (local control plane only)."""
    assert cloud.plane is not None
    return [event for event in cloud.plane.audit_events() if isinstance(event.get("user"), dict)]


def dump(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)[:4000]
