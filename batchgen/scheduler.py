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
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from . import policy, store
from .budget import CreditGuard
from .client import Lost, Reply, SegmindClient
from .errors import ApiError, AuthError, BatchgenError, CreditsError, ProtocolError
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
        self._now = now
        self._sleep = sleep
        self._rand = rand
        self._gate = Gate(clock, sleep)
        self._limiter = rate_limiter(settings.rpm)
        self._spacing = Spacing(60.0 / settings.rpm, clock, sleep)
        self._settled = asyncio.Condition()
        self.outcome = Outcome()

    async def run(self, jobs: Sequence[Job]) -> Outcome:
        """Send every job (or until the run is stopped); returns what happened."""
        queue = iter(jobs)
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(self._settings.concurrency, len(jobs))):
                    group.create_task(self._worker(queue))
        finally:
            self.outcome.spent = self._guard.spent
        return self.outcome

    async def _worker(self, queue: Iterator[Job]) -> None:
        while self.outcome.stopped is None and (job := next(queue, None)) is not None:
            await self._process(job)

    async def _process(self, job: Job) -> None:
        retries = limited = 0
        while self.outcome.stopped is None:
            await self._gate.wait()
            await self._limiter.acquire()
            if self.outcome.stopped is not None or not await self._reserve(job):
                return
            attempt = self._ledger.begin_attempt(job.id, self._run_id, job.price)
            await self._spacing.wait()
            result = await self._client.generate(job)
            verdict = await self._judge(result)
            reply = result if isinstance(result, Reply) else Reply(0, b"")
            cost = self._cost(job, verdict, reply)
            settle = _Settle(self._ledger, attempt, job, verdict, reply, cost)

            if verdict.action is Action.SAVE:
                await self._save(job, reply, settle)
                return
            if verdict.action is Action.RATE_LIMITED:
                limited += 1
                if limited > MAX_RATE_LIMITED:
                    reason = f"{verdict.reason}; still rate limited after {limited} tries"
                    settle("rate_limited", "failed", error=reason)
                    await self._release(job, cost, reply)
                    self._fail(job, reason)
                    return
                settle("rate_limited", "pending")
                await self._release(job, cost, reply)
                delay = policy.reset_delay(reply.headers, self._now())
                if delay is None:
                    delay = policy.backoff(limited, base=2.0, rand=self._rand)
                self._gate.close_for(delay)
                self._events.paused(delay, verdict.reason)
                continue
            if verdict.action is Action.RETRY:
                retries += 1
                outcome = _RETRY_OUTCOMES[verdict.billed]
                if retries > self._settings.retries:
                    reason = f"{verdict.reason} (gave up after {retries} attempts)"
                    settle(outcome, "failed", error=reason)
                    await self._release(job, cost, reply)
                    self._fail(job, reason)
                    return
                settle(outcome, "pending")
                await self._release(job, cost, reply)
                delay = policy.backoff(retries, rand=self._rand)
                self._events.retrying(job, verdict.reason, delay)
                await self._sleep(delay)
                continue
            if verdict.action is Action.FAIL_JOB:
                settle("failed", "failed")
                await self._release(job, cost, reply)
                self._fail(job, verdict.reason)
                return
            settle("stopped", "pending")
            await self._release(job, cost, reply)
            assert verdict.stop is not None
            await self._halt(
                _STOP_ERRORS[verdict.stop](verdict.reason, status=reply.status or None)
            )
            return

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

    async def _save(self, job: Job, reply: Reply, settle: _Settle) -> None:
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
            settle("unsaved", "pending", error=str(exc))
            await self._release(job, settle.cost, reply)
            await self._halt(exc)
            return
        settle("ok", "done", output=path.name)
        await self._release(job, settle.cost, reply)
        self.outcome.done += 1
        self._events.saved(job, path, settle.cost)

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

    async def _release(self, job: Job, cost: float, reply: Reply) -> None:
        async with self._settled:
            self._guard.settle(job.price, cost, reply.number("x-remaining-credits"))
            self._settled.notify_all()

    def _fail(self, job: Job, reason: str) -> None:
        self.outcome.failed += 1
        self._events.failed(job, reason)

    async def _halt(self, error: BatchgenError) -> None:
        async with self._settled:
            self._stop_now(error)
            self._settled.notify_all()

    def _stop_now(self, error: BatchgenError) -> None:
        if self.outcome.stopped is None:
            self.outcome.stopped = error
            self._events.stopping(str(error))


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
            remaining=self.reply.number("x-remaining-credits"),
            request_id=self.reply.headers.get("x-request-id"),
            output=output,
        )
