"""The annual assessment's metrics from metering ticks: what `report assessment` says, from the
year's earlier months read once (at start, then once a month) and what each tick holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from _metering_hub import Hub

from govcloud.billing import assessment, periods, usage
from govcloud.reconcile import metering

TZ = periods.zone(8)
CARD = {
    "spec": {
        "currency": "CNY",
        "rates": [{"resource": "requests.cpu", "price": "0.12", "effectiveFrom": "2026-01-01"}],
    }
}
SETTINGS = SimpleNamespace(billing_utc_offset_hours=8.0, metering_checkpoint_seconds=0)
LABEL = "govcloud.io/period"


def tenant(name: str, uid: str, tier: str = "city", **rollup: int) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "uid": uid},
        "spec": {"displayName": f"{name}局", "unit": {"code": name, "tier": tier}},
        "status": {"migrations": {"planned": 0, "completed": 0, "overdue": 0, **rollup}},
    }


def closed(hub: Hub, name: str, period: str, allocated: str, requested: str, total: str) -> None:
    """A closed report of an earlier month, as metering left it (of another tenant's UID: the
    tick's roll-over leaves it alone, the assessment counts it by name like the CLI)."""
    report = f"{name}-{period}"
    hub.reports[report] = {
        "metadata": {
            "name": report,
            "resourceVersion": "1",
            "labels": {"govcloud.io/tenant": name, LABEL: period},
        },
        "spec": {"tenant": name, "period": period, "tenantUID": "earlier-uid"},
        "status": {
            "closed": True,
            "tier": "city",
            "total": total,
            "resources": [
                {
                    "resource": "requests.cpu",
                    "allocatedHours": allocated,
                    "requestedHours": requested,
                }
            ],
        },
    }


def approved(name: str, year: int, cost: str, *apps: dict[str, Any]) -> dict[str, Any]:
    return {
        "spec": {"tenant": name, "year": year},
        "status": {
            "review": {"state": "Approved"},
            "estimatedAnnualCost": cost,
            "migrations": list(apps),
        },
    }


def as_the_cli_says(hub: Hub, now: datetime) -> dict[str, Any]:
    """What `report assessment` computes from every report of the year, per existing tenant."""
    year = periods.period_of(now, TZ).year
    rows = assessment.build(
        year,
        hub.tenants,
        list(hub.reports.values()),
        hub.plans,
        now.astimezone(TZ).date(),
        assessment.Rule(),
    )
    names = {item["metadata"]["name"] for item in hub.tenants}
    return {row.tenant: metering.assessment_snapshot(row) for row in rows if row.tenant in names}


def scene() -> tuple[Hub, usage.UsageCache]:
    hub = Hub([tenant("busy", "u-busy", overdue=1), tenant("idle", "u-idle", "county")])
    for month in range(1, 11):
        closed(hub, "busy", f"2026-{month:02d}", "1440", str(100 * month), f"{month}.50")
    closed(hub, "idle", "2026-03", "1000", "900", "3.00")
    closed(hub, "gone", "2026-04", "10", "10", "9.99")
    closed(hub, "busy", "2025-12", "1", "1", "100.00")  # last year
    hub.plans = [
        approved("busy", 2026, "500.00"),
        approved("idle", 2026, "20.00", {"app": "档案", "targetDate": "2026-06-30"}),
        approved("busy", 2025, "1.00"),
    ]
    cache = usage.UsageCache()
    return hub, cache


def observe(cache: usage.UsageCache, at: datetime, *names: str) -> None:
    for name in names:
        cache.observe(f"{name}-app", "q", name, {"requests.cpu": "4"}, {"requests.cpu": "1"}, at)


def tick(hub: Hub, cache: usage.UsageCache, now: datetime, held: assessment.EarlierMonths) -> Any:
    result = metering.tick(hub, cache, CARD, SETTINGS, now=now, earlier_months=held)  # type: ignore[arg-type]
    assert not result.errors, result.errors
    assert result.assessed
    return result


def test_each_tick_assesses_every_tenant_as_the_cli_does_reading_earlier_months_once() -> None:
    hub, cache = scene()
    start = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)  # 23:00 on 30 November in the zone
    observe(cache, start - timedelta(hours=1), "busy", "idle")
    held = assessment.EarlierMonths()
    earlier = f"{LABEL} in ({','.join(f'2026-{m:02d}' for m in range(1, 10))})"

    first = tick(hub, cache, start, held)
    assert hub.lists.count(earlier) == 1
    assert first.assessments == as_the_cli_says(hub, start)
    busy, idle = first.assessments["busy"], first.assessments["idle"]
    assert busy.spend > sum(month + 0.5 for month in range(1, 10))  # and October, and November
    assert (busy.lagging, busy.reasons) == (True, 1)  # one migration overdue
    assert (idle.lagging, idle.reasons) == (True, 1)  # a planned app with no MigrationPlan
    assert idle.payer == "county:(no region)"
    assert "gone" not in first.assessments
    assert "gone" not in held.sums()
    assert set(held.sums()) == {"busy", "idle"}

    # At rest, a tick reads nothing more than before: its one LIST of this and last month.
    lists = len(hub.lists)
    later = start + timedelta(minutes=30)
    second = tick(hub, cache, later, held)
    assert len(hub.lists) == lists + 1
    assert second.assessments == as_the_cli_says(hub, later)
    assert second.assessments["busy"].spend > busy.spend  # November goes on

    # The month turns: October becomes an earlier month, read with the others once.
    december = datetime(2026, 12, 1, 0, 30, tzinfo=UTC)
    third = tick(hub, cache, december, held)
    assert hub.lists.count(f"{LABEL} in ({','.join(f'2026-{m:02d}' for m in range(1, 11))})") == 1
    assert third.assessments == as_the_cli_says(hub, december)
    fourth = tick(hub, cache, december + timedelta(minutes=5), held)
    assert len(hub.lists) == lists + 4  # three ticks, one month turn
    assert fourth.assessments == as_the_cli_says(hub, december + timedelta(minutes=5))


def test_a_tenant_met_later_counts_its_names_earlier_months_and_a_gone_one_is_dropped() -> None:
    hub, cache = scene()
    now = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)
    observe(cache, now - timedelta(hours=1), "busy", "idle")
    held = assessment.EarlierMonths()
    tick(hub, cache, now, held)
    assert "gone" not in held.sums()
    # A tenant of the name `gone` is created: its first tick lists its reports (to catch
    # up), and the assessment learns its earlier months from that same LIST.
    hub.tenants.append(tenant("gone", "u-new"))
    observe(cache, now, "gone")
    later = now + timedelta(minutes=10)
    lists = len(hub.lists)
    found = tick(hub, cache, later, held).assessments
    assert hub.lists[lists:] == [f"{LABEL} in (2026-12,2026-11)", "govcloud.io/tenant=gone"]
    assert found == as_the_cli_says(hub, later)
    assert found["gone"].spend >= 9.99
    # Deleted: dropped from what is held and from the tick's assessments.
    hub.tenants = [item for item in hub.tenants if item["metadata"]["name"] != "idle"]
    gone = tick(hub, cache, later + timedelta(minutes=1), held)
    assert "idle" not in gone.assessments
    assert "idle" not in held.sums()
    # Without the store (as before), a tick assesses nothing.
    plain = metering.tick(hub, cache, CARD, SETTINGS, now=later + timedelta(minutes=2))  # type: ignore[arg-type]
    assert (plain.assessed, plain.assessments) == (False, {})


def test_months_caught_up_after_an_outage_are_read_again_so_nothing_is_missed() -> None:
    hub, cache = scene()
    # `late` went down in September with its report open; back on 7 December.
    hub.tenants.append(tenant("late", "u-late"))
    hub.reports["late-2026-09"] = {
        "metadata": {
            "name": "late-2026-09",
            "resourceVersion": "1",
            "labels": {"govcloud.io/tenant": "late", LABEL: "2026-09"},
        },
        "spec": {"tenant": "late", "period": "2026-09", "tenantUID": "u-late"},
        "status": {"lastSampleTime": "2026-09-20T00:00:00Z", "samples": 3, "total": "1.00"},
    }
    now = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)
    observe(cache, now - timedelta(hours=1), "busy", "idle")
    held = assessment.EarlierMonths()
    earlier = f"{LABEL} in ({','.join(f'2026-{m:02d}' for m in range(1, 11))})"
    tick(hub, cache, now - timedelta(minutes=1), held)  # `late` has no usage yet: not metered
    assert hub.lists.count(earlier) == 1
    observe(cache, now - timedelta(seconds=30), "late")
    first = tick(hub, cache, now, held)
    # September closed, October filled (earlier months), November filled, December opened.
    assert hub.reports["late-2026-09"]["status"]["closed"] is True
    assert hub.reports["late-2026-10"]["status"]["closed"] is True
    assert hub.lists.count(earlier) == 2  # held at start, read again after catching up
    assert first.assessments == as_the_cli_says(hub, now)
    lists = len(hub.lists)
    later = now + timedelta(minutes=1)
    assert tick(hub, cache, later, held).assessments == as_the_cli_says(hub, later)
    assert len(hub.lists) == lists + 1
