"""A real gateway exports its spans over OTLP/HTTP (issue 18): a small OTLP receiver on 127.0.0.1,
started by the test, decodes what the gateway's workers send (the collector's protobuf)."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import write_notebook
from gateway import Gateway, call_json, gateway_env
from messages import run_code, ws_url
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from websockets.sync.client import connect

CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{CLIENT_TRACE}-b7ad6b7169203331-01"


class Receiver(ThreadingHTTPServer):
    """POST /v1/traces: every span received, as (service name, span)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.spans: list[tuple[str, object]] = []
        self.paths: list[str] = []
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        self.server.paths.append(self.path)
        for resource_spans in request.resource_spans:
            service = next(a.value.string_value for a in resource_spans.resource.attributes if a.key == "service.name")
            for scope in resource_spans.scope_spans:
                self.server.spans.extend((service, span) for span in scope.spans)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    if server.thread.is_alive():
        server.close()


OTHER_TRACE = "5bf92f3577b34da6a3ce929d0e0e4737"
OTHER_TRACEPARENT = f"00-{OTHER_TRACE}-00f067aa0ba902b8-01"


def test_spans_reach_an_otlp_http_collector_and_the_cell_continues_the_trace(tmp_path, receiver):
    write_notebook(
        tmp_path / "traced.ipynb",
        ['# GET /traced\nimport json\nprint(json.loads(REQUEST)["headers"].get("Traceparent"))'],
    )
    manifest = tmp_path / "fngw.yaml"
    endpoint = f"http://127.0.0.1:{receiver.server_address[1]}"
    manifest.write_text(
        f"version: 1\nserver:\n  tracing:\n    endpoint: {endpoint}\n    service_name: scores\n"
        "notebooks:\n  traced: {path: traced.ipynb}\nkernel_api: {}\n"
    )
    gateway = Gateway(env=gateway_env(FNGW_MANIFEST=str(manifest), OTEL_BSP_SCHEDULE_DELAY="50"))
    try:
        gateway.wait_ready("/_fngw/ready", timeout=90)
        status, _, body = gateway.request("GET", "/traced", headers={"traceparent": TRACEPARENT})
        assert status == 200
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            names = {span.name for _, span in receiver.spans if span.trace_id.hex() == CLIENT_TRACE}
            if {"GET /traced", "pool.acquire", "kernel.execute", "response.render"} <= names:
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"spans received: {[s.name for _, s in receiver.spans]}\n{gateway.output}")
        spans = {span.name: span for service, span in receiver.spans if span.trace_id.hex() == CLIENT_TRACE}
        assert {service for service, _ in receiver.spans} == {"scores"}
        assert set(receiver.paths) == {"/v1/traces"}
        execute = spans["kernel.execute"]
        assert body.decode().strip() == f"00-{CLIENT_TRACE}-{execute.span_id.hex()}-01"
        assert execute.parent_span_id == spans["GET /traced"].span_id
        # The access log line names the trace.
        assert CLIENT_TRACE in gateway.output

        # The kernel API too: a REST call, and a websocket session as one span that lasts as long
        # as the connection (its upgrade request, answered 101).
        status, _, model = call_json(gateway, "POST", "/api/kernels", {}, {"traceparent": OTHER_TRACEPARENT})
        assert status == 201
        with connect(ws_url(gateway, model["id"]), additional_headers={"traceparent": OTHER_TRACEPARENT}) as ws:
            assert run_code(ws, "print('in the trace')")[0] == "in the trace\n"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            other = [span for _, span in receiver.spans if span.trace_id.hex() == OTHER_TRACE]
            if len(other) >= 2:
                break
            time.sleep(0.1)
        statuses = sorted(
            next(a.value.int_value for a in span.attributes if a.key == "http.response.status_code") for span in other
        )
        assert statuses == [101, 201], [(span.name, statuses) for span in other]

        # The collector goes away: the exporter's complaints are log lines in the gateway's
        # format (JSON here: not a terminal), and a stop is not held by its retries.
        receiver.close()
        for _ in range(3):
            assert gateway.request("GET", "/traced")[0] == 200
        time.sleep(1)
        stopping = time.monotonic()
        assert gateway.stop() == 0
        stopped_in = time.monotonic() - stopping
        assert stopped_in < 6, f"stopping took {stopped_in:.1f} s: {gateway.output[-3000:]}"
        assert "already shutdown" not in gateway.output  # the provider's second shutdown of the exporter
        for line in gateway.output.splitlines():
            if "opentelemetry" in line or "export" in line.lower():
                assert line.startswith("{") or line.startswith("[20"), line  # JSON, or gunicorn's own
    finally:
        gateway.stop()
