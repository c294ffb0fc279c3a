"""SubCenters on two real control planes: the hub runs the operator, a second cluster is the site.

Registration, placement of tenants in the site's cluster, honest health with hysteresis (the
site's API server or etcd really stopped and started again), credentials and their rotation,
safe takeover and release, hosted sites, isolation from a site that never answers, metrics and
bad input. One sub-center is registered once for the module and shared; tests that need a site
of their own (a hosted one, broken credentials) register it next to the shared one.
"""

from __future__ import annotations

import base64
import datetime
import json
import secrets
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _subcenter_helpers as sc
import _tenant_helpers as helpers
import pytest
from cryptography import x509

from govcloud.desired import quantity
from govcloud.dev import cluster, pki, testing

pytestmark = pytest.mark.integration

Manifest = dict[str, Any]


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site_kubectl(subcenter: cluster.ControlPlane) -> testing.Kubectl:
    """kubectl against the sub-center's own cluster (admin)."""
    return testing.Kubectl(subcenter.kubeconfig)


@pytest.fixture(scope="module")
def system_namespace(kubectl: testing.Kubectl) -> Iterator[str]:
    existed = kubectl.get("namespace", sc.SYSTEM_NAMESPACE) is not None
    if not existed:
        kubectl("create", "namespace", sc.SYSTEM_NAMESPACE)
    yield sc.SYSTEM_NAMESPACE
    if not existed:  # gone (not Terminating) before a later module creates it again
        kubectl.run("delete", "namespace", sc.SYSTEM_NAMESPACE, "--timeout=90s")


@pytest.fixture(scope="module")
def shared_site(
    kubectl: testing.Kubectl,
    operator: testing.OperatorProcess,
    subcenter: cluster.ControlPlane,
    system_namespace: str,
) -> Iterator[str]:
    """One federated SubCenter (max MLPS level 2) for the sub-center cluster, probed every 2 s."""
    registry = sc.Sites(kubectl)
    name = registry.create(helpers.unique("feixi"), sc.kubeconfig_of(subcenter))
    try:
        registry.wait_ready(name, timeout=60)
        yield name
    finally:
        registry.cleanup()


@pytest.fixture
def sites(
    kubectl: testing.Kubectl, operator: testing.OperatorProcess, system_namespace: str
) -> Iterator[sc.Sites]:
    """SubCenters of a test's own, deleted (after its tenants) when the test ends."""
    made = sc.Sites(kubectl)
    yield made
    made.cleanup()


@pytest.fixture
def placed(
    kubectl: testing.Kubectl,
    site_kubectl: testing.Kubectl,
    operator: testing.OperatorProcess,
    sites: sc.Sites,
    shared_site: str,
) -> Iterator[sc.PlacedTenants]:
    """Tenants of a test; deleted before its SubCenters (which hold deletion while tenants stay)."""
    made = sc.PlacedTenants(kubectl, site_kubectl)
    yield made
    made.cleanup()


def _placed_on(body: Manifest, tenant: str) -> Manifest | None:
    for entry in (body.get("status") or {}).get("tenants") or []:
        if entry["name"] == tenant:
            found: Manifest = entry
            return found
    return None


def _tenants_listed(body: Manifest) -> list[str]:
    return [entry["name"] for entry in (body.get("status") or {}).get("tenants") or []]


def _refused(reason: str) -> Any:
    def check(body: Manifest) -> bool:
        return (
            helpers.current(body)
            and helpers.phase(body) == "Pending"
            and helpers.condition(body, "Ready").get("reason") == reason
            and helpers.condition(body, "Placed").get("reason") == reason
            and helpers.condition(body, "Placed").get("status") == "False"
        )

    return check


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
            _tenants_listed(site) == [name]
            and all(
                item["phase"] == "Active" for item in (_placed_on(site, name) or {})["namespaces"]
            )
        ),
        "the tenant listed with its namespaces Active",
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
        body = helpers.wait_tenant(kubectl, name, _refused(reason), f"refused with {reason}")
        message = helpers.condition(body, "Placed")["message"]
        assert words in message, message
        assert "cluster" not in (body["status"].get("placement") or {})
        events = helpers.events_for(kubectl, name)
        assert any(event["reason"] == reason for event in events), events

    # A tenant that fits is placed although bigger ones were refused: a refused tenant holds
    # none of the site's capacity, and is not listed on it.
    fits = helpers.unique("fits")
    placed.place(fits, shared_site, quota={"requests.cpu": "30", "pods": "50"})
    helpers.wait_phase(kubectl, fits, "Active", timeout=60)
    site = sc.Sites(kubectl).wait(
        shared_site, lambda site: _tenants_listed(site) == [fits], "only the placed tenant listed"
    )
    assert site["status"]["allocated"] == {"cpu": "30", "pods": "50"}
    hosted_body = sites.get(hosted)
    assert _tenants_listed(hosted_body) == []
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


# -- 3. honest health ----------------------------------------------------------------------


def _reachable_history(versions: list[Manifest]) -> list[tuple[int, str | None, str | None]]:
    """(consecutiveFailures, Reachable status, Reachable reason) of each version seen."""
    history = []
    for body in versions:
        status = body.get("status") or {}
        found = sc.condition(body, "Reachable")
        history.append(
            (int(status.get("consecutiveFailures") or 0), found.get("status"), found.get("reason"))
        )
    return history


def test_a_stopped_api_server_turns_reachable_false_after_the_threshold_and_nothing_is_lost(
    kubectl: testing.Kubectl,
    site_kubectl: testing.Kubectl,
    subcenter: cluster.ControlPlane,
    shared_site: str,
    placed: sc.PlacedTenants,
) -> None:
    registry = sc.Sites(kubectl)
    name = helpers.unique("outage")
    placed.place(name, shared_site, quota={"requests.cpu": "2", "pods": "20"})
    helpers.wait_phase(kubectl, name, "Active", timeout=60)
    namespace = f"{name}-apps"
    before = sc.uids(site_kubectl, name)
    assert f"namespace//{namespace}" in before
    registry.wait(
        shared_site,
        lambda site: _tenants_listed(site) == [name],
        "the tenant listed",
    )

    with sc.watching(kubectl, "subcenter", shared_site) as watch:
        try:
            stopped = time.monotonic()
            subcenter.stop_component("kube-apiserver")
            down = registry.wait(
                shared_site,
                lambda site: sc.condition(site, "Reachable").get("status") == "False",
                "Reachable=False",
                timeout=30,
            )
            took = sc.elapsed_since(stopped)
            # The tenant says its site cannot be reached, and keeps everything.
            unreachable = helpers.wait_tenant(
                kubectl,
                name,
                lambda body: (
                    helpers.condition(body, "Ready").get("reason") == "SubCenterUnreachable"
                ),
                "Ready=False SubCenterUnreachable",
                timeout=90,
            )
            # A spec change made during the outage is applied once the site is back.
            placed.patch(name, {"namespaces": [{"name": "apps"}, {"name": "data"}]})
        finally:
            subcenter.start_component("kube-apiserver")
        restarted = time.monotonic()
        registry.wait_ready(shared_site, timeout=30)
        back_after = sc.elapsed_since(restarted)
        history = _reachable_history(watch.versions())

    assert took < 30, f"Reachable=False only after {took:.1f}s"
    assert back_after < 15, f"Ready only {back_after:.1f}s after the restart"
    status = down["status"]
    ready = sc.condition(down, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "Unreachable")
    assert status["consecutiveFailures"] >= 3
    assert "cannot connect" in sc.condition(down, "Reachable")["message"]
    # The last known facts of the site and its tenants are kept, not forgotten.
    assert status["kubernetesVersion"] == "v1.36.3"
    assert status["nodeCount"] >= 1
    assert status["allocatable"]["cpu"]
    assert _tenants_listed(down) == [name]
    assert status["lastSuccessfulProbeTime"] < status["lastProbeTime"]
    assert helpers.condition(unreachable, "Ready")["status"] == "False"
    assert unreachable["status"]["placement"]["cluster"] == shared_site

    # Hysteresis: one failed probe leaves Reachable True; it turns False at the threshold (3).
    # (A server that is shutting down may first answer 500: that failure is "Answered" — still
    # reachable — and the next ones cannot connect; either way Reachable stays True.)
    # The watch may begin after the first failure was written; what must hold is that a
    # failing site below the threshold was seen still Reachable, and False came at exactly 3.
    assert any(0 < entry[0] < 3 and entry[1] == "True" for entry in history), history
    first_false = next(entry for entry in history if entry[1] == "False")
    assert first_false[0] == 3, history
    assert all(entry[1] == "True" for entry in history if 0 < entry[0] < 3), history

    # Nothing was deleted: the very same objects (same uids) are there after the restart, and
    # the change made during the outage reached the sub-center.
    helpers.wait_tenant(
        kubectl,
        name,
        lambda body: (
            helpers.phase(body) == "Active"
            and helpers.condition(body, "Ready").get("status") == "True"
            and helpers.current(body)
        ),
        "Active again",
        timeout=60,
    )
    testing.eventually(
        lambda: site_kubectl.get("namespace", f"{name}-data"),
        timeout=30,
        what="the namespace added during the outage to be created in the sub-center",
    )
    after = sc.uids(site_kubectl, name)
    assert {key: after.get(key) for key in before} == before
    assert f"namespace//{name}-data" in after

    # And drift done right after the restart is repaired.
    limit_range = site_kubectl.json("get", "limitrange", "-n", namespace)["items"][0]
    site_kubectl("delete", "limitrange", limit_range["metadata"]["name"], "-n", namespace)
    testing.eventually(
        lambda: site_kubectl.get("limitrange", limit_range["metadata"]["name"], namespace),
        timeout=15,
        what="the deleted LimitRange to be restored",
    )


def test_a_site_that_accepts_but_never_answers_is_unreachable_and_its_tenants_say_so(
    kubectl: testing.Kubectl,
    site_kubectl: testing.Kubectl,
    subcenter: cluster.ControlPlane,
    shared_site: str,
    placed: sc.PlacedTenants,
) -> None:
    """SIGSTOP the site's API server: connections are accepted, nothing is ever answered."""
    registry = sc.Sites(kubectl)
    name = helpers.unique("hang")
    placed.place(name, shared_site, quota={"requests.cpu": "1", "pods": "10"})
    helpers.wait_phase(kubectl, name, "Active", timeout=60)
    before = sc.uids(site_kubectl, name)
    hub_tenant = helpers.unique("hubwhilehang")
    try:
        subcenter.pause_component("kube-apiserver")
        down = registry.wait(
            shared_site,
            lambda site: sc.condition(site, "Reachable").get("status") == "False",
            "Reachable=False",
            timeout=30,
        )
        assert "did not answer in time" in sc.condition(down, "Reachable")["message"]
        # A hub tenant onboards as usual meanwhile.
        started = time.monotonic()
        placed.create(hub_tenant)
        helpers.wait_phase(kubectl, hub_tenant, "Active", timeout=30)
        assert sc.elapsed_since(started) < 20
        # The placed tenant's reconcile does not hang with the site: it reports it.
        helpers.wait_tenant(
            kubectl,
            name,
            lambda body: helpers.condition(body, "Ready").get("reason") == "SubCenterUnreachable",
            "Ready=False SubCenterUnreachable",
            timeout=90,
        )
    finally:
        subcenter.resume_component("kube-apiserver")
    registry.wait_ready(shared_site, timeout=30)
    helpers.wait_tenant(
        kubectl,
        name,
        lambda body: helpers.condition(body, "Ready").get("status") == "True",
        "Ready again",
        timeout=60,
    )
    assert sc.uids(site_kubectl, name) == before


def test_a_site_that_answers_but_is_not_ready_is_unhealthy_not_unreachable(
    kubectl: testing.Kubectl,
    subcenter: cluster.ControlPlane,
    shared_site: str,
    sites: sc.Sites,
) -> None:
    """Stop the site's etcd: its API server still answers, but /readyz fails (500)."""
    # /readyz takes ~4 s to give up on a stopped etcd, so this site waits longer per probe.
    name = sites.create(
        helpers.unique("unhealthy"),
        sc.kubeconfig_of(subcenter),
        probe={"intervalSeconds": 8, "timeoutSeconds": 8, "failureThreshold": 2},
    )
    sites.wait_ready(name)
    try:
        subcenter.stop_component("etcd")
        down = sites.wait(
            name,
            lambda site: sc.condition(site, "Ready").get("status") == "False",
            "Ready=False",
            timeout=60,
        )
    finally:
        subcenter.start_component("etcd")
    ready = sc.condition(down, "Ready")
    assert ready["reason"] == "Unhealthy", ready
    assert "/readyz" in ready["message"]
    reachable = sc.condition(down, "Reachable")
    assert (reachable["status"], reachable["reason"]) == ("True", "Answered"), reachable
    assert sc.condition(down, "CredentialsValid")["status"] == "True"
    assert down["status"]["consecutiveFailures"] >= 2
    sites.wait_ready(name, timeout=60)
    sites.wait_ready(shared_site, timeout=60)


def test_refused_credentials_and_an_untrusted_server_have_their_own_reasons(
    kubectl: testing.Kubectl,
    subcenter: cluster.ControlPlane,
    shared_site: str,
    sites: sc.Sites,
    tmp_path: Path,
) -> None:
    alien = pki.generate(tmp_path / "alien")  # another CA, and a client cert it signed
    good = sc.kubeconfig_of(subcenter)
    bogus_token = helpers.unique("token") + secrets.token_urlsafe(24)
    token_site = sites.create(
        helpers.unique("badtoken"), sc.with_user(good, {"token": bogus_token})
    )
    cert_site = sites.create(
        helpers.unique("badcert"),
        sc.with_user(good, sc.cert_user(alien.admin.cert, alien.admin.key)),
    )
    ca_site = sites.create(helpers.unique("badca"), sc.with_ca(good, alien.ca.cert.read_bytes()))

    for name in (token_site, cert_site):
        body = sites.wait(
            name,
            lambda site: sc.reason(site, "Ready") == "Unauthorized",
            "Ready=False Unauthorized",
        )
        assert sc.condition(body, "Ready")["status"] == "False"
        valid = sc.condition(body, "CredentialsValid")
        assert (valid["status"], valid["reason"]) == ("False", "Unauthorized"), valid
        assert "401" in valid["message"]
        # It answered, so it is reachable: the problem is ours, not the network's.
        assert sc.condition(body, "Reachable")["status"] == "True"
    body = sites.wait(
        ca_site,
        lambda site: sc.reason(site, "Ready") == "InvalidCredentials",
        "Ready=False InvalidCredentials",
    )
    valid = sc.condition(body, "CredentialsValid")
    assert (valid["status"], valid["reason"]) == ("False", "InvalidCredentials"), valid
    assert "TLS" in valid["message"]
    assert sc.condition(body, "Reachable")["status"] == "Unknown"

    everything = json.dumps([sites.get(name) for name in (token_site, cert_site, ca_site)])
    assert bogus_token not in everything
    assert sc.is_true(sites.get(shared_site), "Ready")


# -- 4. credentials ------------------------------------------------------------------------


def _jwt_expiry(token: str) -> int:
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return int(claims["exp"])


def test_rotating_the_secret_takes_effect_without_a_restart_and_expiry_is_warned(
    kubectl: testing.Kubectl,
    site_kubectl: testing.Kubectl,
    subcenter: cluster.ControlPlane,
    operator: testing.OperatorProcess,
    sites: sc.Sites,
) -> None:
    assert operator.process is not None
    pid = operator.process.pid
    offset = sc.log_size(operator)
    good = sc.kubeconfig_of(subcenter)
    bogus = sc.with_user(good, {"token": "Rot8" + secrets.token_urlsafe(32)})
    name = sites.create(helpers.unique("rotate"), bogus)
    sites.wait(name, lambda site: sc.reason(site, "Ready") == "Unauthorized", "Unauthorized")

    # Bad kubeconfig -> good one: Ready without restarting anything.
    sites.put_kubeconfig(name, good)
    started = time.monotonic()
    body = sites.wait_ready(name, timeout=20)
    assert sc.elapsed_since(started) < 10
    expiring = sc.condition(body, "CredentialExpiring")
    assert (expiring["status"], expiring["reason"]) == ("False", "NotExpiringSoon")
    certificate = (subcenter.state_dir / "pki" / "admin.crt").read_bytes()
    not_after = x509.load_pem_x509_certificate(certificate).not_valid_after_utc
    assert body["status"]["credentialExpiresAt"] == not_after.strftime("%Y-%m-%dT%H:%M:%SZ")

    # The dev certificate expires in (just under) a year: a 365-day window warns of it.
    sites.patch(name, {"credentialExpiryWarningDays": 365})
    body = sites.wait(
        name,
        lambda site: sc.is_true(site, "CredentialExpiring"),
        "CredentialExpiring=True",
    )
    expiring = sc.condition(body, "CredentialExpiring")
    assert expiring["reason"] == "ExpiresSoon"
    assert "client certificate" in expiring["message"]
    assert sc.is_true(body, "Ready")  # a warning, not a failure

    # Rotate to another identity: a ServiceAccount token (a JWT with exp) with no rights yet.
    account = helpers.unique("hub-probe")
    site_kubectl("create", "serviceaccount", account, "-n", "kube-system")
    try:
        token = site_kubectl(
            "create", "token", account, "-n", "kube-system", "--duration=1h"
        ).strip()
        token_config = sc.with_user(good, {"token": token})
        sites.patch(name, {"credentialExpiryWarningDays": 30})
        sites.put_kubeconfig(name, token_config)
        body = sites.wait(
            name,
            lambda site: sc.reason(site, "Ready") == "Unauthorized",
            "the new, unprivileged identity refused (403)",
        )
        assert "403" in sc.condition(body, "CredentialsValid")["message"]
        expiry = _jwt_expiry(token)
        expires_at = datetime.datetime.fromtimestamp(expiry, datetime.UTC)
        assert body["status"]["credentialExpiresAt"] == expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        expiring = sc.condition(body, "CredentialExpiring")
        assert (expiring["status"], expiring["reason"]) == ("True", "ExpiresSoon")
        assert account in expiring["message"]  # who, never the token itself

        # Grant it the rights: the same Secret now works, still without a restart.
        site_kubectl(
            "create",
            "clusterrolebinding",
            account,
            "--clusterrole=cluster-admin",
            f"--serviceaccount=kube-system:{account}",
        )
        sites.wait_ready(name, timeout=20)
        metric = "govcloud_subcenter_credential_expiry_timestamp_seconds"
        testing.eventually(
            lambda: operator.metric_value(metric, subcenter=name) == expiry,
            timeout=15,
            what="the credential expiry metric",
        )
        assert operator.process.pid == pid
        assert operator.process.poll() is None

        # Credentials never appear in status, events, metrics or the operator's log.
        pieces = [
            *sc.secret_pieces(bogus),
            *sc.secret_pieces(good),
            *sc.secret_pieces(token_config),
        ]
        events = kubectl.json(
            "get", "events", "-A", "--field-selector=involvedObject.kind=SubCenter"
        )["items"]
        assert any(event["involvedObject"]["name"] == name for event in events)
        places = {
            "status": json.dumps(sites.get(name)),
            "events": json.dumps(events),
            "metrics": operator.metrics(),
            "log": sc.log_since(operator, offset),
        }
        for where, text in places.items():
            for piece in pieces:
                assert piece not in text, f"a credential ({piece[:6]}...) leaked into the {where}"
    finally:
        site_kubectl.run("delete", "clusterrolebinding", account, "--ignore-not-found")
        site_kubectl.run("delete", "serviceaccount", account, "-n", "kube-system")


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
    site_kubectl("label", "namespace", legacy, "county.example/owner=it-dept")
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
    sites.wait(site, lambda body: _tenants_listed(body) == [name], "the tenant listed")
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


# -- 7. isolation --------------------------------------------------------------------------


def test_sites_that_never_answer_do_not_stall_other_sites_or_hub_tenants(
    kubectl: testing.Kubectl,
    site_kubectl: testing.Kubectl,
    subcenter: cluster.ControlPlane,
    shared_site: str,
    sites: sc.Sites,
    placed: sc.PlacedTenants,
) -> None:
    registry = sc.Sites(kubectl)
    node = f"extra-{uuid.uuid4().hex[:5]}"
    with sc.SilentServer() as silent:
        silent_config = sc.with_server(sc.kubeconfig_of(subcenter), silent.server)
        slow_probe = {"intervalSeconds": 5, "timeoutSeconds": 5, "failureThreshold": 2}
        quiet = [
            sites.create(helpers.unique(f"silent{index}"), silent_config, probe=slow_probe)
            for index in range(3)
        ]
        for name in quiet:
            sites.wait(
                name,
                lambda site: (site.get("status") or {}).get("consecutiveFailures", 0) >= 1,
                "a probe that timed out",
            )
        # The good site keeps being probed on its own interval: a new node shows within seconds.
        started = time.monotonic()
        site_kubectl.apply(cluster.kwok_node(node))
        try:
            body = registry.wait(
                shared_site,
                lambda site: site["status"].get("nodeCount") == 2,
                "the new node counted",
                timeout=15,
            )
            assert sc.elapsed_since(started) < 10  # probed every 2 s
            assert quantity.parse(body["status"]["allocatable"]["cpu"]) == 64
            # A hub tenant onboards in normal time.
            started = time.monotonic()
            hub_tenant = helpers.unique("hubbusy")
            placed.create(hub_tenant)
            helpers.wait_phase(kubectl, hub_tenant, "Active", timeout=30)
            assert sc.elapsed_since(started) < 15
            # A tenant cannot be placed on a site that has never answered.
            waiting = helpers.unique("waits")
            placed.place(waiting, quiet[0])
            helpers.wait_tenant(
                kubectl, waiting, _refused("SubCenterNotReady"), "SubCenterNotReady"
            )
        finally:
            site_kubectl("delete", "node", node, "--ignore-not-found")
        for name in quiet:
            body = sites.wait(
                name,
                lambda site: sc.condition(site, "Reachable").get("status") == "False",
                "Reachable=False",
            )
            assert "did not answer in time" in sc.condition(body, "Reachable")["message"]
            assert sc.reason(body, "Ready") == "Unreachable"
        assert silent.accepted >= len(quiet)
        assert sc.is_true(registry.get(shared_site), "Ready")
    registry.wait(
        shared_site, lambda site: site["status"].get("nodeCount") == 1, "the node gone again"
    )


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
        shared_site, lambda site: _tenants_listed(site) == [name], "the tenant listed"
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


# -- 9. bad input --------------------------------------------------------------------------


def test_bad_secrets_and_kubeconfigs_give_clear_reasons_and_harm_no_other_site(
    kubectl: testing.Kubectl,
    subcenter: cluster.ControlPlane,
    operator: testing.OperatorProcess,
    shared_site: str,
    sites: sc.Sites,
    tmp_path: Path,
) -> None:
    offset = sc.log_size(operator)
    crashed = {"kind": "SubCenter", "result": "exception"}
    crashes = operator.metric_value("govcloud_reconcile_total", **crashed)
    good = sc.kubeconfig_of(subcenter)
    alien = pki.generate(tmp_path / "alien")
    missing = sites.create(helpers.unique("nosecret"), None)
    no_key = helpers.unique("nokey")
    sites.put_secret(sc.secret_of(no_key), {"config": sc.yaml_text(good)})
    sites.create(no_key, None)
    malformed = sites.create(helpers.unique("malformed"), "clusters: [unclosed\n  - : :")
    unusable_config = sc.with_user(good, {})
    unusable_config["clusters"][0]["cluster"]["insecure-skip-tls-verify"] = True
    unusable = sites.create(helpers.unique("unusable"), unusable_config)
    closed_port = testing.free_port()
    nowhere = sites.create(
        helpers.unique("nowhere"), sc.with_server(good, f"https://127.0.0.1:{closed_port}")
    )
    wrong_ca = sites.create(helpers.unique("wrongca"), sc.with_ca(good, alien.ca.cert.read_bytes()))

    expected = {
        missing: ("SecretNotFound", "does not exist"),
        no_key: ("SecretKeyMissing", "has no key 'kubeconfig'"),
        malformed: ("MalformedKubeconfig", "is not a kubeconfig YAML"),
        unusable: ("InvalidKubeconfig", "insecure-skip-tls-verify"),
        nowhere: ("Unreachable", "cannot connect"),
        wrong_ca: ("InvalidCredentials", "TLS verification"),
    }
    for name, (reason, words) in expected.items():
        body = sites.wait(
            name,
            lambda site, reason=reason: sc.reason(site, "Ready") == reason,
            f"Ready=False {reason}",
        )
        ready = sc.condition(body, "Ready")
        assert ready["status"] == "False"
        assert words in ready["message"], ready
    for name in (missing, no_key, malformed, unusable):
        valid = sc.condition(sites.get(name), "CredentialsValid")
        assert valid["status"] == "False"
        assert valid["reason"] == expected[name][0], valid
    assert sc.condition(sites.get(nowhere), "Reachable")["status"] == "False"

    # None of it touched the good site or the operator.
    shared = sites.get(shared_site)
    assert sc.is_true(shared, "Ready")
    assert shared["status"]["consecutiveFailures"] == 0
    assert operator.process is not None
    assert operator.process.poll() is None
    assert operator.metric_value("govcloud_reconcile_total", **crashed) == crashes
    log = sc.log_since(operator, offset)  # the log file is shared; look for these sites only
    for name in expected:
        assert f"reconcile of {name} failed" not in log, log[-3000:]

    # Fixing the input heals the site, with no restart.
    sites.put_kubeconfig(missing, good)
    sites.wait_ready(missing, timeout=20)
