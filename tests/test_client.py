"""The HTTP edge: request shape (JSON or multipart), the key header, and lost answers as values."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from batchgen.client import Lost, Reply, SegmindClient, session
from batchgen.emulator import EmulatorConfig, running
from batchgen.jobs import Job, Upload
from tests.conftest import KEY, REFERENCE

URL_JOB = Job(
    id="u", name="u", variant="u",
    params={"prompt": "Mira", "seed": 3, "character_reference_image": "https://example.test/mira.png"},
)  # fmt: skip
UPLOAD = Upload(REFERENCE, "unused-digest")
FILE_JOB = Job(
    id="f", name="f", variant="f", params={"prompt": "Mira", "seed": 4, "style_type": "Fiction"},
    uploads={"character_reference_image": UPLOAD},
)  # fmt: skip
FILES = {REFERENCE: REFERENCE.read_bytes()}


@pytest.fixture
async def echo_url() -> AsyncIterator[str]:
    """A canned server that answers every request with what it received."""

    async def echo(request: web.Request) -> web.Response:
        received = {
            "path": request.path,
            "content_type": request.content_type,
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "json": await request.json() if request.content_type == "application/json" else None,
        }
        return web.json_response(received, headers={"x-cost": "0.125", "x-other": "ignored"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    async with TestServer(app, host="127.0.0.1") as server:
        yield str(server.make_url("")).rstrip("/")


async def test_url_reference_sends_json_with_key_header(echo_url: str) -> None:
    """Images given as URLs go in a JSON body, sent as written; the key rides in x-api-key only."""
    async with session(1) as http:
        reply = await SegmindClient(http, key=KEY, endpoint=echo_url + "/").generate(URL_JOB)
    assert isinstance(reply, Reply) and reply.status == 200
    received = json.loads(reply.body)
    assert received["path"] == "/v1/ideogram-character"
    assert received["json"] == dict(URL_JOB.params)
    assert received["headers"]["x-api-key"] == KEY and "authorization" not in received["headers"]
    assert reply.headers == {"x-cost": "0.125", "content-type": "application/json; charset=utf-8"}


async def test_local_reference_is_uploaded_as_multipart() -> None:
    """A local reference is sent as a file part and the emulator accepts it."""
    async with running(EmulatorConfig(key=KEY)) as url, session(2) as http:
        reply = await SegmindClient(http, key=KEY, endpoint=url, files=FILES).generate(FILE_JOB)
        async with http.get(url + "/_emulator/log") as response:
            log = await response.json()
    assert isinstance(reply, Reply) and reply.status == 200
    assert (
        reply.headers["content-type"] == "image/jpeg"
        and reply.number("x-remaining-credits") is not None
    )
    (record,) = log["requests"]
    assert record["files"] == ["character_reference_image"]
    assert record["params"] == {"prompt": "Mira", "seed": "4", "style_type": "Fiction"}


async def test_credits_endpoint() -> None:
    """The balance query reaches /v1/get-user-credits with the key."""
    async with (
        running(EmulatorConfig(key=KEY, credits=7.5, free_credits=1.0)) as url,
        session(1) as http,
    ):
        reply = await SegmindClient(http, key=KEY, endpoint=url).credits()
    assert isinstance(reply, Reply)
    assert json.loads(reply.body) == {"credits": 7.5, "free-credits": 1.0}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_refused_connection_is_lost_and_not_billed() -> None:
    """A request that could not connect cannot have been billed."""
    async with session(1) as http:
        result = await SegmindClient(
            http, key=KEY, endpoint=f"http://127.0.0.1:{free_port()}"
        ).generate(URL_JOB)
    assert isinstance(result, Lost) and not result.maybe_billed
    assert KEY not in result.reason


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        ("reset", "closed the connection"),
        ("lost", "closed the connection"),
        ("truncate", "cut short"),
    ],
)
async def test_broken_answers_are_lost_and_maybe_billed(fault: str, words: str) -> None:
    """A connection dropped or an answer cut short after sending is possibly billed."""
    async with running(EmulatorConfig(key=KEY, faults={fault: 1.0})) as url, session(1) as http:
        result = await SegmindClient(http, key=KEY, endpoint=url, files=FILES).generate(FILE_JOB)
    assert isinstance(result, Lost) and result.maybe_billed and words in result.reason


async def test_timeout_is_lost_and_maybe_billed() -> None:
    """A server that never answers in time leaves the outcome unknown (possibly billed)."""
    timeout = aiohttp.ClientTimeout(sock_read=0.2)
    async with (
        running(EmulatorConfig(key=KEY, faults={"hang": 1.0})) as url,
        aiohttp.ClientSession(timeout=timeout) as http,
    ):
        result = await SegmindClient(http, key=KEY, endpoint=url, files=FILES).generate(FILE_JOB)
    assert isinstance(result, Lost) and result.maybe_billed and "no answer in time" in result.reason


def test_repr_hides_the_key() -> None:
    """The client's repr shows the endpoint, never the key."""
    client = SegmindClient(None, key=KEY, endpoint="https://api.test")  # type: ignore[arg-type]
    assert KEY not in repr(client) and "api.test" in repr(client)


@pytest.mark.parametrize(
    ("header", "value"), [("x-cost", 0.125), ("x-seed-value", None), ("missing", None)]
)
def test_numeric_headers(header: str, value: float | None) -> None:
    """Numeric headers parse when present and numeric, else give None."""
    reply = Reply(200, b"", {"x-cost": "0.125", "x-seed-value": "abc"})
    assert reply.number(header) == value


def test_reference_fixture_exists() -> None:
    """The shipped reference image the client tests upload is present."""
    assert Path(REFERENCE).stat().st_size > 0
