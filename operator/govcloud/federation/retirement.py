"""Retiring a hosted site (pure): can it be retired, and is it late; the date is passed in.

"retireBy is in the past" cannot be checked by CEL (it has no clock), so it is judged here and
reported by the Retirable condition instead of refusing the object.
"""

from __future__ import annotations

import dataclasses
from datetime import date

from govcloud.api.v1alpha1 import subcenter
from govcloud.federation import condition
from govcloud.federation.condition import Condition

RETIRABLE = "Retirable"
APPS_REMAINING = "AppsRemaining"
TENANTS_PLACED = "TenantsPlaced"
RETIRE_BY_PASSED = "RetireByPassed"
APPS_UNKNOWN = "AppsUnknown"


@dataclasses.dataclass(frozen=True)
class Retirement:
    """The Retirable condition and status.retirable; both None for a federated site."""

    condition: Condition | None
    retirable: bool | None


def judge(
    spec: subcenter.SubCenterSpec, today: date, apps_remaining: int | None, tenants_placed: int
) -> Retirement:
    """Whether a hosted site can be retired now: no apps left to migrate and no tenants on it.

    `apps_remaining` counts the site's apps that still have to move (from the MigrationPlans
    whose source is this site); None when that is not known.
    """
    if spec.mode is not subcenter.Mode.HOSTED:
        return Retirement(None, None)
    blockers: list[str] = []
    if apps_remaining:
        blockers.append(
            f"{apps_remaining} app{'s' if apps_remaining != 1 else ''} still to migrate"
        )
    if tenants_placed:
        blockers.append(
            f"{tenants_placed} tenant{'s' if tenants_placed != 1 else ''} still placed here"
        )
    deadline = _deadline(spec.retire_by, today)
    if not blockers and apps_remaining is None:
        return Retirement(
            Condition(
                condition.RETIRABLE,
                condition.UNKNOWN,
                APPS_UNKNOWN,
                "no tenants are placed here, but how many apps still have to move is not known"
                f" yet (it comes from the MigrationPlans whose source is this site){deadline}",
            ),
            None,
        )
    if not blockers:
        return Retirement(
            Condition(
                condition.RETIRABLE,
                condition.TRUE,
                RETIRABLE,
                f"no apps or tenants remain; the site can be retired{deadline}",
            ),
            True,
        )
    late = spec.retire_by is not None and today > spec.retire_by
    if late:
        reason = RETIRE_BY_PASSED
        advice = "; finish their migration (MigrationPlans), or set a later retireBy"
    else:
        reason = APPS_REMAINING if apps_remaining else TENANTS_PLACED
        advice = "; move them to the hub with MigrationPlans"
    return Retirement(
        Condition(
            condition.RETIRABLE,
            condition.FALSE,
            reason,
            f"{' and '.join(blockers)}{deadline}{advice}",
        ),
        False,
    )


def _deadline(retire_by: date | None, today: date) -> str:
    if retire_by is None:
        return ""
    days = (retire_by - today).days
    if days > 0:
        return f"; retireBy {retire_by.isoformat()} is in {days} day{'s' if days != 1 else ''}"
    if days == 0:
        return f"; retireBy {retire_by.isoformat()} is today"
    return f"; retireBy {retire_by.isoformat()} passed {-days} day{'s' if days != -1 else ''} ago"
