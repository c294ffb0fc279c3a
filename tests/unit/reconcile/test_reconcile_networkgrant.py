"""A NetworkGrant's pass: a consent opens only when the API server says its author may give
it and it is bound to the grant as read; expiry and revocation withdraw; all is recorded."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from _status_patch import merge_status

from govcloud.k8s import client
from govcloud.reconcile import networkgrant

NOW = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
Manifest = dict[str, Any]
TENANTS = {"mz-app": "mz", "mz-web": "mz", "rsj-data": "rsj"}


class Hub:
    """Tenants mz (consumer) and rsj (provider); the SubjectAccessReviews allow `consent` in
    rsj-data only to li.rsj."""

    def __init__(self, body: Manifest) -> None:
        self.body = body
        self.policies: dict[tuple[str, str], Manifest] = {}
        self.reviews: list[Manifest] = []
        self.applied = 0

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Any:
        if kind == "Namespace":
            owner = TENANTS.get(name)
            return {
                "metadata": {"name": name, "labels": {"govcloud.io/tenant": owner} if owner else {}}
            }
        if kind == "NetworkGrant":
            return copy.deepcopy(self.body)
        if kind == "NetworkPolicy":
            return copy.deepcopy(self.policies.get((namespace or "", name)))
        if kind == "Service" and (namespace, name) == ("rsj-data", "api"):
            return {
                "metadata": {"name": "api", "namespace": "rsj-data"},
                "spec": {"selector": {"app": "api"}, "ports": [{"name": "https", "port": 443}]},
            }
        return None

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> list[Manifest]:
        if kind == "NetworkGrant":
            return [copy.deepcopy(self.body)] if self.body else []
        assert kind == "NetworkPolicy"
        last = (label_selector or "").split(",")[-1]
        key, _, uid = last.partition("=")
        assert key == "govcloud.io/network-grant"
        return [
            p
            for p in self.policies.values()
            if uid in ("", p["metadata"]["labels"]["govcloud.io/network-grant"])
        ]

    def apply(self, manifest: Manifest) -> Manifest:
        self.applied += 1
        self.policies[(manifest["metadata"]["namespace"], manifest["metadata"]["name"])] = manifest
        return manifest

    def delete(self, api_version: str, kind: str, name: str, namespace: str) -> None:
        self.policies.pop((namespace, name))

    def patch_status(
        self, api_version: str, kind: str, name: str, status: Manifest, namespace: str
    ) -> Manifest:
        return merge_status(self.body, status)

    def create(self, manifest: Manifest) -> Manifest:
        self.reviews.append(manifest)
        spec = manifest["spec"]
        asked = spec["resourceAttributes"]
        allowed = (
            spec["user"] == "li.rsj"
            and asked
            == {
                "group": "govcloud.io",
                "resource": "networkgrants",
                "verb": "consent",
                "namespace": "rsj-data",
            }
        ) or (
            spec["user"] == "ops.platform"
            and asked == {"group": "govcloud.io", "resource": "networkgrants", "verb": "approve"}
        )
        return {**manifest, "status": {"allowed": allowed}}


def a_grant(generation: int = 1, **extra: Any) -> Manifest:
    return {
        "metadata": {
            "name": "check",
            "namespace": "mz-app",
            "uid": "u-1",
            "generation": generation,
            "creationTimestamp": "2027-02-28T09:00:00Z",
        },
        "spec": {
            "provider": {"namespace": "rsj-data", "service": "api", "ports": ["https"]},
            "purpose": "社保资格核验",
            "requestedBy": "wang.mz",
            "expires": "2027-03-10T00:00:00Z",
            **extra,
        },
    }


def run(hub: Hub, now: datetime = NOW) -> networkgrant.Result:
    return networkgrant.reconcile(cast(client.Cluster, hub), "mz-app", "check", object(), now=now)


def events(result: networkgrant.Result) -> list[str]:
    return [event.reason for event in result.events]


def test_a_grant_waits_for_consent_and_opens_nothing() -> None:
    hub = Hub(a_grant())
    result = run(hub)
    assert hub.body["status"]["state"] == "Pending"
    assert hub.policies == {}
    assert "GrantRequested" in events(result)
    assert [r.reason for r in result.service_events] == ["GrantRequested"]  # the owner is told
    assert hub.body["status"]["history"][0]["event"] == "Requested"
    assert hub.body["status"]["history"][0]["by"] == "wang.mz"
    assert hub.body["status"]["providerTenant"] == "rsj"
    assert hub.body["status"]["consumerTenant"] == "mz"


def test_the_providers_consent_opens_both_sides_and_is_recorded() -> None:
    hub = Hub(a_grant(2, consent={"by": "li.rsj", "groups": ["rsj-admins"], "generation": 1}))
    result = run(hub)
    assert hub.body["status"]["state"] == "Active"
    assert sorted(hub.policies) == [
        ("mz-app", "govcloud-grant-u-1"),
        ("rsj-data", "govcloud-grant-u-1"),
    ]
    assert hub.body["status"]["consentedBy"] == "li.rsj"
    assert [h["event"] for h in hub.body["status"]["history"]] == ["Requested", "Consented"]
    assert "GrantActive" in events(result)
    run(hub)  # honoured on this generation: no second question to the API server
    assert len(hub.reviews) == 1
    assert hub.applied == 2  # and nothing written again: the policies are as wanted


def test_a_consumer_consenting_itself_is_ignored_even_without_the_admission_policy() -> None:
    hub = Hub(a_grant(2, consent={"by": "wang.mz", "generation": 1}))
    result = run(hub)
    assert hub.body["status"]["state"] == "Pending"
    assert hub.policies == {}
    assert "ConsentRefused" in events(result)
    assert hub.body["status"]["history"][-1]["event"] == "ConsentIgnored"
    asked = len(hub.reviews)
    assert run(hub).events == []  # a resync neither asks again nor says it again
    assert len(hub.reviews) == asked
    assert hub.body["status"]["state"] == "Pending"


def test_a_consent_to_an_earlier_version_of_the_grant_does_not_hold() -> None:
    # consented on generation 1, then the consumer widened the ports: generation 3
    hub = Hub(a_grant(3, consent={"by": "li.rsj", "generation": 1}))
    run(hub)
    assert hub.body["status"]["state"] == "Pending"
    assert hub.policies == {}
    assert hub.reviews == []


def test_at_expiry_the_policies_are_withdrawn_with_an_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub = Hub(a_grant(2, consent={"by": "li.rsj", "generation": 1}))
    first = run(hub)
    assert first.next_look is not None
    assert hub.policies
    later = NOW + timedelta(days=9, hours=15, seconds=1)
    result = run(hub, later)
    assert hub.body["status"]["state"] == "Expired"
    assert hub.policies == {}
    assert "GrantExpired" in events(result)
    assert result.service is not None  # the provider is told too
    assert hub.body["status"]["history"][-1]["event"] == "Expired"
    assert result.next_look is None
    status = copy.deepcopy(hub.body["status"])
    monkeypatch.delitem(TENANTS, "mz-app")  # the consumer's namespace goes: still a record
    again = run(hub, later + timedelta(minutes=1))
    assert again.service is None  # an ended grant reads no Service any more
    assert hub.body["status"] == status  # and writes nothing
    assert again.events == []


def test_a_revocation_withdraws_and_records_who() -> None:
    hub = Hub(a_grant(2, consent={"by": "li.rsj", "generation": 1}))
    run(hub)
    hub.body["metadata"]["generation"] = 3
    hub.body["spec"]["revocation"] = {"by": "li.rsj", "reason": "项目结束"}
    result = run(hub)
    assert hub.body["status"]["state"] == "Revoked"
    assert hub.policies == {}
    assert "GrantRevoked" in events(result)
    last = hub.body["status"]["history"][-1]
    assert (last["event"], last["by"], last["reason"]) == ("Revoked", "li.rsj", "项目结束")
    # the consent it ends is over, not "ignored"
    assert [h["event"] for h in hub.body["status"]["history"]] == [
        "Requested",
        "Consented",
        "Revoked",
    ]


def test_a_grant_within_one_tenant_or_too_long_is_invalid() -> None:
    hub = Hub(a_grant())
    hub.body["spec"]["provider"]["namespace"] = "mz-web"
    run(hub)
    assert hub.body["status"]["state"] == "Invalid"
    hub = Hub(a_grant(expires="2029-01-01T00:00:00Z"))
    run(hub)
    assert hub.body["status"]["state"] == "Invalid"
    assert "365 days" in hub.body["status"]["conditions"][0]["message"]


def test_the_platform_consents_on_both_sides_behalf_at_filing() -> None:
    hub = Hub(
        a_grant(1, requestedBy="ops.platform", consent={"by": "ops.platform", "generation": 0})
    )
    run(hub)
    assert hub.body["status"]["state"] == "Active"
    assert hub.body["status"]["consentedBy"] == "ops.platform"


def test_policies_of_a_grant_deleted_while_nobody_watched_are_swept() -> None:
    hub = Hub(a_grant(2, consent={"by": "li.rsj", "generation": 1}))
    run(hub)
    assert len(hub.policies) == 2
    assert networkgrant.sweep(cast(client.Cluster, hub)) == []  # its grant exists: kept
    hub.body = {}
    swept = networkgrant.sweep(cast(client.Cluster, hub))
    assert sorted(swept) == ["mz-app/govcloud-grant-u-1", "rsj-data/govcloud-grant-u-1"]
    assert hub.policies == {}
