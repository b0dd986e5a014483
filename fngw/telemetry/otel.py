"""The OpenTelemetry SDK behind ``fngw.telemetry.tracing`` (imported only when tracing is on).

Spans are made with explicit parents, not through the ambient context: a gevent worker serves many
requests at once, and the request's own ``RequestTrace`` says which span is whose. Export is the
SDK's ``BatchSpanProcessor`` (its thread is a greenlet in a patched worker), so a request never
waits on the collector.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import gevent
from opentelemetry import propagate
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, get_current_span, set_span_in_context

from fngw import __version__

from .tracing import TracingConfig

INSTRUMENTATION = "fngw"
FLUSH_SECONDS = 1.0  # what a stopping worker gives its last spans


def _exporter(name: str, endpoint: str | None) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    # Given here, the endpoint is the collector's base URL, as OTEL_EXPORTER_OTLP_ENDPOINT is;
    # without it the exporter reads the OTEL_EXPORTER_OTLP_* variables itself.
    return OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces") if endpoint else OTLPSpanExporter()


class SdkRequestTrace:
    """One request's SERVER span, and a stack of its open children (``headers`` continues the
    innermost)."""

    def __init__(self, tracer: Any, span: Span, method: str):
        self._tracer = tracer
        self.span = span
        self.method = method
        self._open: list[Span] = [span]
        self.trace_id = format(span.get_span_context().trace_id, "032x")

    @contextlib.contextmanager
    def child(self, name: str, attributes: Mapping[str, Any] | None = None) -> Iterator[Span]:
        """A child span of the innermost open one, ended (with any exception recorded) on exit."""
        parent = set_span_in_context(self._open[-1])
        with self._tracer.start_as_current_span(name, context=parent, attributes=attributes) as span:
            self._open.append(span)
            try:
                yield span
            finally:
                self._open.remove(span)

    def headers(self) -> dict[str, str]:
        """``traceparent`` (and ``tracestate``) naming the innermost open span."""
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=set_span_in_context(self._open[-1]))
        return carrier


class SdkTracing:
    """A tracer provider for ``config``; ``exporters`` replaces the configured ones (tests: the
    SDK's in-memory exporter, exported as each span ends)."""

    def __init__(self, config: TracingConfig, exporters: Sequence[SpanExporter] | None = None):
        resource = Resource.create({"service.name": config.service_name, "service.version": __version__})
        sampler = ParentBased(TraceIdRatioBased(config.sample_ratio)) if config.sample_ratio is not None else None
        # Not at exit: ``shutdown`` (from the application's close) bounds the wait; the SDK's own
        # atexit hook would wait for every retry of an unreachable collector.
        self.provider = TracerProvider(resource=resource, sampler=sampler, shutdown_on_exit=False)
        self._exporters: list[SpanExporter] = []
        if exporters is not None:
            for exporter in exporters:
                self.provider.add_span_processor(SimpleSpanProcessor(exporter))
        else:
            for name in config.exporters:
                exporter = _exporter(name, config.endpoint)
                self._exporters.append(exporter)
                self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer(INSTRUMENTATION, __version__)

    def start_request(
        self, method: str, path: str, headers: Mapping[str, str], scheme: str, job_link: bool
    ) -> SdkRequestTrace:
        """The SERVER span of a request; its parent is the client's ``traceparent``, except for a
        job's run, which starts a trace of its own linked to the request that submitted it."""
        carrier = {name.lower(): value for name, value in headers.items()}
        remote = propagate.extract(carrier)
        links: list[Link] = []
        if job_link:
            submitted = get_current_span(remote).get_span_context()
            links = [Link(submitted)] if submitted.is_valid else []
            remote = Context()
        attributes = {"http.request.method": method, "url.path": path, "url.scheme": scheme}
        span = self.tracer.start_span(method, context=remote, kind=SpanKind.SERVER, attributes=attributes, links=links)
        return SdkRequestTrace(self.tracer, span, method)

    def finish_request(self, trace: Any, route: str | None, status: int, error: str | None) -> None:
        """Name the span ``{method} {route}``, set the status code (5xx is an error on a server
        span, 4xx is not) and end it."""
        span: Span = trace.span
        if route is not None:
            span.update_name(f"{trace.method} {route}")
            span.set_attribute("http.route", route)
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_attribute("error.type", str(status))
            span.set_status(Status(StatusCode.ERROR, error))
        span.end()

    def shutdown(self) -> None:
        """Export what the batch processors hold, then stop, waiting at most ``FLUSH_SECONDS``:
        an unreachable collector must not hold a stopping worker near the platform's kill (the
        exporters' retries take 10 s and more). What is not exported by then is dropped."""
        stopping = gevent.spawn(self._flush_and_stop)
        stopping.join(timeout=FLUSH_SECONDS)

    def _flush_and_stop(self) -> None:
        self.provider.force_flush(timeout_millis=int(FLUSH_SECONDS * 1000))
        # Exporters first: that cuts short the retries of an export under way. The provider then
        # shuts each down again, which the OTLP exporter answers with a warning worth nothing.
        for exporter in self._exporters:
            exporter.shutdown()
        loggers = [logging.getLogger(type(exporter).__module__) for exporter in self._exporters]
        for logger in loggers:
            logger.addFilter(_second_shutdown)
        try:
            self.provider.shutdown()
        finally:
            for logger in loggers:
                logger.removeFilter(_second_shutdown)


def _second_shutdown(record: logging.LogRecord) -> bool:
    """False for the OTLP exporter's "already shutdown" warning (see ``_flush_and_stop``)."""
    return "already shutdown" not in record.getMessage()
