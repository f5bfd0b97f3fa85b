"""The credit guard: money is reserved before a request leaves and settled when it returns.

Pure bookkeeping (the scheduler awaits around it). Two limits, both optional:
``max_credits`` caps what this run may spend, counting every reservation still in flight, and
``min_credits`` is a floor the account balance must never cross. A request is let out only if
it fits under both *assuming every request in flight is charged*, so neither limit can be
overshot however many requests are in the air.
"""

from __future__ import annotations

from dataclasses import dataclass

_EPSILON = 1e-9  # prices like 0.1875 add up with float error; don't refuse a request for it


@dataclass(slots=True)
class CreditGuard:
    max_credits: float | None = None
    min_credits: float | None = None
    balance: float | None = None  # the account balance last reported by the API
    spent: float = 0.0  # settled this run: billed, or possibly billed
    reserved: float = 0.0  # held for requests in flight
    in_flight: int = 0

    def refusal(self, price: float) -> str | None:
        """Why a request of this price may not leave now, or None if it may."""
        if (
            self.max_credits is not None
            and self.spent + self.reserved + price > self.max_credits + _EPSILON
        ):
            return (
                f"the next request ({price:g} credits) would take this run past --max-credits "
                f"{self.max_credits:g} ({self.spent:.4g} spent, {self.reserved:.4g} in flight)"
            )
        if self.balance is not None:
            floor = self.min_credits or 0.0
            if self.balance - self.reserved - price < floor - _EPSILON:
                if floor > 0:
                    return (
                        f"the next request ({price:g} credits) would take the balance "
                        f"({self.balance:.4g}) below --min-credits {floor:g}"
                    )
                return (
                    f"the account has {self.balance:.4g} credits left, "
                    f"less than the next request ({price:g})"
                )
        return None

    def reserve(self, price: float) -> str | None:
        """Hold the price for a request about to leave, or return why it may not leave."""
        refusal = self.refusal(price)
        if refusal is None:
            self.reserved += price
            self.in_flight += 1
        return refusal

    def settle(self, price: float, cost: float, remaining: float | None) -> None:
        """Release a reservation: ``cost`` is what the request (probably) cost, 0 if not billed."""
        self.reserved = max(0.0, self.reserved - price)
        self.in_flight = max(0, self.in_flight - 1)
        self.spent += cost
        if remaining is not None:
            self.balance = remaining
        elif self.balance is not None:
            self.balance -= cost
