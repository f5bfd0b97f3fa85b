"""Real processes for end-to-end tests: the emulator and batchgen runs, over loopback HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.conftest import KEY, REPO


@contextmanager
def emulator_process(*args: str) -> Iterator[str]:
    """Start `batchgen emulator` on a free port; yield its base URL; stop it afterwards."""
    process = subprocess.Popen(
        [sys.executable, "-m", "batchgen", "emulator", "--port", "0", "--key", KEY, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "listening on" in line, line + (process.stderr.read() if process.stderr else "")
        yield line.rsplit(" ", 1)[-1].strip()
    finally:
        process.terminate()
        process.wait(timeout=10)


def emulator_log(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "/_emulator/log", timeout=10) as response:
        log: dict[str, Any] = json.load(response)
    return log


def emulator_post(url: str, path: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(
        url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


def batchgen(args: Sequence[str], url: str | None, **popen: Any) -> subprocess.Popen[str]:
    """Start a batchgen command pointed at the emulator at ``url``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEGMIND_", "BATCHGEN_"))}
    if url:
        env |= {"SEGMIND_API_KEY": KEY, "BATCHGEN_ENDPOINT": url}
    return subprocess.Popen(
        [sys.executable, "-m", "batchgen", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
        **popen,
    )


def finish(process: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out + err


def wait_until(predicate: Any, timeout: float = 60, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(step)


def charged(log: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in log["requests"] if r["charged"]]


def every_byte(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())
