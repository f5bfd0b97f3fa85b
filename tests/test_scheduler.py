"""The worker pool: pace, concurrency, retries, the 429 gate, the credit guard and stop conditions."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from batchgen.breaker import Breaker
from batchgen.budget import CreditGuard
from batchgen.client import Lost, Reply
from batchgen.errors import (
    AuthError,
    CreditsError,
    Interrupted,
    LedgerError,
    OutageError,
    ProtocolError,
)
from batchgen.jobs import Job
from batchgen.ledger import Ledger
from batchgen.scheduler import Outcome, Scheduler, Settings


def jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (1, 2, 3)).save(buffer, "JPEG")
    return buffer.getvalue()


JPEG = jpeg()
OK = Reply(200, JPEG, {"x-cost": "0.125", "x-request-id": "r"})


def make_jobs(count: int, price: float = 0.125) -> list[Job]:
    return [Job(id=f"job{i:04d}", name=f"v-s{i}", variant="v", params={"prompt": f"p{i}", "seed": i}, price=price)
            for i in range(count)]  # fmt: skip


class SpyClient:
    """Answers from a script (or a function of the call number) and records what was sent when."""

    def __init__(self, answer: Callable[[int, Job], Reply | Lost], latency: float = 0.0) -> None:
        self.answer = answer
        self.latency = latency
        self.sent: list[tuple[float, str]] = []
        self.in_flight = 0
        self.peak = 0
        self._calls = itertools.count()

    async def generate(self, job: Job) -> Reply | Lost:
        self.sent.append((asyncio.get_running_loop().time(), job.id))
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(self.latency)
            return self.answer(next(self._calls), job)
        finally:
            self.in_flight -= 1


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def saved(self, job: Job, path: Path, cost: float) -> None:
        self.events.append(("saved", job.name))

    def failed(self, job: Job, reason: str) -> None:
        self.events.append(("failed", reason))

    def retrying(self, job: Job, reason: str, delay: float) -> None:
        self.events.append(("retrying", reason))

    def paused(self, seconds: float, reason: str) -> None:
        self.events.append(("paused", f"{seconds:.1f}"))

    def stopping(self, reason: str) -> None:
        self.events.append(("stopping", reason))


async def no_sleep(seconds: float) -> None:
    await asyncio.sleep(0)


async def run(
    tmp_path: Path,
    client: SpyClient,
    jobs: list[Job],
    *,
    concurrency: int = 4,
    rpm: int = 60_000,
    retries: int = 2,
    guard: CreditGuard | None = None,
    sleep: Callable[[float], object] = no_sleep,
    ledger: Ledger | None = None,
    signals: Sequence[float] = (),
    **extra: Any,
) -> tuple[Outcome, Ledger, Recorder]:
    """Run a scheduler over ``jobs``; ``signals`` are times (s) at which to interrupt it."""
    ledger = ledger or Ledger.open(tmp_path)
    ledger.sync(jobs)
    events = Recorder()
    scheduler = Scheduler(
        client=client,  # type: ignore[arg-type]
        ledger=ledger,
        folder=tmp_path,
        settings=Settings(concurrency, rpm, retries),
        guard=guard or CreditGuard(),
        events=events,
        run_id=ledger.start_run(1),
        sleep=sleep,  # type: ignore[arg-type]
        rand=lambda: 0.5,
        **extra,
    )
    loop = asyncio.get_running_loop()
    for at in signals:
        loop.call_later(at, scheduler.interrupt)
    return await scheduler.run(jobs), ledger, events


def statuses(ledger: Ledger) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in ledger.jobs().values():
        counts[row.status] = counts.get(row.status, 0) + 1
    return counts


async def test_every_job_saved_and_recorded(tmp_path: Path) -> None:
    """A clean run saves every image and marks every job done with its output."""
    outcome, ledger, _ = await run(tmp_path, SpyClient(lambda n, j: OK), make_jobs(10))
    assert outcome.done == 10 and outcome.stopped is None and outcome.spent == pytest.approx(1.25)
    assert statuses(ledger) == {"done": 10}
    for row in ledger.jobs().values():
        assert (tmp_path / row.output).read_bytes() == JPEG  # type: ignore[operator]


async def test_concurrency_is_never_exceeded(tmp_path: Path) -> None:
    """No more requests are in flight than the concurrency setting."""
    client = SpyClient(lambda n, j: OK, latency=0.02)
    await run(tmp_path, client, make_jobs(20), concurrency=3)
    assert client.peak == 3


async def test_rate_limit_spaces_sends(tmp_path: Path) -> None:
    """At rpm R the sends are at least 60/R seconds apart: no burst, even at the start."""
    client = SpyClient(lambda n, j: OK)
    await run(tmp_path, client, make_jobs(8), concurrency=8, rpm=1200)  # 50 ms apart
    times = sorted(t for t, _ in client.sent)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.05 - 1e-3, gaps  # 1 ms: the spy stamps a moment after the meter


async def test_server_errors_are_retried_then_succeed(tmp_path: Path) -> None:
    """A 500 or a lost answer is retried with backoff; the job ends done with each attempt recorded."""
    script = [Reply(500, b'{"error": "boom"}'), Lost("reset", maybe_billed=True), OK]
    client = SpyClient(lambda n, j: script[n])
    outcome, ledger, events = await run(tmp_path, client, make_jobs(1), concurrency=1, retries=3)
    assert outcome.done == 1 and [e for e, _ in events.events] == ["retrying", "retrying", "saved"]
    outcomes = [r[0] for r in ledger._db.execute("SELECT outcome FROM attempts ORDER BY id")]
    assert outcomes == ["retry", "unknown", "ok"]
    assert ledger.spending().unknown_requests == 1


async def test_retries_are_bounded(tmp_path: Path) -> None:
    """After --retries retries the job fails for good with the last reason; the run goes on."""
    client = SpyClient(
        lambda n, j: Reply(503, b"<html>Service Unavailable</html>") if j.id == "job0000" else OK
    )
    outcome, ledger, _ = await run(tmp_path, client, make_jobs(3), concurrency=1, retries=2)
    assert (outcome.done, outcome.failed) == (2, 1)
    assert sum(1 for _, job_id in client.sent if job_id == "job0000") == 3
    row = ledger.jobs()["job0000"]
    assert (
        row.status == "failed"
        and "server error 503" in (row.error or "")
        and "after 3 attempts" in (row.error or "")
    )


async def test_bad_request_fails_only_that_job(tmp_path: Path) -> None:
    """A 400 fails its job at once, without retries, and the others finish."""
    client = SpyClient(
        lambda n, j: Reply(400, b'{"error": "bad prompt"}') if j.id == "job0001" else OK
    )
    outcome, _, _ = await run(tmp_path, client, make_jobs(3), concurrency=1)
    assert (outcome.done, outcome.failed) == (2, 1) and len(client.sent) == 3


async def test_non_image_200_is_paid_and_retried(tmp_path: Path) -> None:
    """A 200 carrying HTML is recorded as billed but unusable and retried."""
    script = [Reply(200, b"<html>proxy</html>"), OK]
    outcome, ledger, _ = await run(
        tmp_path, SpyClient(lambda n, j: script[n]), make_jobs(1), concurrency=1
    )
    assert outcome.done == 1 and outcome.spent == pytest.approx(0.25)
    rows = ledger._db.execute("SELECT outcome, cost FROM attempts ORDER BY id").fetchall()
    assert rows == [("unusable", 0.125), ("ok", 0.125)]


async def test_auth_failure_stops_the_run(tmp_path: Path) -> None:
    """A 401 stops the run: no retries, nothing new sent, jobs stay pending."""
    client = SpyClient(lambda n, j: Reply(401, b'{"error": "Invalid API key"}'))
    outcome, ledger, _ = await run(tmp_path, client, make_jobs(10), concurrency=1)
    assert isinstance(outcome.stopped, AuthError) and len(client.sent) == 1
    assert statuses(ledger) == {"pending": 10}


async def test_unknown_url_stops_the_run(tmp_path: Path) -> None:
    """A 404 means the endpoint is wrong: the run stops."""
    outcome, _, _ = await run(
        tmp_path, SpyClient(lambda n, j: Reply(404, b"")), make_jobs(3), concurrency=1
    )
    assert isinstance(outcome.stopped, ProtocolError)


async def test_out_of_credits_finishes_in_flight_then_stops(tmp_path: Path) -> None:
    """A 406 about credits stops new sends; requests already in flight are still saved."""
    client = SpyClient(
        lambda n, j: Reply(406, b'{"error": "Insufficient credits"}') if n == 0 else OK,
        latency=0.05,
    )
    outcome, ledger, _ = await run(tmp_path, client, make_jobs(20), concurrency=4, rpm=600_000)
    assert isinstance(outcome.stopped, CreditsError)
    assert len(client.sent) == 4 and outcome.done == 3
    assert statuses(ledger) == {"done": 3, "pending": 17}


async def test_max_credits_is_never_exceeded_with_requests_in_flight(tmp_path: Path) -> None:
    """The spend cap holds however many workers there are, and the guard stops the run itself."""
    client = SpyClient(lambda n, j: OK, latency=0.01)
    guard = CreditGuard(max_credits=1.0)
    outcome, _, _ = await run(tmp_path, client, make_jobs(30), concurrency=8, guard=guard)
    assert len(client.sent) == 8 and outcome.spent == pytest.approx(1.0)
    assert isinstance(outcome.stopped, CreditsError) and "--max-credits" in str(outcome.stopped)


async def test_min_credits_floor_holds_from_the_first_wave(tmp_path: Path) -> None:
    """With a known balance the floor is never crossed, even by the first concurrent wave."""
    client = SpyClient(lambda n, j: OK, latency=0.01)
    guard = CreditGuard(min_credits=9.0, balance=10.0)
    outcome, _, _ = await run(tmp_path, client, make_jobs(30), concurrency=16, guard=guard)
    assert len(client.sent) == 8 and isinstance(outcome.stopped, CreditsError)


async def test_429_pauses_every_worker(tmp_path: Path) -> None:
    """After a 429 with a reset hint no worker sends until the reset has passed."""
    loop_sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        loop_sleeps.append(seconds)
        await asyncio.sleep(seconds)

    limited = Reply(429, b'{"error": "Rate limit exceeded"}', {"retry-after": "0.3"})
    client = SpyClient(lambda n, j: limited if n == 0 else OK)
    outcome, ledger, events = await run(tmp_path, client, make_jobs(6), concurrency=3, sleep=sleep)
    assert outcome.done == 6 and ("paused", "0.3") in events.events
    first = client.sent[0][0]
    later = [t - first for t, _ in client.sent[1:]]
    # Workers that had not yet sent when the 429 came back waited out the pause.
    assert sorted(later)[-3:] >= [0.29] * 3
    assert (
        ledger._db.execute("SELECT COUNT(*) FROM attempts WHERE outcome='rate_limited'").fetchone()[
            0
        ]
        == 1
    )


async def test_disk_failure_stops_before_paying_for_more(tmp_path: Path) -> None:
    """When an image cannot be written the run stops; the job stays pending, its cost recorded."""
    blocker = tmp_path / "out"
    blocker.write_text("a file where the folder should be")
    ledger = Ledger.open(tmp_path)
    jobs = make_jobs(5)
    ledger.sync(jobs)
    client = SpyClient(lambda n, j: OK)
    scheduler = Scheduler(
        client=client, ledger=ledger, folder=blocker, settings=Settings(1, 60_000, 2),  # type: ignore[arg-type]
        guard=CreditGuard(), events=Recorder(), run_id=ledger.start_run(1), sleep=no_sleep,
    )  # fmt: skip
    outcome = await scheduler.run(jobs)
    assert outcome.stopped is not None and "cannot write" in str(outcome.stopped)
    assert len(client.sent) == 1 and statuses(ledger) == {"pending": 5}
    assert ledger._db.execute("SELECT outcome, cost FROM attempts").fetchall() == [
        ("unsaved", 0.125)
    ]


def test_sidecar_names_request(tmp_path: Path) -> None:
    """Saved images carry their parameters and request id in the sidecar."""
    _, ledger, _ = asyncio.run(run(tmp_path, SpyClient(lambda n, j: OK), make_jobs(1)))
    row = ledger.jobs()["job0000"]
    sidecar = json.loads((tmp_path / row.output).with_suffix(".json").read_text())  # type: ignore[operator]
    assert sidecar["request_id"] == "r" and sidecar["params"]["seed"] == 0


async def test_interrupt_finishes_in_flight_and_sends_nothing_new(tmp_path: Path) -> None:
    """A first interrupt stops new sends; the requests in flight are still saved."""
    client = SpyClient(lambda n, j: OK, latency=0.2)
    outcome, ledger, _ = await run(tmp_path, client, make_jobs(10), concurrency=2, signals=[0.05])
    assert isinstance(outcome.stopped, Interrupted)
    assert len(client.sent) == 2 and outcome.done == 2
    assert statuses(ledger) == {"done": 2, "pending": 8}


async def test_interrupt_cuts_short_backoff_and_credit_waits(tmp_path: Path) -> None:
    """Workers waiting (backoff, gate, limiter) stop at once on an interrupt, not after their wait."""

    async def slow_sleep(seconds: float) -> None:  # backoffs (≥ 1 s here) become very long
        await asyncio.sleep(30 if seconds >= 0.5 else seconds)

    client = SpyClient(lambda n, j: Reply(503, b""))
    started = asyncio.get_running_loop().time()
    outcome, ledger, _ = await run(
        tmp_path, client, make_jobs(3), concurrency=3, sleep=slow_sleep, signals=[0.1], retries=5
    )
    assert asyncio.get_running_loop().time() - started < 5
    assert isinstance(outcome.stopped, Interrupted) and statuses(ledger) == {"pending": 3}


async def test_second_interrupt_abandons_requests_in_flight(tmp_path: Path) -> None:
    """A second interrupt cancels requests in flight; they stay 'running' for recovery to mark."""
    client = SpyClient(lambda n, j: OK, latency=30)
    outcome, ledger, _ = await run(
        tmp_path, client, make_jobs(5), concurrency=2, signals=[0.05, 0.1]
    )
    assert isinstance(outcome.stopped, Interrupted) and outcome.done == 0
    assert statuses(ledger) == {"running": 2, "pending": 3}


async def test_grace_period_bounds_the_wait_for_in_flight(tmp_path: Path) -> None:
    """Requests still in flight when the grace period ends are abandoned."""
    client = SpyClient(lambda n, j: OK, latency=30)
    started = asyncio.get_running_loop().time()
    await run(tmp_path, client, make_jobs(2), concurrency=2, signals=[0.05], grace=0.2)
    assert asyncio.get_running_loop().time() - started < 5


async def test_breaker_pauses_then_gives_up_without_failing_jobs(tmp_path: Path) -> None:
    """A persistent outage pauses the run, then stops it; jobs stay pending, retries unspent."""
    client = SpyClient(lambda n, j: Reply(503, b"<html>down</html>"))
    breaker = Breaker(window=4, threshold=1.0, base_pause=0.01, max_trips=2)
    outcome, ledger, events = await run(
        tmp_path, client, make_jobs(10), concurrency=2, retries=50, breaker=breaker
    )
    assert isinstance(outcome.stopped, OutageError) and outcome.failed == 0
    assert [e for e, _ in events.events].count("paused") == 2
    assert statuses(ledger) == {"pending": 10} and len(client.sent) == 12


async def test_breaker_closes_when_the_api_recovers(tmp_path: Path) -> None:
    """After a pause, successes close the breaker and the run finishes."""
    client = SpyClient(lambda n, j: Reply(500, b"") if n < 4 else OK)
    breaker = Breaker(window=4, threshold=1.0, base_pause=0.01)
    outcome, _, events = await run(
        tmp_path, client, make_jobs(6), concurrency=1, retries=5, breaker=breaker
    )
    assert outcome.done == 6 and outcome.failed == 0 and ("paused", "0.0") in events.events


async def test_ledger_failure_stops_the_run(tmp_path: Path) -> None:
    """If the ledger cannot be written the run stops with that error instead of crashing the pool."""

    class BrokenLedger(Ledger):
        def begin_attempt(self, job_id: str, run_id: int, reserved: float) -> int:
            raise LedgerError("the ledger could not be written: database or disk is full")

    ledger = BrokenLedger.open(tmp_path)
    client = SpyClient(lambda n, j: OK)
    outcome, _, _ = await run(tmp_path, client, make_jobs(5), concurrency=2, ledger=ledger)
    assert isinstance(outcome.stopped, LedgerError) and client.sent == []


async def test_pace_carries_over_from_a_dead_run(tmp_path: Path) -> None:
    """resume_after delays the first send, so a restart does not break the rate limit."""
    client = SpyClient(lambda n, j: OK)
    started = asyncio.get_running_loop().time()
    await run(tmp_path, client, make_jobs(1), resume_after=0.3)
    assert client.sent[0][0] - started >= 0.3 - 1e-3
