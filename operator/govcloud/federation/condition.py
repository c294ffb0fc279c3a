"""Conditions federation decides, as (type, status, reason, message); reconcile stores them."""

from __future__ import annotations

from typing import NamedTuple

TRUE = "True"
FALSE = "False"
UNKNOWN = "Unknown"

READY = "Ready"
REACHABLE = "Reachable"
CREDENTIALS_VALID = "CredentialsValid"
CREDENTIAL_EXPIRING = "CredentialExpiring"
RETIRABLE = "Retirable"


class Condition(NamedTuple):
    """A metav1.Condition without its bookkeeping (lastTransitionTime, observedGeneration).

    The field order is that of `govcloud.reconcile.conditions.Condition`, so the reconciler
    turns one into the other with `conditions.Condition(*condition)`.
    """

    type: str
    status: str
    reason: str
    message: str = ""
