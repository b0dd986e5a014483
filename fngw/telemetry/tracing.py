"""OpenTelemetry traces: whether they are on, and the no-op stand-ins used when they are off.

Tracing is off unless the manifest's ``server.tracing`` turns it on or the OpenTelemetry SDK's own
variable ``OTEL_TRACES_EXPORTER`` names an exporter (``OTEL_SDK_DISABLED=true`` and
``server.tracing: false`` turn it off). When off, nothing of OpenTelemetry is imported: request
handling sees ``req.context.trace is None`` and every helper here returns at once. When on,
``fngw.telemetry.otel`` (imported only then) builds the SDK's tracer provider.

Span structure (docs/operations.md): one SERVER span per HTTP request (``GET /hello/{name}``,
kernel API calls and websocket sessions included), with children ``pool.acquire`` (the queue
wait), ``kernel.execute`` (``fngw.pool``, ``fngw.kernel.id``, ``jupyter.msg_id``) and
``response.render``. A client's W3C ``traceparent`` is the server span's parent; the cell sees the
``kernel.execute`` span's in ``REQUEST["headers"]``; a job's run is a new trace linked to the
request that submitted it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from fngw.manifest.model import TracingSettings

TRACE_HEADERS = ("traceparent", "tracestate")  # W3C Trace Context
EXPORTERS = ("otlp", "console", "none")
DEFAULT_SERVICE_NAME = "fngw"


class TracingUnavailable(RuntimeError):
    """Tracing is on, but the OpenTelemetry SDK is not installed (``pip install 'fngw[tracing]'``)
    or the configuration names an exporter it does not know."""


@dataclass(frozen=True)
class TracingConfig:
    """What the tracer provider is built from: ``exporters`` (of ``EXPORTERS``), the OTLP/HTTP
    ``endpoint`` (None: the exporter reads ``OTEL_EXPORTER_OTLP_*``), ``service_name``, and
    ``sample_ratio`` (None: the SDK reads ``OTEL_TRACES_SAMPLER``)."""

    exporters: tuple[str, ...]
    endpoint: str | None
    service_name: str
    sample_ratio: float | None


def tracing_config(settings: TracingSettings | None, environ: Mapping[str, str]) -> TracingConfig | None:
    """The tracing configuration of ``server.tracing`` and the ``OTEL_*`` environment, or None
    when tracing is off. ``TracingUnavailable`` for an exporter name fngw does not know."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if settings is not None and not settings.enabled:
        return None
    from_env = tuple(e.strip().lower() for e in environ.get("OTEL_TRACES_EXPORTER", "").split(",") if e.strip())
    if settings is None and (not from_env or from_env == ("none",)):
        return None
    exporters = (settings.exporter,) if settings is not None and settings.exporter else (from_env or ("otlp",))
    unknown = [e for e in exporters if e not in EXPORTERS]
    if unknown:
        source = "server.tracing.exporter" if settings is not None and settings.exporter else "OTEL_TRACES_EXPORTER"
        known = ", ".join(EXPORTERS)
        raise TracingUnavailable(f"unknown trace exporter {', '.join(unknown)} in {source} (fngw knows {known})")
    service = (settings.service_name if settings is not None else None) or environ.get("OTEL_SERVICE_NAME")
    return TracingConfig(
        exporters=tuple(e for e in exporters if e != "none"),
        endpoint=settings.endpoint if settings is not None else None,
        service_name=service or DEFAULT_SERVICE_NAME,
        sample_ratio=settings.sample_ratio if settings is not None else None,
    )


class Span(Protocol):
    """The part of an OpenTelemetry span fngw uses."""

    def set_attribute(self, key: str, value: Any) -> None:
        """Set one attribute."""


class RequestTrace(Protocol):
    """One request's server span and the way to its children (``fngw.telemetry.otel``)."""

    trace_id: str  # 32 lowercase hex digits

    def child(self, name: str, attributes: Mapping[str, Any] | None = None) -> contextlib.AbstractContextManager[Span]:
        """A child span of the request's span, current for the block."""

    def headers(self) -> dict[str, str]:
        """``traceparent`` (and ``tracestate``) of the innermost open span of this request."""


class Tracing(Protocol):
    """The tracer of one worker: starts request traces; flushed and stopped at exit."""

    def start_request(
        self, method: str, path: str, headers: Mapping[str, str], scheme: str, job_link: bool
    ) -> RequestTrace:
        """A SERVER span for a request (parent: ``headers``' traceparent, or, when ``job_link``,
        a new trace linked to it)."""

    def finish_request(self, trace: RequestTrace, route: str | None, status: int, error: str | None) -> None:
        """End the request's span, named after its route."""

    def shutdown(self) -> None:
        """Export what is buffered and stop."""


def start_tracing(config: TracingConfig) -> Tracing:
    """The SDK's tracer for ``config`` (imports OpenTelemetry now). ``TracingUnavailable`` when
    the SDK is not installed."""
    try:
        from .otel import SdkTracing
    except ImportError as exc:
        raise TracingUnavailable(
            f"tracing is on but the OpenTelemetry SDK is not installed ({exc.name}): pip install 'fngw[tracing]'"
        ) from None
    return SdkTracing(config)


_OFF = contextlib.nullcontext()  # reusable: tracing off costs one call and no allocation


def child_span(
    trace: RequestTrace | None, name: str, attributes: Mapping[str, Any] | None = None
) -> contextlib.AbstractContextManager[Any]:
    """``trace.child(name, attributes)``, or a block that does nothing (yields None) when off."""
    if trace is None:
        return _OFF
    return trace.child(name, attributes)


def trace_headers(trace: RequestTrace | None) -> dict[str, str]:
    """The W3C headers that continue ``trace`` from its innermost open span ({} when off)."""
    return trace.headers() if trace is not None else {}
