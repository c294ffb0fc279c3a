"""A department reads its own bill and space, and nothing of another's (issue #15, item 1).

Metering writes each tenant's `status.billing` (this month's charge to date in whole units, its
UsageReports' names); the tenant's self-view ClusterRole lets its members get those reports by
name. Checked as a member would act: kubectl impersonating a tenant admin.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from _billing_helpers import with_rate_card

from govcloud.dev import testing

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def rate_card(
    kubectl: testing.Kubectl, operator: testing.OperatorProcess
) -> Iterator[dict[str, Any]]:
    yield from with_rate_card(kubectl)


def billing_of(tenants: Any, name: str) -> dict[str, Any]:
    return dict((tenants.get(name).get("status") or {}).get("billing") or {})


def forbidden(result: Any) -> bool:
    return result.returncode != 0 and "Forbidden" in result.stderr


def test_members_read_their_own_bill_and_namespaces_and_nothing_of_another_tenant(
    rate_card, tenants, kubectl
) -> None:
    mine, theirs = tenants.create("bill-a"), tenants.create("bill-b")
    for name in (mine, theirs):
        tenants.wait_ready(name)
    bills = {
        name: testing.eventually(
            lambda name=name: billing_of(tenants, name).get("report"),
            timeout=60,
            what=f"metering to show {name}'s report in its status",
        )
        for name in (mine, theirs)
    }
    billing = billing_of(tenants, mine)
    assert billing["charge"].endswith(" CNY"), billing
    assert billing["reports"] == [bills[mine]]
    member = kubectl.impersonate("alice", f"{mine}-admins")

    def reads_own_report() -> bool:
        return member.run("get", "usagereport", bills[mine]).returncode == 0

    testing.eventually(reads_own_report, what="the self-view to name the report")
    assert forbidden(member.run("get", "usagereport", bills[theirs]))
    assert forbidden(member.run("get", "usagereports"))  # no list of every bill
    # kubectl get ct shows the month's charge.
    table = member("get", "cloudtenant", mine)
    assert "CHARGE" in table.splitlines()[0], table
    assert billing["charge"] in table, table
    assert forbidden(member.run("get", "cloudtenant", theirs))
    # Its namespaces by name, never another tenant's, never all of them.
    assert member.run("get", "namespace", f"{mine}-app").returncode == 0
    assert forbidden(member.run("get", "namespace", f"{theirs}-app"))
    assert forbidden(member.run("get", "namespaces"))
