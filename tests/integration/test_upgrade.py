"""Upgrade N-1 -> N with live objects (#13 item 9): the chart, CRDs and operator as of 100c552
(the commit before the #13/#14 work, kopf peering) run tenants, a plan, usage reports and a
migration waiting for its cutover approval; then the CRDs and the chart are upgraded and the
new operator takes over. Nothing is lost, nothing is rewritten that the changes do not need,
every stored object is still valid (CEL ratcheting), and the migration finishes.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import _billing_helpers as billing
import _chart_helpers as charts
import _tenant_helpers as helpers
import _upgrade_helpers as upgrade
import pytest

from govcloud.api import quantity
from govcloud.dev import cluster, testing

pytestmark = pytest.mark.integration

Manifest = dict[str, Any]
PEERING_CRD = "clusterkopfpeerings.kopf.dev"
# Valid when stored (old rules), beyond the bound the new CRD sets on quantities.
OUT_OF_BOUND = "1Ei"


@pytest.fixture
def old_tree(tmp_path: Path) -> Path:
    return upgrade.old_tree(tmp_path)


class World:
    """What the old release runs: three tenants, a plan, reports and a migration."""

    def __init__(self, kubectl: testing.Kubectl) -> None:
        suffix = uuid.uuid4().hex[:5]
        self.kubectl = kubectl
        self.tenants = helpers.Tenants(kubectl)
        self.plain = f"upg-{suffix}-a"
        self.mover = f"upg-{suffix}-b"
        self.huge = f"upg-{suffix}-c"
        self.legacy = f"upg-{suffix}-legacy"
        self.target = f"{self.mover}-apps"
        self.plan = f"{self.plain}-{datetime.now(UTC).year + 1}"
        self.migration = "move-permits"
        self.rate_card_made = False

    @property
    def names(self) -> list[str]:
        return [self.plain, self.mover, self.huge]

    @property
    def quota_labelled(self) -> set[str]:
        """Namespaces the new operator labels govcloud.io/quota=required: those of the tenants
        it reconciles (not the one whose quota is beyond the new bound, InvalidSpec)."""
        return {f"{self.plain}-apps", f"{self.plain}-web", self.target}

    @property
    def namespaces(self) -> list[str]:
        return [f"{self.plain}-apps", f"{self.plain}-web", self.target, f"{self.huge}-apps"]

    def build(self) -> None:
        if self.kubectl.get("ratecard", "default") is None:
            self.kubectl.apply(billing.RATE_CARD)
            self.rate_card_made = True
        self.tenants.create(self.plain, namespaces=("apps", "web"), editors={"users": ["bob"]})
        self.tenants.create(self.mover, admins={"groups": [f"{self.mover}-admins"]})
        self.tenants.create(
            self.huge, quota={"requests.cpu": "2", "requests.storage": OUT_OF_BOUND}
        )
        for name in self.names:
            helpers.wait_phase(self.kubectl, name, "Active", timeout=90)
        self.kubectl.apply(
            {
                "apiVersion": "govcloud.io/v1alpha1",
                "kind": "ResourcePlan",
                "metadata": {"name": self.plan},
                "spec": {
                    "tenant": self.plain,
                    "year": int(self.plan.rsplit("-", 1)[1]),
                    "lines": [
                        {"offering": "ecs.2c4g", "count": 2, "reason": "业务系统"},
                        {"resources": {"requests.storage": "500Gi"}, "reason": "档案"},
                    ],
                },
            }
        )
        self.build_migration()

    def build_migration(self) -> None:
        self.kubectl.apply(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": self.legacy,
                    "annotations": {"govcloud.io/migration-grant": self.mover},
                },
            }
        )
        self.tenants.track_namespace(self.legacy)
        deployment = helpers.deployment("permits", self.legacy, 2)
        self.kubectl.apply(deployment)
        self.kubectl.apply(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "permits-config", "namespace": self.legacy},
                "data": {"MODE": "prod"},
            }
        )
        deadline = datetime.now(UTC) + timedelta(days=30)
        self.kubectl.apply(
            {
                "apiVersion": "govcloud.io/v1alpha1",
                "kind": "MigrationPlan",
                "metadata": {"name": self.migration, "namespace": self.target},
                "spec": {
                    "app": {"name": "行政审批系统", "securityLevel": 2},
                    "source": {"namespace": self.legacy, "kinds": ["ConfigMap", "Deployment"]},
                    "targetNamespace": self.target,
                    "deadline": deadline.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "verifyTimeoutSeconds": 120,
                },
            }
        )

    def migration_phase(self) -> str | None:
        plan = self.kubectl.get("migrationplan", self.migration, self.target) or {}
        return (plan.get("status") or {}).get("phase")

    def reports(self) -> dict[str, Manifest]:
        found = self.kubectl.json("get", "usagereports")["items"]
        return {
            item["metadata"]["name"]: item
            for item in found
            if any(item["metadata"]["name"].startswith(name) for name in self.names)
        }

    def cleanup(self) -> None:
        self.kubectl.run(
            "delete", "migrationplan", self.migration, "-n", self.target, "--wait=false"
        )
        self.kubectl.run("delete", "resourceplan", self.plan, "--wait=false")
        self.tenants.cleanup()
        for name in self.reports():
            self.kubectl.run("delete", "usagereport", name, "--wait=false")
        if self.rate_card_made:
            self.kubectl.run("delete", "ratecard", "default", "--wait=false")


@pytest.fixture
def world(kubectl: testing.Kubectl) -> Iterator[World]:
    made = World(kubectl)
    yield made
    made.cleanup()


@pytest.fixture
def quiet_hub(operator: testing.OperatorProcess, world: World) -> Iterator[None]:
    """The session's operator is paused: only the old, then the new, operator act here. It
    is back before `world` is cleaned up, and lets the tenants go."""
    operator.stop()
    try:
        yield
    finally:
        operator.start()


def approve_cutover(kubectl: testing.Kubectl, world: World) -> None:
    """The cluster admin approves (the chart's policy checks `by` is whoever writes it)."""
    plan = kubectl.get("migrationplan", world.migration, world.target) or {}
    digest = (plan.get("status") or {}).get("digest")
    me = kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").strip()
    approval = {"stage": "cutover", "by": me, "comment": "局长批准", "digest": digest}
    kubectl(
        "patch", "migrationplan", world.migration, "-n", world.target, "--type=merge",
        "-p", json.dumps({"spec": {"approvals": [approval]}}),
    )  # fmt: skip


def settled_after_upgrade(kubectl: testing.Kubectl, world: World) -> bool:
    for name in world.names:
        body = kubectl.get("cloudtenant", name) or {}
        status = body.get("status") or {}
        if status.get("observedGeneration") != body["metadata"]["generation"]:
            return False
        wanted = "Error" if name == world.huge else "Active"
        if status.get("phase") != wanted:
            return False
        if not billed_and_readable(kubectl, name, status, world):
            return False
    return world.migration_phase() == "AwaitingApproval"


def billed_and_readable(
    kubectl: testing.Kubectl, name: str, status: dict[str, Any], world: World
) -> bool:
    """New in this release: metering shows the bill in status.billing, and (for a tenant the
    operator reconciles) its self-view names the report, before the quiet window is counted."""
    report = (status.get("billing") or {}).get("report")
    if not report:
        return False
    if name == world.huge:
        return True
    role = kubectl.get("clusterrole", f"govcloud:tenant:{name}:self-view") or {}
    return any(report in (rule.get("resourceNames") or []) for rule in role.get("rules") or [])


def passes_after(new: testing.OperatorProcess, world: World, since: float) -> str:
    """Wait until each tenant the operator manages had a pass that started after `since`;
    return the moment as the audit log writes it."""
    for name in (world.plain, world.mover):
        helpers.wait_reconciled_after(new, name, since, timeout=60)
    return upgrade.now_stamp()


def samples(report: Manifest) -> int:
    return int((report.get("status") or {}).get("samples") or 0)


def still_valid(kubectl: testing.Kubectl, kind: str, namespace: str, name: str) -> str | None:
    """Why a stored object would not take an unrelated edit now (None: it would)."""
    args = ["annotate", kind, name, "govcloud.io/upgrade-check=1", "--dry-run=server"]
    if namespace:
        args += ["-n", namespace]
    result = kubectl.run(*args)
    return None if result.returncode == 0 else result.stderr.strip()


def test_an_upgrade_from_the_release_before_keeps_everything_and_rewrites_only_what_changed(
    hub: cluster.ControlPlane,
    kubectl: testing.Kubectl,
    world: World,
    quiet_hub: None,
    old_tree: Path,
) -> None:
    suffix = uuid.uuid4().hex[:5]
    release, namespace, peering = f"upg-{suffix}", f"upg-{suffix}-system", f"upg-{suffix}"
    old_chart = old_tree / "charts" / "govcloud-operator"
    had_peering_crd = kubectl.get("crd", PEERING_CRD) is not None
    old = upgrade.old_operator(hub, old_tree, peering)
    new: testing.OperatorProcess | None = None
    try:
        # -- the release before: its CRDs (kopf's peering CRD among them) and chart ----------
        kubectl.apply_crds(old_chart / "crds")
        upgrade.helm_ok(
            "install", release, str(old_chart), "-n", namespace, "--create-namespace",
            "--skip-crds", "--set", "replicaCount=0", "--set", f"peering.name={peering}",
            "--wait", "--timeout=120s", hub=hub,
        )  # fmt: skip
        old.start()
        world.build()
        testing.eventually(
            lambda: world.migration_phase() == "AwaitingApproval",
            timeout=120,
            what="the migration to wait for its cutover approval under the old operator",
        )
        testing.eventually(
            lambda: (
                len(world.reports()) >= len(world.names)
                and all(samples(report) > 0 for report in world.reports().values())
            ),
            timeout=60,
            what="a usage report with samples for every tenant",
        )
        old.stop()
        before = upgrade.snapshot(kubectl, world.names, [*world.namespaces, world.legacy])
        reports_before = world.reports()

        # -- the upgrade: CRDs first (helm never upgrades them), then the chart, then the new
        # operator, which finds everything as the old one left it ------------------------------
        kubectl.apply_crds()
        upgrade.helm_ok(
            "upgrade", release, str(charts.CHART), "-n", namespace, "--set", "replicaCount=0",
            "--set", f"leaderElection.leaseName={peering}", "--wait", "--timeout=120s", hub=hub,
        )  # fmt: skip
        started = upgrade.now_stamp()
        new = upgrade.new_operator(hub, peering).start()
        testing.eventually(
            lambda: settled_after_upgrade(kubectl, world),
            timeout=120,
            what="every tenant looked at by the new operator, the migration still waiting",
        )
        # Every managed tenant has had a whole pass after settling (the first window), and
        # then another (the second, which a converged operator must spend writing nothing).
        converged = passes_after(new, world, time.time())
        quiet = passes_after(new, world, time.time())

        after = upgrade.snapshot(kubectl, world.names, [*world.namespaces, world.legacy])
        first = upgrade.tally(upgrade.operator_writes(hub, started, converged))
        steady = upgrade.tally(upgrade.operator_writes(hub, converged, quiet))
        print("writes after the upgrade:", json.dumps(sorted(first.items()), indent=1))
        print("steady-state writes:", json.dumps(sorted(steady.items()), indent=1))

        # -- nothing lost ---------------------------------------------------------------------
        lost = sorted(set(before) - set(after))
        assert not lost, f"gone after the upgrade: {lost}"
        replaced = sorted(key for key in before if before[key]["uid"] != after[key]["uid"])
        assert not replaced, f"deleted and made again: {replaced}"
        for key, was in before.items():
            for field in ("spec", "content"):
                now = without_new_egress(key, field, after[key].get(field))
                assert now == was.get(field), f"{key}: {field} changed"
            assert without_new_labels(after[key]) == was.get("labels"), f"{key}: labels changed"
        assert labelled_quota_required(after) == world.quota_labelled
        assert any(
            ((found.get("content") or {}).get("spec") or {}).get("egress")
            for key, found in after.items()
            if key.startswith("networkpolicies/")
        ), "the new release restricts egress"
        reports_after = world.reports()
        assert set(reports_after) >= set(reports_before), "a usage report is gone"
        for name, report in reports_before.items():
            assert samples(reports_after[name]) >= samples(report), f"{name} lost samples"
        extra = sorted(set(reports_after) - set(reports_before))
        assert not extra, f"a second report for a tenant and period: {extra}"

        # -- nothing rewritten needlessly -----------------------------------------------------
        assert_writes_needed(first, world)
        assert_only_upkeep(steady)

        # -- every stored object still valid: an unrelated edit is taken (ratcheting) ---------
        invalid = {
            key: why
            for key in after
            if key.split("/")[0] in upgrade.CUSTOM_KINDS
            and (why := still_valid(kubectl, *key.split("/", 2)))
        }
        assert not invalid, f"stored objects that no longer take an edit: {invalid}"
        assert_ratchets(kubectl, world)

        # -- the migration in flight finishes under the new operator --------------------------
        approve_cutover(kubectl, world)
        testing.eventually(
            lambda: world.migration_phase() == "Completed",
            timeout=120,
            what="the migration to finish under the new operator",
        )
        source = kubectl.get("deployment", "permits", world.legacy) or {}
        assert source["spec"]["replicas"] == 0
        assert kubectl.get("deployment", "permits", world.target) is not None
        assert "Traceback" not in new.log_tail(400), new.log_tail(60)
    finally:
        old.stop()
        if new is not None:
            new.stop()
        kubectl.apply_crds()
        charts.helm("uninstall", release, "-n", namespace, "--wait", kubeconfig=hub.kubeconfig)
        kubectl.run("delete", "namespace", namespace, "--wait=false")
        kubectl.run("delete", "clusterkopfpeering", peering, "--ignore-not-found")
        if not had_peering_crd:
            kubectl.run("delete", "crd", PEERING_CRD, "--ignore-not-found", "--wait=false")


# Labels this release adds to existing objects: govcloud.io/quota=required on the namespaces of
# a tenant with a quota (the chart's quota-first policy makes their pods wait for it).
NEW_LABELS = ("govcloud.io/quota",)


def without_new_egress(key: str, field: str, value: Any) -> Any:
    """A tenant's isolation policy as the release before wrote it: this release adds egress
    (docs/network.md), the one change the upgrade makes to it (not for the tenant whose spec
    the new release refuses: its objects are left as they were)."""
    if not key.startswith("networkpolicies/") or field != "content" or not value:
        return value
    spec = dict(value.get("spec") or {})
    if "egress" not in spec:
        return value
    assert spec.get("policyTypes") == ["Ingress", "Egress"], key
    spec.pop("egress")
    spec["policyTypes"] = ["Ingress"]
    return {**value, "spec": spec}


def without_new_labels(found: dict[str, Any]) -> Any:
    labels = found.get("labels")
    if labels is None:
        return None
    return {key: value for key, value in labels.items() if key not in NEW_LABELS}


def labelled_quota_required(snapshot: dict[str, dict[str, Any]]) -> set[str]:
    return {
        key.rpartition("/")[2]
        for key, found in snapshot.items()
        if key.startswith("namespaces/")
        and (found.get("labels") or {}).get("govcloud.io/quota") == "required"
    }


def assert_writes_needed(first: Any, world: World) -> None:
    """Each write the new operator made once it took over, by what needs it."""
    unexplained = {
        key: count for key, count in first.items() if not needed_after_upgrade(key, world)
    }
    assert not unexplained, f"writes the upgrade does not need: {unexplained}"


def needed_after_upgrade(key: tuple[str, str, str, str], world: World) -> bool:
    """Measured: an Event (the InvalidSpec warning), one status write of the tenant beyond the
    new bound, metering's writes (reports, and status.billing of each tenant), the self-view
    roles naming the reports, the new finance roles, the new namespace label, the plan's new
    status.payer (once) and each isolation policy's new egress; the tenants' quotas, limits and
    bindings, the plan's spec and the migration are not written at all."""
    verb, resource, _, name = key
    if resource == "leases" or (verb, resource) == ("create", "events"):
        return True  # leader election (a Lease now instead of kopf peering) and Events
    needed = {
        # Error/InvalidSpec for the tenant whose quota is beyond the new bound; and the new
        # status.billing metering writes for every tenant it meters.
        "cloudtenants/status": set(world.names),
        # The self-view now names the tenant's reports (members read their own bills), and the
        # new finance role names them for the level that pays (docs/billing.md).
        "clusterroles": {
            f"govcloud:tenant:{tenant}:{role}"
            for tenant in world.names
            for role in ("self-view", "finance")
        },
        "networkpolicies": {"govcloud-isolation"},  # egress, new: docs/network.md
        "resourceplans/status": {world.plan},  # the level that pays and decides: status.payer
        "namespaces": world.quota_labelled,  # the new govcloud.io/quota label, once each
    }
    if verb == "patch" and resource in needed:
        return name in needed[resource]
    # Metering goes on: each tick's accrual of the world's reports, and the close of any
    # report left open by a tenant deleted earlier (another test's, on a shared hub).
    return (verb, resource) == ("patch", "usagereports/status")


def assert_only_upkeep(steady: Any) -> None:
    """Once converged, the new operator writes only its Lease, Events and metering."""
    upkeep = ("leases", "events", "usagereports/status")
    other = {key: count for key, count in steady.items() if key[1] not in upkeep}
    assert not other, f"writes of a converged operator: {other}"


def assert_ratchets(kubectl: testing.Kubectl, world: World) -> None:
    """The tenant stored with a quota beyond the new bound: the API server still takes an
    unrelated edit, refuses a new out-of-bound value, and the operator says what to fix."""
    tenant = kubectl.get("cloudtenant", world.huge) or {}
    ready = helpers.condition(tenant, "Ready")
    assert ready.get("reason") == "InvalidSpec", ready
    assert quantity.MAX_VALUE_TEXT in ready.get("message", ""), ready
    edit = {"spec": {"displayName": "改名后的单位"}}
    taken = kubectl.run(
        "patch", "cloudtenant", world.huge, "--type=merge", "-p", json.dumps(edit),
        "--dry-run=server",
    )  # fmt: skip
    assert taken.returncode == 0, taken.stderr
    worse = {"spec": {"quota": {"requests.storage": "2Ei"}}}
    refused = kubectl.run(
        "patch", "cloudtenant", world.huge, "--type=merge", "-p", json.dumps(worse),
        "--dry-run=server",
    )  # fmt: skip
    assert refused.returncode != 0
    assert "quantities must be at most" in refused.stderr, refused.stderr
