"""One ``batchgen run``: ledger → plan → pre-flight balance → worker pool → what happened.

This module wires the pieces together; it decides nothing the policy, the guard or the plan
decide, and it leaves exit codes and messages to the CLI.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Final

from . import client as api
from . import store
from .budget import CreditGuard
from .client import Lost, SegmindClient
from .errors import AuthError, CreditsError, LedgerError, UsageError
from .jobs import Job
from .ledger import Ledger
from .manifest import Manifest, RunSettings
from .plan import DEFAULT_LATENCY, Plan, make_plan
from .scheduler import Events, Outcome, Scheduler, Settings

#: Safe for a Free account: 5 requests a minute; at ~20 s a generation, 2 in flight keep up.
DEFAULTS: Final = RunSettings(
    rpm=5, concurrency=2, retries=4, latency=DEFAULT_LATENCY, timeout=api.READ_TIMEOUT
)
#: The emulator answers in well under a second and has no rate limit unless told to.
EMULATOR_DEFAULTS: Final = RunSettings(
    rpm=600, concurrency=8, retries=4, latency=0.3, timeout=api.READ_TIMEOUT
)
#: After a first Ctrl-C or SIGTERM, how long requests in flight may take to finish and be saved.
GRACE_SECONDS: Final = 60.0
#: Slack on the pace carried over from a dead run: its last send came a moment after its record.
RESUME_SLACK: Final = 0.5
#: What ``--emulator`` starts with: an account deep enough for any manifest one would try.
EMULATOR_CREDITS: Final = 10_000.0


def run_folder(out: Path, manifest: Manifest) -> Path:
    """Where a manifest's results live: ``<out>/<name>/``."""
    return out / manifest.name


def resolve(flags: RunSettings, manifest: RunSettings, *, emulator: bool) -> RunSettings:
    """Flags win over the manifest's ``run:``, which wins over the defaults."""
    base = EMULATOR_DEFAULTS if emulator else DEFAULTS
    merged = {}
    for name in RunSettings.__dataclass_fields__:
        values = (getattr(flags, name), getattr(manifest, name), getattr(base, name))
        merged[name] = next((v for v in values if v is not None), None)
    return RunSettings(**merged)


def read_uploads(jobs: list[Job]) -> dict[Path, bytes]:
    """Read each uploaded file once, checking it is still what the job ids were made from."""
    files: dict[Path, bytes] = {}
    for job in jobs:
        for upload in job.uploads.values():
            if upload.path in files:
                continue
            try:
                data = upload.path.read_bytes()
            except OSError as exc:
                raise UsageError(f"cannot read {upload.path}: {exc.strerror}") from exc
            if hashlib.sha256(data).hexdigest() != upload.digest:
                raise UsageError(f"{upload.path} changed while batchgen was reading it; run again")
            files[upload.path] = data
    return files


async def read_balance(client: SegmindClient, *, required: bool) -> float | None:
    """The account's balance before the first paid request, so ``--min-credits`` holds from the
    first wave on. None when it cannot be read and nothing depends on it."""
    reply = await client.credits()
    if isinstance(reply, Lost) or reply.status != 200:
        if not isinstance(reply, Lost) and reply.status in (401, 403):
            raise AuthError(
                f"the API rejected the key ({reply.status}); check SEGMIND_API_KEY",
                status=reply.status,
            )
        why = reply.reason if isinstance(reply, Lost) else f"HTTP {reply.status}"
        if required:
            raise CreditsError(
                f"cannot read the account balance ({why}), so --min-credits cannot be enforced"
            )
        return None
    try:
        body = json.loads(reply.body)
        return float(body.get("credits", 0)) + float(body.get("free-credits", 0))
    except (ValueError, TypeError, AttributeError):
        if required:
            raise CreditsError(
                "the balance answer was not understood, so --min-credits cannot be enforced"
            ) from None
        return None


def api_key() -> str:
    """The key from SEGMIND_API_KEY (never a flag: other processes can read command lines)."""
    key = os.environ.get("SEGMIND_API_KEY", "").strip()
    if not key:
        raise UsageError(
            "SEGMIND_API_KEY is not set: export your Segmind key in it (or try --emulator)"
        )
    return key


@asynccontextmanager
async def endpoint(key: str | None) -> AsyncIterator[tuple[str, str]]:
    """The base URL and key to use: the configured API's, or with no key the built-in emulator."""
    if key is None:
        from .emulator import EmulatorConfig, running

        local_key = "SG_emulator_" + secrets.token_hex(8)
        config = EmulatorConfig(key=local_key, credits=EMULATOR_CREDITS, latency=0.3, jitter=0.1)
        async with running(config) as url:
            yield url, local_key
        return
    yield os.environ.get("BATCHGEN_ENDPOINT", api.DEFAULT_ENDPOINT), key


async def execute(
    ledger: Ledger,
    plan: Plan,
    settings: RunSettings,
    *,
    base_url: str,
    key: str,
    events: Events,
) -> Outcome:
    """Send the plan's jobs; the ledger records everything as it happens.

    The first SIGINT or SIGTERM stops new sends and lets requests in flight finish; a second
    abandons them (their outcome is then unknown, and they run again on resume).
    """
    assert settings.concurrency and settings.rpm and settings.retries is not None
    assert settings.timeout
    jobs = plan.to_run
    files = read_uploads(jobs)
    resume_after = _resume_after(ledger, settings.rpm)
    run_id = ledger.start_run(os.getpid())
    outcome: Outcome | None = None
    try:
        async with api.session(settings.concurrency, settings.timeout) as http:
            client = SegmindClient(http, key=key, endpoint=base_url, files=files)
            balance = await read_balance(client, required=settings.min_credits is not None)
            scheduler = Scheduler(
                client=client,
                ledger=ledger,
                folder=ledger.path.parent,
                settings=Settings(settings.concurrency, settings.rpm, settings.retries),
                guard=CreditGuard(settings.max_credits, settings.min_credits, balance),
                events=events,
                run_id=run_id,
                grace=GRACE_SECONDS,
                resume_after=resume_after,
            )
            try:
                with _signals(scheduler.interrupt):
                    await scheduler.run(jobs)
            finally:
                outcome = scheduler.outcome
    finally:
        try:
            # Only an abandoned worker leaves a job running: its request may have been paid.
            ledger.recover()
            ledger.finish_run(run_id, _describe(outcome))
        except LedgerError:
            if outcome is None or outcome.stopped is None:
                raise
            # The run already stopped, most likely for this very reason (a full disk); its
            # stop message is the useful one, and the next run recovers these rows.
    return outcome


def _resume_after(ledger: Ledger, rpm: int) -> float:
    """Seconds to wait before the first send so the pace holds across a crash and a restart."""
    last = ledger.last_attempt_at()
    if last is None:
        return 0.0
    return max(0.0, last + 60.0 / rpm + RESUME_SLACK - time.time())


@contextmanager
def _signals(handler: Callable[[], None]) -> Iterator[None]:
    # Plain handlers that hand the signal to the loop, swapped in and out with one call each:
    # loop.remove_signal_handler would reset to the system default first, and a SIGTERM in
    # that instant would kill the process.
    loop = asyncio.get_running_loop()

    def forward(signum: int, frame: object) -> None:
        loop.call_soon_threadsafe(handler)

    signals = (signal.SIGINT, signal.SIGTERM)
    before = {sig: signal.signal(sig, forward) for sig in signals}
    try:
        yield
    finally:
        for sig in signals:
            signal.signal(sig, before[sig])


def prepare(ledger: Ledger, manifest: Manifest, *, retry_failed: bool = False) -> tuple[Plan, int]:
    """Bring the ledger up to date with the manifest (and with a run that died) and plan.

    Returns the plan and how many images a dead run had saved without recording them: those
    are adopted as done rather than paid for again.
    """
    folder = ledger.path.parent
    ledger.sync(manifest.jobs)
    store.sweep(folder)
    ledger.recover()
    if retry_failed:
        ledger.reset_failed()
    known = ledger.jobs()
    adopted = 0
    for job in manifest.jobs:
        row = known.get(job.id)
        if row is not None and row.status != "done" and (path := store.find_saved(folder, job)):
            ledger.adopt(job.id, path.name)
            adopted += 1
    if adopted:
        known = ledger.jobs()
    return make_plan(manifest.jobs, known, retry_failed=retry_failed), adopted


def _describe(outcome: Outcome | None) -> str:
    if outcome is None:
        return "aborted"
    if outcome.stopped is not None:
        return f"stopped: {type(outcome.stopped).__name__}"
    return "failed" if outcome.failed else "finished"
