"""Plans (pure): a ResourcePlan's ceiling and cost, its review, and how it caps a tenant."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
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
    """The sum of every line (offering x count or resources x count), by resource."""
    totals: dict[str, Decimal] = {}
    problems = []
    for number, line in enumerate(spec.lines, start=1):
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


def review(
    decision: resourceplan.Decision | None,
    previous: Mapping[str, Any] | None,
    generation: int | None,
    now: datetime,
) -> dict[str, Any]:
    """status.review from spec.decision; decidedAt is when the operator first saw it."""
    if decision is None:
        return {"state": resourceplan.ReviewState.PENDING.value}
    previous = previous or {}
    same = (
        previous.get("state") == decision.state.value
        and previous.get("decidedBy") == decision.by
        and previous.get("reason") == decision.reason
        and previous.get("decidedAt")
    )
    return {
        "state": decision.state.value,
        "decidedBy": decision.by,
        "decidedAt": previous["decidedAt"] if same else now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "reason": decision.reason,
        "observedGeneration": previous.get("observedGeneration") if same else generation,
    }
