"""NetworkGrant passes: resolve the grant (both tenants, the Service, its ports, the expiry),
honour a consent only from someone the API server says may give it, and converge the grant's
NetworkPolicies to its state: in place while Active, withdrawn otherwise (expired, revoked,
invalid, pending). Who did what is appended to status.history and said in Events, on the
grant and on the provider's Service (so the data owner sees requests naming it).

The consent is written by the provider's admins and guarded at admission (ValidatingAdmissionPolicy
`govcloud-networkgrant-review`); the operator does not trust the policy alone: a consent must
be bound to the grant's generation and its `by` must hold `consent` on networkgrants in the
provider namespace, or `approve` cluster-wide (SubjectAccessReview), or nothing opens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pydantic

from govcloud import constants, metrics
from govcloud.api.v1alpha1 import networkgrant
from govcloud.desired import compare, networkgrants
from govcloud.k8s import client
from govcloud.reconcile import conditions, events, plan, statuses

KIND = "NetworkGrant"
API_NETWORK_POLICY = "networking.k8s.io/v1"
KIND_POLICY = "NetworkPolicy"
READY = "Ready"
ACTIVE = "Active"
KEPT = frozenset({"history"})
DEFAULT_DAYS = 90.0
MAX_DAYS = 365.0
CONSENT_REFUSED = "ConsentRefused"
CONSENT_UNBOUND = "ConsentUnbound"

Manifest = dict[str, Any]
Event = events.Event
State = networkgrant.GrantState


@dataclass
class Result:
    outcome: str
    body: Manifest | None = None
    events: list[Event] = field(default_factory=list)
    service: Manifest | None = None  # the provider's Service, to tell its owner as well
    service_events: list[Event] = field(default_factory=list)
    next_look: float | None = None  # seconds until the grant's expiry, while it can still act
    snapshot: metrics.GrantSnapshot | None = None


def reconcile(
    hub: client.Cluster, namespace: str, name: str, settings: Any, now: datetime | None = None
) -> Result:
    """One pass over the NetworkGrant `namespace`/`name`."""
    now = now or datetime.now(UTC)
    body = hub.get(constants.API_VERSION, KIND, name, namespace)
    if body is None:
        return Result(outcome="deleted")
    uid = str(body["metadata"].get("uid") or "")
    generation = body["metadata"].get("generation")
    status = body.get("status") or {}
    created = _time(body["metadata"].get("creationTimestamp")) or now
    try:
        spec = networkgrant.parse(body.get("spec") or {})
    except (pydantic.ValidationError, ValueError) as error:
        withdraw(hub, uid, keep=())
        message = plan.spec_message(error)
        new = {
            "observedGeneration": generation,
            "state": State.INVALID.value,
            "policies": [],
            "conditions": conditions.merge(
                status.get("conditions") or [],
                [conditions.Condition(READY, conditions.FALSE, "InvalidSpec", message)],
                generation,
                now,
            ),
        }
        changed = _write(hub, body, new)
        return Result(
            "invalid", body, [Event("Warning", "InvalidSpec", message)] if changed else []
        )

    default = timedelta(days=float(getattr(settings, "grant_default_days", DEFAULT_DAYS)))
    longest = timedelta(days=float(getattr(settings, "grant_max_days", MAX_DAYS)))
    expires_at, too_long = networkgrants.expiry(created, spec.expires, default, longest)
    settled = _settled(spec, status, generation, now, expires_at)
    if settled is not None:
        # An ended grant is a record: once said, its passes read nothing (the Service is not
        # cached) and write nothing, whatever becomes of the namespaces; they only make sure
        # its policies are gone.
        withdraw(hub, uid, keep=())
        return Result("success", body, snapshot=settled)

    consumer_tenant = statuses.tenant_of(hub, namespace)
    provider_tenant = statuses.tenant_of(hub, spec.provider.namespace)
    consumers = spec.consumer_namespaces(namespace)
    problems = _tenancy(hub, namespace, consumers, spec, consumer_tenant, provider_tenant)
    service = hub.get("v1", "Service", spec.provider.service, spec.provider.namespace)
    target, unresolved = networkgrants.resolve(service, spec.provider.ports)
    problems += [
        f"Service {spec.provider.namespace}/{spec.provider.service}: {p}" for p in unresolved
    ]
    if too_long:
        problems.append(too_long)

    # A revocation bumps the generation: the consent it ends is not "ignored", it is over.
    refusal = None if spec.revocation else refuse_consent(hub, spec, status, generation)
    consented = spec.consent is not None and refusal is None
    state = networkgrants.state(
        spec, now=now, expires_at=expires_at, consented=consented, problems=problems
    )
    wanted: list[Manifest] = []
    if state == State.ACTIVE and target is not None and consumer_tenant and provider_tenant:
        wanted = networkgrants.policies(
            uid=uid,
            grant=f"{namespace}/{name}",
            provider_namespace=spec.provider.namespace,
            provider_tenant=provider_tenant,
            consumer_tenant=consumer_tenant,
            consumer_namespaces=consumers,
            target=target,
        )
    placed, errors, withdrawn = _converge(hub, uid, wanted)
    history = _history(
        status, spec, state, refusal, consented, generation, created, expires_at, now
    )
    ready = (
        conditions.Condition(READY, conditions.FALSE, "Unresolved", "; ".join(problems)[:4000])
        if problems
        else conditions.Condition(
            READY, conditions.TRUE, "Resolved", "both tenants and the Service resolve"
        )
    )
    active = _active_condition(state, refusal, errors, spec, expires_at)
    old_state = status.get("state")
    new_status: Manifest = {
        "observedGeneration": generation,
        "state": state.value,
        "providerTenant": provider_tenant,
        "consumerTenant": consumer_tenant,
        "ports": target.describe() if target is not None else ",".join(spec.provider.ports),
        "expiresAt": _text(expires_at),
        "consentedBy": spec.consent.by if consented and spec.consent is not None else None,
        "policies": sorted(placed),
        "history": history[: networkgrant.MAX_HISTORY],
        "conditions": conditions.merge(
            status.get("conditions") or [], [ready, active], generation, now
        ),
    }
    new_status = {key: value for key, value in new_status.items() if value is not None}
    _write(hub, body, new_status)

    result = Result(
        outcome="error" if errors else ("success" if not problems else "invalid"),
        body=body,
        service=service,
    )
    result.events, result.service_events = _news(
        old_state,
        state,
        spec,
        refusal,
        problems,
        status,
        new_status,
        expires_at,
        withdrawn,
        namespace,
        name,
    )
    if state in (State.PENDING, State.ACTIVE, State.INVALID):
        result.next_look = max(0.0, (expires_at - now).total_seconds()) + 0.5
    if provider_tenant or consumer_tenant:
        result.snapshot = metrics.GrantSnapshot(
            provider=provider_tenant or "",
            consumer=consumer_tenant or "",
            state=state.value,
            expires_at=expires_at.timestamp(),
        )
    return result


def _converge(
    hub: client.Cluster, uid: str, wanted: list[Manifest]
) -> tuple[list[str], list[str], list[str]]:
    """Apply the wanted policies and withdraw the grant's others: (placed, errors, withdrawn)."""
    errors: list[str] = []
    placed: list[str] = []
    for manifest in wanted:
        namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        where = f"{namespace}/{name}"
        try:
            # From the cache: a resync of an unchanged grant writes nothing.
            if compare.needs_update(
                manifest, hub.get(API_NETWORK_POLICY, KIND_POLICY, name, namespace)
            ):
                hub.apply(manifest)
            placed.append(where)
        except client.ApiError as error:
            errors.append(f"NetworkPolicy {where}: {error}")
    return placed, errors, withdraw(hub, uid, keep=placed)


def _history(
    status: Manifest,
    spec: networkgrant.NetworkGrantSpec,
    state: State,
    refusal: tuple[str, str] | None,
    consented: bool,
    generation: int | None,
    created: datetime,
    expires_at: datetime,
    now: datetime,
) -> list[Manifest]:
    """status.history with this pass's acts appended: requested, consented (or a consent
    ignored), expired, revoked."""
    history = list(status.get("history") or [])
    _record(history, "Requested", spec.requested_by, 1, spec.purpose, created)
    consent = spec.consent
    if consent is not None and consented:
        _record(history, "Consented", consent.by, consent.generation, consent.reason, now)
    if consent is not None and refusal is not None:
        _record(history, "ConsentIgnored", consent.by, consent.generation, refusal[0], now)
    if state == State.EXPIRED:
        _record(history, "Expired", None, None, f"expired at {_text(expires_at)}", now)
    if state == State.REVOKED and spec.revocation is not None:
        _record(history, "Revoked", spec.revocation.by, generation, spec.revocation.reason, now)
    return history


def _settled(
    spec: networkgrant.NetworkGrantSpec,
    status: Manifest,
    generation: int | None,
    now: datetime,
    expires_at: datetime,
) -> metrics.GrantSnapshot | None:
    """The snapshot of a grant whose end a previous pass already recorded, else None."""
    ended = State.REVOKED if spec.revocation is not None else None
    if ended is None and now >= expires_at:
        ended = State.EXPIRED
    if ended is None or status.get("state") != ended.value:
        return None
    if status.get("observedGeneration") != generation:
        return None
    return metrics.GrantSnapshot(
        provider=str(status.get("providerTenant") or ""),
        consumer=str(status.get("consumerTenant") or ""),
        state=ended.value,
        expires_at=expires_at.timestamp(),
    )


def _tenancy(
    hub: client.Cluster,
    namespace: str,
    consumers: list[str],
    spec: networkgrant.NetworkGrantSpec,
    consumer_tenant: str | None,
    provider_tenant: str | None,
) -> list[str]:
    problems: list[str] = []
    if consumer_tenant is None:
        problems.append(
            f"namespace {namespace} belongs to no CloudTenant; file the grant in one of your"
            " tenant's namespaces"
        )
    if provider_tenant is None:
        problems.append(f"namespace {spec.provider.namespace} belongs to no CloudTenant")
    elif provider_tenant == consumer_tenant:
        problems.append(
            f"namespace {spec.provider.namespace} is your own tenant's: its namespaces reach each"
            " other already; a grant is between two tenants"
        )
    for other in consumers:
        if other != namespace and statuses.tenant_of(hub, other) != consumer_tenant:
            problems.append(f"consumer namespace {other} is not tenant {consumer_tenant}'s")
    return problems


def refuse_consent(
    hub: client.Cluster,
    spec: networkgrant.NetworkGrantSpec,
    status: Manifest,
    generation: int | None,
) -> tuple[str, str] | None:
    """(reason, message) when the consent must be ignored, else None (a SAR when new)."""
    consent = spec.consent
    if consent is None:
        return None
    if generation != consent.generation + 1:
        return (
            CONSENT_UNBOUND,
            f"the grant changed after the consent (consented on generation {consent.generation},"
            f" now {generation}); the provider's admins consent again to the grant as it is now",
        )
    refused = (
        CONSENT_REFUSED,
        f"{consent.by} may not consent for namespace {spec.provider.namespace} (no `consent`"
        " verb on networkgrants there, nor `approve` on networkgrants), so the consent is"
        " ignored: only the provider's admins or the platform consent to a grant",
    )
    if status.get("observedGeneration") == generation:  # this very consent was judged already
        if status.get("consentedBy") == consent.by:
            return None
        if plan.condition_reason(status, ACTIVE) == CONSENT_REFUSED:
            return refused  # asked once; a resync does not ask the API server again
    if may_consent(hub, consent.by, list(consent.groups), spec.provider.namespace):
        return None
    return refused


def may_consent(hub: client.Cluster, user: str, groups: list[str], provider_namespace: str) -> bool:
    """The API server's answer: may `user` consent for the provider namespace, or approve
    every grant (the platform)?"""
    return _allowed(hub, user, groups, "consent", provider_namespace) or _allowed(
        hub, user, groups, "approve", None
    )


def _allowed(
    hub: client.Cluster, user: str, groups: list[str], verb: str, namespace: str | None
) -> bool:
    attributes: Manifest = {"group": constants.GROUP, "resource": "networkgrants", "verb": verb}
    if namespace:
        attributes["namespace"] = namespace
    review = hub.create(
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "metadata": {},
            "spec": {
                "user": user,
                "groups": [*groups, "system:authenticated"],
                "resourceAttributes": attributes,
            },
        }
    )
    return bool((review.get("status") or {}).get("allowed"))


def withdraw(hub: client.Cluster, uid: str, keep: Any) -> list[str]:
    """Delete the grant's policies not in `keep` (<namespace>/<name>); what was deleted."""
    if not uid:
        return []
    gone: list[str] = []
    selector = (
        f"{constants.LABEL_MANAGED_BY}={constants.MANAGED_BY},{networkgrants.LABEL_GRANT}={uid}"
    )
    for item in hub.list(API_NETWORK_POLICY, "NetworkPolicy", label_selector=selector):
        where = f"{item['metadata']['namespace']}/{item['metadata']['name']}"
        if where in keep:
            continue
        try:
            hub.delete(
                API_NETWORK_POLICY,
                "NetworkPolicy",
                item["metadata"]["name"],
                item["metadata"]["namespace"],
            )
        except client.ApiError as error:
            if error.status != 404:
                raise
        gone.append(where)
    return gone


def sweep(hub: client.Cluster) -> list[str]:
    """Delete every grant policy whose grant no longer exists (deleted while nobody watched)."""
    alive = {str(item["metadata"].get("uid")) for item in hub.list(constants.API_VERSION, KIND)}
    selector = f"{constants.LABEL_MANAGED_BY}={constants.MANAGED_BY},{networkgrants.LABEL_GRANT}"
    orphans = {
        (item.get("metadata") or {}).get("labels", {}).get(networkgrants.LABEL_GRANT, "")
        for item in hub.list(API_NETWORK_POLICY, "NetworkPolicy", label_selector=selector)
    } - alive
    gone: list[str] = []
    for uid in sorted(orphans):
        gone += withdraw(hub, uid, keep=())
    return gone


def _record(
    history: list[Manifest],
    event: str,
    by: str | None,
    generation: int | None,
    reason: str | None,
    at: datetime,
) -> None:
    """Append the act unless on record already (same act, by the same, on the same generation)."""
    for entry in history:
        if (
            entry.get("event") == event
            and entry.get("by") == by
            and entry.get("generation") == generation
        ):
            return
    record: Manifest = {"event": event, "at": _text(at)}
    if by is not None:
        record["by"] = by
    if generation is not None:
        record["generation"] = generation
    if reason:
        record["reason"] = reason[:1024]
    history.append(record)


def _active_condition(
    state: State,
    refusal: tuple[str, str] | None,
    errors: list[str],
    spec: networkgrant.NetworkGrantSpec,
    expires_at: datetime,
) -> conditions.Condition:
    if errors:
        return conditions.Condition(
            ACTIVE, conditions.FALSE, "ApplyFailed", "; ".join(errors)[:4000]
        )
    if state == State.ACTIVE:
        consent = spec.consent
        who = consent.by if consent is not None else "?"
        return conditions.Condition(
            ACTIVE,
            conditions.TRUE,
            "Consented",
            f"consented by {who}; open until {_text(expires_at)}",
        )
    if refusal is not None and state == State.PENDING:
        return conditions.Condition(ACTIVE, conditions.FALSE, refusal[0], refusal[1])
    messages = {
        State.PENDING: (
            "waiting for the consent of the provider namespace's admins (or the platform)"
        ),
        State.EXPIRED: f"expired at {_text(expires_at)}: the policies are withdrawn",
        State.REVOKED: (
            f"revoked by {spec.revocation.by}: the policies are withdrawn"
            if spec.revocation is not None
            else "revoked"
        ),
        State.INVALID: "the grant does not resolve (see Ready): nothing is open",
    }
    return conditions.Condition(ACTIVE, conditions.FALSE, state.value, messages[state])


def _news(
    old_state: str | None,
    state: State,
    spec: networkgrant.NetworkGrantSpec,
    refusal: tuple[str, str] | None,
    problems: list[str],
    old: Manifest,
    new: Manifest,
    expires_at: datetime,
    withdrawn: list[str],
    namespace: str,
    name: str,
) -> tuple[list[Event], list[Event]]:
    """Events for the grant, and for the provider's Service (what its owner should know)."""
    found: list[Event] = []
    grant = f"NetworkGrant {namespace}/{name}"
    ports = ",".join(spec.provider.ports)
    if old_state is None:
        found.append(
            Event(
                "Normal",
                "GrantRequested",
                f"{grant} requested by {spec.requested_by}: reach {spec.provider.service} on"
                f" {ports} for {spec.purpose!r} until {_text(expires_at)}",
            )
        )
    if old_state != state.value:
        said = {
            State.ACTIVE: f"{grant} is active: consented by"
            f" {spec.consent.by if spec.consent else '?'}, open on {ports}"
            f" until {_text(expires_at)}",
            State.EXPIRED: f"{grant} expired at {_text(expires_at)}: its policies are withdrawn",
            State.REVOKED: f"{grant} revoked by"
            f" {spec.revocation.by if spec.revocation else '?'}: its policies are withdrawn",
        }
        if state in said:
            found.append(Event("Normal", f"Grant{state.value}", said[state]))
    if refusal is not None and plan.condition_reason(old, ACTIVE) != refusal[0]:
        found.append(Event("Warning", refusal[0], refusal[1]))
    if problems and state == State.INVALID and (old.get("conditions") or []) != new["conditions"]:
        found.append(Event("Warning", "GrantInvalid", "; ".join(problems)[:1000]))
    if withdrawn and state not in (State.EXPIRED, State.REVOKED):
        found.append(Event("Normal", "GrantWithdrawn", f"withdrew {', '.join(withdrawn)}"))
    return found, [event for event in found if event.reason.startswith("Grant")]


def _write(hub: client.Cluster, body: Manifest, status: Manifest) -> bool:
    return statuses.replace(hub, constants.API_VERSION, KIND, body, status, KEPT)


def _time(text: Any) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(str(text).replace("Z", "+00:00"))


def _text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
