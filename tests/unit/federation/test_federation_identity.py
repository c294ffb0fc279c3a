"""A site's identity: pinned on first sight, trusted while it holds, confirmed by a person."""

from __future__ import annotations

import base64
import datetime

from federation_fixtures import CA_DATA, NOW, certificate_pem, private_key

from govcloud.federation import condition, identity

FIRST = identity.Identity("uid-feixi", "sha256:aaaa")
OTHER_CLUSTER = identity.Identity("uid-hefei", "sha256:bbbb")
NEW_CA = identity.Identity("uid-feixi", "sha256:cccc")


def test_the_first_identity_seen_is_pinned_and_trusted() -> None:
    verdict = identity.judge(None, FIRST)

    assert verdict.trusted
    assert verdict.pin == FIRST
    assert verdict.condition.type == identity.IDENTITY_VERIFIED
    assert (verdict.condition.status, verdict.condition.reason) == (condition.TRUE, "Pinned")


def test_the_pinned_identity_seen_again_is_trusted_without_change() -> None:
    verdict = identity.judge(FIRST, FIRST)

    assert verdict.trusted
    assert verdict.pin == FIRST


def test_another_cluster_behind_the_same_subcenter_stops_writes_and_keeps_the_pin() -> None:
    verdict = identity.judge(FIRST, OTHER_CLUSTER)

    assert not verdict.trusted
    assert verdict.pin == FIRST
    assert verdict.condition.reason == identity.IDENTITY_CHANGED
    assert "kube-system UID uid-hefei (pinned uid-feixi)" in verdict.condition.message
    assert "govcloud.io/confirm-identity=uid-hefei" in verdict.condition.message


def test_a_new_ca_alone_is_a_changed_identity_too() -> None:
    verdict = identity.judge(FIRST, NEW_CA)

    assert not verdict.trusted
    assert "a different CA" in verdict.condition.message


def test_a_person_confirms_the_new_identity_by_its_uid() -> None:
    verdict = identity.judge(FIRST, OTHER_CLUSTER, confirmed_uid="uid-hefei")

    assert verdict.trusted
    assert verdict.pin == OTHER_CLUSTER
    assert verdict.condition.reason == "Confirmed"


def test_a_confirmation_of_another_uid_confirms_nothing() -> None:
    verdict = identity.judge(FIRST, OTHER_CLUSTER, confirmed_uid="uid-feixi")

    assert not verdict.trusted
    assert verdict.pin == FIRST


def test_a_cluster_another_subcenter_pinned_is_pinned_and_said_to_be_shared() -> None:
    verdict = identity.judge(None, FIRST, pinned_elsewhere="feixi")

    assert verdict.trusted
    assert verdict.pin == FIRST
    assert verdict.condition.reason == identity.SHARED_CLUSTER
    assert "also the SubCenter feixi" in verdict.condition.message


def test_status_round_trip() -> None:
    assert identity.from_status({"identity": FIRST.as_status()}) == FIRST
    assert identity.from_status({}) is None
    assert identity.from_status({"identity": {"kubeSystemUID": "x"}}) is None
    assert identity.from_status(None) is None


def test_the_ca_fingerprint_is_of_the_first_certificate_and_stable() -> None:
    ca = base64.b64decode(CA_DATA)
    other = certificate_pem(private_key(), NOW + datetime.timedelta(days=1))

    assert identity.ca_fingerprint(ca) == identity.ca_fingerprint(ca + other)
    assert identity.ca_fingerprint(ca).startswith("sha256:")
    assert identity.ca_fingerprint(other) != identity.ca_fingerprint(ca)
    assert identity.ca_fingerprint(None) == identity.SYSTEM_ROOTS
