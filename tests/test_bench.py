"""The benchmark scripts still run (small sizes; their timings are reported, never asserted)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_run_benchmark_runs() -> None:
    """bench/run_bench.py completes a tiny run and reports its ratio to the limit."""
    done = subprocess.run(
        [sys.executable, "bench/run_bench.py", "--jobs", "10", "--latency", "0.01"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("10 done") == 2 and "ratio" in done.stdout


def test_plan_benchmark_runs() -> None:
    """bench/plan_bench.py loads and plans a small manifest."""
    done = subprocess.run(
        [sys.executable, "bench/plan_bench.py", "--jobs", "200"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "read the ledger and plan" in done.stdout
