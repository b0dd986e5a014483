"""Strict YAML loading that remembers where every key and value came from.

PyYAML resolves plain scalars by YAML 1.1 rules (``on`` is true, ``010`` is 8, ``1:30`` is 90,
``2024-01-01`` is a date) and silently keeps the last of two duplicate keys. A manifest is
configuration people edit by hand, so this loader composes the node tree with PyYAML and then builds
the values itself with YAML 1.2 core-schema rules, reporting every surprise as a located problem:
duplicate keys, merge keys, a second document, unknown tags, and the YAML 1.1 booleans
(``yes``/``no``/``on``/``off``/``y``/``n``) that mean something else to a human than to a parser.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from .problems import Problem

JsonPath = tuple[str | int, ...]

_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL_TRUE = re.compile(r"^(?:true|True|TRUE)$")
_BOOL_FALSE = re.compile(r"^(?:false|False|FALSE)$")
_YAML11_BOOL = re.compile(r"^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF)$")
_INT10 = re.compile(r"^[-+]?[0-9]+$")
_INT8 = re.compile(r"^0o[0-7]+$")
_INT16 = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_INF = re.compile(r"^[-+]?(?:\.inf|\.Inf|\.INF)$")
_NAN = re.compile(r"^(?:\.nan|\.NaN|\.NAN)$")

_STANDARD_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:seq",
}
_MAX_DEPTH = 64


@dataclass(frozen=True)
class Location:
    """1-based line and column of a key or value in the source file."""

    line: int
    col: int


@dataclass
class SourceMap:
    """Where each JSON path of a loaded document stands in its file.

    ``values`` locates the value at a path; ``keys`` locates the mapping key that introduced it
    (absent for sequence items and the root).
    """

    values: dict[JsonPath, Location] = field(default_factory=dict)
    keys: dict[JsonPath, Location] = field(default_factory=dict)

    def value(self, path: JsonPath) -> Location:
        """Location of the value at ``path``, or of its nearest located ancestor."""
        for i in range(len(path), -1, -1):
            found = self.values.get(tuple(path[:i]))
            if found:
                return found
        return Location(1, 1)

    def key(self, path: JsonPath) -> Location:
        """Location of the key that introduced ``path``, falling back to the value's location."""
        return self.keys.get(tuple(path)) or self.value(path)


@dataclass
class LoadedYaml:
    data: Any
    source: SourceMap
    problems: list[Problem]


def _loc(mark: yaml.Mark) -> Location:
    return Location(mark.line + 1, mark.column + 1)


def load_yaml(text: str, file: str) -> LoadedYaml:
    """Parse one YAML document strictly; problems are returned, never raised."""
    source = SourceMap()
    problems: list[Problem] = []
    try:
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (checked up front)
        before = text[: exc.position]
        line, col = before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1
        message = f"character U+{exc.character:04X} is not allowed in YAML; remove it"
        problems.append(Problem(file, line, col, "$", message, "yaml-syntax"))
        return LoadedYaml(None, source, problems)
    try:
        try:
            node = loader.get_single_node()
        except yaml.composer.ComposerError as exc:
            mark = exc.problem_mark or exc.context_mark
            rule = "yaml-multiple-documents" if "single document" in str(exc.context) else "yaml-syntax"
            message = (
                "a manifest is one YAML document; remove the second '---' document"
                if rule == "yaml-multiple-documents"
                else _yaml_message(exc)
            )
            problems.append(_problem(file, mark, (), message, rule))
            return LoadedYaml(None, source, problems)
        except yaml.MarkedYAMLError as exc:
            problems.append(_problem(file, exc.problem_mark, (), _yaml_message(exc), "yaml-syntax"))
            return LoadedYaml(None, source, problems)
        except yaml.YAMLError as exc:  # reader errors: bad encoding, control characters
            problems.append(Problem(file, 1, 1, "$", str(exc).splitlines()[0], "yaml-syntax"))
            return LoadedYaml(None, source, problems)
        if node is None:
            problems.append(Problem(file, 1, 1, "$", "the file holds no YAML document", "yaml-empty"))
            return LoadedYaml(None, source, problems)
        builder = _Builder(file, loader, source, problems)
        data = builder.build(node, (), 0)
        return LoadedYaml(data, source, problems)
    finally:
        loader.dispose()


def _yaml_message(exc: yaml.MarkedYAMLError) -> str:
    parts = [p for p in (exc.context, exc.problem) if p]
    return "; ".join(parts) or "invalid YAML"


def _problem(file: str, mark: yaml.Mark | None, path: JsonPath, message: str, rule: str) -> Problem:
    loc = _loc(mark) if mark is not None else Location(1, 1)
    return Problem(file, loc.line, loc.col, json_path(path), message, rule)


def json_path(path: JsonPath) -> str:
    """``("notebooks", "a", "endpoints", "GET /x")`` -> ``$.notebooks.a.endpoints["GET /x"]``."""
    out = ["$"]
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", part):
            out.append(f".{part}")
        else:
            escaped = part.replace("\\", "\\\\").replace('"', '\\"')
            out.append(f'["{escaped}"]')
    return "".join(out)


class _Builder:
    def __init__(self, file: str, loader: yaml.SafeLoader, source: SourceMap, problems: list[Problem]):
        self.file = file
        self.loader = loader
        self.source = source
        self.problems = problems

    def error(self, node: yaml.Node, path: JsonPath, message: str, rule: str) -> None:
        self.problems.append(_problem(self.file, node.start_mark, path, message, rule))

    def build(self, node: yaml.Node, path: JsonPath, depth: int) -> Any:
        self.source.values.setdefault(path, _loc(node.start_mark))
        if depth > _MAX_DEPTH:
            self.error(node, path, f"nesting deeper than {_MAX_DEPTH} levels", "yaml-too-deep")
            return None
        if isinstance(node, yaml.ScalarNode):
            return self.build_scalar(node, path)
        if node.tag not in _STANDARD_TAGS:
            self.error(node, path, f"unsupported YAML tag {node.tag!r}", "yaml-tag")
            return None
        if isinstance(node, yaml.MappingNode):
            return self.build_mapping(node, path, depth)
        return [self.build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]

    def build_mapping(self, node: yaml.MappingNode, path: JsonPath, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_seen: dict[str, Location] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self.error(key_node, path, "mapping keys must be plain strings", "yaml-complex-key")
                continue
            key = key_node.value
            if key_node.tag == "tag:yaml.org,2002:merge" or (key == "<<" and key_node.style is None):
                self.error(key_node, path, "merge keys ('<<') are not supported; write the keys out", "yaml-merge-key")
                continue
            key_loc = _loc(key_node.start_mark)
            if key in first_seen:
                first = first_seen[key]
                self.error(
                    key_node,
                    (*path, key),
                    f"duplicate key {key!r} (first defined at line {first.line}, column {first.col})",
                    "yaml-duplicate-key",
                )
                continue
            first_seen[key] = key_loc
            child = (*path, key)
            self.source.keys[child] = key_loc
            result[key] = self.build(value_node, child, depth + 1)
        return result

    def build_scalar(self, node: yaml.ScalarNode, path: JsonPath) -> Any:
        value = node.value
        if node.style is not None:  # quoted or block scalars are strings unless explicitly tagged
            if node.tag not in ("tag:yaml.org,2002:str", "!"):
                self.error(node, path, f"unsupported YAML tag {node.tag!r}", "yaml-tag")
                return None
            return value
        implicit_tag = self.loader.resolve(yaml.ScalarNode, value, (True, False))
        if node.tag != implicit_tag:  # an explicit tag: honour the standard ones only
            if node.tag not in _STANDARD_TAGS:
                self.error(node, path, f"unsupported YAML tag {node.tag!r}", "yaml-tag")
                return None
            return self._construct_tagged(node, path)
        return self._resolve_plain(node, path)

    def _construct_tagged(self, node: yaml.ScalarNode, path: JsonPath) -> Any:
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            self.error(node, path, _yaml_message(exc), "yaml-tag")
            return None

    def _resolve_plain(self, node: yaml.ScalarNode, path: JsonPath) -> Any:
        value = node.value
        if _NULL.match(value):
            return None
        if _BOOL_TRUE.match(value):
            return True
        if _BOOL_FALSE.match(value):
            return False
        if _YAML11_BOOL.match(value):
            self.error(
                node,
                path,
                f"{value!r} is a boolean in YAML 1.1 but a string in YAML 1.2; "
                f"write true or false, or quote it as '{value}'",
                "yaml-ambiguous-bool",
            )
            return value
        if _INT10.match(value):
            return int(value, 10)
        if _INT8.match(value):
            return int(value[2:], 8)
        if _INT16.match(value):
            return int(value[2:], 16)
        if _FLOAT.match(value):
            return float(value)
        if _INF.match(value):
            return -math.inf if value.startswith("-") else math.inf
        if _NAN.match(value):
            return math.nan
        return value
