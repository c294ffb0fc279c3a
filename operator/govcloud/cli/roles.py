"""Who the user is in which tenant (pure): from the rules the API server says apply to them
(SelfSubjectRulesReview) and from the members each tenant names in its spec.

The operator grants every admin, editor and viewer of tenant T the ClusterRole
``govcloud:tenant:T:self-view`` (``get`` on cloudtenants with resourceNames ``[T]``) and T's
admins ``govcloud:tenant:T:plan-filer`` (the custom verb ``fileplan`` on the same name); a
SelfSubjectRulesReview lists the rules of every ClusterRoleBinding that names the user or one
of their groups, so those resourceNames are exactly the user's tenants, without reading any
other tenant or any binding.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from govcloud import constants

CLOUDTENANTS = "cloudtenants"
USAGEREPORTS = "usagereports"
PAYERS = "payers"
FILE_PLAN_VERB = "fileplan"
APPROVE_VERB = "approve"
ADMIN, EDITOR, VIEWER = "admin", "editor", "viewer"
ROLES = ((ADMIN, "admins"), (EDITOR, "editors"), (VIEWER, "viewers"))
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
AUTHENTICATED = "system:authenticated"
MAX_DECISION_GROUPS = 16  # ResourcePlan spec.decision.groups holds at most this many


@dataclass(frozen=True)
class Grants:
    """The tenants the user's rules name: those they may read, those they may file plans for;
    and the paying levels whose plans they decide (`approve` on payers.govcloud.io by name:
    a level's own plan approvers, ClusterRole govcloud:plan-approver:<payer>)."""

    readable: list[str] = field(default_factory=list)
    files_plans: list[str] = field(default_factory=list)
    approves_for: list[str] = field(default_factory=list)
    # UsageReports the user may get by name: their own tenants' (self-view), and those of the
    # tenants their level pays for (govcloud:finance:<payer>, aggregated per tenant).
    reports: list[str] = field(default_factory=list)


def _covers(values: Iterable[Any], wanted: str) -> bool:
    return any(value in (wanted, "*") for value in values)


def grants(rules: Iterable[Mapping[str, Any]]) -> Grants:
    """Tenants named (by resourceNames) in rules on cloudtenants.govcloud.io: with ``get`` they
    are readable, with ``fileplan`` the user files their plans; payers named in rules with
    ``approve`` on payers.govcloud.io; UsageReports named in rules with ``get``. A rule
    without resourceNames (a platform role: every tenant) names no tenant of the user's own."""
    readable: set[str] = set()
    files: set[str] = set()
    payers: set[str] = set()
    reports: set[str] = set()
    for rule in rules:
        names = [str(name) for name in rule.get("resourceNames") or []]
        if not names or not _covers(rule.get("apiGroups") or [], constants.GROUP):
            continue
        resources, verbs = rule.get("resources") or [], rule.get("verbs") or []
        if _covers(resources, CLOUDTENANTS):
            if _covers(verbs, "get"):
                readable.update(names)
            if _covers(verbs, FILE_PLAN_VERB):
                files.update(names)
        if _covers(resources, PAYERS) and _covers(verbs, APPROVE_VERB):
            payers.update(names)
        if _covers(resources, USAGEREPORTS) and _covers(verbs, "get"):
            reports.update(names)
    return Grants(
        readable=sorted(readable),
        files_plans=sorted(files),
        approves_for=sorted(payers),
        reports=sorted(reports),
    )


def subject_names(username: str) -> tuple[str, ...]:
    """How a tenant spec can name the user: by user name, or as ``<namespace>/<name>`` when
    the user is a service account."""
    if username.startswith(SERVICE_ACCOUNT_PREFIX):
        namespace, _, name = username[len(SERVICE_ACCOUNT_PREFIX) :].partition(":")
        return (f"{namespace}/{name}",)
    return ()


def roles_in(spec: Mapping[str, Any], username: str, groups: Sequence[str]) -> list[str]:
    """The user's roles in a tenant (admin, editor, viewer), as its spec names them: by user,
    by one of their groups, or as a service account."""
    found = []
    accounts = subject_names(username)
    for role, key in ROLES:
        members = spec.get(key) or {}
        if (
            username in (members.get("users") or [])
            or any(group in (members.get("groups") or []) for group in groups)
            or any(account in (members.get("serviceAccounts") or []) for account in accounts)
        ):
            found.append(role)
    return found


def decision_groups(groups: Sequence[str]) -> list[str]:
    """The groups a plan decision names (spec.decision.groups): every group the user is in,
    but system:authenticated, which the operator adds to its own check. The admission policy
    admits only groups the user is in; the operator asks whether the user with these groups
    may approve."""
    return [group for group in dict.fromkeys(groups) if group != AUTHENTICATED]
