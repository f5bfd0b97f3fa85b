"""A full disk, for real: a small tmpfs fills up mid-run; nothing is marked done without its file,
sending stops at once, and the same command finishes once there is room again."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import ManifestWriter
from tests.processes import batchgen, charged, emulator_log, emulator_process, finish

MANIFEST = """
version: 1
name: full
character: {reference: refs/mira.png}
defaults: {rendering_speed: Turbo, seeds: {start: 1, count: 20}}
variants:
  - {name: cafe, prompt: Mira in a cafe}
"""


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 160 KiB tmpfs: room for the ledger and a few images, not for twenty."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(mount)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_stops_cleanly_and_resumes(
    write_manifest: ManifestWriter, small_disk: Path
) -> None:
    """Disk full: exit 1 with advice, every done job has its valid image, at most the requests
    in flight were paid without a place to go, and the resume completes after the disk grows."""
    manifest, out = write_manifest(MANIFEST), small_disk / "out"
    args = ["run", str(manifest), "--out", str(out), "--concurrency", "2", "--rpm", "6000"]
    with emulator_process("--latency", "0.05") as url:
        code, text = finish(batchgen(args, url))
        assert code == 1, text
        assert "No space left" in text or "disk is full" in text, text
        assert "Free some space" in text and "Traceback" not in text

        done = _done_outputs(manifest, out)
        assert 0 < len(done) < 20
        for path in done:
            with Image.open(path) as image:
                image.load()
        # Sending stopped at once: besides the saved images, at most the two in flight were paid.
        assert len(charged(emulator_log(url))) <= len(done) + 2

        subprocess.run(["mount", "-o", "remount,size=20m", str(small_disk)], check=True)
        code, text = finish(batchgen(args, url))
        assert code == 0, text
        assert len(_done_outputs(manifest, out)) == 20
        assert len(charged(emulator_log(url))) <= 20 + 2
        assert not list(out.rglob("*.part"))


def _done_outputs(manifest: Path, out: Path) -> list[Path]:
    code, text = finish(batchgen(["status", str(manifest), "--out", str(out), "--json"], None))
    assert code == 0, text
    jobs = json.loads(text)["jobs"]
    outputs = [Path(j["output"]) for j in jobs if j["status"] == "done"]
    assert all(os.path.isfile(p) for p in outputs)
    return outputs
