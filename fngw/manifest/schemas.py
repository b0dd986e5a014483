"""The JSON Schemas a manifest declares for its endpoints: checked against the 2020-12 metaschema,
with every ``$ref`` followed to the files it names (JSON or YAML, relative to the manifest), every
problem located in the file where it is. Reads files; starts no process."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urldefrag, urljoin, urlparse

import jsonschema
from referencing import Registry, Resource
from referencing.exceptions import PointerToNowhere, Unresolvable
from referencing.jsonschema import DRAFT202012

from fngw.contracts import SchemaSet

from .problems import Problem
from .yamlsource import JsonPath, SourceMap, json_path, load_yaml

Report = Callable[[Problem], None]

_METASCHEMA = jsonschema.Draft202012Validator(jsonschema.Draft202012Validator.META_SCHEMA)


class _Document:
    """A document schemas live in: the manifest, or a schema file. ``root`` is the JSON path of the
    schema's document inside the file (a manifest's schemas sit deep in it)."""

    def __init__(self, display: str, source: SourceMap):
        self.display = display
        self.source = source

    def locate(self, path: JsonPath, message: str, rule: str) -> Problem:
        loc = self.source.value(path)
        return Problem(self.display, loc.line, loc.col, json_path(path), message, rule)


class ManifestSchemas:
    """Every schema of one manifest, and the files they reach. ``schema_set`` is what the contracts
    validate with (complete once every schema has been ``check``ed)."""

    def __init__(self, manifest: Path, display: str, source: SourceMap, report: Report):
        self.base_uri = manifest.as_uri()
        self.folder = manifest.parent
        self.manifest = _Document(display, source)
        self.report = report
        self.registry: Registry = Registry()
        self._files: dict[str, _Document | None] = {}  # by URI; None: unreadable (reported once)

    @property
    def schema_set(self) -> SchemaSet:
        """The schemas' base URI (the manifest's) and the files ``$ref`` reaches."""
        return SchemaSet(self.base_uri, self.registry)

    def check(self, schema: Any, where: JsonPath) -> bool:
        """Check the manifest's schema at ``where``: valid against the metaschema, and every
        ``$ref`` resolves. Problems go to ``report``; returns whether there were none."""
        problems = self._metaschema(schema, self.manifest, where)
        if not problems:
            problems = self._references(schema, self.base_uri, self.manifest, where, schema)
        for problem in problems:
            self.report(problem)
        return not problems

    def _metaschema(self, schema: Any, document: _Document, where: JsonPath) -> list[Problem]:
        found: dict[tuple[JsonPath, str], Problem] = {}  # the metaschema can say one thing several times
        for error in _METASCHEMA.iter_errors(schema):
            at = (*where, *error.absolute_path)
            message = f"not a valid JSON Schema: {_metaschema_message(error)}"
            found.setdefault((at, message), document.locate(at, message, "schema-invalid"))
        return list(found.values())

    def _references(self, schema: Any, base: str, document: _Document, where: JsonPath, root: Any) -> list[Problem]:
        """Follow every $ref under ``schema`` (whose document, ``root``, is at ``base``)."""
        found: list[Problem] = []
        for path, ref, scope in _refs(schema, base):
            target = urljoin(scope, ref)
            uri, _ = urldefrag(target)
            at = (*where, *path, "$ref")
            if uri and uri != urldefrag(base)[0]:
                problem = self._load(uri)
                if problem is not None:
                    found.append(document.locate(at, problem, "schema-ref"))
                    continue
            registry = self.registry  # with every file loaded so far, and the inline schema's own document
            if root is not None:
                registry = registry.with_resource(base, DRAFT202012.create_resource(root))
            try:
                resolved = registry.resolver(scope).lookup(ref)
            except Unresolvable as exc:
                found.append(document.locate(at, f"$ref {ref!r} does not resolve: {_unresolvable(exc)}", "schema-ref"))
                continue
            if _endless(resolved.contents, resolved.resolver):
                message = f"$ref {ref!r} starts a chain of $refs that comes back to itself: nothing validates"
                found.append(document.locate(at, message, "schema-ref-cycle"))
        return found

    def _load(self, uri: str) -> str | None:
        """Load the file at ``uri`` into the registry (once); why it cannot be, or None."""
        if uri in self._files:
            return (
                None
                if self._files[uri] is not None
                else f"{_display(uri, self.folder)} cannot be used (see its own problems)"
            )
        parsed = urlparse(uri)
        if parsed.scheme != "file":
            self._files[uri] = None
            return f"$ref {uri!r}: only files (relative to the manifest) can be referenced; the gateway fetches nothing"
        path = Path(unquote(parsed.path))
        display = _display(uri, self.folder)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self._files[uri] = None
            return f"$ref to {display}: cannot read it ({getattr(exc, 'strerror', None) or exc})"
        loaded = load_yaml(text, display)  # JSON is YAML: one parser, with locations
        for problem in loaded.problems:
            self.report(problem)
        if loaded.problems:
            self._files[uri] = None
            return f"$ref to {display}: the file does not parse (see its own problems)"
        document = _Document(display, loaded.source)
        self._files[uri] = document
        self.registry = self.registry.with_resource(uri, Resource.from_contents(loaded.data, DRAFT202012))
        problems = self._metaschema(loaded.data, document, ())
        if not problems:
            problems = self._references(loaded.data, uri, document, (), None)
        for problem in problems:
            self.report(problem)
        return f"$ref to {display}: the schema there has problems (listed at it)" if problems else None


def _refs(schema: Any, base: str, path: JsonPath = ()) -> list[tuple[JsonPath, str, str]]:
    """(JSON path, $ref, the base URI it resolves against) of every $ref under ``schema``."""
    found: list[tuple[JsonPath, str, str]] = []
    if isinstance(schema, dict):
        if isinstance(schema.get("$id"), str):
            base = urljoin(base, schema["$id"])
        if isinstance(schema.get("$ref"), str):
            found.append((path, schema["$ref"], base))
        for key, value in schema.items():
            if key not in ("const", "enum", "examples", "default"):  # data, not schemas
                found.extend(_refs(value, base, (*path, key)))
    elif isinstance(schema, list):
        for index, item in enumerate(schema):
            found.extend(_refs(item, base, (*path, index)))
    return found


def _endless(contents: Any, resolver: Any) -> bool:
    """Whether following top-level ``$ref``s from ``contents`` comes back to where it has been
    (``{"$ref": "#"}``, or two files referring to each other): validation would never end. A
    ``$ref`` below a keyword that takes part of the instance (``properties``, ``items``) is ordinary
    recursion, which ends with the instance."""
    seen = {id(contents)}
    for _ in range(100):
        ref = contents.get("$ref") if isinstance(contents, dict) else None
        if not isinstance(ref, str):
            return False
        try:
            resolved = resolver.lookup(ref)
        except Unresolvable:
            return False  # reported where that $ref is checked
        contents, resolver = resolved.contents, resolved.resolver
        if id(contents) in seen:
            return True
        seen.add(id(contents))
    return True


def _unresolvable(exc: Unresolvable) -> str:
    if isinstance(exc, PointerToNowhere):
        return f"nothing is at {exc.ref!r} in that document"
    return str(exc).split("\n", 1)[0]


_TYPES = ("array", "boolean", "integer", "null", "number", "object", "string")


def _metaschema_message(error: jsonschema.ValidationError) -> str:
    if error.absolute_path and error.absolute_path[-1] == "type":
        return f"{error.instance!r} is not a JSON Schema type ({', '.join(_TYPES)})"
    if not error.absolute_path and error.validator == "type":  # the whole document
        return f"a schema is an object or a boolean, not a {type(error.instance).__name__}"
    return error.message if len(error.message) <= 200 else error.message[:199] + "…"


def _display(uri: str, folder: Path) -> str:
    return os.path.relpath(unquote(urlparse(uri).path), folder)
