"""One run per output folder: a second run on the same folder refuses instead of racing.

An advisory ``flock`` on ``<folder>/.lock``, held for the whole run. The kernel releases it
when the process ends however it ends (kill -9 included), so a stale lock never blocks a resume.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from .errors import BusyError, UsageError

FILE_NAME: Final = ".lock"


@contextmanager
def hold(folder: Path) -> Iterator[None]:
    """Hold the folder's lock, or raise BusyError naming the run that holds it."""
    path = folder / FILE_NAME
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise UsageError(f"cannot use the output folder {folder}: {exc.strerror}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
            raise BusyError(
                f"another batchgen run (pid {holder}) is using {folder}; "
                "wait for it to finish, or give this run another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock
