"""Migration cannot lose data or skip its gate (issue 12 point 6, review H4 and H5): the
attacker's moves, made by impersonation as a tenant editor against the chart's approvals
policy and the CRD's rules on the real control plane, are refused; data is never left behind.
"""

from __future__ import annotations

import json
import subprocess
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
STAMP = "%Y-%m-%dT%H:%M:%SZ"
GRANT = "govcloud.io/migration-grant"
KINDS = ["ConfigMap", "Secret", "Service", "Deployment", "CronJob"]


def editor(world: mig.World, tenant: str) -> testing.Kubectl:
    """A member of the tenant's editors group (bound to `edit` in its namespaces)."""
    return world.kubectl.impersonate(f"{tenant}-dev", f"{tenant}-editors")


def plan_spec(source: str, target: str, **extra: Any) -> Manifest:
    return {
        "app": {"name": "不动产登记系统", "securityLevel": 2},
        "source": {"namespace": source, "kinds": KINDS},
        "targetNamespace": target,
        "deadline": (datetime.now(UTC) + timedelta(days=60)).strftime(STAMP),
        "verifyTimeoutSeconds": 60,
        **extra,
    }


def create_plan(
    world: mig.World, who: testing.Kubectl, namespace: str, spec: Manifest
) -> tuple[str, subprocess.CompletedProcess[str]]:
    name = helpers.unique("mig")
    result = helpers.create(who, mig.plan_manifest(name, namespace, spec))
    if result.returncode == 0:
        world.plans.append((namespace, name))
    return name, result


def refused_create(
    world: mig.World, who: testing.Kubectl, namespace: str, spec: Manifest
) -> subprocess.CompletedProcess[str]:
    """The refusal of a create; retried while a policy installed moments ago is not yet in force."""

    def attempt() -> subprocess.CompletedProcess[str] | None:
        _, result = create_plan(world, who, namespace, spec)
        return result if result.returncode != 0 else None

    refused: subprocess.CompletedProcess[str] = testing.eventually(
        attempt, timeout=20, what="the approvals policy to refuse the plan"
    )
    return refused


def patch(
    who: testing.Kubectl, namespace: str, name: str, spec: Manifest
) -> subprocess.CompletedProcess[str]:
    return who.run(
        "patch", "migrationplan", name, "-n", namespace, "--type=merge",
        "-p", json.dumps({"spec": spec}),
    )  # fmt: skip


def passes(world: mig.World, operator: testing.OperatorProcess, count: int = 2) -> None:
    """Wait until the operator has made `count` more MigrationPlan passes."""
    start = operator.metric_value("govcloud_reconcile_total", kind="MigrationPlan")
    testing.eventually(
        lambda: (
            operator.metric_value("govcloud_reconcile_total", kind="MigrationPlan") >= start + count
        ),
        timeout=60,
        what=f"{count} more MigrationPlan passes",
    )


# -- H4: the platform decides the gate ---------------------------------------------------------


def test_a_tenant_editor_cannot_create_or_edit_a_plan_past_the_cutover_gate(
    world: mig.World,
) -> None:
    tenant = world.tenant("mig-gate")
    target = f"{tenant}-apps"
    legacy = world.legacy(annotations={GRANT: tenant})
    dev = editor(world, tenant)

    for gates in ([], ["copy"]):
        refused = refused_create(
            world, dev, target, plan_spec(legacy, target, approvalsRequired=gates)
        )
        assert helpers.forbidden(refused, "may not remove cutover from spec.approvalsRequired"), (
            refused.stderr
        )

    # the default gate is fine; dropping it later is refused, adding one is not
    name, made = create_plan(world, dev, target, plan_spec(legacy, target))
    assert made.returncode == 0, made.stderr
    dropped = patch(dev, target, name, {"approvalsRequired": []})
    assert helpers.forbidden(dropped, "may not remove cutover"), dropped.stderr
    added = patch(dev, target, name, {"approvalsRequired": ["copy", "cutover"]})
    assert added.returncode == 0, added.stderr
    narrowed = patch(dev, target, name, {"approvalsRequired": ["cutover"]})
    assert helpers.forbidden(narrowed, "may not remove copy"), narrowed.stderr
    # nor can the editor approve the stage, or set a plan's status
    approved = mig.approve(dev, target, name, f"{tenant}-dev")
    assert helpers.forbidden(approved, "may not approve"), approved.stderr
    assert mig.get_plan(world.kubectl, target, name)["spec"]["approvalsRequired"] == [
        "copy",
        "cutover",
    ]


def test_editing_the_source_after_an_approval_voids_it(
    world: mig.World, operator: testing.OperatorProcess
) -> None:
    tenant = world.tenant("mig-stale")
    target = f"{tenant}-apps"
    legacy = world.legacy(annotations={GRANT: tenant})
    other = world.legacy("legacy-b", annotations={GRANT: tenant})
    dev = editor(world, tenant)
    later = (datetime.now(UTC) + timedelta(hours=1)).strftime(STAMP)
    name, made = create_plan(
        world,
        dev,
        target,
        plan_spec(legacy, target, approvalsRequired=["copy", "cutover"], notBefore=later),
    )
    assert made.returncode == 0, made.stderr
    approver = world.kubectl.impersonate(mig.APPROVER, mig.APPROVERS)
    reviewed = mig.digest_of(world.kubectl, target, name)

    # a made-up digest is refused; the one the approver reviewed is accepted and counts
    typo = mig.approve(approver, target, name, mig.APPROVER, "copy", "0" * 64)
    assert typo.returncode != 0
    assert "must be status.digest of the plan" in typo.stderr
    given = mig.approve(approver, target, name, mig.APPROVER, "copy", reviewed)
    assert given.returncode == 0, given.stderr
    mig.wait_plan(
        world.kubectl,
        target,
        name,
        lambda p: [a.get("current") for a in p["status"].get("approvals") or []] == [True],
        "the copy approval to count",
    )

    # the editor points the plan at another namespace, then opens the window
    assert patch(dev, target, name, {"source": {"namespace": other}}).returncode == 0
    assert patch(dev, target, name, {"notBefore": None}).returncode == 0

    plan = mig.wait_plan(
        world.kubectl,
        target,
        name,
        lambda p: (
            (p.get("status") or {}).get("digest") not in (None, reviewed)
            and mig.phase_of(p) == "AwaitingApproval"
        ),
        "the plan to wait for a new copy approval",
    )
    passes(world, operator)
    plan = mig.get_plan(world.kubectl, target, name)
    assert mig.phase_of(plan) == "AwaitingApproval"
    assert "given for another version of the plan" in plan["status"]["message"]
    assert plan["status"]["approvals"][0]["current"] is False
    assert mig.planted(world.kubectl, target, plan) == []  # nothing was copied
    events = helpers.events_for(world.kubectl, name, "MigrationPlan")
    assert any(event["reason"] == "ApprovalStale" for event in events), events

    # approving the plan as it is now lets it copy
    again = mig.approve(approver, target, name, mig.APPROVER, "copy")
    assert again.returncode == 0, again.stderr
    plan = mig.wait_plan(
        world.kubectl,
        target,
        name,
        lambda p: any(s["name"] == "copy" for s in (p.get("status") or {}).get("stages") or []),
        "copying to begin",
    )


# -- H5a: volumes that hold data block the assessment ------------------------------------------


def volume(name: str, namespace: str, claim: str) -> Manifest:
    """A PersistentVolume already holding data for one claim (pre-bound, no provisioner)."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "hostPath": {"path": f"/var/lib/legacy/{name}"},
            "claimRef": {"namespace": namespace, "name": claim},
        },
    }


def database(namespace: str) -> Manifest:
    pod = helpers.pod_spec()
    pod["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/var/lib/db"}]
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": namespace, "labels": {"app": "db"}},
        "spec": {
            "replicas": 1,
            "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": pod},
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "storageClassName": "",
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                }
            ],
        },
    }


def ready(kubectl: testing.Kubectl, namespace: str) -> bool:
    found = kubectl.get("statefulset", "db", namespace) or {}
    return int((found.get("status") or {}).get("readyReplicas") or 0) >= 1


def test_a_stateful_set_with_a_volume_claim_template_blocks_the_assessment_until_named(
    world: mig.World,
) -> None:
    tenant = world.tenant("mig-data")
    target = f"{tenant}-apps"
    legacy = world.legacy(annotations={GRANT: tenant})
    for namespace in (legacy, target):  # the legacy data, and where the data step puts it
        pv = helpers.unique("pv")
        world.kubectl.apply(volume(pv, namespace, "data-db-0"))
        world.extra.append(("persistentvolume", pv))
    world.kubectl.apply(database(legacy))
    testing.eventually(lambda: ready(world.kubectl, legacy), timeout=60, what="the legacy db")
    name = world.plan(
        target,
        legacy,
        target,
        source={"namespace": legacy, "kinds": ["PersistentVolumeClaim", "StatefulSet"]},
    )

    plan = mig.wait_phase(world.kubectl, target, name, "Failed")

    assessed = mig.condition(plan, "Assessed")
    assert (assessed["status"], assessed["reason"]) == ("False", "NeedsDataMigration")
    assert "StatefulSet db: the data of its volumeClaimTemplates (data)" in assessed["message"]
    assert "PersistentVolumeClaim data-db-0: the data of the claim" in assessed["message"]
    assert "spec.dataMigration.volumes" in assessed["message"]
    actions = {item["name"]: item["action"] for item in plan["status"]["inventory"]}
    assert actions == {"db": "NeedsDataMigration", "data-db-0": "NeedsDataMigration"}
    assert world.kubectl.get("statefulset", "db", target) is None  # nothing was written
    assert world.kubectl.get("persistentvolumeclaim", "data-db-0", target) is None
    assert ready(world.kubectl, legacy)

    # naming both volumes, with the step that moves their data, lets the plan go on
    data_step = {
        "volumes": ["StatefulSet/db", "PersistentVolumeClaim/data-db-0"],
        "step": "the DBA restores the nightly dump into the new volume before the cutover",
    }
    world.kubectl("patch", "migrationplan", name, "-n", target, "--type=merge",
                  "-p", json.dumps({"spec": {"dataMigration": data_step}}))  # fmt: skip
    plan = mig.wait_phase(world.kubectl, target, name, "AwaitingApproval")
    actions = {item["name"]: item["action"] for item in plan["status"]["inventory"]}
    assert actions == {"db": "Move", "data-db-0": "RecreateEmpty"}
    copy = world.kubectl.get("statefulset", "db", target)
    assert copy is not None
    assert copy["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"


# -- H5b, c: rollback never deletes the app that runs ------------------------------------------


def test_a_completed_plan_cannot_be_rolled_back_and_its_app_stays(
    world: mig.World, operator: testing.OperatorProcess
) -> None:
    tenant = world.tenant("mig-done")
    target = f"{tenant}-apps"
    legacy = world.legacy(annotations={GRANT: tenant})
    name = world.plan(target, legacy, target, approvalsRequired=[])  # the platform lifts it
    mig.wait_phase(world.kubectl, target, name, "Completed")
    # the legacy app is cleaned up after the move
    world.kubectl("delete", "deployment", "permits", "-n", legacy)

    for who in (editor(world, tenant), world.kubectl):
        refused = patch(who, target, name, {"rollback": True})
        assert refused.returncode != 0
        assert "a Completed plan cannot be rolled back" in refused.stderr, refused.stderr

    passes(world, operator)
    plan = mig.get_plan(world.kubectl, target, name)
    assert mig.phase_of(plan) == "Completed"
    assert plan["spec"]["rollback"] is False
    mig.wait_available(world.kubectl, "permits", target)
    assert len(mig.planted(world.kubectl, target, plan)) == 5


def test_a_rollback_with_the_source_gone_keeps_the_target_until_the_source_is_back(
    world: mig.World, operator: testing.OperatorProcess
) -> None:
    tenant = world.tenant("mig-gone")
    target = f"{tenant}-apps"
    legacy = world.legacy(annotations={GRANT: tenant})
    name = world.plan(target, legacy, target)  # copied and verified; waits for cutover
    mig.wait_phase(world.kubectl, target, name, "AwaitingApproval")
    source = world.kubectl.get("deployment", "permits", legacy)
    assert source is not None
    world.kubectl("delete", "deployment", "permits", "-n", legacy)

    asked = patch(editor(world, tenant), target, name, {"rollback": True})
    assert asked.returncode == 0, asked.stderr

    mig.wait_plan(
        world.kubectl,
        target,
        name,
        lambda p: "to exist in the source" in (p.get("status") or {}).get("message", ""),
        "the rollback to wait for the source",
    )
    passes(world, operator, 4)
    plan = mig.get_plan(world.kubectl, target, name)
    assert mig.phase_of(plan) == "RollingBack"
    assert "copies in the target stay" in plan["status"]["message"]
    assert len(mig.planted(world.kubectl, target, plan)) == 5
    mig.wait_available(world.kubectl, "permits", target)

    # the legacy app is put back: the rollback finishes, and only then the copies go
    restored = mig.legacy_app(legacy, 2, helpers.pod_spec())
    world.kubectl.apply(next(item for item in restored if item["kind"] == "Deployment"))
    plan = mig.wait_phase(world.kubectl, target, name, "RolledBack")
    assert mig.planted(world.kubectl, target, plan) == []
    mig.wait_available(world.kubectl, "permits", legacy)
