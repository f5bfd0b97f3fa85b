"""The meters that pace a run, kept apart (as aiometer does): a requests-per-minute limit, the
spacing of the actual sends, and a gate every worker waits on after a 429.

Concurrency needs no meter of its own: the scheduler runs exactly that many workers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiolimiter import AsyncLimiter


def rate_limiter(rpm: int) -> AsyncLimiter:
    """A limiter that lets one request out every 60/rpm seconds.

    aiolimiter's bucket holds ``max_rate`` tokens, so ``AsyncLimiter(rpm, 60)`` would let ``rpm``
    requests out at once after an idle spell. A bucket of one token spaces requests evenly:
    no burst, and never more than ``rpm`` in any minute. Create it inside the running loop.
    """
    return AsyncLimiter(1, 60.0 / rpm)


class Gate:
    """Closed until a deadline: after a 429 all workers wait here, not only the one that got it."""

    def __init__(
        self,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._until = 0.0

    def close_for(self, seconds: float) -> None:
        """Keep the gate closed for at least ``seconds`` from now."""
        self._until = max(self._until, self._clock() + seconds)

    @property
    def remaining(self) -> float:
        return max(0.0, self._until - self._clock())

    async def wait(self) -> None:
        """Return once the gate is open (re-checking: another 429 may extend the pause)."""
        while (left := self.remaining) > 0:
            await self._sleep(left)


class Spacing:
    """Keeps actual sends at least ``interval`` seconds apart.

    The rate limiter hands out evenly spaced slots, but between a slot and its send the worker
    reserves credits and commits a ledger row (an fsync of varying length), which could bring two
    sends closer than the limit. Waiting here, right before the send, makes ``rpm`` a true ceiling
    on what the server sees; the long waits still happen in the limiter, before the job is marked
    in flight, so this one only absorbs the jitter.
    """

    def __init__(
        self,
        interval: float,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        *,
        first_after: float = 0.0,
    ) -> None:
        self._interval = interval
        self._clock = clock
        self._sleep = sleep
        # ``first_after`` carries the pace over from an earlier process (a resume after a crash).
        self._last = clock() + first_after - interval if first_after > 0 else -float("inf")
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        """Return when a send now would be at least ``interval`` after the previous one."""
        async with self._lock:
            while (delay := self._last + self._interval - self._clock()) > 0:
                await self._sleep(delay)
            self._last = self._clock()
