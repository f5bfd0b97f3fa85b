"""The decisions taken on every API answer: classification, backoff, rate-limit resets."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from batchgen.policy import (
    MAX_PAUSE,
    Action,
    Billed,
    Stop,
    backoff,
    classify,
    error_text,
    lost,
    reset_delay,
)


@pytest.mark.parametrize(
    ("status", "body", "action", "stop", "billed"),
    [
        (200, b"\xff\xd8", Action.SAVE, None, Billed.YES),
        (400, b'{"error": "prompt is required"}', Action.FAIL_JOB, None, Billed.NO),
        (401, b'{"error": "Invalid API key"}', Action.STOP_RUN, Stop.AUTH, Billed.NO),
        (403, b"", Action.STOP_RUN, Stop.AUTH, Billed.NO),
        (404, b"not found", Action.STOP_RUN, Stop.CONFIG, Billed.NO),
        (405, b"<html>Method Not Allowed</html>", Action.STOP_RUN, Stop.PROTOCOL, Billed.NO),
        (406, b'{"error": "Insufficient credits"}', Action.STOP_RUN, Stop.CREDITS, Billed.NO),
        (406, b'{"error": "Spend limit reached"}', Action.STOP_RUN, Stop.CREDITS, Billed.NO),
        (406, b'{"error": "Invalid content type"}', Action.STOP_RUN, Stop.PROTOCOL, Billed.NO),
        (429, b'{"error": "Rate limit exceeded"}', Action.RATE_LIMITED, None, Billed.NO),
        (500, b'{"error": "Internal server error"}', Action.RETRY, None, Billed.NO),
        (502, b"<html><body>Bad Gateway</body></html>", Action.RETRY, None, Billed.NO),
        (503, b"", Action.RETRY, None, Billed.NO),
        (504, b"\x00\x01 binary", Action.RETRY, None, Billed.NO),
        (422, b'{"error": "weird"}', Action.FAIL_JOB, None, Billed.NO),
    ],
)
def test_classify(
    status: int, body: bytes, action: Action, stop: Stop | None, billed: Billed
) -> None:
    """Each status code gets the treatment segmind-api.md's table prescribes; bodies never need to parse."""
    verdict = classify(status, body)
    assert (verdict.action, verdict.stop, verdict.billed) == (action, stop, billed)


def test_lost_answers_are_retried_and_maybe_billed() -> None:
    """A request that reached the server but lost its answer is retried and counted as possibly paid."""
    assert lost("reset", maybe_billed=True).billed is Billed.UNKNOWN
    assert lost("refused", maybe_billed=False).billed is Billed.NO
    assert lost("x", maybe_billed=True).action is Action.RETRY


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (b'{"error": "bad seed"}', "bad seed"),
        (b'{"message": "oops"}', "oops"),
        (b"<html><h1>502</h1></html>", "an HTML page instead of a JSON error"),
        (b"plain  words\n here", "plain words here"),
        (b"\xff\xfe", "\ufffd\ufffd"),
        (b"x" * 1000, "x" * 299 + "…"),
    ],
)
def test_error_text(body: bytes, text: str) -> None:
    """Error messages come from JSON when there is JSON, else a short clean excerpt."""
    assert error_text(body) == text


@pytest.mark.parametrize(
    ("retry", "rand", "expected"),
    [(0, 1.0, 1.0), (1, 1.0, 2.0), (3, 0.5, 4.0), (10, 1.0, 60.0), (500, 1.0, 60.0), (4, 0.0, 0.0)],
)
def test_backoff_is_exponential_with_full_jitter(retry: int, rand: float, expected: float) -> None:
    """The wait is uniform in [0, min(cap, base·2^retry)]."""
    assert backoff(retry, rand=lambda: rand) == pytest.approx(expected)


NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"x-rate-limit-reset-at-utc": "2026-11-24T12:00:07Z"}, 7.0),
        ({"x-rate-limit-reset-at-utc": "2026-11-24T12:00:07.500+00:00"}, 7.5),
        ({"x-rate-limit-reset-at-utc": "2026-11-24T13:00:07+01:00"}, 7.0),
        ({"x-rate-limit-reset-at-utc": "2026-11-24T12:00:03"}, 3.0),
        ({"x-rate-limit-reset-at-utc": str(NOW + 12)}, 12.0),
        ({"x-rate-limit-reset-at-utc": str(int((NOW + 4) * 1000))}, 4.0),
        ({"x-rate-limit-reset-at-utc": "2026-11-24T11:59:00Z"}, 0.0),
        ({"x-rate-limit-reset-at-utc": "2026-11-25T12:00:00Z"}, MAX_PAUSE),
        ({"retry-after": "9"}, 9.0),
        ({"retry-after": "Tue, 24 Nov 2026 12:00:05 GMT"}, 5.0),
        ({"x-rate-limit-reset-at-utc": "soon", "retry-after": "2"}, 2.0),
        ({"x-rate-limit-reset-at-utc": "soon"}, None),
        ({"retry-after": "-5"}, None),
        ({"retry-after": "nan"}, None),
        ({}, None),
    ],
)
def test_reset_delay(headers: dict[str, str], expected: float | None) -> None:
    """Reset hints are read as ISO 8601, epoch seconds or milliseconds, or Retry-After; else None."""
    delay = reset_delay(headers, NOW)
    assert delay == (pytest.approx(expected) if expected is not None else None)
