"""The file store: verified images and sidecars, written atomically with the API's exact bytes."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from PIL import Image

from batchgen.errors import StoreError
from batchgen.jobs import Job
from batchgen.store import InvalidImage, check_image, image_path, save, sweep, write_atomic

JOB = Job(
    id="0123456789abcdef0123", name="cafe-s1", variant="cafe", params={"prompt": "p", "seed": 1}
)


def jpeg(size: tuple[int, int] = (32, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def test_save_keeps_bytes_exactly_and_writes_sidecar(tmp_path: Path) -> None:
    """The image is stored byte for byte as received, its parameters beside it."""
    body = jpeg()
    path = save(tmp_path, JOB, body, {"request_id": "r1", "cost": 0.125})
    assert path == tmp_path / "cafe-s1.01234567.jpg" == image_path(tmp_path, JOB)
    assert path.read_bytes() == body
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["params"] == {"prompt": "p", "seed": 1} and sidecar["request_id"] == "r1"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


@pytest.mark.parametrize(
    "body", [b"", b"<html>proxy error</html>", jpeg()[:200], b"\xff\xd8\xff" + b"\x00" * 50]
)
def test_check_image_refuses_what_does_not_decode(body: bytes) -> None:
    """Empty, HTML and truncated bodies are not images."""
    with pytest.raises(InvalidImage):
        check_image(body)


def test_check_image_returns_size() -> None:
    """A whole JPEG decodes and reports its size."""
    assert check_image(jpeg((40, 30))) == (40, 30)


def test_write_atomic_replaces_whole_file(tmp_path: Path) -> None:
    """A rewrite leaves the new content and no temporary file."""
    target = tmp_path / "x.bin"
    write_atomic(target, b"old")
    write_atomic(target, b"new content")
    assert target.read_bytes() == b"new content" and os.listdir(tmp_path) == ["x.bin"]


def test_unwritable_folder_is_store_error(tmp_path: Path) -> None:
    """A folder that cannot be written gives StoreError naming the path."""
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(StoreError, match="blocker"):
        write_atomic(blocker / "image.jpg", b"data")


def test_sweep_removes_only_leftover_temporaries(tmp_path: Path) -> None:
    """Temporary files of a killed run are removed; finished files stay."""
    (tmp_path / ".cafe-s1.0123.jpg.abc.part").write_bytes(b"half")
    (tmp_path / "cafe-s1.0123.jpg").write_bytes(b"whole")
    assert sweep(tmp_path) == 1
    assert os.listdir(tmp_path) == ["cafe-s1.0123.jpg"]
