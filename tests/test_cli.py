"""The command line: messages, exit codes, and nothing sent or written on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from batchgen.cli import main
from tests.conftest import SIMPLE, ManifestWriter


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.delenv("SEGMIND_API_KEY", raising=False)
    monkeypatch.delenv("BATCHGEN_ENDPOINT", raising=False)
    return CliRunner()


def test_validate_ok(cli: CliRunner, write_manifest: ManifestWriter) -> None:
    """validate reports the job count and estimated credits for a good manifest."""
    result = cli.invoke(main, ["validate", str(write_manifest(SIMPLE))])
    assert result.exit_code == 0 and "4 jobs, about 0.5 credits" in result.output


def test_validate_reports_every_manifest(cli: CliRunner, write_manifest: ManifestWriter) -> None:
    """validate checks every manifest given; one bad one makes exit 2, with located errors, no traceback."""
    good = write_manifest(SIMPLE, "good.yaml")
    bad = write_manifest(SIMPLE.replace("Turbo", "Turbp"), "bad.yaml")
    result = cli.invoke(main, ["validate", str(good), str(bad)])
    assert result.exit_code == 2
    assert f"{bad}:5:20: defaults.rendering_speed: 'Turbp' is not one of" in result.output
    assert "did you mean 'Turbo'" in result.output and "Traceback" not in result.output
    assert "ok " in result.output


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("", "is empty"),
        ("version: 1\nversion: 1\n", "duplicate key 'version'"),
        ("version: [1\n", ":"),
        ("- just a list\n", "mapping"),
    ],
)
def test_unusable_manifest_files_exit_2(
    cli: CliRunner, tmp_path: Path, content: str | None, message: str
) -> None:
    """Missing, empty, malformed manifests give exit 2 and a message naming the file."""
    path = tmp_path / "m.yaml"
    if content is not None:
        path.write_text(content)
    result = cli.invoke(main, ["validate", str(path)])
    assert result.exit_code == 2 and str(path) in result.output and message in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_plan_sends_nothing_and_writes_nothing(
    cli: CliRunner, write_manifest: ManifestWriter, tmp_path: Path
) -> None:
    """plan prints counts, credits and time, and creates no output folder."""
    out = tmp_path / "out"
    result = cli.invoke(main, ["plan", str(write_manifest(SIMPLE)), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (
        "4 jobs: 4 to run (4 new" in result.output
        and "estimated cost: 0.5 credits" in result.output
    )
    assert "5 requests/min" in result.output
    assert not out.exists()


def test_plan_json(cli: CliRunner, write_manifest: ManifestWriter, tmp_path: Path) -> None:
    """plan --json is one object with counts, credits, seconds and every job."""
    result = cli.invoke(
        main,
        [
            "plan",
            str(write_manifest(SIMPLE)),
            "--out",
            str(tmp_path / "o"),
            "--json",
            "--rpm",
            "60",
            "--concurrency",
            "4",
        ],
    )
    data = json.loads(result.output)
    assert data["counts"]["to_run"] == 4 and data["credits"] == 0.5 and data["rpm"] == 60
    assert data["seconds"] == pytest.approx(3 * 1.0 + 20.0)
    assert {j["state"] for j in data["jobs"]} == {"new"}


def test_run_without_key_exits_2_before_anything(
    cli: CliRunner, write_manifest: ManifestWriter, tmp_path: Path
) -> None:
    """A missing SEGMIND_API_KEY is exit 2 naming it, before any request or file."""
    out = tmp_path / "out"
    result = cli.invoke(main, ["run", str(write_manifest(SIMPLE)), "--out", str(out)])
    assert result.exit_code == 2 and "SEGMIND_API_KEY" in result.output
    assert not out.exists()


def test_bad_flag_is_usage_error(cli: CliRunner, write_manifest: ManifestWriter) -> None:
    """An out-of-range flag is a usage error (exit 2)."""
    result = cli.invoke(main, ["run", str(write_manifest(SIMPLE)), "--rpm", "0"])
    assert result.exit_code == 2 and "--rpm" in result.output


def test_status_before_any_run(
    cli: CliRunner, write_manifest: ManifestWriter, tmp_path: Path
) -> None:
    """status on a never-run manifest says everything is pending and creates nothing."""
    out = tmp_path / "out"
    result = cli.invoke(main, ["status", str(write_manifest(SIMPLE)), "--out", str(out), "--json"])
    data = json.loads(result.output)
    assert data["counts"]["pending"] == 4 and data["counts"]["done"] == 0
    assert set(data["jobs"][0]) >= {"id", "name", "status", "output", "attempts", "error", "params"}
    assert not out.exists()


def test_emulator_run_then_rerun_sends_nothing(
    cli: CliRunner, write_manifest: ManifestWriter, tmp_path: Path
) -> None:
    """run --emulator makes every image; a second run sends nothing and says so; status and report agree."""
    manifest = str(write_manifest(SIMPLE))
    out = str(tmp_path / "out")
    first = cli.invoke(main, ["run", manifest, "--out", out, "--emulator"])
    assert first.exit_code == 0, first.output
    assert "finished: 4 of 4 done, 0 failed; spent 0.5 credits" in first.output
    again = cli.invoke(main, ["run", manifest, "--out", out, "--emulator"])
    assert again.exit_code == 0 and "nothing to send: 4 of 4 jobs done" in again.output
    status = json.loads(cli.invoke(main, ["status", manifest, "--out", out, "--json"]).output)
    assert status["counts"]["done"] == 4 and status["credits"]["spent"] == 0.5
    for job in status["jobs"]:
        assert Path(job["output"]).is_file() and Path(job["output"]).with_suffix(".json").is_file()
    report = cli.invoke(main, ["report", manifest, "--out", out])
    page = (tmp_path / "out" / "sheet" / "report.html").read_text()
    assert report.exit_code == 0 and page.count("<img ") == 4 and "Mira in a cafe" in page


def test_second_run_on_the_same_folder_refuses(
    cli: CliRunner, write_manifest: ManifestWriter, tmp_path: Path
) -> None:
    """A run on a folder another run holds exits 2 with a clear message and sends nothing."""
    from batchgen import lock

    out = tmp_path / "out"
    with lock.hold(out / "sheet"):
        result = cli.invoke(
            main, ["run", str(write_manifest(SIMPLE)), "--out", str(out), "--emulator"]
        )
    assert result.exit_code == 2 and "another batchgen run" in result.output
    assert not (out / "sheet" / "ledger.sqlite").exists()


def test_public_api_names_resolve() -> None:
    """Every name batchgen exports can be imported (they load on first use)."""
    import batchgen

    for name in batchgen.__all__:
        assert getattr(batchgen, name) is not None
    with pytest.raises(AttributeError):
        _ = batchgen.nothing_here  # type: ignore[attr-defined]


def test_ctrl_c_while_loading_exits_130_quietly(tmp_path: Path) -> None:
    """A Ctrl-C before any run started (even while the program loads) exits 130 without a traceback."""
    import signal
    import subprocess
    import sys
    import time

    process = subprocess.Popen(
        [sys.executable, "-c", "import time, sys; sys.argv=['batchgen','--help'];"
         " time.sleep(0.5); from batchgen.__main__ import main; main()"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(0.55)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=20)
    assert process.returncode in (130, 0), err  # 0: it finished --help before the signal came
    assert "Traceback" not in err
