"""Isolation: ingress only from the tenant itself, its allowFrom peers and platform namespaces;
egress only to DNS, the tenant, the platform, tenants that let it in, the extranet and grants."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from govcloud.api.v1alpha1 import cloudtenant
from govcloud.desired import networkpolicies

OWN = {"namespaceSelector": {"matchLabels": {"govcloud.io/tenant": "jtj"}}}

SpecFactory = Callable[..., cloudtenant.CloudTenantSpec]


def ingress_from(allow_from: list[dict[str, Any]], platform: list[str]) -> Any:
    # model_construct: also covers peers the API refuses but an old stored object may hold.
    peers = [
        cloudtenant.NetworkPeer.model_construct(
            tenant=peer.get("tenant"), namespace_selector=peer.get("namespaceSelector")
        )
        for peer in allow_from
    ]
    network = cloudtenant.NetworkSpec.model_construct(isolated=True, allow_from=peers)
    policy = networkpolicies.build("jtj", "jtj-prod", network, platform)
    assert policy is not None
    return policy["spec"]["ingress"][0]["from"]


def test_no_policy_when_not_isolated(make_spec: SpecFactory) -> None:
    spec = make_spec(network={"isolated": False})
    assert networkpolicies.build("jtj", "jtj-prod", spec.network, ["monitoring"]) is None


DNS = {
    "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}],
    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
}
LET_IN = {"namespaceSelector": {"matchLabels": {"allow-from.govcloud.io/jtj": "true"}}}


def test_policy_selects_every_pod_and_restricts_both_directions(make_spec: SpecFactory) -> None:
    policy = networkpolicies.build("jtj", "jtj-prod", make_spec().network, [])
    assert policy is not None
    assert policy["metadata"]["name"] == "govcloud-isolation"
    assert policy["metadata"]["namespace"] == "jtj-prod"
    assert policy["spec"] == {
        "podSelector": {},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": [OWN]}],
        "egress": [DNS, {"to": [OWN, LET_IN]}],
    }


def egress_of(make_spec: SpecFactory, level: int, *cidrs: str) -> networkpolicies.Egress:
    spec = make_spec(
        securityLevel=level,
        network={"egressTo": [{"cidr": cidr, "reason": "数据交换"} for cidr in cidrs]},
    )
    policy = networkpolicies.EgressPolicy(
        extranet=("59.203.0.0/16",), allowed=("10.0.0.0/8", "2001:db8::/32")
    )
    return networkpolicies.grant_egress(spec, policy)


def test_egress_reaches_the_extranet_and_only_the_granted_networks(make_spec: SpecFactory) -> None:
    egress = egress_of(make_spec, 2, "10.20.0.0/16", "192.168.0.0/24", "2001:db8:1::/48")
    assert [rule.cidr for rule in egress.granted] == ["10.20.0.0/16", "2001:db8:1::/48"]
    assert egress.refused == ("192.168.0.0/24: not inside a network the platform allows",)
    rules = networkpolicies.egress_rules("jtj", ["monitoring"], egress)
    blocks = [peer["ipBlock"]["cidr"] for rule in rules for peer in rule["to"] if "ipBlock" in peer]
    assert blocks == ["59.203.0.0/16", "10.20.0.0/16", "2001:db8:1::/48"]


def test_a_level_3_tenant_gets_the_strict_default(make_spec: SpecFactory) -> None:
    egress = egress_of(make_spec, 3, "10.20.0.0/16")
    assert egress.granted == ()
    assert egress.refused == ("10.20.0.0/16: security level 3 gets the strict default",)


def test_a_receiver_labels_its_namespaces_for_the_tenants_it_lets_in(
    make_spec: SpecFactory,
) -> None:
    spec = make_spec(network={"allowFrom": [{"tenant": "szj"}, {"namespaceSelector": {"a": "b"}}]})
    assert networkpolicies.door_labels(spec.network) == {"allow-from.govcloud.io/szj": "true"}
    opened = make_spec(network={"isolated": False, "allowFrom": [{"tenant": "szj"}]})
    assert networkpolicies.door_labels(opened.network) == {}


@pytest.mark.parametrize(
    ("allow_from", "platform", "expected"),
    [
        ([], [], [OWN]),
        (
            [{"tenant": "szj"}],
            [],
            [OWN, {"namespaceSelector": {"matchLabels": {"govcloud.io/tenant": "szj"}}}],
        ),
        (
            [{"namespaceSelector": {"exchange": "open"}}],
            [],
            [OWN, {"namespaceSelector": {"matchLabels": {"exchange": "open"}}}],
        ),
        (
            [{"tenant": "szj", "namespaceSelector": {"exchange": "open"}}],
            [],
            [
                OWN,
                {
                    "namespaceSelector": {
                        "matchLabels": {"exchange": "open", "govcloud.io/tenant": "szj"}
                    }
                },
            ],
        ),
        (
            [],
            ["monitoring", "ingress-nginx", "monitoring"],
            [
                OWN,
                {
                    "namespaceSelector": {
                        "matchExpressions": [
                            {
                                "key": "kubernetes.io/metadata.name",
                                "operator": "In",
                                "values": ["ingress-nginx", "monitoring"],
                            }
                        ]
                    }
                },
            ],
        ),
        # An entry that selects nothing must never become "every namespace".
        ([{}, {"namespaceSelector": {}}], [], [OWN]),
        # Duplicates (including a peer equal to the tenant itself) appear once.
        ([{"tenant": "jtj"}, {"tenant": "szj"}, {"tenant": "szj"}], [], None),
    ],
)
def test_ingress_peers(allow_from: Any, platform: list[str], expected: Any) -> None:
    peers = ingress_from(allow_from, platform)
    if expected is None:
        assert len(peers) == 2
        assert peers[0] == OWN
    else:
        assert peers == expected
    assert {} not in peers
    assert all(peer["namespaceSelector"] for peer in peers)
