"""The kernel API's REST routes as OpenAPI 3.1 paths and schemas, for the gateway's one document.

Written from what the resources answer (and tested against them by schemathesis), so that clients
and fuzzers see the same contract. The websocket route (``/api/kernels/{kernel_id}/channels``) is
not here: OpenAPI has no way to describe its frames (docs/kernel-api.md does).
"""

from __future__ import annotations

from typing import Any

from fngw.manifest import join_url

ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: str) -> dict[str, Any]:
    text = {
        "400": "The body is not a JSON object of the documented shape",
        "401": "No valid token",
        "403": "The token does not grant the kernel API, listing is off, max_kernels is reached, or the origin"
        " is refused",
        "404": "No such kernel, kernelspec or session",
        "413": "The body is larger than the kernel API accepts",
        "500": "The kernel failed to start, restart or run its seed",
    }
    return {code: _json(ERROR, text[code]) for code in codes}


SCHEMAS: dict[str, Any] = {
    "Kernel": {
        "type": "object",
        "required": ["id", "name", "last_activity", "execution_state", "connections"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "last_activity": {"type": ["string", "null"], "description": "ISO 8601, microseconds, Z"},
            "execution_state": {"type": "string"},
            "connections": {"type": "integer", "minimum": 0},
        },
    },
    "KernelSpec": {
        "type": "object",
        "required": ["name", "spec", "resources"],
        "properties": {"name": {"type": "string"}, "spec": {"type": "object"}, "resources": {"type": "object"}},
    },
    "Session": {
        "type": "object",
        "required": ["id", "path", "name", "type", "kernel"],
        "properties": {
            "id": {"type": "string"},
            "path": {"type": "string"},
            "name": {"type": "string"},
            "type": {"type": "string"},
            "kernel": {"$ref": "#/components/schemas/Kernel"},
            "notebook": {"type": "object"},
        },
    },
    "KernelStart": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "kernelspec; default kernel_api.default_kernel"},
            "env": {"type": "object", "additionalProperties": {"type": "string"}},
            "path": {"type": "string", "description": "working directory below the gateway's"},
            "kernel_id": {"type": "string"},
        },
    },
    "SessionStart": {
        "type": "object",
        "required": ["path", "type"],
        "properties": {
            "path": {"type": "string"},
            "name": {"type": "string"},
            "type": {"type": "string"},
            "kernel": {
                "type": "object",
                "properties": {"id": {"type": "string"}, "name": {"type": "string"}},
            },
        },
    },
}


def kernel_api_paths(base_url: str) -> dict[str, Any]:
    """OpenAPI path items of the kernel API under ``base_url``. Long because it is a table: one
    entry per route and method, read top to bottom like the API itself."""
    kernel = {"$ref": "#/components/schemas/Kernel"}
    session = {"$ref": "#/components/schemas/Session"}
    kernel_id = [{"name": "kernel_id", "in": "path", "required": True, "schema": {"type": "string"}}]
    session_id = [{"name": "session_id", "in": "path", "required": True, "schema": {"type": "string"}}]
    spec_name = [{"name": "kernel_name", "in": "path", "required": True, "schema": {"type": "string"}}]
    tag = ["kernel API"]

    def op(operation_id: str, summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {"operationId": operation_id, "summary": summary, "tags": tag, "responses": responses, **extra}

    def body(ref: str) -> dict[str, Any]:
        return {"required": False, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}

    return {
        join_url(base_url, "api"): {
            "get": op(
                "kernel_api_info",
                "The gateway and its version",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["version", "gateway"],
                            "properties": {"version": {"type": "string"}, "gateway": {"const": "fngw"}},
                        },
                        "fngw's version",
                    ),
                    **_errors("401", "403"),
                },
            )
        },
        join_url(base_url, "api/kernelspecs"): {
            "get": op(
                "kernel_api_kernelspecs",
                "The kernelspecs clients may start (kernel_api.allowed_kernels)",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["default", "kernelspecs"],
                            "properties": {
                                "default": {"type": "string"},
                                "kernelspecs": {
                                    "type": "object",
                                    "additionalProperties": {"$ref": "#/components/schemas/KernelSpec"},
                                },
                            },
                        },
                        "kernelspecs by name",
                    ),
                    **_errors("401", "403"),
                },
            )
        },
        join_url(base_url, "api/kernelspecs/{kernel_name}"): {
            "get": op(
                "kernel_api_kernelspec",
                "One kernelspec",
                {
                    "200": _json({"$ref": "#/components/schemas/KernelSpec"}, "the kernelspec"),
                    **_errors("401", "403", "404"),
                },
                parameters=spec_name,
            )
        },
        join_url(base_url, "api/kernels"): {
            "get": op(
                "kernel_api_list_kernels",
                "Running kernels (kernel_api.list_kernels)",
                {
                    "200": _json({"type": "array", "items": kernel}, "every kernel of the instance"),
                    **_errors("401", "403"),
                },
            ),
            "post": op(
                "kernel_api_start_kernel",
                "Start a kernel (a prewarmed one when there is one)",
                {
                    "201": _json(kernel, "the kernel started"),
                    **_errors("400", "401", "403", "404", "413", "500"),
                },
                requestBody=body("KernelStart"),
            ),
        },
        join_url(base_url, "api/kernels/{kernel_id}"): {
            "get": op(
                "kernel_api_get_kernel",
                "One kernel",
                {"200": _json(kernel, "the kernel"), **_errors("401", "403", "404")},
                parameters=kernel_id,
            ),
            "delete": op(
                "kernel_api_delete_kernel",
                "Shut a kernel down",
                {"204": {"description": "shut down"}, **_errors("401", "403", "404")},
                parameters=kernel_id,
            ),
        },
        join_url(base_url, "api/kernels/{kernel_id}/interrupt"): {
            "post": op(
                "kernel_api_interrupt",
                "Interrupt a kernel",
                {"204": {"description": "interrupted"}, **_errors("401", "403", "404")},
                parameters=kernel_id,
            )
        },
        join_url(base_url, "api/kernels/{kernel_id}/restart"): {
            "post": op(
                "kernel_api_restart",
                "Restart a kernel and run the seed again",
                {"200": _json(kernel, "the restarted kernel"), **_errors("401", "403", "404", "500")},
                parameters=kernel_id,
            )
        },
        join_url(base_url, "api/sessions"): {
            "get": op(
                "kernel_api_list_sessions",
                "Sessions (kernel_api.list_kernels)",
                {"200": _json({"type": "array", "items": session}, "every session"), **_errors("401", "403")},
            ),
            "post": op(
                "kernel_api_start_session",
                "Create a session (or return the one of that path), starting its kernel",
                {"201": _json(session, "the session"), **_errors("400", "401", "403", "404", "413", "500")},
                requestBody={"required": True, **{k: v for k, v in body("SessionStart").items() if k != "required"}},
            ),
        },
        join_url(base_url, "api/sessions/{session_id}"): {
            "get": op(
                "kernel_api_get_session",
                "One session",
                {"200": _json(session, "the session"), **_errors("401", "403", "404")},
                parameters=session_id,
            ),
            "patch": op(
                "kernel_api_update_session",
                "Rename a session, or move it to another kernel",
                {"200": _json(session, "the session"), **_errors("400", "401", "403", "404", "413", "500")},
                parameters=session_id,
                requestBody=body("SessionStart"),
            ),
            "delete": op(
                "kernel_api_delete_session",
                "Delete a session and shut its kernel down",
                {"204": {"description": "deleted"}, **_errors("401", "403", "404")},
                parameters=session_id,
            ),
        },
    }
