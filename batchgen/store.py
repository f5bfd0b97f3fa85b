"""The file store: images and their parameter sidecars, written so that a file at a final path
is always complete.

Each file goes to a temporary name in the same folder, is fsynced, then renamed into place
(and the folder fsynced), so a crash leaves either the old state or the whole new file. Image
bytes are kept exactly as the API sent them: re-encoding would lose quality.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PIL import Image

from .errors import StoreError
from .jobs import Job

# mkstemp creates files 0600; outputs should be as readable as anything else the user writes.
_UMASK = os.umask(0)
os.umask(_UMASK)


class InvalidImage(ValueError):
    """A response body that does not decode as an image."""


def image_path(folder: Path, job: Job) -> Path:
    """Where a job's image goes: readable name first, then a short id that keeps names unique
    even when a renamed variant takes an old name."""
    return folder / f"{job.name}.{job.id[:8]}.jpg"


def check_image(body: bytes) -> tuple[int, int]:
    """Decode the whole image; returns its size, or raises InvalidImage."""
    try:
        with Image.open(io.BytesIO(body)) as image:
            image.load()
            width, height = image.size
    except Exception as exc:  # Pillow raises many types for corrupt data
        raise InvalidImage(f"the response is not a decodable image ({exc})") from exc
    return width, height


def save(folder: Path, job: Job, body: bytes, meta: Mapping[str, Any]) -> Path:
    """Write a verified image and its sidecar JSON; returns the image's path.

    The sidecar goes first, so an image at its final path always has its parameters beside it.
    """
    path = image_path(folder, job)
    sidecar = {
        "id": job.id,
        "name": job.name,
        "variant": job.variant,
        "params": job.describe(),
        **meta,
    }
    text = json.dumps(sidecar, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    write_atomic(path.with_suffix(".json"), text.encode())
    write_atomic(path, body)
    return path


def write_atomic(path: Path, data: bytes) -> None:
    """Write bytes so that ``path`` holds either its old content or all of ``data``."""
    folder = path.parent
    tmp: str | None = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=folder)
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(path)
        tmp = None
        _fsync_folder(folder)
    except OSError as exc:
        raise StoreError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                Path(tmp).unlink()


def find_saved(folder: Path, job: Job) -> Path | None:
    """A complete image of this job already in place (a run died after writing it but before
    recording it), or None. The sidecar must name the job and the image must decode."""
    path = image_path(folder, job)
    if not path.is_file():
        return None
    try:
        sidecar = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        if sidecar.get("id") != job.id:
            return None
        check_image(path.read_bytes())
    except (OSError, ValueError, AttributeError):
        return None
    return path


def sweep(folder: Path) -> int:
    """Remove temporary files a killed run left behind; returns how many. Final paths are never
    touched: a temporary name is only ever renamed into place whole."""
    removed = 0
    for leftover in folder.glob(".*.part"):
        with contextlib.suppress(OSError):
            leftover.unlink()
            removed += 1
    return removed


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
