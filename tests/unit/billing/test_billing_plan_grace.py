"""The turn of the year: without this year's approved plan, last year's still caps the tenant
during the grace period, then the starter allowance applies."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from govcloud.reconcile import plan

STARTER = {"requests.cpu": "2"}
QUOTA = {"requests.cpu": "8", "pods": "20"}


def approved(tenant: str, year: int, cpu: str) -> dict[str, Any]:
    return {
        "metadata": {"name": f"{tenant}-{year}", "generation": 2},
        "spec": {"decision": {"state": "Approved", "approvedGeneration": 1}},
        "status": {
            "ceiling": {"requests.cpu": cpu},
            "review": {"state": "Approved", "observedGeneration": 2},
        },
    }


class Hub:
    def __init__(self, *bodies: dict[str, Any], requests: tuple[dict[str, Any], ...] = ()) -> None:
        self.plans = {body["metadata"]["name"]: body for body in bodies}
        self.requests = list(requests)

    def get(self, _api_version: str, _kind: str, name: str) -> dict[str, Any] | None:
        return self.plans.get(name)

    def list(self, _api_version: str, kind: str) -> list[dict[str, Any]]:
        assert kind == "ResourceRequest"
        return self.requests


def request(
    year: int, cpu: str, direction: str = "Raise", *, tenant: str = "jtj", bound: bool = True
) -> dict[str, Any]:
    """An approved in-year request; not `bound`: edited after the decision."""
    return {
        "metadata": {"name": f"r-{cpu}", "namespace": "jtj-app", "generation": 2 if bound else 3},
        "spec": {
            "year": year,
            "direction": direction,
            "decision": {"state": "Approved", "approvedGeneration": 1},
        },
        "status": {
            "tenant": tenant,
            "observedGeneration": 2 if bound else 3,
            "change": {"requests.cpu": cpu},
            "review": {"state": "Approved", "observedGeneration": 2 if bound else 3},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def settings(grace_days: float = 31) -> SimpleNamespace:
    return SimpleNamespace(
        billing_enabled=True,
        require_approved_plan=True,
        starter_allowance=STARTER,
        billing_utc_offset_hours=8.0,
        plan_grace_days=grace_days,
    )


# 2027-01-01 00:00 in UTC+8 is 2026-12-31 16:00 UTC; 31 days later, 2027-01-31 16:00 UTC.
IN_GRACE = datetime(2027, 1, 20, tzinfo=UTC)
AFTER_GRACE = datetime(2027, 1, 31, 16, 0, tzinfo=UTC)


def test_in_the_grace_period_last_years_approved_plan_still_caps_the_tenant() -> None:
    cap = plan.cap_for(Hub(approved("jtj", 2026, "6")), "jtj", QUOTA, settings(), IN_GRACE)
    assert cap is not None
    assert cap.quota == {"requests.cpu": "6", "pods": "20"}
    assert (cap.status, cap.reason) == ("False", "LastYearsPlan")
    assert "no approved ResourcePlan jtj-2027 yet" in cap.message
    assert "jtj-2026 applies until 2027-02-01 00:00 UTC+08:00" in cap.message
    assert "requests.cpu 8 -> 6" in cap.message


@pytest.mark.parametrize(
    ("hub", "grace", "now"),
    [
        (Hub(approved("jtj", 2026, "6")), 31, AFTER_GRACE),  # the grace period is over
        (Hub(approved("jtj", 2026, "6")), 0, IN_GRACE),  # no grace configured
        (Hub(approved("jtj", 2025, "6")), 31, IN_GRACE),  # only an older plan
        (Hub(), 31, IN_GRACE),  # never had a plan
    ],
)
def test_otherwise_without_this_years_plan_the_starter_allowance_applies(
    hub: Hub, grace: float, now: datetime
) -> None:
    cap = plan.cap_for(hub, "jtj", QUOTA, settings(grace), now)
    assert cap is not None
    assert cap.reason == "NoApprovedPlan"
    assert cap.quota == {"requests.cpu": "2", "pods": "20"}


def test_this_years_approved_plan_wins_over_last_years_in_the_grace_period() -> None:
    hub = Hub(approved("jtj", 2026, "6"), approved("jtj", 2027, "4"))
    cap = plan.cap_for(hub, "jtj", QUOTA, settings(), IN_GRACE)
    assert cap is not None
    assert (cap.reason, cap.quota["requests.cpu"]) == ("CappedByPlan", "4")


def test_approved_in_year_requests_move_the_approved_ceiling() -> None:
    hub = Hub(
        approved("jtj", 2027, "4"),
        requests=(
            request(2027, "3"),  # +3
            request(2027, "1", "Lower"),  # -1
            request(2027, "50", bound=False),  # edited after its approval: does not count
            request(2026, "50"),  # another year
            request(2027, "50", tenant="other"),  # another tenant
        ),
    )
    cap = plan.cap_for(hub, "jtj", QUOTA, settings(), AFTER_GRACE)
    assert cap is not None
    assert cap.quota == {"requests.cpu": "6", "pods": "20"}
    assert (cap.reason, cap.status) == ("CappedByPlan", "False")
    assert "jtj-2027 with 2 approved ResourceRequest(s)" in cap.message


def test_a_request_never_takes_a_resource_below_zero() -> None:
    hub = Hub(approved("jtj", 2027, "4"), requests=(request(2027, "9", "Lower"),))
    cap = plan.cap_for(hub, "jtj", QUOTA, settings(), AFTER_GRACE)
    assert cap is not None
    assert cap.quota["requests.cpu"] == "0"
