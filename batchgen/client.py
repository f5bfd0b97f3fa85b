"""The HTTP edge: Segmind's v1 Ideogram Character endpoint over aiohttp.

It sends one request and reports what came back as a value (a :class:`Reply`, or a
:class:`Lost` when the answer never arrived whole); deciding what that means is
:mod:`batchgen.policy`'s job. The session is handed in, so tests can point it anywhere.
The key is sent only in the ``x-api-key`` header and never appears in a message or a repr.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp

from .jobs import Job

DEFAULT_ENDPOINT: Final = "https://api.segmind.com"
GENERATE_PATH: Final = "/v1/ideogram-character"
CREDITS_PATH: Final = "/v1/get-user-credits"

#: Generations take ~20 s; a read far above that tells a slow answer from a hung one.
READ_TIMEOUT: Final = 120.0
CONNECT_TIMEOUT: Final = 15.0
MAX_BODY: Final = 64 * 1024 * 1024

#: The response headers batchgen reads (names lower-cased).
HEADERS: Final = (
    "content-type",
    "retry-after",
    "x-cost",
    "x-generation-time",
    "x-rate-limit-reset-at-utc",
    "x-remaining-credits",
    "x-request-id",
    "x-seed-value",
)


@dataclass(frozen=True, slots=True)
class Reply:
    """A whole HTTP answer."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    def number(self, header: str) -> float | None:
        """A numeric header's value, or None when absent or not a number."""
        try:
            return float(self.headers[header])
        except (KeyError, ValueError):
            return None


@dataclass(frozen=True, slots=True)
class Lost:
    """A request whose answer did not arrive whole."""

    reason: str
    maybe_billed: bool  # False only when the request provably never reached the server


def session(concurrency: int, read_timeout: float = READ_TIMEOUT) -> aiohttp.ClientSession:
    """A session sized for the run: one connection per worker, a read timeout well above ~20 s."""
    timeout = aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT, sock_read=read_timeout)
    connector = aiohttp.TCPConnector(limit=max(concurrency, 1), limit_per_host=max(concurrency, 1))
    return aiohttp.ClientSession(timeout=timeout, connector=connector, raise_for_status=False)


class SegmindClient:
    """Sends jobs to the API. ``files`` holds the bytes of every upload, read once up front."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        *,
        key: str,
        endpoint: str = DEFAULT_ENDPOINT,
        files: Mapping[Path, bytes] | None = None,
    ) -> None:
        self._http = http
        self._key = key
        self._base = endpoint.rstrip("/")
        self._files = dict(files or {})

    def __repr__(self) -> str:
        return f"SegmindClient(endpoint={self._base!r})"

    async def generate(self, job: Job) -> Reply | Lost:
        """Send one job's request."""
        body: dict[str, Any] = {}
        if job.uploads:
            form = aiohttp.FormData()
            for name, value in job.params.items():
                form.add_field(name, str(value))
            for name, upload in job.uploads.items():
                kind = mimetypes.guess_type(upload.path.name)[0] or "application/octet-stream"
                form.add_field(
                    name, self._files[upload.path], filename=upload.path.name, content_type=kind
                )
            body["data"] = form
        else:
            body["json"] = dict(job.params)
        return await self._request("POST", GENERATE_PATH, **body)

    async def credits(self) -> Reply | Lost:
        """Ask for the account's balance (``{"credits": x, "free-credits": y}``)."""
        return await self._request("GET", CREDITS_PATH)

    async def _request(self, method: str, path: str, **kwargs: Any) -> Reply | Lost:
        sent = False
        try:
            async with self._http.request(
                method, self._base + path, headers={"x-api-key": self._key}, **kwargs
            ) as response:
                sent = True
                headers = {
                    k: self._scrub(response.headers[k]) for k in HEADERS if k in response.headers
                }
                if (response.content_length or 0) > MAX_BODY:
                    return Lost(
                        f"answer of {response.content_length} bytes is too large", maybe_billed=True
                    )
                body = await response.read()
                if response.status != 200:  # error bodies become messages; a server may echo
                    body = body.replace(self._key.encode(), b"***")
                return Reply(response.status, body, headers)
        except aiohttp.ClientConnectorError as exc:
            # Refused or unreachable: the request never left, so it cannot have been billed.
            return Lost(
                self._scrub(f"cannot connect to {self._base}: {exc.os_error}"), maybe_billed=False
            )
        except TimeoutError:
            return Lost(
                "no answer in time" + (" after the response started" if sent else ""),
                maybe_billed=True,
            )
        except aiohttp.ClientPayloadError as exc:
            return Lost(self._scrub(f"the answer was cut short: {exc}"), maybe_billed=True)
        except aiohttp.ServerDisconnectedError:
            return Lost("the server closed the connection without answering", maybe_billed=True)
        except (aiohttp.ClientError, OSError) as exc:
            return Lost(
                self._scrub(f"connection failed: {type(exc).__name__}: {exc}"), maybe_billed=True
            )

    def _scrub(self, text: str) -> str:
        # Exception texts never carry headers today; this keeps it so if a library changes.
        return text.replace(self._key, "***") if self._key else text
