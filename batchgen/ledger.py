"""The ledger: every job and every attempt, durably, in SQLite.

WAL journal and ``synchronous=FULL``: a committed state change survives a crash or power loss,
and another process (``batchgen status``) can read while a run writes. Every change is one
short explicit transaction. A job is marked running *before* its request leaves and done only
*after* its image is in place, so a crash leaves at worst a job whose outcome is unknown.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from .errors import LedgerError
from .jobs import Job

FILE_NAME: Final = "ledger.sqlite"

#: Job states. ``unknown``: the request was in flight when a run died; it may have been paid.
STATUSES: Final = ("pending", "running", "done", "failed", "unknown")

# Numbered migrations: index + 1 is the schema version stored in PRAGMA user_version.
_MIGRATIONS: Final = (
    """
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        variant TEXT NOT NULL,
        params TEXT NOT NULL,
        price REAL NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending'
            CHECK (status IN ('pending', 'running', 'done', 'failed', 'unknown')),
        output TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        cost REAL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        started_at REAL NOT NULL,
        finished_at REAL,
        pid INTEGER NOT NULL,
        outcome TEXT
    );
    CREATE TABLE attempts (
        id INTEGER PRIMARY KEY,
        job_id TEXT NOT NULL REFERENCES jobs(id),
        run_id INTEGER NOT NULL REFERENCES runs(id),
        started_at REAL NOT NULL,
        finished_at REAL,
        outcome TEXT NOT NULL,
        http_status INTEGER,
        error TEXT,
        reserved REAL NOT NULL,
        cost REAL,
        remaining REAL,
        request_id TEXT
    );
    CREATE INDEX attempts_job ON attempts(job_id);
    """,
    # 2: what the API itself said a request cost (x-cost), beside our own estimate.
    "ALTER TABLE attempts ADD COLUMN reported_cost REAL",
)

# Billed for certain: "ok" (saved), "unusable" (a 200 that was no image), "unsaved" (a 200 the
# disk could not take). "unknown": sent, answer lost, maybe billed. ``?1`` selects one run or all.
_SPENDING: Final = """
    SELECT COALESCE(SUM(CASE WHEN outcome IN ('ok', 'unusable', 'unsaved') THEN cost END), 0),
           COALESCE(SUM(CASE WHEN outcome IN ('ok', 'unusable', 'unsaved') THEN reserved END), 0),
           COALESCE(SUM(CASE WHEN outcome IN ('ok', 'unusable', 'unsaved')
                             THEN reported_cost END), 0),
           COUNT(CASE WHEN outcome IN ('ok', 'unusable', 'unsaved')
                       AND reported_cost IS NULL THEN 1 END),
           COALESCE(SUM(CASE WHEN outcome = 'unknown' THEN reserved END), 0),
           COUNT(CASE WHEN outcome = 'unknown' THEN 1 END)
    FROM attempts WHERE ? IS NULL OR run_id = ?
"""
_LAST_BALANCE: Final = """
    SELECT remaining FROM attempts
    WHERE (? IS NULL OR run_id = ?) AND remaining IS NOT NULL
    ORDER BY finished_at DESC LIMIT 1
"""


@dataclass(frozen=True, slots=True)
class JobRow:
    """A job as the ledger knows it."""

    id: str
    name: str
    variant: str
    params: dict[str, Any]
    price: float
    status: str
    output: str | None
    attempts: int
    error: str | None
    cost: float | None


@dataclass(frozen=True, slots=True)
class Spending:
    """Money as the ledger saw it, overall or for one run."""

    spent: float  # billed requests: the API's x-cost where it gave one, else our estimate
    estimated: float  # billed requests at the prices reserved for them
    reported: float  # billed requests as the API reported them (x-cost)
    unreported: int  # billed requests whose answer carried no x-cost
    possibly_paid: float  # estimates for requests whose outcome is unknown
    unknown_requests: int
    balance: float | None  # the last x-remaining-credits seen


@dataclass(frozen=True, slots=True)
class RunRow:
    """One ``batchgen run`` as the ledger recorded it."""

    id: int
    started_at: float
    finished_at: float | None
    outcome: str | None
    attempts: int
    saved: int
    spending: Spending


class Ledger:
    """One run folder's ledger. Open with :meth:`open`; use as a context manager."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self.path = path

    @classmethod
    def open(cls, folder: Path) -> Ledger:
        """Open (creating if needed) the ledger in a run folder."""
        path = folder / FILE_NAME
        try:
            folder.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, isolation_level=None, timeout=10.0)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            ledger = cls(db, path)
            ledger._migrate()
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot open the ledger {path}: {exc}") from exc
        except OSError as exc:
            raise LedgerError(f"cannot create the run folder {folder}: {exc.strerror}") from exc
        return ledger

    @classmethod
    def existing(cls, folder: Path) -> Ledger | None:
        """Open a folder's ledger only if there is one (for commands that must not create files)."""
        return cls.open(folder) if (folder / FILE_NAME).is_file() else None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _migrate(self) -> None:
        version: int = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(_MIGRATIONS):
            raise LedgerError(
                f"{self.path} was written by a newer batchgen (schema {version}); upgrade batchgen"
            )
        for number, script in enumerate(_MIGRATIONS[version:], start=version + 1):
            with self._transaction() as db:
                for statement in filter(str.strip, script.split(";")):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version={number}")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise LedgerError(f"the ledger {self.path} could not be written: {exc}") from exc

    # -- jobs ---------------------------------------------------------------------------------

    def sync(self, jobs: Iterable[Job]) -> None:
        """Record the manifest's jobs: new ones as pending; known ones keep their state but take
        the current name (a renamed variant is the same job)."""
        now = time.time()
        rows = [
            (j.id, j.name, j.variant, json.dumps(j.describe(), sort_keys=True), j.price, now, now)
            for j in jobs
        ]
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO jobs (id, name, variant, params, price, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(id) DO UPDATE SET name=excluded.name, variant=excluded.variant,"
                " params=excluded.params, price=excluded.price",
                rows,
            )

    def jobs(self) -> dict[str, JobRow]:
        """Every job the ledger knows, by id."""
        try:
            cursor = self._db.execute(
                "SELECT id, name, variant, params, price, status, output, attempts, error, cost"
                " FROM jobs ORDER BY rowid"
            )
            return {
                job_id: JobRow(job_id, name, variant, json.loads(params), *rest)
                for job_id, name, variant, params, *rest in cursor
            }
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot read the ledger {self.path}: {exc}") from exc

    def recover(self) -> int:
        """Mark what a dead run left in flight as unknown (possibly paid); returns how many."""
        now = time.time()
        with self._transaction() as db:
            db.execute(
                "UPDATE attempts SET outcome='unknown', finished_at=?,"
                " error='the run stopped while this request was in flight'"
                " WHERE outcome='in_flight'",
                (now,),
            )
            return db.execute(
                "UPDATE jobs SET status='unknown', updated_at=? WHERE status='running'", (now,)
            ).rowcount

    def adopt(self, job_id: str, output: str) -> None:
        """Mark a job done whose complete image was found in place (its request was paid, but
        the run died before recording it): no need to pay for it again."""
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET status='done', output=?, error=NULL, updated_at=? WHERE id=?",
                (output, time.time(), job_id),
            )

    def last_attempt_at(self) -> float | None:
        """When the latest request was about to leave (wall clock), to keep the pace on resume."""
        try:
            row = self._db.execute("SELECT MAX(started_at) FROM attempts").fetchone()
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot read the ledger {self.path}: {exc}") from exc
        return row[0] if row else None

    def reset_failed(self) -> int:
        """Make failed jobs pending again (``run --retry-failed``); returns how many."""
        with self._transaction() as db:
            return db.execute(
                "UPDATE jobs SET status='pending', error=NULL, updated_at=? WHERE status='failed'",
                (time.time(),),
            ).rowcount

    # -- runs and attempts --------------------------------------------------------------------

    def start_run(self, pid: int) -> int:
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO runs (started_at, pid) VALUES (?, ?)", (time.time(), pid)
            )
            assert cursor.lastrowid is not None
            return cursor.lastrowid

    def finish_run(self, run_id: int, outcome: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE runs SET finished_at=?, outcome=? WHERE id=?",
                (time.time(), outcome, run_id),
            )

    def begin_attempt(self, job_id: str, run_id: int, reserved: float) -> int:
        """Record that a request is about to leave; the job is running from now on."""
        now = time.time()
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO attempts (job_id, run_id, started_at, outcome, reserved)"
                " VALUES (?, ?, ?, 'in_flight', ?)",
                (job_id, run_id, now, reserved),
            )
            db.execute(
                "UPDATE jobs SET status='running', attempts=attempts+1, updated_at=? WHERE id=?",
                (now, job_id),
            )
            assert cursor.lastrowid is not None
            return cursor.lastrowid

    def settle(
        self,
        attempt_id: int,
        job_id: str,
        *,
        outcome: str,
        job_status: str,
        http_status: int | None = None,
        error: str | None = None,
        cost: float | None = None,
        reported_cost: float | None = None,
        remaining: float | None = None,
        request_id: str | None = None,
        output: str | None = None,
    ) -> None:
        """Record how an attempt ended and the job's resulting state, in one transaction."""
        now = time.time()
        with self._transaction() as db:
            db.execute(
                "UPDATE attempts SET finished_at=?, outcome=?, http_status=?, error=?, cost=?,"
                " reported_cost=?, remaining=?, request_id=? WHERE id=?",
                (now, outcome, http_status, error, cost, reported_cost, remaining, request_id,
                 attempt_id),
            )  # fmt: skip
            db.execute(
                "UPDATE jobs SET status=?, error=?, output=COALESCE(?, output),"
                " cost=COALESCE(?, cost), updated_at=? WHERE id=?",
                (job_status, error if job_status != "done" else None, output,
                 cost if job_status == "done" else None, now, job_id),
            )  # fmt: skip

    # -- reading ------------------------------------------------------------------------------

    def spending(self, run_id: int | None = None) -> Spending:
        """Credits billed, estimated, reported and possibly paid; overall or for one run."""
        try:
            (spent, estimated, reported, unreported, possibly, unknown) = self._db.execute(
                _SPENDING, (run_id, run_id)
            ).fetchone()
            last = self._db.execute(_LAST_BALANCE, (run_id, run_id)).fetchone()
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot read the ledger {self.path}: {exc}") from exc
        balance = last[0] if last else None
        return Spending(spent, estimated, reported, unreported, possibly, unknown, balance)

    def runs(self) -> list[RunRow]:
        """Every run, oldest first, with what it did and spent."""
        try:
            rows = self._db.execute(
                "SELECT r.id, r.started_at, r.finished_at, r.outcome, COUNT(a.id),"
                " COUNT(CASE WHEN a.outcome = 'ok' THEN 1 END)"
                " FROM runs r LEFT JOIN attempts a ON a.run_id = r.id GROUP BY r.id ORDER BY r.id"
            ).fetchall()
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot read the ledger {self.path}: {exc}") from exc
        return [
            RunRow(run, started, finished, outcome, attempts, saved, self.spending(run))
            for run, started, finished, outcome, attempts, saved in rows
        ]
