"""Roll-over with an injected clock: the operator down across two month ends closes everything."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from _metering_hub import Hub

from govcloud.billing import periods, rollover, usage
from govcloud.reconcile import metering

TZ = periods.zone(8)
P = periods.Period(2027, 1)
CARD = {
    "spec": {
        "currency": "CNY",
        "rates": [{"resource": "requests.cpu", "price": "0.12", "effectiveFrom": "2026-01-01"}],
    }
}
NINE = Decimal("1e-9")
SETTINGS = SimpleNamespace(billing_utc_offset_hours=8.0, metering_checkpoint_seconds=0)


def month(year: int, number: int) -> periods.Period:
    return periods.Period(year, number)


def test_nothing_earlier_means_a_new_tenant_metered_from_now() -> None:
    assert rollover.catch_up(P, {}) == rollover.Backlog()


def test_last_month_open_is_closed_and_this_month_continues() -> None:
    backlog = rollover.catch_up(P, {P.previous(): False})
    assert backlog == rollover.Backlog(close=[P.previous()], fill=[], continued=True)
    assert rollover.catch_up(P, {P.previous(): True}).close == []


def test_down_across_two_month_ends_closes_the_old_report_and_fills_the_month_between() -> None:
    # Down from November 2026 into January 2027: November open, December never metered.
    backlog = rollover.catch_up(P, {month(2026, 10): True, month(2026, 11): False})
    assert backlog.close == [month(2026, 11)]
    assert backlog.fill == [month(2026, 12)]
    assert backlog.continued


def test_months_between_crosses_years() -> None:
    assert rollover.months_between(month(2026, 11), month(2027, 3)) == [
        month(2026, 12),
        month(2027, 1),
        month(2027, 2),
    ]
    assert rollover.months_between(month(2026, 12), month(2027, 1)) == []


# -- the tick, against an in-memory stand-in for the hub's API (logic only) -----------------


def tenant(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"unit": {"tier": "city"}}, "status": {}}


def open_report(hub: Hub, name: str, period: periods.Period, last: datetime) -> None:
    hub.create(
        {
            "metadata": {
                "name": f"{name}-{period.name}",
                "labels": {"govcloud.io/tenant": name, "govcloud.io/period": period.name},
            },
            "spec": {"tenant": name, "period": period.name},
        }
    )
    hub.reports[f"{name}-{period.name}"]["status"] = {
        "lastSampleTime": last.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "samples": 3,
    }


def cpu_hours(body: dict[str, Any]) -> Decimal:
    for line in body["status"]["resources"]:
        if line["resource"] == "requests.cpu":
            return Decimal(line["requestedHours"])
    raise AssertionError("no requests.cpu line")


def test_a_tick_after_two_month_ends_down_closes_p_fills_p1_and_opens_p2() -> None:
    november, january = month(2026, 11), month(2027, 1)
    hub = Hub([tenant("jtj")])
    went_down = november.end(TZ) - timedelta(hours=1)
    open_report(hub, "jtj", november, went_down)
    # Back up on 3 January: the first usage seen is 2 cores.
    back = january.start(TZ) + timedelta(days=2)
    cache = usage.UsageCache()
    cache.observe("jtj-app", "q", "jtj", {"requests.cpu": "4"}, {"requests.cpu": "2"}, back)
    now = back + timedelta(seconds=30)

    result = metering.tick(hub, cache, CARD, SETTINGS, now=now)  # type: ignore[arg-type]
    assert not result.errors, result.errors

    closed = hub.reports["jtj-2026-11"]["status"]
    assert closed["closed"] is True
    assert closed["lastSampleTime"].startswith(november.end(TZ).strftime("%Y-%m-%dT%H:%M:%S"))
    assert cpu_hours(hub.reports["jtj-2026-11"]) == Decimal(2)  # the last hour, gap rule
    filled = hub.reports["jtj-2026-12"]["status"]
    assert filled["closed"] is True
    assert cpu_hours(hub.reports["jtj-2026-12"]) == Decimal(2 * 31 * 24)  # all of December
    assert Decimal(filled["gapSeconds"]) == 31 * 86400
    current = hub.reports["jtj-2027-01"]["status"]
    assert current["closed"] is False
    assert current["firstSampleTime"].startswith(january.start(TZ).strftime("%Y-%m-%dT%H:%M:%S"))
    elapsed = Decimal((now - january.start(TZ)).total_seconds())
    assert cpu_hours(hub.reports["jtj-2027-01"]) == (2 * elapsed / 3600).quantize(NINE)
    reasons = [event.reason for _, event in result.events]
    assert reasons.count("ReportClosed") == 2
    assert reasons.count("ReportOpened") == 2

    # The next tick only accrues January: nothing is closed, filled or counted twice.
    later = now + timedelta(seconds=60)
    again = metering.tick(hub, cache, CARD, SETTINGS, now=later)  # type: ignore[arg-type]
    assert not again.errors
    assert [event.reason for _, event in again.events] == []
    assert cpu_hours(hub.reports["jtj-2026-12"]) == Decimal(2 * 31 * 24)
    assert (
        cpu_hours(hub.reports["jtj-2027-01"])
        == 2 * Decimal((later - january.start(TZ)).total_seconds()) / 3600
    )
    assert hub.lists.count("govcloud.io/tenant=jtj") == 1  # the history is read once


def test_a_brand_new_tenant_is_metered_from_now_and_nothing_earlier_is_billed() -> None:
    hub = Hub([tenant("new")])
    now = datetime(2027, 1, 10, 8, 0, tzinfo=UTC)
    cache = usage.UsageCache()
    cache.observe("new-app", "q", "new", {"requests.cpu": "4"}, {"requests.cpu": "1"}, now)
    metering.tick(hub, cache, CARD, SETTINGS, now=now)  # type: ignore[arg-type]
    assert sorted(hub.reports) == ["new-2027-01"]
    metering.tick(hub, cache, CARD, SETTINGS, now=now + timedelta(hours=1))  # type: ignore[arg-type]
    assert cpu_hours(hub.reports["new-2027-01"]) == Decimal(1)
