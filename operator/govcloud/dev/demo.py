"""`make demo`: a local control plane, the operator, the example departments, what to look at."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

from govcloud.dev import binaries, cluster, objectstore, testing, velero

EXAMPLES = binaries.REPO_ROOT / "examples"
FEDERATION = EXAMPLES / "federation"
MIGRATION = EXAMPLES / "migration"
CHART = binaries.REPO_ROOT / "charts" / "govcloud-operator"
# The chart's platform-facing parts; the operator itself runs out of cluster in the demo.
PLATFORM_TEMPLATES = (
    "platform-roles.yaml",
    "migration-approvals.yaml",
    "billing-plan-review.yaml",
    "finance-readers.yaml",
)
BAOHE_FINANCE = ("wu.finance", "baohe:finance")  # a finance officer of 包河区, and their group
BILLING = EXAMPLES / "billing"
SITES = ("baohe", "lujiang")  # the district sub-centers of examples/federation/
LOGS = binaries.REPO_ROOT / ".cache" / "logs"
READY_TIMEOUT = 120.0
BUCKET = "govcloud-backups"
DRILLED = ("city-transport", "baohe")  # the level-3 department drilled, and the site it goes to
# The operator as the chart runs it with `backup.enabled=true`; drills looked at every second.
BACKUPS_ON = {"GOVCLOUD_BACKUP_ENABLED": "true", "GOVCLOUD_DRILL_POLL_SECONDS": "1"}
BACKUP_FINISHED = ("Completed", "PartiallyFailed", "Failed", "FailedValidation")
# A drill waits for the site's Velero to sync the backup from the bucket, restores, compares.
DRILL_TIMEOUT = 210.0


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


@contextmanager
def sub_centers() -> Iterator[dict[str, cluster.ControlPlane]]:
    """A local control plane per district sub-center (none when using the current context)."""
    if os.environ.get("GOVCLOUD_USE_CURRENT_CONTEXT") == "1":
        yield {}
        return
    say("starting the district sub-centers' clusters: " + ", ".join(SITES))
    planes = {site: cluster.ControlPlane(name=f"demo-{site}") for site in SITES}
    try:
        for plane in planes.values():
            plane.start()
        yield planes
    finally:
        for plane in planes.values():
            plane.stop()


def register_sites(kubectl: testing.Kubectl, planes: dict[str, cluster.ControlPlane]) -> None:
    say("registering the sub-centers: a kubeconfig Secret and a SubCenter each")
    kubectl.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "govcloud-system"}}
    )
    for site, plane in planes.items():
        kubectl.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": f"{site}-kubeconfig", "namespace": "govcloud-system"},
                "stringData": {"kubeconfig": plane.flat_kubeconfig()},
            }
        )
    print(kubectl("apply", "-f", str(FEDERATION)).rstrip(), flush=True)


@contextmanager
def kubeconfig() -> Iterator[Path]:
    """The cluster to use: the current context if asked, else a fresh local control plane."""
    if os.environ.get("GOVCLOUD_USE_CURRENT_CONTEXT") == "1":
        path = os.environ.get("KUBECONFIG", str(Path.home() / ".kube" / "config"))
        say(f"using the current kubectl context ({path})")
        yield Path(path)
        return
    say("starting a local Kubernetes control plane (etcd, kube-apiserver, controllers, kwok)")
    plane = cluster.ControlPlane(name="demo")
    with plane:
        yield plane.kubeconfig


def show(kubectl: testing.Kubectl, title: str, *args: str) -> None:
    say(title)
    print(f"$ kubectl {' '.join(args)}", flush=True)
    result = kubectl.run(*args)
    print((result.stdout or result.stderr).rstrip(), flush=True)


def wait_for_tenants(kubectl: testing.Kubectl) -> None:
    def all_active() -> bool:
        items = kubectl.json("get", "cloudtenants")["items"]
        return bool(items) and all(
            (item.get("status") or {}).get("phase") == "Active" for item in items
        )

    testing.eventually(all_active, timeout=READY_TIMEOUT, what="every CloudTenant to be Active")


def wait_for_sites(kubectl: testing.Kubectl) -> None:
    def all_ready() -> bool:
        items = kubectl.json("get", "subcenters")["items"]
        return bool(items) and all(
            any(
                item.get("type") == "Ready" and item.get("status") == "True"
                for item in (site.get("status") or {}).get("conditions") or []
            )
            for site in items
        )

    testing.eventually(all_ready, timeout=READY_TIMEOUT, what="every SubCenter to be Ready")


def federation_tour(kubectl: testing.Kubectl, planes: dict[str, cluster.ControlPlane]) -> None:
    show(
        kubectl,
        "the sub-centers: Ready, version, nodes, CPU allocated/allocatable",
        "get",
        "subcenters",
    )
    if "baohe" in planes:
        show(
            testing.Kubectl(planes["baohe"].kubeconfig),
            "包河区教育体育局 lives in the Baohe cluster (kubectl against the sub-center)",
            "get",
            "namespaces,resourcequotas",
            "-A",
            "-l",
            "govcloud.io/tenant=baohe-education",
        )


def tour(kubectl: testing.Kubectl, operator: testing.OperatorProcess) -> None:
    show(kubectl, "the departments, as the platform team sees them", "get", "cloudtenants")
    show(
        kubectl,
        "their namespaces: tenant, tier and Pod Security level from the MLPS level",
        "get",
        "namespaces",
        "-l",
        "app.kubernetes.io/managed-by=govcloud-operator",
        "-L",
        "govcloud.io/tenant,govcloud.io/tier,pod-security.kubernetes.io/enforce",
    )
    show(
        kubectl,
        "quota split so the namespaces together never exceed the tenant's quota",
        "get",
        "resourcequotas",
        "-A",
        "-l",
        "govcloud.io/tenant=city-transport",
    )
    admin = kubectl.impersonate("wang.jianguo", "ldap:jtj-cloud-admins")
    show(
        admin,
        "市交通运输局's admin reads their own tenant (RBAC made by the operator)",
        "get",
        "cloudtenant",
        "city-transport",
    )
    show(admin, "…and nobody else's", "get", "cloudtenant", "hightech-zone")
    show(
        kubectl,
        "what the operator did, as Events on the tenant",
        "get",
        "events",
        "-n",
        "default",
        "--field-selector",
        "involvedObject.name=hightech-zone",
        "--sort-by=.lastTimestamp",
    )
    say(f"a few lines of /metrics (http://127.0.0.1:{operator.metrics_port}/metrics)")
    lines = [
        line
        for line in operator.metrics().splitlines()
        if line.startswith(("govcloud_tenant_resourcequota", "govcloud_tenant_phase"))
        and "city-transport" in line
    ]
    print("\n".join(lines[:12]), flush=True)


def install_platform_roles(kubectl: testing.Kubectl) -> None:
    """The chart's roles and admission policies for people (approvers, tenant members)."""
    say("installing the chart's platform roles and approval policies (helm template)")
    command = [str(binaries.ensure("helm")), "template", "govcloud", str(CHART)]
    command += [
        "--kube-version",
        binaries.kubernetes_version(),
        "--set",
        "features.migrations.enabled=true",
        "--set-json",
        f'financeReaders=[{{"payer": "county:包河区", "groups": ["{BAOHE_FINANCE[1]}"]}}]',
    ]
    for template in PLATFORM_TEMPLATES:
        if (CHART / "templates" / template).exists():
            command += ["--show-only", f"templates/{template}"]
    rendered = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    print(kubectl("apply", "-f", "-", stdin=rendered).rstrip(), flush=True)


def migrate_legacy_app(kubectl: testing.Kubectl) -> None:
    """Journey 8: the permits app moves from its old namespace into 市交通运输局's prod."""
    say("a legacy app and its MigrationPlan: assess, copy and verify run on their own")
    print(kubectl("apply", "-f", str(MIGRATION / "legacy-permits.yaml")).rstrip(), flush=True)
    print(
        kubectl("apply", "-f", str(MIGRATION / "migrationplan-permits.yaml")).rstrip(), flush=True
    )
    namespace = "city-transport-prod"

    def phase() -> str:
        found = kubectl.get("migrationplan", "permits", namespace) or {}
        return str((found.get("status") or {}).get("phase", ""))

    testing.eventually(
        lambda: phase() == "AwaitingApproval",
        timeout=READY_TIMEOUT,
        what="the plan to await approval",
    )
    show(
        kubectl,
        "the plan waits for the bureau to approve the cutover",
        "get",
        "mig",
        "-n",
        namespace,
    )
    # An approval names the version of the plan it approves: the digest the operator shows.
    digest = (kubectl.get("migrationplan", "permits", namespace) or {})["status"]["digest"]
    approval = '{"spec":{"approvals":[{"stage":"cutover","by":"%s","digest":"' + digest + '"}]}}'
    department_admin = kubectl.impersonate("wang.jianguo", "ldap:jtj-cloud-admins")
    show(
        department_admin,
        "the department cannot approve its own cutover",
        "patch",
        "mig",
        "permits",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        approval % "wang.jianguo",
    )
    approver = kubectl.impersonate("zhou.approver", "govcloud:migration-approvers")
    show(
        approver,
        "an approver of the data-resource bureau approves it, in their own name",
        "patch",
        "mig",
        "permits",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        approval % "zhou.approver",
    )
    testing.eventually(lambda: phase() == "Completed", timeout=READY_TIMEOUT, what="the cutover")
    show(
        kubectl,
        "moved: the target runs it, the source is scaled down",
        "get",
        "mig",
        "-n",
        namespace,
    )
    show(
        kubectl,
        "deployments on both sides",
        "get",
        "deployments",
        "-n",
        namespace,
        "-o",
        "wide",
    )
    show(kubectl, "the old namespace", "get", "deployments", "-n", "legacy-permits")
    show(
        kubectl,
        "the department's migration record for its annual assessment",
        "get",
        "cloudtenant",
        "city-transport",
        "-o",
        "jsonpath={.status.migrations}",
    )


def plans_and_bills(kubectl: testing.Kubectl, path: Path) -> None:
    """Journeys 6 and 7: a plan is filed and approved, usage accrues into a monthly report."""
    say("the price list and each department's 2027 plan (上云资源计划表)")
    print(kubectl("apply", "-f", str(BILLING / "ratecard.yaml")).rstrip(), flush=True)
    print(kubectl("apply", "-f", str(BILLING / "plans")).rstrip(), flush=True)
    approver = kubectl.impersonate("zhou.approver", "govcloud:plan-approvers")
    read = (approver.get("resourceplan", "city-transport-2027") or {})["metadata"]["generation"]
    decision = (
        '{"spec":{"decision":{"state":"Approved","by":"%s","reason":"符合年度预算",'
        f'"approvedGeneration":{read},"groups":["govcloud:plan-approvers"]}}}}}}'
    )
    show(
        approver,
        "an approver of the data-resource bureau approves 市交通运输局's plan",
        "patch",
        "resourceplan",
        "city-transport-2027",
        "--type=merge",
        "-p",
        decision % "zhou.approver",
    )

    def reviewed() -> bool:
        found = kubectl.get("resourceplan", "city-transport-2027") or {}
        return ((found.get("status") or {}).get("review") or {}).get("state") == "Approved"

    testing.eventually(reviewed, timeout=READY_TIMEOUT, what="the approval to be recorded")
    show(
        kubectl,
        "plans: ceiling, estimated cost, review (who decided, when)",
        "get",
        "resourceplans",
    )

    def accrued() -> bool:
        reports = kubectl.json("get", "usagereports")["items"]
        return any(int((item.get("status") or {}).get("samples") or 0) >= 2 for item in reports)

    testing.eventually(accrued, timeout=READY_TIMEOUT, what="usage to accrue")
    show(kubectl, "this month's usage reports, accruing", "get", "usagereports")
    say("the finance bureau's statement: govcloud-operator report --format csv")
    statement = subprocess.run(
        [sys.executable, "-m", "govcloud", "report", "--format", "csv"],
        env={**os.environ, "KUBECONFIG": str(path)},
        capture_output=True,
        text=True,
        check=False,
    )
    print((statement.stdout or statement.stderr).rstrip(), flush=True)


def plugin(path: Path, who: tuple[str, ...], *args: str, show_it: bool = True) -> str:
    """`kubectl govcloud` as `who` (user, groups...), with their own rights; its output."""
    user, *groups = who
    argv = [sys.executable, "-m", "govcloud.cli.main", "--kubeconfig", str(path), "--as", user]
    for group in groups:
        argv += ["--as-group", group]
    ran = subprocess.run([*argv, *args], capture_output=True, text=True, check=False)
    output = (ran.stdout + ran.stderr).rstrip()
    if show_it:
        print(f"$ kubectl govcloud {' '.join(args)}    # as {user}", flush=True)
        print(output, flush=True)
    return output


def plugin_once(path: Path, who: tuple[str, ...], *args: str, until_not: str, what: str) -> None:
    """`kubectl govcloud` as `who`, shown once its output no longer says `until_not` (the
    roles naming what it reads are written a moment after the reports)."""
    testing.eventually(
        lambda: until_not not in plugin(path, who, *args, show_it=False),
        timeout=READY_TIMEOUT,
        what=f"{who[0]}: {what}",
    )
    plugin(path, who, *args)


def traffic_model() -> dict[str, object]:
    """A workload in 市交通运输局's data namespace: 3 pods of 4 cores and 8Gi requested, fit for
    Pod Security restricted (the tenant is MLPS level 3)."""
    container = {
        "name": "model",
        "image": "registry.example.gov.cn/traffic-model:2.1",
        "resources": {
            "requests": {"cpu": "4", "memory": "8Gi"},
            "limits": {"cpu": "4", "memory": "8Gi"},
        },
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    pod = {
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "traffic-model", "namespace": "city-transport-data"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "traffic-model"}},
            "template": {"metadata": {"labels": {"app": "traffic-model"}}, "spec": pod},
        },
    }


def charged(kubectl: testing.Kubectl, tenant: str) -> bool:
    """Whether the tenant's report of this month shows a charge of at least one fen."""
    reports = kubectl.json("get", "usagereports")["items"]
    return any(
        (item.get("spec") or {}).get("tenant") == tenant
        and float((item.get("status") or {}).get("total") or 0) > 0
        for item in reports
    )


def self_service(kubectl: testing.Kubectl, path: Path) -> None:
    """Journey 12: departments and finance serve themselves with their own rights."""
    jtj = ("wang.jianguo", "ldap:jtj-cloud-admins")
    approver = ("zhou.approver", "govcloud:plan-approvers")
    say("市交通运输局 runs a traffic model: 3 pods of 4 cores and 8Gi")
    print(kubectl("apply", "-f", "-", stdin=json.dumps(traffic_model())).rstrip(), flush=True)
    testing.eventually(
        lambda: charged(kubectl, "city-transport"),
        timeout=READY_TIMEOUT,
        what="a charge of at least one fen",
    )
    say("its admin reads the bill to date, with their own rights: not zero")
    plugin_once(path, jtj, "bill", until_not="no report", what="the self-view to name the report")
    say("包河区's finance reads its statement, with its own rights: its district's units only")
    plugin_once(
        path, BAOHE_FINANCE, "statement", until_not="no bill", what="its role to name the reports"
    )
    say("an in-year request (年中申请): more for the flood season, approved by the bureau")
    plugin(
        path, jtj, "request", "file", "flood-season", "-n", "city-transport-prod",
        "--year", "2027", "--offering", "ecs.2c4g", "--count", "2", "--reason", "汛期监测扩容",
    )  # fmt: skip

    def payer_known() -> bool:
        found = kubectl.get("resourcerequest", "flood-season", "city-transport-prod") or {}
        return bool((found.get("status") or {}).get("payer"))

    testing.eventually(payer_known, timeout=READY_TIMEOUT, what="the request to be read")
    plugin(
        path, approver, "request", "approve", "flood-season", "-n", "city-transport-prod",
        "--reason", "汛期保障",
    )  # fmt: skip

    def decided() -> bool:
        found = kubectl.get("resourcerequest", "flood-season", "city-transport-prod") or {}
        return ((found.get("status") or {}).get("review") or {}).get("state") == "Approved"

    testing.eventually(decided, timeout=READY_TIMEOUT, what="the request's approval recorded")
    show(kubectl, "the request, as kubectl shows it", "get", "rreq", "-n", "city-transport-prod")
    say("the annual assessment, as a plan approver sees it: every unit")
    plugin(path, approver, "assess")


@contextmanager
def velero_installed(
    path: Path, name: str, store: objectstore.ObjectStore
) -> Iterator[velero.VeleroServer]:
    """Velero installed on a cluster as `velero install` would (its CRDs, namespace, the
    bucket as its storage location); its server is started when needed, stopped on the way
    out."""
    server = velero.VeleroServer(path, store, BUCKET, LOGS / f"demo-velero-{name}.log")
    server.install(testing.Kubectl(path))
    try:
        yield server
    finally:
        server.stop()


def velero_phase(
    server: velero.VeleroServer, kubectl: testing.Kubectl, kind: str, name: str
) -> str:
    if not server.running():
        raise AssertionError(f"velero server exited:\n{server.log_tail()}")
    found = kubectl.get(kind, name, velero.NAMESPACE) or {}
    return str((found.get("status") or {}).get("phase") or "")


def serve(server: velero.VeleroServer, kubectl: testing.Kubectl) -> None:
    """The server started, and its storage location Available."""
    server.start()
    testing.eventually(
        lambda: velero_phase(server, kubectl, "backupstoragelocation", "default") == "Available",
        timeout=60,
        what="Velero's storage location to be Available",
    )


def backup_from_schedule(
    kubectl: testing.Kubectl, path: Path, server: velero.VeleroServer, tenant: str
) -> str:
    """`velero backup create --from-schedule govcloud-<tenant>`, run and waited for."""
    schedule = f"govcloud-{tenant}"
    name = f"{schedule}-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}"
    command = ["backup", "create", name, "--from-schedule", schedule, "-n", velero.NAMESPACE]
    print(f"$ velero {' '.join(command)}", flush=True)
    created = subprocess.run(
        [str(binaries.ensure("velero")), *command, "--kubeconfig", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    said = [line for line in created.stdout.splitlines() if not line.startswith("time=")]
    print("\n".join(said), flush=True)
    phase = testing.eventually(
        lambda: (
            (found := velero_phase(server, kubectl, "backup", name)) in BACKUP_FINISHED and found
        ),
        timeout=90,
        what=f"backup {name} to finish",
    )
    if phase != "Completed":
        raise AssertionError(f"backup {name} ended {phase}:\n{server.log_tail()}")
    return name


def last_backup(kubectl: testing.Kubectl, tenant: str) -> str:
    found = kubectl.get("cloudtenant", tenant) or {}
    return str(((found.get("status") or {}).get("backup") or {}).get("lastBackup") or "")


def recovery_drill(name: str, tenant: str, site: str, by: str) -> dict[str, Any]:
    return {
        "apiVersion": "govcloud.io/v1alpha1",
        "kind": "RecoveryDrill",
        "metadata": {"name": name},
        "spec": {"tenant": tenant, "target": {"site": site}, "requestedBy": by},
    }


def drill_done(kubectl: testing.Kubectl, name: str) -> dict[str, Any] | None:
    """The drill's status once it has failed, or succeeded and cleaned up; else None."""
    status = dict((kubectl.get("recoverydrill", name) or {}).get("status") or {})
    if status.get("phase") == "Failed" or status.get("cleanup") == "Deleted":
        return status
    return None


def mark_available(kubectl: testing.Kubectl) -> None:
    """The site's storage location as its long-running Velero would have it: Available.
    Velero syncs backups only from a location it holds Available, once a minute; a server
    started just now would otherwise skip its first sync and make the drill wait a minute."""
    kubectl(
        "patch", "backupstoragelocation", "default", "-n", velero.NAMESPACE,
        "--type=merge", "-p", '{"status":{"phase":"Available"}}',
    )  # fmt: skip


def backups_on(kubectl: testing.Kubectl, operator: testing.OperatorProcess, tenant: str) -> None:
    say("restarting the operator with backups on (the chart's backup.enabled=true)")
    operator.stop()
    operator.env.update(BACKUPS_ON)
    operator.start()
    testing.eventually(
        lambda: kubectl.get("schedule", f"govcloud-{tenant}", velero.NAMESPACE),
        timeout=READY_TIMEOUT,
        what=f"the Schedule of {tenant}",
    )
    show(
        kubectl,
        "a Velero Schedule per department on the hub, by its MLPS level (3: daily, 2: weekly)",
        "get", "schedules", "-n", velero.NAMESPACE, "-L", "govcloud.io/tenant",
    )  # fmt: skip
    show(kubectl, "no backup yet: LAST-BACKUP empty (a new tenant's grace)", "get", "ct")


def drill_on_site(
    kubectl: testing.Kubectl, site_server: velero.VeleroServer, tenant: str, site: str
) -> None:
    """A RecoveryDrill of `tenant` onto `site`, waited for, and its result."""
    site_kubectl = testing.Kubectl(site_server.kubeconfig)
    mark_available(site_kubectl)
    print(
        f"({site}'s storage location marked Available first, as a site's long-running Velero"
        " has it: a server started just now would skip its first sync of the bucket)",
        flush=True,
    )
    serve(site_server, site_kubectl)
    me = kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").strip()
    name = f"{tenant}-drill"
    say(f"the platform team runs a RecoveryDrill: {tenant}'s newest backup, restored on {site}")
    drill = recovery_drill(name, tenant, site, me)
    print(f"spec: {json.dumps(drill['spec'])}", flush=True)
    print(kubectl("apply", "-f", "-", stdin=json.dumps(drill)).rstrip(), flush=True)
    status = (
        testing.eventually(
            lambda: drill_done(kubectl, name), timeout=DRILL_TIMEOUT, what=f"the drill {name}"
        )
        or {}
    )
    show(
        kubectl,
        "the result: restored, compared with the backup (MATCHED), recovery time in seconds"
        " (RTO), and cleaned up",
        "get", "drills",
    )  # fmt: skip
    show(
        kubectl,
        "what it restored and compared",
        "get", "drill", name, "-o",
        "jsonpath={.status.restoredNamespaces} {.status.itemsRestored}/{.status.totalItems}"
        " items restored, {.status.compared} compared, mismatches: {.status.mismatches}",
    )  # fmt: skip
    show(
        site_kubectl,
        f"{site} after the drill: the restored namespaces are deleted",
        "get", "namespaces", "-l", f"govcloud.io/tenant={tenant}",
    )  # fmt: skip
    if status.get("phase") != "Succeeded":
        raise AssertionError(f"the drill failed: {status}\n{site_server.log_tail()}")


def backup_metrics(operator: testing.OperatorProcess, tenant: str) -> None:
    say("the same in /metrics (the dashboard and the RPO and drill alerts read these)")
    lines = [
        line
        for line in operator.metrics().splitlines()
        if line.startswith(("govcloud_tenant_backup", "govcloud_recovery_drill"))
        and f'tenant="{tenant}"' in line
    ]
    print("\n".join(lines), flush=True)


def backups_and_drill(
    kubectl: testing.Kubectl,
    path: Path,
    operator: testing.OperatorProcess,
    planes: dict[str, cluster.ControlPlane],
) -> None:
    """Journey 14: each department backed up by its Schedule; a drill restores a level-3 one on
    a county site, measures how long it took, checks it, and cleans up."""
    tenant, site = DRILLED
    say("an S3 object store (moto) and Velero on the hub and each sub-center, one bucket")
    with ExitStack() as stack:
        store = objectstore.ObjectStore(LOGS / "demo-moto.log").start()
        stack.callback(store.stop)
        store.create_bucket(BUCKET)
        hub = stack.enter_context(velero_installed(path, "hub", store))
        sites = {
            name: stack.enter_context(velero_installed(plane.kubeconfig, name, store))
            for name, plane in planes.items()
        }
        print(f"bucket {BUCKET} on {store.url}; velero installed on: hub, {', '.join(sites)}")
        print(f"velero logs: {LOGS}/demo-velero-<cluster>.log", flush=True)
        serve(hub, kubectl)
        show(
            kubectl,
            "the hub's velero server runs; its storage location (the bucket) is Available",
            "get", "bsl", "-n", velero.NAMESPACE,
        )  # fmt: skip
        backups_on(kubectl, operator, tenant)
        say(f"{tenant}'s nightly backup, made now from its Schedule (Velero would at 02:00)")
        backup = backup_from_schedule(kubectl, path, hub, tenant)
        testing.eventually(
            lambda: last_backup(kubectl, tenant) == backup,
            timeout=READY_TIMEOUT,
            what=f"{tenant}'s status to show its backup",
        )
        show(
            kubectl, "the tenant's status: LAST-BACKUP, RPO-MET", "get", "ct", tenant, "-o", "wide"
        )
        show(kubectl, "…in full", "get", "ct", tenant, "-o", "jsonpath={.status.backup}")
        say(
            f"{site}'s velero server starts, reading the same bucket (one velero server per"
            " machine here, so the hub's stops)"
        )
        hub.stop()
        drill_on_site(kubectl, sites[site], tenant, site)
        backup_metrics(operator, tenant)
    say("the object store and the velero servers stopped")


def hold_until_interrupted() -> None:
    if not sys.stdin.isatty() or os.environ.get("GOVCLOUD_DEMO_HOLD") == "0":
        return
    say("the cluster and the operator keep running; Ctrl-C stops everything the demo started")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with suppress(KeyboardInterrupt):
        stop.wait()


def main() -> int:
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C stops everything
    try:
        with kubeconfig() as path, sub_centers() as planes:
            kubectl = testing.Kubectl(path)
            say("installing the CustomResourceDefinitions")
            kubectl.apply_crds()
            say("starting the operator")
            with testing.operator_running(
                path,
                LOGS / "demo-operator.log",
                GOVCLOUD_METERING_INTERVAL_SECONDS="5",
                # A report written every 20 s at least, so the demo shows usage accruing.
                GOVCLOUD_METERING_CHECKPOINT_SECONDS="20",
            ) as operator:
                print(f"operator log: {operator.log_path}", flush=True)
                install_platform_roles(kubectl)
                if planes:
                    register_sites(kubectl, planes)
                say("onboarding three departments: kubectl apply -f examples/")
                print(kubectl("apply", "-f", str(EXAMPLES)).rstrip(), flush=True)
                wait_for_tenants(kubectl)
                tour(kubectl, operator)
                migrate_legacy_app(kubectl)
                plans_and_bills(kubectl, path)
                self_service(kubectl, path)
                if planes:
                    wait_for_sites(kubectl)
                    federation_tour(kubectl, planes)
                    backups_and_drill(kubectl, path, operator, planes)
                hold_until_interrupted()
    except KeyboardInterrupt:
        print("\ninterrupted: stopping everything the demo started", file=sys.stderr)
        return 130
    except (cluster.ClusterError, binaries.BinaryError, subprocess.SubprocessError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except AssertionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    say("demo finished; everything it started has stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
