"""The worker pool: sends jobs at the account's pace, within the budget, and records every outcome.

``concurrency`` workers pull jobs from one queue, so no more than that many requests are ever
in flight. Before each send a worker waits for the 429 gate and the rate limiter, reserves the
price with the credit guard and marks the attempt in the ledger; after it, the policy decides
and the worker saves, retries, fails the job or stops the run. A failed job is a ledger row
with a reason, never an exception escaping the pool.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from . import policy, store
from .breaker import Breaker
from .budget import CreditGuard
from .client import Lost, Reply, SegmindClient
from .errors import (
    ApiError,
    AuthError,
    BatchgenError,
    CreditsError,
    Interrupted,
    OutageError,
    ProtocolError,
)
from .jobs import Job
from .ledger import Ledger
from .meters import Gate, Spacing, rate_limiter
from .policy import Action, Billed, Stop, Verdict

#: 429s a single job may meet before it is failed; they cost nothing but must not loop forever.
MAX_RATE_LIMITED: Final = 20


@dataclass(frozen=True, slots=True)
class Settings:
    concurrency: int
    rpm: int
    retries: int


class Events(Protocol):
    """What a run reports as it goes (the progress display implements this)."""

    def saved(self, job: Job, path: Path, cost: float) -> None: ...
    def failed(self, job: Job, reason: str) -> None: ...
    def retrying(self, job: Job, reason: str, delay: float) -> None: ...
    def paused(self, seconds: float, reason: str) -> None: ...
    def stopping(self, reason: str) -> None: ...


@dataclass(slots=True)
class Outcome:
    done: int = 0
    failed: int = 0
    spent: float = 0.0  # credits billed or possibly billed, as the guard counted them
    stopped: BatchgenError | None = None


#: How a retried attempt is recorded: "unknown" ones may have been paid, "unusable" ones were.
_RETRY_OUTCOMES: Final = {Billed.NO: "retry", Billed.UNKNOWN: "unknown", Billed.YES: "unusable"}

_STOP_ERRORS: Final[dict[Stop, type[ApiError]]] = {
    Stop.AUTH: AuthError,
    Stop.CREDITS: CreditsError,
    Stop.CONFIG: ProtocolError,
    Stop.PROTOCOL: ProtocolError,
}


class Scheduler:
    """One run's worker pool. Create and run it inside the event loop."""

    def __init__(
        self,
        *,
        client: SegmindClient,
        ledger: Ledger,
        folder: Path,
        settings: Settings,
        guard: CreditGuard,
        events: Events,
        run_id: int,
        breaker: Breaker | None = None,
        grace: float = 60.0,
        resume_after: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._client = client
        self._ledger = ledger
        self._folder = folder
        self._settings = settings
        self._guard = guard
        self._events = events
        self._run_id = run_id
        self._breaker = breaker or Breaker()
        self._grace = grace
        self._now = now
        self._sleep = sleep
        self._rand = rand
        self._gate = Gate(clock, sleep)
        self._limiter = rate_limiter(settings.rpm)
        self._spacing = Spacing(60.0 / settings.rpm, clock, sleep, first_after=resume_after)
        self._settled = asyncio.Condition()
        self._workers: list[asyncio.Task[None]] = []
        self._waiting: set[asyncio.Task[Any]] = set()  # workers with no request in flight
        self._deadline: asyncio.TimerHandle | None = None
        self.outcome = Outcome()

    async def run(self, jobs: Sequence[Job]) -> Outcome:
        """Send every job (or until the run is stopped); returns what happened."""
        queue = iter(jobs)
        try:
            async with asyncio.TaskGroup() as group:
                count = min(self._settings.concurrency, len(jobs))
                self._workers = [group.create_task(self._worker(queue)) for _ in range(count)]
        finally:
            if self._deadline is not None:
                self._deadline.cancel()
            self.outcome.spent = self._guard.spent
        return self.outcome

    def interrupt(self) -> None:
        """A signal: the first sends nothing new and lets requests in flight finish (within the
        grace period); a second abandons them, leaving their outcome unknown."""
        if isinstance(self.outcome.stopped, Interrupted):
            self._abandon()
            return
        self._stop_now(Interrupted("interrupted: nothing new is sent"))
        for task in self._waiting:
            task.cancel()
        self._deadline = asyncio.get_running_loop().call_later(self._grace, self._abandon)

    def _abandon(self) -> None:
        for task in self._workers:
            task.cancel()

    @contextmanager
    def _idle(self) -> Iterator[None]:
        """Mark a wait with no request in flight: an interrupt may cut it short."""
        task = asyncio.current_task()
        assert task is not None
        self._waiting.add(task)
        try:
            yield
        finally:
            self._waiting.discard(task)

    async def _worker(self, queue: Iterator[Job]) -> None:
        while self.outcome.stopped is None and (job := next(queue, None)) is not None:
            try:
                await self._process(job)
            except BatchgenError as exc:  # the ledger or the disk failed: stop paying
                await self._halt(exc)

    async def _process(self, job: Job) -> None:
        tries = _Tries()
        while self.outcome.stopped is None:
            with self._idle():
                await self._gate.wait()
                await self._limiter.acquire()
                if self.outcome.stopped is not None or not await self._reserve(job):
                    return
            attempt = self._ledger.begin_attempt(job.id, self._run_id, job.price)
            await self._spacing.wait()
            result = await self._client.generate(job)
            verdict = await self._judge(result)
            reply = result if isinstance(result, Reply) else Reply(0, b"")
            settle = _Settle(
                self._ledger, attempt, job, verdict, reply, self._cost(job, verdict, reply)
            )
            delay = await self._act(job, settle, tries)
            if delay is None or self.outcome.stopped is not None:
                return  # never start a wait once the run is stopping: nothing would cut it short
            with self._idle():
                await self._sleep(delay)

    async def _act(self, job: Job, settle: _Settle, tries: _Tries) -> float | None:
        """Carry out a verdict; returns the wait before the next attempt, or None when done."""
        verdict, reply = settle.verdict, settle.reply
        if verdict.action is Action.SAVE:
            self._breaker.success()
            await self._save(job, settle)
            return None
        if verdict.action is Action.RATE_LIMITED:
            tries.limited += 1
            if tries.limited > MAX_RATE_LIMITED:
                reason = f"{verdict.reason}; still limited after {tries.limited} tries"
                await self._fail(job, settle, reason, "rate_limited")
                return None
            await self._end(settle, "rate_limited", "pending")
            delay = policy.reset_delay(reply.headers, self._now())
            if delay is None:
                delay = policy.backoff(tries.limited, base=2.0, rand=self._rand)
            self._gate.close_for(delay)
            self._events.paused(delay, verdict.reason)
            return 0.0
        if verdict.action is Action.RETRY:
            return await self._retry(job, settle, tries)
        if verdict.action is Action.FAIL_JOB:
            self._breaker.success()  # the API answered: it is up, this job is wrong
            await self._fail(job, settle, verdict.reason)
            return None
        assert verdict.stop is not None
        await self._end(settle, "stopped", "pending")
        await self._halt(_STOP_ERRORS[verdict.stop](verdict.reason, status=reply.status or None))
        return None

    async def _retry(self, job: Job, settle: _Settle, tries: _Tries) -> float | None:
        verdict = settle.verdict
        outcome = _RETRY_OUTCOMES[verdict.billed]
        pause = self._breaker.failure()
        if self._breaker.given_up:
            await self._end(settle, outcome, "pending")
            await self._halt(OutageError(
                f"the API kept failing through {self._breaker.max_trips} pauses "
                f"(last: {verdict.reason}); it looks down for now"
            ))  # fmt: skip
            return None
        if pause is not None:
            # An outage, not this job's fault: pause everyone; this try does not count.
            await self._end(settle, outcome, "pending")
            self._gate.close_for(pause)
            self._events.paused(pause, f"most recent requests failed ({verdict.reason})")
            return 0.0
        tries.retries += 1
        if tries.retries > self._settings.retries:
            await self._fail(
                job, settle, f"{verdict.reason} (gave up after {tries.retries} attempts)", outcome
            )
            return None
        await self._end(settle, outcome, "pending")
        delay = policy.backoff(tries.retries, rand=self._rand)
        self._events.retrying(job, verdict.reason, delay)
        return delay

    async def _fail(self, job: Job, settle: _Settle, reason: str, outcome: str = "failed") -> None:
        await self._end(settle, outcome, "failed", error=reason)
        self.outcome.failed += 1
        self._events.failed(job, reason)

    async def _judge(self, result: Reply | Lost) -> Verdict:
        if isinstance(result, Lost):
            return policy.lost(result.reason, maybe_billed=result.maybe_billed)
        verdict = policy.classify(result.status, result.body)
        if verdict.action is Action.SAVE:
            try:
                await asyncio.to_thread(store.check_image, result.body)
            except store.InvalidImage as exc:
                return policy.unusable_image(str(exc))
        return verdict

    def _cost(self, job: Job, verdict: Verdict, reply: Reply) -> float:
        if verdict.billed is Billed.NO:
            return 0.0
        reported = reply.number("x-cost")
        return reported if reported is not None and reported >= 0 else job.price

    async def _save(self, job: Job, settle: _Settle) -> None:
        reply = settle.reply
        meta = {
            "request_id": reply.headers.get("x-request-id"),
            "cost": settle.cost,
            "seed_value": reply.headers.get("x-seed-value"),
            "generation_time": reply.headers.get("x-generation-time"),
            "saved_at": self._now(),
        }
        try:
            path = await asyncio.to_thread(store.save, self._folder, job, reply.body, meta)
        except BatchgenError as exc:
            # Paid for, but nowhere to put it: stop before paying for more.
            await self._end(settle, "unsaved", "pending", error=str(exc))
            await self._halt(exc)
            return
        await self._end(settle, "ok", "done", output=path.name)
        self.outcome.done += 1
        self._events.saved(job, path, settle.cost)

    async def _end(
        self,
        settle: _Settle,
        outcome: str,
        job_status: str,
        *,
        error: str | None = None,
        output: str | None = None,
    ) -> None:
        """Record the attempt's end, then give back its reservation (its cost stays spent)."""
        settle(outcome, job_status, error=error, output=output)
        async with self._settled:
            self._guard.settle(
                settle.job.price, settle.cost, settle.reply.number("x-remaining-credits")
            )
            self._settled.notify_all()

    async def _reserve(self, job: Job) -> bool:
        """Hold the job's price; wait for in-flight requests to settle while it does not fit."""
        async with self._settled:
            while (refusal := self._guard.reserve(job.price)) is not None:
                if self._guard.in_flight == 0:
                    self._stop_now(CreditsError(f"the credit guard stopped the run: {refusal}"))
                    return False
                await self._settled.wait()
                if self.outcome.stopped is not None:
                    return False
        return True

    async def _halt(self, error: BatchgenError) -> None:
        async with self._settled:
            self._stop_now(error)
            self._settled.notify_all()

    def _stop_now(self, error: BatchgenError) -> None:
        if self.outcome.stopped is None:
            self.outcome.stopped = error
            self._events.stopping(str(error))


@dataclass(slots=True)
class _Tries:
    retries: int = 0  # transient failures this job has spent of --retries
    limited: int = 0  # 429s it met


@dataclass(slots=True)
class _Settle:
    """Records one attempt's end in the ledger with the facts of its reply."""

    ledger: Ledger
    attempt: int
    job: Job
    verdict: Verdict
    reply: Reply
    cost: float

    def __call__(
        self, outcome: str, job_status: str, *, error: str | None = None, output: str | None = None
    ) -> None:
        billed = self.verdict.billed
        self.ledger.settle(
            self.attempt,
            self.job.id,
            outcome=outcome,
            job_status=job_status,
            http_status=self.reply.status or None,
            error=error or (None if outcome == "ok" else self.verdict.reason),
            cost=None if billed is Billed.UNKNOWN else self.cost,
            reported_cost=self.reply.number("x-cost") if billed is Billed.YES else None,
            remaining=self.reply.number("x-remaining-credits"),
            request_id=self.reply.headers.get("x-request-id"),
            output=output,
        )
