"""Tenants on sub-centers: per-site reads feed the cache; an unreadable site bills nothing."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from govcloud.api.v1alpha1 import ratecard
from govcloud.billing import accrual, periods, rating, usage
from govcloud.reconcile import metering

T0 = datetime(2027, 1, 10, 8, 0, tzinfo=UTC)
TZ = periods.zone(8)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def table() -> rating.RateTable:
    spec = {"rates": [{"resource": "requests.cpu", "price": "0.12", "effectiveFrom": "2026-01-01"}]}
    return rating.table(ratecard.RateCardSpec.model_validate(spec), TZ)


def quota(tenant: str, used: str, namespace: str = "app") -> usage.Quota:
    return usage.Quota(
        f"{tenant}-{namespace}",
        "govcloud-quota",
        tenant,
        {"requests.cpu": "4"},
        {"requests.cpu": used},
    )


def test_time_the_site_cannot_be_read_is_not_billed_and_is_counted_as_unmetered() -> None:
    cache = usage.UsageCache()
    cache.sync_cluster("feixi", [quota("bh", "1")], ["bh"], T0)
    cache.unreachable(["bh"], at(600))  # down from 10 min on ...
    cache.unreachable(["bh"], at(660))  # ... still down (no new point)
    cache.sync_cluster("feixi", [quota("bh", "1")], ["bh"], at(2400))  # back at 40 min
    report = accrual.accrue(
        accrual.Report(last_sample=T0), cache.timeline("bh"), at(3600), table(), "city"
    )
    line = report.lines["requests.cpu"]
    assert line.requested_hours == Decimal("0.5")  # 10 + 20 minutes at 1 core
    assert line.allocated_hours == Decimal(2)  # 4 cores x 30 minutes
    assert report.unmetered_seconds == 1800
    assert report.gap_seconds == 0
    status = accrual.to_status(report, tier="city", currency="CNY", period_start=T0, period_end=T0)
    assert status["unmeteredSeconds"] == "1800"
    assert accrual.from_status(status, T0).unmetered_seconds == 1800


def test_a_gap_that_ends_with_the_site_unreadable_is_unmetered_not_billed_by_the_gap_rule() -> None:
    cache = usage.UsageCache()
    cache.unreachable(["bh"], at(300))
    cache.sync_cluster("feixi", [quota("bh", "2")], ["bh"], at(900))
    report = accrual.accrue(
        accrual.Report(last_sample=T0), cache.timeline("bh"), at(1800), table(), "city"
    )
    assert report.lines["requests.cpu"].requested_hours == Decimal("0.5")  # the last 15 min
    assert report.unmetered_seconds == 900
    assert report.gap_seconds == 0


def test_a_site_read_replaces_what_the_cache_held_of_that_site_only() -> None:
    cache = usage.UsageCache()
    cache.observe(
        "hub-app", "govcloud-quota", "hubby", {"requests.cpu": "2"}, {"requests.cpu": "1"}, T0
    )
    cache.sync_cluster("feixi", [quota("bh", "1"), quota("bh", "1", "data")], ["bh"], T0)
    assert cache.timeline("bh")[-1].used == {"requests.cpu": Decimal(2)}
    # A namespace of bh is gone from the site; another site's read changes nothing of bh.
    cache.sync_cluster("feixi", [quota("bh", "1")], ["bh"], at(60))
    cache.sync_cluster("lujiang", [], ["lj"], at(60))
    assert cache.timeline("bh")[-1].used == {"requests.cpu": Decimal(1)}
    assert cache.timeline("lj")[-1].used == {}  # placed, no quota yet: known, nothing used
    assert cache.timeline("hubby")[-1].used == {"requests.cpu": Decimal(1)}
    # The same namespace name on the hub and on a site are different quotas.
    cache.observe(
        "bh-app", "govcloud-quota", "bh", {"requests.cpu": "2"}, {"requests.cpu": "2"}, at(90)
    )
    assert cache.timeline("bh")[-1].used == {"requests.cpu": Decimal(3)}


def test_placed_sites_and_their_quotas_come_from_the_tenants_status_and_labels() -> None:
    tenants = [
        {"metadata": {"name": "a"}, "status": {"placement": {"cluster": "feixi"}}},
        {"metadata": {"name": "b"}, "status": {"placement": {"cluster": "hub"}}},
        {"metadata": {"name": "c"}, "status": {}},
        {"metadata": {"name": "d"}, "status": {"placement": {"cluster": "feixi"}}},
    ]
    assert metering.placed_sites(tenants) == {"feixi": ["a", "d"]}
    items: list[dict[str, Any]] = [
        {
            "metadata": {"namespace": "a-app", "name": "q", "labels": {"govcloud.io/tenant": "a"}},
            "spec": {"hard": {"requests.cpu": "2"}},
            "status": {"hard": {"requests.cpu": "2"}, "used": {"requests.cpu": "500m"}},
        },
        {  # a tenant that is not placed here (released, or moved): not billed from here
            "metadata": {"namespace": "x-app", "name": "q", "labels": {"govcloud.io/tenant": "x"}},
            "status": {"used": {"requests.cpu": "1"}},
        },
    ]
    found = metering.quotas_of(items, ["a", "d"])
    assert found == [
        usage.Quota("a-app", "q", "a", {"requests.cpu": "2"}, {"requests.cpu": "500m"})
    ]


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.at = datetime(2026, 12, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


class SlowReader(metering.SiteReader):
    """A site `silent` answers once `release` is set; `fast` answers at once."""

    def __init__(self, executor: concurrent.futures.Executor, clock: Clock) -> None:
        super().__init__(None, None, executor, timeout=1.0, clock=clock, wait=0.2)  # type: ignore[arg-type]
        self.wall = clock
        self.release = threading.Event()
        self.started: list[str] = []

    def _list(self, site: str) -> list[dict[str, Any]]:
        self.started.append(site)
        if site == "silent":
            self.release.wait(10)
        return [
            {
                "metadata": {
                    "namespace": "a-app",
                    "name": "q",
                    "labels": {"govcloud.io/tenant": "a"},
                },
                "status": {"used": {"requests.cpu": "1"}},
            }
        ]

    def settle(self, site: str) -> None:
        """Until the read of `site` that is running has answered."""
        future = self._running[site][1]
        concurrent.futures.wait([future], timeout=10)
        assert future.done()


@pytest.fixture
def reader() -> Iterator[SlowReader]:
    """A SlowReader on its own threads and a clock the test moves; `silent` released at the end."""
    with concurrent.futures.ThreadPoolExecutor(4) as executor:
        found = SlowReader(executor, Clock())
        try:
            yield found
        finally:
            found.release.set()


def _by_site(reads: list[metering.SiteRead]) -> dict[str, list[metering.SiteRead]]:
    found: dict[str, list[metering.SiteRead]] = {}
    for read in reads:
        found.setdefault(read.site, []).append(read)
    return found


def test_a_site_that_never_answers_delays_a_tick_once_by_the_short_wait_and_holds_one_thread(
    reader: SlowReader,
) -> None:
    started = time.monotonic()
    reads = _by_site(reader.read({"fast": ["a"], "silent": ["s"]}))
    assert time.monotonic() - started < 0.9  # the short wait, not the timeout
    assert reads["fast"][0].quotas == [usage.Quota("a-app", "q", "a", {}, {"requests.cpu": "1"})]
    assert "silent" not in reads  # pending, not late: no news, its usage holds
    # The next tick waits only for the fast site, and starts no second read.
    started = time.monotonic()
    again = _by_site(reader.read({"fast": ["a"], "silent": ["s"]}))
    assert time.monotonic() - started < 0.15
    assert "silent" not in again
    assert again["fast"][0].quotas
    reader.wall.advance(1.5)
    late = _by_site(reader.read({"fast": ["a"], "silent": ["s"]}))
    assert late["silent"][0].quotas is None
    assert "no answer within 1s" in late["silent"][0].error
    assert late["silent"][0].at == reader.wall.at - timedelta(seconds=1.5)  # since it started
    assert reader.started.count("silent") == 1
    # Answering after the timeout bills nothing backwards; it is read again at once.
    reader.release.set()
    reader.settle("silent")
    after = _by_site(reader.read({"silent": ["a"]}))["silent"]
    assert after[0].quotas is None
    assert "answered after 1s" in after[0].error
    assert after[1].quotas
    assert reader.started.count("silent") == 2


def test_a_read_answering_after_the_wait_is_taken_by_the_next_tick_as_of_its_answer(
    reader: SlowReader,
) -> None:
    assert reader.read({"silent": ["a"]}) == []
    reader.wall.advance(0.5)
    reader.release.set()
    reader.settle("silent")
    reader.wall.advance(2)  # the next tick, later than the timeout after the read started
    reads = reader.read({"silent": ["a"]})
    assert [read.at for read in reads] == [reader.wall.at - timedelta(seconds=2), reader.wall.at]
    assert all(read.quotas for read in reads)


def test_the_reads_of_sites_no_longer_read_are_forgotten_once_finished(reader: SlowReader) -> None:
    reader.read({"fast": ["a"], "silent": ["a"]})
    reader.read({"fast": ["a"]})  # silent, no longer read, still hangs: kept
    assert set(reader._running) == {"silent"}
    reader.release.set()
    reader.settle("silent")
    reader.read({})  # no tenant placed anywhere any more
    assert reader._running == {}
