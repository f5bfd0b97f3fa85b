"""A local stand-in for Segmind's Ideogram Character API (v1), for offline runs and tests.

It keeps the v1 contract batchgen relies on (see segmind-api.md): ``x-api-key`` auth, a
requests-per-minute window, the parameter rules, credits charged per rendering speed at the
moment an image is ready, and the headers a client reads. Faults drawn from a seeded RNG
rehearse what a long real run meets: server errors, gateway pages, spurious 429s, dropped
connections, billed-but-lost and truncated responses, and requests that never answer.

Endpoints: ``POST /v1/ideogram-character``, ``GET /v1/get-user-credits``; for tests and
operators (no key needed) ``GET /_emulator/log``, ``POST /_emulator/credits`` and
``POST /_emulator/faults``. This module is the HTTP side; the rules it applies (config,
faults, rate window, balance, validation) live in :mod:`batchgen.emulator_rules`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Final

from aiohttp import web

from .emulator_art import draw
from .emulator_rules import (
    FAULT_KINDS,
    EmulatorConfig,
    EmulatorState,
    RequestRecord,
    as_amount,
    check_fault,
    key_accepted,
    parse_fault,
    plain_decimal,
    response_delay,
    validate,
)
from .params import FILE_PARAMS, SEED_MAX, SEED_MIN
from .pricing import price_of, price_table

__all__ = ["FAULT_KINDS", "EmulatorConfig", "create_app", "parse_fault", "running", "serve"]

#: Reference images can be large; aiohttp's default 1 MiB body limit is too small.
MAX_BODY: Final = 64 * 1024 * 1024
#: How long a stopping server waits for requests that are still sleeping through latency.
SHUTDOWN_TIMEOUT: Final = 2.0
_GATEWAY: Final = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
_NO_CREDITS: Final = "Insufficient credits. Please top up your account."


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
    if not key_accepted(request.headers.get("x-api-key"), config.key):
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
    if fault == "echo":
        # A careless proxy that echoes the request's headers, key included, in its error.
        echoed = "; ".join(f"{k}: {v}" for k, v in request.headers.items())
        return _error(record, state, 500, f"Upstream error. Request headers: {echoed}")
    if fault == "hang":
        record.status = "hang"
        await state.closing.wait()
        return _drop(request)

    started = time.perf_counter()
    await asyncio.sleep(response_delay(config, state.rng))
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
        "x-cost": plain_decimal(price),
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


def _credits(state: EmulatorState) -> dict[str, str]:
    return {"x-remaining-credits": plain_decimal(state.balance)}


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
    if not key_accepted(request.headers.get("x-api-key"), request.app[CONFIG].key):
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
            amount = as_amount(body[name])
            if amount is None:
                return _error(None, None, 400, f"{name}: must be a number of credits, 0 or more.")
            amounts[name] = amount
    if not amounts:
        return _error(None, None, 400, 'Send {"credits": AMOUNT}, optionally "free-credits".')
    state.credits = amounts.get("credits", state.credits)
    state.free_credits = amounts.get("free-credits", state.free_credits)
    return web.json_response({"credits": state.credits, "free-credits": state.free_credits})


async def _set_faults(request: web.Request) -> web.Response:
    """Replace the fault table, e.g. to make a server flaky halfway through a test."""
    body = await _json_object(request)
    faults: dict[str, float] = {}
    for kind, value in body.items():
        probability = as_amount(value)
        if probability is None:
            return _error(None, None, 400, f"{kind}: the probability must be a number, 0 to 1.")
        try:
            check_fault(kind, probability)
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
