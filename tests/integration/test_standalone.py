"""Peering as a new user meets it: `--standalone` wins over the setting, and peering without its
CRD says so in the log and fails the health probe instead of pausing in silence."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import _tenant_helpers as helpers
import pytest

from govcloud.dev import cluster, testing

pytestmark = pytest.mark.integration

PEERING_CRD = "clusterkopfpeerings.kopf.dev"
PEERING_CRD_FILE = (
    testing.REPO_ROOT / "charts" / "govcloud-operator" / "crds" / f"{PEERING_CRD}.yaml"
)
LOGS = testing.REPO_ROOT / ".cache" / "logs"


@pytest.fixture
def no_peering_crd(kubectl: testing.Kubectl) -> Iterator[None]:
    """The hub without the ClusterKopfPeering CRD (put back afterwards if it was there)."""
    existed = kubectl.get("crd", PEERING_CRD) is not None
    if existed:
        kubectl("delete", "crd", PEERING_CRD, "--timeout=60s")
    yield
    if existed:
        kubectl("apply", "--server-side", "--force-conflicts", "-f", str(PEERING_CRD_FILE))
        kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", PEERING_CRD)


@pytest.fixture
def alone(operator: testing.OperatorProcess) -> Iterator[None]:
    """The session's operator stopped, so only the test's own operator acts."""
    operator.stop()
    try:
        yield
    finally:
        operator.start()


def health(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0


def test_the_standalone_flag_wins_over_the_setting(
    hub: cluster.ControlPlane, kubectl: testing.Kubectl, no_peering_crd: None, alone: None
) -> None:
    process = testing.OperatorProcess(
        hub.kubeconfig,
        LOGS / "operator-standalone-flag.log",
        env={"GOVCLOUD_STANDALONE": "false", "GOVCLOUD_RESYNC_SECONDS": "5"},
        args=("--standalone",),
    ).start()
    tenants = helpers.Tenants(kubectl)
    try:
        name = helpers.unique("alone")
        tenants.create(name)
        helpers.wait_phase(kubectl, name, "Active", timeout=60)
    finally:
        tenants.cleanup()
        process.stop()


def test_peering_without_its_crd_is_said_and_fails_the_health_probe(
    hub: cluster.ControlPlane, kubectl: testing.Kubectl, no_peering_crd: None, alone: None
) -> None:
    port = testing.free_port()
    process = testing.OperatorProcess(
        hub.kubeconfig,
        LOGS / "operator-no-peering-crd.log",
        env={"GOVCLOUD_STANDALONE": "false", "GOVCLOUD_LIVENESS_PORT": str(port)},
    ).start()
    try:
        testing.eventually(
            lambda: "the ClusterKopfPeering CRD is not installed" in process.log_path.read_text(),
            timeout=30,
            what="a log line saying the peering CRD is missing",
        )
        testing.eventually(lambda: health(port) == 500, timeout=30, what="the health probe to fail")
        kubectl("apply", "--server-side", "--force-conflicts", "-f", str(PEERING_CRD_FILE))
        kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", PEERING_CRD)
        testing.eventually(
            lambda: health(port) == 200, timeout=60, what="health once the CRD is installed"
        )
    finally:
        process.stop()
