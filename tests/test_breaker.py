"""The circuit breaker: trips on persistent failure, backs off, closes on success, gives up."""

from __future__ import annotations

from batchgen.breaker import Breaker


def test_scattered_failures_do_not_trip() -> None:
    """Failures below the threshold never pause the run."""
    breaker = Breaker(window=10, threshold=0.8)
    for i in range(100):
        if i % 3 == 0:
            breaker.success()
        else:
            assert breaker.failure() is None


def test_trips_when_most_of_the_window_failed() -> None:
    """Eight failures in the last ten trip the breaker with the base pause."""
    breaker = Breaker(window=10, threshold=0.8, base_pause=5)
    breaker.success()
    breaker.success()
    pauses = [breaker.failure() for _ in range(8)]
    assert pauses == [None] * 7 + [5]


def test_pauses_double_and_are_capped() -> None:
    """Each trip in a row pauses twice as long, up to the cap."""
    breaker = Breaker(window=2, threshold=1.0, base_pause=5, max_pause=30, max_trips=99)
    pauses = [breaker.failure() for _ in range(12)]
    assert [p for p in pauses if p is not None] == [5, 10, 20, 30, 30, 30]


def test_success_closes_and_resets_backoff() -> None:
    """After a success the next trip starts from the base pause again."""
    breaker = Breaker(window=2, threshold=1.0, base_pause=5)
    breaker.failure()
    assert breaker.failure() == 5
    breaker.failure()
    assert breaker.failure() == 10
    breaker.success()
    breaker.failure()
    assert breaker.failure() == 5


def test_gives_up_after_max_trips_in_a_row() -> None:
    """Past max_trips trips without a success the API is taken to be down."""
    breaker = Breaker(window=1, threshold=1.0, max_trips=3)
    for _ in range(3):
        breaker.failure()
    assert not breaker.given_up
    breaker.failure()
    assert breaker.given_up
