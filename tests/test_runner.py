"""Wiring a run: settings precedence, resuming after a crash, and pacing across restarts."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from batchgen import store
from batchgen.errors import UsageError
from batchgen.ledger import Ledger
from batchgen.manifest import RunSettings, load_manifest
from batchgen.runner import DEFAULTS, EMULATOR_DEFAULTS, _resume_after, api_key, prepare, resolve
from tests.conftest import SIMPLE, ManifestWriter
from tests.test_store import jpeg


def test_flags_win_over_manifest_over_defaults() -> None:
    """A flag beats the manifest's run: section, which beats the defaults."""
    settings = resolve(RunSettings(rpm=50), RunSettings(rpm=7, concurrency=9), emulator=False)
    assert (settings.rpm, settings.concurrency, settings.retries) == (50, 9, DEFAULTS.retries)
    assert resolve(RunSettings(), RunSettings(), emulator=True) == EMULATOR_DEFAULTS


def test_api_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The key is read from SEGMIND_API_KEY; without it the error names the variable."""
    monkeypatch.setenv("SEGMIND_API_KEY", "SG_abc")
    assert api_key() == "SG_abc"
    monkeypatch.setenv("SEGMIND_API_KEY", "  ")
    with pytest.raises(UsageError, match="SEGMIND_API_KEY"):
        api_key()


def test_prepare_adopts_images_a_dead_run_saved(
    write_manifest: ManifestWriter, tmp_path: Path
) -> None:
    """An image written whole before a crash, but never recorded, is adopted instead of re-paid."""
    manifest = load_manifest(write_manifest(SIMPLE))
    folder = tmp_path / "out"
    with Ledger.open(folder) as ledger:
        ledger.sync(manifest.jobs)
        saved, other = manifest.jobs[0], manifest.jobs[1]
        ledger.begin_attempt(saved.id, ledger.start_run(1), saved.price)  # then the crash
        store.save(folder, saved, jpeg(), {"request_id": "r"})
        store.save(folder, other, jpeg()[:100], {})  # a torn write at a final path: not adopted
        plan, adopted = prepare(ledger, manifest)
        assert adopted == 1
        assert ledger.jobs()[saved.id].status == "done"
        assert [e.job.id for e in plan.entries if not e.runs] == [saved.id]


def test_prepare_sweeps_temporary_files(write_manifest: ManifestWriter, tmp_path: Path) -> None:
    """Temporary files a killed run left are removed when the next run starts."""
    manifest = load_manifest(write_manifest(SIMPLE))
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / ".cafe-s1.x.jpg.123.part").write_bytes(b"half")
    with Ledger.open(folder) as ledger:
        prepare(ledger, manifest)
    assert not list(folder.glob("*.part"))


def test_pace_resumes_from_the_last_send(tmp_path: Path) -> None:
    """After a recent send the next run waits one interval (plus slack); after a long gap, not at all."""
    with Ledger.open(tmp_path) as ledger:
        assert _resume_after(ledger, rpm=5) == 0
        ledger._db.execute("INSERT INTO runs (started_at, pid) VALUES (?, 1)", (time.time(),))
        ledger._db.execute(
            "INSERT INTO jobs (id, name, variant, params, price, created_at, updated_at)"
            " VALUES ('j', 'j', 'j', '{}', 0.1, 0, 0)"
        )
        ledger._db.execute(
            "INSERT INTO attempts (job_id, run_id, started_at, outcome, reserved)"
            " VALUES ('j', 1, ?, 'unknown', 0.1)",
            (time.time() - 2,),
        )
        assert 10 < _resume_after(ledger, rpm=5) <= 12 - 2 + 0.5
        assert _resume_after(ledger, rpm=600) == 0
