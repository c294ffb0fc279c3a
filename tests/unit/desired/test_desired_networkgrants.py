"""A NetworkGrant's opening: its state at a time, the Service it resolves to, its policies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pydantic
import pytest

from govcloud.api.v1alpha1 import networkgrant
from govcloud.desired import networkgrants

NOW = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def a_spec(**extra: Any) -> networkgrant.NetworkGrantSpec:
    spec: dict[str, Any] = {
        "provider": {"namespace": "rsj-data", "service": "api", "ports": ["https"]},
        "purpose": "社保资格核验",
        "requestedBy": "wang.mz",
        **extra,
    }
    return networkgrant.parse(spec)


SERVICE = {
    "spec": {
        "selector": {"app": "api"},
        "ports": [
            {"name": "https", "port": 443, "targetPort": 8443},
            {"name": "metrics", "port": 9090, "targetPort": "metrics"},
            {"name": "dns", "port": 53, "protocol": "UDP"},
        ],
    }
}


@pytest.mark.parametrize(
    ("extra", "now_offset", "consented", "problems", "expected"),
    [
        ({}, -DAY, False, [], "Pending"),
        ({}, -DAY, True, [], "Active"),
        ({}, DAY, True, [], "Expired"),
        ({}, timedelta(0), True, [], "Expired"),  # at the expiry itself: ended
        ({}, -DAY, True, ["no Service"], "Invalid"),
        ({"revocation": {"by": "li.rsj"}}, -DAY, True, [], "Revoked"),
        ({"revocation": {"by": "li.rsj"}}, DAY, True, [], "Revoked"),
    ],
)
def test_the_state_of_a_grant(
    extra: dict[str, Any],
    now_offset: timedelta,
    consented: bool,
    problems: list[str],
    expected: str,
) -> None:
    expires = NOW
    state = networkgrants.state(
        a_spec(**extra),
        now=expires + now_offset,
        expires_at=expires,
        consented=consented,
        problems=problems,
    )
    assert state.value == expected


def test_a_grant_resolves_service_ports_to_the_ports_the_pods_serve() -> None:
    target, problems = networkgrants.resolve(SERVICE, ["https", "9090", "dns"])
    assert problems == []
    assert target is not None
    assert target.selector == {"app": "api"}
    assert target.ports == (("TCP", 8443), ("TCP", "metrics"), ("UDP", 53))


@pytest.mark.parametrize(
    ("service", "ports", "needle"),
    [
        (None, ["https"], "does not exist"),
        ({"spec": {"ports": [{"name": "https", "port": 443}]}}, ["https"], "selects no pods"),
        (SERVICE, ["ssh"], "no port ssh"),
    ],
)
def test_a_grant_that_does_not_resolve_opens_nothing(
    service: dict[str, Any] | None, ports: list[str], needle: str
) -> None:
    target, problems = networkgrants.resolve(service, ports)
    assert target is None
    assert any(needle in problem for problem in problems)


def test_the_expiry_defaults_and_is_bounded() -> None:
    default, longest = 90 * DAY, 365 * DAY
    assert networkgrants.expiry(NOW, None, default, longest) == (NOW + default, None)
    assert networkgrants.expiry(NOW, NOW + 30 * DAY, default, longest) == (NOW + 30 * DAY, None)
    _, too_long = networkgrants.expiry(NOW, NOW + 400 * DAY, default, longest)
    assert too_long is not None
    assert "365 days" in too_long


def test_the_policies_open_the_granted_ports_between_the_two_tenants_only() -> None:
    target, _ = networkgrants.resolve(SERVICE, ["https"])
    assert target is not None
    ingress, *egress = networkgrants.policies(
        uid="u-1",
        grant="mz-app/check",
        provider_namespace="rsj-data",
        provider_tenant="rsj",
        consumer_tenant="mz",
        consumer_namespaces=["mz-web", "mz-app"],
        target=target,
    )
    assert ingress["metadata"]["namespace"] == "rsj-data"
    assert ingress["spec"]["podSelector"] == {"matchLabels": {"app": "api"}}
    assert ingress["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = ingress["spec"]["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8443}]
    (peer,) = rule["from"]
    assert peer["namespaceSelector"]["matchLabels"] == {"govcloud.io/tenant": "mz"}
    assert peer["namespaceSelector"]["matchExpressions"][0]["values"] == ["mz-app", "mz-web"]
    assert [p["metadata"]["namespace"] for p in egress] == ["mz-app", "mz-web"]
    for policy in egress:
        assert policy["spec"]["policyTypes"] == ["Egress"]
        (out,) = policy["spec"]["egress"]
        assert out["ports"] == [{"protocol": "TCP", "port": 8443}]
        assert out["to"][0]["namespaceSelector"]["matchLabels"] == {
            "govcloud.io/tenant": "rsj",
            "kubernetes.io/metadata.name": "rsj-data",
        }
        assert out["to"][0]["podSelector"] == {"matchLabels": {"app": "api"}}
    for policy in (ingress, *egress):
        labels = policy["metadata"]["labels"]
        # Never the tenant label: a tenant's own pass would prune the grant's policies.
        assert "govcloud.io/tenant" not in labels
        assert labels["govcloud.io/network-grant"] == "u-1"
        assert labels["app.kubernetes.io/managed-by"] == "govcloud-operator"


@pytest.mark.parametrize(
    "broken",
    [
        {"provider": {"namespace": "rsj-data", "service": "api", "ports": []}},
        {"provider": {"namespace": "rsj-data", "service": "api", "ports": ["HTTPS"]}},
        {"provider": {"namespace": "Rsj", "service": "api", "ports": ["https"]}},
        {"purpose": ""},
        {"consent": {"by": "li.rsj"}},  # no generation: not bound to what was read
    ],
)
def test_a_grant_spec_is_refused_as_the_api_server_refuses_it(broken: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        a_spec(**broken)
