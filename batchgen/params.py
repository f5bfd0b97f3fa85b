"""The Ideogram Character API's parameters and their allowed values (see segmind-api.md).

The manifest schema repeats these enums in JSON; a test keeps the two in step.
"""

from __future__ import annotations

from typing import Final

#: Parameters that name an image: a URL is sent in the JSON body, a local file is uploaded.
FILE_PARAMS: Final = ("character_reference_image", "image", "mask")

#: Parameters sent as values, in the order they appear in a request.
VALUE_PARAMS: Final = (
    "prompt",
    "seed",
    "resolution",
    "aspect_ratio",
    "style_type",
    "rendering_speed",
    "magic_prompt_option",
)

SEED_MIN: Final = 0
SEED_MAX: Final = 2_147_483_647

ASPECT_RATIOS: Final = (
    "1:3", "3:1", "1:2", "2:1", "9:16", "16:9", "10:16", "16:10",
    "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "1:1",
)  # fmt: skip
STYLE_TYPES: Final = ("Auto", "Fiction", "Realistic")
RENDERING_SPEEDS: Final = ("Turbo", "Default", "Quality")
MAGIC_PROMPT_OPTIONS: Final = ("Auto", "On", "Off")
RESOLUTIONS: Final = tuple(
    """
    512x1536 576x1408 576x1472 576x1536 640x1344 640x1408 640x1472 640x1536 704x1152 704x1216
    704x1280 704x1344 704x1408 704x1472 736x1312 768x1088 768x1216 768x1280 768x1344 800x1280
    832x960 832x1024 832x1088 832x1152 832x1216 832x1248 864x1152 896x960 896x1024 896x1088
    896x1120 896x1152 960x832 960x896 960x1024 960x1088 1024x832 1024x896 1024x960 1024x1024
    1088x768 1088x832 1088x896 1088x960 1120x896 1152x704 1152x832 1152x864 1152x896 1216x704
    1216x768 1216x832 1248x832 1280x704 1280x768 1280x800 1312x736 1344x640 1344x704 1344x768
    1408x576 1408x640 1408x704 1472x576 1472x640 1472x704 1536x512 1536x576 1536x640
    """.split()  # noqa: SIM905 - the list reads as segmind-api.md prints it
)

#: Allowed values per enumerated parameter.
ENUMS: Final = {
    "aspect_ratio": ASPECT_RATIOS,
    "resolution": RESOLUTIONS,
    "style_type": STYLE_TYPES,
    "rendering_speed": RENDERING_SPEEDS,
    "magic_prompt_option": MAGIC_PROMPT_OPTIONS,
}

#: Segmind's own default speed, used when a manifest names none (it is the dearest).
DEFAULT_SPEED: Final = "Quality"
