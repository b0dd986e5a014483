"""One log line and one set of metrics per HTTP request, and the request id that ties them together.

``RequestTelemetry`` is the outermost Falcon middleware. It takes the request id from
``X-Request-Id`` (when it looks like an id) or makes one, returns it in the response's
``X-Request-Id``, and when the response is ready logs the request and records its metrics. Handlers
that lease a kernel report through ``req.context``: ``pool``, ``pool_wait``, ``kernel_id`` and
``kernel_seconds``.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

import falcon

from fngw.http.environ import JOB_RUN
from fngw.http.streams import ObservedStream

from .metrics import GatewayMetrics
from .tracing import TRACE_HEADERS, Tracing

REQUEST_ID_HEADER = "X-Request-Id"
_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")  # no spaces, quotes or control characters: safe to log

access_log = logging.getLogger("fngw.access")


def request_id_from(value: str | None) -> str:
    """The client's id when it is a plausible one, else a new one (never echo arbitrary text)."""
    if value and _ID.match(value):
        return value
    return uuid.uuid4().hex


class RequestTelemetry:
    """Falcon middleware: a request id for every request, and on the way out its log line and metrics."""

    def __init__(self, metrics: GatewayMetrics | None, tracing: Tracing | None = None):
        self.metrics = metrics
        self.tracing = tracing

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Take the client's X-Request-Id when it looks like one, else make one; with tracing on,
        start the request's span (``req.context.trace``; None when off)."""
        ctx = req.context
        ctx.started = time.perf_counter()
        ctx.request_id = request_id_from(req.get_header(REQUEST_ID_HEADER))
        ctx.pool = ctx.pool_wait = ctx.kernel_id = ctx.kernel_seconds = ctx.trace = None
        resp.set_header(REQUEST_ID_HEADER, ctx.request_id)
        if self.tracing is not None:
            headers = {name: value for name in TRACE_HEADERS if (value := req.get_header(name)) is not None}
            ctx.trace = self.tracing.start_request(req.method, req.path, headers, req.scheme, JOB_RUN in req.env)

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool) -> None:
        """Return X-Request-Id, log the request and count it."""
        ctx = req.context
        started = getattr(ctx, "started", None)
        if started is None:  # process_request did not run (an earlier middleware failed)
            return
        if isinstance(resp.stream, ObservedStream):
            # Sent after this returns: logged and counted once the server has sent it.
            resp.stream.when_done(lambda stream: self._record(req, resp, started, stream))
            return
        self._record(req, resp, started, None)

    def _record(
        self, req: falcon.Request, resp: falcon.Response, started: float, stream: ObservedStream | None
    ) -> None:
        ctx = req.context
        seconds = time.perf_counter() - started
        status = falcon.http_status_to_code(resp.status)
        route = req.uri_template or "unmatched"  # templates, not paths: bounded label values
        if self.metrics is not None:
            self.metrics.observe_request(route, req.method, status, seconds, ctx.kernel_seconds)
            if stream is not None:
                self.metrics.observe_stream(route, req.method, stream.mode, stream.first_byte, stream.client_left)
        fields = {
            "event": "request",
            "request_id": ctx.request_id,
            "method": req.method,
            "path": req.path,  # without the query string, which may hold a token
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "pool": ctx.pool,
            "pool_wait_ms": None if ctx.pool_wait is None else round(ctx.pool_wait * 1000, 3),
            "kernel_id": ctx.kernel_id,
            "bytes": stream.sent if stream is not None else _body_size(resp),
        }
        trace = getattr(ctx, "trace", None)
        if trace is not None and self.tracing is not None:
            fields["trace_id"] = trace.trace_id
            self.tracing.finish_request(trace, req.uri_template, status, _error_title(resp))
        run = req.env.get(JOB_RUN)
        if run is not None:  # a job's replay: logged as the request it is, with its job
            fields["job_id"] = run.job_id
        if stream is not None:
            first = stream.first_byte
            fields.update(
                stream=stream.mode,
                first_byte_ms=None if first is None else round(first * 1000, 3),
                client_left=stream.client_left,
            )
        access_log.info("%s %s %s", req.method, req.path, status, extra={"fields": fields})


def _error_title(resp: falcon.Response) -> str | None:
    media = resp.media if resp.data is None else None
    return media.get("message") if isinstance(media, dict) else None


def _body_size(resp: falcon.Response) -> int | None:
    if resp.stream is not None:
        length = resp.content_length
        return int(length) if length is not None else None
    body = resp.render_body()  # falcon caches the rendering: the body is not serialized twice
    return len(body) if body is not None else 0
