"""A department reads its own bill and space, and nothing of another's (issue #15, item 1);
a level's finance staff read the bills of the units it pays for, and nothing else (item 2).

Metering writes each tenant's `status.billing` (this month's charge to date in whole units, its
UsageReports' names); the tenant's self-view ClusterRole lets its members get those reports by
name, and its finance ClusterRole, aggregated by the chart's govcloud:finance:<payer> role, lets
its level's finance staff. Checked as each would act: kubectl (and `kubectl govcloud`)
impersonating them.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from _billing_helpers import with_rate_card
from _chart_helpers import render

from govcloud.cli import main
from govcloud.dev import cluster, testing

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


def reports_of(tenants: Any, *names: str) -> dict[str, str]:
    """Each tenant's report of this month, once metering names it in the tenant's status."""
    return {
        name: testing.eventually(
            lambda name=name: billing_of(tenants, name).get("report"),
            timeout=60,
            what=f"metering to show {name}'s report in its status",
        )
        for name in names
    }


def test_members_read_their_own_bill_and_namespaces_and_nothing_of_another_tenant(
    rate_card, tenants, kubectl
) -> None:
    mine, theirs = tenants.create("bill-a"), tenants.create("bill-b")
    for name in (mine, theirs):
        tenants.wait_ready(name)
    bills = reports_of(tenants, mine, theirs)
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


# -- a county's finance staff read that county's bills (each level pays for its own) ----------

LUJIANG = "county:庐江"
FINANCE = ("li.finance", "lujiang-finance")  # user, group bound by the chart's financeReaders


@pytest.fixture
def lujiang_finance(kubectl: testing.Kubectl) -> Iterator[testing.Kubectl]:
    """The chart's finance role for Lujiang county (templates/finance-readers.yaml), bound to
    its finance group: kubectl as one of its staff."""
    manifests = render(
        "--show-only",
        "templates/finance-readers.yaml",
        "--set-json",
        f'financeReaders=[{{"payer": "{LUJIANG}", "groups": ["{FINANCE[1]}"]}}]',
    )
    for manifest in manifests:
        kubectl.apply(manifest)
    try:
        yield kubectl.impersonate(*FINANCE)
    finally:
        for manifest in manifests:
            kubectl.run("delete", manifest["kind"], manifest["metadata"]["name"])


def statement_as(hub: cluster.ControlPlane, who: tuple[str, ...], *args: str) -> Any:
    """`kubectl govcloud statement -o json` as `who` (user, groups...)."""
    user, *groups = who
    argv = ["--kubeconfig", str(hub.kubeconfig), "--as", user]
    for group in groups:
        argv += ["--as-group", group]
    out, err = io.StringIO(), io.StringIO()
    code = main.run([*argv, "statement", "-o", "json", *args], out, err)
    assert code == 0, err.getvalue()
    return json.loads(out.getvalue())


def test_a_countys_finance_reads_that_countys_bills_and_nothing_else(
    rate_card, tenants, kubectl, hub, lujiang_finance
) -> None:
    ours = tenants.create("fin-lj", unit={"code": "lj-water", "tier": "county", "region": "庐江"})
    theirs = tenants.create("fin-fx", unit={"code": "fx-water", "tier": "county", "region": "肥西"})
    reports = reports_of(tenants, ours, theirs)
    # The controller-manager aggregates the tenant's finance role into the county's.
    testing.eventually(
        lambda: lujiang_finance.run("get", "usagereport", reports[ours]).returncode == 0,
        what="Lujiang's finance role to include its unit's report",
    )
    assert forbidden(lujiang_finance.run("get", "usagereport", reports[theirs]))
    assert forbidden(lujiang_finance.run("get", "usagereports"))  # no list of every bill
    for kind, name in (("cloudtenant", ours), ("resourceplan", f"{ours}-2026"),
                       ("namespace", f"{ours}-app")):  # fmt: skip
        assert forbidden(lujiang_finance.run("get", kind, name)), (kind, name)
    # Its statement: the county's units only, sub-totalled under the county.
    found = testing.eventually(
        lambda: (data := statement_as(hub, FINANCE))["tenants"] and data,
        what="the statement to show Lujiang's unit",
    )
    assert [row["tenant"] for row in found["tenants"]] == [ours]
    assert found["tenants"][0]["unit"] == "lj-water"
    assert list(found["payers"]) == [LUJIANG]
    # A unit moving into the county is its finance staff's to read from then on.
    tenants.patch(theirs, {"unit": {"code": "fx-water", "tier": "county", "region": "庐江"}})
    testing.eventually(
        lambda: lujiang_finance.run("get", "usagereport", reports[theirs]).returncode == 0,
        what="the moved unit's report to be Lujiang's finance staff's to read",
    )
