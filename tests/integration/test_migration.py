"""MigrationPlan on the real control plane: hub -> hub moves, authorization, every stage and its
failure, restart safety, approvals with impersonated users, and bad input (issue 7).

Each test builds its own legacy namespace (Deployment, Service, ConfigMap, Secret, CronJob),
its own tenant, and a plan; pods become Ready on kwok nodes, so Verify is real.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import _tenant_helpers as helpers
import pytest

from govcloud.dev import testing

pytestmark = pytest.mark.integration

Manifest = dict[str, Any]

APPROVALS = testing.REPO_ROOT / "charts/govcloud-operator/files/migration/approvals.yaml"
UID_LABEL = "govcloud.io/migration-plan-uid"
ORIGINAL = "govcloud.io/original-replicas"
APP_KINDS = ("deployments", "services", "configmaps", "secrets", "cronjobs")
APPROVER = "approver@data-bureau.gov.cn"
APPROVERS = "govcloud:migration-approvers"


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def crds(kubectl: testing.Kubectl) -> None:
    """Only the CRDs these tests use: others' kinds may be mid-change in the same checkout."""
    for plural in ("cloudtenants", "subcenters", "migrationplans"):
        path = testing.CRD_DIR / f"{plural}.govcloud.io.yaml"
        kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
    kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")


@pytest.fixture(scope="module")
def approvals(kubectl: testing.Kubectl, crds: None) -> Iterator[str]:
    """The chart's approval policy and role, verbatim; APPROVER is in the approvers' group.

    Tenant members get migrationplans through the admin/edit aggregation the chart ships in
    platform-roles.yaml; the same grant is made here directly.
    """
    kubectl("apply", "-f", str(APPROVALS))
    kubectl.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {
                "name": "test-migrationplans-aggregate-to-edit",
                "labels": {
                    "rbac.authorization.k8s.io/aggregate-to-admin": "true",
                    "rbac.authorization.k8s.io/aggregate-to-edit": "true",
                },
            },
            "rules": [
                {
                    "apiGroups": ["govcloud.io"],
                    "resources": ["migrationplans"],
                    "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
                }
            ],
        }
    )
    yield APPROVER
    # Gone again, so that a chart installed later in the session can own these objects.
    kubectl.run("delete", "--ignore-not-found", "--wait=false", "-f", str(APPROVALS))
    kubectl.run("delete", "clusterrole", "test-migrationplans-aggregate-to-edit", "--wait=false")


@pytest.fixture
def world(
    kubectl: testing.Kubectl, operator: testing.OperatorProcess, approvals: str
) -> Iterator[World]:
    made = World(kubectl)
    yield made
    made.cleanup()


class World:
    """Tenants, legacy namespaces and plans of one test; all removed at the end."""

    def __init__(self, kubectl: testing.Kubectl) -> None:
        self.kubectl = kubectl
        self.tenants = helpers.Tenants(kubectl)
        self.plans: list[tuple[str, str]] = []
        self.extra: list[tuple[str, str]] = []

    def tenant(self, prefix: str, level: int = 2, **options: Any) -> str:
        name = helpers.unique(prefix)
        self.tenants.create(
            name,
            namespaces=("apps",),
            level=level,
            admins={"groups": [f"{name}-admins"]},
            editors={"groups": [f"{name}-editors"]},
            **options,
        )
        helpers.wait_phase(self.kubectl, name, "Active")
        return name

    def legacy(
        self,
        prefix: str = "legacy",
        *,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        replicas: int = 2,
        pod: Manifest | None = None,
    ) -> str:
        """A legacy namespace running the example app (Deployment, Service, CM, Secret, CronJob)."""
        namespace = helpers.unique(prefix)
        self.tenants.track_namespace(namespace)
        self.kubectl.apply(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": namespace,
                    "labels": labels or {},
                    "annotations": annotations or {},
                },
            }
        )
        for manifest in legacy_app(namespace, replicas, pod or helpers.pod_spec()):
            self.kubectl.apply(manifest)
        wait_available(self.kubectl, "permits", namespace)
        return namespace

    def plan(self, namespace: str, source_namespace: str, target: str, **spec: Any) -> str:
        name = helpers.unique("mig")
        body: Manifest = {
            "app": {"name": "不动产登记系统", "securityLevel": 2},
            "source": {
                "namespace": source_namespace,
                "kinds": ["ConfigMap", "Secret", "Service", "Deployment", "CronJob"],
            },
            "targetNamespace": target,
            "deadline": (datetime.now(UTC) + timedelta(days=60)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "verifyTimeoutSeconds": 60,
        }
        body.update(spec)
        self.kubectl.apply(plan_manifest(name, namespace, body))
        self.plans.append((namespace, name))
        return name

    def cleanup(self) -> None:
        for namespace, name in self.plans:
            self.kubectl.run("delete", "migrationplan", name, "-n", namespace, "--wait=false")
        for kind, name in self.extra:
            self.kubectl.run("delete", kind, name, "--ignore-not-found", "--wait=false")
        self.tenants.cleanup()


def plan_manifest(name: str, namespace: str, spec: Manifest) -> Manifest:
    return {
        "apiVersion": "govcloud.io/v1alpha1",
        "kind": "MigrationPlan",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def legacy_app(namespace: str, replicas: int, pod: Manifest) -> list[Manifest]:
    labels = {"app": "permits"}
    meta = {"namespace": namespace, "labels": labels}
    deployment = helpers.deployment("permits", namespace, replicas)
    deployment["metadata"]["labels"] = labels
    deployment["spec"]["template"]["spec"] = pod
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "permits-config", **meta},
            "data": {"MODE": "prod"},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "permits-db", **meta},
            "stringData": {"password": "s3cret"},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "permits", **meta},
            "spec": {
                "type": "NodePort",
                "selector": labels,
                "ports": [{"port": 80, "targetPort": 8080}],
            },
        },
        deployment,
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": "permits-nightly", **meta},
            "spec": {
                "schedule": "0 2 * * *",
                "jobTemplate": {"spec": {"template": {"spec": {**pod, "restartPolicy": "Never"}}}},
            },
        },
    ]


# -- observation helpers ---------------------------------------------------------------------


def get_plan(kubectl: testing.Kubectl, namespace: str, name: str) -> Manifest:
    found = kubectl.get("migrationplan", name, namespace)
    assert found is not None, f"MigrationPlan {namespace}/{name} is gone"
    return found


def wait_plan(
    kubectl: testing.Kubectl,
    namespace: str,
    name: str,
    predicate: Callable[[Manifest], bool],
    what: str,
    timeout: float = 90.0,
) -> Manifest:
    last: list[Manifest] = [{}]

    def check() -> Manifest | None:
        last[0] = get_plan(kubectl, namespace, name)
        return last[0] if predicate(last[0]) else None

    try:
        found: Manifest = testing.eventually(check, timeout=timeout, what=f"{name}: {what}")
    except testing.WaitTimeoutError as error:
        status = json.dumps(last[0].get("status"), ensure_ascii=False, indent=1)
        raise testing.WaitTimeoutError(f"{error}\nlast status: {status}") from None
    return found


def phase_of(plan: Manifest) -> str | None:
    return (plan.get("status") or {}).get("phase")


def wait_phase(
    kubectl: testing.Kubectl, namespace: str, name: str, *phases: str, timeout: float = 90.0
) -> Manifest:
    return wait_plan(
        kubectl,
        namespace,
        name,
        lambda plan: phase_of(plan) in phases,
        f"phase {'/'.join(phases)}",
        timeout,
    )


def condition(plan: Manifest, type_: str) -> Manifest:
    return helpers.condition(plan, type_)


def planted(kubectl: testing.Kubectl, namespace: str, plan: Manifest) -> list[str]:
    """Every object in `namespace` labelled as created by the plan, as kind/name."""
    uid = plan["metadata"]["uid"]
    found = kubectl.json("get", ",".join(APP_KINDS), "-n", namespace, "-l", f"{UID_LABEL}={uid}")
    return sorted(f"{item['kind']}/{item['metadata']['name']}" for item in found["items"])


def replicas(
    kubectl: testing.Kubectl, namespace: str, name: str = "permits"
) -> tuple[int, str | None]:
    found = kubectl.get("deployment", name, namespace)
    assert found is not None
    annotations = found["metadata"].get("annotations") or {}
    return int(found["spec"]["replicas"]), annotations.get(ORIGINAL)


def wait_available(
    kubectl: testing.Kubectl, name: str, namespace: str, timeout: float = 60
) -> None:
    def ready() -> bool:
        found = kubectl.get("deployment", name, namespace)
        if found is None:
            return False
        status = found.get("status") or {}
        return int(status.get("availableReplicas") or 0) >= int(found["spec"]["replicas"])

    testing.eventually(ready, timeout=timeout, what=f"deployment {namespace}/{name} Available")


def digest_of(kubectl: testing.Kubectl, namespace: str, name: str) -> str:
    """The plan's status.digest once the operator wrote it: what an approval names."""
    found = testing.eventually(
        lambda: (get_plan(kubectl, namespace, name).get("status") or {}).get("digest"),
        timeout=60,
        what=f"{name}: status.digest",
    )
    return str(found)


def approve(
    kubectl: testing.Kubectl,
    namespace: str,
    name: str,
    by: str,
    stage: str = "cutover",
    digest: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """`by` approves `stage` of the plan as its status.digest says it is now (or `digest`)."""
    approval = {
        "stage": stage,
        "by": by,
        "comment": "局长批准",
        "digest": digest or digest_of(kubectl, namespace, name),
    }
    patch = {"spec": {"approvals": [approval]}}
    return kubectl.run(
        "patch", "migrationplan", name, "-n", namespace, "--type=merge", "-p", json.dumps(patch)
    )


def suspended(kubectl: testing.Kubectl, namespace: str, name: str = "permits-nightly") -> bool:
    found = kubectl.get("cronjob", name, namespace)
    assert found is not None
    return bool(found["spec"].get("suspend"))


def deny_policy(world: World, name: str, rule: Manifest, expression: str, namespace: str) -> None:
    """A ValidatingAdmissionPolicy that makes one kind of write fail in one namespace."""
    world.kubectl.apply(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [rule],
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": namespace}
                    },
                },
                "validations": [
                    {"expression": expression, "message": "test: this write is denied"}
                ],
            },
        }
    )
    world.kubectl.apply(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {"policyName": name, "validationActions": ["Deny"]},
        }
    )
    world.extra += [("validatingadmissionpolicybinding", name), ("validatingadmissionpolicy", name)]


# -- 1. authorization ------------------------------------------------------------------------


def test_a_plan_naming_another_tenants_namespace_copies_nothing_and_says_why(
    world: World, operator: testing.OperatorProcess
) -> None:
    a = world.tenant("mig-a")
    b = world.tenant("mig-b")
    victim = f"{b}-apps"
    for manifest in legacy_app(victim, 1, helpers.pod_spec()):
        world.kubectl.apply(manifest)
    name = world.plan(f"{a}-apps", victim, f"{a}-apps", approvalsRequired=[])

    plan = wait_plan(
        world.kubectl,
        f"{a}-apps",
        name,
        lambda p: condition(p, "Authorized").get("status") == "False",
        "Authorized=False",
    )
    # A later pass over the plan (its status is rewritten with a newer timestamp or not at
    # all): wait until the operator has reconciled MigrationPlans again, then look.
    passes = operator.metric_value("govcloud_reconcile_total", kind="MigrationPlan")
    testing.eventually(
        lambda: (
            operator.metric_value("govcloud_reconcile_total", kind="MigrationPlan") >= passes + 2
        ),
        timeout=60,
        what="two more MigrationPlan passes",
    )
    plan = get_plan(world.kubectl, f"{a}-apps", name)

    authorized = condition(plan, "Authorized")
    assert phase_of(plan) == "Pending"
    assert authorized["reason"] == "SourceNotGranted"
    assert f"is not granted to tenant {a}, or does not exist" in authorized["message"]
    assert f"tenant {b}" not in authorized["message"]  # who owns it is not the plan's to learn
    assert "nothing was read or copied" in authorized["message"]
    assert planted(world.kubectl, f"{a}-apps", plan) == []
    assert world.kubectl.get("secret", "permits-db", f"{a}-apps") is None
    assert not plan["status"].get("inventory")


def test_a_namespace_granted_by_the_platform_team_may_be_moved(world: World) -> None:
    a = world.tenant("mig-g")
    legacy = world.legacy()
    name = world.plan(f"{a}-apps", legacy, f"{a}-apps", approvalsRequired=[])
    wait_plan(
        world.kubectl,
        f"{a}-apps",
        name,
        lambda p: condition(p, "Authorized").get("reason") == "SourceNotGranted",
        "not granted",
    )

    world.kubectl("annotate", "namespace", legacy, f"govcloud.io/migration-grant={a}")

    plan = wait_phase(world.kubectl, f"{a}-apps", name, "Completed")
    assert condition(plan, "Authorized")["status"] == "True"


# -- 2-6. the whole lifecycle, with approvals ------------------------------------------------


def test_assess_copy_verify_approve_and_cut_over(world: World) -> None:
    tenant = world.tenant("mig-life")
    target = f"{tenant}-apps"
    legacy = world.legacy(annotations={"govcloud.io/migration-grant": tenant})
    source_service = world.kubectl.get("service", "permits", legacy)
    assert source_service is not None
    name = world.plan(target, legacy, target)

    # assess + copy + verify run on their own; the cutover waits for an approver
    plan = wait_phase(world.kubectl, target, name, "AwaitingApproval")
    status = plan["status"]
    moved = {
        (item["kind"], item["name"]) for item in status["inventory"] if item["action"] == "Move"
    }
    assert moved == {
        ("ConfigMap", "permits-config"),
        ("Secret", "permits-db"),
        ("Service", "permits"),
        ("Deployment", "permits"),
        ("CronJob", "permits-nightly"),
    }
    skipped = {
        item["name"]: item["reason"] for item in status["inventory"] if item["action"] == "Skip"
    }
    assert "kube-root-ca.crt" in skipped
    assert all(item["moved"] for item in status["inventory"] if item["action"] == "Move")
    assert [stage["name"] for stage in status["stages"]] == ["assess", "copy", "verify"]
    assert all(stage["state"] == "Succeeded" for stage in status["stages"])
    assert condition(plan, "Eligible")["status"] == "True"
    assert status["progress"] == 75

    # the copies are portable, labelled, and the copied CronJob waits for the cutover
    copy = world.kubectl.get("service", "permits", target)
    assert copy is not None
    assert copy["spec"]["clusterIP"] != source_service["spec"]["clusterIP"]
    assert copy["spec"]["ports"][0]["nodePort"] != source_service["spec"]["ports"][0]["nodePort"]
    assert copy["metadata"]["labels"][UID_LABEL] == plan["metadata"]["uid"]
    assert suspended(world.kubectl, target)
    assert not suspended(world.kubectl, legacy)
    wait_available(world.kubectl, "permits", target)
    assert replicas(world.kubectl, legacy) == (2, None)  # the source still runs

    # a tenant admin cannot approve; an approver cannot approve in someone else's name
    admin = world.kubectl.impersonate(f"{tenant}-lead", f"{tenant}-admins")
    testing.eventually(
        lambda: helpers.forbidden(approve(admin, target, name, f"{tenant}-lead"), "approve"),
        timeout=20,
        what="the approval policy to refuse a tenant admin",
    )
    approver = world.kubectl.impersonate(APPROVER, APPROVERS)
    refused = approve(approver, target, name, "someone-else")
    assert helpers.forbidden(refused, "your own user name"), refused.stderr
    assert phase_of(get_plan(world.kubectl, target, name)) == "AwaitingApproval"

    accepted = approve(approver, target, name, APPROVER)
    assert accepted.returncode == 0, accepted.stderr

    plan = wait_phase(world.kubectl, target, name, "Completed")
    status = plan["status"]
    assert status["progress"] == 100
    assert status["approvals"][0]["by"] == APPROVER
    assert status["cutoverAt"]
    assert status["completedAt"]
    assert replicas(world.kubectl, legacy) == (0, "2")
    assert suspended(world.kubectl, legacy)
    assert not suspended(world.kubectl, target)
    assert condition(plan, "Overdue")["reason"] == "CompletedOnTime"
    events = helpers.events_for(world.kubectl, name, "MigrationPlan")
    assert any(event["reason"] == "Approved" and APPROVER in event["message"] for event in events)

    # the tenant's roll-up counts it
    rollup = helpers.wait_tenant(
        world.kubectl,
        tenant,
        lambda body: ((body.get("status") or {}).get("migrations") or {}).get("completed") == 1,
        "migrations roll-up",
    )["status"]["migrations"]
    assert rollup == {"planned": 1, "completed": 1, "overdue": 0, "atRisk": 0, "onTimePercent": 100}

    # a Completed plan is not rolled back (test_security_migration.py): the copies are the app
    refused = world.kubectl.run(
        "patch", "migrationplan", name, "-n", target, "--type=merge",
        "-p", json.dumps({"spec": {"rollback": True}}),
    )  # fmt: skip
    assert refused.returncode != 0
    assert "a Completed plan cannot be rolled back" in refused.stderr


# -- failures in each stage: the app never runs at zero on both sides -------------------------


def test_a_name_clash_in_the_target_aborts_the_assessment_and_overwrites_nothing(
    world: World,
) -> None:
    tenant = world.tenant("mig-clash")
    target = f"{tenant}-apps"
    legacy = world.legacy(annotations={"govcloud.io/migration-grant": tenant})
    world.kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "permits-config", "namespace": target},
            "data": {"MODE": "theirs"},
        }
    )
    name = world.plan(target, legacy, target, approvalsRequired=[])

    plan = wait_phase(world.kubectl, target, name, "Failed")

    assessed = condition(plan, "Assessed")
    assert assessed["reason"] == "NameClash"
    assert f"ConfigMap {target}/permits-config already exists" in assessed["message"]
    assert planted(world.kubectl, target, plan) == []
    kept = world.kubectl.get("configmap", "permits-config", target)
    assert kept is not None
    assert kept["data"] == {"MODE": "theirs"}
    assert replicas(world.kubectl, legacy) == (2, None)


def test_a_failed_copy_rolls_back_automatically_and_leaves_the_source_running(
    world: World,
) -> None:
    tenant = world.tenant("mig-copy")
    target = f"{tenant}-apps"
    legacy = world.legacy(annotations={"govcloud.io/migration-grant": tenant})
    policy = helpers.unique("deny-copy")
    deny_policy(
        world,
        policy,
        {
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "operations": ["CREATE"],
            "resources": ["services"],
        },
        "false",
        target,
    )
    testing.eventually(  # the API server enforces a new policy after a moment
        lambda: world.kubectl.run(
            "create", "service", "clusterip", "vap-probe", "--tcp=80:80", "-n", target,
            "--dry-run=server",
        ).returncode != 0,
        timeout=30,
        what="the admission policy to refuse Services in the target",
    )  # fmt: skip
    name = world.plan(target, legacy, target, approvalsRequired=[], rollbackPolicy="Automatic")

    plan = wait_phase(world.kubectl, target, name, "RolledBack")

    copy = next(stage for stage in plan["status"]["stages"] if stage["name"] == "copy")
    assert copy["state"] == "Failed"
    assert "denied" in copy["message"]
    assert planted(world.kubectl, target, plan) == []
    assert replicas(world.kubectl, legacy) == (2, None)


def test_a_failed_verify_rolls_back_and_the_source_never_stopped(world: World) -> None:
    # Level 3 enforces Pod Security `restricted` in the target; the legacy pod is not, so the
    # copied Deployment can never become Available there.
    tenant = world.tenant("mig-verify", level=3)
    target = f"{tenant}-apps"
    legacy_pod = {"containers": [{"name": "app", "image": "registry.example.gov.cn/app:1.0"}]}
    legacy = world.legacy(annotations={"govcloud.io/migration-grant": tenant}, pod=legacy_pod)
    name = world.plan(
        target,
        legacy,
        target,
        app={"name": "旧系统", "securityLevel": 3},
        approvalsRequired=[],
        rollbackPolicy="Automatic",
        verifyTimeoutSeconds=10,
    )

    plan = wait_phase(world.kubectl, target, name, "RolledBack")

    verify = next(stage for stage in plan["status"]["stages"] if stage["name"] == "verify")
    assert verify["state"] == "Failed"
    assert "did not become Available" in verify["message"]
    assert replicas(world.kubectl, legacy) == (2, None)
    assert planted(world.kubectl, target, plan) == []


def test_a_failed_cutover_keeps_the_source_and_rollback_restores_exactly(world: World) -> None:
    tenant = world.tenant("mig-cut")
    target = f"{tenant}-apps"
    legacy = world.legacy(annotations={"govcloud.io/migration-grant": tenant}, replicas=3)
    policy = helpers.unique("deny-scale")
    deny_policy(
        world,
        policy,
        {
            "apiGroups": ["apps"],
            "apiVersions": ["v1"],
            "operations": ["UPDATE"],
            "resources": ["deployments"],
        },
        "object.spec.replicas != 0",
        legacy,
    )
    testing.eventually(  # the API server enforces a new policy after a moment
        lambda: (
            world.kubectl.run(
                "patch",
                "deployment",
                "permits",
                "-n",
                legacy,
                "--type=merge",
                "-p",
                '{"spec":{"replicas":0}}',
                "--dry-run=server",
            ).returncode
            != 0
        ),
        timeout=30,
        what="the admission policy to refuse scaling the source down",
    )
    name = world.plan(target, legacy, target, approvalsRequired=[])

    plan = wait_phase(world.kubectl, target, name, "Failed")

    cutover = next(stage for stage in plan["status"]["stages"] if stage["name"] == "cutover")
    assert cutover["state"] == "Failed"
    assert replicas(world.kubectl, legacy)[0] == 3  # never scaled down
    wait_available(world.kubectl, "permits", target)  # and the copy runs too

    world.kubectl.apply(plan_manifest(name, target, {**plan["spec"], "rollback": True}))
    plan = wait_phase(world.kubectl, target, name, "RolledBack")
    assert replicas(world.kubectl, legacy) == (3, None)
    assert planted(world.kubectl, target, plan) == []


# -- 7. restart-safe ------------------------------------------------------------------------


def test_killing_the_operator_mid_stage_resumes_without_duplicates(
    world: World, operator: testing.OperatorProcess
) -> None:
    tenant = world.tenant("mig-kill")
    target = f"{tenant}-apps"
    legacy = world.legacy(annotations={"govcloud.io/migration-grant": tenant})
    name = world.plan(target, legacy, target)
    wait_plan(
        world.kubectl,
        target,
        name,
        lambda p: phase_of(p) not in (None, "Pending"),
        "copying to begin",
        timeout=60,
    )
    operator.kill()
    operator.start()

    plan = wait_phase(world.kubectl, target, name, "AwaitingApproval")
    assert len(planted(world.kubectl, target, plan)) == 5
    replica_sets = world.kubectl.json("get", "replicasets", "-n", target)["items"]
    assert len(replica_sets) == 1  # the Deployment was applied identically, never re-templated

    assert (
        approve(world.kubectl.impersonate(APPROVER, APPROVERS), target, name, APPROVER).returncode
        == 0
    )
    wait_plan(
        world.kubectl,
        target,
        name,
        lambda p: (
            phase_of(p) in ("CuttingOver", "Completed")
            or replicas(world.kubectl, legacy)[1] is not None
        ),
        "the cutover to begin",
    )
    operator.kill()
    operator.start()

    plan = wait_phase(world.kubectl, target, name, "Completed")
    assert replicas(world.kubectl, legacy) == (0, "2")  # the real count, not the 0 it set
    assert len(planted(world.kubectl, target, plan)) == 5
    assert len(world.kubectl.json("get", "replicasets", "-n", target)["items"]) == 1


# -- 10. bad input ---------------------------------------------------------------------------


def test_bad_references_get_a_clear_condition_and_nothing_is_copied(world: World) -> None:
    a = world.tenant("mig-bad")
    b = world.tenant("mig-other")
    home = f"{a}-apps"
    legacy = world.legacy(annotations={"govcloud.io/migration-grant": a})
    gone = f"gone-{uuid.uuid4().hex[:6]}"
    cases = {
        "TargetNotOfTenant": world.plan(home, legacy, f"{b}-apps"),
        # the same answer as for another tenant's namespace: a plan probes nothing
        "SourceNotGranted": world.plan(home, gone, home),
        "SubCenterNotFound": world.plan(
            home, legacy, home, source={"namespace": legacy, "subCenter": "no-such-site"}
        ),
    }
    for reason, name in cases.items():
        plan = wait_plan(
            world.kubectl,
            home,
            name,
            lambda p, reason=reason: condition(p, "Authorized").get("reason") == reason,
            reason,
        )
        assert phase_of(plan) == "Pending", reason
        assert condition(plan, "Authorized")["status"] == "False"
        assert condition(plan, "DeadlineAtRisk")["reason"] == "Stalled"
        assert planted(world.kubectl, home, plan) == []
        assert planted(world.kubectl, f"{b}-apps", plan) == []
        if reason == "SourceNotGranted":
            assert (
                f"{gone} on the hub is not granted to tenant {a}, or does not exist"
                in (condition(plan, "Authorized")["message"])
            )


def test_ineligible_and_oversized_apps_fail_the_assessment(world: World) -> None:
    tenant = world.tenant("mig-elig")
    target = f"{tenant}-apps"
    legacy = world.legacy(annotations={"govcloud.io/migration-grant": tenant})
    classified = world.plan(
        target, legacy, target, app={"name": "涉密系统", "securityLevel": 2, "classified": True}
    )
    big_pod = helpers.pod_spec()
    big_pod["containers"][0]["resources"] = {"requests": {"cpu": "3"}}
    big = world.legacy(
        "legacy-big", annotations={"govcloud.io/migration-grant": tenant}, pod=big_pod, replicas=0
    )
    world.kubectl("scale", "deployment", "permits", "-n", big, "--replicas=2")
    oversized = world.plan(target, big, target)

    plan = wait_phase(world.kubectl, target, classified, "Failed")
    assert condition(plan, "Eligible")["reason"] == "Ineligible"
    assert "classified" in condition(plan, "Eligible")["message"]
    plan = wait_phase(world.kubectl, target, oversized, "Failed")
    assert "does not fit the free quota" in condition(plan, "Assessed")["message"]
    assert "requests.cpu: needs 6" in condition(plan, "Assessed")["message"]
    for name in (classified, oversized):
        assert planted(world.kubectl, target, get_plan(world.kubectl, target, name)) == []


@pytest.mark.parametrize(
    ("case", "patch", "message"),
    [
        (
            "deadline before notBefore",
            {"notBefore": "2030-01-01T00:00:00Z", "deadline": "2029-01-01T00:00:00Z"},
            "deadline must be later than notBefore",
        ),
        (
            "unknown kind",
            {"source": {"namespace": "legacy", "kinds": ["Deployment", "Pod"]}},
            "source.kinds may name only",
        ),
        (
            "source is the target",
            {"source": {"namespace": "same"}, "targetNamespace": "same"},
            "nothing would move",
        ),
        ("unknown rollback policy", {"rollbackPolicy": "Sometimes"}, "rollbackPolicy is Manual"),
    ],
)
def test_the_schema_refuses_bad_plans_with_a_readable_message(
    kubectl: testing.Kubectl, crds: None, case: str, patch: Manifest, message: str
) -> None:
    spec: Manifest = {
        "app": {"name": "x", "securityLevel": 2},
        "source": {"namespace": "legacy"},
        "targetNamespace": "target",
        "deadline": "2030-06-01T00:00:00Z",
        **patch,
    }
    result = kubectl.run(
        "apply",
        "--dry-run=server",
        "-f",
        "-",
        stdin=json.dumps(plan_manifest("bad", "default", spec)),
    )

    assert result.returncode != 0, case
    assert message in result.stderr, result.stderr
