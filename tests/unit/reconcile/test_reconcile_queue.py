"""The retry backoff of a pass that failed: doubling, capped, spread."""

from __future__ import annotations

import pytest

from govcloud.reconcile import queue


@pytest.mark.parametrize(
    ("failures", "middle"), [(1, 5.0), (2, 10.0), (3, 20.0), (6, 160.0), (7, 300.0), (50, 300.0)]
)
def test_backoff_doubles_from_the_base_up_to_the_cap(failures: int, middle: float) -> None:
    for _ in range(50):
        assert middle * 0.9 <= queue.backoff(failures) <= middle * 1.1


def test_backoff_spreads_objects_that_failed_together() -> None:
    assert len({round(queue.backoff(3), 6) for _ in range(20)}) > 1


def test_backoff_without_jitter_is_exact() -> None:
    assert queue.backoff(4, base=1.0, cap=100.0, jitter=0.0) == 8.0
