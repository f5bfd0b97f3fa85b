"""Read a manifest file and parse its YAML into plain data, with the location of every value.

The YAML is read strictly, so that every value reaches the API exactly as written. Untagged
plain scalars follow a narrow YAML-1.2-core-like rule set, not PyYAML's YAML 1.1 one (``yes``,
``16:9``, ``012``, ``1_000``, ``.inf`` and ``2024-01-01`` stay text); only the standard
str/int/float/bool/null/seq/map tags pass; duplicate, non-string and merge (``<<``) keys are
refused; aliases are expanded, each use into its own copy, only once their expansion is known to
be small, and a value reached through an alias is located where its anchor defines it.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeAlias

import yaml
from yaml.error import Mark
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import ReaderError
from yaml.scanner import ScannerError

from batchgen.errors import Location, ManifestError, Problem

Path_: TypeAlias = tuple[str | int, ...]

#: Files larger than this are refused before they are read.
MAX_BYTES: int = 1_000_000
#: A document that expands (through aliases) to more nodes than this is refused.
MAX_NODES: int = 200_000
#: A document nested deeper than this (aliases expanded) is refused; manifests need a handful.
MAX_DEPTH: int = 50
#: At most this many problems are listed; the rest are counted (a megabyte of one mistake
#: would otherwise print a hundred thousand lines, slower than finding them).
MAX_PROBLEMS: int = 100

_YAML = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (_YAML + n for n in ("str", "int", "float", "bool", "null"))
_SEQ, _MAP, _MERGE = (_YAML + n for n in ("seq", "map", "merge"))
# Marks an untagged plain scalar, whose type batchgen's rules decide (never PyYAML's).
_PLAIN = "tag:batchgen,2024:plain"
_SCALAR_TAGS = frozenset({_PLAIN, _STR, _INT, _FLOAT, _BOOL, _NULL})

_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT_RE = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
_FLOAT_RE = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*|[0-9]+)(?:[eE][-+]?[0-9]+)?")
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_SURROGATE_PAIR = re.compile(r"[\ud800-\udbff][\udc00-\udfff]")
# Below Python's limit on int() of a string (4,300 digits), which raises instead of converting.
_MAX_DIGITS = 4_000
# PyYAML names tokens the way its grammar does; a user thinks in indentation and keys.
_TOKEN_WORDS = {
    "<block end>": "the end of the indented block", "'<scalar>'": "a value", "'?'": "a key",
    "'<block mapping start>'": "an indented mapping", "'<document start>'": "'---'",
    "'<stream end>'": "the end of the file",
}  # fmt: skip
_MERGE_HINT = "merge keys ('<<') are not supported; put values shared by variants under 'defaults:'"


@dataclass(frozen=True, slots=True)
class Source:
    """A parsed manifest: its plain data and where each value and key starts in the file."""

    file: str
    data: Any
    values: Mapping[Path_, Location]
    keys: Mapping[Path_, Location]

    def locate(self, path: Sequence[str | int], *, key: bool = False) -> Location | None:
        """Location of path's value (or its key when key=True and known); falls back to the
        nearest known ancestor, then None."""
        at = tuple(path)
        if key and at in self.keys:
            return self.keys[at]
        while at not in self.values:
            if not at:
                return None
            at = at[:-1]
        return self.values[at]


def field_name(path: Sequence[str | int]) -> str:
    """The readable name of a path, as in ``variants[3].style_type``; the root is ``""``."""
    parts: list[str] = []
    for part in path:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif _NAME_RE.fullmatch(part):
            parts.append(f".{part}" if parts else part)
        else:
            parts.append(f"[{json.dumps(part, ensure_ascii=False)}]")
    return "".join(parts)


def read_text(path: pathlib.Path, display_name: str | None = None) -> str:
    """Read a manifest file as UTF-8 text, dropping a leading BOM.

    Refuses, with one Problem, a missing or unreadable file or a directory (not located), and a
    file over MAX_BYTES, with a NUL byte, not UTF-8 (located at the bad byte, whose 0-based
    offset is N in "byte N"), or with nothing but whitespace and comments (located at 1:1).
    """
    name = display_name or str(path)
    if path.is_dir():
        raise _refuse(None, f"{name} is a directory, not a manifest file")
    try:
        with path.open("rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            # Read one byte past the limit: a pipe or a growing file has no trustworthy size.
            raw = b"" if size > MAX_BYTES else stream.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise _refuse(None, f"{name}: no such file") from None
    except OSError as error:
        raise _refuse(None, f"{name} cannot be read: {error.strerror or error}") from error
    start = Location(name, 1, 1)
    if max(size, len(raw)) > MAX_BYTES:
        raise _refuse(start, f"is larger than the {MAX_BYTES:,}-byte limit for a manifest")
    if b"\x00" in raw:
        raise _refuse(start, "is not a text file (it holds NUL bytes); a manifest is UTF-8 YAML")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        prefix = raw[: error.start].decode("utf-8", errors="replace")
        where = _offset_location(prefix, len(prefix), name)
        message = f"is not valid UTF-8 (byte {error.start}); save the file as UTF-8"
        raise _refuse(where, message) from None
    if all(not line.strip() or line.lstrip().startswith("#") for line in text.splitlines()):
        raise _refuse(start, "is empty: it holds only whitespace or comments, no YAML")
    return text


def parse(text: str, file: str) -> Source:
    """Parse YAML text into a Source; raises ManifestError listing every problem it can find."""
    root = _compose(text, file)
    if root is None or (root.tag == _PLAIN and root.value in _NULLS):
        message = "holds no YAML content; a manifest is a mapping with keys such as 'variants:'"
        raise _refuse(Location(file, 1, 1), message)
    if not isinstance(root, MappingNode):
        kind = "a list" if isinstance(root, SequenceNode) else "a single value"
        message = f"the top level must be a mapping with keys such as 'variants:', not {kind}"
        raise _refuse(_location(file, root.start_mark), message)
    _check_expansion(root, file)
    converter = _Converter(file)
    data = converter.value(root, ())
    if converter.problems:
        raise refused(converter.problems)
    values, keys = MappingProxyType(converter.values), MappingProxyType(converter.keys)
    return Source(file, data, values, keys)


def load(path: pathlib.Path, display_name: str | None = None) -> Source:
    """Read and parse a manifest file; messages name it display_name (default: the path)."""
    name = display_name or str(path)
    return parse(read_text(path, name), name)


def refused(problems: Sequence[Problem]) -> ManifestError:
    """A ManifestError listing the first MAX_PROBLEMS problems and counting the rest."""
    if len(problems) <= MAX_PROBLEMS:
        return ManifestError(list(problems))
    rest = problems[MAX_PROBLEMS:]
    message = f"and {len(rest):,} more problems from here on, not listed; fix those above first"
    return ManifestError([*problems[:MAX_PROBLEMS], Problem(rest[0].location, "", message)])


def _refuse(where: Location | None, message: str) -> ManifestError:
    return ManifestError([Problem(where, "", message)])


def _location(file: str, mark: Mark) -> Location:
    return Location(file, mark.line + 1, mark.column + 1)


def _problem(file: str, node: Node, path: Path_, message: str) -> Problem:
    return Problem(_location(file, node.start_mark), field_name(path), message)


class _Loader(yaml.SafeLoader):
    """A SafeLoader that leaves the typing of plain scalars to batchgen."""

    def compose_scalar_node(self, anchor: Any) -> ScalarNode:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        node = super().compose_scalar_node(anchor)
        if event.tag is None and event.style is None:
            node.tag = _PLAIN
        elif event.tag == "!":
            # YAML's non-specific tag means "text"; PyYAML would resolve it like a plain scalar.
            node.tag = _STR
        return node

    def fetch_flow_collection_start(self, token_class: Any) -> None:
        # The scanner's work per token grows with the bracket depth: refuse depth early.
        if self.flow_level >= MAX_DEPTH:
            message = f"brackets are nested deeper than {MAX_DEPTH} levels"
            raise ScannerError(None, None, message, self.get_mark())
        super().fetch_flow_collection_start(token_class)


def _compose(text: str, file: str) -> Node | None:
    try:
        return yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as error:
        raise ManifestError([_syntax_problem(error, file)]) from error
    except ReaderError as error:
        where = _offset_location(text, error.position, file)
        message = f"holds the character U+{error.character:04X}, which YAML does not allow"
        raise _refuse(where, message) from error
    except RecursionError as error:
        raise _refuse(Location(file, 1, 1), "is nested too deeply to read") from error
    except Exception as error:  # parse promises ManifestError and nothing else
        message = f"could not be read as YAML ({type(error).__name__}: {error})"
        raise _refuse(Location(file, 1, 1), message) from error


def _syntax_problem(error: yaml.MarkedYAMLError, file: str) -> Problem:
    mark = error.problem_mark or error.context_mark
    where = _location(file, mark) if mark else Location(file, 1, 1)
    if error.context == "expected a single document in the stream":
        message = "a second YAML document starts here; a manifest is exactly one document"
        return Problem(where, "", message)
    if error.context and error.context.startswith("found duplicate anchor") and error.context_mark:
        # PyYAML words this one backwards ("second occurrence", in the context of the first).
        anchor = error.context.split(";")[0].removeprefix("found ")
        return Problem(where, "", f"{anchor} (first at line {error.context_mark.line + 1})")
    message = error.problem or error.context or "is not valid YAML"
    if error.problem and error.context:
        context = error.context
        if error.context_mark and mark and error.context_mark.line != mark.line:
            context += f" that starts at line {error.context_mark.line + 1}"
        message = f"{error.problem} ({context})"
    for token, words in _TOKEN_WORDS.items():
        message = message.replace(token, words)
    if "'\\t'" in message:
        message += "; indent with spaces, not tabs"
    return Problem(where, "", message)


def _offset_location(text: str, offset: int, file: str) -> Location:
    line_start = text.rfind("\n", 0, offset) + 1
    return Location(file, text.count("\n", 0, offset) + 1, offset - line_start + 1)


def _plain_tag(text: str) -> str:
    """The tag an untagged plain scalar resolves to."""
    if text in _NULLS:
        return _NULL
    if text in _BOOLS:
        return _BOOL
    if _INT_RE.fullmatch(text):
        return _INT
    # Bare digits that are no int (012, -007) read as octal to some and decimal to others:
    # they stay text. With a point or an exponent (012.5, 012e3) they are plain decimals.
    if _FLOAT_RE.fullmatch(text) and not text.lstrip("+-").isdigit():
        return _FLOAT
    return _STR


def _scalar_value(tag: str, text: str) -> Any:
    """The value of a scalar; ValueError says why its text does not fit its tag."""
    if tag == _PLAIN:
        tag = _plain_tag(text)
    if tag == _STR:
        return _text(text)
    if tag == _NULL and text in _NULLS:
        return None
    if tag == _BOOL and text in _BOOLS:
        return _BOOLS[text]
    too_large = f"{_quote(text)} is too large a number; quote it if it is meant as text"
    if tag == _INT and _INT_RE.fullmatch(text):
        if len(text) > _MAX_DIGITS:
            raise ValueError(too_large)
        return int(text)
    if tag == _FLOAT and _FLOAT_RE.fullmatch(text):
        number = float(text)
        if not math.isfinite(number):
            raise ValueError(too_large)
        return number
    expected = {_NULL: "null", _BOOL: "true or false", _INT: "a decimal integer"}
    kind = expected.get(tag, "a decimal number")
    raise ValueError(f"{_quote(text)} is not a valid {_show_tag(tag)} (expected {kind})")


def _text(text: str) -> str:
    """A string as written, with escaped UTF-16 surrogate pairs (JSON's "\\ud83d\\ude00") joined;
    ValueError for a lone surrogate, which is no character and cannot be sent or printed."""
    if not _SURROGATE.search(text):
        return text
    try:
        return text.encode("utf-16", "surrogatepass").decode("utf-16")
    except UnicodeDecodeError:
        lone = _SURROGATE.search(_SURROGATE_PAIR.sub("", text))
        code = ord(lone.group()) if lone else 0
        message = f"holds the escape \\u{code:04x}, half of a UTF-16 pair and no character"
        raise ValueError(f"{message}; write the character itself") from None


def _quote(text: str) -> str:
    shown = text if len(text) <= 40 else text[:39] + "…"
    return f"'{shown}'"


def _show_tag(tag: str) -> str:
    return "!!" + tag[len(_YAML) :] if tag.startswith(_YAML) else tag


def _tag_problem(node: Node) -> str | None:
    """Why node's tag is refused, or None when the tag is fine for its kind of node."""
    allowed = {ScalarNode: _SCALAR_TAGS, SequenceNode: {_SEQ}, MappingNode: {_MAP}}
    if node.tag in allowed[type(node)]:
        return None
    if node.tag == _MERGE:
        return _MERGE_HINT
    if node.tag in _SCALAR_TAGS | {_SEQ, _MAP}:
        kind = {ScalarNode: "a single value", SequenceNode: "a list", MappingNode: "a mapping"}
        return f"the tag {_show_tag(node.tag)} cannot mark {kind[type(node)]}"
    return (
        f"the tag {_show_tag(node.tag)} is not allowed; remove it "
        "(a manifest holds only text, numbers, true/false, null, lists and mappings)"
    )


def _key_text(node: Node) -> str:
    """The text of a mapping key; ValueError says why the node cannot be one."""
    if not isinstance(node, ScalarNode):
        raise ValueError("a key must be a name, not a list or a mapping")
    if node.tag == _PLAIN and node.value == "<<":
        raise ValueError(_MERGE_HINT)
    problem = _tag_problem(node)
    if problem:
        raise ValueError(problem)
    key = _scalar_value(node.tag, node.value)
    if isinstance(key, str):
        return key
    if not node.value:
        raise ValueError("a key is missing; give the value a name")
    kind = "null" if key is None else "true/false" if isinstance(key, bool) else "a number"
    hint = f'quote it ("{node.value}") if it is meant as a name'
    raise ValueError(f"the key {node.value} is read as {kind}, not text; {hint}")


def _children(node: Node, path: Path_) -> Iterator[tuple[Path_, Node]]:
    if isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            yield (*path, index), item
    elif isinstance(node, MappingNode):
        for key, value in node.value:
            yield path, key
            yield (*path, key.value if isinstance(key, ScalarNode) else "?"), value


def _check_expansion(root: Node, file: str) -> None:
    """Refuse a graph whose alias expansion loops, nests too deep or grows too large.

    Each node's expanded size and height are memoised, so this visits every node once as
    written: an alias bomb is refused before a single copy of it is made.
    """
    measured: dict[int, tuple[int, int]] = {}
    unfinished: set[int] = set()
    too_deep = f"is nested deeper than {MAX_DEPTH} levels (with aliases expanded)"

    def refused(node: Node, path: Path_, message: str) -> ManifestError:
        return ManifestError([_problem(file, node, path, message)])

    def visit(node: Node, path: Path_, depth: int) -> tuple[int, int]:
        known = measured.get(id(node))
        if known is None:
            if id(node) in unfinished:
                raise refused(node, path, "an alias here refers to a value that contains it")
            if depth > MAX_DEPTH:
                raise refused(node, path, too_deep)
            unfinished.add(id(node))
            size, height = 1, 0
            for child_path, child in _children(node, path):
                child_size, child_height = visit(child, child_path, depth + 1)
                size, height = size + child_size, max(height, child_height + 1)
                if size > MAX_NODES:
                    message = f"expands through aliases to more than {MAX_NODES:,} values"
                    raise refused(node, path, message)
            unfinished.discard(id(node))
            known = measured[id(node)] = (size, height)
        if depth + known[1] > MAX_DEPTH:
            raise refused(node, path, too_deep)
        return known

    visit(root, (), 0)


class _Converter:
    """Turns a checked node graph into plain data, recording locations and collecting problems."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []
        self.values: dict[Path_, Location] = {}
        self.keys: dict[Path_, Location] = {}

    def refuse(self, node: Node, path: Path_, message: str) -> None:
        self.problems.append(_problem(self.file, node, path, message))

    def value(self, node: Node, path: Path_) -> Any:
        self.values[path] = _location(self.file, node.start_mark)
        problem = _tag_problem(node)
        if problem:
            self.refuse(node, path, problem)
        if isinstance(node, MappingNode):
            return self.mapping(node, path)
        if isinstance(node, SequenceNode):
            return [self.value(item, (*path, i)) for i, item in enumerate(node.value)]
        if problem:
            return node.value
        try:
            return _scalar_value(node.tag, node.value)
        except ValueError as error:
            self.refuse(node, path, str(error))
            return node.value

    def mapping(self, node: MappingNode, path: Path_) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            try:
                key = _key_text(key_node)
            except ValueError as error:
                self.refuse(key_node, path, str(error))
                continue
            where = _location(self.file, key_node.start_mark)
            if key in first_lines:
                message = f"duplicate key {_quote(key)} (first at line {first_lines[key]})"
                self.refuse(key_node, path, message)
                continue
            first_lines[key] = where.line
            at = (*path, key)
            self.keys[at] = where
            result[key] = self.value(value_node, at)
        return result
