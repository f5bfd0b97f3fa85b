"""How a run shows itself: a live bar on a terminal, plain lines anywhere else (logs, CI)."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from .jobs import Job


class Display:
    """Reports a run's events. Plain lines go to stderr; a terminal gets a live bar too."""

    def __init__(self, console: Console, *, total: int, done: int, verbose: bool = False) -> None:
        self._console = console
        self._total = total
        self._done = done
        self._verbose = verbose
        self._spent = 0.0
        self._finished = 0  # in this run, for the rate
        self._started = time.monotonic()
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> Display:
        if self._console.is_terminal:
            self._bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[credits]}"),
                console=self._console,
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(
                "generating", total=self._total, completed=self._done, rate="", credits=""
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def _advance(self) -> None:
        self._done += 1
        self._finished += 1
        if self._bar is not None and self._task is not None:
            minutes = max(time.monotonic() - self._started, 1e-6) / 60.0
            self._bar.update(
                self._task,
                completed=self._done,
                rate=f"{self._finished / minutes:.1f}/min",
                credits=f"{self._spent:.3f} cr",
            )

    def _line(self, text: str, *, always: bool = True) -> None:
        if always or self._verbose:
            self._console.print(text, highlight=False, markup=False)

    def saved(self, job: Job, path: Path, cost: float) -> None:
        self._spent += cost
        self._advance()
        if self._bar is None or self._verbose:
            self._line(f"[{self._done}/{self._total}] done {job.name} -> {path.name} ({cost:g} cr)")

    def failed(self, job: Job, reason: str) -> None:
        self._advance()
        self._line(f"[{self._done}/{self._total}] FAILED {job.name}: {reason}")

    def retrying(self, job: Job, reason: str, delay: float) -> None:
        self._line(f"retrying {job.name} in {delay:.1f}s: {reason}", always=self._bar is None)

    def paused(self, seconds: float, reason: str) -> None:
        self._line(f"rate limited: every worker waits {seconds:.1f}s ({reason})")

    def stopping(self, reason: str) -> None:
        self._line(f"stopping: {reason}; finishing the requests in flight")

    def note(self, text: str) -> None:
        self._line(text)
