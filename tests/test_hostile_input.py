"""Hostile and careless manifests: every command refuses them the same way (exit 2, a located
message, no traceback, no request, nothing written), and the loader raises nothing but
ManifestError, whatever it is given."""

from __future__ import annotations

import math
import os
import random
import re
import shutil
import socket
import struct
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, Phase, event, find, given, settings
from hypothesis import strategies as st
from PIL import Image

from batchgen.cli import main
from batchgen.errors import ManifestError
from batchgen.jobs import MAX_JOBS, job_id
from batchgen.manifest import MAX_IMAGE_BYTES, Manifest, load_manifest
from batchgen.params import ENUMS, FILE_PARAMS, SEED_MAX, SEED_MIN, VALUE_PARAMS
from batchgen.yamlsource import MAX_BYTES, MAX_PROBLEMS
from tests.conftest import REFERENCE, ManifestWriter

BASE = """
version: 1
character:
  reference: refs/mira.png
variants:
  - name: cafe
    prompt: Mira in a cafe
"""
# Line 1 is "version: 1"; the variant's name is at 5:11 and its prompt at 6:13.

Setup = Callable[["Files"], Path]


class Files:
    """What a case may put in place: the manifest, and files next to it."""

    def __init__(self, tmp_path: Path, write_manifest: ManifestWriter) -> None:
        self.root = tmp_path
        self.write = write_manifest

    def raw(self, data: bytes) -> Path:
        path = self.root / "sheet.yaml"
        path.write_bytes(data)
        return path

    def with_reference(self, written: str) -> Path:
        return self.write(BASE.replace("refs/mira.png", written))


def text(yaml_text: str) -> Setup:
    return lambda files: files.write(yaml_text)


def extra(lines: str) -> Setup:
    """BASE with lines appended, indented as they sit in the file."""
    return text(BASE + lines)


def named_variant(name: str) -> Setup:
    return text(BASE.replace("name: cafe", f"name: {name}"))


def named_manifest(name: str) -> Setup:
    return text(BASE.replace("version: 1\n", f"version: 1\nname: {name}\n"))


def raw(data: bytes) -> Setup:
    return lambda files: files.raw(data)


def reference(name: str, make: Callable[[Path], object]) -> Setup:
    def setup(files: Files) -> Path:
        make(files.root / "refs" / name)
        return files.with_reference(f"refs/{name}")

    return setup


def write_bytes(data: bytes) -> Callable[[Path], object]:
    return lambda path: path.write_bytes(data)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


# A valid PNG header that claims 100,000 × 100,000 pixels: Pillow refuses it as a bomb.
PIXEL_BOMB = (
    b"\x89PNG\r\n\x1a\n"
    + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0))
    + png_chunk(b"IDAT", zlib.compress(b"\0" * 16))
    + png_chunk(b"IEND", b"")
)


def gif(path: Path) -> None:
    Image.new("RGB", (4, 4), "red").save(path, format="GIF")


def unreadable(path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("running as root, which reads a chmod 000 file anyway")
    shutil.copy(REFERENCE, path)
    path.chmod(0)


def dangling(path: Path) -> None:
    path.symlink_to(path.parent / "nowhere.png")


def fifo(path: Path) -> None:
    os.mkfifo(path)  # reading it would block for ever


def sparse(size: int) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        with path.open("wb") as stream:
            stream.truncate(size)

    return make


def laughs() -> str:
    levels = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 9):
        this, previous = chr(ord("a") + i), chr(ord("a") + i - 1)
        levels.append(f"{this}: &{this} [" + ", ".join([f"*{previous}"] * 9) + "]")
    return "version: 1\n" + "\n".join(levels) + "\n"


def big_matrix() -> str:
    """Seven variables of ten values each: ten million combinations, in 300 bytes."""
    keys = "".join(f"      v{i}: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n" for i in range(7))
    return BASE + "    matrix:\n" + keys


UNSAFE_NAMES = [
    ("a/b", "is not a usable name"),
    ("..", "is not a usable name"),
    ("../x", "is not a usable name"),
    ('"a\\0b"', "'a\\x00b' is not a usable name"),
    ("x" * 300, "is 300 characters long, more than 64"),
    ("CON", "'CON' is a reserved name"),
    ("nul", "'nul' is a reserved name"),
    (".hidden", "is not a usable name"),
    ("'.x'", "is not a usable name"),
]

CASES: list[Any] = [
    # --- malformed YAML -------------------------------------------------------------------
    pytest.param(extra("    seeds: [1, 2\n"), ["{file}:8:1:", "expected ',' or ']'", "line 7"], id="unclosed-bracket"),
    pytest.param(text(BASE.replace("variants:", " variants:")), ["{file}:4:2:", "indented"], id="bad-indentation"),
    pytest.param(text(BASE.replace("  reference", "\treference")), ["{file}:3:1:", "indent with spaces, not tabs"], id="tab-indentation"),
    # --- wrong types ----------------------------------------------------------------------
    pytest.param(text("version: 1\ncharacter: {reference: refs/mira.png}\nvariants: cafe\n"), ["{file}:3:11: variants: expected a list, got the text 'cafe'"], id="string-where-list"),
    pytest.param(text(BASE.replace("character:\n  reference: refs/mira.png", "character: [refs/mira.png]")), ["{file}:2:12: character: expected a mapping, got a list"], id="list-where-mapping"),
    pytest.param(text(BASE.replace("Mira in a cafe", "12")), ['{file}:6:13: variants[0].prompt: expected a string, got a number (12) — quote it if you meant the text: "12"'], id="number-where-string"),
    # --- unknown keys, at every level -----------------------------------------------------
    pytest.param(text(BASE.replace("variants:", "varaints:")), ["{file}:4:1: varaints: unknown key — did you mean 'variants'?"], id="unknown-top-level-key"),
    pytest.param(text(BASE.replace("  reference:", "  refrence:")), ["{file}:3:3: character.refrence: unknown key — did you mean 'reference'?"], id="unknown-character-key"),
    pytest.param(extra("defaults:\n  stlye_type: Fiction\n"), ["{file}:8:3: defaults.stlye_type: unknown key — did you mean 'style_type'?"], id="unknown-defaults-key"),
    pytest.param(extra("    stlye_type: Fiction\n"), ["{file}:7:5: variants[0].stlye_type: unknown key — did you mean 'style_type'?"], id="unknown-variant-key"),
    pytest.param(extra("run: {rmp: 5}\n"), ["{file}:7:7: run.rmp: unknown key — did you mean 'rpm'?"], id="unknown-run-key"),
    # --- duplicates -----------------------------------------------------------------------
    pytest.param(extra("    prompt: Mira again\n"), ["{file}:7:5: variants[0]: duplicate key 'prompt' (first at line 6)"], id="duplicate-key"),
    pytest.param(text("version: 1" + BASE), ["{file}:2:1: duplicate key 'version' (first at line 1)"], id="duplicate-top-level-key"),
    pytest.param(extra("  - name: Cafe\n    prompt: other\n"), ["{file}:7:11: variants[1].name: duplicate variant name 'Cafe' (first at line 5)"], id="duplicate-variant-name"),
    pytest.param(extra("  - name: again\n    prompt: Mira in a cafe\n"), ["{file}:7:5: variants[1]: job 'again' would send the same request as 'cafe'"], id="duplicate-request"),
    pytest.param(extra("    matrix: {mood: [calm, wild]}\n"), ["{file}:5:5: variants[0]: job 'cafe-wild' would send the same request as 'cafe-calm'"], id="matrix-value-that-changes-nothing"),
    # --- unsafe names ---------------------------------------------------------------------
    *(pytest.param(named_variant(name), ["{file}:5:11: variants[0].name: ", message], id=f"variant-name-{name[:12]}") for name, message in UNSAFE_NAMES),
    *(pytest.param(named_manifest(name), ["{file}:2:7: name: ", message], id=f"manifest-name-{name[:12]}") for name, message in UNSAFE_NAMES),
    pytest.param(extra("    matrix: {look: [" + ", ".join(["y" * 30] * 1) + "], a: [" + "b" * 30 + "], c: [" + "d" * 30 + "], e: [" + "f" * 30 + "], g: [" + "h" * 30 + "]}\n"), ["{file}:5:5: variants[0]: job names made of 'cafe' and its matrix values run past 150 characters"], id="job-names-too-long-for-a-file"),
    # --- references -----------------------------------------------------------------------
    pytest.param(lambda files: files.with_reference("refs/missing.png"), ["{file}:3:14: character.reference:", "does not exist (paths are relative to the manifest)"], id="missing-reference"),
    pytest.param(lambda files: files.with_reference("refs"), ["{file}:3:14: character.reference:", "is a folder, not an image file"], id="reference-is-a-folder"),
    pytest.param(reference("gone.png", dangling), ["{file}:3:14: character.reference:", "is a link to nothing"], id="dangling-symlink"),
    pytest.param(reference("notes.png", write_bytes(b"just some text\n")), ["{file}:3:14: character.reference:", "is not a readable image"], id="text-file"),
    pytest.param(reference("empty.png", write_bytes(b"")), ["{file}:3:14: character.reference:", "is not a readable image"], id="empty-png"),
    pytest.param(reference("cut.png", write_bytes(REFERENCE.read_bytes()[:100])), ["{file}:3:14: character.reference:", "is not a readable image"], id="truncated-png"),
    pytest.param(reference("anim.gif", gif), ["{file}:3:14: character.reference:", "is GIF; the API takes JPEG, PNG or WebP"], id="gif"),
    pytest.param(reference("locked.png", unreadable), ["{file}:3:14: character.reference:", "cannot be read"], id="unreadable-reference"),
    pytest.param(reference("bomb.png", write_bytes(PIXEL_BOMB)), ["{file}:3:14: character.reference:", "claims too many pixels"], id="pixel-bomb-png"),
    pytest.param(reference("pipe.png", fifo), ["{file}:3:14: character.reference:", "is not a regular file"], id="fifo-reference"),
    pytest.param(reference("huge.png", sparse(MAX_IMAGE_BYTES + 1)), ["{file}:3:14: character.reference:", f"is larger than {MAX_IMAGE_BYTES:,} bytes"], id="huge-reference"),
    pytest.param(lambda files: files.with_reference('"refs/a\\0b.png"'), ["{file}:3:14: character.reference:", "holds a NUL character"], id="reference-path-with-nul"),
    pytest.param(lambda files: files.with_reference("'https://'"), ["{file}:3:14: character.reference: 'https://' is not a usable URL"], id="url-without-host"),
    pytest.param(lambda files: files.with_reference("'http://[::1/a.png'"), ["{file}:3:14: character.reference: 'http://[::1/a.png' is not a usable URL"], id="url-with-unclosed-bracket"),
    pytest.param(extra("    image: refs/mira.png\n"), ["{file}:5:5: variants[0]: 'image' and 'mask' go together: give both or neither"], id="image-without-mask"),
    # --- the file itself ------------------------------------------------------------------
    pytest.param(lambda files: files.root / "nowhere.yaml", ["{file}: no such file"], id="manifest-missing"),
    pytest.param(lambda files: files.root / "refs", ["{file}", "is a directory"], id="manifest-is-a-folder"),
    pytest.param(raw(b""), ["{file}:1:1: is empty"], id="empty-file"),
    pytest.param(raw(b"# just\n  # comments\n\n"), ["{file}:1:1: is empty"], id="comments-only"),
    pytest.param(raw(random.Random(0).randbytes(4096) + b"\0"), ["{file}:1:1: is not a text file (it holds NUL bytes)"], id="binary-file"),
    pytest.param(raw(b"\xff\xfeversion: 1\n"), ["{file}:1:1: is not valid UTF-8 (byte 0)"], id="not-utf8"),
    pytest.param(raw(b"# " + b"x" * MAX_BYTES + b"\n"), [f"{{file}}:1:1: is larger than the {MAX_BYTES:,}-byte limit"], id="over-1mb"),
    pytest.param(text(laughs()), ["{file}:", "expands through aliases to more than 200,000 values"], id="billion-laughs"),
    pytest.param(text("version: 1\ncharacter: &c\n  reference: *c\n"), ["{file}:2:12: character.reference: an alias here refers to a value that contains it"], id="recursive-alias"),
    pytest.param(text("- version: 1\n- variants: []\n"), ["{file}:1:1: the top level must be a mapping"], id="top-level-list"),
    pytest.param(text(BASE.replace("version: 1", "version: 2")), ["{file}:1:10: version: must be 1, not 2"], id="version-2"),
    pytest.param(text(BASE.replace("Mira in a cafe", '"a \\ud800 b"')), ["{file}:6:13: variants[0].prompt: holds the escape \\ud800"], id="lone-surrogate-escape"),
    # --- values YAML 1.1 would retype -----------------------------------------------------
    pytest.param(extra("    seeds: [0o17]\n"), ["{file}:7:13: variants[0].seeds[0]: expected an integer, got the text '0o17'"], id="octal-seed"),
    pytest.param(extra("    seeds: [1_000]\n"), ["{file}:7:13: variants[0].seeds[0]: expected an integer, got the text '1_000'"], id="underscore-seed"),
    pytest.param(extra("    seed: 0x10\n"), ["{file}:7:11: variants[0].seed: expected an integer, got the text '0x10'"], id="hex-seed"),
    pytest.param(named_variant("2024"), ['{file}:5:11: variants[0].name: expected a string, got a number (2024) — quote it if you meant the text: "2024"'], id="numeric-name"),
    # --- seeds ----------------------------------------------------------------------------
    pytest.param(extra("    seeds: [-1]\n"), ["{file}:7:13: variants[0].seeds[0]: -1 is out of range (minimum 0)"], id="seed-below-range"),
    pytest.param(extra("    seeds: [2147483648]\n"), ["{file}:7:13: variants[0].seeds[0]: 2147483648 is out of range (maximum 2147483647)"], id="seed-above-range"),
    pytest.param(extra("    seeds: {start: 2147483647, count: 2}\n"), ["{file}:7:12: variants[0].seeds: runs to seed 2,147,483,648, past 2,147,483,647"], id="seed-range-past-the-largest"),
    pytest.param(extra("    seeds: {start: 1.0, count: 2}\n"), ["{file}:7:20: variants[0].seeds.start: expected an integer, got a number (1.0)"], id="float-seed-start"),
    pytest.param(extra("    seeds: [" + ", ".join(["a", *map(str, range(5_000))]) + "]\n"), ["{file}:7:13: variants[0].seeds[0]: expected an integer, got the text 'a'"], id="long-mixed-seed-list"),
    # --- templates and sweeps -------------------------------------------------------------
    pytest.param(text(BASE.replace("Mira in a cafe", "Mira {mood}")), ["{file}:5:5: variants[0]: unknown variable '{mood}' (known: none are defined)"], id="unknown-template-variable"),
    pytest.param(text(BASE.replace("Mira in a cafe", "'{x}'") + "    vars: {x: ' '}\n"), ["{file}:5:5: variants[0]: the prompt '{x}' renders to blank text"], id="prompt-renders-blank"),
    pytest.param(extra("    vars: {bad-name: x}\n"), ["{file}:7:12: variants[0].vars.bad-name: 'bad-name' is not a usable variable name"], id="bad-variable-name"),
    pytest.param(text(big_matrix()), ["{file}:8:7: variants[0].matrix: the manifest expands to 10,000,000 jobs, more than 100,000"], id="matrix-past-100k-jobs"),
    pytest.param(extra("pricing: {Quality: 0}\n"), ["{file}:7:20: pricing.Quality: 0 is out of range (must be more than 0)"], id="zero-price"),
    pytest.param(text(BASE + '    "[/]": 1\n'), ["{file}:7:5: variants[0][\"[/]\"]: unknown key"], id="key-that-is-rich-markup"),
]  # fmt: skip

COMMANDS = ["validate", "plan", "run"]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A CLI runner with a dummy key and an endpoint where nothing listens."""
    monkeypatch.setenv("SEGMIND_API_KEY", "SG_dummy_key_for_hostile_input_tests")
    monkeypatch.setenv("BATCHGEN_ENDPOINT", "http://127.0.0.1:9")
    return CliRunner()


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every address a socket tried to connect to (each attempt is refused)."""
    attempts: list[object] = []

    def refuse(self: socket.socket, address: object) -> None:
        attempts.append(address)
        raise ConnectionRefusedError(f"hostile-input test: no connections ({address})")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under root with its mode and size (without following links)."""
    return {
        os.fspath(path.relative_to(root)): (path.lstat().st_mode, path.lstat().st_size)
        for path in sorted(root.rglob("*"))
    }


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(("setup", "expected"), CASES)
def test_bad_manifest_is_refused_by_every_command(
    cli: CliRunner,
    connections: list[object],
    write_manifest: ManifestWriter,
    tmp_path: Path,
    command: str,
    setup: Setup,
    expected: list[str],
) -> None:
    """Every command refuses a bad manifest: exit 2, file:line:col, field; no traceback or I/O."""
    path = setup(Files(tmp_path, write_manifest))
    out = tmp_path / "out"
    before = tree(tmp_path)
    args = [command, str(path)] + ([] if command == "validate" else ["--out", str(out)])
    started = time.monotonic()
    result = cli.invoke(main, args)
    elapsed = time.monotonic() - started
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    for fragment in expected:
        assert fragment.replace("{file}", str(path)) in result.output, result.output
    assert connections == []
    assert not out.exists()
    assert tree(tmp_path) == before
    assert elapsed < 3.0


@pytest.mark.parametrize(
    ("lines", "field", "value"),
    [
        ("    aspect_ratio: 16:9\n", "aspect_ratio", "16:9"),
        ("    aspect_ratio: 1:1\n", "aspect_ratio", "1:1"),
        ("    magic_prompt_option: On\n", "magic_prompt_option", "On"),
    ],
)
def test_values_yaml_11_would_retype_load_as_written(
    cli: CliRunner, write_manifest: ManifestWriter, lines: str, field: str, value: str
) -> None:
    """16:9 and 1:1 load as text (not sexagesimal 969 and 61), On as 'On' (not true)."""
    path = write_manifest(BASE + lines)
    (job,) = load_manifest(path).jobs
    assert job.params[field] == value
    assert cli.invoke(main, ["validate", str(path)]).exit_code == 0


@pytest.mark.parametrize("word", ["yes", "no", "on", "off", "y", "0o17", "0x10", "1_000"])
def test_yaml_11_words_load_as_text_prompts(write_manifest: ManifestWriter, word: str) -> None:
    """prompt: yes (and other YAML 1.1 booleans and numbers) loads as the text written."""
    (job,) = load_manifest(write_manifest(BASE.replace("Mira in a cafe", word))).jobs
    assert job.params["prompt"] == word


def test_huge_matrix_is_refused_by_counting(write_manifest: ManifestWriter) -> None:
    """A matrix of ten million jobs is refused in well under a second, before expansion."""
    path = write_manifest(big_matrix())
    started = time.monotonic()
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    assert time.monotonic() - started < 1.0
    assert f"more than {MAX_JOBS:,}" in str(caught.value)


def test_a_flood_of_problems_is_listed_in_part(write_manifest: ManifestWriter) -> None:
    """A thousand wrong values: the first MAX_PROBLEMS are listed, the rest counted at a place."""
    path = write_manifest(BASE + "    seeds: [" + ", ".join(f"s{i}" for i in range(1000)) + "]\n")
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    *listed, rest = caught.value.problems
    assert len(listed) == MAX_PROBLEMS
    assert str(rest).startswith(f"{path}:7:") and "and 900 more problems" in str(rest)


def test_escaped_surrogate_pair_is_one_character(write_manifest: ManifestWriter) -> None:
    """A JSON-style escaped surrogate pair ("\\ud83d\\ude00") loads as the one character it is."""
    path = write_manifest(BASE.replace("Mira in a cafe", '"Mira \\ud83d\\ude00"'))
    (job,) = load_manifest(path).jobs
    assert job.params["prompt"] == "Mira \U0001f600"


# --- properties --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with good and bad images, where generated manifests are written."""
    root = tmp_path_factory.mktemp("hostile")
    refs = root / "refs"
    refs.mkdir()
    shutil.copy(REFERENCE, refs / "mira.png")
    shutil.copy(REFERENCE, refs / "mask.png")
    (refs / "notes.txt").write_text("not an image")
    gif(refs / "anim.gif")
    return root


def check(path: Path) -> Manifest | None:
    """load_manifest gives valid jobs or a ManifestError whose every problem names the file."""
    try:
        manifest = load_manifest(path)
    except ManifestError as error:
        refused = error
    else:
        check_jobs(manifest)
        return manifest
    assert refused.problems
    for problem in refused.problems:
        assert str(path) in str(problem), str(problem)
    return None


def check_jobs(manifest: Manifest) -> None:
    """Every job is a request worth sending: a prompt, a content id, a price, a file name."""
    assert manifest.jobs
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", manifest.name)
    ids = [job.id for job in manifest.jobs]
    assert len(set(ids)) == len(ids), "two jobs would pay for one request"
    for job in manifest.jobs:
        assert isinstance(job.params["prompt"], str) and job.params["prompt"].strip()
        assert re.fullmatch(r"[0-9a-f]{20}", job.id)
        assert job.id == job_id(job.params, job.uploads)
        assert job.price > 0 and math.isfinite(job.price)
        assert set(job.params) <= set(VALUE_PARAMS) | set(FILE_PARAMS)
        seed = job.params.get("seed")
        assert seed is None or (type(seed) is int and SEED_MIN <= seed <= SEED_MAX)
        # The image, its sidecar and their temporary names must fit in one file name.
        assert len(f".{job.name}.{job.id[:8]}.jpg.12345678.part".encode()) <= 255
        assert "/" not in job.name and not job.name.startswith(".")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
def test_any_text_loads_or_is_refused(workdir: Path, content: str) -> None:
    """Any text at all as a manifest: valid jobs, or a ManifestError naming the file."""
    path = workdir / "any.yaml"
    path.write_bytes(content.encode("utf-8", "surrogatepass"))
    check(path)


WORDS = [
    "", " ", "cafe", "{who} at {where}", "{who}", "{{lit}}", "{", "}", "{0}", "{a b}", "a/b",
    "..", "CON", "nul.txt", ".hidden", "x" * 300, "a\0b", "16:9", "Turbo", "Fiction",
    "1024x1024", "refs/missing.png", "refs/notes.txt", "refs/anim.gif", "refs", "http://",
    "http://[::1", " https://example.com/a.png",
    "é ü 漢字 😀", "yes", "0x10", "[/]", "\ud800", "outfit-{outfit}",
]  # fmt: skip
TEXT = st.sampled_from(WORDS) | st.text(max_size=12)
INTS = st.integers(-2, 3) | st.sampled_from([7, SEED_MAX, SEED_MAX + 1, -1, 10**30, -(10**400)])
SCALARS = st.none() | st.booleans() | INTS | st.floats() | TEXT


def nest(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3)


#: Anything at all: what a careless or hostile hand puts where a value belongs.
WILD = st.recursive(SCALARS, nest, max_leaves=6)
ODD_KEYS = st.sampled_from(["stlye_type", "varaints", "refrence", "<<", "Prompt"]) | TEXT

MATRIX_WORDS = st.sampled_from(["a coat", "a hat", "rain", 3, 1.5, "Fiction", ""])
#: What a careful hand writes for each field (valid, or wrong only in meaning).
PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "prompt": st.sampled_from(
        ["Mira in a cafe", "Mira on a roof", "Mira {{braces}}", "Mira 漢字 😀",
         "Mira on a roof, {mood}", "{who} in {outfit}", "{who}"]
    ),
    "seed": st.integers(0, 20) | st.just(SEED_MAX),
    "seeds": st.lists(st.integers(0, 50), min_size=1, max_size=3, unique=True)
    | st.fixed_dictionaries(
        {"start": st.integers(0, 100) | st.just(SEED_MAX - 1), "count": st.integers(1, 3)}
    ),
    "image": st.sampled_from(["refs/mira.png", "https://example.com/i.png"]),
    "mask": st.sampled_from(["refs/mask.png", "https://example.com/m.png"]),
    "reference": st.sampled_from(
        ["refs/mira.png", "refs/mask.png", "https://example.com/r.png", "https://[bad"]
    ),
    "vars": st.dictionaries(
        st.sampled_from(["who", "mood", "outfit"]),
        st.sampled_from(["Mira", "calm", "a coat", 7, 1.5, " "]),
        min_size=1,
        max_size=3,
    ),
    "matrix": st.dictionaries(
        st.sampled_from(["outfit", "mood", "style_type", "aspect_ratio"]),
        st.lists(MATRIX_WORDS, min_size=1, max_size=3, unique=True),
        min_size=1,
        max_size=2,
    ),
    **{key: st.sampled_from(values) for key, values in ENUMS.items()},
}  # fmt: skip
SECTION_KEYS = sorted(set(PLAUSIBLE) - {"reference"})


def pick(draw: st.DrawFn, plausible: st.SearchStrategy[Any], chaos: int) -> Any:
    """The plausible value, or (chaos times in ten) a wild one."""
    return draw(WILD) if draw(st.integers(0, 9)) < chaos else draw(plausible)


def section(draw: st.DrawFn, chaos: int, *, variant: int | None) -> dict[str, Any]:
    """A defaults: section, or variant number `variant`."""
    chosen: dict[str, Any] = {}
    if variant is not None:
        names = st.sampled_from([f"v{variant}"] * 4 + ["look-{outfit}", "Cafe"])
        chosen["name"] = pick(draw, names, chaos)
        chosen["prompt"] = pick(draw, PLAUSIBLE["prompt"], chaos)
        if isinstance(chosen["prompt"], str) and draw(st.booleans()):
            chosen["prompt"] += f" #{variant}"  # else variants often ask for the same image
        if draw(st.integers(0, 4)) == 0:
            chosen["reference"] = pick(draw, PLAUSIBLE["reference"], chaos)
    keys = draw(st.lists(st.sampled_from(SECTION_KEYS), max_size=3, unique=True))
    if chaos and draw(st.integers(0, 9)) < chaos:
        keys.append(draw(ODD_KEYS))
    if len({"image", "mask"} & set(keys)) == 1 and draw(st.integers(0, 9)) >= chaos:
        keys += sorted({"image", "mask"} - set(keys))
    for key in keys:
        chosen[key] = pick(draw, PLAUSIBLE.get(key, WILD), chaos)
    return chosen


@st.composite
def documents(draw: st.DrawFn) -> Any:
    """A manifest as data: valid at chaos 0, with more and more of it wild as chaos grows."""
    chaos = draw(st.sampled_from([0, 0, 0, 1, 2, 5, 10]))
    if chaos == 10 and draw(st.booleans()):
        return draw(WILD)
    doc: dict[str, Any] = {}
    if draw(st.integers(0, 9)) >= chaos:  # leaving out a required key is one kind of chaos
        doc["version"] = pick(draw, st.just(1), chaos)
    if draw(st.booleans()):
        doc["name"] = pick(draw, st.sampled_from(["sheet-2", "a.b", "x_y"]), chaos)
    if draw(st.integers(0, 9)) >= chaos:
        reference = st.fixed_dictionaries({"reference": PLAUSIBLE["reference"]})
        doc["character"] = pick(draw, reference, chaos)
    if draw(st.integers(0, 3)):
        doc["vars"] = pick(draw, PLAUSIBLE["vars"], chaos)
    if draw(st.booleans()):
        doc["defaults"] = section(draw, chaos, variant=None)
    if draw(st.integers(0, 9)) >= chaos:
        count = draw(st.integers(1, 3))
        doc["variants"] = [section(draw, chaos, variant=i) for i in range(count)]
    if draw(st.integers(0, 4)) == 0:
        speeds = st.sampled_from(ENUMS["rendering_speed"])
        prices = st.dictionaries(speeds, st.floats(0.01, 5) | st.integers(1, 3), max_size=2)
        doc["pricing"] = pick(draw, prices, chaos)
    if draw(st.integers(0, 4)) == 0:
        names = st.sampled_from(["rpm", "concurrency", "retries", "latency", "timeout"])
        doc["run"] = pick(draw, st.dictionaries(names, st.integers(1, 9), max_size=2), chaos)
    if chaos and draw(st.integers(0, 9)) < chaos:
        doc[draw(ODD_KEYS)] = draw(WILD)
    return doc


FRAGMENTS = [
    "version: 1\n", "  ", "\t", "&a ", "*a", "<<: *a\n", "!!python/object ", "seeds: [0o17]\n",
    "aspect_ratio: 16:9\n", "prompt: yes\n", "---\n", "[", "{", "#", "'",
]  # fmt: skip


@st.composite
def manifest_texts(draw: st.DrawFn) -> str:
    """A generated manifest as YAML, block or flow style; now and then damaged by hand."""
    document = draw(documents())
    flow = draw(st.sampled_from([None, False, True]))
    rendered = yaml.safe_dump(
        document, default_flow_style=flow, allow_unicode=draw(st.booleans()), sort_keys=False
    )
    damage = draw(st.integers(0, 14))
    lines = rendered.splitlines(keepends=True)
    at = draw(st.integers(0, len(lines)))
    if damage == 1:  # a line twice: a duplicate key, or one more list item
        lines.insert(at, lines[at - 1] if at else "version: 1\n")
    elif damage == 2:  # a hand-written fragment spliced in
        lines.insert(at, draw(st.sampled_from(FRAGMENTS)))
    elif damage == 3:  # cut short
        return rendered[: draw(st.integers(0, len(rendered)))]
    return "".join(lines)


@settings(
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(manifest_texts())
def test_generated_manifests_load_or_are_refused(workdir: Path, content: str) -> None:
    """Any generated manifest loads into sound jobs or is refused naming the file; nothing else."""
    path = workdir / "generated.yaml"
    path.write_bytes(content.encode("utf-8", "surrogatepass"))
    event("valid" if check(path) else "refused")


def test_generated_manifests_are_often_valid(workdir: Path) -> None:
    """The generator reaches valid manifests with jobs, so the property above is not vacuous."""
    path = workdir / "valid.yaml"

    def loads(content: str) -> bool:
        path.write_bytes(content.encode("utf-8", "surrogatepass"))
        try:
            return len(load_manifest(path).jobs) > 1
        except ManifestError:
            return False

    quick = settings(max_examples=200, database=None, phases=[Phase.generate])
    find(manifest_texts(), loads, settings=quick)
