"""Tenant isolation, both directions, and sharing by grant, proven by an independent
NetworkPolicy engine (issue #16, items 1 to 3).

The local control plane has no network plugin, so the policies the operator writes are judged
by cyclonus (`govcloud.dev.netpol`): it reads every NetworkPolicy from the API server, and the
namespaces and running pods are read back from it too. The test states, cell by cell, who must
reach whom on each port, and fails if a single cell differs.

The tenants and probe pods are made once for the module; the grant test leaves no grant in
effect, so the isolation test's table holds whichever runs first.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import _tenant_helpers as helpers
import pytest

from govcloud.cli import main
from govcloud.dev import cluster, netpol, testing

GRANTS = testing.REPO_ROOT / "charts" / "govcloud-operator" / "files" / "network" / "grants.yaml"
GRANT_POLICY = "govcloud-networkgrant-review"

pytestmark = pytest.mark.integration

PORTS = (netpol.Port(80), netpol.Port(5432), netpol.Port(53, "UDP"))
PLATFORM = "monitoring"  # GOVCLOUD_PLATFORM_NAMESPACES of the integration operator


@dataclass(frozen=True)
class Layout:
    """Who owns which namespace; `doors[t]` are the tenants `t` lets in through allowFrom."""

    owner: dict[str, str | None]
    doors: dict[str, set[str]]
    isolated: set[str]

    def expected(self, source: str, destination: str) -> bool:
        """The model the operator promises (docs/network.md): a connection needs both ends."""
        return self.ingress(source, destination) and self.egress(source, destination)

    def ingress(self, source: str, destination: str) -> bool:
        """Into an isolated tenant's namespace only from its own namespaces, its allowFrom
        tenants and the platform namespaces; into anything else from anywhere."""
        target = self.owner[destination]
        if target is None or target not in self.isolated:
            return True
        origin = self.owner[source]
        if origin == target or source == PLATFORM:
            return True
        return origin is not None and origin in self.doors[target]

    def egress(self, source: str, destination: str) -> bool:
        """Out of an isolated tenant's namespace only to its own namespaces, the platform
        namespaces and isolated tenants that let it in (DNS and the extranet have no probe
        here); out of anything else to anywhere."""
        origin = self.owner[source]
        if origin is None or origin not in self.isolated:
            return True
        target = self.owner[destination]
        if target == origin or destination == PLATFORM:
            return True
        return target in self.isolated and origin in self.doors[target]


@pytest.fixture(scope="module")
def tenants(
    kubectl: testing.Kubectl, operator: testing.OperatorProcess
) -> Iterator[helpers.Tenants]:
    """The module's tenants (shared by its tests), removed with their namespaces at the end."""
    made = helpers.Tenants(kubectl)
    yield made
    made.cleanup()


@pytest.fixture(scope="module")
def layout(kubectl: testing.Kubectl, tenants: helpers.Tenants) -> Layout:
    suffix = uuid.uuid4().hex[:5]
    tax, health, parks, open_ = (f"{name}-{suffix}" for name in ("tax", "health", "parks", "open"))
    specs = {
        tax: {
            "namespaces": [{"name": "web"}, {"name": "db"}],
            "admins": {"groups": [f"{tax}-admins"]},
        },
        health: {"namespaces": [{"name": "web"}], "admins": {"groups": [f"{health}-admins"]}},
        parks: {"namespaces": [{"name": "web"}], "network": {"allowFrom": [{"tenant": tax}]}},
        open_: {"namespaces": [{"name": "web"}], "network": {"isolated": False}},
    }
    for name, spec in specs.items():
        manifest = helpers.tenant_manifest(name)
        manifest["spec"].update(spec)
        tenants.apply(manifest)
    shared = f"shared-{suffix}"
    platform_made = kubectl.get("namespace", PLATFORM) is None
    for namespace in (shared, *([PLATFORM] if platform_made else [])):
        kubectl("create", "namespace", namespace)
        tenants.track_namespace(namespace)
    owner: dict[str, str | None] = {shared: None, PLATFORM: None}
    for name in specs:
        body = helpers.wait_phase(kubectl, name, "Active")
        for entry in body["status"]["namespaces"]:
            owner[entry["name"]] = name
    for namespace in owner:
        helpers.create(kubectl, helpers.restricted_pod("probe", namespace))
    _wait_running(kubectl, list(owner))
    doors = {tax: set(), health: set(), parks: {tax}, open_: set()}
    return Layout(owner, doors, isolated={tax, health, parks})


def _wait_running(kubectl: testing.Kubectl, namespaces: list[str]) -> None:
    for namespace in namespaces:
        testing.eventually(
            lambda namespace=namespace: (
                (kubectl.get("pod", "probe", namespace) or {}).get("status") or {}
            ).get("podIP"),
            timeout=60,
            what=f"pod {namespace}/probe to run with an IP",
        )


def test_the_operators_policies_isolate_tenants_cell_by_cell(
    hub: cluster.ControlPlane, layout: Layout
) -> None:
    tables = netpol.probe(hub.kubeconfig, sorted(layout.owner), PORTS)
    pods = [f"{namespace}/probe" for namespace in sorted(layout.owner)]
    for port, table in tables.items():
        wrong = [
            f"{source} -> {destination} on {port}: engine says "
            f"{'allowed' if table.allowed(source, destination) else 'refused'}"
            for source in pods
            for destination in pods
            if table.allowed(source, destination)
            != layout.expected(source.split("/")[0], destination.split("/")[0])
        ]
        assert not wrong, "\n".join(wrong)
        assert len(table.combined) == len(pods) ** 2
    # The table is not vacuous: isolation refuses something in each direction.
    refused = sum(not t.allowed(s, d) for t in tables.values() for s in pods for d in pods)
    assert refused > 0
    out_only = [
        (s, d)
        for s in pods
        for d in pods
        if layout.ingress(s.split("/")[0], d.split("/")[0])
        and not layout.egress(s.split("/")[0], d.split("/")[0])
    ]
    assert out_only, "some connection must be refused by egress alone (e.g. into the shared one)"


# -- sharing by grant (issue #16, item 2) ---------------------------------------------------


@pytest.fixture(scope="module")
def grant_review(kubectl: testing.Kubectl) -> Iterator[None]:
    """The chart's NetworkGrant roles and review policy, as shipped."""
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(GRANTS))
    yield
    kubectl.run("delete", "--ignore-not-found", "--wait=false", "-f", str(GRANTS))


def _grant(namespace: str, name: str, requester: str, provider: str, **spec: Any) -> Any:
    return {
        "apiVersion": "govcloud.io/v1alpha1",
        "kind": "NetworkGrant",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "provider": {"namespace": provider, "service": "records", "ports": ["pg"]},
            "purpose": "社保资格核验",
            "requestedBy": requester,
            **spec,
        },
    }


def _patch(who: testing.Kubectl, namespace: str, name: str, spec: Any, *extra: str) -> Any:
    body = json.dumps({"spec": spec})
    return who.run(
        "patch", "networkgrant", name, "-n", namespace, "--type=merge", "-p", body, *extra
    )


def _generation(kubectl: testing.Kubectl, namespace: str, name: str) -> int:
    found = kubectl.get("networkgrant", name, namespace)
    assert found is not None
    return int(found["metadata"]["generation"])


def _state(
    kubectl: testing.Kubectl, namespace: str, name: str, wanted: str, timeout: float = 30
) -> Any:
    def check() -> Any:
        found = kubectl.get("networkgrant", name, namespace) or {}
        status = found.get("status") or {}
        current = status.get("observedGeneration") == found.get("metadata", {}).get("generation")
        return found if current and status.get("state") == wanted else None

    return testing.eventually(check, timeout=timeout, what=f"grant {namespace}/{name} {wanted}")


def _table_is(hub: cluster.ControlPlane, layout: Layout, opened: set[tuple[str, str, int]]) -> None:
    """Every cell as the model says, plus exactly the `opened` (source ns, dest ns, port)."""
    tables = netpol.probe(hub.kubeconfig, sorted(layout.owner), PORTS)
    pods = [f"{namespace}/probe" for namespace in sorted(layout.owner)]
    wrong = []
    for port, table in tables.items():
        for source in pods:
            for destination in pods:
                s, d = source.split("/")[0], destination.split("/")[0]
                wanted = layout.expected(s, d) or (s, d, port.number) in opened
                if table.allowed(source, destination) != wanted:
                    said = "allowed" if table.allowed(source, destination) else "refused"
                    wrong.append(f"{source} -> {destination} on {port}: engine says {said}")
                if (s, d, port.number) in opened:  # opened on both sides, not by one alone
                    assert table.ingress[(source, destination)] == netpol.ALLOWED
                    assert table.egress[(source, destination)] == netpol.ALLOWED
    assert not wrong, "\n".join(wrong)


def _plugin(hub: cluster.ControlPlane, who: tuple[str, ...], *args: str) -> str:
    """`kubectl govcloud ...` in this process as `who` (user, groups...): its output."""
    user, *groups = who
    argv = ["--kubeconfig", str(hub.kubeconfig), "--as", user]
    for group in groups:
        argv += ["--as-group", group]
    out, err = io.StringIO(), io.StringIO()
    assert main.run([*argv, *args], out, err) == 0, err.getvalue()
    return out.getvalue()


def _refused(result: Any, needle: str) -> bool:
    """Whether the API server refused the call, saying `needle` (the policy's message)."""
    return result.returncode != 0 and needle in " ".join(result.stderr.split())


@contextlib.contextmanager
def _review_unbound(kubectl: testing.Kubectl) -> Iterator[None]:
    """The grant review policy's binding removed (a cluster where it is missing)."""
    kubectl("delete", "validatingadmissionpolicybinding", GRANT_POLICY)
    try:
        yield
    finally:
        kubectl("apply", "--server-side", "--force-conflicts", "-f", str(GRANTS))


def test_a_grant_opens_exactly_the_granted_service_port_with_consent_until_it_ends(
    hub: cluster.ControlPlane,
    kubectl: testing.Kubectl,
    layout: Layout,
    grant_review: None,
) -> None:
    owners = {owner: ns for ns, owner in layout.owner.items() if owner}
    tax, health = (next(t for t in owners if t.startswith(p)) for p in ("tax-", "health-"))
    consumer_ns, provider_ns = f"{tax}-web", f"{health}-web"
    consumer = kubectl.impersonate("wang.tax", f"{tax}-admins")
    provider = kubectl.impersonate("li.health", f"{health}-admins")
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "records", "namespace": provider_ns},
        "spec": {"selector": {"app": "probe"}, "ports": [{"name": "pg", "port": 5432}]},
    }
    kubectl.apply(service)
    ends = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=45)
    short = _grant(consumer_ns, "short", "wang.tax", provider_ns, expires=ends.isoformat())
    long_ = _grant(consumer_ns, "long", "wang.tax", provider_ns)
    # The consumer's admin requests; filing it in someone else's name is refused.
    forged = testing.json_text({**long_, "spec": {**long_["spec"], "requestedBy": "x"}})
    testing.eventually(  # the policy is enforced a moment after it is installed
        lambda: _refused(
            consumer.run("create", "--dry-run=server", "-f", "-", stdin=forged),
            "requestedBy must be the user filing",
        ),
        what="the grant review policy to refuse a grant filed in someone else's name",
    )
    for manifest in (short, long_):
        created = helpers.create(consumer, manifest)
        assert created.returncode == 0, created.stderr
    _state(kubectl, consumer_ns, "short", "Pending")
    # The consumer cannot consent for the provider: refused by the policy...
    self_consent = {"by": "wang.tax", "generation": _generation(kubectl, consumer_ns, "short")}
    refused = _patch(consumer, consumer_ns, "short", {"consent": self_consent})
    assert _refused(refused, "a consumer cannot grant itself access"), refused.stderr
    # ... and the provider cannot change what was asked (only consent or revoke).
    widened = {"consumers": [consumer_ns, f"{tax}-db"]}
    assert _refused(_patch(provider, consumer_ns, "short", widened), "may change only")

    consent = {
        "by": "li.health",
        "groups": [f"{health}-admins"],
        "generation": _generation(kubectl, consumer_ns, "short"),
        "reason": "同意核验",
    }
    consented = _patch(provider, consumer_ns, "short", {"consent": consent})
    assert consented.returncode == 0, consented.stderr
    active = _state(kubectl, consumer_ns, "short", "Active")
    assert active["status"]["consentedBy"] == "li.health"
    _table_is(hub, layout, {(consumer_ns, provider_ns, 5432)})
    assert datetime.datetime.now(datetime.UTC) < ends, "the table must be read before the expiry"
    # A grant's policy deleted by hand (the provider's admin may) is put back by its grant's
    # pass, and the tenants' own passes (every 5 s here) never prune it.
    policy = f"govcloud-grant-{active['metadata']['uid']}"
    kubectl("delete", "networkpolicy", policy, "-n", provider_ns)
    testing.eventually(
        lambda: kubectl.get("networkpolicy", policy, provider_ns),
        timeout=15,
        what="the grant's ingress policy restored",
    )

    # Without the policy, a consumer's own consent is admitted but the operator ignores it.
    with _review_unbound(kubectl):
        self_consent = {"by": "wang.tax", "generation": _generation(kubectl, consumer_ns, "long")}
        testing.eventually(
            lambda: (
                _patch(consumer, consumer_ns, "long", {"consent": self_consent}).returncode == 0
            ),
            what="the API server to stop enforcing the grant review policy",
        )
        ignored = testing.eventually(
            lambda: (
                found
                if helpers.condition(
                    found := kubectl.get("networkgrant", "long", consumer_ns), "Active"
                ).get("reason")
                == "ConsentRefused"
                else None
            ),
            what="the operator to ignore the consumer's own consent",
        )
    assert ignored["status"]["state"] == "Pending"
    assert ignored["status"].get("policies", []) == []
    assert ignored["status"]["history"][-1]["event"] == "ConsentIgnored"

    # The provider consents to the other one too, then revokes it, with the kubectl plugin
    # (its own rights, the acting user recorded): withdrawn and recorded.
    as_provider = ("li.health", f"{health}-admins")
    said = _plugin(
        hub, as_provider, "grant", "consent", "long", "-n", consumer_ns, "--reason", "同意"
    )
    assert said.startswith(f"networkgrant.govcloud.io/long in {consumer_ns} consented"), said
    assert _state(kubectl, consumer_ns, "long", "Active")["status"]["policies"]
    said = _plugin(
        hub, as_provider, "grant", "revoke", "long", "-n", consumer_ns, "--reason", "项目结束"
    )
    assert "revoked" in said, said
    gone = _state(kubectl, consumer_ns, "long", "Revoked")
    assert gone["status"].get("policies", []) == []
    assert [(h["event"], h.get("by")) for h in gone["status"]["history"]] == [
        ("Requested", "wang.tax"),
        ("ConsentIgnored", "wang.tax"),
        ("Consented", "li.health"),
        ("Revoked", "li.health"),
    ]
    undo = _patch(consumer, consumer_ns, "long", {"revocation": None})
    assert undo.returncode != 0, "a revocation is final"
    history = _plugin(
        hub, ("wang.tax", f"{tax}-admins"), "grant", "history", "long", "-n", consumer_ns
    )
    assert "Revoked" in history, history
    assert "li.health" in history, history
    left = kubectl.json(
        "get", "networkpolicy", "-A", "-l", f"govcloud.io/network-grant={gone['metadata']['uid']}"
    )
    assert left["items"] == []

    # The short one ends by itself: withdrawn at its expiry, with an Event, table as before.
    left_to_run = (ends - datetime.datetime.now(datetime.UTC)).total_seconds()
    expired = _state(kubectl, consumer_ns, "short", "Expired", timeout=max(0.0, left_to_run) + 20)
    ended_at = datetime.datetime.fromisoformat(
        expired["status"]["history"][-1]["at"].replace("Z", "+00:00")
    )
    assert ended_at >= ends.replace(microsecond=0), (ended_at, ends)  # not before its time
    assert expired["status"].get("policies", []) == []
    assert ("Consented", "li.health") in [
        (h["event"], h.get("by")) for h in expired["status"]["history"]
    ]
    assert expired["status"]["history"][-1]["event"] == "Expired"
    reasons = {e["reason"] for e in helpers.events_for(kubectl, "short", "NetworkGrant")}
    assert {"GrantRequested", "GrantActive", "GrantExpired"} <= reasons
    # The data owner is told in its own namespace, on the Service the grant names.
    told = {e["reason"] for e in helpers.events_for(kubectl, "records", "Service")}
    assert {"GrantRequested", "GrantActive", "GrantRevoked", "GrantExpired"} <= told
    _table_is(hub, layout, set())
