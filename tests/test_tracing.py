"""OpenTelemetry traces (issue 18), in the fast tier: spans collected with the SDK's in-memory
exporter from an application on in-memory kernels. The OTLP/HTTP export of a real gateway to a
receiver on 127.0.0.1 is in tests/test_tracing_export.py."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import falcon.testing
import gevent
import pytest
from conftest import REPO
from fakes import FakePools
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from fngw.deployment import check_deployment
from fngw.jobs import SqliteJobStore
from fngw.manifest.model import TracingSettings
from fngw.server.app import create_app
from fngw.telemetry.otel import SdkTracing
from fngw.telemetry.tracing import TracingConfig, TracingUnavailable, tracing_config

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"


@pytest.fixture
def traced(tmp_path, monkeypatch):
    monkeypatch.setenv("FNGWTEST_OPS_TOKEN", "ops-secret")
    monkeypatch.setenv("FNGWTEST_PARTNER_TOKEN", "partner-secret")
    deployment = check_deployment(REPO / "tests" / "notebooks" / "fngw.yaml", offline=True).deployment
    assert deployment is not None
    exporter = InMemorySpanExporter()
    tracing = SdkTracing(TracingConfig((), None, "fngw-test", None), exporters=[exporter])
    store = SqliteJobStore(tmp_path / "jobs.db")
    app = create_app(deployment.manifest, deployment.plan, FakePools(deployment.plan), job_store=store, tracing=tracing)
    app.runner.start()
    yield falcon.testing.TestClient(app), exporter
    app.close()


def by_name(exporter) -> dict:
    return {span.name: span for span in exporter.get_finished_spans()}


def test_a_request_is_a_server_span_with_queue_execution_and_render_children(traced, caplog):
    client, exporter = traced
    with caplog.at_level(logging.INFO, logger="fngw.access"):
        result = client.simulate_get("/request", headers={"traceparent": TRACEPARENT})
    assert result.status_code == 200
    spans = by_name(exporter)
    server = spans["GET /request"]
    assert server.kind == SpanKind.SERVER
    assert format(server.context.trace_id, "032x") == CLIENT_TRACE  # the client's trace goes on
    assert format(server.parent.span_id, "016x") == CLIENT_SPAN
    assert server.attributes["http.request.method"] == "GET"
    assert server.attributes["http.route"] == "/request"
    assert server.attributes["url.path"] == "/request"
    assert server.attributes["http.response.status_code"] == 200
    assert server.resource.attributes["service.name"] == "fngw-test"
    children = [spans["pool.acquire"], spans["kernel.execute"], spans["response.render"]]
    assert [c.parent.span_id for c in children] == [server.context.span_id] * 3
    assert [c.context.trace_id for c in children] == [server.context.trace_id] * 3
    execute = spans["kernel.execute"]
    assert execute.attributes["fngw.pool"] and execute.attributes["fngw.kernel.id"]
    assert "jupyter.msg_id" in execute.attributes
    assert spans["pool.acquire"].attributes["fngw.pool"] == execute.attributes["fngw.pool"]
    # The cell sees the execution span's traceparent in REQUEST, not the client's.
    headers = json.loads(result.text)["headers"]
    assert headers["Traceparent"] == f"00-{CLIENT_TRACE}-{format(execute.context.span_id, '016x')}-01"
    assert CLIENT_SPAN not in json.dumps(headers)
    # The access log line carries the trace id beside the request id.
    fields = [r.fields for r in caplog.records if getattr(r, "fields", {}).get("path") == "/request"][-1]
    assert fields["trace_id"] == CLIENT_TRACE and fields["request_id"] == result.headers["x-request-id"]


def test_without_traceparent_a_new_trace_starts_and_5xx_is_an_error(traced):
    client, exporter = traced
    assert client.simulate_get("/error").status_code == 500
    server = by_name(exporter)["GET /error"]
    assert server.parent is None
    assert server.status.status_code == StatusCode.ERROR
    assert server.attributes["http.response.status_code"] == 500
    exporter.clear()
    assert client.simulate_get("/no/such/path").status_code == 404  # a client error is not the server's
    server = by_name(exporter)["GET"]
    assert server.status.status_code == StatusCode.UNSET


def test_a_job_run_is_its_own_trace_linked_to_the_request_that_submitted_it(traced):
    client, exporter = traced
    accepted = client.simulate_get("/hello", headers={"Prefer": "respond-async", "traceparent": TRACEPARENT})
    assert accepted.status_code == 202
    for _ in range(200):
        if client.simulate_get(accepted.json["href"]).json["status"] == "succeeded":
            break
        gevent.sleep(0.02)
    submitted = next(s for s in exporter.get_finished_spans() if s.name == "GET /hello" and s.parent is not None)
    run = next(s for s in exporter.get_finished_spans() if s.name == "GET /hello" and s.parent is None)
    assert format(submitted.context.trace_id, "032x") == CLIENT_TRACE
    assert run.context.trace_id != submitted.context.trace_id
    assert [link.context.span_id for link in run.links] == [submitted.context.span_id]


def test_kernel_api_and_gateway_routes_get_spans_too(traced):
    client, exporter = traced
    client.simulate_get("/_fngw/health")
    assert "GET /_fngw/health" in by_name(exporter)


@pytest.mark.parametrize(
    ("settings", "environ", "expected"),
    [
        (None, {}, None),  # off by default
        (None, {"OTEL_TRACES_EXPORTER": "none"}, None),
        (None, {"OTEL_TRACES_EXPORTER": "otlp"}, TracingConfig(("otlp",), None, "fngw", None)),
        (None, {"OTEL_TRACES_EXPORTER": "otlp,console", "OTEL_SERVICE_NAME": "scores"}, ("otlp", "console")),
        (TracingSettings(enabled=True), {}, TracingConfig(("otlp",), None, "fngw", None)),
        (TracingSettings(enabled=False), {"OTEL_TRACES_EXPORTER": "otlp"}, None),
        (TracingSettings(enabled=True), {"OTEL_SDK_DISABLED": "true"}, None),
        (
            TracingSettings(exporter="console", service_name="scores", sample_ratio=0.5),
            {"OTEL_SERVICE_NAME": "other"},
            TracingConfig(("console",), None, "scores", 0.5),
        ),
        (TracingSettings(exporter="none"), {}, TracingConfig((), None, "fngw", None)),  # spans, no export
    ],
)
def test_tracing_is_on_as_the_manifest_and_the_otel_variables_say(settings, environ, expected):
    config = tracing_config(settings, environ)
    if isinstance(expected, tuple):
        assert config is not None and config.exporters == expected and config.service_name == "scores"
    else:
        assert config == expected


def test_an_unknown_exporter_is_refused_clearly():
    with pytest.raises(TracingUnavailable, match="unknown trace exporter zipkin in OTEL_TRACES_EXPORTER"):
        tracing_config(None, {"OTEL_TRACES_EXPORTER": "zipkin"})


def test_nothing_of_opentelemetry_is_imported_when_tracing_is_off():
    code = (
        "import sys\n"
        "from fngw.deployment import check_deployment\n"
        "from fngw.server.app import create_app\n"
        "from fngw.server.gateway import build_gateway\n"
        "from fngw.telemetry.tracing import tracing_config\n"
        f"d = check_deployment({str(REPO / 'config' / 'fngw.yaml')!r}, offline=True).deployment\n"
        "assert tracing_config(d.manifest.server.tracing, {}) is None\n"
        "create_app(d.manifest, d.plan)\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_a_stop_with_the_otlp_exporter_logs_no_warning(caplog):
    # fngw shuts the exporters down before the provider does (to cut retries short); the OTLP
    # exporter warns when shut down twice, which says nothing to an operator.
    tracing = SdkTracing(TracingConfig(("otlp",), "http://127.0.0.1:9", "fngw-test", None))
    with caplog.at_level(logging.WARNING):
        tracing.shutdown()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
