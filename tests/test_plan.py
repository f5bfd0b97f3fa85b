"""Plans: the manifest's jobs diffed against the ledger, with cost and time estimates."""

from __future__ import annotations

from typing import Any

import pytest

from batchgen.jobs import Job
from batchgen.ledger import JobRow
from batchgen.plan import estimate_seconds, make_plan


def job(job_id: str, name: str, price: float = 0.125, **params: Any) -> Job:
    return Job(id=job_id, name=name, variant=name, params={"prompt": "p", **params}, price=price)


def row(job_id: str, name: str, status: str, **params: Any) -> JobRow:
    return JobRow(
        job_id,
        name,
        name,
        {"prompt": "p", **params},
        0.125,
        status,
        None,
        1,
        "boom" if status == "failed" else None,
        None,
    )


def test_everything_new_on_a_fresh_ledger() -> None:
    """With no ledger every job is new and runs; credits add up."""
    plan = make_plan([job("a", "a"), job("b", "b", price=0.25)], {})
    assert plan.counts["new"] == 2 and len(plan.to_run) == 2 and plan.credits == 0.375


def test_done_jobs_do_not_run() -> None:
    """A rerun of a finished manifest sends nothing."""
    plan = make_plan([job("a", "a")], {"a": row("a", "a", "done")})
    assert plan.to_run == [] and plan.credits == 0 and plan.counts["done"] == 1


def test_failed_jobs_wait_for_retry_failed() -> None:
    """Jobs that failed for good run again only when asked to."""
    known = {"a": row("a", "a", "failed")}
    assert make_plan([job("a", "a")], known).to_run == []
    assert len(make_plan([job("a", "a")], known, retry_failed=True).to_run) == 1


@pytest.mark.parametrize("status", ["pending", "running", "unknown"])
def test_unfinished_jobs_run(status: str) -> None:
    """Pending jobs, and jobs a dead run left in flight, run again."""
    plan = make_plan([job("a", "a")], {"a": row("a", "a", status)})
    assert len(plan.to_run) == 1
    assert plan.entries[0].state == ("pending" if status == "pending" else "unknown")


def test_edited_prompt_is_reported_as_changed() -> None:
    """A job whose name exists with other parameters is 'changed', naming the difference."""
    plan = make_plan([job("new", "a", prompt="edited")], {"old": row("old", "a", "done")})
    (entry,) = plan.entries
    assert entry.state == "changed" and entry.reason == "changed: prompt" and entry.runs
    assert plan.orphans == 1


def test_renamed_variant_is_done_not_changed() -> None:
    """Renaming keeps the id, so the job is done whatever its new name."""
    plan = make_plan([job("a", "renamed")], {"a": row("a", "old-name", "done")})
    assert plan.counts["done"] == 1 and plan.orphans == 0


@pytest.mark.parametrize(
    ("count", "rpm", "concurrency", "latency", "seconds"),
    [
        (0, 5, 2, 20, 0),
        (1, 5, 2, 20, 20),
        (10, 5, 2, 20, 9 * 12 + 20),  # the rate limit is the bottleneck
        (200, 600, 8, 0.5, 199 * 0.1 + 0.5),  # rate-bound: 20.4 s beats 25 waves of 0.5 s
        (200, 6000, 8, 0.5, 25 * 0.5),  # pool-bound: 25 waves of 0.5 s beat 2.49 s
        (100, 50, 17, 20, 99 * 1.2 + 20),
    ],
)
def test_estimate_takes_the_slower_limit(
    count: int, rpm: int, concurrency: int, latency: float, seconds: float
) -> None:
    """Wall time is the larger of rate-bound and pool-bound time."""
    assert estimate_seconds(
        count, rpm=rpm, concurrency=concurrency, latency=latency
    ) == pytest.approx(seconds)
