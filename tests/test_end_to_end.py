"""Whole runs as a user makes them: real processes, the emulator over loopback, kills and resumes."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import KEY, ManifestWriter
from tests.processes import (
    batchgen,
    charged,
    emulator_log,
    emulator_post,
    emulator_process,
    every_byte,
    finish,
    wait_until,
)

TWENTY = """
version: 1
name: twenty
character:
  reference: refs/mira.png
defaults:
  rendering_speed: Turbo
  seeds: {start: 1, count: 10}
variants:
  - name: cafe
    prompt: Mira in a cafe
  - name: roof
    prompt: Mira on a roof
"""


def status(manifest: Path, out: Path) -> dict:  # type: ignore[type-arg]
    code, text = finish(batchgen(["status", str(manifest), "--out", str(out), "--json"], None))
    assert code == 0, text
    return json.loads(text)  # type: ignore[no-any-return]


def run_args(manifest: Path, out: Path, *, concurrency: int, rpm: int = 6000) -> list[str]:
    return [
        "run",
        str(manifest),
        "--out",
        str(out),
        "--concurrency",
        str(concurrency),
        "--rpm",
        str(rpm),
    ]


def assert_done_jobs_have_valid_images(snapshot: dict) -> None:  # type: ignore[type-arg]
    for job in snapshot["jobs"]:
        assert job["status"] == "done"
        with Image.open(job["output"]) as image:
            image.load()


def test_kill_and_resume_pays_at_most_once_more_per_request_in_flight(
    write_manifest: ManifestWriter, tmp_path: Path
) -> None:
    """kill -9 mid-run, then the same command: every job done once, nothing partial, little paid twice."""
    manifest, out = write_manifest(TWENTY), tmp_path / "out"
    args = run_args(manifest, out, concurrency=4)
    with emulator_process("--latency", "0.4") as url:
        first = batchgen(args, url)
        wait_until(lambda: len(charged(emulator_log(url))) >= 6)
        during = status(manifest, out)["counts"]  # read while the run writes
        assert during["total"] == 20 and during["done"] >= 1
        first.send_signal(signal.SIGKILL)
        first.wait()
        paid_before_resume = len(charged(emulator_log(url)))

        code, text = finish(batchgen(args, url))
        assert code == 0, text
        assert "were in flight when a run stopped" in text or paid_before_resume == 20

        log = emulator_log(url)
        snapshot = status(manifest, out)
        assert snapshot["counts"]["done"] == 20
        assert_done_jobs_have_valid_images(snapshot)
        # Each job was paid once, plus at most one more for each request in flight at the kill (4).
        assert 20 <= len(charged(log)) <= 20 + 4
        assert snapshot["credits"]["unknown_requests"] <= 4
        assert not list(out.rglob("*.part"))

        again, text = finish(batchgen(args, url))
        assert again == 0 and "nothing to send" in text
        assert len(emulator_log(url)["requests"]) == len(log["requests"])


def test_credits_run_out_then_resume_after_top_up(
    write_manifest: ManifestWriter, tmp_path: Path
) -> None:
    """An account that empties mid-run stops with exit 3 and no 406; after a top-up the same command finishes."""
    manifest, out = write_manifest(TWENTY), tmp_path / "out"
    args = run_args(manifest, out, concurrency=3)
    with emulator_process("--credits", "1.0", "--latency", "0.05") as url:
        code, text = finish(batchgen(args, url))
        assert code == 3, text
        assert "spent 1 credits in this run" in text and "run the same command to resume" in text
        log = emulator_log(url)
        assert len(charged(log)) == 8 and log["balance"] == 0
        assert all(r["status"] != 406 for r in log["requests"])

        emulator_post(url, "/_emulator/credits", {"credits": 10})
        code, text = finish(batchgen(args, url))
        assert code == 0, text
        assert len(charged(emulator_log(url))) == 20
        assert status(manifest, out)["counts"]["done"] == 20


def test_max_credits_stops_cleanly(write_manifest: ManifestWriter, tmp_path: Path) -> None:
    """--max-credits caps the run's spending exactly and exits 3."""
    manifest, out = write_manifest(TWENTY), tmp_path / "out"
    args = [
        "run",
        str(manifest),
        "--out",
        str(out),
        "--concurrency",
        "8",
        "--rpm",
        "6000",
        "--max-credits",
        "0.5",
    ]
    with emulator_process("--latency", "0.1") as url:
        code, text = finish(batchgen(args, url))
        assert code == 3 and "--max-credits" in text, text
        assert sum(r["charged"] for r in emulator_log(url)["requests"]) == 0.5


def test_rejected_key_exits_4(write_manifest: ManifestWriter, tmp_path: Path) -> None:
    """A key the API refuses stops everything with exit 4 and sends no generation request."""
    manifest = write_manifest(TWENTY)
    with emulator_process("--key", "SG_other") as url:
        code, text = finish(batchgen(["run", str(manifest), "--out", str(tmp_path / "o")], url))
        assert code == 4 and "SEGMIND_API_KEY" in text, text
        assert emulator_log(url)["requests"] == []


def test_key_never_written_or_printed(write_manifest: ManifestWriter, tmp_path: Path) -> None:
    """The API key appears in no output file, ledger row or console line, with -v, faults, and a
    server that echoes the key back in its errors."""
    manifest, out = write_manifest(TWENTY), tmp_path / "out"
    args = [
        "run",
        str(manifest),
        "--out",
        str(out),
        "-v",
        "--rpm",
        "6000",
        "--concurrency",
        "4",
        "--retries",
        "8",
    ]
    faults = ["--fault", "500=0.1", "--fault", "reset=0.1", "--fault", "echo=0.25"]
    with emulator_process("--latency", "0.05", *faults, "--seed", "7") as url:
        code, text = finish(batchgen(args, url))
        assert any(r["fault"] == "echo" for r in emulator_log(url)["requests"])
    _, status_text = finish(
        batchgen(["status", str(manifest), "--out", str(out), "--json", "-v"], None)
    )
    _, report_text = finish(batchgen(["report", str(manifest), "--out", str(out)], None))
    assert code == 0, text
    for printed in (text, status_text, report_text):
        assert KEY not in printed
    everything = every_byte(out)
    assert KEY.encode() not in everything
    assert b"x-api-key: ***" in everything  # the echoed errors were recorded, scrubbed


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_first_signal_finishes_in_flight_then_exits_130(
    write_manifest: ManifestWriter, tmp_path: Path, sig: signal.Signals
) -> None:
    """Ctrl-C or SIGTERM sends nothing new, saves what was in flight, exits 130; the same command resumes."""
    manifest, out = write_manifest(TWENTY), tmp_path / "out"
    args = run_args(manifest, out, concurrency=4)
    with emulator_process("--latency", "1.5") as url:
        first = batchgen(args, url)
        wait_until(lambda: emulator_log(url)["in_flight"] == 4)
        first.send_signal(sig)
        code, text = finish(first)
        assert code == 130 and "Run the same command to resume" in text, text
        log = emulator_log(url)
        snapshot = status(manifest, out)
        assert snapshot["counts"]["done"] == len(charged(log)) == 4
        assert snapshot["counts"]["unknown"] == 0 and len(log["requests"]) == 4
        code, text = finish(batchgen(args, url))
        assert code == 0 and len(charged(emulator_log(url))) == 20, text


def test_second_signal_abandons_in_flight_as_possibly_paid(
    write_manifest: ManifestWriter, tmp_path: Path
) -> None:
    """A second Ctrl-C exits at once; requests cut off are shown as possibly paid and run again."""
    manifest, out = write_manifest(TWENTY), tmp_path / "out"
    args = run_args(manifest, out, concurrency=4)
    with emulator_process("--latency", "30") as url:
        first = batchgen(args, url)
        wait_until(lambda: emulator_log(url)["in_flight"] == 4)
        first.send_signal(signal.SIGINT)
        time.sleep(0.3)
        first.send_signal(signal.SIGINT)
        code, text = finish(first, timeout=10)
        assert code == 130 and "4 requests were cut off in flight and may have been paid" in text, (
            text
        )
        snapshot = status(manifest, out)
        assert snapshot["counts"]["unknown"] == 4 and snapshot["credits"]["unknown_requests"] == 4
    with emulator_process("--latency", "0.01") as url:
        code, text = finish(batchgen(args, url))
        assert code == 0 and "4 jobs were in flight when a run stopped" in text, text


def test_accounting_reconciles_with_the_emulators_charges(
    write_manifest: ManifestWriter, tmp_path: Path
) -> None:
    """status's credits agree with what the emulator charged: billed requests exactly, lost
    answers within what status calls possibly paid, and per-run figures add up to the total."""
    manifest, out = write_manifest(TWENTY), tmp_path / "out"
    args = [
        "run",
        str(manifest),
        "--out",
        str(out),
        "--rpm",
        "6000",
        "--concurrency",
        "4",
        "--retries",
        "10",
    ]
    faults = [
        "--fault",
        "lost=0.08",
        "--fault",
        "truncate=0.08",
        "--fault",
        "html200=0.08",
        "--fault",
        "500=0.08",
    ]
    with emulator_process("--latency", "0.05", *faults, "--seed", "3") as url:
        code, text = finish(batchgen(args, url))
        assert code == 0, text
        log = emulator_log(url)
    credits = status(manifest, out)["credits"]
    # A truncated image went out as a 200 but never arrived whole: the client saw it as lost.
    arrived = [r["status"] == 200 and r["fault"] != "truncate" for r in log["requests"]]
    answered = sum(r["charged"] for r, ok in zip(log["requests"], arrived, strict=True) if ok)
    lost = sum(r["charged"] for r, ok in zip(log["requests"], arrived, strict=True) if not ok)
    assert credits["spent"] == pytest.approx(answered)  # every billed answer, to the cent
    assert lost <= credits["possibly_paid"] + 1e-9  # lost answers are all counted as possibly paid
    assert credits["possibly_paid"] == pytest.approx(0.125 * credits["unknown_requests"])
    assert credits["reported"] == pytest.approx(answered - 0.125 * credits["unreported"])
    assert credits["balance"] >= log["balance"] - 1e-9
    runs = status(manifest, out)["runs"]
    assert sum(r["credits"]["spent"] for r in runs) == pytest.approx(credits["spent"])
