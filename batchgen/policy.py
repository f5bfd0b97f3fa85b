"""What to do with each answer the API gives: pure decisions, no I/O.

:func:`classify` turns a status code (or a lost response) into a :class:`Verdict`;
:func:`backoff` and :func:`reset_delay` decide how long to wait. The scheduler acts on them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import Enum
from typing import Final

#: The longest a 429 may pause the run in one go; a reset further away is treated as this.
MAX_PAUSE: Final = 300.0


class Action(Enum):
    SAVE = "save"  # 200: verify and store the image
    RETRY = "retry"  # transient: try the job again after a backoff
    RATE_LIMITED = "rate_limited"  # 429: pause every worker, then retry
    FAIL_JOB = "fail_job"  # this job can never succeed as written
    STOP_RUN = "stop_run"  # nothing else should be sent


class Stop(Enum):
    AUTH = "auth"  # 401/403: the key is wrong or not allowed
    CREDITS = "credits"  # the account is empty or a spend limit hit
    CONFIG = "config"  # 404: the endpoint is wrong
    PROTOCOL = "protocol"  # 405 / 406 content type: the request itself is malformed


class Billed(Enum):
    NO = "no"
    YES = "yes"
    UNKNOWN = "unknown"  # sent, then the answer was lost: probably billed


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Action
    reason: str
    billed: Billed = Billed.NO
    stop: Stop | None = None


def error_text(body: bytes, limit: int = 300) -> str:
    """The API's error message: ``{"error": ...}`` when the body is that, else a short excerpt."""
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
        text = parsed["error"]
    elif isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
        text = parsed["message"]
    else:
        text = body.decode("utf-8", "replace")
        if "<html" in text.lower():
            return "an HTML page instead of a JSON error"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def is_content_type_complaint(message: str) -> bool:
    """Segmind's 406 means either 'out of credits' or 'invalid content type'."""
    return "content type" in message.lower() or "content-type" in message.lower()


def classify(status: int, body: bytes) -> Verdict:
    """Decide what an HTTP answer means for the job and the run (segmind-api.md's table)."""
    if status == 200:
        return Verdict(Action.SAVE, "image generated", Billed.YES)
    message = error_text(body)
    if status == 400:
        return Verdict(Action.FAIL_JOB, f"the API rejected the request (400): {message}")
    if status in (401, 403):
        why = (
            "the key is missing, invalid or expired"
            if status == 401
            else "not allowed for this account"
        )
        return Verdict(Action.STOP_RUN, f"{status}: {why}: {message}", stop=Stop.AUTH)
    if status == 404:
        return Verdict(Action.STOP_RUN, f"404: unknown URL ({message})", stop=Stop.CONFIG)
    if status == 406 and is_content_type_complaint(message):
        return Verdict(Action.STOP_RUN, f"406: {message}", stop=Stop.PROTOCOL)
    if status == 406:
        return Verdict(Action.STOP_RUN, f"406: {message}", stop=Stop.CREDITS)
    if status == 429:
        return Verdict(Action.RATE_LIMITED, f"429: rate limited ({message})")
    if status >= 500:
        return Verdict(Action.RETRY, f"server error {status}: {message}")
    if status in (405, 409, 411, 413, 415):
        return Verdict(Action.STOP_RUN, f"{status}: {message}", stop=Stop.PROTOCOL)
    # Any other 4xx is about this request, not the run.
    return Verdict(Action.FAIL_JOB, f"the API answered {status}: {message}")


def lost(reason: str, *, maybe_billed: bool) -> Verdict:
    """A request whose answer never arrived whole: retry; maybe it was billed."""
    return Verdict(Action.RETRY, reason, Billed.UNKNOWN if maybe_billed else Billed.NO)


def unusable_image(reason: str) -> Verdict:
    """A 200 whose body is not an image: paid for, worth nothing; retry."""
    return Verdict(Action.RETRY, f"200 without a usable image: {reason}", Billed.YES)


def backoff(
    retry: int, *, base: float = 1.0, cap: float = 60.0, rand: Callable[[], float]
) -> float:
    """Exponential backoff with full jitter: a uniform wait in [0, min(cap, base·2^retry)]."""
    return rand() * min(cap, base * 2.0 ** min(retry, 30))


def reset_delay(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds until a 429 says we may send again, or None when it gives no usable hint.

    ``x-rate-limit-reset-at-utc`` has no documented format: ISO 8601 and epoch seconds (or
    milliseconds) are accepted. ``Retry-After`` may be seconds or an HTTP date.
    """
    at = _parse_instant(headers.get("x-rate-limit-reset-at-utc", ""))
    if at is None:
        retry_after = headers.get("retry-after", "").strip()
        at = _seconds(retry_after, now) if retry_after else None
        if at is None and retry_after:
            at = _http_date(retry_after)
    if at is None:
        return None
    return min(max(at - now, 0.0), MAX_PAUSE)


def _seconds(text: str, now: float) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return now + value if math.isfinite(value) and value >= 0 else None


def _parse_instant(text: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(value) or value <= 0:
            return None
        return value / 1000.0 if value > 1e11 else value
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return _http_date(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _http_date(text: str) -> float | None:
    try:
        return parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
