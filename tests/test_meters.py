"""The rate limiter's shape and the 429 gate every worker waits on."""

from __future__ import annotations

import pytest

from batchgen.meters import Gate, Spacing, rate_limiter


@pytest.mark.parametrize(("rpm", "period"), [(5, 12.0), (50, 1.2), (600, 0.1)])
async def test_limiter_spaces_requests_evenly(rpm: int, period: float) -> None:
    """One token every 60/rpm seconds: the bucket never holds a burst."""
    limiter = rate_limiter(rpm)
    assert limiter.max_rate == 1 and limiter.time_period == pytest.approx(period)
    await limiter.acquire()
    assert not limiter.has_capacity()


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


async def test_open_gate_does_not_wait() -> None:
    """A gate never closed lets workers straight through."""
    clock = FakeClock()
    await Gate(clock, clock.sleep).wait()
    assert clock.sleeps == []


async def test_closed_gate_waits_until_deadline() -> None:
    """A closed gate waits exactly until its deadline."""
    clock = FakeClock()
    gate = Gate(clock, clock.sleep)
    gate.close_for(7.5)
    await gate.wait()
    assert clock.sleeps == [7.5] and gate.remaining == 0


async def test_gate_takes_the_later_deadline() -> None:
    """A shorter pause never shortens a longer one already in force."""
    clock = FakeClock()
    gate = Gate(clock, clock.sleep)
    gate.close_for(10)
    gate.close_for(2)
    assert gate.remaining == 10


async def test_spacing_keeps_sends_apart() -> None:
    """Each send waits until the interval since the previous one has passed, never less."""
    clock = FakeClock()
    spacing = Spacing(2.0, clock, clock.sleep)
    await spacing.wait()
    clock.now += 0.5
    await spacing.wait()
    await spacing.wait()
    assert clock.sleeps == [1.5, 2.0]


async def test_spacing_does_not_wait_after_a_long_gap() -> None:
    """A send long after the previous one goes at once."""
    clock = FakeClock()
    spacing = Spacing(2.0, clock, clock.sleep)
    await spacing.wait()
    clock.now += 10
    await spacing.wait()
    assert clock.sleeps == []
