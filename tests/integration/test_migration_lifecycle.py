"""MigrationPlan over time on the real control plane: a deadline passing, idle plans writing
nothing, deletion (the finalizer) and the schema freezing source and target (issue 7)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import _tenant_helpers as helpers
import pytest
import test_migration as mig

from govcloud.dev import cluster, testing

pytestmark = pytest.mark.integration

crds = mig.crds
approvals = mig.approvals
world = mig.world

Manifest = dict[str, Any]
STAMP = "%Y-%m-%dT%H:%M:%SZ"
SUSPEND = "govcloud.io/original-suspend"
OPERATOR_AGENTS = ("govcloud-operator", "kopf")


def annotations(kubectl: testing.Kubectl, kind: str, name: str, namespace: str) -> dict[str, str]:
    found = kubectl.get(kind, name, namespace)
    assert found is not None, f"{kind} {namespace}/{name} is gone"
    return dict(found["metadata"].get("annotations") or {})


def planted_by(kubectl: testing.Kubectl, namespace: str, uid: str) -> list[str]:
    found = kubectl.json(
        "get", ",".join(mig.APP_KINDS), "-n", namespace, "-l", f"{mig.UID_LABEL}={uid}"
    )
    return sorted(f"{item['kind']}/{item['metadata']['name']}" for item in found["items"])


def wait_gone(kubectl: testing.Kubectl, namespace: str, name: str) -> None:
    testing.eventually(
        lambda: kubectl.get("migrationplan", name, namespace) is None,
        timeout=60,
        what=f"MigrationPlan {namespace}/{name} to be gone",
    )


# -- 9. deadlines -----------------------------------------------------------------------------


def test_a_deadline_passing_before_completion_makes_the_plan_overdue_everywhere(
    world: mig.World, operator: testing.OperatorProcess
) -> None:
    tenant = world.tenant("mig-late")
    target = f"{tenant}-apps"
    legacy = world.legacy(annotations={"govcloud.io/migration-grant": tenant})
    deadline = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=20)
    # waits for a copy approval nobody gives: idle, and not Completed when the deadline comes
    name = world.plan(
        target, legacy, target, approvalsRequired=["copy"], deadline=deadline.strftime(STAMP)
    )

    plan = mig.wait_phase(world.kubectl, target, name, "AwaitingApproval")
    assert datetime.now(UTC) < deadline, "the set-up took longer than the deadline allows"
    assert mig.condition(plan, "Overdue")["status"] == "False"
    assert mig.condition(plan, "DeadlineAtRisk")["reason"] == "DeadlineNear"

    plan = mig.wait_plan(
        world.kubectl,
        target,
        name,
        lambda p: mig.condition(p, "Overdue").get("status") == "True",
        "Overdue=True",
        timeout=45,
    )
    overdue = mig.condition(plan, "Overdue")
    assert overdue["reason"] == "DeadlinePassed"
    assert deadline.strftime(STAMP).replace("Z", "") in overdue["message"]
    assert mig.condition(plan, "DeadlineAtRisk")["status"] == "False"
    assert mig.phase_of(plan) == "AwaitingApproval"
    testing.eventually(
        lambda: any(
            event["reason"] == "DeadlinePassed" and event["type"] == "Warning"
            for event in helpers.events_for(world.kubectl, name, "MigrationPlan")
        ),
        timeout=30,
        what="a DeadlinePassed Warning Event",
    )
    testing.eventually(
        lambda: operator.metric_value("govcloud_migration_plans_overdue", tenant=tenant) == 1,
        timeout=30,
        what="govcloud_migration_plans_overdue of the tenant to be 1",
    )
    assert operator.metric_value("govcloud_migration_plans_at_risk", tenant=tenant) == 0
    rollup = helpers.wait_tenant(
        world.kubectl,
        tenant,
        lambda body: ((body.get("status") or {}).get("migrations") or {}).get("overdue") == 1,
        "the roll-up to count the overdue plan",
    )["status"]["migrations"]
    assert rollup == {"planned": 1, "completed": 0, "overdue": 1, "atRisk": 0, "onTimePercent": 0}


# -- a resync of an unchanged plan writes nothing ---------------------------------------------


def operator_writes(
    hub: cluster.ControlPlane, since: str, namespaces: set[str], tenant: str
) -> list[dict[str, object]]:
    """Writes by the operator (its client or kopf) after `since` to the plans' namespaces, the
    source namespaces, or the tenant. Events are left out: kopf posts them from a queue, late."""
    found = []
    for event in hub.audit_events():
        if not str(event.get("userAgent", "")).startswith(OPERATOR_AGENTS):
            continue
        if str(event.get("requestReceivedTimestamp", "")) <= since:
            continue
        ref = event.get("objectRef") or {}
        assert isinstance(ref, dict)
        if ref.get("resource") == "events":
            continue
        if ref.get("namespace") in namespaces or ref.get("name") == tenant:
            found.append(event)
    return found


def test_resyncs_of_a_completed_and_of_a_waiting_plan_write_nothing(
    world: mig.World, hub: cluster.ControlPlane, operator: testing.OperatorProcess
) -> None:
    tenant = helpers.unique("mig-idle")
    world.tenants.create(
        tenant, namespaces=("apps", "web"), level=2, admins={"groups": [f"{tenant}-admins"]}
    )
    helpers.wait_phase(world.kubectl, tenant, "Active")
    grant = {"govcloud.io/migration-grant": tenant}
    first, second = world.legacy(annotations=grant), world.legacy(annotations=grant)
    done = world.plan(f"{tenant}-apps", first, f"{tenant}-apps", approvalsRequired=[])
    waiting = world.plan(f"{tenant}-web", second, f"{tenant}-web")  # waits for cutover approval
    mig.wait_phase(world.kubectl, f"{tenant}-apps", done, "Completed")
    mig.wait_phase(world.kubectl, f"{tenant}-web", waiting, "AwaitingApproval")
    helpers.wait_tenant(  # the roll-up, and the quota usage of the 4 copied pods, settled
        world.kubectl,
        tenant,
        lambda body: (
            ((body.get("status") or {}).get("migrations") or {}).get("completed") == 1
            and str(((body["status"].get("quota") or {}).get("used") or {}).get("pods")) == "4"
        ),
        "the roll-up and the quota usage",
    )

    def passes() -> float:
        return operator.metric_value("govcloud_reconcile_total", kind="MigrationPlan")

    namespaces = {f"{tenant}-apps", f"{tenant}-web", first, second}

    def quiet_round() -> bool:
        """Both plans resynced with no write meanwhile: the plans have settled (under load a
        last status write can trail the phase the test waited for)."""
        written, passed = len(operator_writes(hub, "", namespaces, tenant)), passes()
        testing.eventually(lambda: passes() >= passed + 2, timeout=30, what="two plan passes")
        return len(operator_writes(hub, "", namespaces, tenant)) == written

    testing.eventually(quiet_round, timeout=90, what="a resync round with no write")
    # The window starts on the next whole second: the audit log compares timestamps as text.
    boundary = int(time.time()) + 1
    testing.eventually(lambda: time.time() >= boundary, what="the next second")
    since = time.strftime(STAMP, time.gmtime(boundary))
    before = passes()
    # Three resync periods (5 s each in the test operator) over both plans.
    testing.eventually(
        lambda: time.time() >= boundary + 16 and passes() >= before + 6,
        timeout=60,
        what="three resync passes over both plans",
    )

    writes = operator_writes(hub, since, namespaces, tenant)
    assert writes == [], [
        (
            event.get("verb"),
            "{resource}/{subresource} {namespace}/{name}".format_map(
                {"subresource": "", "namespace": "", **(event.get("objectRef") or {})}  # type: ignore[dict-item]
            ),
            event.get("requestReceivedTimestamp"),
        )
        for event in writes
    ]
    for namespace, name in ((f"{tenant}-apps", done), (f"{tenant}-web", waiting)):
        said = [
            f"{event['type']} {event['reason']}: {event['message']}"
            for event in helpers.events_for(world.kubectl, name, "MigrationPlan")
        ]
        assert len(said) == len(set(said)), said  # nothing was said twice
        assert mig.phase_of(mig.get_plan(world.kubectl, namespace, name)) in (
            "Completed",
            "AwaitingApproval",
        )


# -- deletion: the finalizer ----------------------------------------------------------------


def test_deleting_a_completed_plan_keeps_the_app_and_removes_the_plans_bookkeeping(
    world: mig.World,
) -> None:
    tenant = world.tenant("mig-delc")
    target = f"{tenant}-apps"
    legacy = world.legacy(annotations={"govcloud.io/migration-grant": tenant})
    name = world.plan(target, legacy, target, approvalsRequired=[])
    plan = mig.wait_phase(world.kubectl, target, name, "Completed")
    uid = plan["metadata"]["uid"]
    assert "govcloud.io/finalizer" in plan["metadata"]["finalizers"]
    assert mig.replicas(world.kubectl, legacy) == (0, "2")
    assert annotations(world.kubectl, "cronjob", "permits-nightly", legacy)[SUSPEND] == "false"

    world.kubectl("delete", "migrationplan", name, "-n", target, "--wait=false")
    wait_gone(world.kubectl, target, name)

    # the copies are the app now: kept, running; the source stays down, without the notes
    assert len(planted_by(world.kubectl, target, uid)) == 5
    mig.wait_available(world.kubectl, "permits", target)
    assert mig.replicas(world.kubectl, legacy) == (0, None)
    assert mig.suspended(world.kubectl, legacy)
    assert SUSPEND not in annotations(world.kubectl, "cronjob", "permits-nightly", legacy)
    assert not mig.suspended(world.kubectl, target)


def test_deleting_a_plan_whose_cutover_failed_half_way_restores_the_source_first(
    world: mig.World,
) -> None:
    tenant = world.tenant("mig-delf")
    target = f"{tenant}-apps"
    legacy = world.legacy(annotations={"govcloud.io/migration-grant": tenant})
    second = helpers.deployment("permits-b", legacy, 3)
    second["metadata"]["labels"] = {"app": "permits"}
    world.kubectl.apply(second)
    mig.wait_available(world.kubectl, "permits-b", legacy)
    policy = helpers.unique("deny-scale-b")
    mig.deny_policy(
        world,
        policy,
        {
            "apiGroups": ["apps"],
            "apiVersions": ["v1"],
            "operations": ["UPDATE"],
            "resources": ["deployments"],
        },
        "object.metadata.name != 'permits-b' || object.spec.replicas != 0",
        legacy,
    )
    testing.eventually(  # the API server enforces a new policy after a moment
        lambda: world.kubectl.run(
            "patch", "deployment", "permits-b", "-n", legacy, "--type=merge",
            "-p", '{"spec":{"replicas":0}}', "--dry-run=server",
        ).returncode != 0,
        timeout=30,
        what="the admission policy to refuse scaling permits-b down",
    )  # fmt: skip
    name = world.plan(target, legacy, target, approvalsRequired=[])

    # permits is scaled down first, then permits-b is refused: Failed, the source half down
    plan = mig.wait_phase(world.kubectl, target, name, "Failed")
    uid = plan["metadata"]["uid"]
    assert mig.replicas(world.kubectl, legacy) == (0, "2")
    assert mig.replicas(world.kubectl, legacy, "permits-b") == (3, None)
    assert len(planted_by(world.kubectl, target, uid)) == 6

    world.kubectl("delete", "migrationplan", name, "-n", target, "--wait=false")
    wait_gone(world.kubectl, target, name)

    # rolled back before it went: exact counts, no notes, and only then the copies deleted
    assert mig.replicas(world.kubectl, legacy) == (2, None)
    assert mig.replicas(world.kubectl, legacy, "permits-b") == (3, None)
    mig.wait_available(world.kubectl, "permits", legacy)
    assert planted_by(world.kubectl, target, uid) == []
    assert not mig.suspended(world.kubectl, legacy)
    assert world.kubectl.get("configmap", "permits-config", legacy) is not None
    events = helpers.events_for(world.kubectl, name, "MigrationPlan")
    assert any(event["reason"] == "Finalized" for event in events), events


# -- the schema freezes source and target once copying began ------------------------------


def test_the_api_server_refuses_to_move_source_or_target_of_a_plan_that_began_copying(
    world: mig.World,
) -> None:
    tenant = world.tenant("mig-frz")
    target = f"{tenant}-apps"
    legacy = world.legacy(annotations={"govcloud.io/migration-grant": tenant})
    name = world.plan(target, legacy, target)  # waits for the cutover approval, copies made
    plan = mig.wait_phase(world.kubectl, target, name, "AwaitingApproval")
    assert plan["status"]["startedAt"]

    for patch in (
        {"spec": {"source": {"namespace": "somewhere-else"}}},
        {"spec": {"source": {"selector": {"app": "other"}}}},
        {"spec": {"targetNamespace": f"{tenant}-other"}},
    ):
        refused = world.kubectl.run(
            "patch", "migrationplan", name, "-n", target, "--type=merge", "-p",
            json.dumps(patch),
        )  # fmt: skip
        assert refused.returncode != 0, patch
        assert "cannot change once copying has begun" in refused.stderr, refused.stderr
        assert "spec.rollback: true" in refused.stderr

    allowed = world.kubectl.run(
        "patch", "migrationplan", name, "-n", target, "--type=merge", "-p",
        '{"spec":{"verifyTimeoutSeconds":120}}',
    )  # fmt: skip
    assert allowed.returncode == 0, allowed.stderr
    kept = mig.get_plan(world.kubectl, target, name)["spec"]
    assert (kept["source"]["namespace"], kept["targetNamespace"]) == (legacy, target)

    # before copying, the same edit is still allowed
    fresh = world.plan(target, legacy, target, approvalsRequired=["copy"])
    mig.wait_phase(world.kubectl, target, fresh, "AwaitingApproval", "Failed")
    moved = world.kubectl.run(
        "patch", "migrationplan", fresh, "-n", target, "--type=merge", "-p",
        '{"spec":{"source":{"selector":{"app":"permits"}}}}',
    )  # fmt: skip
    assert moved.returncode == 0, moved.stderr
