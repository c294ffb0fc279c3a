"""The network boundary (issue #16, item 1), on whatever cluster the suite runs against: who
may reach whom under the NetworkPolicies the operator wrote, computed by an independent engine
(cyclonus) over the real objects — and, where pods really run behind a network plugin that
enforces NetworkPolicy (the kind workflow: kind >= 0.24 ships kube-network-policies), each cell
of that table tried with a real connection from a real pod.

Two departments from `examples/` (市交通运输局, level 3; 高新区管委会, level 2, whose
`allowFrom` names city-transport by namespace selector) and a namespace no tenant owns, one
agnhost server pod in each; port 8080/TCP.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import harness
from govcloud.dev import netpol, testing

TRANSPORT = "tenant-city-transport.yaml"
ZONE = "tenant-hightech-zone.yaml"
PORT = netpol.Port(8080)
# https://github.com/kubernetes/kubernetes/tree/master/test/images/agnhost (netexec, connect)
AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.53"
POD = "probe"
RUNNING_TIMEOUT = 240.0  # a real cluster pulls the image first

Manifest = dict[str, Any]


def server_pod(namespace: str) -> Manifest:
    """agnhost serving HTTP on 8080, fit for Pod Security `restricted` (level-3 namespaces)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": POD, "namespace": namespace, "labels": {"app": POD}},
        "spec": {
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 1000,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "agnhost",
                    "image": AGNHOST,
                    "args": ["netexec", f"--http-port={PORT.number}"],
                    "ports": [{"containerPort": PORT.number, "protocol": PORT.protocol}],
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }


@pytest.fixture(scope="module")
def layout(onboard: Any, kubectl: testing.Kubectl) -> Iterator[dict[str, str]]:
    """Role -> namespace: a server pod in each, Running with an IP."""
    onboard(TRANSPORT)
    onboard(ZONE)
    outside = f"e2e-outside-{uuid.uuid4().hex[:5]}"
    kubectl("create", "namespace", outside)
    kubectl("label", "namespace", outside, f"{harness.E2E_LABEL}=true")
    found = {"transport": "city-transport-prod", "zone": "hightech-zone-apps", "outside": outside}
    try:
        for namespace in found.values():
            kubectl.apply(server_pod(namespace))
        for namespace in found.values():
            testing.eventually(
                lambda namespace=namespace: running_with_ip(kubectl, namespace),
                timeout=RUNNING_TIMEOUT,
                what=f"the probe pod of {namespace} Running with an IP",
            )
        yield found
    finally:
        for namespace in found.values():
            kubectl.run("delete", "pod", POD, "-n", namespace, "--wait=false")
        kubectl.run("delete", "namespace", outside, "--wait=false")


def running_with_ip(kubectl: testing.Kubectl, namespace: str) -> str | None:
    pod = kubectl.get("pod", POD, namespace) or {}
    status = pod.get("status") or {}
    ready = any(
        item.get("type") == "Ready" and item.get("status") == "True"
        for item in status.get("conditions") or []
    )
    return status.get("podIP") if status.get("phase") == "Running" and ready else None


def pod(namespace: str) -> str:
    return f"{namespace}/{POD}"


# Combined verdicts (source role, destination role), by docs/network.md: a tenant is reached
# from its own namespaces only (and the platform, and tenant-form allowFrom peers); its egress
# goes to DNS, itself, the platform and tenants that let it in by name. 高新区's selector-form
# allowFrom admits city-transport on its side, but city-transport's own egress does not name
# 高新区, so that connection stays refused; a namespace no tenant owns is reached by nobody
# isolated and reaches nobody isolated.
EXPECTED = {
    ("transport", "transport"): True,
    ("transport", "zone"): False,
    ("transport", "outside"): False,
    ("zone", "transport"): False,
    ("zone", "zone"): True,
    ("zone", "outside"): False,
    ("outside", "transport"): False,
    ("outside", "zone"): False,
    ("outside", "outside"): True,
}


def engine_table(kubectl: testing.Kubectl, layout: dict[str, str]) -> dict[tuple[str, str], bool]:
    table = netpol.probe(kubectl.kubeconfig, sorted(layout.values()), [PORT])[PORT]
    return {
        (source, destination): table.allowed(pod(layout[source]), pod(layout[destination]))
        for source in layout
        for destination in layout
    }


def test_the_engine_says_each_department_is_reached_only_as_documented(
    layout: dict[str, str], kubectl: testing.Kubectl
) -> None:
    assert engine_table(kubectl, layout) == EXPECTED


def connects(kubectl: testing.Kubectl, source: str, ip: str) -> bool:
    """One real TCP connection from the probe pod of `source` to `ip`:8080, as agnhost makes it
    (exit 0: connected; non-zero with TIMEOUT or REFUSED: not)."""
    result = kubectl.run(
        "exec", "-n", source, POD, "--",
        "/agnhost", "connect", f"{ip}:{PORT.number}", "--timeout=3s",
        f"--protocol={PORT.protocol.lower()}",
    )  # fmt: skip
    if result.returncode != 0 and not any(
        word in result.stdout + result.stderr for word in ("TIMEOUT", "REFUSED")
    ):
        raise AssertionError(f"agnhost connect failed oddly: {result.stdout}{result.stderr}")
    return result.returncode == 0


def test_a_real_network_plugin_agrees_with_the_engine_cell_by_cell(
    layout: dict[str, str], kubectl: testing.Kubectl
) -> None:
    if harness.fake_nodes(kubectl):
        pytest.skip(
            "kwok nodes run no pod and no network plugin: real connections are tried on kind"
            " (.github/workflows/e2e.yml); the engine's table above is checked here"
        )
    ips = {role: running_with_ip(kubectl, namespace) for role, namespace in layout.items()}
    engine = engine_table(kubectl, layout)
    # Policies take effect in the dataplane a moment after they are written: poll each cell.
    seen: dict[tuple[str, str], bool] = {}
    for (source, destination), allowed in engine.items():
        testing.eventually(
            lambda source=source, destination=destination, allowed=allowed: (
                seen.__setitem__(
                    (source, destination),
                    connects(kubectl, layout[source], str(ips[destination])),
                )
                or seen[(source, destination)] == allowed
            ),
            timeout=60,
            what=f"{source} -> {destination} to be {'allowed' if allowed else 'refused'}",
        )
    assert seen == engine, json.dumps({f"{s}->{d}": v for (s, d), v in seen.items()})
