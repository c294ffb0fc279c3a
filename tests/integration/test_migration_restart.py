"""MigrationPlan restart safety (issue 7, item 7): the operator is killed *inside* each stage.

Where a stage is one pass (assess) the kill lands between its status write and the next stage;
where a stage writes many objects (copy, cutover) the operator runs with the testing-only
GOVCLOUD_MIGRATION_WRITE_PAUSE_SECONDS, so the kill lands after some objects and before the
others; Verifying is held by a real condition: the copies' pods need a node label that is
taken away, and given back once the operator has been killed and restarted.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import _tenant_helpers as helpers
import pytest
import test_migration as mig

from govcloud.dev import testing

pytestmark = pytest.mark.integration

crds = mig.crds
approvals = mig.approvals
world = mig.world

Manifest = dict[str, Any]

PAUSE_SETTING = "GOVCLOUD_MIGRATION_WRITE_PAUSE_SECONDS"
PAUSE = "0.8"
DEPLOYMENTS = {"api": 3, "web": 2, "worker": 1}  # cut over in this order (the list order)
CONFIGMAPS = [f"settings-{index}" for index in range(4)]
MOVED = sorted(
    [f"ConfigMap/{name}" for name in CONFIGMAPS]
    + [f"Deployment/{name}" for name in DEPLOYMENTS]
    + ["Secret/app-db", "Service/web", "CronJob/nightly"]
)


@pytest.fixture(scope="module")
def paused(operator: testing.OperatorProcess) -> Iterator[testing.OperatorProcess]:
    """The session's operator, restarted with a pause after each object a stage writes."""
    operator.stop()
    operator.env[PAUSE_SETTING] = PAUSE
    operator.start()
    yield operator
    operator.stop()
    operator.env.pop(PAUSE_SETTING, None)
    operator.start()


@pytest.fixture
def pool(kubectl: testing.Kubectl) -> Iterator[tuple[str, str]]:
    """A label only the first kwok node can carry: pods that select it wait while it is off."""
    node = kubectl.json("get", "nodes", "-l", "type=kwok")["items"][0]["metadata"]["name"]
    key = f"pool.test.govcloud.io/mig-{uuid.uuid4().hex[:6]}"
    yield node, key
    kubectl.run("label", "node", node, f"{key}-")


def legacy_app(namespace: str, pod: Manifest) -> list[Manifest]:
    """Three Deployments, a Service, a Secret, four ConfigMaps and a CronJob: 10 objects."""
    meta = {"namespace": namespace, "labels": {"app": "portal"}}
    items: list[Manifest] = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, **meta},
         "data": {"KEY": name}}
        for name in CONFIGMAPS
    ]  # fmt: skip
    items.append(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "app-db", **meta},
            "stringData": {"password": "s3cret"},
        }
    )
    items.append(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", **meta},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
        }
    )
    for name, count in DEPLOYMENTS.items():
        deployment = helpers.deployment(name, namespace, count)
        deployment["metadata"]["labels"] = {"app": "portal"}
        deployment["spec"]["template"]["spec"] = pod
        items.append(deployment)
    items.append(
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": "nightly", **meta},
            "spec": {
                "schedule": "0 2 * * *",
                "jobTemplate": {"spec": {"template": {"spec": {**pod, "restartPolicy": "Never"}}}},
            },
        }
    )
    return items


def legacy(world: mig.World, tenant: str, pod: Manifest) -> str:
    namespace = helpers.unique("legacy-portal")
    world.tenants.track_namespace(namespace)
    world.kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": namespace,
                "annotations": {"govcloud.io/migration-grant": tenant},
            },
        }
    )
    for manifest in legacy_app(namespace, pod):
        world.kubectl.apply(manifest)
    for name in DEPLOYMENTS:
        mig.wait_available(world.kubectl, name, namespace)
    return namespace


def planted(world: mig.World, target: str, uid: str) -> list[str]:
    found = world.kubectl.json(
        "get", ",".join(mig.APP_KINDS), "-n", target, "-l", f"{mig.UID_LABEL}={uid}"
    )
    return sorted(f"{item['kind']}/{item['metadata']['name']}" for item in found["items"])


def source_replicas(world: mig.World, namespace: str) -> dict[str, tuple[int, str | None]]:
    """Each Deployment's replicas and remembered count, read in one call (a consistent view)."""
    found = world.kubectl.json("get", "deployments", "-n", namespace)["items"]
    return {
        item["metadata"]["name"]: (
            int(item["spec"]["replicas"]),
            (item["metadata"].get("annotations") or {}).get(mig.ORIGINAL),
        )
        for item in found
    }


def partly_scaled_down(world: mig.World, namespace: str) -> bool:
    scaled = [n for n, (count, _) in source_replicas(world, namespace).items() if count == 0]
    return 0 < len(scaled) < len(DEPLOYMENTS)


def stages(plan: Manifest) -> dict[str, Manifest]:
    found = (plan.get("status") or {}).get("stages") or []
    names = [item["name"] for item in found]
    assert len(names) == len(set(names)), f"a stage is listed twice: {names}"
    return {item["name"]: item for item in found}


def replica_sets(world: mig.World, namespace: str) -> list[str]:
    found = world.kubectl.json("get", "replicasets", "-n", namespace)["items"]
    return sorted(item["metadata"]["name"].rsplit("-", 1)[0] for item in found)


def reconciled_since_start(operator: testing.OperatorProcess, passes: int) -> None:
    """Wait until the restarted operator (fresh counters) has made `passes` plan passes."""
    testing.eventually(
        lambda: operator.metric_value("govcloud_reconcile_total", kind="MigrationPlan") >= passes,
        timeout=30,
        what=f"{passes} MigrationPlan passes by the restarted operator",
    )


def test_killed_inside_every_stage_the_plan_resumes_and_creates_nothing_twice(
    world: mig.World,
    paused: testing.OperatorProcess,
    pool: tuple[str, str],
) -> None:
    kubectl = world.kubectl
    node, key = pool
    tenant = world.tenant("mig-rs")
    target = f"{tenant}-apps"
    pod = {**helpers.pod_spec(), "nodeSelector": {key: "on"}}
    kubectl("label", "node", node, f"{key}=on")
    source = legacy(world, tenant, pod)
    kubectl("label", "node", node, f"{key}-")  # the running pods stay; new ones must wait
    not_before = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=12)
    name = world.plan(
        target,
        source,
        target,
        notBefore=not_before.strftime("%Y-%m-%dT%H:%M:%SZ"),
        verifyTimeoutSeconds=600,
    )

    # -- assess: killed once assessed, while the plan waits for its window ----------------
    plan = mig.wait_plan(
        kubectl,
        target,
        name,
        lambda p: stages(p).get("assess", {}).get("state") == "Succeeded",
        "the assessment",
    )
    uid = plan["metadata"]["uid"]
    assert mig.phase_of(plan) == "Pending"
    assess = stages(plan)["assess"]
    paused.kill()
    assert planted(world, target, uid) == []  # assessing is a dry run
    paused.start()

    # -- copy: killed after some objects were applied and before the others ----------------
    seen: list[list[str]] = []

    def copying_half_way() -> bool:
        current = mig.get_plan(kubectl, target, name)
        there = planted(world, target, uid)
        seen.append(there)
        return mig.phase_of(current) == "Copying" and 0 < len(there) < len(MOVED)

    testing.eventually(copying_half_way, timeout=60, what="the copy to be half-way")
    paused.kill()
    plan = mig.get_plan(kubectl, target, name)
    half = planted(world, target, uid)
    assert mig.phase_of(plan) == "Copying", plan["status"]
    assert 0 < len(half) < len(MOVED), half
    assert stages(plan)["copy"]["state"] == "Running"
    copy_started = stages(plan)["copy"]["startedAt"]
    assert datetime.strptime(copy_started, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) >= not_before
    assert stages(plan)["assess"] == assess
    paused.start()

    # -- verify: killed while the copies cannot run (their node label is gone) --------------
    plan = mig.wait_phase(kubectl, target, name, "Verifying")
    assert planted(world, target, uid) == MOVED
    target_api = kubectl.get("deployment", "api", target)
    assert target_api is not None
    assert int((target_api.get("status") or {}).get("availableReplicas") or 0) == 0
    verify = stages(plan)["verify"]
    assert verify["state"] == "Running"
    paused.kill()
    paused.start()
    reconciled_since_start(paused, 3)
    plan = mig.get_plan(kubectl, target, name)
    assert mig.phase_of(plan) == "Verifying"
    assert stages(plan)["verify"]["startedAt"] == verify["startedAt"]  # its clock kept running
    kubectl("label", "node", node, f"{key}=on")
    plan = mig.wait_phase(kubectl, target, name, "AwaitingApproval")
    assert planted(world, target, uid) == MOVED
    assert replica_sets(world, target) == sorted(DEPLOYMENTS)  # one each: never re-templated
    assert source_replicas(world, source) == {name: (n, None) for name, n in DEPLOYMENTS.items()}

    # -- cutover: killed after some source Deployments were scaled down ---------------------
    approver = kubectl.impersonate(mig.APPROVER, mig.APPROVERS)
    assert mig.approve(approver, target, name, mig.APPROVER).returncode == 0

    testing.eventually(
        lambda: partly_scaled_down(world, source), timeout=60, what="the cutover to be half-way"
    )
    paused.kill()
    plan = mig.get_plan(kubectl, target, name)
    assert mig.phase_of(plan) == "CuttingOver"
    assert stages(plan)["cutover"]["state"] == "Running"
    cutover_started = stages(plan)["cutover"]["startedAt"]
    half_scaled = source_replicas(world, source)
    assert half_scaled["api"] == (0, "3"), half_scaled  # the first one, with its real count
    untouched = [
        n for n, (count, note) in half_scaled.items() if (count, note) == (DEPLOYMENTS[n], None)
    ]
    assert untouched, half_scaled  # and at least one still as it was
    assert all(
        (count, note) in ((0, str(DEPLOYMENTS[n])), (DEPLOYMENTS[n], None))
        for n, (count, note) in half_scaled.items()
    ), half_scaled
    paused.start()

    plan = mig.wait_phase(kubectl, target, name, "Completed")
    # exact counts remembered, each once: never the 0 the first pass had set itself
    assert source_replicas(world, source) == {
        name: (0, str(count)) for name, count in DEPLOYMENTS.items()
    }
    assert mig.suspended(kubectl, source, "nightly")
    assert not mig.suspended(kubectl, target, "nightly")
    assert planted(world, target, uid) == MOVED
    assert replica_sets(world, target) == sorted(DEPLOYMENTS)
    history = stages(plan)
    assert list(history) == ["assess", "copy", "verify", "cutover"]
    assert all(item["state"] == "Succeeded" for item in history.values()), history
    assert history["assess"]["startedAt"] == assess["startedAt"]
    assert history["copy"]["startedAt"] == copy_started
    assert history["verify"]["startedAt"] == verify["startedAt"]
    assert history["cutover"]["startedAt"] == cutover_started
    assert plan["status"]["startedAt"] == copy_started
    assert plan["status"]["cutoverAt"] == cutover_started


def test_killed_mid_cutover_then_rolled_back_restores_every_count_exactly(
    world: mig.World, paused: testing.OperatorProcess
) -> None:
    kubectl = world.kubectl
    tenant = world.tenant("mig-rsb")
    target = f"{tenant}-apps"
    source = legacy(world, tenant, helpers.pod_spec())
    name = world.plan(
        target,
        source,
        target,
        approvalsRequired=[],
    )

    testing.eventually(
        lambda: partly_scaled_down(world, source), timeout=90, what="the cutover to be half-way"
    )
    paused.kill()
    plan = mig.get_plan(kubectl, target, name)
    uid = plan["metadata"]["uid"]
    assert mig.phase_of(plan) == "CuttingOver"
    # a person asks for the rollback while the operator is down
    kubectl.apply(mig.plan_manifest(name, target, {**plan["spec"], "rollback": True}))
    paused.start()

    plan = mig.wait_phase(kubectl, target, name, "RolledBack")
    assert source_replicas(world, source) == {n: (count, None) for n, count in DEPLOYMENTS.items()}
    assert not mig.suspended(kubectl, source, "nightly")
    cronjob = kubectl.get("cronjob", "nightly", source)
    assert cronjob is not None
    assert "govcloud.io/original-suspend" not in (cronjob["metadata"].get("annotations") or {})
    for deployment in DEPLOYMENTS:
        mig.wait_available(kubectl, deployment, source)
    assert planted(world, target, uid) == []
    history = stages(plan)
    assert list(history) == ["assess", "copy", "verify", "cutover", "rollback"]
    assert history["cutover"]["state"] == "Cancelled"
    assert history["rollback"]["state"] == "Succeeded"
