"""Expansion of manifests into jobs, job ids, names and templates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from batchgen.jobs import (
    ImageSource,
    Upload,
    count_jobs,
    expand,
    is_safe_name,
    job_id,
    render,
    slug,
)
from batchgen.pricing import DEFAULT_PRICES

REF = "refs/mira.png"
IMAGES = {
    REF: ImageSource(path=Path(REF), digest="a" * 64),
    "https://x/y.png": ImageSource(url="https://x/y.png"),
}


def manifest(*variants: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"version": 1, "character": {"reference": REF}, "variants": list(variants), **top}


def jobs_of(data: dict[str, Any]) -> list[Any]:
    jobs, problems = expand(data, IMAGES, DEFAULT_PRICES)
    assert problems == []
    return jobs


def test_one_job_per_variant_and_seed() -> None:
    """Each variant is made once per seed; variant seeds replace the defaults'."""
    data = manifest(
        {"name": "a", "prompt": "p"},
        {"name": "b", "prompt": "q", "seeds": [7, 8, 9]},
        defaults={"seeds": [1, 2]},
    )
    assert [j.name for j in jobs_of(data)] == ["a-s1", "a-s2", "b-s7", "b-s8", "b-s9"]


def test_seed_range_expands() -> None:
    """seeds: {start, count} is a run of consecutive seeds."""
    data = manifest({"name": "a", "prompt": "p", "seeds": {"start": 10, "count": 3}})
    assert [j.params["seed"] for j in jobs_of(data)] == [10, 11, 12]


def test_no_seed_sends_no_seed() -> None:
    """Without seeds the job sends no seed (the API picks one) and the name has no suffix."""
    (job,) = jobs_of(manifest({"name": "a", "prompt": "p"}))
    assert "seed" not in job.params and job.name == "a"


def test_absent_parameters_stay_absent() -> None:
    """Parameters the user did not write are not sent: no default resolution sneaks in."""
    (job,) = jobs_of(manifest({"name": "a", "prompt": "p", "aspect_ratio": "9:16"}))
    assert set(job.params) == {"prompt", "aspect_ratio"}
    assert set(job.uploads) == {"character_reference_image"}


def test_matrix_sweeps_every_combination() -> None:
    """A matrix over a parameter and a variable makes every combination, named by its values."""
    data = manifest(
        {
            "name": "look",
            "prompt": "Mira in {outfit}",
            "matrix": {"outfit": ["a red coat", "jeans"], "style_type": ["Realistic", "Fiction"]},
        }
    )
    jobs = jobs_of(data)
    assert [j.name for j in jobs] == [
        "look-a-red-coat-realistic",
        "look-a-red-coat-fiction",
        "look-jeans-realistic",
        "look-jeans-fiction",
    ]
    assert jobs[1].params == {"prompt": "Mira in a red coat", "style_type": "Fiction"}


def test_name_template_uses_slugged_values() -> None:
    """A variant name with placeholders is filled with file-safe values instead of suffixes."""
    data = manifest(
        {"name": "{outfit}-x", "prompt": "in {outfit}", "matrix": {"outfit": ["Red Coat"]}}
    )
    assert [j.name for j in jobs_of(data)] == ["red-coat-x"]


def test_variables_layer_top_defaults_variant() -> None:
    """Variables come from vars:, then defaults.vars, then the variant's vars, later winning."""
    data = manifest(
        {"name": "a", "prompt": "{who} {where}", "vars": {"where": "roof"}},
        vars={"who": "Mira", "where": "cafe"},
        defaults={"vars": {"who": "Mira Q"}},
    )
    assert jobs_of(data)[0].params["prompt"] == "Mira Q roof"


def test_prompt_may_come_from_defaults() -> None:
    """A prompt template in defaults serves variants that only set variables."""
    data = manifest({"name": "a", "vars": {"x": "1"}}, defaults={"prompt": "n{x}"})
    assert jobs_of(data)[0].params["prompt"] == "n1"


def test_url_reference_is_sent_in_the_body() -> None:
    """A URL reference travels as a parameter; a local one as an upload."""
    (job,) = jobs_of(manifest({"name": "a", "prompt": "p", "reference": "https://x/y.png"}))
    assert job.params["character_reference_image"] == "https://x/y.png" and not job.uploads


def test_price_follows_speed() -> None:
    """Each job is priced by its rendering speed; no speed means Segmind's default (Quality)."""
    data = manifest(
        {"name": "a", "prompt": "p", "rendering_speed": "Turbo"}, {"name": "b", "prompt": "p"}
    )
    assert [j.price for j in jobs_of(data)] == [0.125, 0.25]


def test_id_ignores_names_and_order() -> None:
    """Renaming or reordering variants keeps every job id."""
    first = jobs_of(manifest({"name": "a", "prompt": "p"}, {"name": "b", "prompt": "q"}))
    second = jobs_of(manifest({"name": "q2", "prompt": "q"}, {"name": "renamed", "prompt": "p"}))
    assert {j.id for j in first} == {j.id for j in second}


def test_id_changes_with_params_and_reference_content() -> None:
    """Editing a prompt, or the reference's bytes, changes the id; the path does not."""
    base = job_id({"prompt": "p"}, {"character_reference_image": Upload(Path("a.png"), "1" * 64)})
    moved = job_id({"prompt": "p"}, {"character_reference_image": Upload(Path("b.png"), "1" * 64)})
    edited = job_id(
        {"prompt": "p!"}, {"character_reference_image": Upload(Path("a.png"), "1" * 64)}
    )
    redrawn = job_id(
        {"prompt": "p"}, {"character_reference_image": Upload(Path("a.png"), "2" * 64)}
    )
    assert base == moved and len({base, edited, redrawn}) == 3


@pytest.mark.parametrize(
    ("variant", "message"),
    [
        ({"name": "a"}, "no prompt"),
        ({"name": "a", "prompt": "{nobody}"}, "unknown variable '{nobody}'"),
        ({"name": "a", "prompt": "{whom}", "vars": {"who": "x"}}, "did you mean 'who'"),
        ({"name": "a", "prompt": "x { y"}, "stray '{'"),
        ({"name": "a", "prompt": "p", "image": REF}, "'image' and 'mask' go together"),
    ],
)
def test_semantic_problems(variant: dict[str, Any], message: str) -> None:
    """Problems the schema cannot see are reported at the variant, and no job is made for it."""
    jobs, problems = expand(manifest(variant), IMAGES, DEFAULT_PRICES)
    assert jobs == []
    assert [path for path, _ in problems] == [("variants", 0)]
    assert message in problems[0][1]


def test_template_problem_reported_once_per_variant() -> None:
    """An unknown variable in a swept prompt is one problem, not one per combination."""
    data = manifest({"name": "a", "prompt": "{x}", "matrix": {"y": [1, 2, 3]}})
    assert len(expand(data, IMAGES, DEFAULT_PRICES)[1]) == 1


def test_too_many_jobs_refused_before_expansion() -> None:
    """A matrix that explodes is refused by counting, not by expanding."""
    data = manifest(
        {"name": "a", "prompt": "p", "matrix": {"x": list(range(1000)), "y": list(range(1000))}}
    )
    assert count_jobs(data) == 1_000_000
    jobs, problems = expand(data, IMAGES, DEFAULT_PRICES)
    assert jobs == [] and "1,000,000 jobs" in problems[0][1]


@pytest.mark.parametrize(
    ("template", "variables", "expected"),
    [
        ("a {x} b", {"x": 1}, "a 1 b"),
        ("{{x}}", {}, "{x}"),
        ("{x}{x}", {"x": "y"}, "yy"),
        ("no placeholders", {}, "no placeholders"),
    ],
)
def test_render(template: str, variables: dict[str, object], expected: str) -> None:
    """Placeholders are filled; doubled braces are literal."""
    assert render(template, variables) == (expected, [])


@pytest.mark.parametrize(
    ("name", "safe"),
    [("cafe", True), ("a.b-c_d", True), ("../x", False), ("a/b", False), ("CON", False),
     ("nul.txt", False), (".hidden", False), ("x" * 65, False), ("", False)],
)  # fmt: skip
def test_is_safe_name(name: str, safe: bool) -> None:
    """Names that could escape the folder or are reserved on Windows are unsafe."""
    assert is_safe_name(name) is safe


@pytest.mark.parametrize(
    ("value", "expected"), [("16:9", "16-9"), ("A Red Coat!", "a-red-coat"), ("", "x"), (7, "7")]
)
def test_slug(value: object, expected: str) -> None:
    """Matrix values become short lowercase file-safe words."""
    assert slug(value) == expected
