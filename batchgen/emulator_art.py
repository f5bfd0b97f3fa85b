"""The pictures the emulator returns: a coloured card that shows what was asked for.

Each image is a real JPEG of the requested shape, so clients can decode, size-check and save
it exactly as they would a generated one. The card carries the prompt, the seed and the style,
and a thumbnail of the uploaded character reference, so a contact sheet of a run shows at a
glance which job produced which file. Drawing is deterministic: same inputs, same bytes.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import math
from collections.abc import Mapping
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from .params import DEFAULT_SPEED

#: Segmind's default resolution; it wins over its (contradictory) 16:9 default aspect ratio.
DEFAULT_SIZE = (512, 1536)
#: An aspect ratio alone is applied to an image of about this many pixels on a side.
ASPECT_BASE = 1024
JPEG_QUALITY = 80

#: What ``ImageFont.load_default`` returns: a scalable font, or a bitmap one without FreeType.
_Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


def requested_size(params: Mapping[str, object]) -> tuple[int, int]:
    """The full-size (width, height) the API would generate for these parameters."""
    resolution = params.get("resolution")
    if isinstance(resolution, str) and "x" in resolution:
        across_px, down_px = resolution.split("x", 1)
        return int(across_px), int(down_px)
    ratio = params.get("aspect_ratio")
    if isinstance(ratio, str) and ":" in ratio:
        across, down = (int(part) for part in ratio.split(":", 1))
        # Keep the area near ASPECT_BASE² so every ratio is "1024-ish", like the real model.
        side = ASPECT_BASE * math.sqrt(across / down)
        return round(side), round(side * down / across)
    return DEFAULT_SIZE


def scaled_size(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """``size`` scaled so its longer side is ``max_side``, keeping the aspect ratio."""
    width, height = size
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def background(prompt: str, seed: object) -> tuple[int, int, int]:
    """A colour that depends only on (prompt, seed), so different jobs look different."""
    digest = hashlib.sha256(f"{prompt}\x00{seed}".encode()).digest()
    hue = digest[0] / 255
    saturation = 0.35 + digest[1] / 255 * 0.4
    value = 0.55 + digest[2] / 255 * 0.35
    red, green, blue = colorsys.hsv_to_rgb(hue, saturation, value)
    return round(red * 255), round(green * 255), round(blue * 255)


def draw(params: Mapping[str, object], reference: bytes | None, max_side: int) -> bytes:
    """A JPEG card of the requested shape showing the prompt, seed, style and reference."""
    width, height = scaled_size(requested_size(params), max_side)
    prompt = str(params.get("prompt", ""))
    seed = params.get("seed", "random")
    colour = background(prompt, seed)
    ink = (20, 20, 20) if sum(colour) > 3 * 150 else (245, 245, 245)
    image = Image.new("RGB", (width, height), colour)
    pen = ImageDraw.Draw(image)

    margin = max(4, width // 16)
    size = max(8, min(width, height) // 14)
    font = _font(size)
    y = margin
    for line in wrap(prompt, font, width - 2 * margin):
        if y + size > height - 2 * margin:
            pen.text((margin, y), "…", font=font, fill=ink)
            break
        pen.text((margin, y), line, font=font, fill=ink)
        y += round(size * 1.25)

    details = [f"seed {seed}", str(params.get("rendering_speed", DEFAULT_SPEED))]
    if "style_type" in params:
        details.insert(1, str(params["style_type"]))
    small_size = max(8, size * 2 // 3)
    pen.text(
        (margin, height - margin - small_size),
        " · ".join(details),
        font=_font(small_size),
        fill=ink,
    )

    if reference is not None:
        _paste_thumbnail(image, reference, margin)

    out = io.BytesIO()
    image.save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def wrap(text: str, font: _Font, width: int) -> list[str]:
    """Greedy word wrap measured in pixels; a word wider than a line is cut by characters."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}" if line else word
        if font.getlength(candidate) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        while font.getlength(word) > width and len(word) > 1:
            cut = _fit(word, font, width)
            lines.append(word[:cut])
            word = word[cut:]
        line = word
    if line:
        lines.append(line)
    return lines


def _fit(word: str, font: _Font, width: int) -> int:
    """How many leading characters of ``word`` fit in ``width`` (at least one)."""
    low, high = 1, len(word)
    while low < high:  # bisect: measuring text is the slow part of drawing
        middle = (low + high + 1) // 2
        if font.getlength(word[:middle]) <= width:
            low = middle
        else:
            high = middle - 1
    return low


def _paste_thumbnail(image: Image.Image, reference: bytes, margin: int) -> None:
    """Put a framed thumbnail of the character reference in the bottom-right corner."""
    framed = _framed_thumbnail(reference, max(8, min(image.size) // 4))
    if framed is None:
        return  # the server validated it already; a card without a thumbnail is still useful
    x = image.width - framed.width - margin // 2
    y = image.height - framed.height - margin * 2
    image.paste(framed, (max(0, x), max(0, y)))


# A batch sends the same reference with every job; decoding a large PNG is the slowest step.
@lru_cache(maxsize=8)
def _framed_thumbnail(reference: bytes, side: int) -> Image.Image | None:
    """The reference shrunk to fit ``side`` px with a white frame, or None if unreadable."""
    try:
        with Image.open(io.BytesIO(reference)) as opened:
            opened.draft("RGB", (side, side))  # JPEG decodes at reduced scale: much faster
            thumb = ImageOps.exif_transpose(opened).convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError):
        return None
    thumb.thumbnail((side, side))
    return ImageOps.expand(thumb, border=2, fill=(255, 255, 255))


@lru_cache(maxsize=16)
def _font(size: int) -> _Font:
    """Pillow's bundled font at ``size`` px (a fixed-size bitmap font without FreeType)."""
    return ImageFont.load_default(size=size)
