"""ResourcePlan reconciler: resolve the lines against the rate card, price them, record the review.

The decision itself (spec.decision) is written by an approver and guarded at admission
(ValidatingAdmissionPolicy `govcloud-resourceplan-review`): only holders of the `approve`
verb may set it, `by` must be the acting user, and `approvedGeneration` the generation the
approver read. The operator does not trust the policy alone: it ignores a decision whose
plan changed after it (or that names no generation) and asks the API server
(SubjectAccessReview) whether `by` may approve before honouring a new decision. It turns an
honoured decision into status.review with the time it first saw it and the digest of the spec
it holds on, and posts one Event per decision. A review on record still holds when only the
generation moved and the content did not (a plan restored from a backup starts again at
generation 1); any edit of the content unbinds it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pydantic

from govcloud import constants, metrics
from govcloud.api.v1alpha1 import ratecard, resourceplan, resourcerequest
from govcloud.billing import accrual, periods, plans, rating, statement
from govcloud.desired import quantity
from govcloud.k8s import client
from govcloud.reconcile import conditions, events, statuses

KIND = "ResourcePlan"
REQUEST_KIND = "ResourceRequest"
READY = "Ready"
APPROVED = "Approved"
WITHIN_PLAN = plans.WITHIN_PLAN

Manifest = dict[str, Any]
KEPT = frozenset({"history"})  # status fields no pass ever clears

DECISION_EVENTS = {
    resourceplan.ReviewState.APPROVED.value: "PlanApproved",
    resourceplan.ReviewState.REJECTED.value: "PlanRejected",
    resourceplan.ReviewState.CHANGES_REQUESTED.value: "PlanChangesRequested",
    resourceplan.ReviewState.PENDING.value: "PlanReopened",
}


Event = events.Event


@dataclass
class Result:
    outcome: str
    body: Manifest | None = None
    events: list[Event] = field(default_factory=list)
    tenant: str | None = None
    tenant_affected: bool = False
    snapshot: metrics.PlanSnapshot | None = None


def zone(settings: Any) -> Any:
    return periods.zone(getattr(settings, "billing_utc_offset_hours", 8.0))


def reconcile(hub: client.Cluster, name: str, settings: Any, now: datetime | None = None) -> Result:
    """One pass over the ResourcePlan `name`."""
    now = now or datetime.now(UTC)
    body = hub.get(constants.API_VERSION, KIND, name)
    if body is None:
        return Result(outcome="deleted")
    generation = body["metadata"].get("generation")
    status = body.get("status") or {}
    try:
        spec = resourceplan.parse(name, body.get("spec") or {})
    except (pydantic.ValidationError, ValueError) as error:
        message = spec_message(error)
        changed = _write(hub, body, invalid_spec(status, generation, message, now))
        return Result(
            outcome="invalid",
            body=body,
            events=[Event("Warning", "InvalidSpec", message)] if changed else [],
        )
    tz = zone(settings)
    previous = status.get("review")
    payer = payer_of(hub.get(constants.API_VERSION, "CloudTenant", spec.tenant))
    digest = plans.spec_digest(body.get("spec") or {})
    refusal = refuse_decision(
        hub,
        spec.decision,
        previous,
        generation,
        payer,
        digest=digest,
        history=status.get("history") or [],
        created=body["metadata"].get("creationTimestamp"),
    )
    fresh = spec.decision is not None and not honoured_before(
        spec.decision, previous, generation, digest
    )
    if fresh and refusal is None:
        previous = None  # a new decision, or one written again on a new generation: now
    review = plans.review(
        None if refusal else spec.decision,
        previous,
        generation,
        now,
        created=body["metadata"].get("creationTimestamp"),
        digest=digest,
    )
    found = judge(hub, spec, str(review["state"]), now, tz)
    problems, tier, table, ceiling, cost = (
        found.problems,
        found.tier,
        found.table,
        found.ceiling,
        found.cost,
    )
    ready = (
        conditions.Condition(
            READY, conditions.FALSE, problems[0][0], "; ".join(text for _, text in problems)[:4000]
        )
        if problems
        else conditions.Condition(
            READY, conditions.TRUE, "Resolved", "every line resolves and is priced"
        )
    )
    approved = (
        conditions.Condition(APPROVED, conditions.FALSE, refusal[0], refusal[1])
        if refusal
        else conditions.Condition(
            APPROVED,
            conditions.TRUE if review["state"] == APPROVED else conditions.FALSE,
            str(review["state"]),
            f"{review['state']} by {review['decidedBy']}: {review['reason']}"
            if review.get("decidedBy")
            else "waiting for a plan approver's decision",
        )
    )
    new_status: Manifest = {
        "observedGeneration": generation,
        "ceiling": ceiling.hard,
        "currency": table.currency if table is not None else ratecard.CURRENCY,
        "payer": payer,
        "review": review,
        "conditions": conditions.merge(
            status.get("conditions") or [], [ready, approved], generation, now
        ),
    }
    if cost is not None:
        new_status["estimatedAnnualCost"] = cost
    history = plans.history(status.get("history") or [], review)
    if history:  # absent until the first decision: a plan nobody decided is not rewritten
        new_status["history"] = history
    if spec.migrations:
        new_status["migrations"] = plans.link_migrations(
            spec.migrations, tenant_migrations(hub, spec.tenant)
        )
    old_review = status.get("review") or {}
    review_changed = {key: old_review.get(key) for key in ("state", "decidedBy", "reason")} != {
        key: review.get(key) for key in ("state", "decidedBy", "reason")
    }
    _write(hub, body, new_status)
    result = Result(outcome="success" if not problems else "invalid", body=body, tenant=spec.tenant)
    if review_changed and not refusal and (spec.decision is not None or old_review.get("state")):
        who = f" by {review['decidedBy']}: {review['reason']}" if review.get("decidedBy") else ""
        result.events.append(
            Event("Normal", DECISION_EVENTS[str(review["state"])], f"{review['state']}{who}")
        )
    if review_changed or status.get("ceiling") != ceiling.hard:
        result.tenant_affected = True
    if problems and (status.get("conditions") or []) != new_status["conditions"]:
        result.events.append(Event("Warning", problems[0][0], ready.message))
    if refusal and condition_reason(status, APPROVED) != refusal[0]:
        result.events.append(Event("Warning", refusal[0], refusal[1]))
    if spec.year == periods.year_of(now, tz):
        result.snapshot = metrics.PlanSnapshot(
            tier=tier,
            state=str(review["state"]),
            ceiling={key: float(quantity.parse(value)) for key, value in ceiling.hard.items()},
            estimated_annual_cost=float(cost) if cost is not None else None,
            updated_at=time.time(),
            pending_since=_unix(review.get("pendingSince")),
            payer=payer,
            apps_missing=len(
                plans.apps_missing(new_status.get("migrations") or [], now.astimezone(tz).date())
            ),
        )
    return result


# -- is the decision the approver's, on this content? ----------------------------------------

DECISION_UNBOUND = "DecisionUnbound"
DECISION_STALE = "DecisionStale"
NOT_AN_APPROVER = "DeciderNotApprover"


def unbound(decision: resourceplan.Decision, generation: int | None) -> tuple[str, str] | None:
    """Why the decision does not hold for the plan as it is now, or None.

    The approver names the generation they read; writing the decision bumps it by exactly one,
    so any later change of the spec (lines, migrations) leaves the decision behind.
    """
    if decision.approved_generation is None:
        return (
            DECISION_UNBOUND,
            "spec.decision names no approvedGeneration, so it is not bound to what was decided"
            " on; a plan approver decides again with approvedGeneration set to the plan's"
            " metadata.generation",
        )
    if generation != decision.approved_generation + 1:
        return (
            DECISION_STALE,
            f"the plan changed after the decision (decided on generation"
            f" {decision.approved_generation}, now {generation}); the decision no longer"
            " holds until a plan approver decides on the plan as it is now",
        )
    return None


def honoured_before(
    decision: resourceplan.Decision,
    previous: dict[str, Any] | None,
    generation: int | None,
    digest: str | None = None,
) -> bool:
    """Whether status.review already records this very decision on this generation, or on
    exactly this content (`digest`, see plans.carried_over)."""
    previous = previous or {}
    on_generation = (
        plans.same_decision(decision, previous) and previous.get("observedGeneration") == generation
    )
    return on_generation or plans.carried_over(decision, previous, digest)


def payer_of(tenant: Manifest | None) -> str:
    """The level that pays the tenant's bill and so reviews its plans (city without a tenant)."""
    unit = ((tenant or {}).get("spec") or {}).get("unit") or {}
    return statement.payer_of(str(unit.get("tier") or "city"), unit.get("region"))


def refuse_decision(
    hub: client.Cluster,
    decision: resourceplan.Decision | None,
    previous: dict[str, Any] | None,
    generation: int | None,
    payer: str,
    what: str = "plan",
    digest: str | None = None,
    history: list[dict[str, Any]] | None = None,
    created: str | None = None,
) -> tuple[str, str] | None:
    """(reason, message) when the decision on the `what` must be ignored, else None (SARs
    when new). A decision on record for exactly this content (`digest`) still holds, though
    the generation moved (restored from a backup): it was bound and checked when first seen.
    One on record from before the object was created (restored) holds by that only."""
    if decision is None:
        return None
    if plans.carried_over(decision, previous, digest):
        return None
    if plans.predates(decision, previous, history or [], created):
        return (
            DECISION_STALE,
            f"the {what} changed after the decision, which was recorded before this {what} was"
            f" restored (created {created}) on other content than it has now; the decision no"
            f" longer holds until an approver decides on the {what} as it is now",
        )
    stale = unbound(decision, generation)
    if stale or honoured_before(decision, previous, generation):
        return stale
    if may_approve(hub, decision.by, list(decision.groups), payer):
        return None
    groups = f" (with groups {', '.join(decision.groups)})" if decision.groups else ""
    return (
        NOT_AN_APPROVER,
        f"{decision.by}{groups} may not approve this {what} (no `approve` verb on"
        f" resourceplans.govcloud.io, nor on payers.govcloud.io {payer}), so the decision is"
        f" ignored; only plan approvers of every level (ClusterRole govcloud:plan-approver) or"
        f" of {payer}, the level that pays for the tenant, decide its {what}s",
    )


def may_approve(hub: client.Cluster, user: str, groups: list[str], payer: str) -> bool:
    """The API server's answer: may `user` (in `groups`) approve every ResourcePlan, or
    those of the tenants `payer` pays for?"""
    return _allowed(hub, user, groups, {"resource": "resourceplans"}) or _allowed(
        hub, user, groups, {"resource": "payers", "name": payer}
    )


def _allowed(hub: client.Cluster, user: str, groups: list[str], resource: dict[str, str]) -> bool:
    review = hub.create(
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "metadata": {},
            "spec": {
                "user": user,
                "groups": [*groups, "system:authenticated"],
                "resourceAttributes": {"group": constants.GROUP, "verb": "approve", **resource},
            },
        }
    )
    return bool((review.get("status") or {}).get("allowed"))


def condition_reason(status: Manifest, type_: str) -> str | None:
    for item in status.get("conditions") or []:
        if item.get("type") == type_:
            return str(item.get("reason"))
    return None


@dataclass
class Judgement:
    """What a plan resolves to: the tenant's tier, the rate table, ceiling, cost, problems."""

    tier: str
    table: rating.RateTable | None
    ceiling: plans.Ceiling
    cost: str | None
    problems: list[tuple[str, str]]


def judge(
    hub: client.Cluster,
    spec: resourceplan.ResourcePlanSpec,
    state: str,
    now: datetime,
    tz: Any,
) -> Judgement:
    """Resolve the plan against its tenant and the rate card; each problem says what to fix."""
    problems: list[tuple[str, str]] = []
    tenant = hub.get(constants.API_VERSION, "CloudTenant", spec.tenant)
    tier = str((((tenant or {}).get("spec") or {}).get("unit") or {}).get("tier") or "city")
    if tenant is None:
        problems.append(
            (
                "TenantNotFound",
                f"CloudTenant {spec.tenant} does not exist; create it first, or correct"
                " spec.tenant",
            )
        )
    card_body = hub.get(constants.API_VERSION, "RateCard", ratecard.DEFAULT_NAME)
    table: rating.RateTable | None = None
    if card_body is None:
        problems.append(
            ("NoRateCard", "RateCard default does not exist; the plan cannot be priced")
        )
    else:
        try:
            card = ratecard.parse(ratecard.DEFAULT_NAME, card_body.get("spec") or {})
            table = rating.table(card, tz)
        except (pydantic.ValidationError, ValueError) as error:
            problems.append(
                ("InvalidRateCard", f"RateCard default is invalid: {spec_message(error)}")
            )
    ceiling = plans.ceiling(spec, table.offerings if table is not None else {})
    if table is not None:
        problems.extend(("UnknownOffering", problem) for problem in ceiling.problems)
    if spec.year < periods.year_of(now, tz) and state != APPROVED:
        problems.append(
            (
                "YearInPast",
                f"year {spec.year} is in the past; plans are filed for the current or a coming"
                " year",
            )
        )
    cost: str | None = None
    if table is not None:
        total, unpriced = plans.annual_cost(ceiling.hard, table, tier, spec.year, tz)
        cost = accrual.money(total)
        if unpriced:
            problems.append(
                (
                    "MissingRate",
                    f"RateCard default has no rate for {', '.join(unpriced)}; the estimate"
                    " leaves it out. Add a rate to the rate card",
                )
            )
    return Judgement(tier, table, ceiling, cost, problems)


def tenant_migrations(hub: client.Cluster, tenant: str) -> list[Manifest]:
    """The MigrationPlans in the tenant's namespaces (one LIST; none if the kind is not served)."""
    try:
        found = hub.list(constants.API_VERSION, "MigrationPlan")
    except client.ApiError as error:
        if error.status == 404:
            return []
        raise
    # The migration reconciler records the tenant owning the plan's namespace in its status.
    return [item for item in found if (item.get("status") or {}).get("tenant") == tenant]


def _unix(text: Any) -> float | None:
    moment = accrual.parse_time(str(text)) if text else None
    return moment.timestamp() if moment is not None else None


def _write(hub: client.Cluster, body: Manifest, status: Manifest) -> bool:
    # Whatever the pass leaves out is cleared, except the decisions on record (append-only).
    return statuses.replace(hub, constants.API_VERSION, KIND, body, status, KEPT)


def invalid_spec(status: Manifest, generation: int | None, message: str, now: datetime) -> Manifest:
    """The whole status of an object whose spec cannot work: Ready False (InvalidSpec)."""
    wanted = [conditions.Condition(READY, conditions.FALSE, "InvalidSpec", message)]
    merged = conditions.merge(status.get("conditions") or [], wanted, generation, now)
    return {"observedGeneration": generation, "conditions": merged}


def spec_message(error: Exception) -> str:
    if isinstance(error, pydantic.ValidationError):
        return "; ".join(
            f"spec.{'.'.join(str(part) for part in item['loc'])}: {item['msg']}"
            if item["loc"]
            else str(item["msg"])
            for item in error.errors()
        )
    return str(error)


# -- the cap on a tenant -------------------------------------------------------------------


def approved_ceiling(hub: client.Cluster, tenant: str, year: int) -> dict[str, str] | None:
    """The ceiling of the tenant's approved plan for `year`, or None (one GET)."""
    body = hub.get(constants.API_VERSION, KIND, resourceplan.plan_name(tenant, year))
    if body is None:
        return None
    if _decided(body):
        return dict((body.get("status") or {}).get("ceiling") or {})
    return None


def approved_changes(
    hub: client.Cluster, tenant: str, year: int
) -> list[tuple[bool, dict[str, str]]]:
    """The approved requests of `tenant` for `year` as (raise?, change), bound like a plan's
    approval: a request edited after its decision does not count until decided again."""
    try:
        requests = hub.list(constants.API_VERSION, REQUEST_KIND)
    except client.ApiError as error:
        if error.status == 404:  # the ResourceRequest CRD is not installed (yet)
            return []
        raise
    found = []
    for item in requests:
        spec = item.get("spec") or {}
        status = item.get("status") or {}
        if status.get("tenant") != tenant or spec.get("year") != year:
            continue
        if _decided(item) and _ready_now(status, item["metadata"].get("generation")):
            raises = spec.get("direction", resourcerequest.Direction.RAISE.value) != "Lower"
            found.append((raises, dict(status.get("change") or {})))
    return found


def _decided(item: Manifest) -> bool:
    """Whether an approver's approval holds on the object as it is now. The review must be of
    this very generation, or of exactly this content (its spec digest: a restored object): one
    edited after its approval is not approved, even before its own pass has noticed."""
    spec = item.get("spec") or {}
    decision = spec.get("decision") or {}
    review = (item.get("status") or {}).get("review") or {}
    generation = item["metadata"].get("generation")
    if review.get("state") != APPROVED or decision.get("state") != APPROVED:
        return False
    parsed = _decision(decision)
    if parsed is not None:
        if plans.carried_over(parsed, review, plans.spec_digest(spec)):
            return True
        history = (item.get("status") or {}).get("history") or []
        if plans.predates(parsed, review, history, item["metadata"].get("creationTimestamp")):
            return False
    return (
        review.get("observedGeneration") == generation
        and decision.get("approvedGeneration") is not None
        and generation == decision["approvedGeneration"] + 1
    )


def _decision(decision: Manifest) -> resourceplan.Decision | None:
    try:
        return resourceplan.Decision.model_validate(decision)
    except pydantic.ValidationError:
        return None  # the CRD refuses it; the generation rule alone answers


def _ready_now(status: Manifest, generation: int | None) -> bool:
    ready: Manifest = next(
        (c for c in status.get("conditions") or [] if c.get("type") == READY), {}
    )
    return bool(
        ready.get("status") == conditions.TRUE and status.get("observedGeneration") == generation
    )


def cap_for(
    hub: client.Cluster, tenant: str, spec_quota: dict[str, str], settings: Any, now: datetime
) -> plans.Cap | None:
    """The tenant's effective quota when requireApprovedPlan is on; None when it is off.

    This year's approved plan caps it; without one, during the grace period at the start of
    the year, last year's approved plan still does; else the starter allowance.
    """
    if not (
        getattr(settings, "billing_enabled", False)
        and getattr(settings, "require_approved_plan", False)
    ):
        return None
    tz = zone(settings)
    year = periods.year_of(now, tz)
    plan = resourceplan.plan_name(tenant, year)
    approved = approved_ceiling(hub, tenant, year)
    if approved is not None:
        changes = approved_changes(hub, tenant, year)
        approved = plans.amended(approved, changes)
        if changes:
            plan = f"{plan} with {len(changes)} approved ResourceRequest(s)"
    until = grace_end(year, settings, tz)
    if approved is None and now < until:
        last_year = approved_ceiling(hub, tenant, year - 1)
        if last_year is not None:
            return plans.grace_quota(
                spec_quota,
                last_year,
                plan=plan,
                last_plan=resourceplan.plan_name(tenant, year - 1),
                until=until.astimezone(tz),
            )
    return plans.effective_quota(
        spec_quota,
        approved,
        plan=plan,
        starter=dict(getattr(settings, "starter_allowance", {}) or {}),
    )


def grace_end(year: int, settings: Any, tz: Any) -> datetime:
    """When last year's approved plan stops capping a tenant without this year's."""
    days = float(getattr(settings, "plan_grace_days", 0.0) or 0.0)
    return periods.Period(year, 1).start(tz) + timedelta(days=days)
