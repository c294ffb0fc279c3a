"""A department sees its bill: status.billing of its CloudTenant (the charge to date in whole
units, its reports' names) and a self-view that reads those reports and nobody else's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from _metering_hub import Hub, tenant

from govcloud.billing import usage
from govcloud.desired import rbac
from govcloud.reconcile import metering
from govcloud.reconcile import tenant as tenant_reconcile

CARD = {
    "spec": {
        "currency": "CNY",
        "rates": [{"resource": "requests.cpu", "price": "0.12", "effectiveFrom": "2026-01-01"}],
    }
}
SETTINGS = SimpleNamespace(billing_utc_offset_hours=8.0, metering_checkpoint_seconds=0)
START = datetime(2027, 1, 10, 8, 0, tzinfo=UTC)
UID = "0f0e0d0c-0000-4000-8000-000000000001"


def _tick(hub: Hub, cache: usage.UsageCache, hours: float) -> None:
    result = metering.tick(hub, cache, CARD, SETTINGS, now=START + timedelta(hours=hours))  # type: ignore[arg-type]
    assert not result.errors, result.errors


def test_the_charge_to_date_is_shown_in_whole_units_and_written_once_per_unit() -> None:
    hub = Hub([tenant("jtj", uid=UID)])
    cache = usage.UsageCache()
    cache.observe("jtj-app", "q", "jtj", {"requests.cpu": "4"}, {"requests.cpu": "1"}, START)
    _tick(hub, cache, 0)
    assert hub.tenants[0]["status"]["billing"] == {
        "period": "2027-01",
        "charge": "0 CNY",
        "report": "jtj-2027-01",
        "reports": ["jtj-2027-01"],
    }
    _tick(hub, cache, 5)  # 0.60 CNY: the report moves, the whole units do not
    assert len(hub.bills) == 1
    _tick(hub, cache, 10)  # 1.20 CNY
    assert hub.tenants[0]["status"]["billing"]["charge"] == "1 CNY"
    assert len(hub.bills) == 2


def test_the_reports_listed_keep_the_latest_two_years_in_month_order() -> None:
    older = [f"jtj-{year}-{month:02d}" for year in (2024, 2025, 2026) for month in range(1, 13)]
    body = tenant("jtj", uid=UID)
    body["status"] = {"billing": {"reports": list(reversed(older))}}
    hub = Hub([body])
    cache = usage.UsageCache()
    cache.observe("jtj-app", "q", "jtj", {"requests.cpu": "4"}, {"requests.cpu": "1"}, START)
    _tick(hub, cache, 0)
    listed = hub.tenants[0]["status"]["billing"]["reports"]
    assert listed == [*older[-23:], "jtj-2027-01"]


def test_members_may_read_only_reports_that_can_be_their_own() -> None:
    names: list[Any] = [
        "jtj-2026-12",
        f"jtj-2027-01-{UID}",
        "jtj-2027-01-99999999-0000-4000-8000-000000000009",  # an earlier jtj's (another UID)
        "jtj-b-2026-12",  # tenant jtj-b's
        "jtjx-2026-12",
        "jtj-2026-12-extra",
        "jtj-26-12",
        7,
    ]
    assert rbac.own_reports("jtj", UID, names) == ["jtj-2026-12", f"jtj-2027-01-{UID}"]
    role = rbac.self_view_role("jtj", ["jtj-app"], rbac.own_reports("jtj", UID, names))
    rules = {rule["resources"][0]: rule for rule in role["rules"]}
    assert rules["usagereports"]["resourceNames"] == ["jtj-2026-12", f"jtj-2027-01-{UID}"]
    assert rules["usagereports"]["verbs"] == ["get", "list", "watch"]
    without = rbac.self_view_role("jtj", ["jtj-app"], [])
    assert "usagereports" not in {rule["resources"][0] for rule in without["rules"]}


def test_a_tenant_pass_never_clears_what_metering_wrote_in_status_billing() -> None:
    patches: list[dict[str, Any]] = []

    class Recording:
        def patch_status(self, *args: Any, **_: Any) -> None:
            patches.append(args[3])

    body = {
        "metadata": {"name": "jtj"},
        "status": {"phase": "Active", "billing": {"charge": "3 CNY"}, "migrations": {}},
    }
    tenant_reconcile.write_status(Recording(), body, {"phase": "Pending"})  # type: ignore[arg-type]
    assert patches == [{"phase": "Pending"}]


def test_a_report_names_the_unit_billed_and_the_level_that_pays() -> None:
    body = tenant("lj-water", tier="county", uid=UID)
    body["spec"]["unit"].update({"code": "lj-water", "region": "庐江县"})
    body["spec"]["displayName"] = "庐江县水务局"
    hub = Hub([body])
    cache = usage.UsageCache()
    cache.observe(
        "lj-water-app", "q", "lj-water", {"requests.cpu": "4"}, {"requests.cpu": "1"}, START
    )
    _tick(hub, cache, 0)
    status = hub.reports["lj-water-2027-01"]["status"]
    assert status["unit"] == {"code": "lj-water", "name": "庐江县水务局", "region": "庐江县"}
    assert status["payer"] == "county:庐江县"
