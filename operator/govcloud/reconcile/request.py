"""ResourceRequest passes: resolve an in-year request against its tenant's approved plan, and
honour its level's decision exactly as a plan's (bound to the generation read, or to the content
on record once honoured, by an approver the API server confirms), so that an approved request
moves the tenant's cap."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pydantic

from govcloud import constants
from govcloud.api.v1alpha1 import ratecard, resourceplan, resourcerequest
from govcloud.billing import plans
from govcloud.k8s import client
from govcloud.reconcile import conditions, events, plan, statuses

KIND = "ResourceRequest"
READY = "Ready"
APPROVED = plan.APPROVED
KEPT = frozenset({"history"})  # status fields no pass ever clears
EVENTS = {
    "Approved": "RequestApproved",
    "Rejected": "RequestRejected",
    "ChangesRequested": "RequestChangesRequested",
    "Pending": "RequestReopened",
}

Manifest = dict[str, Any]
Event = events.Event


@dataclass
class Result:
    outcome: str
    body: Manifest | None = None
    events: list[Event] = field(default_factory=list)
    tenant: str | None = None
    tenant_affected: bool = False


def reconcile(
    hub: client.Cluster, namespace: str, name: str, settings: Any, now: datetime | None = None
) -> Result:
    """One pass over the ResourceRequest `namespace`/`name`."""
    now = now or datetime.now(UTC)
    body = hub.get(constants.API_VERSION, KIND, name, namespace)
    if body is None:
        return Result(outcome="deleted")
    generation = body["metadata"].get("generation")
    status = body.get("status") or {}
    tenant_name = statuses.tenant_of(hub, namespace)
    tenant = hub.get(constants.API_VERSION, "CloudTenant", tenant_name) if tenant_name else None
    try:
        spec = resourcerequest.parse(body.get("spec") or {})
    except (pydantic.ValidationError, ValueError) as error:
        return _invalid(hub, body, status, generation, plan.spec_message(error), now)
    payer = plan.payer_of(tenant)
    previous = status.get("review")
    digest = plans.spec_digest(body.get("spec") or {})
    refusal = plan.refuse_decision(
        hub,
        spec.decision,
        previous,
        generation,
        payer,
        "request",
        digest=digest,
        history=status.get("history") or [],
        created=body["metadata"].get("creationTimestamp"),
    )
    fresh = spec.decision is not None and not plan.honoured_before(
        spec.decision, previous, generation, digest
    )
    if fresh and refusal is None:
        previous = None  # a new decision, or one written again on a new generation
    review = plans.review(
        None if refusal else spec.decision,
        previous,
        generation,
        now,
        created=body["metadata"].get("creationTimestamp"),
        digest=digest,
    )
    change, problems = resolve(hub, spec, tenant_name if tenant else None, namespace)
    new_status: Manifest = {
        "observedGeneration": generation,
        "tenant": tenant_name if tenant else None,
        "payer": payer if tenant else None,
        "change": change,
        "review": review,
        "conditions": conditions.merge(
            status.get("conditions") or [],
            [_ready(problems), _approved(refusal, review)],
            generation,
            now,
        ),
    }
    history = plans.history(status.get("history") or [], review)
    if history:
        new_status["history"] = history
    _write(hub, body, {key: value for key, value in new_status.items() if value is not None})
    result = Result(
        outcome="success" if not problems else "invalid",
        body=body,
        tenant=tenant_name if tenant else None,
    )
    result.events.extend(_news(status, new_status, review, refusal, problems))
    old_review = status.get("review") or {}
    result.tenant_affected = (
        old_review.get("state") != review.get("state")
        or status.get("change") != change
        or _ready_status(status) != _ready_status(new_status)  # e.g. its plan just approved
    )
    return result


def _ready_status(status: Manifest) -> str | None:
    return next(
        (c.get("status") for c in status.get("conditions") or [] if c.get("type") == READY), None
    )


def resolve(
    hub: client.Cluster,
    spec: resourcerequest.ResourceRequestSpec,
    tenant: str | None,
    namespace: str,
) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """What the request changes, by resource, and each problem as (reason, what to do)."""
    problems: list[tuple[str, str]] = []
    if tenant is None:
        problems.append(
            (
                "NotATenantNamespace",
                f"namespace {namespace} belongs to no CloudTenant; file the request in one of"
                " your tenant's namespaces",
            )
        )
    offerings: dict[str, dict[str, str]] = {}
    card = hub.get(constants.API_VERSION, "RateCard", ratecard.DEFAULT_NAME)
    if card is not None:
        try:
            parsed = ratecard.parse(ratecard.DEFAULT_NAME, card.get("spec") or {})
            offerings = {item.name: dict(item.resources) for item in parsed.offerings}
        except (pydantic.ValidationError, ValueError) as error:
            problems.append(("InvalidRateCard", f"RateCard default is invalid: {error}"))
    ceiling = plans.lines_ceiling(spec.lines, offerings)
    problems.extend(("UnknownOffering", problem) for problem in ceiling.problems)
    if tenant is not None and plan.approved_ceiling(hub, tenant, spec.year) is None:
        problems.append(
            (
                "NoApprovedPlan",
                f"a request amends the tenant's approved ResourcePlan"
                f" {resourceplan.plan_name(tenant, spec.year)}, and it has none yet: file"
                " the annual plan and have it approved first",
            )
        )
    return ceiling.hard, problems


def _ready(problems: list[tuple[str, str]]) -> conditions.Condition:
    if problems:
        text = "; ".join(message for _, message in problems)[:4000]
        return conditions.Condition(READY, conditions.FALSE, problems[0][0], text)
    return conditions.Condition(
        READY, conditions.TRUE, "Resolved", "the request resolves against an approved plan"
    )


def _approved(refusal: tuple[str, str] | None, review: Manifest) -> conditions.Condition:
    if refusal is not None:
        return conditions.Condition(APPROVED, conditions.FALSE, refusal[0], refusal[1])
    state = str(review["state"])
    message = (
        f"{state} by {review['decidedBy']}: {review['reason']}"
        if review.get("decidedBy")
        else "waiting for a decision by an approver of the tenant's paying level"
    )
    return conditions.Condition(
        APPROVED, conditions.TRUE if state == APPROVED else conditions.FALSE, state, message
    )


def _news(
    old: Manifest,
    new: Manifest,
    review: Manifest,
    refusal: tuple[str, str] | None,
    problems: list[tuple[str, str]],
) -> list[Event]:
    """An Event per decision seen, per decision refused, per new problem."""
    found: list[Event] = []
    old_review = old.get("review") or {}
    moved = {key: old_review.get(key) for key in ("state", "decidedBy", "reason")} != {
        key: review.get(key) for key in ("state", "decidedBy", "reason")
    }
    if moved and refusal is None and (review.get("decidedBy") or old_review.get("state")):
        who = f" by {review['decidedBy']}: {review['reason']}" if review.get("decidedBy") else ""
        found.append(Event("Normal", EVENTS[str(review["state"])], f"{review['state']}{who}"))
    if refusal is not None and plan.condition_reason(old, APPROVED) != refusal[0]:
        found.append(Event("Warning", refusal[0], refusal[1]))
    if problems and (old.get("conditions") or []) != new["conditions"]:
        found.append(Event("Warning", problems[0][0], problems[0][1]))
    return found


def _invalid(
    hub: client.Cluster,
    body: Manifest,
    status: Manifest,
    generation: int | None,
    message: str,
    now: datetime,
) -> Result:
    changed = _write(hub, body, plan.invalid_spec(status, generation, message, now))
    return Result(
        outcome="invalid",
        body=body,
        events=[Event("Warning", "InvalidSpec", message)] if changed else [],
    )


def _write(hub: client.Cluster, body: Manifest, status: Manifest) -> bool:
    return statuses.replace(hub, constants.API_VERSION, KIND, body, status, KEPT)
