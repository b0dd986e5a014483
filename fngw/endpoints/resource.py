"""Falcon resources serving annotated cells.

One ``EndpointResource`` per URL path; each annotated method of that path is an ``EndpointHandler``
installed as the resource's ``on_<method>`` responder, so methods that are not annotated get 405
with ``Allow`` from Falcon itself, before any kernel is taken.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import falcon

from fngw.contracts import (
    ContractError,
    RequestValidator,
    ResponseBroken,
    ResponseValidator,
    UnsupportedMediaType,
    check_media_type,
    media_type,
)
from fngw.http.body import read_body
from fngw.http.disconnect import abandon_if_client_leaves
from fngw.http.environ import JOB_RUN
from fngw.jobs import JobRun, JobSubmitter
from fngw.kernels import Kernel, KernelPool, NoIdleKernel
from fngw.manifest import Access
from fngw.routing import Route
from fngw.telemetry.tracing import child_span, trace_headers

from . import execution, response
from .request import request_document, with_trace_headers
from .stream_wire import PLAIN, STREAM_TYPES, stream_mode
from .streaming import StreamSession

log = logging.getLogger("fngw.endpoints")

T = TypeVar("T")

FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


class EndpointHandler:
    """Runs one annotated endpoint: parse the request, lease a kernel, execute, render."""

    def __init__(
        self,
        route: Route,
        pool: KernelPool,
        language: str,
        max_body: int,
        observe_pool_wait: Callable[[str, float], None] | None = None,
        max_response: int | None = None,
        observe_rejection: Callable[[str, str, str], None] | None = None,
        jobs: JobSubmitter | None = None,
    ):
        self.route = route
        self.jobs = jobs
        self.key = f"{route.method} {route.path}"  # the endpoint as jobs name it
        self.observe_rejection = observe_rejection
        contract = route.settings.contract
        self.requests = RequestValidator(contract) if contract is not None and contract.checks_requests else None
        checks_responses = contract is not None and route.settings.validate_responses
        self.responses = ResponseValidator(contract) if contract is not None and checks_responses else None
        self.observe_pool_wait = observe_pool_wait
        self.pool = pool
        self.settings = route.settings
        self.plan = execution.ExecutionPlan.for_endpoint(route.endpoint, language)
        self.max_body = max_body
        self.max_response = max_response

    @property
    def access(self) -> Access:
        """Who may call this endpoint."""
        return self.settings.auth

    def __call__(self, req: falcon.Request, resp: falcon.Response, **params: str) -> None:
        body = read_body(req, self.max_body)
        requests = self.requests
        if requests is not None:  # 415 before the body is parsed as what it is not
            self._rejections(lambda: check_media_type(requests.contract, req.content_type, body))
        document = request_document(req, body, params, self.max_body)
        if self.requests is not None:
            document["params"] = self._rejections(lambda: self._validated(req, document, body))
        run: JobRun | None = req.env.get(JOB_RUN)  # a job's replay: checked already, runs as itself
        if run is None and self.jobs is not None and self.jobs.wanted(req, self.settings.asynchronous):
            self.jobs.submit(req, resp, self.key, self.settings.asynchronous, body)
            return
        ctx = req.context
        ctx.pool = self.pool.name
        trace = getattr(ctx, "trace", None)  # RequestTelemetry sets it (None: tracing is off)
        waited = time.perf_counter()
        # Errors on the way (a full queue, a timeout, a dead kernel, a client that hung up) are
        # domain errors that fngw.server.error_map turns into their HTTP answers.
        try:
            with abandon_if_client_leaves(req), child_span(trace, "pool.acquire", {"fngw.pool": self.pool.name}):
                queue_timeout = self.settings.pool.queue_timeout
                kernel = self._job_kernel(run) if run is not None else self.pool.acquire(queue_timeout)
        finally:
            ctx.pool_wait = time.perf_counter() - waited
            if self.observe_pool_wait is not None:
                self.observe_pool_wait(self.pool.name, ctx.pool_wait)
        ctx.kernel_id = kernel.id
        if run is not None:
            run.leased(kernel)
        mode = stream_mode(req, self.settings.stream) if run is None else None  # a job's result is whole
        started = time.perf_counter()
        timeout = run.timeout if run is not None else self.settings.timeout
        try:
            with child_span(
                trace, "kernel.execute", {"fngw.pool": self.pool.name, "fngw.kernel.id": kernel.id}
            ) as span:
                if trace is not None:  # the cell continues the trace from this span (a call it makes)
                    document["headers"] = with_trace_headers(document["headers"], trace_headers(trace))
                request_json = json.dumps(document)
                if mode is not None:
                    self._stream(req, resp, mode, kernel, request_json)
                    return
                outcome = execution.run(self.plan, self.pool, kernel, request_json, timeout, self.max_response)
                if span is not None:
                    span.set_attribute("jupyter.msg_id", outcome.cell.msg_id)
        finally:
            if mode is None:
                ctx.kernel_seconds = time.perf_counter() - started
                self.pool.release(kernel)
                if run is not None:
                    run.released()  # the runner may start the next job while this one is rendered
        with child_span(trace, "response.render"):
            response.render(req, resp, outcome, tracebacks=self.settings.tracebacks)
            if self.responses is not None:
                self._check_response(resp)

    def _job_kernel(self, run: JobRun) -> Kernel:
        """An idle kernel for a job, which never waits in the pool's queue: a synchronous request
        that took the kernel the job was claimed for sends the job back to the store's queue."""
        try:
            return self.pool.acquire(wait=False)
        except NoIdleKernel:
            run.deferred = True
            raise

    def _stream(self, req: falcon.Request, resp: falcon.Response, mode: str, kernel: Kernel, request_json: str) -> None:
        """Answer with the cell's output as it comes (fngw.endpoints.streaming); the session gives
        the kernel back when the run ends."""
        settings = self.settings
        session = StreamSession(
            mode, settings.stream, self.plan, self.pool, kernel, request_json, settings.timeout, settings.tracebacks
        )
        session.start()
        if mode == PLAIN:
            session.wait_first_output(req)
            if not session.body_started:  # the cell ended before printing: its buffered answer
                response.render(req, resp, session.buffered_outcome(), tracebacks=settings.tracebacks)
                if self.responses is not None:
                    self._check_response(resp)
                return
        resp.status = falcon.HTTP_200
        resp.content_type = STREAM_TYPES[mode]
        resp.cache_control = ["no-cache"]
        resp.set_header("X-Accel-Buffering", "no")  # nginx and others: pass each chunk on at once
        resp.stream = session.observed(req)

    def _validated(self, req: falcon.Request, document: dict[str, Any], body: bytes) -> dict[str, Any]:
        """REQUEST["params"]; raises RequestRejected before any kernel is used."""
        assert self.requests is not None
        form = media_type(req.content_type) in FORMS
        return self.requests.validate(
            document["path"], document["args"], document["headers"], document["body"], bool(body), form, len(body)
        )

    def _rejections(self, check: Callable[[], T]) -> T:
        """``check()``, counting a refusal (415, 422) in the metrics."""
        try:
            return check()
        except ContractError as exc:
            if self.observe_rejection is not None:
                reason = "media_type" if isinstance(exc, UnsupportedMediaType) else "schema"
                self.observe_rejection(self.route.path, self.route.method, reason)
            raise

    def _check_response(self, resp: falcon.Response) -> None:
        assert self.responses is not None
        status = falcon.http_status_to_code(resp.status)
        problems = self.responses.problems(status, resp.content_type, resp.data or b"")
        if problems:
            log.error(
                "%s %s: the response breaks its declared responses: %s", self.route.method, self.route.path, problems
            )
            raise ResponseBroken("the response breaks the endpoint's declared responses: " + "; ".join(problems))


class EndpointResource:
    """Every annotated method of one URL path."""

    def __init__(self, handlers: dict[str, EndpointHandler]):
        self.handlers = handlers
        for method, handler in handlers.items():
            setattr(self, f"on_{method.lower()}", handler)
        if "GET" in handlers and "HEAD" not in handlers:
            self.on_head = handlers["GET"]  # Falcon sends no body for HEAD

    def access_for(self, method: str) -> Access | None:
        """The access rule of method (HEAD as GET); None for methods not served."""
        handler = self.handlers.get("GET" if method == "HEAD" else method)
        return handler.access if handler else None
