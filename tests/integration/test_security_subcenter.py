"""County credentials are data, never code; a SubCenter's Secret and site identity are pinned.

The attacker's moves of review findings H1, H7 and H3 on two real control planes: a kubeconfig
that carries an exec plugin, a SubCenter naming a Secret in a department's namespace (made by an
impersonated platform admin against the chart's own policy), a Secret repointed to another
cluster, and a placed tenant's placement changed.
"""

from __future__ import annotations

import datetime
import http.server
import json
import os
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _subcenter_helpers as sc
import _tenant_helpers as helpers
import pytest
import yaml

from govcloud.dev import binaries, cluster, pki, testing

pytestmark = pytest.mark.integration

Manifest = dict[str, Any]
REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "charts" / "govcloud-operator"
OPERATOR_AGENTS = ("govcloud-operator", "kopf")


# -- H1: an exec plugin is refused, never run ----------------------------------------------


def _exec_user(marker: Path) -> Manifest:
    """A kubeconfig user whose plugin would leave `marker` behind and hand out a token."""
    credential = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": {"token": "stolen-by-plugin"},
    }
    return {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": "sh",
            "args": ["-c", f"touch {marker}; echo '{json.dumps(credential)}'"],
            "interactiveMode": "Never",
        }
    }


def test_a_kubeconfig_with_an_exec_plugin_is_refused_and_the_plugin_never_runs(
    subcenter: cluster.ControlPlane, sites: sc.Sites, tmp_path: Path
) -> None:
    marker = tmp_path / "plugin-ran"
    good = sc.kubeconfig_of(subcenter)
    plugin_only = sites.create(helpers.unique("exec"), sc.with_user(good, _exec_user(marker)))
    beside_cert = sites.create(
        helpers.unique("execcert"),
        sc.with_user(good, {**good["users"][0]["user"], **_exec_user(marker)}),
    )

    for name in (plugin_only, beside_cert):
        body = sites.wait(
            name,
            lambda site: (
                sc.reason(site, "Ready") == "InvalidKubeconfig"
                and site["status"].get("consecutiveFailures", 0) >= 2
            ),
            "Ready=False InvalidKubeconfig after two probes",
        )
        ready = sc.condition(body, "Ready")
        assert "exec credential plugin, which the operator never runs" in ready["message"]
        assert sc.condition(body, "CredentialsValid")["reason"] == "InvalidKubeconfig"
    assert not marker.exists(), "the operator ran the kubeconfig's exec plugin"


# -- H7: Secrets only from the operator's namespace ----------------------------------------


@pytest.fixture
def department(kubectl: testing.Kubectl) -> Iterator[str]:
    """A department's namespace (as a tenant's would be), deleted at the end."""
    name = helpers.unique("dept")
    kubectl("create", "namespace", name)
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false")


def _put_secret(kubectl: testing.Kubectl, namespace: str, name: str, config: Manifest) -> None:
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "stringData": {sc.KUBECONFIG_KEY: sc.yaml_text(config)},
        }
    )


def _foreign_subcenter(name: str, secret: str, namespace: str) -> Manifest:
    manifest = sc.subcenter_manifest(name, secret)
    manifest["spec"]["kubeconfigSecretRef"]["namespace"] = namespace
    return manifest


def test_the_operator_never_reads_a_kubeconfig_secret_outside_its_namespace(
    kubectl: testing.Kubectl,
    hub: cluster.ControlPlane,
    subcenter: cluster.ControlPlane,
    sites: sc.Sites,
    department: str,
) -> None:
    """Without the chart's policy (RBAC that lets the operator read every Secret, e.g. with
    migrations copying Secrets): the operator itself refuses, and never GETs the Secret."""
    secret = helpers.unique("ci-kubeconfig")
    _put_secret(kubectl, department, secret, sc.kubeconfig_of(subcenter))
    name = helpers.unique("deputy")
    sites.names.append(name)
    kubectl.apply(_foreign_subcenter(name, secret, department))

    body = sites.wait(
        name,
        lambda site: (
            sc.reason(site, "Ready") == "SecretUnreadable"
            and site["status"].get("consecutiveFailures", 0) >= 2
        ),
        "Ready=False SecretUnreadable after two probes",
    )
    message = sc.condition(body, "Ready")["message"]
    assert f"{department}/{secret} is not read" in message
    assert f"Secrets only from namespace {sc.SYSTEM_NAMESPACE}" in message
    assert "identity" not in body["status"]
    reads = [
        event
        for event in hub.secret_reads()
        if (event.get("objectRef") or {}).get("namespace") == department
        and str(event.get("userAgent", "")).startswith(OPERATOR_AGENTS)
    ]
    assert reads == [], "the operator read a Secret outside its namespace"


def _helm(*args: str) -> str:
    home = REPO_ROOT / ".cache" / "helm"
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    result = subprocess.run(
        [str(binaries.ensure("helm")), *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def chart_policies(kubectl: testing.Kubectl) -> Iterator[list[Manifest]]:
    """The chart's SubCenter Secret policy and platform roles, rendered for a release in the
    operator's namespace and applied to the hub; removed at the end."""
    release = helpers.unique("scsec")
    rendered = _helm(
        "template", release, str(CHART), "-n", sc.SYSTEM_NAMESPACE,
        f"--kube-version={binaries.kubernetes_version()}",
        "--show-only", "templates/subcenter-secret-policy.yaml",
        "--show-only", "templates/platform-roles.yaml",
    )  # fmt: skip
    manifests = [doc for doc in yaml.safe_load_all(rendered) if doc]
    for manifest in manifests:
        kubectl.apply(manifest)
    yield manifests
    for manifest in manifests:
        kubectl.run("delete", manifest["kind"], manifest["metadata"]["name"], "--ignore-not-found")


def test_a_platform_admin_cannot_point_a_subcenter_at_a_secret_in_a_department(
    kubectl: testing.Kubectl,
    subcenter: cluster.ControlPlane,
    department: str,
    chart_policies: list[Manifest],
) -> None:
    """Mallory administers the platform's govcloud.io objects but may not read Secrets; the
    chart's policy keeps her from making the operator read one for her."""
    role = next(
        item["metadata"]["name"]
        for item in chart_policies
        if item["kind"] == "ClusterRole" and item["metadata"]["name"].endswith(":platform-admin")
    )
    mallory = helpers.unique("mallory")
    binding = f"{mallory}-platform-admin"
    kubectl("create", "clusterrolebinding", binding, f"--clusterrole={role}", f"--user={mallory}")
    try:
        secret = helpers.unique("ci-kubeconfig")
        _put_secret(kubectl, department, secret, sc.kubeconfig_of(subcenter))
        as_mallory = f"--as={mallory}"
        can_read = kubectl.run("auth", "can-i", "get", "secrets", "-n", department, as_mallory)
        assert can_read.stdout.strip() == "no"

        def attempt(namespace: str) -> subprocess.CompletedProcess[str]:
            manifest = _foreign_subcenter(helpers.unique("deputy"), secret, namespace)
            return kubectl.run(
                "create", "--dry-run=server", as_mallory, "-f", "-", stdin=json.dumps(manifest)
            )

        refused = testing.eventually(
            lambda: (result := attempt(department)).returncode != 0 and result,
            timeout=30,
            what="the SubCenter policy to refuse a Secret in a department's namespace",
        )
        assert (
            f"spec.kubeconfigSecretRef.namespace must be {sc.SYSTEM_NAMESPACE}, where the"
            " operator reads sub-center kubeconfigs, and only there" in refused.stderr
        ), refused.stderr
        assert f"(it is {department})" in refused.stderr
        allowed = attempt(sc.SYSTEM_NAMESPACE)
        assert allowed.returncode == 0, allowed.stderr
    finally:
        kubectl.run("delete", "clusterrolebinding", binding, "--ignore-not-found")


# -- H3: a site's identity is pinned -------------------------------------------------------


def _uid_of_kube_system(kubectl: testing.Kubectl) -> str:
    found = kubectl.get("namespace", "kube-system")
    assert found is not None
    return str(found["metadata"]["uid"])


def _operator_writes_in(
    hub: cluster.ControlPlane, tenant: str, since: datetime.datetime
) -> list[str]:
    shown = []
    for event in hub.audit_events():
        ref = event.get("objectRef") or {}
        stamp = datetime.datetime.fromisoformat(str(event["requestReceivedTimestamp"]))
        touched = str(ref.get("namespace", "")).startswith(f"{tenant}-") or str(
            ref.get("name", "")
        ).startswith(f"{tenant}-")
        if (
            stamp >= since
            and touched
            and str(event.get("userAgent", "")).startswith(OPERATOR_AGENTS)
        ):
            shown.append(f"{event.get('verb')} {ref.get('resource')} {ref.get('name')}")
    return shown


def test_a_secret_repointed_to_another_cluster_stops_every_write_there(
    kubectl: testing.Kubectl,
    site_kubectl: testing.Kubectl,
    hub: cluster.ControlPlane,
    subcenter: cluster.ControlPlane,
    shared_site: str,
    sites: sc.Sites,
    placed: sc.PlacedTenants,
) -> None:
    site_uid, hub_uid = _uid_of_kube_system(site_kubectl), _uid_of_kube_system(kubectl)
    name = sites.create(helpers.unique("pinned"), sc.kubeconfig_of(subcenter))
    body = sites.wait_ready(name)
    assert body["status"]["identity"]["kubeSystemUID"] == site_uid
    assert body["status"]["identity"]["caFingerprint"].startswith("sha256:")
    verified = sc.condition(body, "IdentityVerified")
    # The shared site of this module is the same cluster: said, not refused.
    assert (verified["status"], verified["reason"]) == ("True", "SharedCluster"), verified
    assert shared_site in verified["message"]
    tenant = helpers.unique("pin")
    placed.place(tenant, name)
    helpers.wait_phase(kubectl, tenant, "Active", timeout=60)
    assert sc.tenant_namespaces(site_kubectl, tenant) == [f"{tenant}-apps"]

    # Someone repoints the Secret to another cluster (here, the hub) and grows the tenant.
    since = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    sites.put_kubeconfig(name, sc.kubeconfig_of(hub))
    placed.patch(tenant, {"namespaces": [{"name": "apps"}, {"name": "more"}]})
    changed = sites.wait(
        name,
        lambda site: sc.reason(site, "IdentityVerified") == "IdentityChanged",
        "IdentityVerified=False IdentityChanged",
    )
    message = sc.condition(changed, "IdentityVerified")["message"]
    assert f"kube-system UID {hub_uid} (pinned {site_uid})" in message
    assert f"govcloud.io/confirm-identity={hub_uid}" in message
    assert sc.condition(changed, "Ready")["status"] == "False"
    assert changed["status"]["identity"]["kubeSystemUID"] == site_uid
    helpers.wait_tenant(
        kubectl,
        tenant,
        lambda body: (
            helpers.current(body)
            and "reach another cluster" in helpers.condition(body, "Ready").get("message", "")
        ),
        "the tenant to say its site reaches another cluster",
    )
    assert sc.tenant_namespaces(kubectl, tenant) == []
    assert sc.tenant_objects(kubectl, tenant) == []
    assert _operator_writes_in(hub, tenant, since) == []

    # The Secret restored, the site is trusted again and the tenant grows where it lives.
    sites.put_kubeconfig(name, sc.kubeconfig_of(subcenter))
    sites.wait_ready(name, timeout=30)
    helpers.wait_phase(kubectl, tenant, "Active", timeout=60)
    assert sc.tenant_namespaces(site_kubectl, tenant) == [f"{tenant}-apps", f"{tenant}-more"]
    assert sc.tenant_namespaces(kubectl, tenant) == []


def test_a_person_confirms_a_new_identity_with_the_annotation(
    kubectl: testing.Kubectl,
    hub: cluster.ControlPlane,
    subcenter: cluster.ControlPlane,
    sites: sc.Sites,
) -> None:
    hub_uid = _uid_of_kube_system(kubectl)
    name = sites.create(helpers.unique("moved"), sc.kubeconfig_of(subcenter))
    sites.wait_ready(name)
    sites.put_kubeconfig(name, sc.kubeconfig_of(hub))
    sites.wait(
        name,
        lambda site: sc.reason(site, "IdentityVerified") == "IdentityChanged",
        "IdentityVerified=False IdentityChanged",
    )

    kubectl("annotate", "subcenter", name, f"govcloud.io/confirm-identity={hub_uid}")

    body = sites.wait(
        name,
        lambda site: (
            sc.is_true(site, "IdentityVerified")
            and site["status"]["identity"]["kubeSystemUID"] == hub_uid
            and sc.is_true(site, "Ready")
        ),
        "the new identity pinned and the site Ready",
    )
    assert sc.reason(body, "IdentityVerified") in ("Confirmed", "Pinned")


# -- H3: placement is immutable once placed ------------------------------------------------


def _move(kubectl: testing.Kubectl, tenant: str, placement: Manifest | None) -> Any:
    return kubectl.run(
        "patch", "cloudtenant", tenant, "--type=merge", "-p",
        json.dumps({"spec": {"placement": placement}}),
    )  # fmt: skip


def test_a_placed_tenant_cannot_be_moved_by_changing_its_placement(
    kubectl: testing.Kubectl, shared_site: str, placed: sc.PlacedTenants
) -> None:
    on_hub = helpers.unique("onhub")
    placed.create(on_hub)
    on_site = helpers.unique("onsite")
    placed.place(on_site, shared_site)
    assert helpers.wait_phase(kubectl, on_hub, "Active")["status"]["placement"]["cluster"] == "hub"
    helpers.wait_phase(kubectl, on_site, "Active")

    for tenant, placement in ((on_hub, {"subCenter": shared_site}), (on_site, None)):
        refused = _move(kubectl, tenant, placement)
        assert refused.returncode != 0, f"{tenant} was moved"
        assert (
            "spec.placement cannot change once the tenant is placed (status.placement.cluster"
            " is set)" in refused.stderr
        ), refused.stderr
        assert "Moving a tenant" in refused.stderr

    # Not placed yet (its site does not exist): the placement may still be corrected.
    pending = helpers.unique("pending")
    placed.place(pending, helpers.unique("nosuchsite"))
    helpers.wait_tenant(
        kubectl,
        pending,
        lambda body: helpers.current(body) and helpers.phase(body) == "Pending",
        "Pending",
    )
    corrected = _move(kubectl, pending, {"subCenter": shared_site})
    assert corrected.returncode == 0, corrected.stderr
    body = helpers.wait_phase(kubectl, pending, "Active", timeout=60)
    assert body["status"]["placement"]["cluster"] == shared_site


# -- M7: a site's own words never reach a status -------------------------------------------

LEAK = "etcd at 10.9.8.7:2379 unhealthy; admin password hunter2"


class _Chatty(http.server.BaseHTTPRequestHandler):
    """A hostile site: every answer is a 500 whose body says what it wants shown."""

    def do_GET(self) -> None:
        body = f"[-]etcd failed\n{LEAK}\n".encode()
        self.send_response(500)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def chatty_site(tmp_path: Path) -> Iterator[tuple[str, bytes]]:
    """An https server on loopback answering 500 with a talkative body; (server, its CA)."""
    certs = pki.generate(tmp_path / "chatty")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Chatty)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs.serving.cert, certs.serving.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", certs.ca.cert.read_bytes()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_what_a_site_answers_is_never_copied_into_its_status(
    kubectl: testing.Kubectl,
    subcenter: cluster.ControlPlane,
    sites: sc.Sites,
    chatty_site: tuple[str, bytes],
) -> None:
    server, ca = chatty_site
    config = sc.with_ca(sc.with_server(sc.kubeconfig_of(subcenter), server), ca)
    name = sites.create(helpers.unique("chatty"), config)

    body = sites.wait(
        name,
        lambda site: sc.reason(site, "Ready") == "Unhealthy",
        "Ready=False Unhealthy",
    )
    assert "/readyz answered 500" in sc.condition(body, "Ready")["message"]
    shown = json.dumps(body, ensure_ascii=False) + json.dumps(
        helpers.events_for(kubectl, name, kind="SubCenter"), ensure_ascii=False
    )
    for word in ("10.9.8.7", "hunter2", "etcd failed"):
        assert word not in shown
