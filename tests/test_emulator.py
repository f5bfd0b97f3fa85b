"""The built-in emulator of the Ideogram Character API, driven by a real aiohttp client."""

from __future__ import annotations

import asyncio
import io
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image

from batchgen import emulator, emulator_rules
from batchgen.emulator import EmulatorConfig, create_app, running

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]

KEY = {"x-api-key": "SG_test"}
URL_REF = "https://example.com/hero.png"
GENERATE = "/v1/ideogram-character"


def _png(colour: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 96), colour).save(out, "PNG")
    return out.getvalue()


def _body(**changes: object) -> dict[str, object]:
    body: dict[str, object] = {"prompt": "a knight", "character_reference_image": URL_REF}
    body.update(changes)
    return {name: value for name, value in body.items() if value is not ...}


def _form(fields: dict[str, str], files: dict[str, bytes]) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for name, value in fields.items():
        form.add_field(name, value)
    for name, data in files.items():
        form.add_field(name, data, filename=f"{name}.png", content_type="image/png")
    return form


@pytest.fixture
async def make_client() -> AsyncIterator[MakeClient]:
    clients: list[Client] = []

    async def make(**config: Any) -> Client:
        client = TestClient(TestServer(create_app(EmulatorConfig(**{"seed": 1, **config}))))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


async def _log(client: Client) -> dict[str, Any]:
    response = await client.get("/_emulator/log")
    result: dict[str, Any] = await response.json()
    return result


# --- auth ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config_key", "headers"),
    [
        (None, {}),
        (None, {"x-api-key": "not-a-segmind-key"}),
        ("SG_right", {"x-api-key": "SG_wrong"}),
        (None, {"Authorization": "Bearer SG_test"}),
    ],
    ids=["missing", "not-SG", "wrong", "bearer-only"],
)
async def test_rejected_keys_get_401(
    make_client: MakeClient, config_key: str | None, headers: dict[str, str]
) -> None:
    """A missing, wrong or Bearer-only key is a 401 with a JSON error, logged and not charged."""
    client = await make_client(key=config_key)
    response = await client.post(GENERATE, json=_body(), headers=headers)
    assert response.status == 401
    assert "x-api-key" in (await response.json())["error"]
    log = await _log(client)
    assert log["requests"][0]["status"] == 401
    assert log["charged"] == 0
    credits = await client.get("/v1/get-user-credits", headers=headers)
    assert credits.status == 401


async def test_configured_key_is_accepted(make_client: MakeClient) -> None:
    """With a configured key, exactly that key is accepted."""
    client = await make_client(key="SG_right")
    response = await client.post(GENERATE, json=_body(), headers={"x-api-key": "SG_right"})
    assert response.status == 200


async def test_user_credits_reports_paid_and_free(make_client: MakeClient) -> None:
    """get-user-credits answers Segmind's shape, and free credits are spent first."""
    client = await make_client(credits=1.0, free_credits=0.1)
    response = await client.get("/v1/get-user-credits", headers=KEY)
    assert await response.json() == {"credits": 1.0, "free-credits": 0.1}
    await client.post(GENERATE, json=_body(rendering_speed="Turbo"), headers=KEY)
    response = await client.get("/v1/get-user-credits", headers=KEY)
    assert await response.json() == {"credits": 0.975, "free-credits": 0.0}


# --- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"prompt": ...}, "prompt"),
        ({"prompt": "  "}, "prompt"),
        ({"prompt": 5}, "prompt"),
        ({"character_reference_image": ...}, "character_reference_image"),
        ({"character_reference_image": "hero.png"}, "character_reference_image"),
        ({"seed": -1}, "seed"),
        ({"seed": 2_147_483_648}, "seed"),
        ({"seed": "42"}, "seed"),
        ({"seed": 4.5}, "seed"),
        ({"seed": True}, "seed"),
        ({"resolution": "1000x1000"}, "resolution"),
        ({"aspect_ratio": "7:5"}, "aspect_ratio"),
        ({"style_type": "Anime"}, "style_type"),
        ({"rendering_speed": "Fast"}, "rendering_speed"),
        ({"magic_prompt_option": "Maybe"}, "magic_prompt_option"),
        ({"image": URL_REF}, "image"),
        ({"mask": URL_REF}, "mask"),
        ({"negative_prompt": "blurry"}, "negative_prompt"),
        ({"seed": "null"}, "seed"),
        ({"style_type": "null"}, "style_type"),
        ({"seed": None}, "seed"),
    ],
)
async def test_invalid_parameters_get_400_naming_the_field(
    make_client: MakeClient, changes: dict[str, object], field: str
) -> None:
    """Each invalid or "null" parameter is a 400 whose message names it; nothing is charged."""
    client = await make_client()
    response = await client.post(GENERATE, json=_body(**changes), headers=KEY)
    assert response.status == 400
    assert (await response.json())["error"].startswith(f"{field}:")
    assert response.headers["x-remaining-credits"] == "100.0"
    assert (await _log(client))["requests"][0]["charged"] == 0


@pytest.mark.parametrize(
    ("data", "content_type", "status", "message"),
    [
        (b"{not json", "application/json", 400, "not valid JSON"),
        (b"[1, 2]", "application/json", 400, "object"),
        (b"prompt=a", "application/x-www-form-urlencoded", 406, "Invalid content type"),
        (b"prompt", "text/plain", 406, "Invalid content type"),
    ],
)
async def test_unreadable_bodies(
    make_client: MakeClient, data: bytes, content_type: str, status: int, message: str
) -> None:
    """Broken JSON is a 400; a body neither JSON nor multipart is a 406 'Invalid content type'."""
    client = await make_client()
    headers = {**KEY, "Content-Type": content_type}
    response = await client.post(GENERATE, data=data, headers=headers)
    assert response.status == status
    assert message in (await response.json())["error"]


async def test_multipart_rules(make_client: MakeClient) -> None:
    """In multipart a seed arrives as text and must parse; an upload must be a readable image."""
    client = await make_client()
    bad_seed = _form({"prompt": "a", "seed": "abc"}, {"character_reference_image": _png()})
    response = await client.post(GENERATE, data=bad_seed, headers=KEY)
    assert (await response.json())["error"].startswith("seed:")
    not_image = _form({"prompt": "a"}, {"character_reference_image": b"GIF? no."})
    response = await client.post(GENERATE, data=not_image, headers=KEY)
    assert (await response.json())["error"].startswith("character_reference_image:")
    stray = _form({"prompt": "a"}, {"character_reference_image": _png(), "extra": _png()})
    response = await client.post(GENERATE, data=stray, headers=KEY)
    assert (await response.json())["error"].startswith("extra:")


# --- success -------------------------------------------------------------------------------


async def test_json_success(make_client: MakeClient) -> None:
    """A JSON request gets a JPEG of the asked aspect with every documented header."""
    client = await make_client()
    body = _body(seed=42, aspect_ratio="16:9")
    response = await client.post(GENERATE, json=body, headers=KEY)
    assert response.status == 200
    assert response.content_type == "image/jpeg"
    image = Image.open(io.BytesIO(await response.read()))
    assert (image.format, image.size) == ("JPEG", (512, 288))
    headers = response.headers
    assert headers["x-remaining-credits"] == "99.75"  # Quality, Segmind's default speed
    assert headers["x-cost"] == "0.25"
    assert headers["x-seed-value"] == "42"
    assert len(headers["x-request-id"]) == 32
    assert float(headers["x-generation-time"]) >= 0
    record = (await _log(client))["requests"][0]
    assert record["request_id"] == headers["x-request-id"]
    assert record["params"] == {"prompt": "a knight", "seed": 42, "aspect_ratio": "16:9"}
    assert record["files"] == ["character_reference_image"]


async def test_multipart_success(make_client: MakeClient) -> None:
    """A multipart upload with text fields succeeds; the resolution sets the shape."""
    client = await make_client()
    form = _form(
        {"prompt": "a knight", "seed": "7", "resolution": "1024x832"},
        {"character_reference_image": _png(), "image": _png(), "mask": _png((0, 0, 0))},
    )
    response = await client.post(GENERATE, data=form, headers=KEY)
    assert response.status == 200, await response.text()
    assert Image.open(io.BytesIO(await response.read())).size == (512, 416)
    assert response.headers["x-seed-value"] == "7"
    record = (await _log(client))["requests"][0]
    assert record["files"] == ["character_reference_image", "image", "mask"]
    assert record["params"] == {"prompt": "a knight", "seed": "7", "resolution": "1024x832"}


async def test_random_seed_when_none_sent(make_client: MakeClient) -> None:
    """Without a seed the server picks one and reports it; the default shape is 512x1536."""
    client = await make_client()
    response = await client.post(GENERATE, json=_body(), headers=KEY)
    assert 0 <= int(response.headers["x-seed-value"]) <= 2147483647
    assert Image.open(io.BytesIO(await response.read())).size == (171, 512)


@pytest.mark.parametrize(
    ("speed", "remaining"), [("Turbo", "9.875"), ("Default", "9.8125"), ("Quality", "9.75")]
)
async def test_balance_drops_by_the_speed_price(
    make_client: MakeClient, speed: str, remaining: str
) -> None:
    """Each success charges its rendering speed's price, shown in x-remaining-credits."""
    client = await make_client(credits=10.0)
    response = await client.post(GENERATE, json=_body(rendering_speed=speed), headers=KEY)
    assert response.headers["x-remaining-credits"] == remaining
    assert (await _log(client))["balance"] == float(remaining)


async def test_custom_prices(make_client: MakeClient) -> None:
    """Configured prices override the defaults per speed."""
    client = await make_client(credits=1.0, prices={"Quality": 0.1})
    for _ in range(3):
        response = await client.post(GENERATE, json=_body(), headers=KEY)
    assert response.headers["x-remaining-credits"] == "0.7"


# --- credits -------------------------------------------------------------------------------


async def test_406_when_balance_does_not_cover_the_price(make_client: MakeClient) -> None:
    """A request dearer than the balance is a 406 with Segmind's message; a cheaper one works."""
    client = await make_client(credits=0.2)
    response = await client.post(GENERATE, json=_body(), headers=KEY)
    assert response.status == 406
    assert (await response.json())["error"] == "Insufficient credits. Please top up your account."
    assert response.headers["x-remaining-credits"] == "0.2"
    response = await client.post(GENERATE, json=_body(rendering_speed="Turbo"), headers=KEY)
    assert response.status == 200


async def test_concurrent_requests_never_go_negative(make_client: MakeClient) -> None:
    """Requests racing for the last credits: those the balance cannot cover get 406."""
    client = await make_client(credits=0.5, latency=0.05)
    responses = await asyncio.gather(
        *(client.post(GENERATE, json=_body(), headers=KEY) for _ in range(5))
    )
    assert sorted(r.status for r in responses) == [200, 200, 406, 406, 406]
    log = await _log(client)
    assert log["balance"] == 0
    assert log["charged"] == 0.5
    assert log["max_in_flight"] == 5


# --- rate limit ----------------------------------------------------------------------------


async def test_rpm_limit_answers_429_with_reset(make_client: MakeClient) -> None:
    """Past rpm in 60 s comes a 429 whose ISO 8601 reset is 60 s after the oldest request."""
    client = await make_client(rpm=2)
    statuses = []
    for _ in range(3):
        response = await client.post(GENERATE, json=_body(), headers=KEY)
        statuses.append(response.status)
    assert statuses == [200, 200, 429]
    assert (await response.json()) == {"error": "Rate limit exceeded"}
    reset = datetime.fromisoformat(response.headers["x-rate-limit-reset-at-utc"])
    log = await _log(client)
    assert reset.timestamp() == pytest.approx(log["requests"][0]["received_at"] + 60, abs=0.01)
    assert log["accepted"] == 2  # the 429 does not use up a slot


# --- faults --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status", "content_type", "charged"),
    [
        ("500", 500, "application/json", 0.0),
        ("502", 502, "text/html", 0.0),
        ("503", 503, "text/html", 0.0),
        ("504", 504, "text/html", 0.0),
        ("429", 429, "application/json", 0.0),
        ("html200", 200, "text/html", 0.25),
    ],
)
async def test_answered_faults(
    make_client: MakeClient, kind: str, status: int, content_type: str, charged: float
) -> None:
    """Faults that answer give their status and body type; only the 200 HTML page is billed."""
    client = await make_client(faults={kind: 1.0})
    response = await client.post(GENERATE, json=_body(), headers=KEY)
    assert (response.status, response.content_type) == (status, content_type)
    if content_type == "text/html":
        assert (await response.text()).startswith("<html>")
    if kind == "429":
        reset = datetime.fromisoformat(response.headers["x-rate-limit-reset-at-utc"])
        assert 0 < reset.timestamp() - time.time() < 2
    record = (await _log(client))["requests"][0]
    assert (record["fault"], record["status"], record["charged"]) == (kind, status, charged)


async def test_echo_fault_leaks_the_request_headers(make_client: MakeClient) -> None:
    """The echo fault plays a careless proxy: its 500 body repeats the key it was sent."""
    client = await make_client(faults={"echo": 1.0})
    response = await client.post(GENERATE, json=_body(), headers=KEY)
    assert response.status == 500
    assert KEY["x-api-key"] in (await response.json())["error"]


@pytest.mark.parametrize(
    ("kind", "error", "charged"),
    [
        ("reset", aiohttp.ServerDisconnectedError, 0.0),
        ("lost", aiohttp.ServerDisconnectedError, 0.25),
        ("truncate", aiohttp.ClientPayloadError, 0.25),
        ("hang", TimeoutError, 0.0),
    ],
)
async def test_unanswered_faults(
    make_client: MakeClient, kind: str, error: type[BaseException], charged: float
) -> None:
    """Dropped, lost, truncated and hanging requests reach the client as such; lost ones bill."""
    client = await make_client(faults={kind: 1.0})
    timeout = aiohttp.ClientTimeout(total=0.3)
    with pytest.raises(error):
        async with client.post(GENERATE, json=_body(), headers=KEY, timeout=timeout) as response:
            await response.read()
    await asyncio.sleep(0.01)  # let the server notice a client that gave up
    log = await _log(client)
    record = log["requests"][0]
    assert (record["fault"], record["charged"], log["charged"]) == (kind, charged, charged)
    assert log["in_flight"] == 0


async def test_faults_are_reproducible_with_a_seed(make_client: MakeClient) -> None:
    """The same seed gives the same sequence of faults; the probability is honoured."""
    sequences = []
    for _ in range(2):
        client = await make_client(seed=5, faults={"500": 0.5, "503": 0.2})
        statuses = []
        for _ in range(30):
            response = await client.post(GENERATE, json=_body(), headers=KEY)
            statuses.append(response.status)
        sequences.append(statuses)
    assert sequences[0] == sequences[1]
    assert {200, 500, 503} == set(sequences[0])


# --- test/ops endpoints --------------------------------------------------------------------


async def test_faults_endpoint_replaces_the_table(make_client: MakeClient) -> None:
    """POST /_emulator/faults changes faults at runtime and refuses unknown kinds."""
    client = await make_client()
    assert (await client.post("/_emulator/faults", json={"500": 1})).status == 200
    assert (await client.post(GENERATE, json=_body(), headers=KEY)).status == 500
    assert (await client.post("/_emulator/faults", json={})).status == 200
    assert (await client.post(GENERATE, json=_body(), headers=KEY)).status == 200
    for bad in ({"418": 1}, {"500": 2}, {"500": "x"}, [1]):
        assert (await client.post("/_emulator/faults", json=bad)).status == 400


async def test_credits_endpoint_tops_up(make_client: MakeClient) -> None:
    """POST /_emulator/credits sets the paid balance, so a stopped run can resume."""
    client = await make_client(credits=0.0)
    assert (await client.post(GENERATE, json=_body(), headers=KEY)).status == 406
    response = await client.post("/_emulator/credits", json={"credits": 5})
    assert await response.json() == {"credits": 5.0, "free-credits": 0.0}
    assert (await client.post(GENERATE, json=_body(), headers=KEY)).status == 200
    for bad in ({"credits": -1}, {"credits": "5"}, {}, {"credits": True}):
        assert (await client.post("/_emulator/credits", json=bad)).status == 400


async def test_log_records_every_post(make_client: MakeClient) -> None:
    """The log holds one record per POST, rejected ones included, with arrival times in order."""
    client = await make_client(rpm=3)
    await client.post(GENERATE, json=_body())
    await client.post(GENERATE, json=_body(seed="null"), headers=KEY)
    await client.post(GENERATE, json=_body(), headers=KEY)
    await client.post(GENERATE, json=_body(), headers=KEY)
    await client.post(GENERATE, json=_body(), headers=KEY)
    log = await _log(client)
    assert [r["status"] for r in log["requests"]] == [401, 400, 200, 200, 429]
    assert log["accepted"] == 3  # 401s never reach the window; 400s do
    times = [r["received_at"] for r in log["requests"]]
    assert times == sorted(times)
    assert set(log["requests"][0]) == {
        "request_id", "received_at", "status", "charged", "fault", "params", "files",
    }  # fmt: skip
    assert (log["charged"], log["balance"], log["max_in_flight"]) == (0.5, 99.5, 1)


# --- running and serving -------------------------------------------------------------------


async def test_running_serves_on_loopback_and_stops() -> None:
    """running() yields a live base URL and stops promptly on exit, releasing a hung request."""
    async with aiohttp.ClientSession() as session:
        async with running(EmulatorConfig(faults={"hang": 1.0})) as url:
            assert url.startswith("http://127.0.0.1:")
            response = await session.get(f"{url}/v1/get-user-credits", headers=KEY)
            assert await response.json() == {"credits": 100.0, "free-credits": 0.0}
            hanging = asyncio.ensure_future(
                session.post(f"{url}{GENERATE}", json=_body(), headers=KEY)
            )
            await asyncio.sleep(0.05)
            started = time.monotonic()
        assert time.monotonic() - started < 1
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await hanging
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(f"{url}/_emulator/log")


def test_serve_prints_its_url_and_stops_on_sigterm() -> None:
    """serve() prints one line with the real port, then exits cleanly on SIGTERM."""
    code = "from batchgen.emulator import EmulatorConfig, serve; serve(EmulatorConfig())"
    root = Path(__file__).resolve().parent.parent
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=root
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("batchgen emulator listening on http://127.0.0.1:")
        assert int(line.rsplit(":", 1)[1]) > 0
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    finally:
        process.kill()
        process.wait()


def test_emulator_still_exports_the_names_other_modules_import() -> None:
    """The CLI, runner and tests import the config, faults and servers from batchgen.emulator."""
    exported = {"EmulatorConfig", "FAULT_KINDS", "parse_fault", "running", "serve"}
    assert exported <= set(emulator.__all__)
    for name in ("EmulatorConfig", "FAULT_KINDS", "parse_fault"):
        assert getattr(emulator, name) is getattr(emulator_rules, name)
