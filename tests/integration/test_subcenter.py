"""SubCenters on two real control planes: the hub runs the operator, a second cluster is the site.

Registration, placement of tenants in the site's cluster and its refusals, safe takeover and
release, hosted sites and metrics; health and credentials are in test_subcenter_health.py. One
sub-center is registered once for the module and shared (the fixtures are in conftest.py);
tests that need a site of their own (a hosted one) register it next to the shared one.
"""

from __future__ import annotations

import datetime
import json
import time
from typing import Any

import _subcenter_helpers as sc
import _tenant_helpers as helpers
import pytest

from govcloud.desired import quantity
from govcloud.dev import cluster, testing

pytestmark = pytest.mark.integration

Manifest = dict[str, Any]


def _placed_on(body: Manifest, tenant: str) -> Manifest | None:
    for entry in (body.get("status") or {}).get("tenants") or []:
        if entry["name"] == tenant:
            found: Manifest = entry
            return found
    return None


# -- 1. registration -----------------------------------------------------------------------


def test_a_registered_subcenter_is_ready_within_seconds_with_facts_from_the_site(
    kubectl: testing.Kubectl,
    site_kubectl: testing.Kubectl,
    subcenter: cluster.ControlPlane,
    sites: sc.Sites,
) -> None:
    name = helpers.unique("feidong")
    started = time.monotonic()
    sites.create(name, sc.kubeconfig_of(subcenter))
    body = sites.wait_ready(name, timeout=30)
    took = sc.elapsed_since(started)
    assert took < 15, f"Ready only after {took:.1f}s"

    status = body["status"]
    server = site_kubectl.json("version")["serverVersion"]["gitVersion"]
    assert status["kubernetesVersion"] == server == "v1.36.3"
    nodes = site_kubectl.json("get", "nodes")["items"]
    assert status["nodeCount"] == len(nodes) >= 1
    for resource in ("cpu", "memory", "pods"):
        expected = sum(
            (quantity.parse(node["status"]["allocatable"][resource]) for node in nodes),
            start=quantity.parse("0"),
        )
        assert quantity.parse(status["allocatable"][resource]) == expected, resource
    memory = quantity.parse(status["allocatable"]["memory"])
    assert status["allocatable"]["memory"] == quantity.to_string(memory, binary=True)  # 128Gi
    assert status["summary"]["memory"] == f"0/{status['allocatable']['memory']}"
    assert status["tenantCount"] == 0
    assert status["tenants"] == []
    assert status["observedGeneration"] == body["metadata"]["generation"]
    assert status["consecutiveFailures"] == 0
    assert float(status["probeLatencySeconds"]) < 2
    expected_conditions = {
        "Ready": ("True", "Healthy"),
        "Reachable": ("True", "Answered"),
        "CredentialsValid": ("True", "Accepted"),
        # the dev certificates are valid for a year; the default window is 30 days
        "CredentialExpiring": ("False", "NotExpiringSoon"),
    }
    for kind, (want_status, want_reason) in expected_conditions.items():
        found = sc.condition(body, kind)
        assert (found.get("status"), found.get("reason")) == (want_status, want_reason), found
        assert found["observedGeneration"] == body["metadata"]["generation"]
    assert "v1.36.3" in sc.condition(body, "Ready")["message"]
    assert "govcloud.io/finalizer" in body["metadata"]["finalizers"]

    # kubectl get subcenters answers "is it working, how much is used" at a glance.
    header, *rows = kubectl("get", "subcenters", name).splitlines()
    row = dict(zip(header.split(), rows[0].split(), strict=True))
    cpu = quantity.parse(status["allocatable"]["cpu"])
    assert row == {
        "NAME": name,
        "REGION": "肥西县",
        "MODE": "federated",
        "READY": "True",
        "VERSION": "v1.36.3",
        "NODES": str(len(nodes)),
        "CPU": f"0/{quantity.to_string(cpu)}",
        "TENANTS": "0",
        "AGE": row["AGE"],
    }
    assert kubectl("get", "subc", name, "-o", "name") == f"subcenter.govcloud.io/{name}\n"


# -- 2. placement --------------------------------------------------------------------------


def _normalized(kubectl: testing.Kubectl, tenant: str, namespace: str) -> dict[str, Any]:
    """The tenant's objects in one namespace, with the tenant's name taken out, for comparison."""
    found: dict[str, Any] = {}
    for kind in sc.TENANT_KINDS:
        for item in kubectl.json("get", kind, "-n", namespace)["items"]:
            body = {
                key: value
                for key, value in item.items()
                if key in ("spec", "roleRef", "subjects", "limits")
            }
            body["labels"] = item["metadata"].get("labels") or {}
            text = json.dumps(body, sort_keys=True).replace(tenant, "TENANT")
            found[f"{kind}/{item['metadata']['name']}"] = json.loads(text)
    return found


def test_a_placed_tenant_lives_in_the_subcenter_and_nowhere_else(
    kubectl: testing.Kubectl,
    site_kubectl: testing.Kubectl,
    shared_site: str,
    placed: sc.PlacedTenants,
) -> None:
    name = helpers.unique("bh")
    placed.place(name, shared_site, namespaces=("apps", "data"))
    body = helpers.wait_phase(kubectl, name, "Active", timeout=60)
    assert body["status"]["placement"]["cluster"] == shared_site
    assert helpers.condition(body, "Ready")["status"] == "True"

    wanted = [f"{name}-apps", f"{name}-data"]
    assert sc.tenant_namespaces(site_kubectl, name) == wanted
    for namespace in wanted:
        found = site_kubectl.get("namespace", namespace)
        assert found is not None
        assert helpers.labels_of(found)["govcloud.io/tenant"] == name
        for kind in sc.TENANT_KINDS:
            items = site_kubectl.json("get", kind, "-n", namespace)["items"]
            assert items, f"no {kind} in {namespace} of the sub-center"
    # Nothing of it on the hub (the self-view ClusterRole of the CloudTenant stays there).
    assert sc.tenant_namespaces(kubectl, name) == []
    assert sc.tenant_objects(kubectl, name) == []

    # Built by the very same desired-state code as on the hub: a twin on the hub gets the same.
    twin = helpers.unique("bhtwin")
    twin_manifest = sc.placed_manifest(twin, shared_site, namespaces=("apps", "data"))
    del twin_manifest["spec"]["placement"]
    placed.apply(twin_manifest)
    helpers.wait_phase(kubectl, twin, "Active", timeout=60)

    # (Quotas are raised in a second pass once their usage is counted: compare when settled.)
    def same_objects() -> bool:
        for short in ("apps", "data"):
            on_site = _normalized(site_kubectl, name, f"{name}-{short}")
            if not on_site or on_site != _normalized(kubectl, twin, f"{twin}-{short}"):
                return False
        return True

    try:
        testing.eventually(same_objects, timeout=30, what="the same objects on site and hub")
    except testing.WaitTimeoutError:
        for short in ("apps", "data"):  # show the difference
            on_site = _normalized(site_kubectl, name, f"{name}-{short}")
            assert on_site == _normalized(kubectl, twin, f"{twin}-{short}")
        raise

    # The SubCenter lists the tenant, its namespaces and what its quota holds of the site.
    site = sc.Sites(kubectl).wait(
        shared_site,
        lambda site: (
            sc.tenants_listed(site) == [name]
            and sorted(item["name"] for item in (_placed_on(site, name) or {})["namespaces"])
            == wanted
            and all(
                item["phase"] == "Active" for item in (_placed_on(site, name) or {})["namespaces"]
            )
        ),
        "the tenant listed with both its namespaces Active",
    )
    entry = _placed_on(site, name)
    assert entry is not None
    assert sorted(item["name"] for item in entry["namespaces"]) == wanted
    status = site["status"]
    assert status["tenantCount"] == 1
    assert status["allocated"] == {"cpu": "4", "memory": "8Gi", "pods": "20"}
    cpu = quantity.to_string(quantity.parse(status["allocatable"]["cpu"]))
    assert status["summary"]["cpu"] == f"4/{cpu}"

    # Drift in the sub-center is repaired, like drift on the hub.
    namespace = wanted[0]
    before = site_kubectl.json("get", "resourcequota", "-n", namespace)["items"][0]
    site_kubectl("delete", "resourcequota", before["metadata"]["name"], "-n", namespace)
    started = time.monotonic()
    repaired = testing.eventually(
        lambda: site_kubectl.get("resourcequota", before["metadata"]["name"], namespace),
        timeout=15,
        what="the deleted ResourceQuota to be restored in the sub-center",
    )
    assert sc.elapsed_since(started) < 10
    assert repaired["metadata"]["uid"] != before["metadata"]["uid"]
    # A recreated quota starts closed (its usage is unknown) and is raised once it is counted.
    testing.eventually(
        lambda: (
            (site_kubectl.get("resourcequota", before["metadata"]["name"], namespace) or {})
            .get("spec", {})
            .get("hard")
            == before["spec"]["hard"]
        ),
        timeout=30,
        what="the restored ResourceQuota to get its share back",
    )
    testing.eventually(
        lambda: any(
            event["reason"] == "DriftRepaired" and before["metadata"]["name"] in event["message"]
            for event in helpers.events_for(kubectl, name)
        ),
        timeout=15,
        what="a DriftRepaired event on the tenant",
    )


def test_placement_is_refused_with_a_clear_reason_and_nothing_lands_anywhere(
    kubectl: testing.Kubectl,
    site_kubectl: testing.Kubectl,
    subcenter: cluster.ControlPlane,
    shared_site: str,
    sites: sc.Sites,
    placed: sc.PlacedTenants,
) -> None:
    hosted = sites.create(
        helpers.unique("lujiang"),
        sc.kubeconfig_of(subcenter),
        mode="hosted",
        retireBy=(datetime.date.today() + datetime.timedelta(days=400)).isoformat(),
    )
    sites.wait_ready(hosted)

    too_secret = helpers.unique("level3")
    placed.place(too_secret, shared_site, level=3)
    retiring = helpers.unique("toretire")
    placed.place(retiring, hosted)
    too_big = helpers.unique("toobig")
    placed.place(too_big, shared_site, quota={"requests.cpu": "40", "pods": "20"})
    too_many_pods = helpers.unique("toomanypods")
    placed.place(too_many_pods, shared_site, quota={"requests.cpu": "1", "pods": "500"})
    nowhere = helpers.unique("nowhere")
    placed.place(nowhere, helpers.unique("no-such-site"))

    cases = {
        too_secret: ("SecurityLevelTooHigh", "securityLevel 3"),
        retiring: ("SiteBeingRetired", "hosted"),
        too_big: ("InsufficientCapacity", "requests.cpu 40"),
        too_many_pods: ("InsufficientCapacity", "pods 500"),
        nowhere: ("SubCenterNotFound", "there is no SubCenter"),
    }
    for name, (reason, words) in cases.items():
        body = helpers.wait_tenant(kubectl, name, sc.refused(reason), f"refused with {reason}")
        message = helpers.condition(body, "Placed")["message"]
        assert words in message, message
        assert "cluster" not in (body["status"].get("placement") or {})
        testing.eventually(  # posted once the pass that set the condition has finished
            lambda name=name, reason=reason: any(
                event["reason"] == reason for event in helpers.events_for(kubectl, name)
            ),
            timeout=30,
            what=f"a {reason} Event about {name}",
        )

    # A tenant that fits is placed although bigger ones were refused: a refused tenant holds
    # none of the site's capacity, and is not listed on it.
    fits = helpers.unique("fits")
    placed.place(fits, shared_site, quota={"requests.cpu": "30", "pods": "50"})
    helpers.wait_phase(kubectl, fits, "Active", timeout=60)
    site = sc.Sites(kubectl).wait(
        shared_site, lambda site: sc.tenants_listed(site) == [fits], "only the placed tenant listed"
    )
    assert site["status"]["allocated"] == {"cpu": "30", "pods": "50"}
    hosted_body = sites.get(hosted)
    assert sc.tenants_listed(hosted_body) == []
    assert hosted_body["status"]["tenantCount"] == 0

    # Lowering the quota to what fits places the refused tenant.
    placed.patch(too_big, {"quota": {"requests.cpu": "2", "pods": "20"}})
    body = helpers.wait_phase(kubectl, too_big, "Active", timeout=60)
    assert body["status"]["placement"]["cluster"] == shared_site

    for name in cases:
        if name == too_big:
            continue
        assert sc.tenant_namespaces(kubectl, name) == [], name
        assert sc.tenant_namespaces(site_kubectl, name) == [], name
        assert sc.tenant_objects(kubectl, name) == [], name
        assert sc.tenant_objects(site_kubectl, name) == [], name
        assert helpers.phase(kubectl.get("cloudtenant", name)) == "Pending"


# -- 5. safe takeover and release ----------------------------------------------------------


def test_a_foreign_namespace_is_not_taken_over_until_adopt_and_release_keeps_everything(
    kubectl: testing.Kubectl,
    site_kubectl: testing.Kubectl,
    subcenter: cluster.ControlPlane,
    sites: sc.Sites,
    placed: sc.PlacedTenants,
) -> None:
    site = sites.create(helpers.unique("chaohu"), sc.kubeconfig_of(subcenter))
    sites.wait_ready(site)
    name = helpers.unique("legacy")
    legacy = f"{name}-legacy"
    placed.track_site_namespace(legacy)
    site_kubectl("create", "namespace", legacy)
    # Its owner grants it to the tenant: adoption on a site needs the grant, as on the hub.
    site_kubectl(
        "label", "namespace", legacy, "county.example/owner=it-dept",
        f"govcloud.io/adoptable-by={name}",
    )  # fmt: skip
    site_kubectl("create", "configmap", "county-data", "-n", legacy, "--from-literal=k=v")

    placed.place(name, site, namespaces=("legacy", "apps"), deletion_policy="Retain")
    body = helpers.wait_tenant(
        kubectl,
        name,
        lambda body: (
            helpers.condition(body, "NamespacesReady").get("reason") == "NamespaceConflict"
        ),
        "NamespaceConflict",
    )
    message = helpers.condition(body, "NamespacesReady")["message"]
    assert legacy in message
    assert "adopt" in message
    assert helpers.condition(body, "Ready")["status"] == "False"
    foreign = site_kubectl.get("namespace", legacy)
    assert foreign is not None
    assert "govcloud.io/tenant" not in helpers.labels_of(foreign)
    assert site_kubectl.json("get", "resourcequota", "-n", legacy)["items"] == []
    assert site_kubectl.json("get", "rolebinding", "-n", legacy)["items"] == []
    assert site_kubectl.get("namespace", f"{name}-apps") is not None  # the free one is made

    placed.patch(name, {"namespaces": [{"name": "legacy", "adopt": True}, {"name": "apps"}]})
    helpers.wait_phase(kubectl, name, "Active", timeout=60)
    adopted = site_kubectl.get("namespace", legacy)
    assert adopted is not None
    assert helpers.labels_of(adopted)["govcloud.io/tenant"] == name
    assert helpers.labels_of(adopted)["county.example/owner"] == "it-dept"
    assert adopted["metadata"]["annotations"]["govcloud.io/adopted"] == "true"
    assert site_kubectl.get("configmap", "county-data", legacy) is not None
    assert site_kubectl.json("get", "resourcequota", "-n", legacy)["items"]

    # Deleting the SubCenter while the tenant is placed there is held, with a clear condition.
    sites.wait(site, lambda body: sc.tenants_listed(body) == [name], "the tenant listed")
    kubectl("delete", "subcenter", site, "--wait=false")
    held = sites.wait(
        site,
        lambda body: sc.reason(body, "Ready") == "DeletionBlocked",
        "Ready=False DeletionBlocked",
    )
    assert held["metadata"].get("deletionTimestamp")
    assert name in sc.condition(held, "Ready")["message"]
    assert sc.condition(held, "Ready")["status"] == "False"
    testing.eventually(
        lambda: any(
            event["reason"] == "DeletionBlocked"
            for event in helpers.events_for(kubectl, site, kind="SubCenter")
        ),
        timeout=15,
        what="a DeletionBlocked event on the SubCenter",
    )
    assert helpers.phase(kubectl.get("cloudtenant", name)) == "Active"

    # Once the tenant is gone (Retain), the SubCenter goes and the sub-center keeps everything.
    kubectl("delete", "cloudtenant", name, "--wait=false")
    testing.eventually(
        lambda: kubectl.get("cloudtenant", name) is None,
        timeout=60,
        what=f"CloudTenant {name} to be deleted",
    )
    sites.wait_gone(site, timeout=30)
    for namespace in (legacy, f"{name}-apps"):
        kept = site_kubectl.get("namespace", namespace)
        assert kept is not None, namespace
        assert not kept["metadata"].get("deletionTimestamp"), namespace
        placed.track_site_namespace(namespace)
    assert site_kubectl.get("configmap", "county-data", legacy) is not None
    testing.eventually(
        lambda: any(
            event["reason"] == "Released"
            for event in helpers.events_for(kubectl, site, kind="SubCenter")
        ),
        timeout=15,
        what="a Released event on the SubCenter",
    )


# -- 6. hosted sites -----------------------------------------------------------------------


def test_a_hosted_site_reports_whether_it_can_be_retired(
    kubectl: testing.Kubectl,
    site_kubectl: testing.Kubectl,
    subcenter: cluster.ControlPlane,
    sites: sc.Sites,
    placed: sc.PlacedTenants,
) -> None:
    later = (datetime.date.today() + datetime.timedelta(days=200)).isoformat()
    hosted = sites.create(
        helpers.unique("lujiang"), sc.kubeconfig_of(subcenter), mode="hosted", retireBy=later
    )
    body = sites.wait(
        hosted, lambda site: sc.condition(site, "Retirable").get("status"), "Retirable"
    )
    retirable = sc.condition(body, "Retirable")
    # No tenants and no MigrationPlan moving an app off the site: it can retire.
    assert (retirable["status"], retirable["reason"]) == ("True", "Retirable"), retirable
    assert f"retireBy {later} is in" in retirable["message"]
    assert body["status"]["retirable"] is True
    assert body["status"]["appsRemaining"] == 0

    # A MigrationPlan whose source is this site, not yet Completed: one app still to move.
    owner = helpers.unique("movers")
    kubectl.apply(helpers.tenant_manifest(owner, namespaces=["apps"]))
    try:
        helpers.wait_phase(kubectl, owner, "Active", timeout=60)
        kubectl.apply(
            {
                "apiVersion": "govcloud.io/v1alpha1",
                "kind": "MigrationPlan",
                "metadata": {"name": "county-portal", "namespace": f"{owner}-apps"},
                "spec": {
                    "app": {"name": "县政务门户", "securityLevel": 2},
                    "source": {"subCenter": hosted, "namespace": "portal", "kinds": ["Deployment"]},
                    "targetNamespace": f"{owner}-apps",
                    "deadline": f"{later}T00:00:00Z",
                },
            }
        )
        body = sites.wait(
            hosted, lambda site: sc.reason(site, "Retirable") == "AppsRemaining", "AppsRemaining"
        )
        assert body["status"]["appsRemaining"] == 1
        assert body["status"]["retirable"] is False
        assert "1 app still to migrate" in sc.condition(body, "Retirable")["message"]
        kubectl("delete", "migrationplan", "county-portal", "-n", f"{owner}-apps")
        body = sites.wait(
            hosted, lambda site: sc.reason(site, "Retirable") == "Retirable", "Retirable again"
        )
        assert body["status"]["appsRemaining"] == 0
    finally:
        kubectl.run("delete", "cloudtenant", owner, "--wait=false")

    # A federated site with a tenant becomes hosted: the tenant stays, the site is not retirable.
    site = sites.create(helpers.unique("chaohu"), sc.kubeconfig_of(subcenter))
    sites.wait_ready(site)
    name = helpers.unique("stays")
    placed.place(name, site)
    helpers.wait_phase(kubectl, name, "Active", timeout=60)
    sites.patch(site, {"mode": "hosted", "retireBy": "2024-01-01"})
    body = sites.wait(
        site, lambda site: sc.reason(site, "Retirable") == "RetireByPassed", "RetireByPassed"
    )
    retirable = sc.condition(body, "Retirable")
    assert retirable["status"] == "False"
    assert "1 tenant still placed here" in retirable["message"]
    assert "retireBy 2024-01-01 passed" in retirable["message"]
    assert body["status"]["retirable"] is False
    assert sc.is_true(body, "Ready")
    tenant = kubectl.get("cloudtenant", name)
    assert helpers.phase(tenant) == "Active"
    assert sc.tenant_namespaces(site_kubectl, name) == [f"{name}-apps"]

    sites.patch(site, {"retireBy": later})
    body = sites.wait(
        site, lambda site: sc.reason(site, "Retirable") == "TenantsPlaced", "TenantsPlaced"
    )
    assert body["status"]["retirable"] is False

    kubectl("delete", "cloudtenant", name, "--wait=false")
    body = sites.wait(
        site,
        lambda site: sc.reason(site, "Retirable") == "Retirable",
        "no tenants and no apps left: retirable",
    )
    assert body["status"]["tenantCount"] == 0
    assert body["status"]["retirable"] is True


# -- 8. metrics ----------------------------------------------------------------------------


def test_metrics_show_each_sites_health_capacity_and_tenants(
    kubectl: testing.Kubectl,
    operator: testing.OperatorProcess,
    shared_site: str,
    placed: sc.PlacedTenants,
) -> None:
    name = helpers.unique("metered")
    placed.place(name, shared_site, quota={"requests.cpu": "3", "requests.memory": "6Gi"})
    helpers.wait_phase(kubectl, name, "Active", timeout=60)
    status = sc.Sites(kubectl).wait(
        shared_site, lambda site: sc.tenants_listed(site) == [name], "the tenant listed"
    )["status"]

    def value(metric: str, **labels: str) -> float:
        return operator.metric_value(metric, subcenter=shared_site, **labels)

    testing.eventually(
        lambda: value("govcloud_subcenter_tenants") == 1,
        timeout=15,
        what="govcloud_subcenter_tenants to be 1",
    )
    assert value("govcloud_subcenter_up", mode="federated", tier="county") == 1
    assert value("govcloud_subcenter_ready") == 1
    latency = value("govcloud_subcenter_probe_latency_seconds")
    assert 0 < latency < 2
    for resource in ("cpu", "memory", "pods"):
        allocatable = float(quantity.parse(status["allocatable"][resource]))
        assert value("govcloud_subcenter_capacity", resource=resource, type="allocatable") == (
            allocatable
        ), resource
    assert value("govcloud_subcenter_capacity", resource="cpu", type="allocated") == 3
    assert value("govcloud_subcenter_capacity", resource="memory", type="allocated") == 6 * 2**30
    text = operator.metrics()
    for family in (
        "govcloud_subcenter_up",
        "govcloud_subcenter_ready",
        "govcloud_subcenter_probe_latency_seconds",
        "govcloud_subcenter_capacity",
        "govcloud_subcenter_tenants",
    ):
        assert f"# TYPE {family} gauge" in text, family
