"""Checking a request against its endpoint's contract, before any kernel is used.

``check_media_type`` refuses a body of a media type the endpoint does not accept (415).
``RequestValidator.validate`` converts path, query and header strings by their schemas (fngw.contracts
.coercion), fills declared defaults, validates every parameter and the body, and returns the
values a cell reads as ``REQUEST["params"]``; it raises ``RequestRejected`` listing every error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from itertools import islice
from typing import Any

import gevent
import jsonschema

from .coercion import coerce_values, types_of
from .errors import RequestRejected, SchemaUnusable, UnsupportedMediaType
from .model import Contract, Parameter, Schema, json_pointer

MAX_MESSAGE = 300  # characters of one error message: a schema error can quote a whole document
MAX_ERRORS = 100  # errors listed in a 422: a large invalid body could otherwise make a larger answer
LARGE_BODY = 256 * 1024  # bytes: bodies larger than this are validated in a thread

# JSON Schema's name for each location, and the key of REQUEST["params"] and of the 422 errors
LOCATIONS = (("path", "path"), ("query", "query"), ("header", "headers"))


def media_type(content_type: str | None) -> str | None:
    """``application/json; charset=utf-8`` -> ``application/json`` (lower case); None for none."""
    if not content_type:
        return None
    return content_type.split(";", 1)[0].strip().lower() or None


def check_media_type(contract: Contract, content_type: str | None, body: bytes) -> None:
    """Raise UnsupportedMediaType when a non-empty body's media type is not one of the contract's
    ``content_types`` (no list: every type is accepted)."""
    if not contract.content_types or not body:
        return
    given = media_type(content_type)
    if given not in contract.content_types:
        raise UnsupportedMediaType(given, contract.content_types)


class RequestValidator:
    """Validates requests of one endpoint: compiled once, when the gateway builds its routes."""

    def __init__(self, contract: Contract):
        self.contract = contract
        schemas = contract.schemas
        self._parameters = {
            (p.location, p.name): schemas.validator(p.schema) for p in contract.parameters if p.schema is not True
        }
        self._body = schemas.validator(contract.body) if contract.body is not None else None
        # What conversion reads of each schema: its type, through any $ref (OpenAPI parameters are
        # {"$ref": ...} into their document; manifests may refer to files).
        self._shapes = {(p.location, p.name): schemas.shallow(p.schema) for p in contract.parameters}
        body = schemas.shallow(contract.body)
        properties = body.get("properties") if isinstance(body, dict) else None
        self._fields: Mapping[str, Schema] = (
            {name: schemas.shallow(field) for name, field in properties.items()} if isinstance(properties, dict) else {}
        )

    def validate(
        self,
        path: Mapping[str, str],
        query: Mapping[str, list[str]],
        headers: Mapping[str, str | list[str]],
        body: Any,
        body_given: bool,
        form: bool = False,
        size: int = 0,
    ) -> dict[str, Any]:
        """``{"path", "query", "headers", "body"}`` with converted values and declared defaults,
        keyed as the contract names them (header names as declared). ``body`` is the parsed body
        (``REQUEST["body"]``); ``body_given`` whether the request carried one; ``form`` whether it
        was a form (each field a list of strings, converted by its property's schema); ``size`` its
        bytes (a large body is validated off the event loop). The body is in the result only when
        the contract declares one. Raises RequestRejected with every error (the first
        ``MAX_ERRORS``, then a note of how many more), SchemaUnusable for a schema that refers to
        itself without end."""
        errors: list[dict[str, str]] = []
        by_lower = {name.lower(): value for name, value in headers.items()}
        given: dict[str, Mapping[str, Any]] = {
            "path": {k: [v] for k, v in path.items()},
            "query": query,
            "header": {k: v if isinstance(v, list) else [v] for k, v in by_lower.items()},
        }
        params: dict[str, Any] = {}
        try:
            for location, key in LOCATIONS:
                params[key] = self._parameters_of(location, key, given[location], errors)
            if self._body is not None:
                params["body"] = self._body_of(body, body_given, form, size, errors)
        except RecursionError:
            raise SchemaUnusable("the endpoint's schema refers to itself without end; see fngw validate") from None
        if errors:
            raise RequestRejected(errors[:MAX_ERRORS] + _more(errors))
        return params

    def _parameters_of(
        self, location: str, key: str, given: Mapping[str, Any], errors: list[dict[str, str]]
    ) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for parameter in self.contract.parameters_in(location):
            raw = given.get(parameter.name.lower() if location == "header" else parameter.name)
            shape = self._shapes[(location, parameter.name)]
            if raw is None:
                if isinstance(shape, dict) and "default" in shape:
                    values[parameter.name] = shape["default"]
                elif parameter.required:
                    errors.append(_error(key, json_pointer(parameter.name), f"{_what(parameter)} is required"))
                continue
            value = coerce_values(list(raw), shape, separator=parameter.separator)
            values[parameter.name] = value
            validator = self._parameters.get((location, parameter.name))
            if validator is not None:
                for error in islice(validator.iter_errors(value), MAX_ERRORS + 1):
                    errors += _schema_errors(key, json_pointer(parameter.name), error)
        return values

    def _body_of(self, body: Any, body_given: bool, form: bool, size: int, errors: list[dict[str, str]]) -> Any:
        assert self._body is not None
        if not body_given:
            if self.contract.body_required:
                errors.append(_error("body", "", "a request body is required"))
            return None
        if form and isinstance(body, dict):
            body = self._form_fields(body)
        validator = self._body

        def first_errors() -> list[jsonschema.ValidationError]:
            return list(islice(validator.iter_errors(body), MAX_ERRORS + 1))

        # Megabytes of JSON take seconds to validate: in a thread, other requests go on meanwhile.
        found = gevent.get_hub().threadpool.apply(first_errors) if size > LARGE_BODY else first_errors()
        for error in found:
            errors += _schema_errors("body", "", error)
        return body

    def _form_fields(self, form: dict[str, list[Any]]) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        for name, values in form.items():
            schema = self._fields.get(name, True)
            if all(isinstance(v, str) for v in values):
                fields[name] = coerce_values(values, schema)
            else:  # uploaded files ({filename, content_type, data}): one, or a list for an array
                fields[name] = values if "array" in types_of(schema) or len(values) > 1 else values[0]
        return fields


def _what(parameter: Parameter) -> str:
    return f"{'header' if parameter.location == 'header' else parameter.location + ' parameter'} {parameter.name!r}"


def _error(where: str, pointer: str, message: str) -> dict[str, str]:
    return {"in": where, "pointer": pointer, "message": message}


def _schema_errors(where: str, prefix: str, error: jsonschema.ValidationError) -> list[dict[str, str]]:
    """One jsonschema error as 422 entries: a missing property points at the property itself, an
    object's unexpected properties each at itself."""
    path = list(error.absolute_path)
    message = error.message
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [p for p in error.validator_value if p not in error.instance]
        if len(missing) == 1:
            path.append(missing[0])
            message = f"{missing[0]!r} is required"
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        schema = error.schema if isinstance(error.schema, dict) else {}
        declared = schema.get("properties") or {}
        patterns = list((schema.get("patternProperties") or {}).keys())
        extra = [k for k in error.instance if k not in declared and not any(re.search(p, k) for p in patterns)]
        if extra:
            return [_error(where, prefix + json_pointer(*path, k), f"{k!r} is not expected here") for k in extra]
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 1] + "…"
    return [_error(where, prefix + json_pointer(*path), message)]


def _more(errors: list[dict[str, str]]) -> list[dict[str, str]]:
    if len(errors) <= MAX_ERRORS:
        return []
    return [_error(errors[MAX_ERRORS]["in"], "", f"and more errors: only the first {MAX_ERRORS} are listed")]
