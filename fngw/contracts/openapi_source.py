"""The contract of an operation of an OpenAPI 3.x or Swagger 2.0 document (a notebook's, with
``api: openapi``): parameters, request body, media types and responses.

Schemas stay in the document: each is ``{"$ref": "<document URI>#<JSON Pointer>"}``, so the
document's own ``$ref`` (``#/components/schemas/...``, ``#/definitions/...``) keep working. The
document is first rewritten into JSON Schema 2020-12 where the older dialects differ:
``nullable: true`` (3.0) and ``x-nullable`` (2.0) add ``null`` to ``type``; boolean
``exclusiveMinimum``/``exclusiveMaximum`` become the numeric bounds; Swagger's ``type: file`` is
anything.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from referencing import Registry
from referencing.jsonschema import DRAFT202012

from .model import MISSING, Contract, Parameter, ResponseContract, SchemaSet, json_pointer

_LOCATIONS = {"path": "path", "query": "query", "header": "header"}  # cookie parameters are not checked
_SCHEMA_KEYS = (
    *("type", "format", "items", "enum", "default", "pattern", "multipleOf", "uniqueItems"),
    *("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "minItems", "maxItems"),
)


class ApiDocument:
    """One notebook's document, rewritten to 2020-12 and registered under ``uri``."""

    def __init__(self, document: Mapping[str, Any], uri: str):
        self.uri = uri
        self.swagger2 = "swagger" in document
        self.document = _dialect(copy.deepcopy(dict(document)))
        registry: Registry = Registry().with_resource(uri, DRAFT202012.create_resource(self.document))
        # Inline schemas of the contract need a base of their own: the document's URI is taken.
        self.schemas = SchemaSet(f"{uri}-inline", registry)

    def ref(self, *pointer: str | int) -> dict[str, str]:
        """A schema that is the document's schema at ``pointer``."""
        return {"$ref": f"{self.uri}#{json_pointer(*pointer)}"}

    def resolve(self, value: Any, at: tuple[str | int, ...]) -> tuple[Any, tuple[str | int, ...]]:
        """A Parameter/Request Body/Response Object that may be a ``$ref``, and where it is."""
        seen = 0
        while (
            isinstance(value, dict)
            and isinstance(value.get("$ref"), str)
            and value["$ref"].startswith("#/")
            and seen < 20
        ):
            at = tuple(_unescape(p) for p in value["$ref"][2:].split("/"))
            value = self.document
            for part in at:
                value = value.get(part) if isinstance(value, dict) else None
            seen += 1
        return value, at

    def contract(self, path_key: str, method_key: str) -> Contract:
        """The contract of the operation at ``paths[path_key][method_key]``."""
        item = self.document["paths"][path_key]
        operation = item[method_key]
        parameters, body, content_types, body_required = self._parameters(path_key, method_key, item, operation)
        if not self.swagger2:
            body, content_types, body_required = self._request_body(path_key, method_key, operation)
        return Contract(
            schemas=self.schemas,
            parameters=tuple(parameters),
            body=body,
            body_required=body_required,
            content_types=content_types,
            responses=MappingProxyType(self._responses(path_key, method_key, operation)),
        )

    def _parameters(
        self, path_key: str, method_key: str, item: dict[str, Any], operation: dict[str, Any]
    ) -> tuple[list[Parameter], Any, tuple[str, ...], bool]:
        declared: dict[tuple[str, str], tuple[Any, tuple[str | int, ...]]] = {}
        for owner, at in ((item, ("paths", path_key)), (operation, ("paths", path_key, method_key))):
            for index, raw in enumerate(owner.get("parameters") or ()):
                value, where = self.resolve(raw, (*at, "parameters", index))
                if isinstance(value, dict) and isinstance(value.get("name"), str):
                    declared[(str(value.get("in")), value["name"])] = (value, where)  # the operation's win
        parameters: list[Parameter] = []
        body: Any = None
        form: dict[str, tuple[dict[str, Any], bool]] = {}
        for (location, name), (value, where) in declared.items():
            if location == "body":
                body = self.ref(*where, "schema")
            elif location == "formData":
                form[name] = (_swagger_schema(value), bool(value.get("required")))
            elif location in _LOCATIONS:
                schema = self.ref(*where, "schema") if "schema" in value else _swagger_schema(value)
                parameters.append(
                    Parameter(
                        name,
                        _LOCATIONS[location],
                        schema,
                        required=location == "path" or bool(value.get("required")),
                        description=value.get("description"),
                        example=value.get("example", MISSING),
                        deprecated=bool(value.get("deprecated")),
                        separator=self._separator(location, value),
                    )
                )
        consumes = tuple(operation.get("consumes") or self.document.get("consumes") or ())
        if form:
            body = {
                "type": "object",
                "properties": {name: schema for name, (schema, _) in form.items()},
                "required": [name for name, (_, required) in form.items() if required],
            }
            consumes = consumes or ("application/x-www-form-urlencoded", "multipart/form-data")
        elif body is not None:
            consumes = consumes or ("application/json",)
        return parameters, body, tuple(c.lower() for c in consumes) if body is not None else (), True

    def _separator(self, location: str, parameter: dict[str, Any]) -> str | None:
        """How an array parameter arrives: Swagger 2.0's ``collectionFormat`` (csv by default,
        ``multi`` repeats the name), OpenAPI 3's ``style``/``explode`` (query: form, exploded by
        default, that is repeated; headers and paths: simple, comma-separated)."""
        if self.swagger2:
            kind = parameter.get("collectionFormat", "csv")
            return None if kind == "multi" else {"ssv": " ", "tsv": "\t", "pipes": "|"}.get(kind, ",")
        style = parameter.get("style", "form" if location == "query" else "simple")
        explode = parameter.get("explode", style == "form")
        if style == "spaceDelimited":
            return " "
        if style == "pipeDelimited":
            return "|"
        return None if explode and location == "query" else ","

    def _request_body(
        self, path_key: str, method_key: str, operation: dict[str, Any]
    ) -> tuple[Any, tuple[str, ...], bool]:
        raw, where = self.resolve(operation.get("requestBody"), ("paths", path_key, method_key, "requestBody"))
        if not isinstance(raw, dict) or not isinstance(raw.get("content"), dict) or not raw["content"]:
            return None, (), False
        content = raw["content"]
        media_types = tuple(str(m).lower() for m in content)
        chosen = next((m for m in content if "json" in str(m).lower()), next(iter(content)))
        schema = self.ref(*where, "content", chosen, "schema") if "schema" in (content[chosen] or {}) else None
        return schema, tuple(m for m in media_types if "*" not in m), bool(raw.get("required", False))

    def _responses(self, path_key: str, method_key: str, operation: dict[str, Any]) -> dict[str, ResponseContract]:
        found = {}
        produces = operation.get("produces") or self.document.get("produces") or ()
        for status, raw in (operation.get("responses") or {}).items():
            value, where = self.resolve(raw, ("paths", path_key, method_key, "responses", str(status)))
            if not isinstance(value, dict):
                continue
            key = str(status).upper() if str(status).lower() != "default" else "default"
            content_type, schema = None, None
            if self.swagger2:
                schema = self.ref(*where, "schema") if "schema" in value else None
                content_type = produces[0] if produces and schema is not None else None
            elif isinstance(value.get("content"), dict) and value["content"]:
                media = next(iter(value["content"]))
                content_type = media if "*" not in media else None
                if "schema" in (value["content"][media] or {}):
                    schema = self.ref(*where, "content", media, "schema")
            found[key] = ResponseContract(key, value.get("description"), content_type, schema)
        return found


def _swagger_schema(parameter: dict[str, Any]) -> dict[str, Any]:
    """A Swagger 2.0 non-body parameter's schema: its own schema keywords."""
    schema = {k: parameter[k] for k in _SCHEMA_KEYS if k in parameter}
    if schema.get("type") == "file":
        schema.pop("type")
    return schema


def _dialect(value: Any) -> Any:
    """OpenAPI 3.0 / Swagger 2.0 schema keywords rewritten into 2020-12 (see the module docstring)."""
    if isinstance(value, list):
        return [_dialect(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: _dialect(v) for k, v in value.items()}
    nullable = out.pop("nullable", None) is True or out.pop("x-nullable", None) is True
    if nullable and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    for flag, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(flag), bool) and out.pop(flag) and bound in out:
            out[flag] = out.pop(bound)
    if out.get("type") == "file":
        out.pop("type")
    return out


def _unescape(part: str) -> str:
    return part.replace("~1", "/").replace("~0", "~")
