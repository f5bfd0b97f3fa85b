"""What the ledger says about a manifest's jobs: as data (``--json``, the report) and as text."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from .errors import AuthError, BatchgenError, CreditsError
from .ledger import JobRow, Ledger
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
    spending = ledger.spending() if ledger else None
    ids = {job.id for job in manifest.jobs}
    return {
        "manifest": os.fspath(manifest.path),
        "folder": os.fspath(folder),
        "counts": {status: tally.get(status, 0) for status in STATUS_ORDER} | {"total": len(jobs)},
        "credits": {
            "spent": spending.reported if spending else 0.0,
            "possibly_paid": spending.possibly_paid if spending else 0.0,
            "unknown_requests": spending.unknown_requests if spending else 0,
            "balance": spending.balance if spending else None,
        },
        "failures": dict(
            Counter(j["error"] for j in jobs if j["status"] == "failed").most_common()
        ),
        "orphans": sum(1 for job_id in rows if job_id not in ids),
        "jobs": jobs,
    }


def render(snap: Mapping[str, Any], console: Console, *, verbose: bool = False) -> None:
    """Print a snapshot for people."""
    counts, credits = snap["counts"], snap["credits"]
    parts = [f"{counts[s]} {s}" for s in STATUS_ORDER if counts[s] or s in ("done", "pending")]
    console.print(f"[bold]{snap['folder']}[/]: {counts['total']} jobs — " + ", ".join(parts))
    money = f"spent {credits['spent']:.4g} credits"
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
    else:
        hint = "Fix the cause, then run the same command to resume."
    return [
        f"stopped: {error}",
        f"spent {spent:.4g} credits in this run; {left} jobs not done. {hint}",
    ]
