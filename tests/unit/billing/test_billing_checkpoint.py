"""Writes only when due: skipping a tick's write loses nothing and counts nothing twice."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from _metering_hub import Hub, tenant

from govcloud.billing import accrual, checkpoint, periods, usage
from govcloud.reconcile import metering

TZ = periods.zone(8)
T0 = datetime(2027, 1, 10, 8, 0, tzinfo=UTC)
CARD: dict[str, Any] = {
    "metadata": {"name": "default", "generation": 1},
    "status": {"observedGeneration": 1},
    "spec": {
        "currency": "CNY",
        "rates": [
            {"resource": "requests.cpu", "price": "0.12", "effectiveFrom": "2026-01-01"},
            {"resource": "requests.cpu", "price": "0.15", "effectiveFrom": "2027-02-01"},
            {"resource": "requests.memory", "price": "0.015", "effectiveFrom": "2026-01-01"},
        ],
        "tierMultipliers": {"county": "0.8", "devzone": "0.9"},
    },
}
EXACT = Decimal("1e-7")  # each write rounds to 1e-9: a hundred writes stay far below this
SECONDS = Decimal("0.05")
RUNNING_FIGURES = ("allocatedHours", "requestedHours", "amount")


def settings(checkpoint_seconds: float) -> SimpleNamespace:
    return SimpleNamespace(
        billing_utc_offset_hours=8.0,
        metering_concurrency=4,
        metering_checkpoint_seconds=checkpoint_seconds,
    )


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def observe(
    cache: usage.UsageCache, name: str, cpu: str, moment: datetime, memory: str = "0"
) -> None:
    cache.observe(
        f"{name}-app",
        "govcloud-quota",
        name,
        {"requests.cpu": "4", "requests.memory": "8Gi"},
        {"requests.cpu": cpu, "requests.memory": memory},
        moment,
    )


def line(status: dict[str, Any], resource: str) -> dict[str, Any]:
    return next(item for item in status.get("resources") or [] if item["resource"] == resource)


def tick(
    hub: Hub, cache: usage.UsageCache, moment: datetime, every: float = 900, card: Any = None
) -> None:
    result = metering.tick(hub, cache, card or CARD, settings(every), now=moment)  # type: ignore[arg-type]
    assert not result.errors, result.errors


# -- the same figures as writing every tick ----------------------------------------------------


def simulate(every: float) -> tuple[Hub, dict[str, list[datetime]]]:
    """100 ticks over three tenants whose usage changes now and then, across a month end and
    a price change, one tenant's site unreadable for a while; the same run whatever `every`."""
    rng = random.Random(14)
    names = {"a": "city", "b": "county", "c": "devzone"}
    hub = Hub([tenant(name, tier) for name, tier in names.items()])
    cache = usage.UsageCache()
    start = periods.Period(2027, 1).end(TZ) - timedelta(minutes=55)  # 55 minutes before February
    moment = start
    for name in names:
        observe(cache, name, f"{rng.randrange(0, 800)}m", start, f"{rng.randrange(0, 2048)}Mi")
    ticks: dict[str, list[datetime]] = {"all": []}
    for number in range(100):
        for name in names:
            if rng.random() < 0.06:
                changed = moment + timedelta(seconds=rng.uniform(0, 5))
                observe(
                    cache, name, f"{rng.randrange(0, 800)}m", changed, f"{rng.randrange(0, 2048)}Mi"
                )
        if number == 40:
            cache.unreachable(["c"], moment + timedelta(seconds=2))
        if number == 47:
            cache.sync_cluster("site", [], ["c"], moment + timedelta(seconds=3))
        moment += timedelta(seconds=rng.uniform(10, 120))
        tick(hub, cache, moment, every)
        ticks["all"].append(moment)
    # One tick a checkpoint (of 15 minutes) later: whatever waited is written now.
    tick(hub, cache, moment + timedelta(minutes=15), every)
    return hub, ticks


def assert_hours(status: dict[str, Any], expected: Decimal) -> None:
    """Requested CPU hours as expected, but for the 1e-9 rounding of each of a few writes."""
    got = Decimal(line(status, "requests.cpu")["requestedHours"])
    assert abs(got - expected) < Decimal("1e-8"), (got, expected)


def figures(status: dict[str, Any]) -> dict[str, Any]:
    return {
        "charges": {item["resource"]: item["charge"] for item in status["resources"]},
        "total": status["total"],
        "unrated": status["unratedResources"],
        "closed": status["closed"],
    }


def assert_same_figures(skipping: dict[str, Any], every_tick: dict[str, Any]) -> None:
    assert figures(skipping) == figures(every_tick)  # to the fen
    for item in every_tick["resources"]:
        other = line(skipping, item["resource"])
        for key in RUNNING_FIGURES:
            assert abs(Decimal(other[key]) - Decimal(item[key])) < EXACT, (key, other, item)
    for key in ("gapSeconds", "unmeteredSeconds"):
        # Each write rounds the seconds to the millisecond: a hundred writes, < 0.05 s.
        assert abs(Decimal(skipping[key]) - Decimal(every_tick[key])) < SECONDS, key


def test_skipping_writes_the_same_figures_as_writing_every_tick() -> None:
    every_tick, _ = simulate(0)
    skipping, _ = simulate(900)
    assert sorted(skipping.reports) == sorted(every_tick.reports)
    # Every write of the skipping run says what writing every tick had said at that moment.
    for name, status in skipping.writes:
        same_moment = [
            written
            for written in every_tick.writes_of(name)
            if written["lastSampleTime"] == status["lastSampleTime"]
        ]
        assert same_moment, f"{name} at {status['lastSampleTime']} was not a tick"
        assert_same_figures(status, same_moment[-1])
    # And so does the end: January closed at the month end, February up to the last tick.
    for name, body in every_tick.reports.items():
        assert_same_figures(skipping.reports[name]["status"], body["status"])
        assert (
            skipping.reports[name]["status"]["lastSampleTime"] == body["status"]["lastSampleTime"]
        )
    assert skipping.reports["a-2027-01"]["status"]["closed"] is True
    assert (
        Decimal(line(skipping.reports["c-2027-02"]["status"], "requests.cpu")["requestedHours"]) > 0
    )
    assert Decimal(skipping.reports["c-2027-01"]["status"]["unmeteredSeconds"]) > 0
    # ... with far fewer writes.
    assert len(every_tick.writes) >= 3 * 100
    assert len(skipping.writes) < len(every_tick.writes) / 2, (
        len(skipping.writes),
        len(every_tick.writes),
    )


# -- when a report is written --------------------------------------------------------------


def steady_tenant(cpu: str = "300m") -> tuple[Hub, usage.UsageCache]:
    hub = Hub([tenant("jtj")])
    cache = usage.UsageCache()
    observe(cache, "jtj", cpu, T0)
    tick(hub, cache, T0)  # creates the report, metered from now
    tick(hub, cache, at(60))  # its lines appear: written
    return hub, cache


def test_a_steady_report_is_written_only_at_the_checkpoint_and_loses_nothing() -> None:
    hub, cache = steady_tenant()
    written_before = len(hub.writes)
    for minute in range(2, 31):
        tick(hub, cache, at(60 * minute))
    times = [status["lastSampleTime"] for _, status in hub.writes[written_before:]]
    # 300m at 0.12 CNY a core-hour: the charge reaches 0.005 (shown 0.01) at 500 s and 0.015
    # (0.02) at 1500 s; otherwise the report waits for the checkpoint, 900 s after its write.
    assert times == [accrual.timestamp(at(seconds)) for seconds in (540, 1440, 1500)]
    status = hub.reports["jtj-2027-01"]["status"]
    last = accrual.parse_time(status["lastSampleTime"])
    assert last is not None
    elapsed = Decimal((last - T0).total_seconds())
    assert_hours(status, Decimal("0.3") * elapsed / 3600)


def test_no_write_happens_between_checkpoints_while_nothing_billable_changes() -> None:
    hub, cache = steady_tenant(cpu="100m")  # 0.012 CNY an hour: no fen within 30 min
    written_before = len(hub.writes)
    for minute in range(2, 15):
        tick(hub, cache, at(60 * minute))
    assert len(hub.writes) == written_before
    tick(hub, cache, at(60 * 16))  # 15 minutes after the write at 1 min
    assert len(hub.writes) == written_before + 1
    assert hub.writes[-1][1]["lastSampleTime"] == accrual.timestamp(at(60 * 16))


def test_a_usage_change_is_written_on_the_next_tick() -> None:
    hub, cache = steady_tenant(cpu="100m")
    tick(hub, cache, at(120))
    written_before = len(hub.writes)
    observe(cache, "jtj", "200m", at(150))
    tick(hub, cache, at(180))
    assert len(hub.writes) == written_before + 1
    status = hub.writes[-1][1]
    # 100m from 0 to 150 s, 200m from 150 to 180 s: nothing of the skipped tick is lost.
    expected = (Decimal("0.1") * 150 + Decimal("0.2") * 30) / 3600
    assert_hours(status, expected)


def test_a_charge_that_moves_by_a_fen_is_written_every_tick() -> None:
    hub, cache = steady_tenant(cpu="4")  # 0.48 CNY an hour: 0.008 CNY a minute
    for minute in range(2, 8):
        before = hub.reports["jtj-2027-01"]["status"]["total"]
        tick(hub, cache, at(60 * minute))
        after = hub.reports["jtj-2027-01"]["status"]["total"]
        assert (after != before) == (
            hub.writes[-1][1]["lastSampleTime"] == accrual.timestamp(at(60 * minute))
        )


def test_the_timeline_is_trimmed_only_up_to_what_was_written() -> None:
    hub, cache = steady_tenant(cpu="100m")
    for minute in range(2, 10):
        tick(hub, cache, at(60 * minute))  # none written
    # The point in force since the last write (at 60 s) is still there to accrue from.
    assert [point.at for point in cache.timeline("jtj")] == [T0]
    observe(cache, "jtj", "1", at(600))
    tick(hub, cache, at(660))
    assert [point.at for point in cache.timeline("jtj")] == [at(600)]
    status = hub.reports["jtj-2027-01"]["status"]
    expected = (Decimal("0.1") * 600 + Decimal(1) * 60) / 3600
    assert_hours(status, expected)


def test_a_price_change_in_the_interval_is_written() -> None:
    hub = Hub([tenant("jtj")])
    cache = usage.UsageCache()
    change = periods.day_start(datetime(2027, 1, 12).date(), TZ)
    card = {**CARD, "spec": {**CARD["spec"], "rates": [
        {"resource": "requests.cpu", "price": "0.12", "effectiveFrom": "2026-01-01"},
        {"resource": "requests.cpu", "price": "0.13", "effectiveFrom": "2027-01-12"},
    ]}}  # fmt: skip
    observe(cache, "jtj", "100m", change - timedelta(minutes=5))
    tick(hub, cache, change - timedelta(minutes=4), card=card)
    tick(hub, cache, change - timedelta(minutes=3), card=card)
    written = len(hub.writes)
    tick(hub, cache, change - timedelta(minutes=2), card=card)
    assert len(hub.writes) == written
    tick(hub, cache, change + timedelta(minutes=1), card=card)
    assert len(hub.writes) == written + 1


def test_an_edited_rate_card_writes_every_report() -> None:
    hub, cache = steady_tenant(cpu="100m")
    written = len(hub.writes)
    edited = {**CARD, "metadata": {"name": "default", "generation": 2}}
    tick(hub, cache, at(120), card=edited)
    assert len(hub.writes) == written + 1
    tick(hub, cache, at(180))  # the card's status caught up: quiet again
    assert len(hub.writes) == written + 1


def test_the_month_close_is_written_however_recent_the_last_write() -> None:
    end = periods.Period(2027, 1).end(TZ)
    hub = Hub([tenant("jtj")])
    cache = usage.UsageCache()
    observe(cache, "jtj", "100m", end - timedelta(minutes=10))
    tick(hub, cache, end - timedelta(minutes=9))
    tick(hub, cache, end - timedelta(minutes=8))
    tick(hub, cache, end - timedelta(minutes=7))  # skipped
    tick(hub, cache, end + timedelta(seconds=30))
    closed = hub.reports["jtj-2027-01"]["status"]
    assert closed["closed"] is True
    assert closed["lastSampleTime"] == accrual.timestamp(end)
    assert_hours(closed, Decimal("0.1") * 9 * 60 / 3600)
    assert hub.reports["jtj-2027-02"]["status"]["lastSampleTime"] == accrual.timestamp(
        end + timedelta(seconds=30)
    )


def test_a_tenant_being_deleted_is_written_every_tick() -> None:
    hub, cache = steady_tenant(cpu="100m")
    hub.tenants = [tenant("jtj", deleting=True)]
    for minute in (2, 3, 4):
        tick(hub, cache, at(60 * minute))
        assert hub.writes[-1][1]["lastSampleTime"] == accrual.timestamp(at(60 * minute))


def test_a_tenant_gone_is_written_up_to_its_last_tick_once() -> None:
    hub, cache = steady_tenant(cpu="100m")
    tick(hub, cache, at(120))
    tick(hub, cache, at(180))  # the last tick that lists it: skipped
    hub.tenants = []
    cache.remove("jtj-app", "govcloud-quota", at(200))  # its namespace goes
    tick(hub, cache, at(240))
    status = hub.reports["jtj-2027-01"]["status"]
    assert status["lastSampleTime"] == accrual.timestamp(at(180))  # as every tick had it
    assert_hours(status, Decimal("0.1") * 180 / 3600)
    assert cache.unlisted([]) == {}
    written = len(hub.writes)
    tick(hub, cache, at(300))
    assert len(hub.writes) == written


def test_shown_ignores_the_running_sums_only() -> None:
    old = {
        "total": "0.01",
        "samples": 3,
        "lastSampleTime": "a",
        "resources": [{"resource": "requests.cpu", "requestedHours": "1", "charge": "0.01"}],
    }
    running = {**old, "samples": 4, "lastSampleTime": "b", "resources": [
        {"resource": "requests.cpu", "requestedHours": "1.000000001", "charge": "0.01"}
    ]}  # fmt: skip
    assert checkpoint.shown(running) == checkpoint.shown(old)
    fen = {**running, "total": "0.02"}
    assert checkpoint.shown(fen) != checkpoint.shown(old)
    line_charge = {**running, "resources": [{"resource": "requests.cpu", "charge": "0.02"}]}
    assert checkpoint.shown(line_charge) != checkpoint.shown(old)


# -- a thousand tenants ------------------------------------------------------------------------


def test_a_tick_over_a_thousand_steady_tenants_writes_nothing_and_takes_well_under_a_second() -> (
    None
):
    hub = Hub([tenant(f"t{number:04d}") for number in range(1000)])
    hub.list = lambda api_version, kind, *_, **__: (  # type: ignore[method-assign]
        hub.tenants if kind == "CloudTenant" else list(hub.reports.values())
    )
    cache = usage.UsageCache()
    for number in range(1000):
        observe(cache, f"t{number:04d}", "300m", T0, "192Mi")
    tick(hub, cache, T0)
    tick(hub, cache, at(60))
    written = len(hub.writes)
    began = time.process_time()
    tick(hub, cache, at(120))
    took = time.process_time() - began
    assert len(hub.writes) == written
    assert took < 2.0, took  # about 0.1 s of CPU; the budget of a whole tick is 10 s
