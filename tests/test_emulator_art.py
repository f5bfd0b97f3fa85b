"""The emulator's pictures: shape, determinism, legibility helpers and the reference thumbnail."""

from __future__ import annotations

import io
import time

import pytest
from PIL import Image, ImageFont

from batchgen.emulator_art import background, draw, requested_size, scaled_size, wrap


def _png(colour: tuple[int, int, int], size: tuple[int, int] = (200, 300)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


def _open(jpeg: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(jpeg))
    image.load()
    return image


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, (512, 1536)),
        ({"aspect_ratio": "1:1"}, (1024, 1024)),
        ({"aspect_ratio": "16:9"}, (1365, 768)),
        ({"resolution": "1024x832"}, (1024, 832)),
        ({"resolution": "512x1536", "aspect_ratio": "16:9"}, (512, 1536)),
    ],
)
def test_requested_size(params: dict[str, object], expected: tuple[int, int]) -> None:
    """Resolution wins over aspect ratio; an aspect ratio alone is about 1024 px a side."""
    assert requested_size(params) == expected


@pytest.mark.parametrize(
    ("size", "max_side", "expected"),
    [
        ((512, 1536), 512, (171, 512)),
        ((1536, 512), 512, (512, 171)),
        ((1024, 1024), 300, (300, 300)),
        ((1024, 832), 512, (512, 416)),
        ((1536, 512), 2, (2, 1)),
    ],
)
def test_scaled_size(size: tuple[int, int], max_side: int, expected: tuple[int, int]) -> None:
    """Scaling keeps the aspect ratio and puts the longer side at max_side."""
    assert scaled_size(size, max_side) == expected


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"prompt": "a"}, (171, 512)),
        ({"prompt": "a", "aspect_ratio": "16:9"}, (512, 288)),
        ({"prompt": "a", "aspect_ratio": "9:16"}, (288, 512)),
        ({"prompt": "a", "resolution": "1152x896"}, (512, 398)),
    ],
)
def test_draw_returns_a_jpeg_of_the_requested_shape(
    params: dict[str, object], expected: tuple[int, int]
) -> None:
    """draw() returns JPEG bytes Pillow decodes at the scaled requested size."""
    image = _open(draw(params, None, 512))
    assert image.format == "JPEG"
    assert image.size == expected


def test_draw_is_deterministic() -> None:
    """The same parameters and reference give byte-identical images."""
    params = {"prompt": "a knight in the rain", "seed": 7, "style_type": "Fiction"}
    reference = _png((0, 0, 255))
    assert draw(params, reference, 256) == draw(dict(params), bytes(reference), 256)


def test_different_jobs_get_different_backgrounds() -> None:
    """The background colour follows (prompt, seed), so jobs are told apart at a glance."""
    colours = {background("a knight", seed) for seed in range(20)}
    assert len(colours) > 15
    assert background("a knight", 1) == background("a knight", 1)
    assert draw({"prompt": "x", "seed": 1}, None, 64) != draw({"prompt": "x", "seed": 2}, None, 64)


def test_reference_thumbnail_is_pasted() -> None:
    """An uploaded reference shows up as a thumbnail in the bottom-right part of the card."""
    params = {"prompt": "", "seed": 1, "aspect_ratio": "1:1"}
    plain = _open(draw(params, None, 256)).convert("RGB")
    marked = _open(draw(params, _png((0, 0, 255)), 256)).convert("RGB")
    pixels = [marked.getpixel((x, y)) for x in range(128, 256) for y in range(128, 256)]
    blue = [p for p in pixels if isinstance(p, tuple) and p[2] > 200 and p[0] + p[1] < 120]
    assert len(blue) > 500
    assert plain.tobytes() != marked.tobytes()


def test_unreadable_reference_still_draws() -> None:
    """A reference Pillow cannot read is skipped instead of failing the image."""
    assert _open(draw({"prompt": "x"}, b"not an image", 128)).size == (43, 128)


def test_wrap_fits_lines_and_cuts_long_words() -> None:
    """Wrapped lines fit the width, keep every character, and split an over-long word."""
    font = ImageFont.load_default(size=14)
    text = "a supercalifragilisticexpialidocious knight stands on a very windy cliff"
    lines = wrap(text, font, 80)
    assert all(font.getlength(line) <= 80 for line in lines)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")
    assert wrap("", font, 80) == []


def test_drawing_is_fast() -> None:
    """Drawing a card with a reference takes milliseconds, not tenths of a second."""
    params = {"prompt": "a knight " * 30, "seed": 3, "aspect_ratio": "16:9"}
    reference = _png((10, 200, 10), (1024, 1024))
    draw(params, reference, 512)  # warm the font and thumbnail caches
    started = time.perf_counter()
    for _ in range(10):
        draw(params, reference, 512)
    assert (time.perf_counter() - started) / 10 < 0.05
