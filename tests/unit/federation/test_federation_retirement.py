"""Retiring a hosted site: Retirable once no apps or tenants remain; a passed retireBy is said."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from govcloud.api.v1alpha1 import subcenter
from govcloud.federation import retirement


def site(**overrides: Any) -> subcenter.SubCenterSpec:
    spec: dict[str, Any] = {
        "displayName": "长丰县数据中心",
        "region": "长丰县",
        "tier": "county",
        "mode": "federated",
        "kubeconfigSecretRef": {"name": "changfeng-kubeconfig", "namespace": "govcloud-system"},
        "maxSecurityLevel": 3,
    }
    spec.update(overrides)
    return subcenter.SubCenterSpec.model_validate(spec)


TODAY = datetime.date(2027, 1, 1)


@pytest.mark.parametrize(
    ("retire_by", "apps", "tenants", "status", "reason", "fragment", "retirable"),
    [
        ("2027-06-30", 0, 0, "True", "Retirable", "retireBy 2027-06-30 is in 180 days", True),
        ("2027-06-30", 3, 0, "False", "AppsRemaining", "3 apps still to migrate", False),
        (
            "2027-06-30",
            1,
            2,
            "False",
            "AppsRemaining",
            "1 app still to migrate and 2 tenants",
            False,
        ),
        ("2027-06-30", 0, 1, "False", "TenantsPlaced", "1 tenant still placed here", False),
        ("2027-01-01", 2, 0, "False", "AppsRemaining", "retireBy 2027-01-01 is today", False),
        ("2026-12-31", 2, 0, "False", "RetireByPassed", "passed 1 day ago; finish", False),
        ("2026-10-01", 0, 1, "False", "RetireByPassed", "passed 92 days ago", False),
        ("2026-10-01", 0, 0, "True", "Retirable", "passed 92 days ago", True),
        ("2027-06-30", None, 0, "Unknown", "AppsUnknown", "MigrationPlans", None),
        ("2027-06-30", None, 1, "False", "TenantsPlaced", "1 tenant", False),
    ],
)
def test_retirement(
    retire_by: str,
    apps: int | None,
    tenants: int,
    status: str,
    reason: str,
    fragment: str,
    retirable: bool | None,
) -> None:
    judged = retirement.judge(site(mode="hosted", retireBy=retire_by), TODAY, apps, tenants)

    assert judged.condition is not None
    assert judged.condition.type == "Retirable"
    assert (judged.condition.status, judged.condition.reason) == (status, reason)
    assert fragment in judged.condition.message
    assert judged.retirable is retirable


def test_a_federated_site_is_not_being_retired() -> None:
    assert retirement.judge(site(), TODAY, 5, 5) == retirement.Retirement(None, None)
