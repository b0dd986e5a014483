"""A contract in the API documents: OpenAPI 3.1 operations (JSON Schema 2020-12 as is) and
Swagger 2.0 ones (what its older schema dialect can say).

Schemas are inlined: every ``$ref`` is replaced by what it names, so a document stands alone
(its readers cannot reach the manifest's files). A schema that refers to itself, directly or
not, is cut at the second visit: ``{"description": "recursive: <ref>"}`` (anything) stands there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from referencing.jsonschema import DRAFT202012

from .model import MISSING, Contract, Parameter, Schema, SchemaSet

if TYPE_CHECKING:
    from referencing._core import Resolver  # referencing exports no name for it

_DROPPED = ("$schema", "$id", "$defs", "definitions", "$comment", "$anchor")


def inline(schema: Schema, schemas: SchemaSet) -> Schema:
    """``schema`` with every ``$ref`` replaced by its target (see the module docstring)."""
    if not isinstance(schema, dict):
        return schema
    registry = schemas.registry.with_resource(schemas.base_uri, DRAFT202012.create_resource(schema))
    return _inline(schema, registry.resolver(schemas.base_uri), ())


def _inline(schema: Any, resolver: Resolver[Any], visiting: tuple[int, ...]) -> Any:
    if isinstance(schema, list):
        return [_inline(item, resolver, visiting) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if isinstance(schema.get("$id"), str):
        resolver = resolver.in_subresource(DRAFT202012.create_resource(schema))
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _DROPPED or key == "$ref":
            continue
        data = key in ("const", "enum", "default", "examples", "example")
        out[key] = value if data else _inline(value, resolver, visiting)
    ref = schema.get("$ref")
    if not isinstance(ref, str):
        return out
    resolved = resolver.lookup(ref)
    seen = id(resolved.contents)  # the registry hands out the same object for the same target
    if seen in visiting:
        target: Any = {"description": f"recursive: {ref}"}
    else:
        target = _inline(resolved.contents, resolved.resolver, (*visiting, seen))
    if not out:
        return target
    return {"allOf": [target, out]}  # $ref beside other keywords: both apply


# --- OpenAPI 3.1 ---------------------------------------------------------------------------------


def openapi_parameters(contract: Contract | None, path_params: tuple[str, ...]) -> list[dict[str, Any]]:
    """Parameter Objects: every path parameter (a string unless declared), then declared query and
    header parameters."""
    declared = {(p.location, p.name): p for p in contract.parameters} if contract else {}
    found = []
    for name in path_params:
        parameter = declared.get(("path", name), Parameter(name, "path", {"type": "string"}, required=True))
        found.append(_openapi_parameter(parameter, contract))
    if contract is not None:
        found += [_openapi_parameter(p, contract) for p in contract.parameters if p.location != "path"]
    return found


def _openapi_parameter(parameter: Parameter, contract: Contract | None) -> dict[str, Any]:
    schema = inline(parameter.schema, contract.schemas) if contract is not None else parameter.schema
    item: dict[str, Any] = {
        "name": parameter.name,
        "in": parameter.location,
        "required": parameter.required,
        "schema": schema if schema is not True else {},
    }
    if parameter.location == "query" and "array" in _types(schema):
        if parameter.separator is None:
            item.update(style="form", explode=True)  # ?tag=a&tag=b
        else:
            style = {" ": "spaceDelimited", "|": "pipeDelimited"}.get(parameter.separator, "form")
            item.update(style=style, explode=False)
    if parameter.description:
        item["description"] = parameter.description
    if parameter.deprecated:
        item["deprecated"] = True
    if parameter.example is not MISSING:
        item["example"] = parameter.example
    examples = _parameter_examples(parameter, contract)
    if examples:
        item["examples"] = examples
    return item


def _parameter_examples(parameter: Parameter, contract: Contract | None) -> dict[str, Any]:
    if contract is None:
        return {}
    key = {"path": "path", "query": "query", "header": "headers"}[parameter.location]
    found = {}
    for example in contract.examples:
        given = getattr(example, key)
        if parameter.name in given:
            found[example.name] = {"value": given[parameter.name]}
    return found


def openapi_request_body(contract: Contract) -> dict[str, Any] | None:
    """The Request Body Object of a contract that declares a body or media types, else None."""
    if contract.body is None and not contract.content_types:
        return None
    schema = inline(contract.body, contract.schemas) if contract.body is not None else {}
    examples = {e.name: {"value": e.body} for e in contract.examples if e.body is not MISSING}
    content = {}
    for media in contract.content_types or ("application/json",):
        entry: dict[str, Any] = {"schema": schema if schema is not True else {}}
        if examples and media == (contract.content_types or ("application/json",))[0]:
            entry["examples"] = examples
        content[media] = entry
    return {"required": contract.body is not None and contract.body_required, "content": content}


def openapi_responses(contract: Contract) -> dict[str, Any]:
    """Response Objects of the declared statuses, with their schemas and the examples' bodies."""
    responses: dict[str, Any] = {}
    for status, entry in contract.responses.items():
        response: dict[str, Any] = {"description": entry.description or f"Status {status}"}
        if entry.content_type is not None or entry.schema is not None:
            media: dict[str, Any] = {}
            if entry.schema is not None:
                media["schema"] = inline(entry.schema, contract.schemas)
            examples = {
                e.name: {"summary": "part of the body", "value": e.response_body}
                for e in contract.examples
                if e.response_body is not MISSING and e.status is not None and entry.matches(e.status)
            }
            if examples:
                media["examples"] = examples
            response["content"] = {entry.content_type or "application/json": media}
        if entry.headers:
            response["headers"] = {
                name: {"schema": inline(schema, contract.schemas)} for name, schema in entry.headers.items()
            }
        responses[status] = response
    return responses


def _types(schema: Schema) -> tuple[str, ...]:
    named = schema.get("type") if isinstance(schema, dict) else None
    return (named,) if isinstance(named, str) else tuple(named) if isinstance(named, list) else ()


# --- Swagger 2.0 ---------------------------------------------------------------------------------

# Keywords Swagger 2.0's Schema Object has (a subset of JSON Schema draft 4, plus its own).
_SWAGGER_KEYWORDS = frozenset(
    [
        "format",
        "title",
        "description",
        "default",
        "multipleOf",
        "maximum",
        "exclusiveMaximum",
        "minimum",
        "exclusiveMinimum",
        "maxLength",
        "minLength",
        "pattern",
        "maxItems",
        "minItems",
        "uniqueItems",
        "maxProperties",
        "minProperties",
        "required",
        "enum",
        "type",
        "items",
        "allOf",
        "properties",
        "additionalProperties",
        "discriminator",
        "readOnly",
        "xml",
        "externalDocs",
        "example",
    ]
)


def swagger_schema(schema: Schema) -> dict[str, Any]:
    """An inlined 2020-12 schema in Swagger 2.0's dialect: one type (``x-nullable`` for null),
    ``const`` as a one-value ``enum``, numeric exclusive bounds as boolean flags; keywords 2.0
    lacks (``oneOf``, ``prefixItems``, ...) are dropped, so the schema says less, never other."""
    if not isinstance(schema, dict):
        return {}
    out: dict[str, Any] = {}
    types = [t for t in _types(schema) if t != "null"]
    if types:
        out["type"] = types[0]
    if "null" in _types(schema):
        out["x-nullable"] = True
    if "const" in schema:
        out["enum"] = [schema["const"]]
    for bound, flag in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(schema.get(bound), int | float) and not isinstance(schema.get(bound), bool):
            out[flag], out[bound] = schema[bound], True
    for key, value in schema.items():
        if key in out or key == "type" or key not in _SWAGGER_KEYWORDS:
            continue
        if key == "items":
            out[key] = swagger_schema(value)
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: swagger_schema(sub) for name, sub in value.items()}
        elif key == "allOf" and isinstance(value, list):
            out[key] = [swagger_schema(sub) for sub in value]
        elif key == "additionalProperties":
            out[key] = swagger_schema(value) if isinstance(value, dict) else value
        elif key == "examples":
            continue
        else:
            out[key] = value
    if "example" not in out and isinstance(schema.get("examples"), list) and schema["examples"]:
        out["example"] = schema["examples"][0]
    return out


def swagger_operation(contract: Contract, path_params: tuple[str, ...]) -> dict[str, Any]:
    """The Swagger 2.0 Operation Object of a typed endpoint: parameters (the body as a ``body``
    parameter), consumes, and responses with their schemas."""
    parameters = []
    for item in openapi_parameters(contract, path_params):
        schema = swagger_schema(item["schema"])
        parameter = {"name": item["name"], "in": item["in"], "required": item["required"], **schema}
        parameter.setdefault("type", "string")
        if parameter["type"] in ("object",):  # not a parameter type in 2.0
            parameter["type"] = "string"
        if parameter["type"] == "array":
            parameter.setdefault("items", {"type": "string"})
            if item["in"] == "query" and item.get("explode") is not False:
                parameter["collectionFormat"] = "multi"
        if item.get("description"):
            parameter["description"] = item["description"]
        parameters.append(parameter)
    operation: dict[str, Any] = {"parameters": parameters}
    if contract.body is not None:
        body = swagger_schema(inline(contract.body, contract.schemas))
        parameters.append({"name": "body", "in": "body", "required": contract.body_required, "schema": body})
    if contract.content_types:
        operation["consumes"] = list(contract.content_types)
    responses: dict[str, Any] = {}
    for status, entry in contract.responses.items():
        if status.endswith("XX"):
            continue  # ranges are OpenAPI 3's
        response: dict[str, Any] = {"description": entry.description or f"Status {status}"}
        if entry.schema is not None:
            response["schema"] = swagger_schema(inline(entry.schema, contract.schemas))
        responses[status] = response
    operation["responses"] = responses or {"200": {"description": "Success"}}
    produces = sorted({e.content_type for e in contract.responses.values() if e.content_type})
    if produces:
        operation["produces"] = produces
    return operation
