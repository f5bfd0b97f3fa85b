"""One run per output folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from batchgen import lock
from batchgen.errors import BusyError


def test_second_holder_is_refused_with_the_first_pid(tmp_path: Path) -> None:
    """While one process holds the folder, another is refused with a message naming it."""
    with lock.hold(tmp_path):
        code = (
            "import sys; from pathlib import Path; from batchgen import lock\n"
            "try:\n    with lock.hold(Path(sys.argv[1])): pass\n"
            "except Exception as e: print(type(e).__name__, e); sys.exit(3)\n"
        )
        other = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=False
        )
    assert other.returncode == 3, other.stderr
    assert f"BusyError another batchgen run (pid {os.getpid()})" in other.stdout


def test_lock_is_released_when_the_holder_ends(tmp_path: Path) -> None:
    """A lock never outlives its holder, so a crashed run never blocks the resume."""
    with lock.hold(tmp_path):
        pass
    with lock.hold(tmp_path):
        pass


def test_same_process_twice_is_refused(tmp_path: Path) -> None:
    """flock locks are per open file, so even a second holder in one process is refused."""
    with lock.hold(tmp_path), pytest.raises(BusyError), lock.hold(tmp_path):
        pass
