"""Manifest loading: schema errors located and explained, semantic checks, images resolved."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchgen import params
from batchgen.errors import ManifestError
from batchgen.manifest import load_manifest, schema
from tests.conftest import SIMPLE, ManifestWriter


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    return [str(p) for p in caught.value.problems]


def test_simple_manifest_loads(write_manifest: ManifestWriter) -> None:
    """A valid manifest becomes jobs, named after the file when it has no name:."""
    manifest = load_manifest(write_manifest(SIMPLE))
    assert manifest.name == "sheet"
    assert [j.name for j in manifest.jobs] == ["cafe-s1", "cafe-s2", "roof-s1", "roof-s2"]


def test_example_manifest_is_valid() -> None:
    """The shipped example loads and shows off seeds, variables and a matrix."""
    manifest = load_manifest(Path(__file__).parent.parent / "manifests" / "mira-sheet.yaml")
    assert len(manifest.jobs) == 9


def test_enum_typo_is_located_with_suggestion(write_manifest: ManifestWriter) -> None:
    """A misspelt enum names file:line:col, the field, the allowed values and a guess."""
    path = write_manifest(
        SIMPLE.replace(
            "    prompt: Mira on a roof", "    prompt: Mira on a roof\n    style_type: Realistc"
        )
    )
    (problem,) = problems_of(path)
    assert problem == (
        f"{path}:12:17: variants[1].style_type: 'Realistc' is not one of Auto, Fiction, Realistic"
        " — did you mean 'Realistic'?"
    )


def test_all_problems_reported_at_once(write_manifest: ManifestWriter) -> None:
    """Every problem is listed, not just the first."""
    text = SIMPLE.replace(
        "rendering_speed: Turbo", "rendering_speed: Fast\n  aspect_ratio: 7:5"
    ).replace("  - name: roof", "  - name: roof\n    stlye_type: Fiction")
    found = problems_of(write_manifest(text))
    assert len(found) == 3
    assert any(
        "defaults.rendering_speed: 'Fast' is not one of Turbo, Default, Quality" in p for p in found
    )
    assert any("defaults.aspect_ratio: '7:5' is not one of" in p for p in found)
    assert any(
        "variants[1].stlye_type: unknown key — did you mean 'style_type'?" in p for p in found
    )


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        ("name: 2024\n    prompt: p", "variants[0].name: expected a string, got a number (2024) — quote it"),
        ("name: v\n    prompt: p\n    seeds: [1_000]", "variants[0].seeds[0]: expected an integer, got the text '1_000'"),
        ("name: v\n    prompt: p\n    seeds: [012]", "variants[0].seeds[0]: expected an integer, got the text '012'"),
        ("name: v\n    prompt: p\n    seeds: [-1]", "-1 is out of range"),
        ("name: v\n    prompt: p\n    seeds: [2147483648]", "2147483648 is out of range"),
        ("name: v\n    prompt: p\n    seeds: [1, 1]", "has repeated values"),
        ("name: v\n    prompt: p\n    seeds: many", "expected a list or a mapping, got the text 'many'"),
        ("name: v\n    prompt: 12", "variants[0].prompt: expected a string, got a number (12)"),
        ("name: v\n    prompt: true", "variants[0].prompt: expected a string, got a boolean (true)"),
        ("name: ../up\n    prompt: p", "is not a usable name"),
        ("name: v\n    prompt: p\n    matrix: {seed: [1, 2]}", "variants[0].matrix.seed: cannot be swept in a matrix; use seeds:"),
    ],
)  # fmt: skip
def test_retyped_values_are_refused(
    write_manifest: ManifestWriter, variant: str, expected: str
) -> None:
    """A value YAML would retype, or of the wrong type, is refused naming the field."""
    text = f"version: 1\ncharacter: {{reference: refs/mira.png}}\nvariants:\n  - {variant}\n"
    found = problems_of(write_manifest(text))
    assert any(expected in p for p in found), found


@pytest.mark.parametrize("word", ["yes", "no", "on", "off", "null?", "0x1F", "1e3x"])
def test_words_yaml_11_would_retype_stay_text(write_manifest: ManifestWriter, word: str) -> None:
    """Unquoted yes/no/on/off and number-like words reach the API as the text written."""
    text = f"""
    version: 1
    character: {{reference: refs/mira.png}}
    variants:
      - name: v
        prompt: {word}
    """
    (job,) = load_manifest(write_manifest(text)).jobs
    assert job.params["prompt"] == word


def test_unquoted_ratio_stays_text(write_manifest: ManifestWriter) -> None:
    """aspect_ratio: 16:9 unquoted is the text '16:9', not the sexagesimal number 969."""
    path = write_manifest(SIMPLE.replace("rendering_speed: Turbo", "aspect_ratio: 16:9"))
    assert load_manifest(path).jobs[0].params["aspect_ratio"] == "16:9"


def test_duplicate_variant_names_refused(write_manifest: ManifestWriter) -> None:
    """Two variants with the same name (case-insensitively) are refused with both lines."""
    path = write_manifest(SIMPLE.replace("name: roof", "name: Cafe"))
    (problem,) = problems_of(path)
    assert "variants[1].name: duplicate variant name 'Cafe' (first at line 8)" in problem


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("refs/missing.png", "does not exist"),
        ("refs", "is a folder"),
        ("notes.txt", "is not a readable image"),
    ],
)
def test_bad_reference_refused(
    write_manifest: ManifestWriter, tmp_path: Path, written: str, message: str
) -> None:
    """A reference that is missing, a folder or not an image is refused at its line."""
    (tmp_path / "notes.txt").write_text("not an image")
    path = write_manifest(SIMPLE.replace("refs/mira.png", written))
    (problem,) = problems_of(path)
    assert (
        problem.startswith(f"{path}:3:") and "character.reference" in problem and message in problem
    )


def test_reference_is_hashed_by_content(
    write_manifest: ManifestWriter, tmp_path: Path, reference: Path
) -> None:
    """Moving the reference file keeps job ids; changing its bytes changes them."""
    before = {j.id for j in load_manifest(write_manifest(SIMPLE)).jobs}
    reference.rename(tmp_path / "moved.png")
    moved = {
        j.id
        for j in load_manifest(write_manifest(SIMPLE.replace("refs/mira.png", "moved.png"))).jobs
    }
    (tmp_path / "moved.png").write_bytes((tmp_path / "moved.png").read_bytes() + b"\0")
    changed = {
        j.id
        for j in load_manifest(write_manifest(SIMPLE.replace("refs/mira.png", "moved.png"))).jobs
    }
    assert before == moved and before.isdisjoint(changed)


def test_unsafe_file_stem_needs_a_name(tmp_path: Path, reference: Path) -> None:
    """A manifest whose file name is not a safe folder name must set name:."""
    path = tmp_path / "my sheet.yaml"
    path.write_text(SIMPLE)
    assert any("set name: in the manifest" in p for p in problems_of(path))


def test_run_settings_and_pricing_load(write_manifest: ManifestWriter) -> None:
    """run: settings and pricing: overrides are read from the manifest."""
    text = SIMPLE + "pricing: {Turbo: 0.1}\nrun: {rpm: 50, concurrency: 17, max_credits: 3}\n"
    manifest = load_manifest(write_manifest(text))
    assert (
        manifest.run.rpm == 50 and manifest.run.concurrency == 17 and manifest.run.max_credits == 3
    )
    assert manifest.jobs[0].price == 0.1


def test_schema_enums_match_the_api_facts() -> None:
    """The JSON Schema's enums are the same lists as batchgen.params."""
    defs = schema()["$defs"]
    for name, values in params.ENUMS.items():
        assert defs[name]["enum"] == list(values), name
    assert defs["seed"]["maximum"] == params.SEED_MAX
