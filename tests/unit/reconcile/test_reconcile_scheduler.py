"""The one scheduler: due times per key, replaced or brought forward, fired once, idle between."""

from __future__ import annotations

import asyncio

import pytest

from govcloud.reconcile import scheduler


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_key_fires_once_when_its_time_has_come() -> None:
    clock = Clock()
    plan = scheduler.Scheduler(clock)
    plan.at(("CloudTenant", "a"), 5)
    plan.at(("CloudTenant", "b"), 10)
    assert plan.pop_due() == []
    clock.now += 5
    assert plan.pop_due() == [("CloudTenant", "a")]
    assert plan.pop_due() == []
    clock.now += 5
    assert plan.pop_due() == [("CloudTenant", "b")]
    assert len(plan) == 0


def test_a_new_due_time_replaces_the_old_one_either_way() -> None:
    clock = Clock()
    plan = scheduler.Scheduler(clock)
    plan.at(("CloudTenant", "a"), 5)
    plan.at(("CloudTenant", "a"), 60)  # a pass finished: the next look is a resync away
    clock.now += 5
    assert plan.pop_due() == []
    assert plan.due_in(("CloudTenant", "a")) == pytest.approx(55)
    plan.at(("CloudTenant", "a"), 1)
    clock.now += 1
    assert plan.pop_due() == [("CloudTenant", "a")]


def test_sooner_only_never_postpones() -> None:
    clock = Clock()
    plan = scheduler.Scheduler(clock)
    plan.at(("Metering", "default"), 10)
    plan.at(("Metering", "default"), 30, sooner_only=True)
    assert plan.due_in(("Metering", "default")) == pytest.approx(10)
    plan.at(("Metering", "default"), 2, sooner_only=True)
    assert plan.due_in(("Metering", "default")) == pytest.approx(2)


def test_cancelled_keys_never_fire_and_the_wait_skips_them() -> None:
    clock = Clock()
    plan = scheduler.Scheduler(clock)
    plan.at(("CloudTenant", "gone"), 1)
    plan.at(("CloudTenant", "kept"), 7)
    plan.cancel(("CloudTenant", "gone"))
    assert plan.next_wait() == pytest.approx(7)
    clock.now += 10
    assert plan.pop_due() == [("CloudTenant", "kept")]
    assert plan.next_wait() is None


def test_thousands_of_objects_cost_one_wait_not_one_timer_each() -> None:
    clock = Clock()
    plan = scheduler.Scheduler(clock)
    for index in range(5000):
        plan.at(("CloudTenant", f"t{index}"), 60 + index % 7)
    assert plan.next_wait() == pytest.approx(60)
    clock.now += 61
    fired = plan.pop_due()
    assert len(fired) == len(set(fired)) == 5000 // 7 * 2 + 2


def test_run_fires_due_keys_and_wakes_for_an_earlier_one() -> None:
    async def scenario() -> list[scheduler.Key]:
        fired: list[scheduler.Key] = []
        done = asyncio.Event()

        def fire(key: scheduler.Key) -> None:
            fired.append(key)
            done.set()

        plan = scheduler.Scheduler()
        plan.at(("SubCenter", "far"), 3600)
        task = asyncio.get_running_loop().create_task(plan.run(fire))
        await asyncio.wait_for(plan.waiting.wait(), timeout=5)  # asleep until the far one
        plan.at(("SubCenter", "near"), 0.05)  # earlier than what the loop waits for
        await asyncio.wait_for(done.wait(), timeout=5)
        task.cancel()
        return fired

    assert asyncio.run(scenario()) == [("SubCenter", "near")]


def test_a_failing_callback_does_not_stop_the_others() -> None:
    async def scenario() -> list[str]:
        fired: list[str] = []
        done = asyncio.Event()

        def fire(key: scheduler.Key) -> None:
            if key[1] == "bad":
                raise RuntimeError("boom")
            fired.append(key[1])
            done.set()

        plan = scheduler.Scheduler()
        plan.at(("CloudTenant", "bad"), 0)
        plan.at(("CloudTenant", "good"), 0)
        task = asyncio.get_running_loop().create_task(plan.run(fire))
        await asyncio.wait_for(done.wait(), timeout=5)
        task.cancel()
        return fired

    assert asyncio.run(scenario()) == ["good"]


def test_jitter_spreads_within_bounds() -> None:
    values = {scheduler.jittered(60.0) for _ in range(200)}
    assert all(54.0 <= value <= 66.0 for value in values)
    assert len(values) > 1


def test_cancelled_entries_do_not_keep_the_heap_growing_with_churn() -> None:
    clock = Clock()
    plan = scheduler.Scheduler(clock)
    plan.at(("CloudTenant", "stays"), 600)
    for round_ in range(50):
        for index in range(100):
            key = ("CloudTenant", f"churn-{round_}-{index}")
            plan.at(key, 600)  # a resync far ahead, then the tenant is deleted
            plan.cancel(key)
    assert len(plan) == 1
    assert plan.heap_size() <= 2 * len(plan) + 64
    clock.now += 600
    assert plan.pop_due() == [("CloudTenant", "stays")]
