"""The manifest's JSON Schema problems, in words a manifest's author reads: located at the key or
value they concern, with the allowed keys, the expected shape (``x-expect``) and near misses."""

from __future__ import annotations

import difflib
import json
from typing import Any

import jsonschema

from .problems import Problem
from .yamlsource import JsonPath, SourceMap, json_path


def schema_problems(schema: dict[str, Any], data: Any, source: SourceMap, file: str) -> list[Problem]:
    """Every way ``data`` (loaded from ``file``, located by ``source``) breaks ``schema`` (the
    manifest's), as located problems named by the JSON Schema keyword that failed."""
    validator = jsonschema.Draft202012Validator(schema)
    problems: list[Problem] = []
    for error in validator.iter_errors(data):
        problems.extend(_describe(error, source, file))
    return problems


def _expectation(error: jsonschema.ValidationError) -> str | None:
    """The ``x-expect`` hint of the failing schema (the subschema that failed, so a hint on a
    ``$defs`` entry applies wherever that entry is referenced)."""
    schema = error.schema if isinstance(error.schema, dict) else {}
    return schema.get("x-expect")


def _describe(error: jsonschema.ValidationError, source: SourceMap, file: str) -> list[Problem]:
    path: JsonPath = tuple(error.absolute_path)
    rule = str(error.validator)
    instance = error.instance

    def at_key(p: JsonPath, message: str) -> Problem:
        loc = source.key(p)
        return Problem(file, loc.line, loc.col, json_path(p), message, rule)

    def at_value(p: JsonPath, message: str) -> Problem:
        loc = source.value(p)
        return Problem(file, loc.line, loc.col, json_path(p), message, rule)

    if rule == "additionalProperties" and isinstance(instance, dict):
        known = sorted(error.schema.get("properties", {}))
        out = []
        for key in instance:
            if key in known:
                continue
            hint = difflib.get_close_matches(key, known, n=1)
            message = f"unknown key {key!r}"
            message += f"; did you mean {hint[0]!r}?" if hint else ""
            if known:
                message += f" (allowed: {', '.join(known)})"
            out.append(at_key((*path, key), message))
        return out
    if "propertyNames" in error.absolute_schema_path:
        # jsonschema reports a bad mapping key against the mapping; point at the key itself.
        expect = _expectation(error) or "a valid name"
        return [at_key((*path, str(instance)), f"{instance!r} is not {expect}")]
    if rule == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return [at_key(path, f"missing required key {missing!r}")]
    if rule == "uniqueItems":
        return [at_value(path, "lists the same value more than once")]
    inner = _mapping_branch_errors(error)
    if inner:  # `tracing: {exporter: zipkin}`: say what is wrong inside, not that no branch matched
        return [problem for sub in inner for problem in _describe(sub, source, file)]
    if rule in ("minProperties", "maxProperties") and _expectation(error):
        return [at_value(path, f"expected {_expectation(error)}")]
    expected = _expectation(error)
    if expected:
        return [at_value(path, f"expected {expected}, got {_show(instance)}")]
    if rule == "type":
        wanted = error.schema.get("type")
        wanted = " or ".join(wanted) if isinstance(wanted, list) else wanted
        return [at_value(path, f"expected {_article(wanted)}, got {_show(instance)}")]
    if rule == "const":
        return [at_value(path, f"expected {error.schema['const']!r}, got {_show(instance)}")]
    if rule == "enum":
        allowed = ", ".join(str(v) for v in error.schema["enum"])
        return [at_value(path, f"expected one of {allowed}, got {_show(instance)}")]
    return [at_value(path, error.message)]


def _mapping_branch_errors(error: jsonschema.ValidationError) -> list[jsonschema.ValidationError]:
    """For a mapping that fails a ``oneOf``/``anyOf`` whose only mapping branch is one alternative
    (``true`` or ``{...}``), that branch's own errors; else none."""
    if error.validator not in ("oneOf", "anyOf") or not isinstance(error.instance, dict):
        return []
    branches = error.validator_value if isinstance(error.validator_value, list) else []
    mappings = [i for i, branch in enumerate(branches) if isinstance(branch, dict) and branch.get("type") == "object"]
    if len(mappings) != 1:
        return []
    return [sub for sub in error.context or () if list(sub.relative_schema_path)[:1] == mappings]


def _article(word: str) -> str:
    return ("an " if word[:1] in "aeiou" else "a ") + word


def _show(value: Any) -> str:
    kinds = {bool: "boolean", int: "integer", float: "number", str: "string", list: "list", dict: "mapping"}
    if value is None:
        return "nothing (null)"
    kind = kinds.get(type(value), type(value).__name__)
    if isinstance(value, dict | list):
        return f"a {kind}"
    text = json.dumps(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{kind} {text}"
