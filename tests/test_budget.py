"""The credit guard: reservations never let spending pass the cap or the balance pass the floor."""

from __future__ import annotations

import pytest

from batchgen.budget import CreditGuard


def test_unlimited_guard_lets_everything_out() -> None:
    """With no cap and no known balance nothing is refused."""
    guard = CreditGuard()
    assert all(guard.reserve(0.25) is None for _ in range(1000))


def test_cap_counts_reservations_in_flight() -> None:
    """The cap holds with many requests in flight: reservations count as spent."""
    guard = CreditGuard(max_credits=1.0)
    granted = sum(guard.reserve(0.25) is None for _ in range(10))
    assert granted == 4
    assert "--max-credits 1" in (guard.refusal(0.25) or "")


def test_settling_frees_what_was_not_billed() -> None:
    """A request that was not billed gives its reservation back."""
    guard = CreditGuard(max_credits=0.5)
    assert guard.reserve(0.25) is None and guard.reserve(0.25) is None
    assert guard.reserve(0.25) is not None
    guard.settle(0.25, 0.0, None)
    assert guard.reserve(0.25) is None


def test_repeated_prices_do_not_trip_on_float_error() -> None:
    """Sixteen requests at 0.1875 fit a cap of exactly 3.0."""
    guard = CreditGuard(max_credits=3.0)
    for _ in range(16):
        assert guard.reserve(0.1875) is None
        guard.settle(0.1875, 0.1875, None)
    assert guard.reserve(0.1875) is not None


@pytest.mark.parametrize(
    ("balance", "floor", "in_flight", "allowed"),
    [(10.0, 9.0, 0, True), (10.0, 9.8, 0, False), (10.0, 9.5, 1, True), (10.0, 9.5, 2, False),
     (0.2, None, 0, False), (0.25, None, 0, True)],
)  # fmt: skip
def test_floor_holds_with_requests_in_flight(
    balance: float, floor: float | None, in_flight: int, allowed: bool
) -> None:
    """The balance minus everything in flight never drops below the floor (or zero)."""
    guard = CreditGuard(min_credits=floor, balance=balance)
    for _ in range(in_flight):
        assert guard.reserve(0.25) is None
    assert (guard.reserve(0.25) is None) is allowed


def test_reported_balance_replaces_estimates() -> None:
    """x-remaining-credits, when given, is the balance; otherwise the cost is deducted."""
    guard = CreditGuard(balance=10.0)
    guard.reserve(0.25)
    guard.settle(0.25, 0.25, None)
    assert guard.balance == 9.75
    guard.reserve(0.25)
    guard.settle(0.25, 0.25, 5.0)
    assert guard.balance == 5.0 and guard.spent == 0.5
