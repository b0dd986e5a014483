"""What an endpoint declares about its requests and responses, ready to check.

Schemas are JSON Schema 2020-12. ``$ref`` may name other documents (a manifest's schema files, or
the OpenAPI document a notebook carries): every one of them is in the contract's ``SchemaSet``,
loaded before the gateway starts, so validation never reads a file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import jsonschema
from referencing import Registry
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

Schema = Any  # a JSON Schema: a dict, or True/False
MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING", "__bool__": lambda self: False})()
"""Marks a value that was not given (an example without a body), distinct from JSON null."""

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def json_pointer(*parts: object) -> str:
    """RFC 6901: ``json_pointer("items", 0, "a/b")`` is ``/items/0/a~1b``."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


@dataclass(frozen=True)
class SchemaSet:
    """The documents ``$ref`` may reach (by absolute URI), and the base URI of inline schemas (the
    manifest's ``file:`` URI, or the notebook document's)."""

    base_uri: str
    registry: Registry = field(default_factory=Registry, compare=False)

    def shallow(self, schema: Schema) -> Schema:
        """``schema`` with its top-level ``$ref`` followed to what it names (at most 20 hops), and
        the same for its ``items``: what conversion needs to know of a parameter (its ``type``)."""
        found, resolver = self._follow(schema, None)
        if isinstance(found, dict) and isinstance(found.get("items"), dict) and "$ref" in found["items"]:
            found = {**found, "items": self._follow(found["items"], resolver)[0]}
        return found

    def _follow(self, schema: Schema, resolver: Any) -> tuple[Schema, Any]:
        if not isinstance(schema, dict) or not isinstance(schema.get("$ref"), str):
            return schema, resolver
        if resolver is None:
            root = schema if "$id" in schema else {**schema, "$id": self.base_uri}
            resolver = self.registry.with_resource(self.base_uri, DRAFT202012.create_resource(root)).resolver(
                self.base_uri
            )
        current: Schema = schema
        for _ in range(20):
            ref = current.get("$ref") if isinstance(current, dict) else None
            if not isinstance(ref, str):
                break
            try:
                resolved = resolver.lookup(ref)
            except Unresolvable:
                break
            current, resolver = resolved.contents, resolved.resolver
        return current, resolver

    def validator(self, schema: Schema) -> jsonschema.Draft202012Validator:
        """A validator for ``schema``, with ``format`` asserted (``date``, ``email``, ``uuid``, ...)."""
        if isinstance(schema, dict) and "$id" not in schema:
            schema = {**schema, "$id": self.base_uri}  # relative $ref resolve against the manifest
        return jsonschema.Draft202012Validator(
            schema, registry=self.registry, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
        )


@dataclass(frozen=True)
class Parameter:
    """A path, query or header parameter: ``location`` is ``path``, ``query`` or ``header``. An
    array arrives as repeated values (``?tag=a&tag=b``), or as one value split at ``separator``."""

    name: str
    location: str
    schema: Schema = True
    required: bool = False
    description: str | None = None
    example: Any = MISSING
    deprecated: bool = False
    separator: str | None = None  # an array given as one value split at this (headers: ","); None: repeated


@dataclass(frozen=True)
class ResponseContract:
    """What a response with status ``status`` (``"201"``, ``"2XX"`` or ``"default"``) carries."""

    status: str
    description: str | None = None
    content_type: str | None = None
    schema: Schema | None = None
    headers: Mapping[str, Schema] = field(default_factory=lambda: _EMPTY)

    def matches(self, status: int) -> bool:
        """Whether this entry covers ``status``; ``default`` covers every status."""
        if self.status == "default":
            return True
        if self.status.endswith("XX"):
            return str(status)[0] == self.status[0]
        return str(status) == self.status


@dataclass(frozen=True)
class Example:
    """A request and the response it must get: ``status`` None means any 2xx; ``body`` MISSING
    means not compared. ``where`` locates it for messages: (file, line, column)."""

    name: str
    path: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    query: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    headers: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    body: Any = MISSING
    content_type: str | None = None
    status: int | None = None
    response_headers: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    response_body: Any = MISSING
    where: tuple[str, int, int] = ("", 1, 1)


_MEDIA_TYPE = re.compile(r"^[^/;\s]+/[^/;\s]+$")


@dataclass(frozen=True)
class Contract:
    """One endpoint's declared interface.

    ``content_types`` are the body media types accepted (empty: any); ``body`` None means the body
    is not checked. ``responses`` are keyed by status (``"201"``, ``"2XX"``, ``"default"``)."""

    schemas: SchemaSet
    parameters: tuple[Parameter, ...] = ()
    body: Schema | None = None
    body_required: bool = True
    content_types: tuple[str, ...] = ()
    responses: Mapping[str, ResponseContract] = field(default_factory=lambda: _EMPTY)
    examples: tuple[Example, ...] = ()

    def parameters_in(self, location: str) -> tuple[Parameter, ...]:
        """The parameters of one location (``path``, ``query``, ``header``)."""
        return tuple(p for p in self.parameters if p.location == location)

    def response_for(self, status: int) -> ResponseContract | None:
        """The entry covering ``status``: the exact code, then its range (``2XX``), then ``default``."""
        exact = self.responses.get(str(status))
        if exact is not None:
            return exact
        ranged = self.responses.get(f"{str(status)[0]}XX")
        return ranged if ranged is not None else self.responses.get("default")

    @property
    def checks_requests(self) -> bool:
        """Whether requests have anything to check (parameters, a body or media types)."""
        return bool(self.parameters or self.body is not None or self.content_types)
