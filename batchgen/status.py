"""What the ledger says about a manifest's jobs: as data (``--json``, the report) and as text."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .errors import (
    AuthError,
    BatchgenError,
    CreditsError,
    Interrupted,
    LedgerError,
    OutageError,
    StoreError,
)
from .ledger import JobRow, Ledger, RunRow, Spending
from .manifest import Manifest

STATUS_ORDER = ("done", "failed", "pending", "running", "unknown")


def snapshot(manifest: Manifest, folder: Path, ledger: Ledger | None) -> dict[str, Any]:
    """One object describing every job of the manifest and the money spent on them."""
    rows: Mapping[str, JobRow] = ledger.jobs() if ledger else {}
    jobs = []
    for job in manifest.jobs:
        row = rows.get(job.id)
        output = folder / row.output if row and row.output and row.status == "done" else None
        jobs.append(
            {
                "id": job.id,
                "name": job.name,
                "variant": job.variant,
                "status": row.status if row else "pending",
                "output": os.fspath(output.absolute()) if output else None,
                "attempts": row.attempts if row else 0,
                "error": row.error if row else None,
                "params": job.describe(),
                "price": job.price,
                "cost": row.cost if row else None,
            }
        )
    tally = Counter(j["status"] for j in jobs)
    failures = Counter(j["error"] for j in jobs if j["status"] == "failed")
    ids = {job.id for job in manifest.jobs}
    return {
        "manifest": os.fspath(manifest.path),
        "folder": os.fspath(folder),
        "counts": {status: tally.get(status, 0) for status in STATUS_ORDER} | {"total": len(jobs)},
        "credits": _credits(ledger.spending() if ledger else None),
        "failures": dict(failures.most_common()),
        "runs": [_run(run) for run in ledger.runs()] if ledger else [],
        "orphans": sum(1 for job_id in rows if job_id not in ids),
        "jobs": jobs,
    }


def _credits(spending: Spending | None) -> dict[str, Any]:
    if spending is None:
        spending = Spending(0.0, 0.0, 0.0, 0, 0.0, 0, None)
    return {
        "spent": round(spending.spent, 6),  # x-cost where given, else the estimate
        "estimated": round(spending.estimated, 6),  # at the prices reserved
        "reported": round(spending.reported, 6),  # as the API reported (x-cost)
        "unreported": spending.unreported,  # billed requests without an x-cost
        "possibly_paid": round(spending.possibly_paid, 6),
        "unknown_requests": spending.unknown_requests,
        "balance": spending.balance,
    }


def _run(run: RunRow) -> dict[str, Any]:
    return {
        "id": run.id,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "outcome": run.outcome or "running (or killed)",
        "requests": run.attempts,
        "saved": run.saved,
        "credits": _credits(run.spending),
    }


def render(snap: Mapping[str, Any], console: Console, *, verbose: bool = False) -> None:
    """Print a snapshot for people."""
    counts, credits = snap["counts"], snap["credits"]
    parts = [f"{counts[s]} {s}" for s in STATUS_ORDER if counts[s] or s in ("done", "pending")]
    folder = escape(snap["folder"])
    console.print(f"[bold]{folder}[/]: {counts['total']} jobs — " + ", ".join(parts))
    money = f"spent {credits['spent']:.4g} credits ({credits['estimated']:.4g} at estimated prices"
    money += f", {credits['reported']:.4g} as the API reported)"
    if credits["unreported"]:
        money += f"; {credits['unreported']} answers carried no cost"
    if credits["unknown_requests"]:
        money += (
            f"; {credits['unknown_requests']} requests possibly paid "
            f"(up to {credits['possibly_paid']:.4g} credits): their answers were lost"
        )
    if credits["balance"] is not None:
        money += f"; balance last seen {credits['balance']:.4g}"
    console.print(money, highlight=False)
    for reason, count in snap["failures"].items():
        console.print(f"  failed ×{count}: {reason}", highlight=False, markup=False)
    for run in snap["runs"][-10:]:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run["started_at"]))
        unknown = run["credits"]["unknown_requests"]
        console.print(
            f"  run {run['id']} at {started}: {run['outcome']}; {run['requests']} requests, "
            f"{run['saved']} images saved, {run['credits']['spent']:.4g} credits spent"
            + (f", {unknown} possibly paid" if unknown else ""),
            highlight=False,
            markup=False,
        )
    if snap["orphans"]:
        console.print(
            f"{snap['orphans']} earlier jobs are no longer in the manifest (their files stay)"
        )
    if verbose:
        table = Table("name", "status", "attempts", "output / error")
        for job in snap["jobs"]:
            table.add_row(
                job["name"],
                job["status"],
                str(job["attempts"]),
                job["output"] or job["error"] or "",
            )
        console.print(table)


def closing_lines(snap: Mapping[str, Any], spent: float | None) -> list[str]:
    """What a run says when it ends by itself; ``spent`` is None when nothing was sent."""
    counts = snap["counts"]
    if spent is None:
        line = f"nothing to send: {counts['done']} of {counts['total']} jobs done"
        if counts["failed"]:
            line += f", {counts['failed']} failed (--retry-failed runs them again)"
    else:
        line = (
            f"finished: {counts['done']} of {counts['total']} done, {counts['failed']} failed; "
            f"spent {spent:.4g} credits; images in {snap['folder']}"
        )
    return [line] + [f"  failed ×{n}: {reason}" for reason, n in snap["failures"].items()]


def stop_lines(snap: Mapping[str, Any], error: BatchgenError, spent: float) -> list[str]:
    """What a run says when something stopped it: why, what it spent, how to resume."""
    left = snap["counts"]["total"] - snap["counts"]["done"]
    if isinstance(error, CreditsError):
        hint = "Top up the account or raise --max-credits, then run the same command to resume."
    elif isinstance(error, AuthError):
        hint = "Check SEGMIND_API_KEY, then run the same command to resume."
    elif isinstance(error, Interrupted):
        hint = "Run the same command to resume."
    elif isinstance(error, OutageError):
        hint = "Run the same command to resume once the API is back."
    elif isinstance(error, (StoreError, LedgerError)):
        hint = "Free some space or fix the folder's permissions, then run the same command."
    else:
        hint = "Fix the cause, then run the same command to resume."
    lines = [f"stopped: {error}"]
    if isinstance(error, Interrupted) and snap["counts"]["unknown"]:
        unknown = snap["counts"]["unknown"]
        lines.append(f"{unknown} requests were cut off in flight and may have been paid")
    return [*lines, f"spent {spent:.4g} credits in this run; {left} jobs not done. {hint}"]
