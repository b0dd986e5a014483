"""An endpoint's ``request``, ``responses`` and ``examples`` in the manifest, as a checked
``fngw.contracts.Contract``: schemas valid and resolvable (fngw.manifest.schemas), path parameters
that the annotation has, and examples that match their schemas."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

from fngw.contracts import MISSING, Contract, Example, Parameter, RequestRejected, RequestValidator, ResponseContract

from .schemas import ManifestSchemas
from .yamlsource import JsonPath, SourceMap

Error = Callable[[JsonPath, str, str], None]  # (where, message, rule)

_LOCATIONS = {"path": "path", "query": "query", "headers": "header"}


def annotation_params(annotation: str) -> tuple[str, ...]:
    """The ``:name`` parameters of ``"POST /orders/:region"``."""
    path = annotation.split(" ", 1)[-1]
    return tuple(segment[1:] for segment in path.split("/") if segment.startswith(":"))


def build_contract(
    raw: dict[str, Any],
    annotation: str,
    where: JsonPath,
    schemas: ManifestSchemas,
    source: SourceMap,
    display: str,
    error: Error,
) -> Contract | None:
    """The contract of the endpoint at ``where`` (its manifest entry ``raw``), or None when it
    declares none. Problems go to ``error`` (and ``schemas.report`` for schema files)."""
    if not any(key in raw for key in ("request", "responses", "examples")):
        return None
    request = raw.get("request") or {}
    ok = True
    parameters = []
    declared_path = set(annotation_params(annotation))
    for key, location in _LOCATIONS.items():
        for name, entry in (request.get(key) or {}).items():
            at = (*where, "request", key, name)
            if location == "path" and name not in declared_path:
                listing = ", ".join(sorted(declared_path)) or "none"
                error(at, f"{annotation} has no path parameter {name!r} (it has: {listing})", "contract-path-parameter")
                ok = False
            parameter = _parameter(name, location, entry)
            ok &= schemas.check(parameter.schema, (*at, "schema") if _is_parameter_object(entry) else at)
            parameters.append(parameter)
    body = request.get("body")
    if body is not None:
        ok &= schemas.check(body, (*where, "request", "body"))
    content_types = request.get("content_type")
    if isinstance(content_types, str):
        content_types = [content_types]
    if content_types is None and body is not None:
        content_types = ["application/json"]
    responses = {}
    for status, entry in (raw.get("responses") or {}).items():
        schema = entry.get("schema")
        if schema is not None:
            ok &= schemas.check(schema, (*where, "responses", status, "schema"))
        for name, header_schema in (entry.get("headers") or {}).items():
            ok &= schemas.check(header_schema, (*where, "responses", status, "headers", name))
        responses[status] = ResponseContract(
            status=status,
            description=entry.get("description"),
            content_type=(entry.get("content_type") or ("application/json" if schema is not None else None)),
            schema=schema,
            headers=MappingProxyType(dict(entry.get("headers") or {})),
        )
    contract = Contract(
        schemas=schemas.schema_set,
        parameters=tuple(parameters),
        body=body,
        body_required=bool(request.get("body_required", True)),
        content_types=tuple(t.lower() for t in content_types or ()),
        responses=MappingProxyType(responses),
    )
    examples = tuple(
        _example(item, (*where, "examples", i), source, display) for i, item in enumerate(raw.get("examples") or ())
    )
    contract = dataclasses.replace(contract, examples=examples)
    if ok:  # examples are checked with schemas that resolve
        validator = RequestValidator(contract)  # compiled once for all the examples
        for i, example in enumerate(examples):
            _check_example(validator, example, (*where, "examples", i), declared_path, error)
    return contract


def _is_parameter_object(entry: Any) -> bool:
    return isinstance(entry, dict) and "schema" in entry


def _parameter(name: str, location: str, entry: Any) -> Parameter:
    if not _is_parameter_object(entry):
        return Parameter(name, location, entry, required=location == "path", separator=_separator(location))
    return Parameter(
        name,
        location,
        entry["schema"],
        required=location == "path" or bool(entry.get("required", False)),
        description=entry.get("description"),
        example=entry.get("example", MISSING),
        deprecated=bool(entry.get("deprecated", False)),
        separator=_separator(location),
    )


def _separator(location: str) -> str | None:
    """Headers list an array's values at commas; query arrays repeat the name (``?tag=a&tag=b``)."""
    return "," if location == "header" else None


def _example(raw: dict[str, Any], where: JsonPath, source: SourceMap, display: str) -> Example:
    request = raw.get("request") or {}
    response = raw.get("response") or {}
    loc = source.value(where)
    return Example(
        name=raw["name"],
        path=MappingProxyType(dict(request.get("path") or {})),
        query=MappingProxyType(dict(request.get("query") or {})),
        headers=MappingProxyType(dict(request.get("headers") or {})),
        body=request.get("body", MISSING),
        content_type=request.get("content_type"),
        status=response.get("status"),
        response_headers=MappingProxyType(dict(response.get("headers") or {})),
        response_body=response.get("body", MISSING),
        where=(display, loc.line, loc.col),
    )


def as_text(value: Any) -> str:
    """A YAML scalar as it would be written in a URL or header (``true``, ``2``, ``eu``)."""
    return value if isinstance(value, str) else json.dumps(value)


def _pointer_path(pointer: str) -> JsonPath:
    """A JSON Pointer as a JSON path (digits as list indexes; the source map falls back to the
    nearest located ancestor when that guess is wrong)."""
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]
    return tuple(int(p) if p.isdigit() else p for p in parts)


def _check_example(
    validator: RequestValidator, example: Example, where: JsonPath, declared: set[str], error: Error
) -> None:
    contract = validator.contract
    missing = sorted(declared - set(example.path))
    if missing:
        error(
            (*where, "request"), f"example {example.name!r} gives no value for {', '.join(missing)}", "example-invalid"
        )
        return
    query = {k: [as_text(x) for x in v] if isinstance(v, list) else [as_text(v)] for k, v in example.query.items()}
    body_given = example.body is not MISSING
    try:
        validator.validate(
            {k: as_text(v) for k, v in example.path.items()},
            query,
            {k: as_text(v) for k, v in example.headers.items()},
            example.body if body_given else None,
            body_given,
        )
    except RequestRejected as exc:
        for item in exc.errors:
            part, pointer = item["in"], item["pointer"]
            message = f"example {example.name!r}: {part}{pointer}: {item['message']}"
            at = (*where, "request", part, *_pointer_path(pointer)) if part != "body" or body_given else where
            error(at, message, "example-invalid")
    if example.status is not None and contract.responses and contract.response_for(example.status) is None:
        declared_statuses = ", ".join(contract.responses)
        message = f"example {example.name!r} expects status {example.status}, not among responses ({declared_statuses})"
        error((*where, "response", "status"), message, "example-invalid")
