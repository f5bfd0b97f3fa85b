"""What a run would do: the manifest's jobs diffed against the ledger. Pure.

Each job is ``new`` (never seen), ``changed`` (a job of the same name exists with other
parameters: the difference is named), ``pending`` or ``unknown`` (seen, not finished: will run),
``failed`` (failed for good before: runs again only with ``--retry-failed``) or ``done``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from .jobs import Job
from .ledger import JobRow

#: Segmind documents about 20 s per generation.
DEFAULT_LATENCY: Final = 20.0
STATES: Final = ("new", "changed", "pending", "unknown", "failed", "done")


@dataclass(frozen=True, slots=True)
class Entry:
    job: Job
    state: str
    reason: str = ""
    runs: bool = True


@dataclass(frozen=True, slots=True)
class Plan:
    entries: tuple[Entry, ...]
    orphans: int  # jobs in the ledger that the manifest no longer has; their files stay

    @property
    def to_run(self) -> list[Job]:
        return [e.job for e in self.entries if e.runs]

    @property
    def counts(self) -> dict[str, int]:
        counted = Counter(e.state for e in self.entries)
        return {state: counted.get(state, 0) for state in STATES}

    @property
    def credits(self) -> float:
        """The estimated price of every job that would run."""
        return math.fsum(e.job.price for e in self.entries if e.runs)


def make_plan(
    jobs: Sequence[Job], known: Mapping[str, JobRow], *, retry_failed: bool = False
) -> Plan:
    """Diff the manifest's jobs against the ledger's."""
    by_name = {row.name: row for row in known.values()}
    ids = {job.id for job in jobs}
    entries = [_entry(job, known.get(job.id), by_name, ids, retry_failed) for job in jobs]
    orphans = sum(1 for job_id in known if job_id not in ids)
    return Plan(tuple(entries), orphans)


def _entry(
    job: Job, row: JobRow | None, by_name: Mapping[str, JobRow], ids: set[str], retry_failed: bool
) -> Entry:
    if row is None:
        old = by_name.get(job.name)
        if old is not None and old.id not in ids:
            return Entry(job, "changed", _difference(old.params, job.describe()))
        return Entry(job, "new")
    if row.status == "done":
        return Entry(job, "done", runs=False)
    if row.status == "failed":
        return Entry(job, "failed", row.error or "", runs=retry_failed)
    if row.status in ("unknown", "running"):
        return Entry(job, "unknown", "was in flight when a run stopped; may have been paid")
    return Entry(job, "pending", f"{row.attempts} earlier attempts" if row.attempts else "")


def _difference(before: Mapping[str, object], after: Mapping[str, object]) -> str:
    keys = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    return "changed: " + ", ".join(keys) if keys else "changed"


def estimate_seconds(count: int, *, rpm: int, concurrency: int, latency: float) -> float:
    """Wall time for ``count`` jobs: the slower of the rate limit and the worker pool."""
    if count <= 0:
        return 0.0
    by_rate = (count - 1) * 60.0 / rpm + latency
    by_pool = math.ceil(count / concurrency) * latency
    return max(by_rate, by_pool)


def duration(seconds: float) -> str:
    """A wall time for people: ``45s``, ``3m 05s``, ``2h 10m``."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def to_json(plan: Plan, seconds: float) -> dict[str, Any]:
    """The plan as data for scripts (``plan --json``)."""
    return {
        "counts": plan.counts | {"total": len(plan.entries), "to_run": len(plan.to_run)},
        "credits": round(plan.credits, 6),
        "seconds": round(seconds, 1),
        "orphans": plan.orphans,
        "jobs": [
            {
                "id": e.job.id,
                "name": e.job.name,
                "state": e.state,
                "runs": e.runs,
                "reason": e.reason,
                "price": e.job.price,
                "params": e.job.describe(),
            }
            for e in plan.entries
        ],
    }


def describe(
    plan: Plan, *, seconds: float, rpm: int, concurrency: int, latency: float
) -> list[str]:
    """The plan as lines for people: counts, cost, time, and each job that changed or is unknown."""
    counts = plan.counts
    lines = [
        f"{len(plan.entries)} jobs: {len(plan.to_run)} to run ({counts['new']} new, "
        f"{counts['changed']} changed, {counts['pending']} pending, {counts['unknown']} unknown), "
        f"{counts['done']} done, {counts['failed']} failed before",
        f"estimated cost: {plan.credits:.4g} credits",
        f"estimated time: {duration(seconds)} at {rpm} requests/min, {concurrency} at once, "
        f"~{latency:g} s per image",
    ]
    lines += [
        f"  {e.state}: {e.job.name} ({e.reason})"
        for e in plan.entries
        if e.state in ("changed", "unknown")
    ]
    if counts["failed"] and not any(e.runs for e in plan.entries if e.state == "failed"):
        lines.append(f"  {counts['failed']} failed jobs run again only with --retry-failed")
    if plan.orphans:
        lines.append(f"  {plan.orphans} earlier jobs are no longer in the manifest (files kept)")
    return lines
