"""The platform ledger (issue 17, item 2): with backups on, the operator keeps a Velero Schedule
of its own records; a backup from it, made by the real Velero server into a real S3 store
(moto), is restored into an empty second control plane as docs/backup.md says; an operator
started there adopts the ledger as it was: the tenant Ready with its namespace made again, the
approved plan still approved (its review and history as recorded, no new decision, the tenant
capped by it), its closed report never written, its open report still its own. The restored
objects equal the originals. Only the chart's admission policies stand between Velero and the
restored decisions: the restorer's custom verb lets it re-create them, and nobody else."""

from __future__ import annotations

import copy
import datetime
import json
import os
from collections.abc import Iterator
from typing import Any

import _billing_helpers as bh
import _tenant_helpers as helpers
import _velero_helpers as vh
import pytest
from _chart_helpers import render

from govcloud.billing import periods
from govcloud.desired import ledger
from govcloud.dev import cluster, objectstore, testing, velero

pytestmark = pytest.mark.integration

Manifest = dict[str, Any]
TZ = periods.zone(8.0)
APPROVER = "li.approver"
# Yearly crons: Velero's clock makes no backup while the test runs; the test makes the backup
# from the ledger's Schedule, as `velero backup create --from-schedule` does.
LEVELS = {
    "1": {"schedule": "0 0 1 1 *", "interval": "1h", "ttl": "720h", "rpo": "2h"},
    "2": {"schedule": "0 0 1 1 *", "interval": "1h", "ttl": "720h", "rpo": "2h"},
    "3": {"schedule": "0 0 1 1 *", "interval": "1h", "ttl": "720h", "rpo": "2h"},
}
# Both hubs run the operator with the same platform settings (the same chart values).
OPERATOR_ENV = {
    "GOVCLOUD_RESYNC_SECONDS": "3",
    "GOVCLOUD_PLATFORM_NAMESPACES": "monitoring",
    "GOVCLOUD_METERING_INTERVAL_SECONDS": "1",
    "GOVCLOUD_METERING_CHECKPOINT_SECONDS": "86400",
    "GOVCLOUD_REQUIRE_APPROVED_PLAN": "true",
    "GOVCLOUD_STARTER_ALLOWANCE": bh.STARTER,
    "GOVCLOUD_BACKUP_ENABLED": "true",
    "GOVCLOUD_BACKUP_LEVELS": json.dumps(LEVELS),
    "GOVCLOUD_LEDGER_SCHEDULE": "0 0 1 1 *",
    "GOVCLOUD_LEDGER_RPO": "2h",
}
QUOTA = {"requests.cpu": "8", "requests.memory": "16Gi", "pods": "20"}
CAPPED = {"requests.cpu": "4", "requests.memory": "8Gi", "pods": "20"}  # by the approved plan
RAISED = {"requests.cpu": "6", "requests.memory": "12Gi", "pods": "20"}  # and its request
CHART_POLICIES = (
    ("ValidatingAdmissionPolicy", "govcloud-usagereport-protection"),
    ("ValidatingAdmissionPolicyBinding", "govcloud-usagereport-protection"),
    ("ClusterRole", "govcloud:ledger-restorer"),
    ("ClusterRoleBinding", "govcloud:ledger-restorer"),
)


@pytest.fixture(scope="module")
def store() -> Iterator[objectstore.ObjectStore]:
    with vh.object_store() as started:
        yield started


@pytest.fixture(scope="module")
def chart_policies() -> list[Manifest]:
    """The chart's UsageReport protection and ledger restorer, as a release with backups on
    renders them."""
    rendered = render("--set", "backup.enabled=true")
    return [item for item in rendered if (item["kind"], item["metadata"]["name"]) in CHART_POLICIES]


def marked(manifest: Manifest, marker: dict[str, str]) -> Manifest:
    """The manifest with the test's label (its Restore picks this test's records only: the
    hub of a test session holds other modules' records too)."""
    found = copy.deepcopy(manifest)
    found["metadata"].setdefault("labels", {}).update(marker)
    return found


def content(body: Manifest) -> Manifest:
    """What a restore must bring back as it was: spec, status, labels (but Velero's own),
    annotations and finalizers; not what the API server assigns (uid, generation, times)."""
    metadata = body["metadata"]
    return {
        "spec": body.get("spec"),
        "status": body.get("status"),
        "labels": {
            key: value
            for key, value in (metadata.get("labels") or {}).items()
            if not key.startswith("velero.io/")
        },
        "annotations": metadata.get("annotations"),
        "finalizers": metadata.get("finalizers"),
    }


def _changes(before: Manifest, after: Manifest | None) -> dict[str, Any]:
    """The top-level spec and status fields that differ (and the metadata, if it moved)."""
    assert after is not None
    found: dict[str, Any] = {}
    for part in ("spec", "status"):
        old, new = before.get(part) or {}, after.get(part) or {}
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                found[f"{part}.{key}"] = (old.get(key), new.get(key))
    if not found and before["metadata"]["resourceVersion"] != after["metadata"]["resourceVersion"]:
        found["metadata"] = (before["metadata"], after["metadata"])
    return found


def closed_report(tenant: Manifest, period: periods.Period, marker: dict[str, str]) -> Manifest:
    uid = tenant["metadata"]["uid"]
    name = tenant["metadata"]["name"]
    return marked(
        {
            "apiVersion": "govcloud.io/v1alpha1",
            "kind": "UsageReport",
            "metadata": {
                "name": f"{name}-{period.name}",
                "labels": {
                    "app.kubernetes.io/managed-by": "govcloud-operator",
                    "govcloud.io/tenant": name,
                    "govcloud.io/period": period.name,
                    "govcloud.io/tenant-uid": uid,
                },
            },
            "spec": {"tenant": name, "period": period.name, "tenantUID": uid},
        },
        marker,
    )


LEDGER_KINDS = (
    "CloudTenant", "SubCenter", "RateCard", "ResourcePlan", "UsageReport", "ResourceRequest",
)  # fmt: skip


def _velero_with_the_bucket(
    plane: cluster.ControlPlane, store: objectstore.ObjectStore
) -> velero.VeleroServer:
    """Velero on the new hub, reading the bucket. Velero syncs the bucket's backups into a
    cluster when it starts and then once a minute, from a storage location it has found
    Available: said so ahead (the server validates it again at once), so that the backup is
    synced at its start, not a minute later."""
    kubectl = testing.Kubectl(plane.kubeconfig)
    server = velero.VeleroServer(
        plane.kubeconfig,
        store,
        vh.BUCKET,
        vh.LOGS / f"velero-{plane.name}-{os.getpid()}.log",
        read_only=True,
    )
    server.install(kubectl)
    kubectl(
        "patch", "backupstoragelocation", "default", "-n", velero.NAMESPACE, "--type=merge",
        "-p", json.dumps({"status": {"phase": "Available"}}),
    )  # fmt: skip
    server.start()
    try:
        testing.eventually(
            lambda: vh.phase_of(server, kubectl, "backupstoragelocation", "default") == "Available",
            timeout=60,
            what=f"Velero's storage location on {plane.name} to be Available",
        )
    except BaseException:
        server.stop()
        raise
    return server


REQUEST = "flood-season"


def in_year_request(namespace: str, year: int) -> Manifest:
    return {
        "apiVersion": "govcloud.io/v1alpha1",
        "kind": "ResourceRequest",
        "metadata": {"name": REQUEST, "namespace": namespace},
        "spec": {
            "year": year,
            "lines": [
                {"resources": {"requests.cpu": "2", "requests.memory": "4Gi"}, "count": 1,
                 "reason": "汛期扩容"},
            ],
        },
    }  # fmt: skip


def review_of(kubectl: testing.Kubectl, name: str) -> Manifest:
    return dict(((kubectl.get("resourceplan", name) or {}).get("status") or {}).get("review") or {})


def operator_writes(process: testing.OperatorProcess, kind: str) -> float:
    return process.metric_value("govcloud_api_writes_total", kind=kind)


def resyncs(process: testing.OperatorProcess, tenant: str, passes: int) -> None:
    """Until the tenant has had `passes` more passes (its last-reconcile time moves)."""
    metric = "govcloud_tenant_last_reconcile_timestamp_seconds"
    seen = process.metric_value(metric, tenant=tenant)
    for _ in range(passes):
        seen = testing.eventually(
            lambda seen=seen: (
                (value := process.metric_value(metric, tenant=tenant)) > seen and value
            ),
            timeout=30,
            what=f"another pass of {tenant}",
        )


def test_the_ledger_restored_into_an_empty_hub_is_adopted_as_it_was(
    hub: cluster.ControlPlane,
    subcenter: cluster.ControlPlane,
    kubectl: testing.Kubectl,
    site_kubectl: testing.Kubectl,
    store: objectstore.ObjectStore,
    operator: testing.OperatorProcess,
    chart_policies: list[Manifest],
) -> None:
    name = helpers.unique("ledger")
    marker = {"govcloud.io/ledger-test": name}
    now = datetime.datetime.now(datetime.UTC)
    year = periods.year_of(now, TZ)
    period = periods.period_of(now, TZ)
    plan_name = f"{name}-{year}"
    closed_name = f"{name}-{period.previous().name}"
    namespace = f"{name}-apps"
    open_name = f"{name}-{period.name}"
    backup_name = f"{ledger.SCHEDULE_NAME}-{name}"
    logs = vh.LOGS
    old_hub: testing.OperatorProcess | None = None
    new_hub: testing.OperatorProcess | None = None
    servers: list[velero.VeleroServer] = []
    operator.stop()  # one operator with billing and backups, in its place
    bh.install_review(kubectl)
    try:
        for plane in (kubectl, site_kubectl):
            testing.eventually(
                lambda plane=plane: vh.velero_gone(plane),
                timeout=120,
                what="Velero's CRDs and namespace of an earlier test to be gone",
            )
        old_hub = testing.OperatorProcess(
            hub.kubeconfig, logs / f"operator-ledger-hub-{os.getpid()}.log", env=OPERATOR_ENV
        ).start()

        # -- the ledger on the hub: a tenant, its approved plan with a history, the rate card,
        # a closed report of last month and this month's open one.
        kubectl.apply(marked(bh.RATE_CARD, marker))
        kubectl.apply(
            marked(
                helpers.tenant_manifest(name, quota=QUOTA, admins={"users": [f"{name}-admin"]}),
                marker,
            )
        )
        helpers.wait_phase(kubectl, name, "Active")
        kubectl.apply(
            marked(
                bh.plan(
                    name,
                    year,
                    {"resources": {"requests.cpu": "4", "requests.memory": "8Gi"}, "count": 1,
                     "reason": "业务系统上云"},
                ),
                marker,
            )
        )  # fmt: skip
        approver = kubectl.impersonate(APPROVER, bh.APPROVERS)
        for state, reason in (("ChangesRequested", "请补充说明"), ("Approved", "符合年度预算")):
            read = bh.generation_of(approver, plan_name)
            decided = bh.patch_plan(
                approver, plan_name, bh.decide(state, APPROVER, reason, generation=read)
            )
            assert decided.returncode == 0, decided.stderr
            testing.eventually(
                lambda state=state: review_of(kubectl, plan_name).get("state") == state,
                timeout=30,
                what=f"the plan's review to record {state}",
            )
        helpers.wait_tenant(
            kubectl,
            name,
            lambda body: (body.get("status") or {}).get("quota", {}).get("hard") == CAPPED,
            "its quota capped by the approved plan",
        )
        # An in-year request, approved: the cap moves by it.
        kubectl.apply(marked(in_year_request(namespace, year), marker))
        decided = approver.run(
            "patch", "resourcerequest", REQUEST, "-n", namespace, "--type=merge",
            "-p", bh.decide("Approved", APPROVER, "同意汛期扩容", generation=1),
        )  # fmt: skip
        assert decided.returncode == 0, decided.stderr
        helpers.wait_tenant(
            kubectl,
            name,
            lambda body: (body.get("status") or {}).get("quota", {}).get("hard") == RAISED,
            "its quota raised by the approved request",
        )
        tenant = kubectl.get("cloudtenant", name)
        assert tenant is not None
        report = closed_report(tenant, period.previous(), marker)
        kubectl.apply(report)  # last month's, opened late: metering settles and closes it
        testing.eventually(
            lambda: ((kubectl.get("usagereport", closed_name) or {}).get("status") or {}).get(
                "closed"
            ),
            timeout=30,
            what="metering to close last month's report",
        )
        testing.eventually(
            lambda: kubectl.get("usagereport", open_name),
            timeout=30,
            what="metering to open this month's report",
        )
        kubectl("label", "usagereport", open_name, *[f"{k}={v}" for k, v in marker.items()])

        # -- the ledger's Schedule and a backup from it (Velero's server on the hub).
        servers.append(vh.running_velero(hub, store, read_only=False))
        schedule = testing.eventually(
            lambda: kubectl.get("schedule", ledger.SCHEDULE_NAME, velero.NAMESPACE),
            timeout=30,
            what="the ledger's Schedule",
        )
        template = schedule["spec"]["template"]
        assert template["includedClusterScopedResources"] == list(ledger.CLUSTER_SCOPED)
        assert template["includedNamespaceScopedResources"] == list(ledger.NAMESPACED)
        testing.eventually(
            lambda: vh.phase_of(servers[0], kubectl, "schedule", ledger.SCHEDULE_NAME) == "Enabled",
            timeout=30,
            what="Velero to enable the ledger's Schedule",
        )
        records = [
            ("cloudtenant", name),
            ("resourceplan", plan_name),
            ("ratecard", "default"),
            ("usagereport", closed_name),
            ("resourcerequest", REQUEST, namespace),
        ]
        resyncs(old_hub, name, 1)  # its own Schedule made, now that Velero is here: settled
        originals = {key: kubectl.get(*key) for key in records}
        kubectl.apply(
            {
                "apiVersion": "velero.io/v1",
                "kind": "Backup",
                "metadata": {
                    "name": backup_name,
                    "namespace": velero.NAMESPACE,
                    "labels": {
                        **template["metadata"]["labels"],
                        "velero.io/schedule-name": ledger.SCHEDULE_NAME,
                    },
                },
                "spec": {key: value for key, value in template.items() if key != "metadata"},
            }
        )
        phase = vh.finished(servers[0], kubectl, "backup", backup_name)
        assert phase == "Completed", servers[0].log_tail()
        made = kubectl.get("backup", backup_name, velero.NAMESPACE)
        assert made is not None
        # Its recovery point shows in the operator's metrics.
        finished_at = datetime.datetime.fromisoformat(
            made["status"]["completionTimestamp"].replace("Z", "+00:00")
        ).timestamp()
        testing.eventually(
            lambda: (
                old_hub.metric_value("govcloud_ledger_backup_last_success_timestamp_seconds")
                == finished_at
            ),
            timeout=30,
            what="the ledger's last backup in the metrics",
        )
        assert old_hub.metric_value("govcloud_ledger_backup_rpo_met") == 1
        # What the backup holds is what the hub holds: nothing was written while it ran (the
        # ledger rests: no pass rewrites a plan, a report or a tenant).
        for key, original in originals.items():
            assert original is not None, key
            assert _changes(original, kubectl.get(*key)) == {}, key
        # The backup holds the ledger's kinds only, nothing a department runs
        held = vh.resource_list(store, backup_name)
        # (and what Velero adds: their CRDs, and the namespace objects it makes a restored
        # request's namespace from, with its tenant's label).
        kinds = {f"govcloud.io/v1alpha1/{kind}" for kind in LEDGER_KINDS}
        crds = "apiextensions.k8s.io/v1/CustomResourceDefinition"
        assert set(held) <= {*kinds, crds, "v1/Namespace"}, sorted(held)
        assert all(item.endswith(".govcloud.io") for item in held.get(crds, [])), held[crds]
        assert held["govcloud.io/v1alpha1/ResourceRequest"] == [f"{namespace}/{REQUEST}"]
        assert held["govcloud.io/v1alpha1/ResourcePlan"]
        assert held["govcloud.io/v1alpha1/UsageReport"]
        servers.pop().stop()  # one Velero server per machine
        old_hub.stop()

        # -- an empty hub: the CRDs and the chart's admission policies, Velero on the bucket.
        site_kubectl.apply_crds()
        bh.install_review(site_kubectl)
        for manifest in chart_policies:
            site_kubectl.apply(manifest)
        assert site_kubectl.json("get", "cloudtenants")["items"] == []
        servers.append(_velero_with_the_bucket(subcenter, store))
        testing.eventually(
            lambda: site_kubectl.get("backup", backup_name, velero.NAMESPACE),
            timeout=vh.SYNC_TIMEOUT,
            what="the ledger's backup to be synced from the bucket",
        )
        restore = ledger.restore(f"{name}-records", backup_name, velero.NAMESPACE)
        restore["spec"]["labelSelector"] = {"matchLabels": marker}
        site_kubectl.apply(restore)
        phase = vh.finished(servers[0], site_kubectl, "restore", restore["metadata"]["name"])
        done = site_kubectl.get("restore", restore["metadata"]["name"], velero.NAMESPACE) or {}
        assert phase == "Completed", (done.get("status"), servers[0].log_tail())
        restored = {key: site_kubectl.get(*key) for key in records}
        for key, original in originals.items():
            assert restored[key] is not None, f"{key} was not restored"
            assert content(restored[key]) == content(original), key  # type: ignore[arg-type]
        assert restored[("resourceplan", plan_name)]["metadata"]["generation"] == 1  # type: ignore[index]
        closed_version = restored[("usagereport", closed_name)]["metadata"]["resourceVersion"]  # type: ignore[index]
        # The request's namespace is made by Velero from the backup, with its tenant's label.
        made_again = site_kubectl.get("namespace", namespace)
        assert made_again is not None
        assert helpers.labels_of(made_again)["govcloud.io/tenant"] == name

        # -- the operator adopts it.
        new_hub = testing.OperatorProcess(
            subcenter.kubeconfig, logs / f"operator-ledger-new-{os.getpid()}.log", env=OPERATOR_ENV
        ).start()
        testing.eventually(  # the restored status says Active already: its quota tells the pass
            lambda: site_kubectl.json("get", "resourcequotas", "-n", namespace)["items"],
            timeout=60,
            what=f"the operator to take {namespace} again",
        )
        adopted = helpers.wait_phase(site_kubectl, name, "Active")
        assert helpers.condition(adopted, "Ready")["status"] == "True"
        helpers.wait_tenant(
            site_kubectl,
            name,
            lambda body: (body.get("status") or {}).get("quota", {}).get("hard") == RAISED,
            "its quota capped by the restored approved plan and request, not decided again"
            " (without them the starter allowance: 2 cores)",
        )
        testing.eventually(
            lambda: (
                [
                    item["spec"]["hard"].get("requests.cpu")
                    for item in site_kubectl.json("get", "resourcequotas", "-n", namespace)["items"]
                ]
                == ["6"]
            ),
            timeout=30,
            what=f"the quota of {namespace} at the approved 6 cores",
        )
        within = helpers.condition(site_kubectl.get("cloudtenant", name), "WithinPlan")
        assert within["reason"] == "CappedByPlan", within
        assert "1 approved ResourceRequest" in within["message"], within
        assert adopted["status"]["ledgerUID"] == tenant["metadata"]["uid"]
        assert adopted["metadata"]["uid"] != tenant["metadata"]["uid"]

        request_key = records[-1]
        resyncs(new_hub, name, 2)
        plan_now = site_kubectl.get("resourceplan", plan_name)
        assert plan_now is not None
        original_plan = originals[("resourceplan", plan_name)]
        assert original_plan is not None
        assert plan_now["status"]["review"] == original_plan["status"]["review"]  # not re-decided
        assert plan_now["status"]["history"] == original_plan["status"]["history"]
        assert [entry["state"] for entry in plan_now["status"]["history"]] == [
            "ChangesRequested",
            "Approved",
        ]
        approved = bh.condition(plan_now, "Approved")
        assert (approved["status"], approved["reason"]) == ("True", "Approved"), approved
        decided_events = site_kubectl.json(
            "get", "events", "-A", "--field-selector", f"involvedObject.name={plan_name}"
        )["items"]
        assert [e["reason"] for e in decided_events if e["reason"].startswith("Plan")] == []
        assert [e["reason"] for e in decided_events if e["reason"].startswith("Decision")] == []
        request_now = site_kubectl.get(*request_key)
        original_request = originals[request_key]
        assert request_now is not None
        assert original_request is not None
        assert request_now["status"]["review"] == original_request["status"]["review"]
        assert request_now["status"]["history"] == original_request["status"]["history"]
        assert bh.condition(request_now, "Approved")["status"] == "True"
        request_events = site_kubectl.json(
            "get", "events", "-n", namespace, "--field-selector", f"involvedObject.name={REQUEST}"
        )["items"]
        assert [e["reason"] for e in request_events if e["reason"].startswith("Request")] == []

        # Closed reports are never written; this month's open report stays the tenant's own.
        assert (
            site_kubectl.get("usagereport", closed_name)["metadata"]["resourceVersion"]  # type: ignore[index]
            == closed_version
        )
        open_report = site_kubectl.get("usagereport", open_name)
        assert open_report is not None
        assert not open_report["status"].get("closed"), open_report["status"]
        reports = site_kubectl.json("get", "usagereports", "-l", f"govcloud.io/tenant={name}")
        assert sorted(item["metadata"]["name"] for item in reports["items"]) == sorted(
            [closed_name, open_name]
        )
        audited = [
            event
            for event in subcenter.audit_events()
            if str(event.get("userAgent", "")).startswith("govcloud-operator/")
            and (event.get("objectRef") or {}).get("name") == closed_name
        ]
        assert audited == []

        # At rest: several passes and metering ticks write no plan, report or tenant.
        before = {
            kind: operator_writes(new_hub, kind)
            for kind in ("ResourcePlan", "ResourceRequest", "UsageReport", "CloudTenant")
        }
        resyncs(new_hub, name, 2)
        after = {kind: operator_writes(new_hub, kind) for kind in before}
        assert after == before, new_hub.log_tail()
        assert (
            site_kubectl.get("usagereport", closed_name)["metadata"]["resourceVersion"]  # type: ignore[index]
            == closed_version
        )
        # And the new hub protects its ledger again.
        assert site_kubectl.get("schedule", ledger.SCHEDULE_NAME, velero.NAMESPACE) is not None
    finally:
        for server in servers:
            server.stop()
        if new_hub is not None:  # it deletes what it made for the tenant on the new hub
            site_kubectl.run("delete", "cloudtenant", name, "--wait=false", "--ignore-not-found")
            testing.eventually(
                lambda: site_kubectl.get("cloudtenant", name) is None,
                timeout=60,
                what=f"CloudTenant {name} to be deleted on the new hub",
            )
        for process in (old_hub, new_hub):
            if process is not None:
                process.stop()
        _clean_site(site_kubectl, name, chart_policies)
        _clean_hub(kubectl, name, plan_name, operator)


def _clean_site(site_kubectl: testing.Kubectl, name: str, chart_policies: list[Manifest]) -> None:
    """The second control plane as it was: no govcloud.io kinds, policies or namespaces."""
    for kind in ("cloudtenants", "resourceplans", "usagereports", "ratecards"):
        listed = site_kubectl.run("get", kind, "-o", "name")
        for item in listed.stdout.split():
            site_kubectl.run(
                "patch", item, "--type=merge", "-p", '{"metadata":{"finalizers":null}}'
            )
    site_kubectl.run("delete", "namespace", f"{name}-apps", "--wait=false", "--ignore-not-found")
    for manifest in chart_policies:
        site_kubectl.run(
            "delete", manifest["kind"], manifest["metadata"]["name"], "--ignore-not-found"
        )
    bh.remove_review(site_kubectl)
    for path in sorted(testing.CRD_DIR.glob("*.yaml")):
        site_kubectl.run("delete", "-f", str(path), "--ignore-not-found", "--wait=false")
    vh.uninstall(site_kubectl)


def _clean_hub(
    kubectl: testing.Kubectl, name: str, plan_name: str, operator: testing.OperatorProcess
) -> None:
    try:
        vh.uninstall(kubectl)
    finally:
        operator.start()  # the shared operator deletes the tenant and its namespace
        kubectl.run("delete", "resourceplan", plan_name, "--ignore-not-found", "--wait=false")
        kubectl.run("delete", "cloudtenant", name, "--ignore-not-found", "--wait=false")
        testing.eventually(
            lambda: kubectl.get("cloudtenant", name) is None,
            timeout=60,
            what=f"CloudTenant {name} to be deleted",
        )
        kubectl.run("delete", "usagereports", "-l", f"govcloud.io/tenant={name}", "--wait=false")
        kubectl.run("delete", "ratecard", "default", "--ignore-not-found", "--wait=false")
        bh.remove_review(kubectl)


def test_only_a_restorer_creates_a_plan_that_carries_a_decision(
    kubectl: testing.Kubectl, operator: testing.OperatorProcess, chart_policies: list[Manifest]
) -> None:
    """The chart's policy lets Velero re-create a plan with the decision it had (the custom verb
    `restore`, bound to its ServiceAccount), on CREATE only; a tenant's admin, who files its
    plans, still cannot file one that carries a decision, neither another's nor their own."""
    name = helpers.unique("restorer")
    admin = kubectl.impersonate(f"{name}-admin")
    restorer = kubectl.impersonate(
        "system:serviceaccount:velero:velero",
        "system:serviceaccounts",
        "system:serviceaccounts:velero",
        "system:authenticated",
    )
    roles = [
        item for item in chart_policies if item["metadata"]["name"] == "govcloud:ledger-restorer"
    ]
    assert {item["kind"] for item in roles} == {"ClusterRole", "ClusterRoleBinding"}
    year = periods.year_of(datetime.datetime.now(datetime.UTC), TZ)
    plain = bh.plan(name, year)
    recorded = bh.plan(
        name,
        year,
        decision={"state": "Approved", "by": APPROVER, "reason": "符合年度预算",
                  "approvedGeneration": 2, "groups": [bh.APPROVERS]},
    )  # fmt: skip
    own = bh.plan(
        name,
        year,
        decision={"state": "Approved", "by": f"{name}-admin", "reason": "自己批准",
                  "approvedGeneration": 0},
    )  # fmt: skip
    # kubectl reads the object it patches: the restorer may read plans (Velero reads all).
    reader = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": f"{name}-plan-reader"},
        "rules": [{"apiGroups": ["govcloud.io"], "resources": ["resourceplans"],
                   "verbs": ["get", "list"]}],
    }  # fmt: skip
    reading = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": f"{name}-plan-reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": f"{name}-plan-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "velero", "namespace": "velero"}],
    }  # fmt: skip
    bh.install_review(kubectl)
    for manifest in (*roles, reader, reading):
        kubectl.apply(manifest)
    try:
        kubectl.apply(helpers.tenant_manifest(name, admins={"users": [f"{name}-admin"]}))
        helpers.wait_phase(kubectl, name, "Active")

        def create(who: testing.Kubectl, manifest: Manifest) -> Any:
            return who.run("create", "--dry-run=server", "-f", "-", stdin=json.dumps(manifest))

        # The admin files plans (the operator granted them `fileplan` on the tenant) ...
        filed = testing.eventually(
            lambda: (found := create(admin, plain)).returncode == 0 and found,
            timeout=30,
            what=f"{name}-admin to be allowed to file the tenant's plan",
        )
        assert filed.returncode == 0
        # ... but never one that carries a decision.
        for manifest in (recorded, own):
            refused = create(admin, manifest)
            assert refused.returncode != 0, manifest["spec"]["decision"]
            assert "may not set spec.decision" in refused.stderr, refused.stderr
        # The restorer re-creates the plan with its decision, as it was recorded.
        allowed = create(restorer, recorded)
        assert allowed.returncode == 0, allowed.stderr
        # On CREATE only: it may not decide (or change a decision on) a plan that exists.
        kubectl.apply(plain)
        decided = bh.patch_plan(
            restorer, f"{name}-{year}", bh.decide("Approved", APPROVER, generation=1)
        )
        assert decided.returncode != 0
        assert "may not set spec.decision" in decided.stderr, decided.stderr
        # Nor, without the verb, may any other creator that is not an approver.
        for manifest in roles:
            kubectl.run("delete", manifest["kind"], manifest["metadata"]["name"])
        testing.eventually(
            lambda: create(restorer, recorded).returncode != 0,
            timeout=30,
            what="the restorer to lose the verb with its binding",
        )
    finally:
        kubectl.run("delete", "resourceplan", f"{name}-{year}", "--ignore-not-found")
        for manifest in (*roles, reader, reading):
            kubectl.run(
                "delete", manifest["kind"], manifest["metadata"]["name"], "--ignore-not-found"
            )
        kubectl.run("delete", "cloudtenant", name, "--wait=false")
        testing.eventually(
            lambda: kubectl.get("cloudtenant", name) is None,
            timeout=60,
            what=f"CloudTenant {name} to be deleted",
        )
        bh.remove_review(kubectl)
