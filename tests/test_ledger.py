"""The ledger: durable job and attempt records, recovery after a crash, concurrent readers."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from batchgen.errors import LedgerError
from batchgen.jobs import Job
from batchgen.ledger import FILE_NAME, Ledger


def jobs(*names: str) -> list[Job]:
    return [Job(id=f"id-{n}", name=n, variant=n, params={"prompt": n}, price=0.125) for n in names]


def test_pragmas_are_durable(tmp_path: Path) -> None:
    """The ledger runs in WAL mode with synchronous=FULL."""
    with Ledger.open(tmp_path) as ledger:
        db = ledger._db
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA synchronous").fetchone()[0] == 2


def test_sync_adds_new_and_renames_known(tmp_path: Path) -> None:
    """New jobs start pending; a known job keeps its state but takes its new name."""
    with Ledger.open(tmp_path) as ledger:
        ledger.sync(jobs("a", "b"))
        run = ledger.start_run(1)
        attempt = ledger.begin_attempt("id-a", run, 0.125)
        ledger.settle(attempt, "id-a", outcome="ok", job_status="done", cost=0.125, output="a.jpg")
        renamed = [Job(id="id-a", name="a2", variant="a2", params={"prompt": "a"}, price=0.125)]
        ledger.sync(renamed)
        rows = ledger.jobs()
    assert (
        rows["id-a"].status == "done"
        and rows["id-a"].name == "a2"
        and rows["id-a"].output == "a.jpg"
    )
    assert rows["id-b"].status == "pending"


def test_attempt_marks_job_running_before_the_request(tmp_path: Path) -> None:
    """begin_attempt records the job as running, with an in-flight attempt, before anything is sent."""
    with Ledger.open(tmp_path) as ledger:
        ledger.sync(jobs("a"))
        ledger.begin_attempt("id-a", ledger.start_run(1), 0.125)
        row = ledger.jobs()["id-a"]
        assert (row.status, row.attempts) == ("running", 1)
        assert ledger._db.execute("SELECT outcome FROM attempts").fetchone()[0] == "in_flight"


def test_recover_marks_in_flight_as_unknown(tmp_path: Path) -> None:
    """After a crash, what was in flight becomes unknown (possibly paid) and is counted."""
    with Ledger.open(tmp_path) as ledger:
        ledger.sync(jobs("a", "b"))
        ledger.begin_attempt("id-a", ledger.start_run(1), 0.25)
    with Ledger.open(tmp_path) as ledger:  # a new process
        assert ledger.recover() == 1
        assert ledger.jobs()["id-a"].status == "unknown"
        spending = ledger.spending()
    assert spending.unknown_requests == 1 and spending.possibly_paid == 0.25


def test_spending_sums_costs_and_keeps_last_balance(tmp_path: Path) -> None:
    """Spending adds billed costs, estimated and API-reported, per run and overall, and keeps the last balance."""
    with Ledger.open(tmp_path) as ledger:
        ledger.sync(jobs("a", "b"))
        run = ledger.start_run(1)
        for name, remaining in (("a", 9.875), ("b", 9.75)):
            attempt = ledger.begin_attempt(f"id-{name}", run, 0.125)
            reported = 0.1 if name == "a" else None
            ledger.settle(
                attempt, f"id-{name}", outcome="ok", job_status="done", cost=0.125,
                reported_cost=reported, remaining=remaining,
            )  # fmt: skip
        spending = ledger.spending()
        (run_row,) = ledger.runs()
    assert (spending.spent, spending.estimated, spending.reported) == (0.25, 0.25, 0.1)
    assert spending.unreported == 1 and spending.balance == 9.75
    assert (run_row.attempts, run_row.saved, run_row.spending) == (2, 2, spending)


def test_adopt_marks_done_without_an_attempt(tmp_path: Path) -> None:
    """An image found in place is adopted as done; no attempt, no cost is invented."""
    with Ledger.open(tmp_path) as ledger:
        ledger.sync(jobs("a"))
        ledger.adopt("id-a", "a.jpg")
        row = ledger.jobs()["id-a"]
        assert (row.status, row.output, row.attempts) == ("done", "a.jpg", 0)
        assert ledger.spending().spent == 0


def test_last_attempt_time_is_kept(tmp_path: Path) -> None:
    """The ledger remembers when the latest request left, to keep the pace after a restart."""
    with Ledger.open(tmp_path) as ledger:
        assert ledger.last_attempt_at() is None
        ledger.sync(jobs("a"))
        ledger.begin_attempt("id-a", ledger.start_run(1), 0.125)
        assert ledger.last_attempt_at() is not None


def test_failed_jobs_can_be_reset(tmp_path: Path) -> None:
    """--retry-failed turns failed jobs back into pending ones."""
    with Ledger.open(tmp_path) as ledger:
        ledger.sync(jobs("a"))
        attempt = ledger.begin_attempt("id-a", ledger.start_run(1), 0.125)
        ledger.settle(attempt, "id-a", outcome="failed", job_status="failed", error="400: bad")
        assert ledger.jobs()["id-a"].error == "400: bad"
        assert ledger.reset_failed() == 1
        assert ledger.jobs()["id-a"].status == "pending"


def test_reader_sees_committed_state_while_writer_is_open(tmp_path: Path) -> None:
    """Another connection reads the ledger while a run holds it open."""
    with Ledger.open(tmp_path) as writer:
        writer.sync(jobs("a"))
        with Ledger.open(tmp_path) as reader:
            assert reader.jobs()["id-a"].status == "pending"


def test_existing_does_not_create(tmp_path: Path) -> None:
    """Read-only commands never create a ledger."""
    assert Ledger.existing(tmp_path / "nothing") is None
    assert not (tmp_path / "nothing").exists()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    """A ledger from a newer batchgen is refused with advice, not misread."""
    db = sqlite3.connect(tmp_path / FILE_NAME)
    db.execute("PRAGMA user_version=99")
    db.close()
    with pytest.raises(LedgerError, match="newer batchgen"):
        Ledger.open(tmp_path)


def test_corrupt_ledger_is_a_ledger_error(tmp_path: Path) -> None:
    """A file that is not SQLite gives a LedgerError naming it."""
    (tmp_path / FILE_NAME).write_bytes(b"this is not a database" * 100)
    with pytest.raises(LedgerError, match=FILE_NAME):
        Ledger.open(tmp_path)
