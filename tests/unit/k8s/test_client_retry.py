"""client.Cluster._retry: 429 and 5xx are retried with jittered backoff and Retry-After, never
dropped before the deadline; other answers fail at once."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from govcloud.k8s import client


class Clock:
    """time.monotonic and time.sleep for the client: sleeping moves the clock."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(time, "monotonic", fake.monotonic)  # the module client uses
    monkeypatch.setattr(time, "sleep", fake.sleep)
    random.seed(13)
    return fake


def answer(status: int, retry_after: str | None = None) -> ApiException:
    error = ApiException(status=status, reason="Too Many Requests" if status == 429 else "Error")
    error.body = '{"message": "throttled", "reason": "TooManyRequests"}'
    error.headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return error


def failing(*errors: BaseException) -> tuple[Callable[[], Any], list[int]]:
    """A call that raises `errors` in turn, then answers "ok"; and how often it was called."""
    calls = [0]

    def call() -> Any:
        calls[0] += 1
        if calls[0] <= len(errors):
            raise errors[calls[0] - 1]
        return "ok"

    return call, calls


def cluster() -> client.Cluster:
    return client.Cluster(api=None, name="hub")


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_throttling_and_server_errors_are_retried_until_they_succeed(
    clock: Clock, status: int
) -> None:
    call, calls = failing(answer(status), answer(status), answer(status))
    assert cluster()._retry("get", call) == "ok"
    assert calls[0] == 4
    assert len(clock.sleeps) == 3


def test_the_backoff_doubles_and_each_delay_is_jittered_within_its_upper_half(
    clock: Clock,
) -> None:
    call, _ = failing(*[answer(429) for _ in range(8)])
    cluster()._retry("list", call)
    for attempt, slept in enumerate(clock.sleeps):
        ceiling = min(client.RETRY_CAP, client.RETRY_BASE * 2**attempt)
        assert ceiling / 2 <= slept <= ceiling, (attempt, slept)
    assert clock.sleeps[3] > clock.sleeps[0]
    # Jitter: the delays are not the bare doubling sequence.
    assert clock.sleeps != [min(client.RETRY_CAP, 0.1 * 2**n) for n in range(8)]


def test_clients_throttled_together_do_not_come_back_in_step() -> None:
    random.seed(7)
    delays = [client.retry_delay(3) for _ in range(100)]
    assert len({round(delay, 6) for delay in delays}) > 90
    assert min(delays) >= 0.4
    assert max(delays) <= 0.8


def test_retry_after_is_honoured_and_capped(clock: Clock) -> None:
    call, _ = failing(answer(429, "2"), answer(503, "3600"), answer(429, "Wed, 21 Oct 2015"))
    cluster()._retry("apply", call, retry_deadline=60)
    assert 2 <= clock.sleeps[0] <= 2.4
    assert client.RETRY_AFTER_CAP <= clock.sleeps[1] <= client.RETRY_AFTER_CAP * 1.2
    assert clock.sleeps[2] <= client.RETRY_BASE * 4  # a date: the backoff alone decides


def test_a_client_error_is_not_retried(clock: Clock) -> None:
    call, calls = failing(answer(400))
    with pytest.raises(client.ApiError) as raised:
        cluster()._retry("apply", call)
    assert raised.value.status == 400
    assert calls[0] == 1
    assert clock.sleeps == []


def test_throttling_past_the_deadline_fails_with_the_status(clock: Clock) -> None:
    call, calls = failing(*[answer(429) for _ in range(1000)])
    with pytest.raises(client.ApiError) as raised:
        cluster()._retry("patch", call, retry_deadline=5)
    assert raised.value.status == 429
    assert 5 < clock.now < 5 + client.RETRY_CAP * 1.01
    assert calls[0] > 3


def test_an_unreachable_server_is_retried_with_backoff(clock: Clock) -> None:
    call, calls = failing(ConnectionRefusedError(), ConnectionRefusedError())
    assert cluster()._retry("get", call) == "ok"
    assert calls[0] == 3
    assert clock.sleeps[1] > client.RETRY_BASE / 2


def test_a_retry_after_beyond_the_deadline_does_not_sleep_past_it(clock: Clock) -> None:
    call, calls = failing(*[answer(429, "10") for _ in range(10)])
    with pytest.raises(client.ApiError):
        cluster()._retry("list", call, retry_deadline=2)
    assert clock.now <= 2.02
    assert calls[0] == 2
