"""Integration fixtures: CRDs installed on the hub and the real operator running against it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from govcloud.dev import cluster, testing

REPO_ROOT = testing.REPO_ROOT


@pytest.fixture(scope="session")
def kubectl(hub: cluster.ControlPlane) -> testing.Kubectl:
    return testing.Kubectl(hub.kubeconfig)


@pytest.fixture(scope="session")
def crds(kubectl: testing.Kubectl) -> None:
    kubectl.apply_crds()


@pytest.fixture(scope="session")
def operator(hub: cluster.ControlPlane, crds: None) -> Iterator[testing.OperatorProcess]:
    """The operator as a real process, resyncing every 5 s so drift tests stay short."""
    process = testing.OperatorProcess(
        hub.kubeconfig,
        REPO_ROOT / ".cache" / "logs" / "operator-integration.log",
        env={"GOVCLOUD_RESYNC_SECONDS": "5", "GOVCLOUD_PLATFORM_NAMESPACES": "monitoring"},
    ).start()
    yield process
    process.stop()
