"""The emulator's rules, HTTP aside: its config, faults, rate window, balance and validation.

Everything here is plain data and pure functions, plus :class:`EmulatorState`, the one mutable
record of a running emulator; :mod:`batchgen.emulator` reads requests, consults these rules and
writes the answers. Keeping the two apart lets the rules be tested with tables, no server needed.
"""

from __future__ import annotations

import asyncio
import io
import math
import random
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Final

from PIL import Image, UnidentifiedImageError

from .params import ENUMS, FILE_PARAMS, SEED_MAX, SEED_MIN, VALUE_PARAMS
from .pricing import DEFAULT_PRICES

#: Fault names in the order they are drawn; the first one that hits decides the answer.
FAULT_KINDS: Final = (
    "500", "502", "503", "504", "429", "reset", "lost", "truncate", "html200", "hang", "echo",
)  # fmt: skip
#: The rate-limit window, in seconds.
WINDOW: Final = 60.0

_KNOWN: Final = frozenset(FILE_PARAMS + VALUE_PARAMS)


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    """How the emulator behaves: accepted key, balance, prices, rate limit, latency, faults."""

    key: str | None = None
    credits: float = 100.0
    free_credits: float = 0.0
    prices: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_PRICES))
    rpm: int | None = None
    latency: float = 0.0
    jitter: float = 0.0
    faults: Mapping[str, float] = field(default_factory=dict)
    seed: int | None = None
    max_side: int = 512

    def __post_init__(self) -> None:
        for kind, probability in self.faults.items():
            check_fault(kind, probability)
        if self.rpm is not None and self.rpm < 1:
            raise ValueError(f"rpm is {self.rpm}; use at least 1, or no limit at all.")
        if self.latency < 0 or self.jitter < 0:
            raise ValueError("latency and jitter are seconds and cannot be negative.")
        if self.max_side < 16:
            raise ValueError(f"max_side is {self.max_side} px; images need at least 16.")


def parse_fault(text: str) -> tuple[str, float]:
    """Parse ``KIND=PROBABILITY`` (e.g. ``500=0.1``) into ``("500", 0.1)``."""
    kind, sep, value = (part.strip() for part in text.partition("="))
    if not sep:
        raise ValueError(f"Fault {text!r} has no probability: write KIND=P, e.g. 500=0.1.")
    try:
        probability = float(value)
    except ValueError:
        raise ValueError(
            f"Fault {text!r}: {value!r} is not a number; write a probability from 0 to 1."
        ) from None
    check_fault(kind, probability)
    return kind, probability


def check_fault(kind: str, probability: float) -> None:
    """Raise ValueError unless ``kind`` is a known fault and ``probability`` is from 0 to 1."""
    if kind not in FAULT_KINDS:
        raise ValueError(f"Unknown fault {kind!r}; choose one of: {', '.join(FAULT_KINDS)}.")
    if not 0.0 <= probability <= 1.0:  # also rejects NaN
        raise ValueError(f"Fault {kind!r} has probability {probability}; use 0 to 1.")


def window_reset(arrivals: Sequence[float], now: float, rpm: int) -> float | None:
    """None if one more request at ``now`` fits in ``rpm`` per window, else when a slot frees.

    ``arrivals`` are the times of the requests already accepted, oldest first, on the same
    clock as ``now``; the answer is on that clock too.
    """
    recent = [t for t in arrivals if t > now - WINDOW]
    if len(recent) < rpm:
        return None
    return recent[-rpm] + WINDOW


@dataclass(slots=True)
class RequestRecord:
    """One generation POST as the emulator saw it, rejected ones included."""

    request_id: str
    received_at: float
    status: int | str | None = None  # "reset" | "lost" | "hang" | "disconnected" when unanswered
    charged: float = 0.0
    fault: str | None = None
    params: dict[str, object] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)


@dataclass(slots=True)
class EmulatorState:
    """Everything that changes while the emulator runs: balance, faults, log and counters."""

    credits: float
    free_credits: float
    faults: dict[str, float]
    rng: random.Random
    clock: Callable[[], float] = time.time
    records: list[RequestRecord] = field(default_factory=list)
    arrivals: deque[float] = field(default_factory=deque)
    accepted: int = 0
    charged: float = 0.0
    in_flight: int = 0
    max_in_flight: int = 0
    closing: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def balance(self) -> float:
        """Paid plus free credits."""
        return self.credits + self.free_credits

    def admit(self, rpm: int | None) -> float | None:
        """Count a request against the rate window; None if accepted, else the reset time."""
        now = self.clock()
        while self.arrivals and self.arrivals[0] <= now - WINDOW:
            self.arrivals.popleft()
        reset = None if rpm is None else window_reset(self.arrivals, now, rpm)
        if reset is None:
            self.arrivals.append(now)
            self.accepted += 1
        return reset

    def charge(self, price: float) -> bool:
        """Spend ``price`` (free credits first); False, spending nothing, if it is not covered."""
        if self.balance + 1e-9 < price:
            return False
        from_free = min(self.free_credits, price)
        # Rounding keeps long runs of prices like 0.1 from drifting into 99.70000000000002.
        self.free_credits = round(self.free_credits - from_free, 9)
        self.credits = round(self.credits - (price - from_free), 9)
        self.charged = round(self.charged + price, 9)
        return True

    def draw_fault(self) -> str | None:
        """The injected fault for one request, if any."""
        hit = None
        for kind in FAULT_KINDS:
            probability = self.faults.get(kind, 0.0)
            # Draw for every configured kind, so one outcome does not shift the next request's.
            if probability > 0 and self.rng.random() < probability and hit is None:
                hit = kind
        return hit

    def log(self) -> dict[str, object]:
        """The JSON served at ``/_emulator/log``."""
        return {
            "requests": [asdict(record) for record in self.records],
            "charged": self.charged,
            "balance": round(self.balance, 9),
            "credits": self.credits,
            "free_credits": self.free_credits,
            "accepted": self.accepted,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
        }


def validate(
    params: Mapping[str, object], files: Mapping[str, object], *, form: bool = False
) -> str | None:
    """The first problem with a request's parameters, as a sentence naming the field."""
    for name, value in {**params, **files}.items():
        if name not in _KNOWN:
            return f"{name}: unknown parameter."
        if value is None or value == "null":
            return f"{name}: 'null' is not a value; omit the parameter instead."
    prompt = params.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return "prompt: required, a non-empty string."
    if "seed" in params and not _valid_seed(params["seed"], form=form):
        return f"seed: must be an integer from {SEED_MIN} to {SEED_MAX}."
    for name, allowed in ENUMS.items():
        if name in params and params[name] not in allowed:
            shown = ", ".join(allowed[:16]) + (", ..." if len(allowed) > 16 else "")
            return f"{name}: {params[name]!r} is not one of {shown}."
    if "character_reference_image" not in files:
        return "character_reference_image: required, an image URL or an uploaded image."
    for name, value in files.items():
        if not _usable_image(value):
            return f"{name}: must be an http(s) URL or an uploaded image Pillow can read."
    for name, other in (("image", "mask"), ("mask", "image")):
        if name in files and other not in files:
            return f"{name}: only allowed together with {other}."
    return None


def _valid_seed(value: object, *, form: bool) -> bool:
    # Multipart sends every value as text; JSON must send a real integer.
    if form and isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    return type(value) is int and SEED_MIN <= value <= SEED_MAX


def _usable_image(value: object) -> bool:
    if isinstance(value, str):
        return value.startswith(("http://", "https://"))
    if not isinstance(value, bytes):
        return False
    try:
        with Image.open(io.BytesIO(value)) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return False
    return True


def key_accepted(sent: str | None, expected: str | None) -> bool:
    """Whether ``sent`` is the configured key or, with none configured, looks like a Segmind one."""
    if sent is None:
        return False
    return sent == expected if expected is not None else sent.startswith("SG_")


def response_delay(config: EmulatorConfig, rng: random.Random) -> float:
    """Seconds to wait before an image is ready: the latency, plus or minus a random jitter."""
    jitter = rng.uniform(-config.jitter, config.jitter) if config.jitter else 0.0
    return max(0.0, config.latency + jitter)


def plain_decimal(value: float) -> str:
    """A plain decimal, never exponent notation: 99.75, 100.0, 0.00001."""
    text = f"{value:.6f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def as_amount(value: object) -> float | None:
    """A JSON number that is finite and 0 or more, as a float; None for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None
