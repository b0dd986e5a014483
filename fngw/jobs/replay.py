"""An accepted call kept as a ``StoredRequest``, and replayed through the worker's own application.

Replaying the request through the same WSGI application (routing, parsing, validation, the pool,
rendering) is what makes a job's result exactly the response the synchronous call would have
given. What is kept leaves out credentials (``Authorization``, ``Cookie``, ``?token=``): the call was
authorized when it was accepted, and a secret does not belong in a store that outlives it. The
asynchronous-call headers themselves (``Prefer``, ``Idempotency-Key``, ``X-Callback-Url``) are
left out too, so a cell sees the headers a synchronous call would have carried.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote, unquote_plus, unquote_to_bytes

import falcon

from fngw.http.environ import JOB_RUN, RAW_HEADERS

from .model import StoredRequest, StoredResponse

# Never kept: credentials, the headers that asked for the job, and framing the replay recomputes.
NOT_KEPT = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "prefer",
        "idempotency-key",
        "x-callback-url",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "expect",
        "upgrade",
        "te",
    }
)
# Not replayed from a run's answer: framing, and what the result request's own middleware sets
# (its request id, CORS answers for its own Origin: two Access-Control-Allow-Origin would break it).
NOT_STORED = frozenset(
    {
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "x-request-id",
        "access-control-allow-origin",
        "access-control-allow-credentials",
        "access-control-expose-headers",
        "vary",
    }
)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def stored_request(req: falcon.Request, body: bytes, trace: Mapping[str, str] | None = None) -> StoredRequest:
    """What of ``req`` (whose ``body`` was read) is kept to replay it. ``trace``: the W3C headers
    of the submitting request's span, kept instead of the client's, so the run links to it."""
    # The path as the client encoded it (raw-path routing needs it); QUERY_STRING is raw in WSGI.
    raw_target = req.env.get("RAW_URI") or req.env.get("REQUEST_URI")
    path = raw_target.partition("?")[0] if raw_target else quote(req.env.get("SCRIPT_NAME", "") + req.path)
    query = req.env.get("QUERY_STRING", "")
    if query:  # ?token= is a credential: drop it (however its name is escaped), keep the rest as written
        query = "&".join(p for p in query.split("&") if unquote_plus(p.split("=", 1)[0]) != "token")
    raw = req.env.get(RAW_HEADERS) or list(req.headers.items())
    dropped = NOT_KEPT | {name.lower() for name in trace} if trace else NOT_KEPT
    headers = tuple((str(name), str(value)) for name, value in raw if str(name).lower() not in dropped)
    if trace:
        headers += tuple(trace.items())
    return StoredRequest(req.method, path + ("?" + query if query else ""), headers, body)


def replay_environ(request: StoredRequest, run: object, url_scheme: str = "http") -> dict[str, Any]:
    """A WSGI environ for ``request``, with ``run`` under ``JOB_RUN``."""
    path, _, query = request.target.partition("?")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method,
        "SCRIPT_NAME": "",
        # WSGI: the decoded path as latin-1 text; RAW_URI keeps the target for raw-path routing.
        "PATH_INFO": _unquote_latin1(path),
        "QUERY_STRING": query,
        "RAW_URI": request.target,
        "SERVER_NAME": "fngw-job",
        "SERVER_PORT": "0",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_LENGTH": str(len(request.body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": url_scheme,
        "wsgi.input": io.BytesIO(request.body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        RAW_HEADERS: list(request.headers),
        JOB_RUN: run,
    }
    for name, value in request.headers:
        key = name.upper().replace("-", "_")
        if key == "CONTENT_TYPE":
            environ["CONTENT_TYPE"] = value
            continue
        key = "HTTP_" + key
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ


def _unquote_latin1(path: str) -> str:
    return unquote_to_bytes(path).decode("latin-1")


class ResultTooLarge(Exception):
    """The run's body passed ``jobs.max_result`` bytes."""


def call(app: WSGIApp, environ: dict[str, Any], max_result: int) -> StoredResponse:
    """The response of ``app`` to ``environ``, body read whole (at most ``max_result`` bytes, else
    ``ResultTooLarge``)."""
    head: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        head["status"], head["headers"] = status, headers
        return lambda data: None

    chunks: list[bytes] = []
    size = 0
    body = app(environ, start_response)
    try:
        for chunk in body:
            size += len(chunk)
            if size > max_result:
                raise ResultTooLarge(f"the result passed jobs.max_result ({max_result} bytes)")
            chunks.append(chunk)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    status = int(str(head["status"]).split(" ", 1)[0])
    headers = tuple((n, v) for n, v in head["headers"] if n.lower() not in NOT_STORED)
    return StoredResponse(status, headers, b"".join(chunks))
