"""A local stand-in for Segmind's Ideogram Character API (v1), for offline runs and tests.

It keeps the v1 contract batchgen relies on (see segmind-api.md): ``x-api-key`` auth, a
requests-per-minute window, the parameter rules, credits charged per rendering speed at the
moment an image is ready, and the headers a client reads. Faults drawn from a seeded RNG
rehearse what a long real run meets: server errors, gateway pages, spurious 429s, dropped
connections, billed-but-lost and truncated responses, and requests that never answer.

Endpoints: ``POST /v1/ideogram-character``, ``GET /v1/get-user-credits``; for tests and
operators (no key needed) ``GET /_emulator/log``, ``POST /_emulator/credits`` and
``POST /_emulator/faults``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import math
import random
import signal
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Final

from aiohttp import web
from PIL import Image, UnidentifiedImageError

from .emulator_art import draw
from .params import ENUMS, FILE_PARAMS, SEED_MAX, SEED_MIN, VALUE_PARAMS
from .pricing import DEFAULT_PRICES, price_of, price_table

#: Fault names in the order they are drawn; the first one that hits decides the answer.
FAULT_KINDS: Final = (
    "500", "502", "503", "504", "429", "reset", "lost", "truncate", "html200", "hang",
)  # fmt: skip
#: The rate-limit window, in seconds.
WINDOW: Final = 60.0
#: Reference images can be large; aiohttp's default 1 MiB body limit is too small.
MAX_BODY: Final = 64 * 1024 * 1024
#: How long a stopping server waits for requests that are still sleeping through latency.
SHUTDOWN_TIMEOUT: Final = 2.0

_KNOWN: Final = frozenset(FILE_PARAMS + VALUE_PARAMS)
_GATEWAY: Final = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
_NO_CREDITS: Final = "Insufficient credits. Please top up your account."


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
            _check_fault(kind, probability)
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
    _check_fault(kind, probability)
    return kind, probability


def _check_fault(kind: str, probability: float) -> None:
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


CONFIG: Final = web.AppKey("config", EmulatorConfig)
STATE: Final = web.AppKey("state", EmulatorState)


def create_app(config: EmulatorConfig) -> web.Application:
    """An aiohttp application that emulates the API with ``config``."""
    app = web.Application(client_max_size=MAX_BODY)
    app[CONFIG] = config
    app[STATE] = EmulatorState(
        credits=config.credits,
        free_credits=config.free_credits,
        faults=dict(config.faults),
        rng=random.Random(config.seed),
    )
    app.router.add_post("/v1/ideogram-character", _generate)
    app.router.add_get("/v1/get-user-credits", _user_credits)
    app.router.add_get("/_emulator/log", _log)
    app.router.add_post("/_emulator/credits", _set_credits)
    app.router.add_post("/_emulator/faults", _set_faults)
    app.on_shutdown.append(_release_hanging)
    return app


@contextlib.asynccontextmanager
async def running(
    config: EmulatorConfig, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """Start the emulator in the running loop; yield its base URL; stop it on exit."""
    # Cancelling a handler when its client disconnects matches aiohttp's TestServer.
    runner = web.AppRunner(
        create_app(config),
        handler_cancellation=True,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
        access_log=None,
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        bound_host, bound_port = runner.addresses[0][:2]
        bound = f"[{bound_host}]" if ":" in bound_host else bound_host
        yield f"http://{bound}:{bound_port}"
    finally:
        await runner.cleanup()


def serve(config: EmulatorConfig, host: str = "127.0.0.1", port: int = 0) -> None:
    """Run the emulator until SIGINT or SIGTERM, first printing the line with its URL."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_until_signalled(config, host, port))


async def _serve_until_signalled(config: EmulatorConfig, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        # Windows has no signal handlers in asyncio; Ctrl-C still ends asyncio.run there.
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with running(config, host, port) as url:
        print(f"batchgen emulator listening on {url}", flush=True)
        await stop.wait()


async def _release_hanging(app: web.Application) -> None:
    app[STATE].closing.set()


async def _generate(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    record = RequestRecord(uuid.uuid4().hex, state.clock())
    state.records.append(record)
    state.in_flight += 1
    state.max_in_flight = max(state.max_in_flight, state.in_flight)
    try:
        return await _answer(request, request.app[CONFIG], state, record)
    except asyncio.CancelledError:
        if record.status is None:
            record.status = "disconnected"
        raise
    finally:
        state.in_flight -= 1


async def _answer(
    request: web.Request, config: EmulatorConfig, state: EmulatorState, record: RequestRecord
) -> web.StreamResponse:
    form, params, files, body_error = await _read_body(request)
    record.params, record.files = params, sorted(files)
    if not _key_accepted(request.headers.get("x-api-key"), config.key):
        return _error(record, None, 401, "Invalid or missing API key: send it as x-api-key.")
    reset_at = state.admit(config.rpm)
    if reset_at is not None:
        return _rate_limited(record, state, reset_at)
    if body_error is not None:
        return _error(record, state, *body_error)
    problem = validate(params, files, form=form)
    if problem is not None:
        return _error(record, state, 400, problem)
    price = price_of(params, price_table(config.prices))
    if state.balance + 1e-9 < price:
        return _error(record, state, 406, _NO_CREDITS)

    record.fault = fault = state.draw_fault()
    if fault == "500":
        return _error(record, state, 500, "Internal server error")
    if fault in ("502", "503", "504"):
        record.status = status = int(fault)
        page = f"<html><head><title>{status} {_GATEWAY[status]}</title></head></html>"
        return web.Response(status=status, text=page, content_type="text/html")
    if fault == "429":
        return _rate_limited(record, state, state.clock() + 1.0)
    if fault == "reset":
        record.status = "reset"
        return _drop(request)
    if fault == "hang":
        record.status = "hang"
        await state.closing.wait()
        return _drop(request)

    started = time.perf_counter()
    await asyncio.sleep(_delay(config, state.rng))
    # Charge when the image is ready: a concurrent request may have spent the balance meanwhile.
    if not state.charge(price):
        return _error(record, state, 406, _NO_CREDITS)
    record.charged = price
    if fault == "lost":
        record.status = "lost"
        return _drop(request)
    record.status = 200
    if fault == "html200":
        page = "<html><body><h1>Please wait while we check your browser</h1></body></html>"
        return web.Response(text=page, content_type="text/html", headers=_credits(state))

    seed = params["seed"] if "seed" in params else state.rng.randint(SEED_MIN, SEED_MAX)
    reference = files.get("character_reference_image")
    jpeg = draw(
        {**params, "seed": int(str(seed))},
        reference if isinstance(reference, bytes) else None,
        config.max_side,
    )
    headers = {
        **_credits(state),
        "x-cost": _decimal(price),
        "x-request-id": record.request_id,
        "x-generation-time": f"{time.perf_counter() - started:.3f}",
        "x-seed-value": str(seed),
    }
    if fault != "truncate":
        return web.Response(body=jpeg, content_type="image/jpeg", headers=headers)
    response = web.StreamResponse(headers=headers)
    response.content_type = "image/jpeg"
    response.content_length = len(jpeg)
    await response.prepare(request)
    await response.write(jpeg[: len(jpeg) // 2])
    _drop(request)  # the transport sends what it holds, then closes
    return response


async def _read_body(
    request: web.Request,
) -> tuple[bool, dict[str, object], dict[str, object], tuple[int, str] | None]:
    """(is multipart, value params, image params, error) of a request body, read leniently.

    Errors are returned, not answered, because auth and rate limit are checked first.
    """
    params: dict[str, object] = {}
    files: dict[str, object] = {}
    error: tuple[int, str] | None = None
    form = request.content_type == "multipart/form-data"
    items: list[tuple[str, object]] = []
    if form:
        try:
            posted = await request.post()
        except ValueError:
            error = (400, "The multipart body could not be read.")
        else:
            for name, part in posted.items():
                if isinstance(part, web.FileField):
                    files[name] = part.file.read()  # under any name: bytes must not reach the log
                else:
                    items.append((name, part))
    elif request.content_type == "application/json":
        try:
            data = json.loads(await request.read())
        except ValueError:
            error = (400, "The body is not valid JSON.")
        else:
            if isinstance(data, dict):
                items = list(data.items())
            else:
                error = (400, "The JSON body must be an object of parameters.")
    else:
        error = (406, "Invalid content type")
    for name, value in items:
        (files if name in FILE_PARAMS else params)[name] = value
    return form, params, files, error


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


def _key_accepted(sent: str | None, expected: str | None) -> bool:
    if sent is None:
        return False
    return sent == expected if expected is not None else sent.startswith("SG_")


def _delay(config: EmulatorConfig, rng: random.Random) -> float:
    jitter = rng.uniform(-config.jitter, config.jitter) if config.jitter else 0.0
    return max(0.0, config.latency + jitter)


def _decimal(value: float) -> str:
    """A plain decimal, never exponent notation: 99.75, 100.0, 0.00001."""
    text = f"{value:.6f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _credits(state: EmulatorState) -> dict[str, str]:
    return {"x-remaining-credits": _decimal(state.balance)}


def _error(
    record: RequestRecord | None, state: EmulatorState | None, status: int, message: str
) -> web.Response:
    """A JSON error; with the balance header unless the caller is not authenticated."""
    if record is not None:
        record.status = status
    headers = _credits(state) if state is not None else {}
    return web.json_response({"error": message}, status=status, headers=headers)


def _rate_limited(record: RequestRecord, state: EmulatorState, reset_at: float) -> web.Response:
    response = _error(record, state, 429, "Rate limit exceeded")
    # The real format is undocumented; ISO 8601 with an explicit offset is the likeliest.
    when = datetime.fromtimestamp(reset_at, tz=UTC)
    response.headers["x-rate-limit-reset-at-utc"] = when.isoformat(timespec="milliseconds")
    return response


def _drop(request: web.Request) -> web.Response:
    """Close the connection unanswered; aiohttp then fails to write the returned stub, quietly."""
    if request.transport is not None:
        request.transport.close()
    return web.Response()


async def _user_credits(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if not _key_accepted(request.headers.get("x-api-key"), request.app[CONFIG].key):
        return _error(None, None, 401, "Invalid or missing API key: send it as x-api-key.")
    body = {"credits": state.credits, "free-credits": state.free_credits}
    return web.json_response(body, headers=_credits(state))


async def _log(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].log())


async def _set_credits(request: web.Request) -> web.Response:
    """Set the paid (and optionally free) balance, e.g. to top up before resuming a run."""
    state = request.app[STATE]
    body = await _json_object(request)
    amounts: dict[str, float] = {}
    for name in ("credits", "free-credits"):
        if name in body:
            amount = _amount(body[name])
            if amount is None:
                return _error(None, None, 400, f"{name}: must be a number of credits, 0 or more.")
            amounts[name] = amount
    if not amounts:
        return _error(None, None, 400, 'Send {"credits": AMOUNT}, optionally "free-credits".')
    state.credits = amounts.get("credits", state.credits)
    state.free_credits = amounts.get("free-credits", state.free_credits)
    return web.json_response({"credits": state.credits, "free-credits": state.free_credits})


def _amount(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


async def _set_faults(request: web.Request) -> web.Response:
    """Replace the fault table, e.g. to make a server flaky halfway through a test."""
    body = await _json_object(request)
    faults: dict[str, float] = {}
    for kind, value in body.items():
        probability = _amount(value)
        if probability is None:
            return _error(None, None, 400, f"{kind}: the probability must be a number, 0 to 1.")
        try:
            _check_fault(kind, probability)
        except ValueError as exc:
            return _error(None, None, 400, str(exc))
        faults[kind] = probability
    request.app[STATE].faults = faults
    return web.json_response({"faults": faults})


async def _json_object(request: web.Request) -> dict[str, object]:
    try:
        data = json.loads(await request.read())
    except ValueError:
        data = None
    if not isinstance(data, dict):
        message = json.dumps({"error": "The body must be a JSON object."})
        raise web.HTTPBadRequest(text=message, content_type="application/json")
    return data
