"""Expand a validated manifest into jobs: one (variant, matrix combination, seed) = one request.

Pure: takes the manifest's data and the already-resolved images, returns jobs and the problems
found, each problem keyed by the manifest path it belongs to.

A job's id is a hash of everything that changes the image: the parameters as they will be
sent and the *content* of every uploaded image. Names, order and file paths are not part of
it, so renaming or reordering variants never re-pays for a finished image.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from .params import FILE_PARAMS, SEED_MAX, VALUE_PARAMS
from .pricing import price_of

#: A manifest this large is almost certainly a matrix mistake; refuse before hashing it all.
MAX_JOBS: Final = 100_000
#: Longest job name: with its id, extension and temporary suffix it must fit a file name.
MAX_JOB_NAME: Final = 150

_API_KEYS: Final = frozenset(VALUE_PARAMS) | {"image", "mask"}
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_RESERVED = frozenset(
    ["con", "prn", "aux", "nul"] + [f"{p}{n}" for p in ("com", "lpt") for n in range(1, 10)]
)

ManifestPath = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class ImageSource:
    """An image parameter as resolved: an http(s) URL sent as is, or a local file uploaded."""

    url: str | None = None
    path: Path | None = None
    digest: str | None = None  # sha256 of the file's bytes


@dataclass(frozen=True, slots=True)
class Upload:
    """A local image sent as a multipart file part."""

    path: Path
    digest: str


@dataclass(frozen=True, slots=True)
class Job:
    """One request = one image."""

    id: str
    name: str  # unique-ish, file-safe: "<variant>[-<matrix values>][-s<seed>]"
    variant: str
    params: Mapping[str, Any]  # sent as JSON fields (or multipart text parts)
    uploads: Mapping[str, Upload] = field(default_factory=dict)
    price: float = 0.0

    def describe(self) -> dict[str, Any]:
        """The parameters for people and the ledger: uploads shown by path and content hash."""
        shown = dict(self.params)
        for name, upload in self.uploads.items():
            shown[name] = f"{upload.path} (sha256:{upload.digest[:12]})"
        return shown


def job_id(params: Mapping[str, Any], uploads: Mapping[str, Upload]) -> str:
    """The stable id of a request: a hash of its parameters and its uploads' content."""
    identity = {
        "scheme": "batchgen-job-1",
        "params": dict(params),
        "uploads": {name: upload.digest for name, upload in uploads.items()},
    }
    text = json.dumps(identity, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def is_safe_name(name: str) -> bool:
    """Whether a name can be a file name on every common system."""
    stem = name.split(".", 1)[0].lower()
    return bool(_SAFE_NAME.fullmatch(name)) and len(name) <= 64 and stem not in _RESERVED


def slug(value: object) -> str:
    """A short, file-safe rendering of a matrix value for job names."""
    text = re.sub(r"[^a-z0-9]+", "-", str(value).lower()).strip("-")
    return text[:32].rstrip("-") or "x"


def render(template: str, variables: Mapping[str, object]) -> tuple[str, list[str]]:
    """Fill ``{name}`` placeholders; ``{{`` and ``}}`` are literal braces.

    Returns the text and the problems found (unknown variables, stray braces).
    """
    problems: list[str] = []

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        name = match.group(1)
        if name is None:
            problems.append(f"stray '{token}' in {template!r}: write '{token * 2}' for a literal")
            return token
        if not _IDENTIFIER.fullmatch(name):
            problems.append(f"'{{{name}}}' is not a variable name (letters, digits, '_')")
            return token
        if name not in variables:
            known = ", ".join(sorted(variables)) or "none are defined"
            problems.append(
                f"unknown variable '{{{name}}}' (known: {known}){_hint(name, variables)}"
            )
            return token
        return str(variables[name])

    return _PLACEHOLDER.sub(replace, template), problems


def _hint(word: str, options: Sequence[str] | Mapping[str, object]) -> str:
    from difflib import get_close_matches

    close = get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" — did you mean '{close[0]}'?" if close else ""


def _seeds(spec: Mapping[str, Any]) -> list[int | None] | None:
    if "seeds" in spec:
        seeds = spec["seeds"]
        if isinstance(seeds, Mapping):
            return list(range(seeds["start"], seeds["start"] + seeds["count"]))
        return list(seeds)
    if "seed" in spec:
        return [spec["seed"]]
    return None


def _combinations(matrix: Mapping[str, Sequence[Any]]) -> Iterator[dict[str, Any]]:
    keys = list(matrix)
    for values in itertools.product(*(matrix[k] for k in keys)):
        yield dict(zip(keys, values, strict=True))


def _seed_count(spec: Mapping[str, Any]) -> int | None:
    # Counted, not listed: a thousand variants sharing 100,000 default seeds is no list to build.
    if "seeds" in spec:
        seeds = spec["seeds"]
        return seeds["count"] if isinstance(seeds, Mapping) else len(seeds)
    return 1 if "seed" in spec else None


def _variant_counts(data: Mapping[str, Any]) -> list[int]:
    defaults = data.get("defaults", {})
    counts = []
    for variant in data["variants"]:
        combos = 1
        for values in {**defaults.get("matrix", {}), **variant.get("matrix", {})}.values():
            combos *= len(values)
        counts.append(combos * (_seed_count(variant) or _seed_count(defaults) or 1))
    return counts


def count_jobs(data: Mapping[str, Any]) -> int:
    """How many jobs a (schema-valid) manifest expands to, without expanding it."""
    return sum(_variant_counts(data))


def _size_problems(data: Mapping[str, Any]) -> list[tuple[ManifestPath, str]]:
    """Seed ranges that run past the API's largest seed, and a manifest of too many jobs."""
    problems: list[tuple[ManifestPath, str]] = []
    sections: list[tuple[ManifestPath, Mapping[str, Any]]] = [
        (("defaults",), data.get("defaults", {}))
    ]
    sections += [(("variants", i), v) for i, v in enumerate(data["variants"])]
    for where, section in sections:
        seeds = section.get("seeds")
        if isinstance(seeds, Mapping) and seeds["start"] + seeds["count"] - 1 > SEED_MAX:
            last = seeds["start"] + seeds["count"] - 1
            message = f"runs to seed {last:,}, past {SEED_MAX:,}, the largest the API takes"
            problems.append(((*where, "seeds"), message))
    counts = _variant_counts(data)
    total = sum(counts)
    if total > MAX_JOBS:
        largest = max(range(len(counts)), key=counts.__getitem__)
        # Point at what multiplies: the variant's own matrix or seeds, else the defaults'.
        where = ("variants", largest)
        places = [(data["variants"][largest], where), (data.get("defaults", {}), ("defaults",))]
        where = next(
            ((*at, key) for section, at in places for key in ("matrix", "seeds") if key in section),
            where,
        )
        message = (
            f"the manifest expands to {total:,} jobs, more than {MAX_JOBS:,} "
            f"(variants[{largest}] alone makes {counts[largest]:,}): check the matrix and seeds"
        )
        problems.append((where, message))
    return problems


def expand(
    data: Mapping[str, Any],
    images: Mapping[str, ImageSource],
    prices: Mapping[str, float],
) -> tuple[list[Job], list[tuple[ManifestPath, str]]]:
    """Turn a schema-valid manifest into jobs.

    ``images`` maps every image value written in the manifest to its resolved source.
    """
    problems = _size_problems(data)
    if problems:
        return [], problems

    defaults = data.get("defaults", {})
    reference = data["character"]["reference"]
    jobs: list[Job] = []
    # Two jobs with one id are one request paid twice: the first job of each id, by variant.
    first_of: dict[str, tuple[Job, int]] = {}
    for index, variant in enumerate(data["variants"]):
        where: ManifestPath = ("variants", index)
        variables = {**data.get("vars", {}), **defaults.get("vars", {}), **variant.get("vars", {})}
        matrix = {**defaults.get("matrix", {}), **variant.get("matrix", {})}
        base = {k: v for k, v in {**defaults, **variant}.items() if k in _API_KEYS}
        base["character_reference_image"] = variant.get("reference", reference)
        seeds = _seeds(variant) or _seeds(defaults) or [None]

        if "prompt" not in base:
            problems.append((where, "no prompt: give one here or in defaults"))
            continue
        if ("image" in base) != ("mask" in base):
            problems.append((where, "'image' and 'mask' go together: give both or neither"))
            continue

        seen: set[str] = set()
        seen_twins: set[int] = set()
        for combo in _combinations(matrix):
            params = {**base, **{k: v for k, v in combo.items() if k in _API_KEYS}}
            prompt, errors = render(params["prompt"], {**variables, **combo})
            name, name_errors = _job_stem(variant["name"], combo, variables)
            if not errors and not prompt.strip():
                errors = [f"the prompt {params['prompt']!r} renders to blank text"]
            for message in errors + name_errors:
                if message not in seen:
                    seen.add(message)
                    problems.append((where, message))
            if errors or name_errors:
                continue
            params["prompt"] = prompt
            for seed in seeds:
                sent = dict(params) if seed is None else {**params, "seed": seed}
                job = _job(sent, images, prices, name, variant["name"], seed)
                first, first_index = first_of.setdefault(job.id, (job, index))
                if first is job:
                    jobs.append(job)
                    continue
                message = (
                    f"job {job.name!r} would send the same request as {first.name!r} "
                    f"(variants[{first_index}]), so both are one job, paid for twice: make them "
                    "differ (a prompt, a parameter or a seed)"
                )
                if first_index not in seen_twins:
                    seen_twins.add(first_index)
                    problems.append((where, message))
    return jobs, problems


def _job_stem(
    template: str, combo: Mapping[str, Any], variables: Mapping[str, object]
) -> tuple[str, list[str]]:
    if "{" not in template:
        name = "-".join([template, *(slug(v) for v in combo.values())])
        if len(name) <= MAX_JOB_NAME:
            return name, []
        problem = (
            f"job names made of {template!r} and its matrix values run past {MAX_JOB_NAME} "
            "characters: give the variant a name with placeholders, as in 'look-{style}'"
        )
        return name, [problem]
    slugs = {k: slug(v) for k, v in {**variables, **combo}.items()}
    name, problems = render(template, slugs)
    if not problems and not is_safe_name(name):
        problems.append(f"name {template!r} renders to {name!r}, which is not a safe file name")
    return name, problems


def _job(
    params: dict[str, Any],
    images: Mapping[str, ImageSource],
    prices: Mapping[str, float],
    stem: str,
    variant: str,
    seed: int | None,
) -> Job:
    uploads: dict[str, Upload] = {}
    for name in FILE_PARAMS:
        if name not in params:
            continue
        source = images[params[name]]
        if source.url is not None:
            params[name] = source.url
        else:
            assert source.path is not None and source.digest is not None
            del params[name]
            uploads[name] = Upload(source.path, source.digest)
    return Job(
        id=job_id(params, uploads),
        name=stem if seed is None else f"{stem}-s{seed}",
        variant=variant,
        params=params,
        uploads=uploads,
        price=price_of(params, prices),
    )
