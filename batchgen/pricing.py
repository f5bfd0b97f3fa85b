"""What a request costs, in credits (US dollars), by rendering speed.

Segmind documents a range of $0.125–$0.250 per generation; the split by speed is an
estimate, so a manifest may override it under ``pricing:``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from .params import DEFAULT_SPEED

DEFAULT_PRICES: Final[Mapping[str, float]] = {"Turbo": 0.125, "Default": 0.1875, "Quality": 0.25}


def price_table(overrides: Mapping[str, float] | None = None) -> dict[str, float]:
    """The default prices with a manifest's overrides applied."""
    return {**DEFAULT_PRICES, **(overrides or {})}


def price_of(params: Mapping[str, object], prices: Mapping[str, float]) -> float:
    """The estimated price of one request with these API parameters."""
    speed = params.get("rendering_speed", DEFAULT_SPEED)
    return prices[str(speed)]
