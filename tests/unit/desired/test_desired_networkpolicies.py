"""Isolation: ingress only from the tenant itself, its allowFrom peers and platform namespaces."""

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


def test_policy_selects_every_pod_and_restricts_ingress_only(make_spec: SpecFactory) -> None:
    policy = networkpolicies.build("jtj", "jtj-prod", make_spec().network, [])
    assert policy is not None
    assert policy["metadata"]["name"] == "govcloud-isolation"
    assert policy["metadata"]["namespace"] == "jtj-prod"
    assert policy["spec"] == {
        "podSelector": {},
        "policyTypes": ["Ingress"],
        "ingress": [{"from": [OWN]}],
    }


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
