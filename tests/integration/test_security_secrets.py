"""No credential anywhere it should not be, even with --verbose; /metrics only for monitoring.

Review H6 and M10: the operator runs with debug logging while it reads sub-center kubeconfig
Secrets on every probe, writes a placed tenant through them and copies an app's Secret in a
migration; its log, every Event, every govcloud object and /metrics are then scanned for the
credentials and the Secret's value. The chart's NetworkPolicy
for /metrics is checked as rendered and as installed (no CNI here enforces it).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Iterator
from typing import Any

import _subcenter_helpers as sc
import _tenant_helpers as helpers
import pytest
from _chart_helpers import CHART, Release, helm, one, render
from test_migration import World

from govcloud.dev import cluster, testing

pytestmark = pytest.mark.integration

Manifest = dict[str, Any]
GOVCLOUD_KINDS = (
    "cloudtenants", "subcenters", "resourceplans", "migrationplans", "usagereports", "ratecards",
)  # fmt: skip


# -- no secret in logs, Events, status or metrics --------------------------------------------


@pytest.fixture(scope="module")
def verbose_operator(
    hub: cluster.ControlPlane, operator: testing.OperatorProcess
) -> Iterator[testing.OperatorProcess]:
    """The shared operator paused; one with --verbose (debug logging) in its place."""
    operator.stop()
    log = testing.REPO_ROOT / ".cache" / "logs" / f"operator-verbose-{os.getpid()}.log"
    log.unlink(missing_ok=True)
    process = testing.OperatorProcess(
        hub.kubeconfig,
        log,
        env={"GOVCLOUD_RESYNC_SECONDS": "5", "GOVCLOUD_PLATFORM_NAMESPACES": "monitoring"},
        args=("--verbose",),
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()
        operator.start()


def credential_pieces(config: Manifest) -> list[str]:
    """Every form of the kubeconfig's token, client certificate and key that could leak."""
    user = config["users"][0]["user"]
    pieces: list[str] = []
    if "token" in user:
        pieces.append(str(user["token"]))
    for field in ("client-certificate-data", "client-key-data"):
        if field not in user:
            continue
        encoded = str(user[field])
        pem = base64.b64decode(encoded).decode()
        body = "".join(line for line in pem.splitlines() if not line.startswith("-----"))
        pieces += [encoded[:64], encoded[64:128], body[:64], body[64:128]]
    return [piece for piece in pieces if piece]


def everything_visible(
    kubectl: testing.Kubectl, operator: testing.OperatorProcess
) -> dict[str, str]:
    """The operator's log, every Event, every govcloud object (status included), /metrics."""
    places = {
        "log": operator.log_path.read_text(errors="replace"),
        "events": json.dumps(kubectl.json("get", "events", "-A", "-o", "json")),
        "metrics": operator.metrics(),
    }
    for kind in GOVCLOUD_KINDS:
        places[kind] = json.dumps(kubectl.json("get", kind, "-o", "json"))
    return places


def test_verbose_operator_never_shows_a_credential_or_a_response_body(
    kubectl: testing.Kubectl,
    site_kubectl: testing.Kubectl,
    subcenter: cluster.ControlPlane,
    system_namespace: str,
    verbose_operator: testing.OperatorProcess,
) -> None:
    sites = sc.Sites(kubectl)
    placed = sc.PlacedTenants(kubectl, site_kubectl)
    world = World(kubectl)
    good = sc.kubeconfig_of(subcenter)  # client certificate and key
    wrong_token = sc.with_user(good, {"token": secrets.token_urlsafe(48)})
    password = secrets.token_urlsafe(24)
    try:
        # A migration copies a Secret of the legacy app into the tenant's namespace.
        tenant = world.tenant("leakmig")
        legacy = world.legacy(annotations={"govcloud.io/migration-grant": tenant})
        kubectl(
            "patch", "secret", "permits-db", "-n", legacy, "--type=merge",
            "-p", json.dumps({"stringData": {"password": password}}),
        )  # fmt: skip
        world.plan(f"{tenant}-apps", legacy, f"{tenant}-apps")
        site = sites.create(helpers.unique("leak"), good)
        refused = sites.create(helpers.unique("leaktoken"), wrong_token)
        sites.wait_ready(site, timeout=60)
        sites.wait(
            refused,
            lambda body: sc.condition(body, "CredentialsValid").get("status") == "False",
            "the wrong token refused",
            timeout=60,
        )
        placed_tenant = helpers.unique("leaky")
        placed.place(placed_tenant, site)
        helpers.wait_phase(kubectl, placed_tenant, "Active", timeout=60)
        testing.eventually(
            lambda: copied_password(kubectl, f"{tenant}-apps") == password,
            timeout=90,
            what="the migration to copy the legacy app's Secret",
        )
        # Several more probes of both sites, each reading its Secret again.
        probed = sites.get(site)["status"]["lastProbeTime"]
        sites.wait(site, lambda body: body["status"]["lastProbeTime"] > probed, "another probe", 30)

        places = everything_visible(kubectl, verbose_operator)
        assert " DEBUG " in places["log"], "the operator did not log at debug level"
        bodies = [
            line
            for line in places["log"].splitlines()
            if " DEBUG kubernetes" in line or " DEBUG urllib3" in line
        ]
        assert not bodies, f"HTTP bodies reach the debug log: {bodies[0][:200]}"
        pieces = credential_pieces(good) + credential_pieces(wrong_token)
        pieces += [password, base64.b64encode(password.encode()).decode()]
        for where, text in places.items():
            for piece in pieces:
                assert piece not in text, f"a credential ({piece[:6]}...) leaked into the {where}"
    finally:
        world.cleanup()
        placed.cleanup()
        sites.cleanup()


def copied_password(kubectl: testing.Kubectl, namespace: str) -> str | None:
    found = kubectl.get("secret", "permits-db", namespace)
    encoded = ((found or {}).get("data") or {}).get("password")
    return base64.b64decode(encoded).decode() if encoded else None


# -- /metrics only for the monitoring namespace -------------------------------------------


def metrics_policy(manifests: list[Manifest]) -> Manifest | None:
    found = [
        item
        for item in manifests
        if item["kind"] == "NetworkPolicy" and item["metadata"]["name"].endswith("-metrics")
    ]
    return found[0] if found else None


def test_metrics_are_reachable_only_from_the_monitoring_namespace_by_default() -> None:
    manifests = render()
    policy = metrics_policy(manifests)
    assert policy is not None, "no NetworkPolicy guards /metrics"
    pod = one(manifests, "Deployment")["spec"]["template"]
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress"]
    assert spec["podSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    ports = {port["name"]: port for port in pod["spec"]["containers"][0]["ports"]}
    metrics_rule, health_rule = spec["ingress"]
    assert metrics_rule["ports"] == [{"port": "http-metrics", "protocol": "TCP"}]
    assert metrics_rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    # kubelet probes still reach the health port (and nothing about tenants is served there).
    assert health_rule == {"ports": [{"port": "health", "protocol": "TCP"}]}
    assert {"http-metrics", "health"} <= ports.keys()


def test_metrics_policy_follows_its_values() -> None:
    assert metrics_policy(render("--set", "metrics.networkPolicy.enabled=false")) is None
    policy = metrics_policy(
        render(
            "--set", "metrics.networkPolicy.namespaceSelector.matchLabels.team=observability",
            "--set", "metrics.networkPolicy.podSelector.matchLabels.app=prometheus",
        )
    )  # fmt: skip
    assert policy is not None
    source = policy["spec"]["ingress"][0]["from"][0]
    assert source["namespaceSelector"]["matchLabels"]["team"] == "observability"
    assert source["podSelector"] == {"matchLabels": {"app": "prometheus"}}
    typo = render_error("--set", "metrics.networkPolicy.namespaceSelecter.x=y")
    assert "namespaceSelecter" in typo


def render_error(*extra: str) -> str:
    result = helm("template", "govcloud", str(CHART), *extra)
    assert result.returncode != 0
    return result.stderr


def test_the_chart_installs_the_metrics_policy(
    hub: cluster.ControlPlane, kubectl: testing.Kubectl, crds: None
) -> None:
    release = Release(hub, kubectl)
    result = release.install()
    try:
        assert result.returncode == 0, result.stderr
        installed = kubectl.get("networkpolicy", f"{release.fullname}-metrics", release.namespace)
        assert installed is not None
        pods = installed["spec"]["podSelector"]["matchLabels"]
        assert pods["app.kubernetes.io/instance"] == release.name
    finally:
        release.uninstall()
