"""A legacy app on a sub-center (a second real control plane) moves into a hub tenant."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator

import _tenant_helpers as helpers
import pytest
import test_migration as mig

from govcloud.dev import cluster, testing

pytestmark = pytest.mark.integration

crds = mig.crds
approvals = mig.approvals
world = mig.world


@pytest.fixture
def site(
    kubectl: testing.Kubectl, subcenter: cluster.ControlPlane, crds: None
) -> Iterator[tuple[str, testing.Kubectl]]:
    """A hosted SubCenter registered with a kubeconfig Secret, and kubectl for its cluster."""
    name = f"lujiang-{uuid.uuid4().hex[:5]}"
    kubectl.run("create", "namespace", "govcloud-system")
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": f"{name}-kubeconfig", "namespace": "govcloud-system"},
            "data": {"kubeconfig": base64.b64encode(subcenter.flat_kubeconfig().encode()).decode()},
        }
    )
    kubectl.apply(
        {
            "apiVersion": "govcloud.io/v1alpha1",
            "kind": "SubCenter",
            "metadata": {"name": name},
            "spec": {
                "displayName": "庐江县数据中心",
                "region": "庐江县",
                "tier": "county",
                "mode": "hosted",
                "retireBy": "2030-12-31",
                "maxSecurityLevel": 3,
                "kubeconfigSecretRef": {
                    "name": f"{name}-kubeconfig",
                    "namespace": "govcloud-system",
                },
            },
        }
    )
    yield name, testing.Kubectl(subcenter.kubeconfig)
    kubectl.run("delete", "subcenter", name, "--wait=false")


def test_a_granted_sub_center_app_moves_to_the_hub_and_stays_when_the_plan_goes(
    world: mig.World, site: tuple[str, testing.Kubectl]
) -> None:
    site_name, remote = site
    tenant = world.tenant("mig-site")
    target = f"{tenant}-apps"
    legacy = helpers.unique("legacy")
    remote.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": legacy,
                "annotations": {"govcloud.io/migration-grant": tenant},
            },
        }
    )
    for manifest in mig.legacy_app(legacy, 2, helpers.pod_spec()):
        remote.apply(manifest)
    mig.wait_available(remote, "permits", legacy)
    name = world.plan(
        target,
        legacy,
        target,
        source={
            "subCenter": site_name,
            "namespace": legacy,
            "kinds": ["ConfigMap", "Secret", "Service", "Deployment", "CronJob"],
        },
        approvalsRequired=[],
    )

    plan = mig.wait_phase(world.kubectl, target, name, "Completed", timeout=120)

    assert mig.replicas(remote, legacy) == (0, "2")
    assert mig.suspended(remote, legacy)
    mig.wait_available(world.kubectl, "permits", target)
    assert len(mig.planted(world.kubectl, target, plan)) == 5
    secret = world.kubectl.get("secret", "permits-db", target)
    assert secret is not None
    assert base64.b64decode(secret["data"]["password"]) == b"s3cret"

    # a Completed plan is not rolled back; deleting it keeps the app and clears the site's
    # bookkeeping (the scale-down stays)
    refused = world.kubectl.run(
        "patch", "migrationplan", name, "-n", target, "--type=merge",
        "-p", json.dumps({"spec": {"rollback": True}}),
    )  # fmt: skip
    assert "a Completed plan cannot be rolled back" in refused.stderr
    world.kubectl("delete", "migrationplan", name, "-n", target, "--timeout=120s")
    assert mig.replicas(remote, legacy) == (0, None)
    assert len(mig.planted(world.kubectl, target, plan)) == 5
    remote.run("delete", "namespace", legacy, "--wait=false")
