"""One scheduler for the whole operator: each object's next look has a due time, one task waits.

Resyncs, retries with backoff, migration windows and deadlines, sub-center probe intervals and
metering ticks are all entries here: (kind, key) -> due time. Nothing wakes while nothing is
due, whatever the number of objects, and a replica that does not lead never runs the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import random
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (kind, object key)
_HEAP_SLACK = 64
Fire = Callable[[Key], None]


class Scheduler:
    """Per-key due times in a heap (stale entries skipped lazily); `run` fires each when due."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._due: dict[Key, tuple[float, int]] = {}
        self._heap: list[tuple[float, int, Key]] = []
        self._order = itertools.count()
        self._changed: asyncio.Event | None = None
        self.waiting = asyncio.Event()  # set while `run` waits for the next due time

    def at(self, key: Key, delay: float, *, sooner_only: bool = False) -> None:
        """Look at `key` again in `delay` seconds, replacing its due time (or only bringing
        it forward, with `sooner_only`)."""
        due = self._clock() + max(0.0, delay)
        current = self._due.get(key)
        if sooner_only and current is not None and current[0] <= due:
            return
        entry = (due, next(self._order))
        self._due[key] = entry
        heapq.heappush(self._heap, (*entry, key))
        if self._changed is not None and self._heap[0][2] == key:
            self._changed.set()

    def cancel(self, key: Key) -> None:
        self._due.pop(key, None)
        # Cancelled entries stay in the heap until due: rebuild it once they outnumber the
        # live ones, so its memory follows the objects that exist, not those that churned.
        if len(self._heap) > 2 * len(self._due) + _HEAP_SLACK:
            self._heap = [(*entry, key) for key, entry in self._due.items()]
            heapq.heapify(self._heap)

    def due_in(self, key: Key) -> float | None:
        """Seconds until `key` is due (negative when overdue); None when nothing is planned."""
        entry = self._due.get(key)
        return None if entry is None else entry[0] - self._clock()

    def __len__(self) -> int:
        return len(self._due)

    def heap_size(self) -> int:
        """Entries in the heap, cancelled and replaced ones included (bounded by ``cancel``)."""
        return len(self._heap)

    def pop_due(self) -> list[Key]:
        """Every key whose time has come, each once, removed from the schedule."""
        now = self._clock()
        fired: list[Key] = []
        while self._heap and self._heap[0][0] <= now:
            due, order, key = heapq.heappop(self._heap)
            if self._due.get(key) == (due, order):
                del self._due[key]
                fired.append(key)
        return fired

    def next_wait(self) -> float | None:
        """Seconds until the earliest live entry is due; None when nothing is planned."""
        while self._heap:
            due, order, key = self._heap[0]
            if self._due.get(key) == (due, order):
                return max(0.0, due - self._clock())
            heapq.heappop(self._heap)
        return None

    async def run(self, fire: Fire) -> None:
        """Fire every entry when it is due, until cancelled."""
        self._changed = asyncio.Event()
        try:
            while True:
                for key in self.pop_due():
                    try:
                        fire(key)
                    except Exception:  # one bad callback must not stop every other object
                        log.exception("scheduled work for %s/%s failed to start", *key)
                wait = self.next_wait()
                self._changed.clear()
                self.waiting.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), timeout=wait)
                self.waiting.clear()
        finally:
            self._changed = None
            self.waiting.clear()


def jittered(seconds: float, spread: float = 0.1) -> float:
    """`seconds` spread by +-`spread`, so objects created together do not resync together."""
    return seconds * (1 + random.uniform(-spread, spread))  # spread, not a secret
