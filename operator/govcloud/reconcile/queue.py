"""A per-key work queue: one pass per key at a time; bursts of requests coalesce into one more."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Coalescer:
    """Runs `work(key)` so that a key is never reconciled twice at once and no request is lost.

    A request that arrives while the key's pass runs marks it dirty; exactly one more pass
    follows, however many requests arrived. This is what keeps a burst of child events
    (quota usage changing as pods start) from turning into a burst of reconciles.
    """

    def __init__(self, work: Callable[[str], Awaitable[None]], concurrency: int = 8) -> None:
        self._work = work
        self._running: dict[str, asyncio.Task[None]] = {}
        self._dirty: set[str] = set()
        self._slots = asyncio.Semaphore(concurrency)

    def request(self, key: str) -> None:
        if key in self._running:
            self._dirty.add(key)
            return
        self._running[key] = asyncio.get_running_loop().create_task(self._drain(key))

    def __len__(self) -> int:
        """Keys with a pass running or queued."""
        return len(self._running)

    async def wait_idle(self) -> None:
        while self._running:
            await asyncio.gather(*list(self._running.values()), return_exceptions=True)

    def cancel_all(self) -> None:
        for task in self._running.values():
            task.cancel()

    async def _drain(self, key: str) -> None:
        try:
            while True:
                self._dirty.discard(key)
                async with self._slots:
                    try:
                        await self._work(key)
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        log.exception("reconcile of %s failed", key)
                if key not in self._dirty:
                    return
        finally:
            self._running.pop(key, None)


def backoff(failures: int, base: float = 5.0, cap: float = 300.0, jitter: float = 0.1) -> float:
    """Seconds to wait after the `failures`-th failure in a row: doubling from `base` up to
    `cap`, spread by +-`jitter` so that objects failing together do not retry together."""
    delay = min(cap, base * 2 ** max(0, failures - 1))
    return float(delay * (1 + random.uniform(-jitter, jitter)))  # spread, not a secret
