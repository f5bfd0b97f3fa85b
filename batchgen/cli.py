"""The command line: parse, delegate, and turn outcomes into messages and exit codes.

Exit codes: 0 every job done · 1 finished, some jobs failed for good (or a run-stopping
fault) · 2 bad manifest or usage, nothing sent · 3 stopped by the credit guard or an empty
account (resumable) · 4 the API rejected the key · 130 interrupted (resumable).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console
from rich.markup import escape

from . import __version__, lock, report, runner
from . import plan as plans
from . import status as status_view
from .errors import (
    AuthError,
    BatchgenError,
    CreditsError,
    Interrupted,
    ManifestError,
    UsageError,
)
from .ledger import Ledger
from .manifest import Manifest, RunSettings, load_manifest
from .plan import Plan
from .progress import Display
from .scheduler import Outcome

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CREDITS, EXIT_AUTH, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

ERR = Console(stderr=True, highlight=False, soft_wrap=True)
OUT = Console(highlight=False, soft_wrap=True)


def exit_code(error: BatchgenError) -> int:
    """The documented exit code for an error."""
    if isinstance(error, Interrupted):
        return EXIT_INTERRUPTED
    if isinstance(error, (ManifestError, UsageError)):
        return EXIT_USAGE
    if isinstance(error, CreditsError):
        return EXIT_CREDITS
    if isinstance(error, AuthError):
        return EXIT_AUTH
    return EXIT_FAILED


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except ManifestError as exc:
        for problem in exc.problems:
            _error(problem)
        _exit(EXIT_USAGE)
    except BatchgenError as exc:
        _error(exc)
        _exit(exit_code(exc))


def _error(what: object) -> None:
    # Messages quote the user's own text: it must never be read as markup.
    ERR.print(f"[red]error:[/] {escape(str(what))}", soft_wrap=True)


def _exit(code: int) -> NoReturn:
    raise SystemExit(code)


def _out_option(function: F) -> F:
    return click.option(
        "--out",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("output"),
        show_default=True,
        help="Results go to OUT/<manifest name>/.",
    )(function)


manifest_argument = click.argument("manifest", type=click.Path(dir_okay=False, path_type=Path))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="batchgen")
def main() -> None:
    """Bulk, consistent-character images from Segmind's Ideogram Character API.

    Write a YAML manifest (one character reference, many prompt/seed/style variants),
    `validate` it, `plan` it, `run` it; an interrupted run resumes with the same command.
    """


@main.command()
@click.argument(
    "manifests", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path)
)
def validate(manifests: tuple[Path, ...]) -> None:
    """Check manifests and report every problem; sends nothing."""
    failed = False
    for path in manifests:
        try:
            manifest = load_manifest(path)
        except ManifestError as exc:
            failed = True
            for problem in exc.problems:
                _error(problem)
            continue
        credits = sum(job.price for job in manifest.jobs)
        OUT.print(f"ok {path}: {len(manifest.jobs)} jobs, about {credits:.4g} credits in all")
    if failed:
        _exit(EXIT_USAGE)


def _flag_settings(**flags: Any) -> RunSettings:
    return RunSettings(**{k: v for k, v in flags.items() if k in RunSettings.__dataclass_fields__})


@main.command()
@manifest_argument
@_out_option
@click.option("--json", "as_json", is_flag=True, help="Print the plan as one JSON object.")
@click.option(
    "--rpm", type=click.IntRange(min=1), help="Requests per minute, for the time estimate."
)
@click.option(
    "--concurrency", type=click.IntRange(min=1), help="Requests at once, for the estimate."
)
@click.option("--retry-failed", is_flag=True, help="Count jobs that failed before as to run.")
def plan(
    manifest: Path,
    out: Path,
    as_json: bool,
    rpm: int | None,
    concurrency: int | None,
    retry_failed: bool,
) -> None:
    """Show what a run would do: new, changed, done, failed jobs; cost; time. Sends nothing."""
    with _errors():
        loaded = load_manifest(manifest)
        flags = _flag_settings(rpm=rpm, concurrency=concurrency)
        settings = runner.resolve(flags, loaded.run, emulator=False)
        folder = runner.run_folder(out, loaded)
        known = _read_ledger(folder, lambda ledger: ledger.jobs() if ledger else {})
        the_plan = plans.make_plan(loaded.jobs, known, retry_failed=retry_failed)
        seconds = _estimate(the_plan, settings)
        if as_json:
            data = {"manifest": os.fspath(loaded.path), "folder": os.fspath(folder)}
            data |= plans.to_json(the_plan, seconds)
            OUT.print_json(data=data | {"rpm": settings.rpm, "concurrency": settings.concurrency})
            return
        OUT.print(f"[bold]{loaded.name}[/] → {escape(str(folder))}")
        assert settings.rpm and settings.concurrency and settings.latency
        for line in plans.describe(
            the_plan,
            seconds=seconds,
            rpm=settings.rpm,
            concurrency=settings.concurrency,
            latency=settings.latency,
        ):
            OUT.print(line, markup=False)


def _estimate(the_plan: Plan, settings: RunSettings) -> float:
    assert settings.rpm and settings.concurrency and settings.latency
    return plans.estimate_seconds(
        len(the_plan.to_run),
        rpm=settings.rpm,
        concurrency=settings.concurrency,
        latency=settings.latency,
    )


def _read_ledger(folder: Path, read: Callable[[Ledger | None], T]) -> T:
    """Read a run folder's ledger, if it has one, without creating anything."""
    ledger = Ledger.existing(folder)
    try:
        return read(ledger)
    finally:
        if ledger:
            ledger.close()


def _snapshot(manifest: Path, out: Path) -> tuple[Path, dict[str, Any]]:
    loaded = load_manifest(manifest)
    folder = runner.run_folder(out, loaded)
    return folder, _read_ledger(folder, lambda ledger: status_view.snapshot(loaded, folder, ledger))


@main.command()
@manifest_argument
@_out_option
@click.option(
    "--concurrency", type=click.IntRange(1, 1000), help="Requests in flight at once [default: 2]."
)
@click.option(
    "--rpm",
    type=click.IntRange(1, 100_000),
    help="Requests per minute, never exceeded [default: 5].",
)
@click.option(
    "--max-credits", type=click.FloatRange(min=0), help="Spend at most this much in this run."
)
@click.option(
    "--min-credits", type=click.FloatRange(min=0), help="Never let the balance fall below this."
)
@click.option(
    "--retries",
    type=click.IntRange(0, 100),
    help="Retries per job for transient faults [default: 4].",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1, max=3600),
    help="Seconds to wait for an answer before it counts as lost [default: 120].",
)
@click.option(
    "--retry-failed", is_flag=True, help="Run again the jobs that failed for good before."
)
@click.option(
    "--emulator", is_flag=True, help="Run against the built-in emulator: offline, free, no key."
)
@click.option("-v", "--verbose", is_flag=True, help="Print every retry and saved image.")
def run(
    manifest: Path,
    out: Path,
    emulator: bool,
    verbose: bool,
    retry_failed: bool,
    **flags: Any,
) -> None:
    """Generate every job not yet done, at the rate limit and within the budget.

    The key comes from SEGMIND_API_KEY; BATCHGEN_ENDPOINT overrides the API's base URL.
    Interrupted or stopped runs resume with the same command.
    """
    with _errors():
        loaded = load_manifest(manifest)
        settings = runner.resolve(_flag_settings(**flags), loaded.run, emulator=emulator)
        key = None if emulator else runner.api_key()
        folder = runner.run_folder(out, loaded)
        with lock.hold(folder), Ledger.open(folder) as ledger:
            the_plan, adopted = runner.prepare(ledger, loaded, retry_failed=retry_failed)
            if adopted:
                ERR.print(f"{adopted} images saved by a run that died are kept: not paid again")
            if unknown := the_plan.counts["unknown"]:
                ERR.print(
                    f"{unknown} jobs were in flight when a run stopped (possibly paid); "
                    "they run again"
                )
            if not the_plan.to_run:
                _finish(ledger, loaded, folder, spent=None)
            estimate = plans.duration(_estimate(the_plan, settings))
            ERR.print(
                f"{loaded.name}: {len(the_plan.to_run)} of {len(the_plan.entries)} jobs to run, "
                f"about {the_plan.credits:.4g} credits and {estimate} "
                f"({settings.rpm}/min, {settings.concurrency} at once)"
            )
            done = the_plan.counts["done"]
            with Display(ERR, total=len(the_plan.entries), done=done, verbose=verbose) as display:
                try:
                    outcome = asyncio.run(_execute(ledger, the_plan, settings, key, display))
                except KeyboardInterrupt:
                    ERR.print(
                        "interrupted: requests in flight may have been paid; "
                        "run the same command to resume"
                    )
                    _exit(EXIT_INTERRUPTED)
            if outcome.stopped is not None:
                snap = status_view.snapshot(loaded, folder, ledger)
                for line in status_view.stop_lines(snap, outcome.stopped, outcome.spent):
                    ERR.print(line, markup=False)
                _exit(exit_code(outcome.stopped))
            _finish(ledger, loaded, folder, spent=outcome.spent)


async def _execute(
    ledger: Ledger, the_plan: Plan, settings: RunSettings, key: str | None, display: Display
) -> Outcome:
    async with runner.endpoint(key) as (base_url, use_key):
        return await runner.execute(
            ledger, the_plan, settings, base_url=base_url, key=use_key, events=display
        )


def _finish(ledger: Ledger, manifest: Manifest, folder: Path, spent: float | None) -> NoReturn:
    snap = status_view.snapshot(manifest, folder, ledger)
    for line in status_view.closing_lines(snap, spent):
        ERR.print(line, markup=False)
    _exit(EXIT_OK if snap["counts"]["done"] == snap["counts"]["total"] else EXIT_FAILED)


@main.command()
@manifest_argument
@_out_option
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object: counts and every job."
)
@click.option("-v", "--verbose", is_flag=True, help="List every job.")
def status(manifest: Path, out: Path, as_json: bool, verbose: bool) -> None:
    """Show what the ledger says: jobs done, failed (why), pending, possibly paid; credits.

    Safe to run while a run is going.
    """
    with _errors():
        _, snap = _snapshot(manifest, out)
        if as_json:
            sys.stdout.write(json.dumps(snap, indent=2) + "\n")
        else:
            status_view.render(snap, OUT, verbose=verbose)


@main.command("report")
@manifest_argument
@_out_option
def report_command(manifest: Path, out: Path) -> None:
    """Write a static HTML page in the run folder to review every image with its parameters."""
    with _errors():
        folder, snap = _snapshot(manifest, out)
        path = report.write(snap, folder)
        OUT.print(f"report: {path}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="0 picks a free port.",
)
@click.option(
    "--key",
    envvar="BATCHGEN_EMULATOR_KEY",
    help="The only key to accept [default: any SG_... key].",
)
@click.option(
    "--credits", "credits_", type=click.FloatRange(min=0), default=100.0, show_default=True
)
@click.option("--free-credits", type=click.FloatRange(min=0), default=0.0, show_default=True)
@click.option(
    "--rpm", type=click.IntRange(min=1), help="Answer 429 past this many requests a minute."
)
@click.option(
    "--latency",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Seconds per image.",
)
@click.option(
    "--jitter",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="± seconds of latency.",
)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="KIND=P",
    help="Inject a fault with probability P (repeatable).",
)
@click.option("--seed", type=int, help="Seed the fault and jitter dice for a reproducible session.")
def emulator(
    host: str,
    port: int,
    key: str | None,
    credits_: float,
    free_credits: float,
    rpm: int | None,
    latency: float,
    jitter: float,
    faults: tuple[str, ...],
    seed: int | None,
) -> None:
    """Serve a stand-in for Segmind's API on this machine, for trying manifests for free.

    It speaks the v1 Ideogram Character contract (auth, validation, credits, 406 when empty,
    429 past --rpm) and answers with JPEGs showing each prompt and seed. Point a run at it
    with BATCHGEN_ENDPOINT=http://HOST:PORT. Fault kinds: 500 502 503 504 429 (answers with that
    status), reset (drops the connection, unbilled), lost (bills, then drops), truncate (bills,
    cuts the image short), html200 (bills, answers a proxy's HTML page), hang (never answers),
    echo (a 500 whose body echoes the request headers, key included).
    GET /_emulator/log shows what it received and charged.
    """
    from .emulator import EmulatorConfig, parse_fault, serve

    try:
        table = dict(parse_fault(text) for text in faults)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--fault") from exc
    config = EmulatorConfig(
        key=key,
        credits=credits_,
        free_credits=free_credits,
        rpm=rpm,
        latency=latency,
        jitter=jitter,
        faults=table,
        seed=seed,
    )
    try:
        serve(config, host, port)
    except OSError as exc:
        _error(f"cannot listen on {host}:{port}: {exc.strerror}")
        _exit(EXIT_USAGE)
