"""The chart as the integration tests use it: rendered with helm, or installed into the hub."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from govcloud.dev import binaries, cluster, testing

REPO_ROOT = testing.REPO_ROOT
CHART = REPO_ROOT / "charts" / "govcloud-operator"
KUBE_VERSION = binaries.kubernetes_version()

Manifest = dict[str, Any]


def helm(*args: str, kubeconfig: Path | None = None) -> subprocess.CompletedProcess[str]:
    home = REPO_ROOT / ".cache" / "helm"
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    argv = [str(binaries.ensure("helm")), *args]
    if kubeconfig is not None:
        argv.append(f"--kubeconfig={kubeconfig}")
    return subprocess.run(argv, capture_output=True, text=True, env=env, check=False, timeout=300)


def render(*extra: str, namespace: str = "govcloud-system") -> list[Manifest]:
    result = helm(
        "template", "govcloud", str(CHART), "-n", namespace, f"--kube-version={KUBE_VERSION}",
        *extra,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def of_kind(manifests: Sequence[Manifest], kind: str) -> list[Manifest]:
    return [item for item in manifests if item["kind"] == kind]


def one(manifests: Sequence[Manifest], kind: str) -> Manifest:
    found = of_kind(manifests, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


class Release:
    """The chart installed with helm into its own namespace of the hub (no operator pods)."""

    def __init__(self, hub: cluster.ControlPlane, kubectl: testing.Kubectl, *values: str) -> None:
        """`values`: more `helm install` arguments (`--set key=value`, ...)."""
        suffix = uuid.uuid4().hex[:6]
        self.values = values
        self.hub = hub
        self.kubectl = kubectl
        self.name = f"ct-{suffix}"
        self.namespace = f"chart-test-{suffix}"
        self.fullname = f"{self.name}-govcloud"
        self.lease = f"chart-test-{suffix}"
        self.user = f"system:serviceaccount:{self.namespace}:{self.fullname}"

    def install(self) -> subprocess.CompletedProcess[str]:
        # The platform namespace itself enforces Pod Security "restricted".
        self.kubectl("create", "namespace", self.namespace)
        self.kubectl(
            "label", "namespace", self.namespace, "pod-security.kubernetes.io/enforce=restricted"
        )
        return helm(
            "install", self.name, str(CHART), "-n", self.namespace,
            "--set", "replicaCount=0",
            "--set", f"leaderElection.leaseName={self.lease}",
            "--set", "dashboard.enabled=true",
            *self.values,
            "--wait", "--timeout=120s",
            kubeconfig=self.hub.kubeconfig,
        )  # fmt: skip

    def uninstall(self) -> None:
        helm("uninstall", self.name, "-n", self.namespace, "--wait", kubeconfig=self.hub.kubeconfig)
        self.kubectl.run("delete", "namespace", self.namespace, "--wait=false")

    def wait_for_guard(self) -> None:
        """Admission policies take effect a moment after they are created: wait for it."""
        testing.eventually(
            lambda: "ValidatingAdmissionPolicy" in self.kubectl.run(
                "create", "clusterrole", "guard-probe", "--verb=get", "--resource=namespaces",
                "--dry-run=server", f"--as={self.user}",
            ).stderr,
            timeout=30,
            what="the operator guard to take effect",
        )  # fmt: skip

    def can(self, *args: str) -> bool:
        result = self.kubectl.run("auth", "can-i", f"--as={self.user}", *args)
        assert result.stdout.strip() in {"yes", "no"}, result.stdout + result.stderr
        return result.stdout.strip() == "yes"


def installed_release(
    hub: cluster.ControlPlane, kubectl: testing.Kubectl, *values: str
) -> Iterator[Release]:
    """A module's release: installed, its admission policies in force, uninstalled at the end."""
    installed = Release(hub, kubectl, *values)
    result = installed.install()
    try:
        assert result.returncode == 0, result.stderr
        installed.wait_for_guard()
        yield installed
    finally:
        installed.uninstall()
