"""The emulator's rules, apart from HTTP: validation, the rate window, faults and helpers."""

from __future__ import annotations

import random

import pytest

from batchgen.emulator_rules import (
    FAULT_KINDS,
    EmulatorConfig,
    as_amount,
    key_accepted,
    parse_fault,
    plain_decimal,
    response_delay,
    validate,
    window_reset,
)

URL_REF = "https://example.com/hero.png"


# --- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"prompt": "a"},
        {"prompt": "a", "seed": 0, "resolution": "512x1536", "aspect_ratio": "1:1"},
        {"prompt": "a", "style_type": "Auto", "magic_prompt_option": "On", "seed": 2147483647},
    ],
)
def test_validate_accepts_good_parameters(params: dict[str, object]) -> None:
    """validate() finds nothing wrong with well-formed parameters."""
    assert validate(params, {"character_reference_image": URL_REF}) is None


# --- rate window ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arrivals", "now", "rpm", "expected"),
    [
        ([], 0.0, 1, None),
        ([10.0], 20.0, 1, 70.0),
        ([10.0], 70.0, 1, None),
        ([10.0], 69.9, 1, 70.0),
        ([10.0, 20.0], 30.0, 3, None),
        ([10.0, 20.0, 25.0], 30.0, 3, 70.0),
        ([10.0, 20.0, 25.0], 30.0, 2, 80.0),
        ([0.0, 50.0, 55.0], 61.0, 2, 110.0),
        ([0.0, 50.0, 55.0], 61.0, 3, None),
    ],
)
def test_window_reset(arrivals: list[float], now: float, rpm: int, expected: float | None) -> None:
    """The sliding window admits while fewer than rpm fall in the last 60 s, else says when."""
    assert window_reset(arrivals, now, rpm) == expected


# --- faults --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("500=0.1", ("500", 0.1)), (" reset = 1 ", ("reset", 1.0)), ("hang=0", ("hang", 0.0))],
)
def test_parse_fault(text: str, expected: tuple[str, float]) -> None:
    """KIND=P parses into the kind and its probability."""
    assert parse_fault(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("500", "no probability"),
        ("501=0.1", "Unknown fault"),
        ("500=often", "not a number"),
        ("500=1.5", "0 to 1"),
        ("500=-0.1", "0 to 1"),
        ("500=nan", "0 to 1"),
    ],
)
def test_parse_fault_rejects(text: str, message: str) -> None:
    """Malformed fault specs raise ValueError with a sentence saying what is wrong."""
    with pytest.raises(ValueError, match=message):
        parse_fault(text)


def test_fault_kinds_and_config_checks() -> None:
    """Every documented fault kind exists, and a bad config is refused up front."""
    assert set(FAULT_KINDS) == {
        "500", "502", "503", "504", "429", "reset", "lost", "truncate", "html200", "hang", "echo",
    }  # fmt: skip
    with pytest.raises(ValueError, match="Unknown fault"):
        EmulatorConfig(faults={"418": 0.5})
    with pytest.raises(ValueError, match="rpm"):
        EmulatorConfig(rpm=0)


# --- helpers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "expected", "accepted"),
    [
        (None, None, False),
        ("SG_any", None, True),
        ("sk-other", None, False),
        ("SG_right", "SG_right", True),
        ("SG_wrong", "SG_right", False),
        (None, "SG_right", False),
    ],
)
def test_key_accepted(sent: str | None, expected: str | None, accepted: bool) -> None:
    """Without a configured key any SG_ key passes; with one, only that exact key does."""
    assert key_accepted(sent, expected) is accepted


@pytest.mark.parametrize(
    ("value", "text"),
    [(99.75, "99.75"), (100.0, "100.0"), (0.00001, "0.00001"), (0.0, "0.0"), (0.1875, "0.1875")],
)
def test_plain_decimal(value: float, text: str) -> None:
    """Credits are written as plain decimals, never in exponent notation."""
    assert plain_decimal(value) == text


@pytest.mark.parametrize(
    ("value", "expected"),
    [(5, 5.0), (0, 0.0), (0.5, 0.5), (-1, None), (True, None), ("5", None), (float("nan"), None)],
)
def test_as_amount(value: object, expected: float | None) -> None:
    """Only finite JSON numbers of 0 or more are amounts; booleans and strings are not."""
    assert as_amount(value) == expected


def test_response_delay_stays_within_the_jitter() -> None:
    """The delay is the latency plus or minus the jitter, and never negative."""
    rng = random.Random(1)
    delays = [response_delay(EmulatorConfig(latency=0.1, jitter=0.05), rng) for _ in range(50)]
    assert all(0.05 <= d <= 0.15 for d in delays)
    assert response_delay(EmulatorConfig(latency=0.01, jitter=1.0), rng) >= 0.0
    assert response_delay(EmulatorConfig(), rng) == 0.0
