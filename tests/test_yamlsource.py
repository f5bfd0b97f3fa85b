"""Tests for batchgen.yamlsource: strict, safe, located YAML loading."""

from __future__ import annotations

import json
import math
import pathlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchgen import yamlsource
from batchgen.errors import Location, ManifestError, Problem
from batchgen.yamlsource import MAX_BYTES, Source, field_name, load, parse, read_text


def problems(text: str) -> list[str]:
    """The problems parse() reports for text, as the CLI prints them."""
    with pytest.raises(ManifestError) as caught:
        parse(text, "m.yaml")
    return [str(problem) for problem in caught.value.problems]


def only_problem(text: str) -> Problem:
    """The single problem parse() reports for text."""
    with pytest.raises(ManifestError) as caught:
        parse(text, "m.yaml")
    assert len(caught.value.problems) == 1
    return caught.value.problems[0]


# --- plain scalars ------------------------------------------------------------------------

PLAIN_SCALARS = [
    ("", None),
    ("~", None),
    ("null", None),
    ("Null", None),
    ("NULL", None),
    ("true", True),
    ("True", True),
    ("TRUE", True),
    ("false", False),
    ("False", False),
    ("FALSE", False),
    ("0", 0),
    ("-0", 0),
    ("+1", 1),
    ("42", 42),
    ("-17", -17),
    ("2147483647", 2147483647),
    ("1.5", 1.5),
    (".5", 0.5),
    ("5.", 5.0),
    ("-2.5e3", -2500.0),
    ("1e3", 1000.0),
    ("+.5E-2", 0.005),
    ("012.5", 12.5),
    # Everything below stays exactly the text that was written.
    ("yes", "yes"),
    ("no", "no"),
    ("on", "on"),
    ("off", "off"),
    ("y", "y"),
    ("n", "n"),
    ("Yes", "Yes"),
    ("OFF", "OFF"),
    ("tRUE", "tRUE"),
    ("nULL", "nULL"),
    ("16:9", "16:9"),
    ("190:20:30", "190:20:30"),
    ("012", "012"),
    ("-007", "-007"),
    ("00", "00"),
    ("0x1F", "0x1F"),
    ("0o17", "0o17"),
    ("0b101", "0b101"),
    ("1_000", "1_000"),
    ("1_000.5", "1_000.5"),
    (".inf", ".inf"),
    ("-.inf", "-.inf"),
    (".nan", ".nan"),
    (".NaN", ".NaN"),
    ("1e", "1e"),
    ("1.2.3", "1.2.3"),
    ("e3", "e3"),
    ("2024-01-01", "2024-01-01"),
    ("2001-12-14t21:59:43.10-05:00", "2001-12-14t21:59:43.10-05:00"),
    ("<<", "<<"),
    ("=", "="),
    ("Mira in a cafe", "Mira in a cafe"),
]


@pytest.mark.parametrize(("written", "expected"), PLAIN_SCALARS)
def test_plain_scalar_resolves_strictly(written: str, expected: Any) -> None:
    """An unquoted scalar becomes null, bool, int or float only by the strict rules; else text."""
    value = parse(f"v: {written}\n", "m.yaml").data["v"]
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ('"true"', "true"),
        ("'12'", "12"),
        ("'~'", "~"),
        ('"null"', "null"),
        ('""', ""),
        ("'1.5'", "1.5"),
        ("|\n  12\n", "12\n"),
        (">-\n  true\n", "true"),
        ("! 12", "12"),
        ("!!str 12", "12"),
        ("!!str true", "true"),
        ("!!int 12", 12),
        ("!!int -3", -3),
        ("!!float 3", 3.0),
        ("!!float 2.5", 2.5),
        ("!!bool false", False),
        ("!!null ~", None),
        ("!!null", None),
    ],
)
def test_quoted_block_and_tagged_scalars(written: str, expected: Any) -> None:
    """Quoted and block scalars are always text; standard tags give their own type."""
    value = parse(f"v: {written}\n", "m.yaml").data["v"]
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("!!int 012", "'012' is not a valid !!int (expected a decimal integer)"),
        ("!!int abc", "'abc' is not a valid !!int (expected a decimal integer)"),
        ("!!int 1.5", "'1.5' is not a valid !!int (expected a decimal integer)"),
        ("!!bool yes", "'yes' is not a valid !!bool (expected true or false)"),
        ("!!float .inf", "'.inf' is not a valid !!float (expected a decimal number)"),
        ("!!null nothing", "'nothing' is not a valid !!null (expected null)"),
        ("1e400", "'1e400' is too large a number; quote it if it is meant as text"),
        ("-1e999", "'-1e999' is too large a number; quote it if it is meant as text"),
        ("9" * 5000, "is too large a number; quote it if it is meant as text"),
    ],
)
def test_scalar_that_does_not_fit_is_refused(written: str, message: str) -> None:
    """A tagged scalar whose text does not fit its tag, or a number beyond range, is refused."""
    problem = only_problem(f"v: {written}\n")
    assert problem.location == Location("m.yaml", 1, 4)
    assert problem.field == "v"
    assert message in problem.message


# --- keys ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: 1\na: 2\n", ["m.yaml:2:1: duplicate key 'a' (first at line 1)"]),
        ("a: 1\n'a': 2\n", ["m.yaml:2:1: duplicate key 'a' (first at line 1)"]),
        ("b: {c: 1, c: 2}\n", ["m.yaml:1:11: b: duplicate key 'c' (first at line 1)"]),
        (
            "variants:\n  - name: x\n    prompt: a\n    seed: 1\n    prompt: b\n",
            ["m.yaml:5:5: variants[0]: duplicate key 'prompt' (first at line 3)"],
        ),
        (
            "a: 1\nb: 2\na: 3\nb: 4\na: 5\n",
            [
                "m.yaml:3:1: duplicate key 'a' (first at line 1)",
                "m.yaml:4:1: duplicate key 'b' (first at line 2)",
                "m.yaml:5:1: duplicate key 'a' (first at line 1)",
            ],
        ),
    ],
)
def test_duplicate_keys_are_refused_naming_both_lines(text: str, expected: list[str]) -> None:
    """Every duplicate key is reported at its own line, naming the line of the first."""
    assert problems(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1: x\n", 'the key 1 is read as a number, not text; quote it ("1")'),
        ("1.5: x\n", 'the key 1.5 is read as a number, not text; quote it ("1.5")'),
        ("true: x\n", 'the key true is read as true/false, not text; quote it ("true")'),
        ("~: x\n", 'the key ~ is read as null, not text; quote it ("~")'),
        ("null: x\n", 'the key null is read as null, not text; quote it ("null")'),
        ("!!int 3: x\n", 'the key 3 is read as a number, not text; quote it ("3")'),
        ("? \n: x\n", "a key is missing; give the value a name"),
        ("? [a]\n: x\n", "a key must be a name, not a list or a mapping"),
        ("? {a: 1}\n: x\n", "a key must be a name, not a list or a mapping"),
        ("!foo k: x\n", "the tag !foo is not allowed"),
    ],
)
def test_non_string_keys_are_refused(text: str, message: str) -> None:
    """A key that is not text (a number, a boolean, null, a collection) is refused with a hint."""
    problem = only_problem(text)
    assert problem.location is not None
    assert problem.location.line == 1
    assert message in problem.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [("'1': x\n", {"1": "x"}), ('"true": x\n', {"true": "x"}), ("'<<': 1\n", {"<<": 1})],
)
def test_quoted_keys_are_text(text: str, expected: dict[str, Any]) -> None:
    """Quoting a key makes it text, whatever it looks like."""
    assert parse(text, "m.yaml").data == expected


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("base: &b {x: 1}\nitem:\n  <<: *b\n", (3, 3)),
        ("base: &b {x: 1}\nitem:\n  !!merge <<: *b\n", (3, 3)),
        ("base: &b {x: 1}\nitem: {<<: *b, y: 2}\n", (2, 8)),
    ],
)
def test_merge_keys_are_refused_with_a_hint(text: str, where: tuple[int, int]) -> None:
    """A merge key ('<<') is refused where it is written, pointing to 'defaults:'."""
    problem = only_problem(text)
    assert problem.field == "item"
    assert problem.location == Location("m.yaml", *where)
    assert "merge keys ('<<') are not supported" in problem.message
    assert "defaults:" in problem.message


# --- tags ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("!!python/object:os.system x", "the tag !!python/object:os.system is not allowed"),
        ("!!python/name:os.system ''", "the tag !!python/name:os.system is not allowed"),
        (
            "!<tag:yaml.org,2002:python/object/apply:os.system> [ls]",
            "the tag !!python/object/apply:os.system is not allowed",
        ),
        ("!foo x", "the tag !foo is not allowed"),
        ("!foo [1]", "the tag !foo is not allowed"),
        ("!!binary aGk=", "the tag !!binary is not allowed"),
        ("!!timestamp 2024-01-01", "the tag !!timestamp is not allowed"),
        ("!!set {a}", "the tag !!set is not allowed"),
        ("!!omap [a: 1]", "the tag !!omap is not allowed"),
        ("!!map x", "the tag !!map cannot mark a single value"),
        ("!!seq {a: 1}", "the tag !!seq cannot mark a mapping"),
        ("!!str [a]", "the tag !!str cannot mark a list"),
    ],
)
def test_unsafe_or_unknown_tags_are_refused(written: str, message: str) -> None:
    """Only the standard str/int/float/bool/null/seq/map tags pass, each on its own kind of node."""
    problem = only_problem(f"v: {written}\n")
    assert problem.location == Location("m.yaml", 1, 4)
    assert problem.field == "v"
    assert message in problem.message


def test_tag_directive_cannot_smuggle_python_tags() -> None:
    """A %TAG directive that maps '!' to python tags is refused like the tag it expands to."""
    text = "%TAG ! tag:yaml.org,2002:python/\n---\na: !object:os.system x\n"
    assert problems(text) == [
        "m.yaml:3:4: a: the tag !!python/object:os.system is not allowed; remove it "
        "(a manifest holds only text, numbers, true/false, null, lists and mappings)"
    ]


def test_standard_collection_tags_are_accepted() -> None:
    """Explicit !!map and !!seq on the matching nodes are harmless and accepted."""
    assert parse("a: !!map {b: !!seq [1]}\n", "m.yaml").data == {"a": {"b": [1]}}


def test_every_problem_is_collected() -> None:
    """Problems of different kinds anywhere in the document are all reported at once."""
    text = "a: !foo 1\nb:\n  - !!int x\n  - {1: 2}\na: 3\n"
    assert problems(text) == [
        "m.yaml:1:4: a: the tag !foo is not allowed; remove it "
        "(a manifest holds only text, numbers, true/false, null, lists and mappings)",
        "m.yaml:3:5: b[0]: 'x' is not a valid !!int (expected a decimal integer)",
        'm.yaml:4:6: b[1]: the key 1 is read as a number, not text; quote it ("1") '
        "if it is meant as a name",
        "m.yaml:5:1: duplicate key 'a' (first at line 1)",
    ]


# --- documents ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line"),
    [("a: 1\n---\nb: 2\n", 2), ("---\na: 1\n---\nb: 2\n", 3), ("a: 1\n--- x\n", 2)],
)
def test_second_document_is_refused(text: str, line: int) -> None:
    """A stream with more than one document is refused where the second one starts."""
    problem = only_problem(text)
    assert problem.location == Location("m.yaml", line, 1)
    assert "a second YAML document starts here" in problem.message


@pytest.mark.parametrize("text", ["--- \na: 1\n", "a: 1\n...\n", "%YAML 1.1\n---\na: 1\n"])
def test_single_document_markers_are_fine(text: str) -> None:
    """Start and end markers and a version directive around one document are accepted."""
    assert parse(text, "m.yaml").data == {"a": 1}


@pytest.mark.parametrize("text", ["", "   \n\n", "# only a comment\n", "---\n", "~\n", "null"])
def test_empty_document_is_refused(text: str) -> None:
    """A stream without content (nothing, comments, or a null document) is refused."""
    problem = only_problem(text)
    assert problem.location is not None
    assert "holds no YAML content" in problem.message


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("- a\n- b\n", "a list"),
        ("[1, 2]", "a list"),
        ("hello", "a single value"),
        ("12", "a single value"),
    ],
)
def test_root_must_be_a_mapping(text: str, kind: str) -> None:
    """The top level must be a mapping; a list or a scalar is refused, saying which it was."""
    problem = only_problem(text)
    assert problem.location == Location("m.yaml", 1, 1)
    assert problem.message.endswith(f"not {kind}")


# --- syntax errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        ("a: 1\n b: 2\n", 2, 3, "mapping values are not allowed here"),
        ("a: b: c\n", 1, 5, "mapping values are not allowed here"),
        ("a: [1, 2\nb: 3\n", 2, 2, "expected ',' or ']'"),
        ("{a: 1\n", 2, 1, "but got the end of the file"),
        ('a: "open\n', 2, 1, "quoted scalar that starts at line 1"),
        ("a:\n\t- b\n", 2, 1, "indent with spaces, not tabs"),
        ("- a\nb: 1\n", 2, 1, "expected the end of the indented block, but found a key"),
        ("a: @x\n", 1, 4, "found character '@' that cannot start any token"),
        ("a: *nope\n", 1, 4, "found undefined alias 'nope'"),
        ("a: &x 1\nb: &x 2\n", 2, 4, "duplicate anchor 'x' (first at line 1)"),
        ("%YAML 2.0\n---\na: 1\n", 1, 1, "found incompatible YAML document"),
        ("a: \x07\n", 1, 4, "holds the character U+0007, which YAML does not allow"),
        ("a: 1\nb: x\x00y\n", 2, 5, "holds the character U+0000"),
    ],
)
def test_syntax_error_is_one_located_problem(
    text: str, line: int, column: int, message: str
) -> None:
    """A YAML syntax error becomes one problem at its 1-based line and column."""
    problem = only_problem(text)
    assert problem.location == Location("m.yaml", line, column)
    assert message in problem.message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: " + "[" * 5000 + "]" * 5000, "m.yaml:1:54: brackets are nested deeper than 50 levels"),
        ("a: " + "{b: " * 60 + "}" * 60, "m.yaml:1:204: brackets are nested deeper than 50 levels"),
        ("a:\n  " + "- " * 60 + "x\n", "is nested deeper than 50 levels (with aliases expanded)"),
        ("a:\n  " + "- " * 5000 + "x\n", "m.yaml:1:1: is nested too deeply to read"),
    ],
)
def test_deep_nesting_is_refused(text: str, message: str) -> None:
    """Nesting too deep to read or to expand is refused early, never a RecursionError."""
    assert message in str(only_problem(text))


# --- aliases ------------------------------------------------------------------------------


def billion_laughs(levels: int = 9) -> str:
    """A small document whose aliases expand to 10**levels strings."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        name, previous = chr(ord("a") + i), chr(ord("a") + i - 1)
        lines.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 10)}]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused() -> None:
    """A document that expands past MAX_NODES through aliases is refused before expansion."""
    problem = only_problem(billion_laughs())
    assert "expands through aliases to more than 200,000 values" in problem.message


def test_long_alias_chain_is_refused() -> None:
    """Aliases that nest one another past MAX_DEPTH are refused without a RecursionError."""
    text = "a0: &a0 [1]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 200))
    assert "deeper than 50 levels" in only_problem(text).message


@pytest.mark.parametrize(
    ("text", "field"),
    [("a: &x [*x]\n", "a[0]"), ("a: &x {b: *x}\n", "a.b"), ("a: &x [1, [2, *x]]\n", "a[1][1]")],
)
def test_recursive_alias_is_refused(text: str, field: str) -> None:
    """An alias inside the value it names is refused instead of looping."""
    problem = only_problem(text)
    assert problem.field == field
    assert "an alias here refers to a value that contains it" in problem.message


def test_aliases_expand_into_independent_copies() -> None:
    """Each use of an anchor becomes its own copy, located where the anchor defines it."""
    source = parse("base: &b {style: Fiction}\nuse: *b\n", "m.yaml")
    assert source.data == {"base": {"style": "Fiction"}, "use": {"style": "Fiction"}}
    assert source.data["base"] is not source.data["use"]
    assert source.locate(("use", "style")) == Location("m.yaml", 1, 18)
    assert source.locate(("use",), key=True) == Location("m.yaml", 2, 1)


# --- locations ----------------------------------------------------------------------------

MANIFEST = """\
version: 1
defaults:
  aspect_ratio: "9:16"
variants:
  - name: cafe
    prompt: Mira in a cafe
  - name: rooftop
    style_type: Fiction
    seeds: [7, 8]
"""


@pytest.mark.parametrize(
    ("path", "key", "expected"),
    [
        ((), False, (1, 1)),
        (("version",), False, (1, 10)),
        (("version",), True, (1, 1)),
        (("defaults", "aspect_ratio"), False, (3, 17)),
        (("defaults", "aspect_ratio"), True, (3, 3)),
        (("variants",), False, (5, 3)),
        (("variants", 0), False, (5, 5)),
        (("variants", 0), True, (5, 5)),
        (("variants", 1, "style_type"), False, (8, 17)),
        (("variants", 1, "style_type"), True, (8, 5)),
        (("variants", 1, "seeds", 1), False, (9, 16)),
        (("variants", 1, "missing"), False, (7, 5)),
        (("variants", 1, "missing"), True, (7, 5)),
        (("variants", 9, "name"), False, (5, 3)),
        (("nowhere", "at", 0), False, (1, 1)),
    ],
)
def test_locate_values_keys_and_ancestors(
    path: tuple[str | int, ...], key: bool, expected: tuple[int, int]
) -> None:
    """locate() finds a value, or its key on request, else the nearest known ancestor."""
    source = parse(MANIFEST, "m.yaml")
    assert source.locate(path, key=key) == Location("m.yaml", *expected)


def test_every_value_and_key_is_located() -> None:
    """values holds the root, each mapping value and each list item; keys each mapping key."""
    source = parse(MANIFEST, "m.yaml")
    assert set(source.values) == {
        (),
        ("version",),
        ("defaults",),
        ("defaults", "aspect_ratio"),
        ("variants",),
        *(("variants", i) for i in (0, 1)),
        *(("variants", 0, k) for k in ("name", "prompt")),
        *(("variants", 1, k) for k in ("name", "style_type", "seeds")),
        *(("variants", 1, "seeds", i) for i in (0, 1)),
    }
    assert set(source.keys) == {
        path for path in source.values if path and isinstance(path[-1], str)
    }
    assert set(source.keys) <= set(source.values)


def test_locate_without_locations_is_none() -> None:
    """With nothing known, locate() answers None."""
    assert Source("m.yaml", {}, {}, {}).locate(("a", 0)) is None


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ((), ""),
        (("variants",), "variants"),
        (("variants", 3, "style_type"), "variants[3].style_type"),
        (("seeds", 0), "seeds[0]"),
        ((0, "a"), "[0].a"),
        (("defaults", "aspect-ratio"), "defaults.aspect-ratio"),
        (("defaults", "a b"), 'defaults["a b"]'),
        (("a.b",), '["a.b"]'),
    ],
)
def test_field_name(path: tuple[str | int, ...], name: str) -> None:
    """field_name() writes a path the way a reader would, quoting keys that are not names."""
    assert field_name(path) == name


# --- reading files ------------------------------------------------------------------------


def refusal(path: pathlib.Path, name: str | None = None) -> Problem:
    """The single problem read_text() reports for path."""
    with pytest.raises(ManifestError) as caught:
        read_text(path, name)
    assert len(caught.value.problems) == 1
    return caught.value.problems[0]


def test_read_text_returns_text_without_bom(tmp_path: pathlib.Path) -> None:
    """A UTF-8 file is read as text, dropping a leading byte-order mark."""
    path = tmp_path / "m.yaml"
    path.write_bytes("\ufeffname: café\n".encode())
    assert read_text(path) == "name: café\n"


def test_missing_file_is_refused(tmp_path: pathlib.Path) -> None:
    """A missing file is refused without a location, naming the file."""
    problem = refusal(tmp_path / "nope.yaml", "nope.yaml")
    assert problem.location is None
    assert str(problem) == "nope.yaml: no such file"


def test_directory_is_refused(tmp_path: pathlib.Path) -> None:
    """A directory is refused without a location, naming it."""
    problem = refusal(tmp_path, "manifests")
    assert problem.location is None
    assert str(problem) == "manifests is a directory, not a manifest file"


@pytest.mark.parametrize("content", [b"", b"  \n\t\n", b"# a comment\n\n  # another\n"])
def test_empty_file_is_refused(tmp_path: pathlib.Path, content: bytes) -> None:
    """An empty, blank or comment-only file is refused at line 1."""
    path = tmp_path / "m.yaml"
    path.write_bytes(content)
    problem = refusal(path, "m.yaml")
    assert problem.location == Location("m.yaml", 1, 1)
    assert problem.message.startswith("is empty")


def test_oversized_file_is_refused(tmp_path: pathlib.Path) -> None:
    """A file over MAX_BYTES is refused at line 1."""
    path = tmp_path / "m.yaml"
    path.write_bytes(b"a: 1\n" + b"#" * MAX_BYTES)
    problem = refusal(path, "m.yaml")
    assert problem.location == Location("m.yaml", 1, 1)
    assert "is larger than the 1,000,000-byte limit" in problem.message


def test_size_limit_is_read_at_call_time(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The size limit is the module's MAX_BYTES when read_text runs."""
    monkeypatch.setattr(yamlsource, "MAX_BYTES", 8)
    path = tmp_path / "m.yaml"
    path.write_bytes(b"a: 12345\n")
    assert "8-byte limit" in refusal(path).message


def test_binary_file_is_refused(tmp_path: pathlib.Path) -> None:
    """A file holding a NUL byte is refused as not a text file."""
    path = tmp_path / "ref.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    problem = refusal(path, "ref.png")
    assert problem.location == Location("ref.png", 1, 1)
    assert problem.message.startswith("is not a text file")


def test_invalid_utf8_is_refused_at_the_bad_byte(tmp_path: pathlib.Path) -> None:
    """A file that is not UTF-8 is refused, naming the byte offset and its line and column."""
    path = tmp_path / "m.yaml"
    path.write_bytes("a: é\n".encode() + b"b: caf\xe9\n")
    problem = refusal(path, "m.yaml")
    assert problem.location == Location("m.yaml", 2, 7)
    assert problem.message.startswith("is not valid UTF-8 (byte 12)")


def test_load_names_the_file_as_displayed(tmp_path: pathlib.Path) -> None:
    """load() reads and parses, locating values and problems under the display name."""
    path = tmp_path / "m.yaml"
    path.write_text("a: 1\n", encoding="utf-8")
    assert load(path, "shown.yaml").locate(("a",)) == Location("shown.yaml", 1, 4)
    assert load(path).file == str(path)
    path.write_text("a: 1\na: 2\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"^shown\.yaml:2:1: duplicate key 'a'"):
        load(path, "shown.yaml")


# --- properties ---------------------------------------------------------------------------


def assert_plain(data: Any) -> None:
    """data is JSON-compatible: str-keyed dicts, lists, str, int, finite float, bool, None."""
    if isinstance(data, dict):
        assert all(isinstance(key, str) for key in data)
        for value in data.values():
            assert_plain(value)
    elif isinstance(data, list):
        for item in data:
            assert_plain(item)
    elif isinstance(data, float):
        assert math.isfinite(data)
    else:
        assert data is None or isinstance(data, (str, int, bool))


def check_parse(text: str) -> None:
    """parse() refuses text with ManifestError, or returns consistent plain data."""
    try:
        source = parse(text, "p.yaml")
    except ManifestError:
        return
    assert isinstance(source.data, dict)
    assert_plain(source.data)
    json.dumps(source.data, allow_nan=False)
    for path in source.values:
        node = source.data
        for part in path:
            node = node[part]
    assert set(source.keys) <= set(source.values)


FRAGMENTS = [
    "a", "b", "key", ": ", ":", "\n", "  ", "    ", "- ", "-", "[", "]", "{", "}", ", ", "&x ",
    "*x", "&y ", "*y", "<<: ", "!!str ", "!!int ", "!!python/object:os.system ", "!foo ",
    "! ", "---\n", "...\n", "'", '"', "# c", "|\n", ">-\n", "? ", "1", "012", "1.5e3", "16:9",
    "yes", "~", "null", "true", ".inf", "%YAML 1.2\n", "%TAG ! !foo\n", "\t", "\\", "\x00",
    "é", "\ufeff", "\r\n", "\x85",
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_parse_never_raises_anything_else_on_arbitrary_text(text: str) -> None:
    """For any text, parse returns plain JSON-compatible data or raises ManifestError."""
    check_parse(text)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join))
def test_parse_never_raises_anything_else_on_yamlish_text(text: str) -> None:
    """For text built from YAML fragments, parse returns plain data or raises ManifestError."""
    check_parse(text)


YAML_SAFE_TEXT = st.text(
    # YAML refuses control characters and folds its own line breaks inside quotes.
    st.characters(blacklist_categories=("Cs", "Cc", "Cn", "Zl", "Zp")),
    max_size=20,
)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | YAML_SAFE_TEXT,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(YAML_SAFE_TEXT, children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(YAML_SAFE_TEXT, JSON_VALUES, max_size=5))
def test_json_documents_parse_to_the_same_data(data: dict[str, Any]) -> None:
    """A JSON document is YAML that parses to exactly its JSON data, types included."""
    parsed = parse(json.dumps(data, ensure_ascii=False), "p.json").data
    assert json.dumps(parsed, sort_keys=True) == json.dumps(data, sort_keys=True)
