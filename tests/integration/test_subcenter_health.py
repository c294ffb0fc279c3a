"""SubCenter health and credentials on two real control planes (hub and site).

Honest health with hysteresis (the site's API server or etcd really stopped and started again),
refused and untrusted credentials, rotation without a restart and expiry warnings, isolation
from sites that never answer, and bad Secrets and kubeconfigs. The shared site and the fixtures
are in conftest.py; tests that need broken credentials register a site of their own.
"""

from __future__ import annotations

import base64
import datetime
import json
import secrets
import time
import uuid
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
        lambda site: sc.tenants_listed(site) == [name],
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
    assert sc.tenants_listed(down) == [name]
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
                kubectl, waiting, sc.refused("SubCenterNotReady"), "SubCenterNotReady"
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
