"""Helpers shared by the benchmarks: a reference image and generated manifests."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def write_manifest(folder: Path, *, variants: int, seeds: int, name: str = "bench") -> Path:
    """A manifest of ``variants × seeds`` Turbo jobs with a local reference image."""
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "manifests" / "refs" / "mira.png", folder / "refs" / "mira.png")
    lines = [
        "version: 1",
        f"name: {name}",
        "character: {reference: refs/mira.png}",
        "defaults: {rendering_speed: Turbo, aspect_ratio: '1:1',"
        f" seeds: {{start: 1, count: {seeds}}}}}",
        "variants:",
    ]
    lines += [f"  - {{name: v{i}, prompt: 'Mira, scene number {i}'}}" for i in range(variants)]
    path = folder / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path
