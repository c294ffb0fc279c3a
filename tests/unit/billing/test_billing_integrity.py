"""Billing integrity (review M5, L6): the server's time, reports keyed by tenant UID, gone
tenants closed, AlreadyExists an error, no usage point dropped, memory bounded under churn."""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from _metering_hub import Hub, tenant

from govcloud.billing import accrual, periods, usage
from govcloud.reconcile import metering

TZ = periods.zone(8)
T0 = datetime(2027, 1, 10, 8, 0, tzinfo=UTC)  # January 2027 in the billing zone
JANUARY = "2027-01"
CARD: dict[str, Any] = {
    "metadata": {"name": "default", "generation": 1},
    "status": {"observedGeneration": 1},
    "spec": {
        "currency": "CNY",
        "rates": [{"resource": "requests.cpu", "price": "0.12", "effectiveFrom": "2026-01-01"}],
    },
}
SETTINGS = SimpleNamespace(
    billing_utc_offset_hours=8.0, metering_concurrency=2, metering_checkpoint_seconds=0
)
OLD_UID = "11111111-1111-4111-8111-111111111111"
NEW_UID = "22222222-2222-4222-8222-222222222222"
EXACT = Decimal("1e-7")
# Tenants created and deleted in the churn test; `make soak` sets more.
CHURN_ROUNDS = int(os.environ.get("GOVCLOUD_SOAK_BILLING_CHURN", "100"))


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def observe(cache: usage.UsageCache, name: str, cpu: str, moment: datetime) -> None:
    cache.observe(
        f"{name}-app", "govcloud-quota", name, {"requests.cpu": "4"}, {"requests.cpu": cpu}, moment
    )


def tick(hub: Hub, cache: usage.UsageCache, moment: datetime) -> metering.TickResult:
    return metering.tick(hub, cache, CARD, SETTINGS, now=moment)  # type: ignore[arg-type]


def cpu_hours(status: dict[str, Any]) -> Decimal:
    for line in status.get("resources") or []:
        if line["resource"] == "requests.cpu":
            return Decimal(line["requestedHours"])
    return Decimal(0)


# -- (a) the API server's time ----------------------------------------------------------------


def dated(server: Any) -> Any:
    """A reading of the `Date` header (whole seconds) of a server whose time is `server()`."""

    def read(_hub: Any) -> datetime:
        reads.append(1)
        return server().replace(microsecond=0)

    reads: list[int] = []
    read.reads = reads  # type: ignore[attr-defined]
    return read


def unreadable(_hub: Any) -> datetime:
    raise metering.ClockError("the API server's time cannot be read: down")


def test_the_clock_follows_the_api_servers_date_not_the_node() -> None:
    year = timedelta(days=365)
    local = T0 + year  # the node is a year fast
    clock = metering.ServerClock(local=lambda: local, read=dated(lambda: T0))
    offset = clock.measure(Hub([]))  # type: ignore[arg-type]
    assert abs(offset + year) <= timedelta(seconds=1)
    assert abs(clock.now() - T0) <= timedelta(seconds=1)


def test_an_offset_within_the_dates_rounding_is_no_offset() -> None:
    # The header says T0: the server is somewhere in [T0, T0 + 1 s).
    clock = metering.ServerClock(
        local=lambda: T0 + timedelta(microseconds=900_000), read=dated(lambda: T0)
    )
    assert clock.measure(Hub([])) == timedelta(0)  # type: ignore[arg-type]
    assert clock.now() == T0 + timedelta(microseconds=900_000)


def test_a_node_a_year_fast_closes_no_month_and_opens_no_future_one() -> None:
    year = timedelta(days=365)
    hub = Hub([tenant("jtj")])
    cache = usage.UsageCache()
    observe(cache, "jtj", "1", at(0))
    tick(hub, cache, at(60))  # a healthy tick: this month's report
    read = dated(lambda: at(120))
    clock = metering.ServerClock(local=lambda: at(120) + year, read=read)
    result = metering.tick(hub, cache, CARD, SETTINGS, clock=clock)  # type: ignore[arg-type]
    assert not result.errors, result.errors
    assert sorted(hub.reports) == [f"jtj-{JANUARY}"]
    status = hub.reports[f"jtj-{JANUARY}"]["status"]
    assert status["closed"] is False
    assert status["lastSampleTime"].startswith(stamp(at(120))[:-1])  # the server's time
    assert len(read.reads) == 1


def test_a_tick_without_the_servers_time_meters_nothing_and_says_why() -> None:
    hub = Hub([tenant("jtj")])
    cache = usage.UsageCache()
    observe(cache, "jtj", "1", at(0))
    clock = metering.ServerClock(read=unreadable)
    result = metering.tick(hub, cache, CARD, SETTINGS, clock=clock)  # type: ignore[arg-type]
    assert len(result.errors) == 1
    assert "time cannot be read" in result.errors[0]
    assert hub.reports == {}


# -- (c) AlreadyExists is an error -------------------------------------------------------------


def test_a_taken_report_name_is_an_error_with_a_warning_every_tick_not_a_conflict() -> None:
    hub = Hub([tenant("jtj", uid=OLD_UID)])
    # Someone made (or relabelled) jtj's report: not listed under the period label.
    hub.create({"metadata": {"name": f"jtj-{JANUARY}", "labels": {}}, "spec": {}})
    cache = usage.UsageCache()
    observe(cache, "jtj", "1", at(0))
    for moment in (at(60), at(120)):
        result = tick(hub, cache, moment)
        assert result.conflicts == 0
        assert len(result.errors) == 1
        assert "already exists" in result.errors[0]
        warnings = [(body, event) for body, event in result.events if event.type == "Warning"]
        assert [event.reason for _, event in warnings] == ["UsageReportExists"]
        assert warnings[0][0]["metadata"]["name"] == "jtj"  # posted on the tenant


# -- (d) reports keyed by the tenant's UID; gone tenants closed --------------------------------


def test_a_recreated_tenant_gets_its_own_report_and_the_gap_is_not_its_bill() -> None:
    hub = Hub([tenant("jtj", uid=OLD_UID, created=stamp(at(-3600)))])
    cache = usage.UsageCache()
    observe(cache, "jtj", "2", at(0))
    tick(hub, cache, at(60))
    tick(hub, cache, at(120))
    old = f"jtj-{JANUARY}"
    assert hub.reports[old]["spec"]["tenantUID"] == OLD_UID
    assert hub.reports[old]["metadata"]["labels"]["govcloud.io/tenant-uid"] == OLD_UID
    # jtj is deleted; an hour later a new jtj (another UID) is created with 1 core.
    cache.remove("jtj-app", "govcloud-quota", at(130))
    hub.tenants = []
    tick(hub, cache, at(180))
    assert hub.reports[old]["status"]["closed"] is True
    assert hub.reports[old]["status"]["lastSampleTime"] == accrual.timestamp(at(120))
    hub.tenants = [tenant("jtj", uid=NEW_UID, created=stamp(at(3600)))]
    observe(cache, "jtj", "1", at(3605))
    tick(hub, cache, at(3660))
    tick(hub, cache, at(3720))
    new = f"jtj-{JANUARY}-{NEW_UID}"
    assert sorted(hub.reports) == [old, new]
    status = hub.reports[new]["status"]
    assert hub.reports[new]["spec"] == {"tenant": "jtj", "period": JANUARY, "tenantUID": NEW_UID}
    assert status["firstSampleTime"] == accrual.timestamp(at(3660))  # from its own first tick
    assert Decimal(status["gapSeconds"]) == 0
    assert abs(cpu_hours(status) - Decimal(60) / 3600) < EXACT
    # 2 cores from its first tick (60) to its last (120); nothing after it went
    assert abs(cpu_hours(hub.reports[old]["status"]) - Decimal(2) * 60 / 3600) < EXACT


def test_a_tenant_recreated_between_two_ticks_closes_the_old_report() -> None:
    hub = Hub([tenant("jtj", uid=OLD_UID, created=stamp(at(-60)))])
    cache = usage.UsageCache()
    observe(cache, "jtj", "2", at(0))
    tick(hub, cache, at(60))
    hub.tenants = [tenant("jtj", uid=NEW_UID, created=stamp(at(90)))]
    result = tick(hub, cache, at(120))
    assert not result.errors, result.errors
    assert hub.reports[f"jtj-{JANUARY}"]["status"]["closed"] is True
    assert hub.reports[f"jtj-{JANUARY}-{NEW_UID}"]["status"]["closed"] is False


def legacy_report(hub: Hub, name: str, created: datetime, last: datetime) -> str:
    """A report as an earlier release wrote it: no tenantUID, no UID label."""
    report = f"{name}-{JANUARY}"
    hub.create(
        {
            "metadata": {
                "name": report,
                "creationTimestamp": stamp(created),
                "labels": {"govcloud.io/tenant": name, "govcloud.io/period": JANUARY},
            },
            "spec": {"tenant": name, "period": JANUARY},
        }
    )
    hub.reports[report]["status"] = {
        "lastSampleTime": accrual.timestamp(last),
        "samples": 3,
        "resources": [
            {"resource": "requests.cpu", "unit": "core", "requestedHours": "1", "amount": "0.12"}
        ],
    }
    return report


def test_a_report_from_an_earlier_release_is_continued_without_a_rewrite_or_a_lost_hour() -> None:
    hub = Hub([tenant("jtj", uid=OLD_UID, created=stamp(at(-7200)))])
    report = legacy_report(hub, "jtj", created=at(-7000), last=at(0))
    before = dict(hub.reports[report]["metadata"]), dict(hub.reports[report]["spec"])
    cache = usage.UsageCache()
    observe(cache, "jtj", "2", at(-10))
    tick(hub, cache, at(60))
    assert sorted(hub.reports) == [report]  # no second report
    assert (hub.reports[report]["metadata"]["labels"], hub.reports[report]["spec"]) == (
        before[0]["labels"],
        before[1],
    )  # the spec and labels as the earlier release wrote them
    status = hub.reports[report]["status"]
    assert status["closed"] is False
    assert abs(cpu_hours(status) - (1 + Decimal(2) * 60 / 3600)) < EXACT  # every hour since


def test_an_earlier_releases_report_of_a_previous_tenant_of_that_name_is_not_continued() -> None:
    hub = Hub([tenant("jtj", uid=NEW_UID, created=stamp(at(0)))])
    old = legacy_report(hub, "jtj", created=at(-7000), last=at(-3600))
    cache = usage.UsageCache()
    observe(cache, "jtj", "1", at(5))
    result = tick(hub, cache, at(60))
    assert not result.errors, result.errors
    assert hub.reports[old]["status"]["closed"] is True
    assert cpu_hours(hub.reports[old]["status"]) == 1  # closed as written, nothing added
    tick(hub, cache, at(120))
    new = hub.reports[f"jtj-{JANUARY}-{NEW_UID}"]["status"]
    assert new["firstSampleTime"] == accrual.timestamp(at(60))  # metered from its first tick
    assert abs(cpu_hours(new) - Decimal(60) / 3600) < EXACT


def test_a_deleted_tenants_report_is_closed_even_after_a_restart() -> None:
    hub = Hub([])
    legacy_report(hub, "gone", created=at(-7000), last=at(-3600))
    result = tick(hub, usage.UsageCache(), at(60))  # a fresh operator: nothing in memory
    assert not result.errors, result.errors
    status = hub.reports[f"gone-{JANUARY}"]["status"]
    assert status["closed"] is True
    assert status["closedAt"] == accrual.timestamp(at(60))
    assert [event.reason for _, event in result.events] == ["ReportClosed"]
    assert not tick(hub, usage.UsageCache(), at(120)).events  # closed once


# -- (e) no usage point dropped -------------------------------------------------------------


def test_thousands_of_steps_in_one_tick_are_merged_never_dropped() -> None:
    rng = random.Random(13)
    cache = usage.UsageCache()
    exact: list[usage.Point] = []
    moment = at(0)
    for _ in range(usage.MAX_POINTS * 3):
        cpu = str(rng.randint(0, 40) * 100) + "m"
        observe(cache, "churny", cpu, moment)
        exact.append(
            usage.Point(
                moment, {"requests.cpu": Decimal(4)}, usage.parse_amounts({"requests.cpu": cpu})
            )
        )
        moment += timedelta(milliseconds=rng.randint(1, 50))
    kept = cache.timeline("churny")
    assert len(kept) <= usage.MAX_POINTS
    assert kept[0].at == exact[0].at  # the oldest span is still there (was dropped before)
    whole = usage.integrate(exact, at(0), moment)
    merged = usage.integrate(kept, at(0), moment)
    assert abs(merged.used["requests.cpu"] - whole.used["requests.cpu"]) < Decimal("1e-12")
    assert merged.hard == whole.hard
    assert merged.gap_seconds == whole.gap_seconds == 0


def test_merging_keeps_known_and_unknown_apart() -> None:
    timeline = [
        usage.Point(at(0), {}, {"requests.cpu": Decimal(1)}),
        usage.Point(at(1), {}, {"requests.cpu": Decimal(2)}),
        usage.Point(at(2), known=False),
        usage.Point(at(3), {}, {"requests.cpu": Decimal(4)}),
        usage.Point(at(5), {}, {"requests.cpu": Decimal(8)}),
        usage.Point(at(6), {}, {"requests.cpu": Decimal(0)}),
    ]
    before = usage.integrate(timeline, at(0), at(7))
    assert usage.merge(timeline)  # at(3) and at(5) merge: at(0) is never merged, at(2) is unknown
    assert [point.at for point in timeline] == [at(0), at(1), at(2), at(3), at(6)]
    assert timeline[3].used["requests.cpu"] == Decimal("16") / 3  # 4 for 2 s, 8 for 1 s
    assert usage.integrate(timeline, at(0), at(7)) == before


# -- (f) L6: one tenant's event reads one tenant's quotas; churn does not grow memory --------


class CountingDict(dict[Any, Any]):
    """A dict that counts walks over all of it."""

    walks = 0

    def values(self) -> Any:
        CountingDict.walks += 1
        return super().values()

    def items(self) -> Any:
        CountingDict.walks += 1
        return super().items()

    def __iter__(self) -> Any:
        CountingDict.walks += 1
        return super().__iter__()


def test_a_quota_event_sums_its_own_tenants_quotas_not_every_quota() -> None:
    cache = usage.UsageCache()
    for index in range(500):
        observe(cache, f"t{index}", "1", at(0))
    cache._quotas = CountingDict(cache._quotas)  # the walk is the behaviour
    CountingDict.walks = 0
    for second in range(1, 50):
        observe(cache, "t7", f"{second}m", at(second))
        cache.remove("t8-app", "govcloud-quota", at(second))
    assert CountingDict.walks == 0
    assert cache.timeline("t7")[-1].used == {"requests.cpu": Decimal("0.049")}


def test_tenant_churn_leaves_the_cache_no_bigger() -> None:
    """CHURN_ROUNDS rounds: each creates a tenant, meters it, deletes one. The cache ends
    holding the live tenants only, and every deleted tenant's report is closed."""
    hub = Hub([])
    cache = usage.UsageCache()
    live: list[dict[str, Any]] = []
    moment = at(0)
    sizes = []
    for round_ in range(CHURN_ROUNDS):
        name = f"t{round_}"
        live.append(tenant(name, uid=f"00000000-0000-4000-8000-{round_:012d}"))
        observe(cache, name, "1", moment)
        if len(live) > 5:
            gone = live.pop(0)["metadata"]["name"]
            cache.remove(f"{gone}-app", "govcloud-quota", moment)
        hub.tenants = list(live)
        moment += timedelta(seconds=30)
        result = tick(hub, cache, moment)
        assert not result.errors, result.errors
        sizes.append(cache.sizes())
    assert sizes[-1]["tenants"] <= 6
    assert sizes[-1]["quotas"] == 5
    assert max(size["tenants"] for size in sizes) <= 7
    assert max(size["points"] for size in sizes) <= 7 * 3
    open_reports = [name for name, body in hub.reports.items() if not body["status"]["closed"]]
    assert sorted(open_reports) == sorted(f"{t['metadata']['name']}-{JANUARY}" for t in live)


@pytest.mark.parametrize("name", ["jtj", "a-b"])
def test_a_new_report_takes_the_plain_name_unless_another_tenant_holds_it(name: str) -> None:
    new = tenant(name, uid=NEW_UID)
    period = periods.Period(2027, 1)
    assert metering.new_report_name(new, period, []) == f"{name}-{JANUARY}"
    assert metering.new_report_name(new, period, [f"{name}-{JANUARY}"]) == (
        f"{name}-{JANUARY}-{NEW_UID}"
    )


def test_without_ticks_a_deleted_tenant_is_forgotten_once_nothing_can_bill_it() -> None:
    """No RateCard, no ticks: churn must not grow the cache either (forget_if_gone, called
    when a deleted tenant's CloudTenant or last quota goes)."""
    cache = usage.UsageCache()
    observe(cache, "kept", "1", at(0))
    observe(cache, "gone", "1", at(0))
    assert not cache.forget_if_gone("gone")  # its quota is still there
    cache.remove("gone-app", "govcloud-quota", at(1))
    cache.metered("metered", at(1))
    observe(cache, "metered", "1", at(0))
    cache.remove("metered-app", "govcloud-quota", at(1))
    assert cache.forget_if_gone("gone")
    assert not cache.forget_if_gone("metered")  # a tick must still write its report
    assert cache.tenants() == {"kept", "metered"}
