"""Leader election as a new user meets it: `--standalone` wins over the setting, and a Lease the
operator cannot use is said in the log (ERROR) and fails the health probe instead of a replica
that silently never acts."""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import _tenant_helpers as helpers
import pytest

from govcloud.dev import cluster, testing

pytestmark = pytest.mark.integration

LOGS = testing.REPO_ROOT / ".cache" / "logs"
# Short, so that the probe (which fails once the Lease has been unusable for a whole lease
# duration) answers within seconds.
SHORT_LEASE = {
    "GOVCLOUD_LEASE_DURATION_SECONDS": "3",
    "GOVCLOUD_LEASE_RENEW_DEADLINE_SECONDS": "2",
    "GOVCLOUD_LEASE_RETRY_PERIOD_SECONDS": "1",
}


@pytest.fixture
def missing_namespace(kubectl: testing.Kubectl) -> Iterator[str]:
    """A namespace name nobody has created (deleted afterwards if the test created it)."""
    name = f"no-lease-{uuid.uuid4().hex[:6]}"
    assert kubectl.get("namespace", name) is None
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false")


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
    hub: cluster.ControlPlane, kubectl: testing.Kubectl, missing_namespace: str, alone: None
) -> None:
    # Leader election on would never lead here (its Lease namespace does not exist): the
    # tenant becomes Active only because the flag turns election off.
    process = testing.OperatorProcess(
        hub.kubeconfig,
        LOGS / "operator-standalone-flag.log",
        env={
            "GOVCLOUD_STANDALONE": "false",
            "GOVCLOUD_LEASE_NAMESPACE": missing_namespace,
            "GOVCLOUD_RESYNC_SECONDS": "5",
        },
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


def test_a_lease_it_cannot_use_is_said_and_fails_the_health_probe(
    hub: cluster.ControlPlane, kubectl: testing.Kubectl, missing_namespace: str, alone: None
) -> None:
    port = testing.free_port()
    process = testing.OperatorProcess(
        hub.kubeconfig,
        LOGS / "operator-lease-unusable.log",
        env={
            "GOVCLOUD_STANDALONE": "false",
            "GOVCLOUD_LEASE_NAMESPACE": missing_namespace,
            "GOVCLOUD_LIVENESS_PORT": str(port),
            "GOVCLOUD_RESYNC_SECONDS": "5",
            **SHORT_LEASE,
        },
    ).start()
    tenants = helpers.Tenants(kubectl)
    try:
        name = helpers.unique("unled")
        tenants.create(name)
        problem = f'namespaces "{missing_namespace}" not found'
        testing.eventually(
            lambda: any(
                " ERROR " in line and problem in line and "Lease" in line
                for line in process.log_path.read_text().splitlines()
            ),
            timeout=30,
            what="an ERROR naming the Lease and the missing namespace",
        )
        testing.eventually(lambda: health(port) == 500, timeout=30, what="the health probe to fail")
        # It has been failing for a whole lease duration and more: nothing was reconciled.
        assert process.metric_value("govcloud_reconcile_total") == 0, process.log_tail()
        assert not (tenants.kubectl.get("cloudtenant", name) or {}).get("status")

        kubectl("create", "namespace", missing_namespace)
        testing.eventually(
            lambda: health(port) == 200, timeout=30, what="health once the Lease can be taken"
        )
        helpers.wait_phase(kubectl, name, "Active", timeout=60)
        lease = kubectl.get("lease", "govcloud-operator", missing_namespace)
        assert lease is not None
        assert lease["spec"]["holderIdentity"]
    finally:
        tenants.cleanup()
        process.stop()
