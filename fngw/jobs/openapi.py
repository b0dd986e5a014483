"""The job resources in the gateway's OpenAPI document (``/_fngw/openapi.json``), and what an
asynchronous call answers (the ``Job`` schema of a 202)."""

from __future__ import annotations

import copy
from typing import Any

from fngw.manifest import join_url

from .model import STATUSES
from .submission import JOBS_PATH

_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
_JOB = {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}}
_TIME = {"type": ["string", "null"], "format": "date-time"}

SCHEMAS: dict[str, Any] = {
    "Job": {
        "description": "An asynchronous call (docs/jobs.md)",
        "type": "object",
        "required": ["id", "status", "endpoint", "href", "created", "started", "finished"],
        "properties": {
            "id": {"type": "string"},
            "status": {"enum": list(STATUSES)},
            "endpoint": {"type": "string", "description": 'the endpoint called, "POST /score"'},
            "href": {"type": "string"},
            "created": _TIME,
            "started": _TIME,
            "finished": _TIME,
            "result": {"type": "string", "description": "the result's URL, once a run answered"},
            "error": {"type": "string", "description": "why the job failed"},
        },
    },
}

ACCEPTED = {
    "description": "Accepted as a job (`Prefer: respond-async`, or an `async` endpoint): poll `Location`",
    "headers": {
        "Location": {"schema": {"type": "string"}, "description": "The job's URL"},
        "Retry-After": {"schema": {"type": "string"}},
        "Preference-Applied": {"schema": {"type": "string"}},
    },
    "content": _JOB,
}


def _job_id() -> list[dict[str, Any]]:
    return [{"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}]


def job_paths(base_url: str) -> dict[str, Any]:
    """The path items of ``{base}/_fngw/jobs``, its jobs and their results."""
    jobs = join_url(base_url, JOBS_PATH)
    unknown = {"description": "No such job that this caller may see", "content": _ERROR}
    wrong_token = {"description": "A token that is not valid", "content": _ERROR}
    not_finished = {"description": "The job has no result, or has finished (job_status)", "content": _ERROR}
    paths = {
        jobs: {
            "get": {
                "operationId": "fngw_jobs_list",
                "summary": "The caller's jobs (every job for a jobs.admin token)",
                "tags": ["jobs"],
                "parameters": [{"name": "status", "in": "query", "schema": {"enum": list(STATUSES)}}],
                "responses": {
                    "200": {
                        "description": "The jobs, oldest first",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["jobs"],
                                    "properties": {
                                        "jobs": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}}
                                    },
                                }
                            }
                        },
                    },
                    "400": {"description": "An unknown status", "content": _ERROR},
                    "401": {"description": "No token (listing needs one), or one that is not valid", "content": _ERROR},
                    "403": {"description": "The gateway has no tokens: jobs are reached by id", "content": _ERROR},
                },
            }
        },
        f"{jobs}/{{job_id}}": {
            "get": {
                "operationId": "fngw_jobs_get",
                "summary": "A job's status",
                "tags": ["jobs"],
                "parameters": _job_id(),
                "responses": {"200": {"description": "The job", "content": _JOB}, "401": wrong_token, "404": unknown},
            },
            "delete": {
                "operationId": "fngw_jobs_cancel",
                "summary": "Cancel a job: a queued one never runs, a running one is interrupted",
                "tags": ["jobs"],
                "parameters": _job_id(),
                "responses": {
                    "200": {"description": "The cancelled job", "content": _JOB},
                    "401": wrong_token,
                    "404": unknown,
                    "409": not_finished,
                },
            },
        },
        f"{jobs}/{{job_id}}/result": {
            "get": {
                "operationId": "fngw_jobs_result",
                "summary": "The response the synchronous call would have given",
                "tags": ["jobs"],
                "parameters": _job_id(),
                "responses": {
                    "default": {"description": "The run's response: its status, headers and body"},
                    "401": wrong_token,
                    "404": unknown,
                    "409": not_finished,
                },
            }
        },
    }
    return copy.deepcopy(paths)
