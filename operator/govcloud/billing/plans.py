"""Plans (pure): a ResourcePlan's ceiling and cost, its review, and how it caps a tenant."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

from govcloud.api.v1alpha1 import resourceplan
from govcloud.billing import accrual, periods, rating, usage
from govcloud.desired import quantity

WITHIN_PLAN = "WithinPlan"


@dataclass(frozen=True)
class Ceiling:
    """What the plan's lines add up to, and what could not be resolved."""

    hard: dict[str, str]
    problems: list[str]


def ceiling(
    spec: resourceplan.ResourcePlanSpec, offerings: Mapping[str, Mapping[str, str]]
) -> Ceiling:
    """The sum of every line of the plan, by resource."""
    return lines_ceiling(spec.lines, offerings)


def lines_ceiling(
    lines: Sequence[resourceplan.PlanLine], offerings: Mapping[str, Mapping[str, str]]
) -> Ceiling:
    """The sum of every line (offering x count or resources x count), by resource."""
    totals: dict[str, Decimal] = {}
    problems = []
    for number, line in enumerate(lines, start=1):
        if line.offering is not None:
            resources = offerings.get(line.offering)
            if resources is None:
                known = ", ".join(sorted(offerings)) or "none"
                problems.append(
                    f"line {number}: offering {line.offering} is not in RateCard default"
                    f" (known offerings: {known})"
                )
                continue
        else:
            resources = line.resources or {}
        for resource, amount in resources.items():
            totals[resource] = (
                totals.get(resource, Decimal(0)) + quantity.parse(amount) * line.count
            )
    return Ceiling(
        hard={
            resource: quantity.to_string(value, binary=quantity.is_binary(resource))
            for resource, value in sorted(totals.items())
        },
        problems=problems,
    )


def annual_cost(
    hard: Mapping[str, str], table: rating.RateTable, tier: str, year: int, tz: timezone
) -> tuple[Decimal, list[str]]:
    """The ceiling fully requested all year at the prices in force (CNY), and unpriced resources."""
    start, end = periods.year_bounds(year, tz)
    point = usage.Point(start, hard={}, used=usage.parse_amounts(hard))
    report = accrual.accrue(accrual.Report(last_sample=start), [point], end, table, tier)
    unpriced = sorted(
        resource
        for resource in hard
        if rating.is_requested(resource) and resource not in table.rates
    )
    return report.total, sorted(set(unpriced) | set(report.unrated))


def amended(
    ceiling: Mapping[str, str], changes: Iterable[tuple[bool, Mapping[str, str]]]
) -> dict[str, str]:
    """The approved ceiling with approved in-year requests applied: each change is (raise?,
    amounts), added or taken off per resource; a resource never goes below zero."""
    totals = {resource: quantity.parse(value) for resource, value in ceiling.items()}
    for raises, amounts in changes:
        for resource, value in amounts.items():
            moved = quantity.parse(value) * (1 if raises else -1)
            totals[resource] = max(Decimal(0), totals.get(resource, Decimal(0)) + moved)
    return {
        resource: quantity.to_string(value, binary=quantity.is_binary(resource))
        for resource, value in sorted(totals.items())
    }


@dataclass(frozen=True)
class Cap:
    """A tenant's effective quota under its plan, and the WithinPlan condition to show."""

    quota: dict[str, str]
    status: str
    reason: str
    message: str


def effective_quota(
    spec_quota: Mapping[str, str],
    approved: Mapping[str, str] | None,
    *,
    plan: str,
    starter: Mapping[str, str],
) -> Cap:
    """min(spec quota, approved ceiling) per resource; the starter allowance without a plan.

    Only resources the ceiling (or the starter allowance) names are capped: a plan budgets
    what it lists, and counts it does not mention (pods, services) pass through unchanged.
    """
    limit = approved if approved is not None else starter
    quota: dict[str, str] = {}
    capped = []
    for resource, value in spec_quota.items():
        bound = limit.get(resource)
        if bound is not None and quantity.parse(bound) < quantity.parse(value):
            quota[resource] = bound
            capped.append(f"{resource} {value} -> {bound}")
        else:
            quota[resource] = value
    if approved is None:
        allowance = ", ".join(f"{key}={value}" for key, value in sorted(starter.items()))
        return Cap(
            quota,
            "False",
            "NoApprovedPlan",
            f"no approved ResourcePlan {plan}; the starter allowance applies"
            f" ({allowance or 'nothing'})"
            + (f"; capped {', '.join(capped)}" if capped else "")
            + ". File the plan and have it approved to get the requested quota",
        )
    if capped:
        return Cap(
            quota,
            "False",
            "CappedByPlan",
            f"quota capped by the approved ResourcePlan {plan}: {', '.join(capped)};"
            " ask for more in the plan, or lower spec.quota",
        )
    return Cap(quota, "True", "WithinPlan", f"quota is within the approved ResourcePlan {plan}")


def grace_quota(
    spec_quota: Mapping[str, str],
    last_year: Mapping[str, str],
    *,
    plan: str,
    last_plan: str,
    until: datetime,
) -> Cap:
    """At the turn of the year, before this year's plan is approved: last year's approved
    ceiling still caps the quota until `until` (the grace period), instead of the starter
    allowance; WithinPlan is False so the department sees (and is warned) that it must file."""
    quota = effective_quota(spec_quota, last_year, plan=last_plan, starter={}).quota
    capped = [
        f"{resource} {value} -> {quota[resource]}"
        for resource, value in sorted(spec_quota.items())
        if quota[resource] != value
    ]
    return Cap(
        quota,
        "False",
        "LastYearsPlan",
        f"no approved ResourcePlan {plan} yet: last year's approved {last_plan} applies until"
        f" {until.strftime('%Y-%m-%d %H:%M %Z').strip()} (grace period), then the starter"
        " allowance"
        + (f"; capped {', '.join(capped)}" if capped else "")
        + ". File this year's plan and have it approved",
    )


def spec_digest(spec: Mapping[str, Any]) -> str:
    """What a decision is on: sha256 of the canonical JSON of the spec without `decision`.

    A review records it, so that a decision still holds on the very same content when the
    generation alone moved (an object restored from a backup starts again at generation 1)."""
    content = {key: value for key, value in spec.items() if key != "decision"}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def same_decision(decision: resourceplan.Decision, previous: Mapping[str, Any]) -> bool:
    """Whether the recorded review is of this decision (state, decider and reason)."""
    return (
        previous.get("state") == decision.state.value
        and previous.get("decidedBy") == decision.by
        and previous.get("reason") == decision.reason
    )


def _bound_to(decision: resourceplan.Decision, generation: Any) -> bool:
    """Whether a record seen on `generation` is of this decision's binding (written on the
    generation it names, which the write bumped by one)."""
    return decision.approved_generation is not None and generation == (
        decision.approved_generation + 1
    )


def carried_over(
    decision: resourceplan.Decision, previous: Mapping[str, Any] | None, digest: str | None
) -> bool:
    """Whether the review on record is of this very decision (state, decider, reason and the
    generation it was bound to) on exactly the content the spec has now (its digest), whatever
    the generation is now: a restored object keeps its decision, an edited one (another digest)
    does not. Reviews recorded without a digest never carry over."""
    previous = previous or {}
    return (
        digest is not None
        and previous.get("specDigest") == digest
        and same_decision(decision, previous)
        and _bound_to(decision, previous.get("observedGeneration"))
    )


def predates(
    decision: resourceplan.Decision,
    previous: Mapping[str, Any] | None,
    history: Sequence[Mapping[str, Any]],
    created: str | None,
) -> bool:
    """Whether this very decision was on record before the object was created (its review or
    history, which only the operator writes, older than metadata.creationTimestamp, which only
    the API server writes): the object was re-created from a backup, its generations started
    again at 1, and the decision's approvedGeneration no longer names what was decided on. Such
    a decision holds only by its digest (`carried_over`), never by its generation."""
    since = accrual.parse_time(created) if created else None
    if since is None:
        return False
    records = [
        (item.get("state"), item.get("decidedBy"), item.get("reason"), item.get("decidedAt"),
         item.get("observedGeneration"))
        for item in [previous or {}]
    ] + [
        (item.get("state"), item.get("by"), item.get("reason"), item.get("at"),
         item.get("generation"))
        for item in history
    ]  # fmt: skip
    for state, by, reason, at, generation in records:
        when = accrual.parse_time(str(at)) if at else None
        if (
            when is not None
            and when < since
            and (state, by, reason) == (decision.state.value, decision.by, decision.reason)
            and _bound_to(decision, generation)
        ):
            return True
    return False


def review(
    decision: resourceplan.Decision | None,
    previous: Mapping[str, Any] | None,
    generation: int | None,
    now: datetime,
    created: str | None = None,
    digest: str | None = None,
) -> dict[str, Any]:
    """status.review from spec.decision; decidedAt is when the operator first saw it, and
    `specDigest` the content it holds on (given only for a decision that holds now).

    A pending plan says since when it waits (`pendingSince`): its creation if it was never
    decided, else when the operator saw it reopened.
    """
    previous = previous or {}
    if decision is None:
        pending = resourceplan.ReviewState.PENDING.value
        if previous.get("state") == pending and previous.get("pendingSince"):
            since = str(previous["pendingSince"])
        elif not previous.get("state") and created:
            since = created
        else:
            since = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"state": pending, "pendingSince": since}
    same = same_decision(decision, previous) and bool(previous.get("decidedAt"))
    recorded = {
        "state": decision.state.value,
        "decidedBy": decision.by,
        "decidedAt": previous["decidedAt"] if same else now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "reason": decision.reason,
        "observedGeneration": previous.get("observedGeneration") if same else generation,
    }
    if digest is not None:
        recorded["specDigest"] = digest
    return recorded


def history(
    previous: Sequence[Mapping[str, Any]], review: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """status.history: `previous` with the decision `review` records appended when it is new
    (a decision, or the plan reopened after one); never rewritten, at most MAX_HISTORY long."""
    entries = [dict(item) for item in previous]
    record = _record(review)
    if record is None or len(entries) >= resourceplan.MAX_HISTORY:
        return entries
    last = entries[-1] if entries else None
    if last is None and record["state"] == resourceplan.ReviewState.PENDING.value:
        return entries  # filed and never decided: nothing to record yet
    if last is not None and all(last.get(key) == record.get(key) for key in ("state", "by", "at")):
        return entries
    return [*entries, record]


def _record(review: Mapping[str, Any]) -> dict[str, Any] | None:
    state = review.get("state")
    if state == resourceplan.ReviewState.PENDING.value:
        since = review.get("pendingSince")
        return {"state": state, "at": since} if since else None
    if not review.get("decidedAt"):
        return None
    record = {
        "state": state,
        "by": review.get("decidedBy"),
        "at": review["decidedAt"],
        "generation": review.get("observedGeneration"),
        "reason": review.get("reason"),
    }
    return {key: value for key, value in record.items() if value is not None}


# -- the plan's apps and their MigrationPlans (a read-only link) ----------------------------

COMPLETED = "Completed"


def _app_of(migration: Mapping[str, Any]) -> str:
    return str((((migration.get("spec") or {}).get("app") or {}).get("name")) or "")


def _rank(migration: Mapping[str, Any]) -> tuple[int, str, str]:
    """Completed first, then the newest; ties by namespace/name so the choice is stable."""
    metadata = migration.get("metadata") or {}
    phase = (migration.get("status") or {}).get("phase")
    created = str(metadata.get("creationTimestamp") or "")
    inverted = "".join(chr(0x10FFFF - ord(char)) for char in created)  # newest first
    return (
        0 if phase == COMPLETED else 1,
        inverted,
        f"{metadata.get('namespace')}/{metadata.get('name')}",
    )


def apps_missing(linked: Iterable[Mapping[str, Any]], today: date) -> list[str]:
    """Planned apps (status.migrations) past their target date with no MigrationPlan."""
    missing = []
    for app in linked:
        target = date.fromisoformat(str(app.get("targetDate")))
        if not app.get("found") and target < today:
            missing.append(f"{app.get('app')} (target {target.isoformat()})")
    return missing


def link_migrations(
    planned: Sequence[resourceplan.PlannedMigration], found: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Per planned app: the tenant's MigrationPlan for it (matched by app name), if any.

    `found` are the MigrationPlans in the tenant's namespaces. Where several move the same
    app, a Completed one is shown, else the newest.
    """
    by_app: dict[str, list[Mapping[str, Any]]] = {}
    for migration in found:
        by_app.setdefault(_app_of(migration).strip(), []).append(migration)
    linked = []
    for item in planned:
        entry: dict[str, Any] = {
            "app": item.app,
            "targetDate": item.target_date.isoformat(),
            "found": False,
        }
        candidates = sorted(by_app.get(item.app.strip(), []), key=_rank)
        if candidates:
            chosen = candidates[0]
            metadata = chosen.get("metadata") or {}
            status = chosen.get("status") or {}
            phase = str(status.get("phase") or "Pending")
            entry.update(
                {
                    "found": True,
                    "migrationPlan": f"{metadata.get('namespace')}/{metadata.get('name')}",
                    "phase": phase,
                    "progress": int(status.get("progress") or 0),
                    "completed": phase == COMPLETED,
                }
            )
            completed_at = status.get("completedAt")
            if phase == COMPLETED and completed_at:
                entry["completedAt"] = str(completed_at)
                entry["onTime"] = str(completed_at)[:10] <= item.target_date.isoformat()
        linked.append(entry)
    return linked
