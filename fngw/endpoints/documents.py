"""API descriptions: Kernel Gateway's per-notebook Swagger 2.0, and one OpenAPI 3.1 for the gateway."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import falcon

from fngw import __version__
from fngw.auth import Guarded
from fngw.contracts.documents import (
    openapi_parameters,
    openapi_request_body,
    openapi_responses,
    swagger_operation,
)
from fngw.jobs.openapi import ACCEPTED
from fngw.manifest import Access, Manifest
from fngw.routing import Route, RoutePlan

_PARAM = re.compile(r":([A-Za-z_][A-Za-z0-9_]*)")

ERRORS = {
    "400": "The request body or query cannot be parsed",
    "401": "No token, or a token that is not valid",
    "403": "The token does not grant access to this route",
    "404": "No route matches the path",
    "405": "The method is not annotated for this path",
    "413": "The request body is larger than server.max_body",
    "500": "The cell (or its ResponseInfo cell) raised an error",
    "502": "The kernel stopped while running the request; it is being replaced",
    "503": "Every kernel is busy and the queue is full, or no kernel became free within queue_timeout",
    "504": "The cell did not finish within its timeout",
}


def swagger_document(title_source: Path, routes: Iterable[Route]) -> dict[str, Any]:
    """The document Kernel Gateway serves at ``/_api/spec/swagger.json`` for a notebook."""
    name = title_source.name
    title = name.split(".", 1)[0] if name.find(".") > 0 else name
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        contract = route.settings.contract
        # Untyped endpoints as Kernel Gateway describes them; typed ones with what 2.0 can say
        operation = (
            swagger_operation(contract, route.endpoint.params)
            if contract is not None
            else {"responses": {"200": {"description": "Success"}}}
        )
        paths.setdefault(route.endpoint.path, {})[route.method.lower()] = operation
    return {"swagger": "2.0", "info": {"title": title, "version": "0.0.0"}, "paths": paths}


def _security(access: Access) -> list[dict[str, list[str]]]:
    return [] if access.public else [{"bearer": []}, {"token_query": []}]


def openapi_document(manifest: Manifest, plan: RoutePlan) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every endpoint of the plan (/_fngw/openapi.json)."""
    paths: dict[str, dict[str, Any]] = {}
    operation_ids: set[str] = set()
    for route in plan.routes:
        template = _PARAM.sub(r"{\1}", route.path)
        paths.setdefault(template, {})[route.method.lower()] = _operation(route, operation_ids)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "fngw",
            "version": __version__,
            "description": f"Notebook endpoints served by fngw from {manifest.path.name}",
        },
        "paths": paths,
        "components": copy.deepcopy(_COMPONENTS),  # add_operations adds to it
    }


_ERROR_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}

_REQUEST_BODY = {
    "required": False,
    "content": {
        "application/json": {"schema": {}},
        "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
        "multipart/form-data": {"schema": {"type": "object"}},
        "text/plain": {"schema": {"type": "string"}},
    },
}

_COMPONENTS = {
    "securitySchemes": {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "Authorization: Bearer <token> (or: token <token>)",
        },
        "token_query": {"type": "apiKey", "in": "query", "name": "token"},
    },
    "schemas": {
        "StreamEvent": {
            "description": "One event of a streamed response (docs/notebooks.md, Streaming)",
            "type": "object",
            "required": ["event"],
            "properties": {
                "id": {"type": "integer", "description": "1, 2, ... in order"},
                "event": {"enum": ["stdout", "stderr", "display", "error", "dropped", "end", "keep-alive"]},
                "data": {
                    "description": "stdout/stderr: the text; display: the mime bundle; error: {ename, evalue, "
                    "message, traceback?}; dropped: {bytes}; end: {status, duration_ms}; none on keep-alive",
                },
            },
        },
        "Error": {
            "type": "object",
            "required": ["reason", "message"],
            "properties": {
                "reason": {"type": "string"},
                "message": {"type": "string"},
                "ename": {"type": "string"},
                "evalue": {"type": "string"},
                "traceback": {"type": "array", "items": {"type": "string"}},
                "errors": {
                    "description": "422: every way the request breaks its schemas",
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["in", "pointer", "message"],
                        "properties": {
                            "in": {"enum": ["path", "query", "headers", "body"]},
                            "pointer": {"type": "string", "description": "JSON Pointer into that part"},
                            "message": {"type": "string"},
                        },
                    },
                },
                "accepted": {
                    "description": "415: the media types the endpoint accepts",
                    "type": "array",
                    "items": {"type": "string"},
                },
            },
        },
    },
}


def _operation(route: Route, operation_ids: set[str]) -> dict[str, Any]:
    """One route's OpenAPI operation; its operationId is made unique among ``operation_ids``."""
    endpoint = route.endpoint
    contract = route.settings.contract
    statuses = dict(ERRORS)
    if route.settings.auth.public:
        statuses.pop("401")
        statuses.pop("403")
    if contract is not None and contract.checks_requests:
        statuses["422"] = "The request breaks the endpoint's schemas (every error listed)"
    if contract is not None and contract.content_types:
        statuses["415"] = "The body is of a media type the endpoint does not accept"
    responses: dict[str, Any] = {
        "200": {
            "description": "What the cell printed, or its rich output",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    }
    if contract is not None and contract.responses:
        responses = openapi_responses(contract)
    for code, text in sorted(statuses.items()):
        responses.setdefault(code, {"description": text, "content": _ERROR_CONTENT})
    _add_streams(responses, route.settings.stream.enabled)
    operation_id = f"{route.notebook}_{route.method.lower()}_{_slug(endpoint.path)}"
    while operation_id in operation_ids:
        operation_id += "_"
    operation_ids.add(operation_id)
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": f"{route.method} {endpoint.path} of notebook {route.notebook}",
        "tags": [route.notebook],
        "parameters": openapi_parameters(contract, endpoint.params),
        "responses": responses,
        "security": _security(route.settings.auth),
    }
    if endpoint.description:
        operation["description"] = endpoint.description
    body = openapi_request_body(contract) if contract is not None else None
    if body is not None:
        operation["requestBody"] = body
    elif route.method in ("POST", "PUT", "PATCH", "DELETE"):
        operation["requestBody"] = _REQUEST_BODY
    return operation


_STREAM_EVENTS = {"$ref": "#/components/schemas/StreamEvent"}


def _add_streams(responses: dict[str, Any], plain: bool) -> None:
    """Every endpoint streams when asked (SSE, NDJSON: always a 200, the cell's status in the ``end``
    event); ``x-fngw-stream`` says whether it also streams plain text to clients that accept it."""
    ok = responses.setdefault("200", {"description": "Success"})
    content = ok.setdefault("content", {})
    content["text/event-stream"] = {
        "schema": {
            "type": "string",
            "description": "Server-sent events: `id:`, `event:` and `data:` lines of StreamEvent",
        },
        "x-fngw-events": _STREAM_EVENTS,
    }
    content["application/x-ndjson"] = {"schema": _STREAM_EVENTS, "x-fngw-framing": "one StreamEvent a line"}
    ok["x-fngw-stream"] = {"plain": plain, "events": ["text/event-stream", "application/x-ndjson"]}


def add_async_calls(document: dict[str, Any], plan: RoutePlan) -> dict[str, Any]:
    """Every endpoint's operation in ``document`` also answers 202 with a job (docs/jobs.md);
    ``x-fngw-async`` says whether it always does (``async: true``)."""
    for route in plan.routes:
        operation = document["paths"][_PARAM.sub(r"{\1}", route.path)][route.method.lower()]
        operation["responses"]["202"] = copy.deepcopy(ACCEPTED)
        operation["x-fngw-async"] = {"always": route.settings.asynchronous.enabled, "prefer": "respond-async"}
    return document


def add_operations(
    document: dict[str, Any], paths: dict[str, Any], schemas: dict[str, Any], access: Access
) -> dict[str, Any]:
    """``document`` with more path items (the kernel API's), each operation under ``access``."""
    for item in paths.values():
        for operation in item.values():
            operation["security"] = _security(access)
    document["paths"].update(paths)
    document["components"]["schemas"].update(schemas)
    return document


def _slug(path: str) -> str:
    path = _PARAM.sub(r"by_\1", path)
    return re.sub(r"[^A-Za-z0-9]+", "_", path).strip("_") or "root"


class DocumentResource(Guarded):
    """Serves a precomputed JSON document, under an access rule."""

    def __init__(self, document: dict[str, Any], access: Access):
        self.document = document
        self.access = access

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """The document as JSON."""
        resp.media = self.document
