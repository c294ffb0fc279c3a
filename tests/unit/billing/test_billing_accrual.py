"""Metering math with an injected clock: exact integrals, price changes, gaps, restarts."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from govcloud.api.v1alpha1 import ratecard
from govcloud.billing import accrual, periods, rating, usage

T0 = datetime(2027, 1, 10, 8, 0, tzinfo=UTC)
TZ = periods.zone(8)
GI = Decimal(1024**3)


def card(**overrides: object) -> rating.RateTable:
    spec: dict[str, object] = {
        "rates": [
            {"resource": "requests.cpu", "price": "0.12", "effectiveFrom": "2026-01-01"},
            {"resource": "requests.memory", "price": "0.02", "effectiveFrom": "2026-01-01"},
        ],
        "tierMultipliers": {"county": "0.5"},
    }
    spec.update(overrides)
    return rating.table(ratecard.RateCardSpec.model_validate(spec), TZ)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def run_ticks(
    cache: usage.UsageCache,
    tenant: str,
    start: datetime,
    ticks: list[datetime],
    table: rating.RateTable,
) -> accrual.Report:
    """Accrue tick by tick, round-tripping through the stored status like the operator does."""
    report = accrual.Report(last_sample=start)
    for moment in ticks:
        report = accrual.accrue(report, cache.timeline(tenant), moment, table, "city")
        status = accrual.to_status(
            report, tier="city", currency="CNY", period_start=start, period_end=at(10**6)
        )
        report = accrual.from_status(status, default_start=start)
        cache.trim(tenant, report.last_sample)
    return report


def test_three_pods_of_100m_for_60_seconds_bill_exactly_whatever_the_tick_phase() -> None:
    cache = usage.UsageCache()
    cache.observe(
        "jtj-app", "govcloud-quota", "jtj", {"requests.cpu": "4"}, {"requests.cpu": "0"}, T0
    )
    # Pods are admitted 3.3 s after a tick and deleted 60 s later; ticks every 10 s.
    cache.observe(
        "jtj-app", "govcloud-quota", "jtj", {"requests.cpu": "4"}, {"requests.cpu": "300m"}, at(3.3)
    )
    cache.observe(
        "jtj-app", "govcloud-quota", "jtj", {"requests.cpu": "4"}, {"requests.cpu": "0"}, at(63.3)
    )
    report = run_ticks(cache, "jtj", T0, [at(10 * n) for n in range(1, 10)], card())

    analytic = Decimal("0.3") * 60 / 3600  # core-hours
    billed = report.lines["requests.cpu"].requested_hours
    assert abs(billed - analytic) / analytic < Decimal("0.01")
    assert abs(billed - analytic) < Decimal("1e-8")  # exact but for 9-decimal storage
    assert abs(report.lines["requests.cpu"].allocated_hours - Decimal(4) * 90 / 3600) < Decimal(
        "1e-8"
    )
    assert report.samples == 9
    assert report.lines["requests.cpu"].charge == (analytic * Decimal("0.12")).quantize(
        Decimal("0.01")
    )


def test_memory_is_billed_in_gib_hours() -> None:
    cache = usage.UsageCache()
    cache.observe("a-x", "q", "a", {}, {"requests.memory": "8Gi"}, T0)
    report = run_ticks(cache, "a", T0, [at(1800), at(3600)], card())
    assert report.lines["requests.memory"].requested_hours == Decimal(8)
    assert report.lines["requests.memory"].unit == "GiB"
    assert report.total == Decimal("0.16")


def test_usage_across_namespaces_adds_up() -> None:
    cache = usage.UsageCache()
    cache.observe("a-x", "q", "a", {}, {"requests.cpu": "1"}, T0)
    cache.observe("a-y", "q", "a", {}, {"requests.cpu": "2"}, T0)
    cache.observe("b-x", "q", "b", {}, {"requests.cpu": "5"}, T0)
    report = run_ticks(cache, "a", T0, [at(3600)], card())
    assert report.lines["requests.cpu"].requested_hours == 3


def test_a_price_change_mid_interval_rates_each_part_at_its_own_price() -> None:
    # 2027-01-11 00:00 in UTC+8 is 2027-01-10 16:00 UTC: 8 h after T0.
    table = card(
        rates=[
            {"resource": "requests.cpu", "price": "0.10", "effectiveFrom": "2026-01-01"},
            {"resource": "requests.cpu", "price": "0.20", "effectiveFrom": "2027-01-11"},
        ]
    )
    cache = usage.UsageCache()
    cache.observe("a-x", "q", "a", {}, {"requests.cpu": "1"}, T0)
    report = run_ticks(cache, "a", T0, [at(12 * 3600)], table)
    assert report.lines["requests.cpu"].amount == Decimal("0.8") + Decimal("0.8")


def test_the_tier_multiplier_applies() -> None:
    cache = usage.UsageCache()
    cache.observe("a-x", "q", "a", {}, {"requests.cpu": "10"}, T0)
    report = accrual.accrue(
        accrual.Report(last_sample=T0), cache.timeline("a"), at(3600), card(), "county"
    )
    assert report.lines["requests.cpu"].amount == Decimal("0.6")


def test_a_restart_neither_resets_nor_double_counts() -> None:
    """The increment starts at the stored lastSampleTime; the gap is billed at the usage after."""
    cache = usage.UsageCache()
    cache.observe("a-x", "q", "a", {}, {"requests.cpu": "2"}, T0)
    before = run_ticks(cache, "a", T0, [at(600)], card())
    stored = accrual.to_status(
        before, tier="city", currency="CNY", period_start=T0, period_end=at(10**6)
    )
    # The operator dies at 600 s and is back at 1500 s: a new, empty cache, the same usage.
    fresh = usage.UsageCache()
    fresh.observe("a-x", "q", "a", {}, {"requests.cpu": "2"}, at(1500))
    after = accrual.accrue(
        accrual.from_status(stored, default_start=at(1500)),
        fresh.timeline("a"),
        at(1800),
        card(),
        "city",
    )
    assert after.lines["requests.cpu"].requested_hours == Decimal(1)  # 2 cores x 30 min
    assert after.gap_seconds == Decimal(900)
    assert after.samples == 2
    # Repeating the same tick from the same stored state gives the same result, not more.
    again = accrual.accrue(
        accrual.from_status(stored, default_start=at(1500)),
        fresh.timeline("a"),
        at(1800),
        card(),
        "city",
    )
    assert again == after


def test_nothing_accrues_for_an_empty_interval_or_no_usage_known() -> None:
    report = accrual.Report(last_sample=T0)
    assert accrual.accrue(report, [], at(60), card(), "city") is report
    cache = usage.UsageCache()
    cache.observe("a-x", "q", "a", {}, {"requests.cpu": "1"}, T0)
    assert accrual.accrue(report, cache.timeline("a"), T0, card(), "city") is report


def test_requested_resources_without_a_rate_are_recorded_not_charged() -> None:
    cache = usage.UsageCache()
    cache.observe("a-x", "q", "a", {}, {"requests.nvidia.com/gpu": "1", "requests.cpu": "1"}, T0)
    report = accrual.accrue(
        accrual.Report(last_sample=T0), cache.timeline("a"), at(3600), card(), "city"
    )
    assert report.unrated == ("requests.nvidia.com/gpu",)
    assert report.lines["requests.nvidia.com/gpu"].requested_hours == 1
    assert report.lines["requests.nvidia.com/gpu"].amount == 0
    status, reason, message = accrual.rated_condition(report.unrated)
    assert (status, reason) == ("False", "MissingRate")
    assert "requests.nvidia.com/gpu" in message


def test_status_round_trip_is_lossless() -> None:
    cache = usage.UsageCache()
    cache.observe("a-x", "q", "a", {"requests.cpu": "4"}, {"requests.cpu": "1500m"}, T0)
    report = accrual.accrue(
        accrual.Report(last_sample=T0), cache.timeline("a"), at(777), card(), "city"
    )
    status = accrual.to_status(
        report, tier="city", currency="CNY", period_start=T0, period_end=at(1)
    )
    assert accrual.from_status(status, default_start=T0) == report
    assert status["total"] == "0.04"
    assert status["closed"] is False


def test_money_rounds_half_up_to_the_fen() -> None:
    assert accrual.money(Decimal("0.125")) == "0.13"
    assert accrual.money(Decimal("3")) == "3.00"
    assert accrual.fmt(Decimal("12.5000")) == "12.5"


@pytest.mark.parametrize(
    ("moment", "name"),
    [
        (datetime(2026, 12, 31, 15, 59, tzinfo=UTC), "2026-12"),
        (datetime(2026, 12, 31, 16, 0, tzinfo=UTC), "2027-01"),  # midnight in Hefei
    ],
)
def test_periods_are_months_in_the_billing_time_zone(moment: datetime, name: str) -> None:
    assert periods.period_of(moment, TZ).name == name


def test_period_arithmetic() -> None:
    january = periods.parse("2027-01")
    assert january.previous().name == "2026-12"
    assert periods.parse("2026-12").next() == january
    assert january.start(TZ) == datetime(2026, 12, 31, 16, 0, tzinfo=UTC)
    assert periods.day_start(date(2027, 1, 1), TZ) == january.start(TZ)
    with pytest.raises(ValueError, match="YYYY-MM"):
        periods.parse("2027-13")


def test_integrate_bills_the_gap_before_the_first_point_at_its_usage() -> None:
    points = [usage.Point(at(100), {}, {"requests.cpu": Decimal(2)})]
    integral = usage.integrate(points, T0, at(200))
    assert integral.used["requests.cpu"] == 400
    assert integral.gap_seconds == 100


def test_cache_trim_keeps_the_point_in_force() -> None:
    cache = usage.UsageCache()
    for second in range(5):
        cache.observe("a-x", "q", "a", {}, {"requests.cpu": str(second + 1)}, at(second))
    cache.trim("a", at(2.5))
    assert [point.at for point in cache.timeline("a")] == [at(2), at(3), at(4)]
    cache.remove("a-x", "q", at(10))
    assert cache.timeline("a")[-1].used == {}
