"""Load a manifest: read the YAML, check it against the JSON Schema and the rules the schema
cannot express, resolve its images, and expand it into jobs.

Every problem is collected and reported at once, each with file, line, column and field.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from difflib import get_close_matches
from importlib import resources
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError
from jsonschema.protocols import Validator
from PIL import Image, UnidentifiedImageError

from . import yamlsource
from .errors import Problem
from .jobs import ImageSource, Job, expand, is_safe_name
from .pricing import price_table
from .yamlsource import Source, field_name

SCHEMA_FILE: Final = "manifest.schema.json"
#: A local image larger than this is refused unread (it also keeps /dev/zero from being read).
MAX_IMAGE_BYTES: Final = 50_000_000
_IMAGE_KEYS: Final = ("reference", "image", "mask")
_TYPE_NAMES: Final = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "object": "a mapping",
    "array": "a list",
    "boolean": "true or false",
    "null": "empty",
}


@dataclass(frozen=True, slots=True)
class RunSettings:
    """Run settings a manifest may carry under ``run:``; each is None when not written."""

    rpm: int | None = None
    concurrency: int | None = None
    max_credits: float | None = None
    min_credits: float | None = None
    retries: int | None = None
    latency: float | None = None
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class Manifest:
    """A manifest that passed every check, expanded into jobs."""

    path: Path
    name: str
    jobs: tuple[Job, ...]
    prices: Mapping[str, float]
    run: RunSettings


@functools.cache
def schema() -> dict[str, Any]:
    """The manifest JSON Schema, from the installed package or else the source tree."""
    packaged = resources.files("batchgen") / SCHEMA_FILE
    if packaged.is_file():
        text = packaged.read_text(encoding="utf-8")
    else:
        text = (Path(__file__).parent.parent / "schemas" / SCHEMA_FILE).read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def _unique_items(
    validator: Validator, unique: bool, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    # jsonschema compares every pair of items when they do not sort (mixed types): hours for a
    # list a 1 MB file can hold. Canonical JSON text finds a repeat in one pass; 1 and 1.0 are
    # one value to JSON Schema, true and 1 are two.
    if not unique or not validator.is_type(instance, "array"):
        return
    seen: set[str] = set()
    for item in instance:
        if isinstance(item, float) and item.is_integer():
            item = int(item)
        text = json.dumps(item, sort_keys=True)
        if text in seen:
            yield ValidationError(f"has repeated values ({_shorten(text)})")
            return
        seen.add(text)


def _is_integer(checker: object, instance: object) -> bool:
    # JSON Schema counts 5.0 as an integer; range() and the API's seed field do not.
    return isinstance(instance, int) and not isinstance(instance, bool)


_ManifestValidator: type[Validator] = validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator,
    {"uniqueItems": _unique_items},
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer),
)


@functools.cache
def _validator() -> Validator:
    return _ManifestValidator(schema())


def load_manifest(path: Path) -> Manifest:
    """Load, validate and expand a manifest; raises ManifestError listing every problem."""
    source = yamlsource.load(path, display_name=os.fspath(path))
    problems = schema_problems(source)
    if problems:
        raise yamlsource.refused(problems)
    data = source.data
    images, problems = _resolve_images(source, path.parent)
    problems += _name_problems(source, path)
    prices = price_table(data.get("pricing"))
    jobs, job_problems = expand(data, images, prices) if not problems else ([], [])
    problems += [Problem(source.locate(p), field_name(p), m) for p, m in job_problems]
    if problems:
        raise yamlsource.refused(problems)
    return Manifest(
        path=path,
        name=data.get("name") or path.stem,
        jobs=tuple(jobs),
        prices=prices,
        run=RunSettings(**data.get("run", {})),
    )


def schema_problems(source: Source) -> list[Problem]:
    """Every schema violation in the manifest, as located, readable problems."""
    errors = _leaf_errors(_validator().iter_errors(source.data))
    problems = [p for e in errors for p in _problems(source, e)]
    return sorted(
        problems, key=lambda p: (p.location.line, p.location.column) if p.location else (0, 0)
    )


def _leaf_errors(errors: Iterator[ValidationError]) -> Iterator[ValidationError]:
    # A oneOf failure says only "not valid under any"; the branch of the value's own type says why.
    for error in errors:
        # Drop the branches whose type does not even match; keep what the matching one says.
        branch = [e for e in error.context or [] if e.validator != "type" or e.relative_path]
        if error.validator == "oneOf" and branch:
            yield from _leaf_errors(iter(branch))
        else:
            yield error


def _problems(source: Source, error: ValidationError) -> list[Problem]:
    path = tuple(error.absolute_path)
    if error.validator == "additionalProperties":
        rules: Any = error.schema  # jsonschema types these loosely; here they are JSON data
        allowed = list(rules.get("properties", {}))
        instance: Any = error.instance
        listed = ", ".join(allowed)
        return [
            Problem(
                source.locate((*path, key), key=True),
                field_name((*path, key)),
                "unknown key" + (_did_you_mean(key, allowed) or f" (allowed here: {listed})"),
            )
            for key in sorted(set(instance) - set(allowed))
        ]
    if "propertyNames" in error.absolute_schema_path:  # the key itself is wrong: point at it
        written: str = error.instance  # type: ignore[assignment]
        at = (*path, written)
        message = (
            f"{_show(written)} is not a usable variable name: use letters, digits and '_', "
            "starting with a letter or '_'"
        )
        return [Problem(source.locate(at, key=True), field_name(at), message)]
    if error.validator == "not":  # the schema's way of saying "this key may not be swept"
        key = path[-1] if path else ""
        hint = "; use seeds:" if key in ("seed", "seeds") else ""
        where = source.locate(path, key=True)
        return [Problem(where, field_name(path), f"cannot be swept in a matrix{hint}")]
    return [Problem(source.locate(path), field_name(path), _message(error))]


def _message(error: ValidationError) -> str:
    validator = error.validator
    value: Any = error.instance
    expected: Any = error.validator_value
    if validator == "enum":
        options = [str(o) for o in expected]
        listed = (
            ", ".join(options)
            if len(options) <= 15
            else f"one of {len(options)} values, e.g. {options[0]}"
        )
        return f"{_show(value)} is not one of {listed}{_did_you_mean(str(value), options)}"
    if validator == "type":
        wanted = expected if isinstance(expected, str) else expected[0]
        message = f"expected {_TYPE_NAMES.get(wanted, wanted)}, got {_describe(value)}"
        if wanted == "string" and isinstance(value, (int, float, bool)):
            message += f' — quote it if you meant the text: "{_as_written(value)}"'
        return message
    if validator == "required":
        return str(error.message).replace("is a required property", "is missing")
    if validator == "const":
        return f"must be {expected!r}, not {_show(value)}"
    if validator == "pattern":
        return (
            f"{_show(value)} is not a usable name: use letters, digits, '.', '_' and '-', "
            "starting with a letter or digit"
        )
    if validator in ("minimum", "maximum"):
        return f"{_show(value)} is out of range ({validator} {expected})"
    if validator == "exclusiveMinimum":
        return f"{_show(value)} is out of range (must be more than {expected})"
    if validator == "maxLength":
        return f"{_show(value)} is {len(value):,} characters long, more than {expected:,}"
    if validator in ("minLength", "minItems", "minProperties") and expected == 1:
        return "is empty; give it a value or leave the key out"
    if validator == "uniqueItems":
        return str(error.message)
    if validator == "oneOf":
        kinds = [_TYPE_NAMES.get(b.get("type", ""), "?") for b in expected]
        return f"expected {' or '.join(kinds)}, got {_describe(value)}"
    return str(error.message)


def _describe(value: object) -> str:
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, (int, float)):
        return f"a number ({_show(value)})"
    if isinstance(value, str):
        return f"the text {_show(value)}"
    return "a list" if isinstance(value, list) else "a mapping"


def _show(value: object) -> str:
    if isinstance(value, str) and len(value) > 60:
        return repr(value[:59] + "…")
    return _shorten(repr(value))


def _shorten(text: str) -> str:
    # A message quotes what was written, but never a whole megabyte of it.
    return text if len(text) <= 60 else text[:59] + "…"


def _as_written(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _did_you_mean(word: str, options: list[str]) -> str:
    close = get_close_matches(word, options, n=1, cutoff=0.6)
    return f" — did you mean '{close[0]}'?" if close else ""


def _image_fields(data: Mapping[str, Any]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    yield ("character", "reference"), data["character"]["reference"]
    sections: list[tuple[tuple[str | int, ...], Mapping[str, Any]]] = [
        (("defaults",), data.get("defaults", {}))
    ]
    sections += [(("variants", i), v) for i, v in enumerate(data["variants"])]
    for where, section in sections:
        for key in _IMAGE_KEYS:
            if key in section:
                yield (*where, key), section[key]


def _resolve_images(source: Source, base: Path) -> tuple[dict[str, ImageSource], list[Problem]]:
    images: dict[str, ImageSource] = {}
    problems: list[Problem] = []
    for path, value in _image_fields(source.data):
        if value in images:
            continue
        if value.startswith(("http://", "https://")):
            if not _is_usable_url(value):
                message = f"{_show(value)} is not a usable URL"
                problems.append(Problem(source.locate(path), field_name(path), message))
            images[value] = ImageSource(url=value)
            continue
        try:
            images[value] = _local_image(base / value)
        except ValueError as exc:
            problems.append(Problem(source.locate(path), field_name(path), str(exc)))
    return images, problems


def _is_usable_url(url: str) -> bool:
    try:
        host = urlsplit(url).hostname
    except ValueError:  # an unclosed IPv6 bracket, say
        return False
    return bool(host) and url == url.strip() and not any(ord(c) < 32 for c in url)


def _local_image(path: Path) -> ImageSource:
    shown = repr(os.fspath(path))
    if "\0" in os.fspath(path):
        raise ValueError(f"{shown} holds a NUL character; no file can have that name")
    try:
        # Look before reading: a FIFO, a device or a huge file would hang or exhaust memory.
        info = path.stat()
    except FileNotFoundError:
        why = "is a link to nothing" if path.is_symlink() else "does not exist"
        raise ValueError(f"{shown} {why} (paths are relative to the manifest)") from None
    except OSError as exc:
        raise ValueError(f"{shown} cannot be read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise ValueError(f"{shown} is a folder, not an image file")
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"{shown} is not a regular file (a device, a pipe or a socket)")
    if info.st_size > MAX_IMAGE_BYTES:
        raise ValueError(f"{shown} is larger than {MAX_IMAGE_BYTES:,} bytes; use a smaller image")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{shown} cannot be read: {exc.strerror or exc}") from None
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
            kind = image.format
    except UnidentifiedImageError:
        message = f"{shown} is not a readable image (not a JPEG, PNG or WebP file)"
        raise ValueError(message) from None
    except Image.DecompressionBombError:
        raise ValueError(f"{shown} claims too many pixels to be a usable image") from None
    except Exception as exc:  # a decoder meeting hostile bytes may raise almost anything
        raise ValueError(f"{shown} is not a readable image ({exc or type(exc).__name__})") from None
    if kind not in ("JPEG", "PNG", "WEBP"):
        raise ValueError(f"{shown} is {kind}; the API takes JPEG, PNG or WebP")
    return ImageSource(path=path, digest=hashlib.sha256(data).hexdigest())


def _name_problems(source: Source, path: Path) -> list[Problem]:
    data = source.data
    problems: list[Problem] = []
    if "name" not in data and not is_safe_name(path.stem):
        problems.append(
            Problem(
                source.locate(()),
                "name",
                f"the file name {path.stem!r} is not a safe folder name: set name: in the manifest",
            )
        )
    if "name" in data and not is_safe_name(data["name"]):
        problems.append(
            Problem(source.locate(("name",)), "name", f"{data['name']!r} is a reserved name")
        )
    first: dict[str, int] = {}
    for index, variant in enumerate(data["variants"]):
        name, where = variant["name"], ("variants", index, "name")
        if name.lower() in first:
            earlier = source.locate(("variants", first[name.lower()], "name"))
            line = f" (first at line {earlier.line})" if earlier else ""
            problems.append(
                Problem(
                    source.locate(where),
                    field_name(where),
                    f"duplicate variant name {name!r}{line}",
                )
            )
        else:
            first[name.lower()] = index
        if "{" not in name and not is_safe_name(name):
            problems.append(
                Problem(source.locate(where), field_name(where), f"{name!r} is a reserved name")
            )
    return problems
