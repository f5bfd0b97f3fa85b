"""Time to load, validate, expand and plan a 10,000-job manifest, fresh and fully done.

python bench/plan_bench.py [--jobs 10000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from batchgen.ledger import Ledger
from batchgen.manifest import load_manifest
from batchgen.plan import make_plan
from bench.common import write_manifest


def timed(label: str, action):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    result = action()
    print(f"{label}: {time.perf_counter() - started:.3f}s")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = write_manifest(Path(tmp), variants=args.jobs // 100, seeds=100)
        manifest = timed(f"load + validate + expand {args.jobs} jobs", lambda: load_manifest(path))
        timed("plan against an empty ledger", lambda: make_plan(manifest.jobs, {}))
        with Ledger.open(Path(tmp) / "out") as ledger:
            timed("record every job in the ledger", lambda: ledger.sync(manifest.jobs))
            ledger._db.execute("UPDATE jobs SET status='done'")
            plan = timed(
                "read the ledger and plan", lambda: make_plan(manifest.jobs, ledger.jobs())
            )
            assert plan.to_run == [] and plan.counts["done"] == args.jobs


if __name__ == "__main__":
    main()
