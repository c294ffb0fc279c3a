"""A site's identity (its kube-system UID and CA fingerprint): pinned once, then only confirmed."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from govcloud.federation import condition
from govcloud.federation.condition import Condition

IDENTITY_VERIFIED = "IdentityVerified"
PINNED = "Pinned"
CONFIRMED = "Confirmed"
IDENTITY_CHANGED = "IdentityChanged"
SHARED_CLUSTER = "SharedCluster"
IDENTITY_UNKNOWN = "IdentityUnknown"
# A person confirms a new identity by writing the new kube-system UID here.
CONFIRM_ANNOTATION = "govcloud.io/confirm-identity"
SYSTEM_ROOTS = "system-roots"  # the CA fingerprint of a kubeconfig without a CA of its own


@dataclasses.dataclass(frozen=True)
class Identity:
    """Which cluster a site is: the UID of its kube-system namespace, and the CA it presents."""

    kube_system_uid: str
    ca_fingerprint: str

    def as_status(self) -> dict[str, str]:
        return {"kubeSystemUID": self.kube_system_uid, "caFingerprint": self.ca_fingerprint}


@dataclasses.dataclass(frozen=True)
class Verdict:
    """Whether the operator may write to the site, what to pin, and the condition to show."""

    trusted: bool
    condition: Condition
    pin: Identity | None = None  # what status.identity should hold after this probe


def from_status(status: Mapping[str, Any] | None) -> Identity | None:
    """The identity pinned in a SubCenter status, if any."""
    found = (status or {}).get("identity") or {}
    uid, ca = found.get("kubeSystemUID"), found.get("caFingerprint")
    if not isinstance(uid, str) or not uid or not isinstance(ca, str) or not ca:
        return None
    return Identity(uid, ca)


def ca_fingerprint(ca_pem: bytes | None) -> str:
    """sha256 of the DER of the kubeconfig's first CA certificate (SYSTEM_ROOTS without one)."""
    if not ca_pem:
        return SYSTEM_ROOTS
    certificate = x509.load_pem_x509_certificates(ca_pem)[0]
    digest = hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()
    return f"sha256:{digest}"


def judge(
    pinned: Identity | None,
    observed: Identity,
    *,
    confirmed_uid: str | None = None,
    pinned_elsewhere: str | None = None,
) -> Verdict:
    """The verdict on a site that answered as `observed`.

    The first identity seen is pinned. A different identity later is trusted only once a
    person confirms it by writing its kube-system UID to CONFIRM_ANNOTATION. A cluster that
    another SubCenter (`pinned_elsewhere`) has pinned already is said so: both count its
    capacity, which a person has to resolve; writing there is no risk, so it goes on.
    """
    confirmed = confirmed_uid is not None and confirmed_uid == observed.kube_system_uid
    if pinned is not None and pinned != observed and not confirmed:
        return Verdict(False, _changed(pinned, observed), pinned)
    if pinned_elsewhere is not None:
        return Verdict(True, _shared(observed, pinned_elsewhere), observed)
    reason = CONFIRMED if pinned is not None and pinned != observed else PINNED
    return Verdict(True, _verified(reason, observed), observed)


def unknown(message: str) -> Condition:
    """The site answered, but its identity could not be read (so nothing is written there)."""
    return Condition(IDENTITY_VERIFIED, condition.FALSE, IDENTITY_UNKNOWN, message)


def _verified(reason: str, identity: Identity) -> Condition:
    return Condition(
        IDENTITY_VERIFIED,
        condition.TRUE,
        reason,
        f"the site is the cluster whose kube-system UID is {identity.kube_system_uid}",
    )


def _shared(observed: Identity, other: str) -> Condition:
    return Condition(
        IDENTITY_VERIFIED,
        condition.TRUE,
        SHARED_CLUSTER,
        f"the site is the cluster whose kube-system UID is {observed.kube_system_uid}, which"
        f" is also the SubCenter {other}: both count its capacity; one cluster should be one"
        " SubCenter",
    )


def _changed(pinned: Identity, observed: Identity) -> Condition:
    what = []
    if pinned.kube_system_uid != observed.kube_system_uid:
        what.append(f"kube-system UID {observed.kube_system_uid} (pinned {pinned.kube_system_uid})")
    if pinned.ca_fingerprint != observed.ca_fingerprint:
        what.append("a different CA")
    return Condition(
        IDENTITY_VERIFIED,
        condition.FALSE,
        IDENTITY_CHANGED,
        f"the site's credentials now reach another cluster: {' and '.join(what)}; nothing is"
        " written there until a person confirms it: if the change is intended, annotate the"
        f" SubCenter {CONFIRM_ANNOTATION}={observed.kube_system_uid}, else restore the Secret",
    )
