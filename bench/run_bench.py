"""How close a run comes to its theoretical limit, max(N/rpm, N·latency/concurrency).

Starts the emulator in its own process (so drawing images does not share the run's event loop),
then times the scheduler in this process over real loopback HTTP.

    python bench/run_bench.py [--jobs 200] [--latency 0.5]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from batchgen.ledger import Ledger
from batchgen.manifest import RunSettings, load_manifest
from batchgen.runner import execute, prepare, resolve
from bench.common import write_manifest

KEY = "SG_bench"


class Quiet:
    def saved(self, *args: object) -> None: ...
    def failed(self, *args: object) -> None: ...
    def retrying(self, *args: object) -> None: ...
    def paused(self, *args: object) -> None: ...
    def stopping(self, reason: str) -> None:
        print("stopped:", reason)


def bench(jobs: int, latency: float, rpm: int, concurrency: int) -> None:
    emulator = subprocess.Popen(
        [sys.executable, "-m", "batchgen", "emulator", "--port", "0", "--key", KEY,
         "--latency", str(latency), "--credits", "100000"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert emulator.stdout is not None
        url = emulator.stdout.readline().rsplit(" ", 1)[-1].strip()
        with tempfile.TemporaryDirectory() as tmp:
            manifest = load_manifest(write_manifest(Path(tmp), variants=jobs // 10, seeds=10))
            flags = RunSettings(rpm=rpm, concurrency=concurrency)
            settings = resolve(flags, manifest.run, emulator=False)
            with Ledger.open(Path(tmp) / "out") as ledger:
                plan, _ = prepare(ledger, manifest)
                started = time.perf_counter()
                outcome = asyncio.run(
                    execute(ledger, plan, settings, base_url=url, key=KEY, events=Quiet())
                )
                elapsed = time.perf_counter() - started
    finally:
        emulator.terminate()
        emulator.wait()
    limit = max(jobs / rpm * 60, jobs * latency / concurrency)
    print(
        f"{jobs} jobs, latency {latency}s, rpm {rpm}, concurrency {concurrency}: "
        f"{outcome.done} done in {elapsed:.2f}s; limit {limit:.2f}s; ratio {elapsed / limit:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.5)
    args = parser.parse_args()
    bench(args.jobs, args.latency, rpm=600, concurrency=8)  # rate-bound: limit 20 s
    bench(args.jobs, args.latency, rpm=6000, concurrency=8)  # pool-bound: limit 12.5 s


if __name__ == "__main__":
    main()
