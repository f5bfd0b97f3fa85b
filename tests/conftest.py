"""Shared fixtures: a reference image, a manifest writer, and the emulator on loopback."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from batchgen.emulator import EmulatorConfig, running

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO / "manifests" / "refs" / "mira.png"
KEY = "SG_test_canary_0123456789abcdef"


@pytest.fixture
def reference(tmp_path: Path) -> Path:
    """A small valid PNG next to where manifests are written."""
    target = tmp_path / "refs" / "mira.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(REFERENCE, target)
    return target


ManifestWriter = Callable[..., Path]


@pytest.fixture
def write_manifest(tmp_path: Path, reference: Path) -> ManifestWriter:
    """Write YAML text (dedented) to a manifest file in tmp_path and return its path."""

    def write(text: str, name: str = "sheet.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return path

    return write


SIMPLE = """
version: 1
character:
  reference: refs/mira.png
defaults:
  rendering_speed: Turbo
  seeds: [1, 2]
variants:
  - name: cafe
    prompt: Mira in a cafe
  - name: roof
    prompt: Mira on a roof
"""


@pytest.fixture
async def emulator_url() -> AsyncIterator[str]:
    """The emulator on a free loopback port, accepting only KEY, answering quickly."""
    async with running(EmulatorConfig(key=KEY, latency=0.01)) as url:
        yield url
