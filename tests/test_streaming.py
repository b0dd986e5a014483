"""Streamed responses through a real gunicorn and real kernels (Python and bash): output reaches the
client while the cell runs, as plain text, server-sent events (read by a real SSE client) and
NDJSON; limits (timeout, idle), clients that leave or read slowly, HTTP/1.0, logs and metrics."""

from __future__ import annotations

import http.client
import json
import re
import socket
import sys
import time

import httpx
import pytest
from conftest import REPO
from gateway import Gateway, children_of, gateway_env
from httpx_sse import connect_sse

SERVICE = REPO / "tests" / "streaming" / "fngw.yaml"


@pytest.fixture(scope="module")
def markers(tmp_path_factory):
    return tmp_path_factory.mktemp("markers")


@pytest.fixture(scope="module")
def gw(tmp_path_factory, markers):
    # A real bash kernel (bash_kernel, from the test extra), installed for this gateway alone.
    jupyter = tmp_path_factory.mktemp("jupyter")
    spec = jupyter / "kernels" / "bash"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "bash_kernel", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "Bash", "language": "bash"}))
    env = gateway_env(FNGW_MANIFEST=str(SERVICE), FNGWTEST_MARKERS=str(markers), JUPYTER_PATH=str(jupyter))
    gateway = Gateway(env=env)
    try:
        gateway.wait_ready("/_fngw/ready", timeout=120)
        yield gateway
    finally:
        gateway.stop()


def timed_lines(gw, path: str, headers: dict | None = None) -> tuple[http.client.HTTPResponse, list[tuple[float, str]]]:
    """The response and each line of its body with the seconds since the request when it arrived."""
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
    started = time.monotonic()
    conn.request("GET", path, headers=headers or {})
    response = conn.getresponse()
    lines = []
    while line := response.readline():
        lines.append((time.monotonic() - started, line.decode()))
    conn.close()
    return response, lines


def test_plain_text_arrives_while_the_cell_runs(gw):
    response, lines = timed_lines(gw, "/progress")
    assert response.status == 200
    assert response.getheader("Transfer-Encoding") == "chunked"
    assert (response.getheader("X-Accel-Buffering"), response.getheader("Cache-Control")) == ("no", "no-cache")
    assert [text for _, text in lines] == [f"step {i}\n" for i in range(5)] + ["done\n"]
    first, last = lines[0][0], lines[-1][0]
    assert last - first > 1.0  # five lines 300 ms apart: the first was read long before the last was printed


def test_server_sent_events_read_by_a_real_sse_client(gw):
    with httpx.Client(base_url=f"http://127.0.0.1:{gw.port}", timeout=30) as client:
        with connect_sse(client, "GET", "/progress") as source:
            assert source.response.headers["content-type"] == "text/event-stream; charset=utf-8"
            events = list(source.iter_sse())
        assert [e.event for e in events] == ["stdout"] * 6 + ["end"]
        assert "".join(e.data for e in events[:-1]) == "".join(f"step {i}\n" for i in range(5)) + "done\n"
        assert [int(e.id) for e in events] == list(range(1, 8))
        assert json.loads(events[-1].data)["status"] == 200
        with connect_sse(client, "GET", "/fails") as source:
            failed = list(source.iter_sse())
        assert [e.event for e in failed] == ["stdout", "error", "end"]
        assert json.loads(failed[1].data)["ename"] == "ValueError" and "traceback" not in json.loads(failed[1].data)
        assert json.loads(failed[2].data)["status"] == 500
        with connect_sse(client, "GET", "/display") as source:  # any endpoint streams when asked
            shown = {e.event: e.data for e in source.iter_sse()}
        assert json.loads(shown["display"])["text/html"] == "<b>hi</b>" and shown["stderr"] == "careful\n"


def test_ndjson_carries_the_same_events(gw):
    response, lines = timed_lines(gw, "/fails", {"Accept": "application/x-ndjson"})
    assert response.getheader("Content-Type") == "application/x-ndjson"
    events = [json.loads(text) for _, text in lines]
    assert [(e["id"], e["event"]) for e in events] == [(1, "stdout"), (2, "error"), (3, "end")]
    assert events[0]["data"] == "before\n" and events[2]["data"]["status"] == 500


def test_a_cell_that_ends_before_printing_gets_its_buffered_answer(gw):
    status, headers, body = gw.request("GET", "/silent")
    assert (status, headers["x-silent"], headers["content-length"], body) == (202, "yes", "0", b"")
    status, _, body = gw.request("GET", "/fails-early")
    assert status == 500 and json.loads(body)["ename"] == "ValueError"


def test_the_idle_limit_ends_the_stream_and_the_kernel_serves_the_next_request(gw):
    started = time.monotonic()
    response, lines = timed_lines(gw, "/quiet", {"Accept": "application/x-ndjson"})
    events = [json.loads(text) for _, text in lines]
    assert [e["event"] for e in events] == ["stdout", "error", "end"]
    assert events[1]["data"]["ename"] == "Idle" and events[2]["data"]["status"] == 504
    assert time.monotonic() - started < 4  # not the cell's 5 s
    assert gw.request("GET", "/silent")[0] == 202


def test_the_timeout_bounds_the_whole_stream(gw):
    started = time.monotonic()
    response, lines = timed_lines(gw, "/forever", {"Accept": "application/x-ndjson"})
    events = [json.loads(text) for _, text in lines]
    assert events[0]["data"] == "tick\n" and events[-2]["data"]["ename"] == "Timeout"
    assert events[-1]["data"]["status"] == 504
    assert time.monotonic() - started < 4


def test_a_client_that_leaves_interrupts_the_cell_and_frees_the_kernel(gw, markers):
    with socket.create_connection(("127.0.0.1", gw.port)) as sock:
        sock.sendall(b"GET /solo/marker/left HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while b"started" not in received:
            received += sock.recv(4096)
    left = time.monotonic()
    status, _, _ = gw.request("GET", "/solo/silent")  # the same pool of one kernel
    assert status == 202 and time.monotonic() - left < 1.5  # not after the abandoned cell's 3 s
    time.sleep(3.5)  # past the moment the abandoned cell would have written its marker
    assert not (markers / "left").exists()
    metrics = gw.request("GET", "/_fngw/metrics")[2].decode()
    assert 'fngw_stream_disconnects_total{method="GET",mode="plain",route="/solo/marker/{name}"} 1.0' in metrics


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def test_slow_readers_cost_a_bounded_buffer(gw):
    (worker,) = children_of(gw.proc.pid)
    before = rss_kib(worker)
    readers = []
    for _ in range(2):  # the pool's two kernels, each printing 50 MB to a client that barely reads
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", gw.port))
        sock.sendall(b"GET /flood HTTP/1.1\r\nHost: x\r\n\r\n")
        readers.append(sock)
    peak = before
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        for sock in readers:
            sock.recv(1024)
        peak = max(peak, rss_kib(worker))
        time.sleep(0.1)  # a slow reader: 10 KiB a second
    for sock in readers:
        sock.close()
    assert peak - before < 40 * 1024, f"the worker grew by {peak - before} KiB for 100 MB of output"
    # A reader that keeps up gets it all, or is told exactly what it missed.
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=60)
    conn.request("GET", "/flood")
    body = conn.getresponse().read().decode()
    conn.close()
    marker = re.compile(r"\n\[fngw: (\d+) bytes of output dropped: the client read too slowly\]\n")
    dropped = sum(int(n) for n in marker.findall(body))
    assert body.endswith("end of flood\n")
    assert len(marker.sub("", body)) + dropped == 50 * 1024 * 1024 + len("end of flood\n")


def test_http_1_0_clients_get_the_buffered_response(gw):
    with socket.create_connection(("127.0.0.1", gw.port)) as sock:
        sock.sendall(b"GET /progress HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"Content-Length: 40" in head.replace(b"content-length", b"Content-Length")
    assert b"Transfer-Encoding" not in head and body.decode().startswith("step 0\n")


def test_a_bash_kernel_streams_too(gw):
    response, lines = timed_lines(gw, "/bash/count")
    assert [text for _, text in lines] == ["line 1\n", "line 2\n", "line 3\n"]
    assert lines[-1][0] - lines[0][0] > 0.4


def test_only_the_requests_own_output_reaches_its_stream(gw):
    assert gw.request("GET", "/solo/spawn")[0] == 200  # a thread that prints for a second
    response, lines = timed_lines(gw, "/solo/marker/isolated", {"Accept": "application/x-ndjson"})
    events = [json.loads(text) for _, text in lines]
    assert [e["data"] for e in events if e["event"] == "stdout"] == ["started\n", "finished\n"]


def test_streams_are_logged_and_counted(gw):
    gw.request("GET", "/progress")
    lines = [json.loads(line) for line in gw.output.splitlines() if line.startswith("{") and '"stream"' in line]
    progress = [f for f in lines if f.get("path") == "/progress" and f.get("stream") == "plain"]
    assert progress and progress[-1]["bytes"] == 40 and progress[-1]["first_byte_ms"] < 500
    assert progress[-1]["duration_ms"] > 1000
    metrics = gw.request("GET", "/_fngw/metrics")[2].decode()
    assert 'fngw_stream_first_byte_seconds_count{method="GET",mode="plain",route="/progress"}' in metrics


def test_the_openapi_document_says_how_endpoints_stream(gw):
    from openapi_spec_validator import validate

    doc = json.loads(gw.request("GET", "/_fngw/openapi.json")[2])
    validate(doc)
    progress = doc["paths"]["/progress"]["get"]["responses"]["200"]
    assert progress["x-fngw-stream"]["plain"] is True
    assert set(progress["content"]) >= {"text/plain", "text/event-stream", "application/x-ndjson"}
    assert doc["paths"]["/silent"]["get"]["responses"]["200"]["x-fngw-stream"]["plain"] is True
    assert doc["paths"]["/forever"]["get"]["responses"]["200"]["x-fngw-stream"]["plain"] is False
    assert "stdout" in doc["components"]["schemas"]["StreamEvent"]["properties"]["event"]["enum"]


def test_a_client_that_leaves_at_once_still_interrupts_the_cell(gw, markers):
    with socket.create_connection(("127.0.0.1", gw.port)) as sock:
        sock.sendall(b"GET /solo/marker/gone-at-once HTTP/1.1\r\nHost: x\r\n\r\n")
    left = time.monotonic()  # closed before the cell began: the first interrupt may land too early
    try:
        status = gw.request("GET", "/solo/silent")[0]
    except TimeoutError:
        try:
            health = gw.request("GET", "/_fngw/health", timeout=2)[0]
        except OSError as exc:
            health = repr(exc)
        since = gw.output[gw.output.index("gone-at-once") - 200 :][:6000]
        raise AssertionError(f"health: {health}\n{since}") from None
    assert status == 202
    assert time.monotonic() - left < 2.5  # the abandoned cell sleeps 3 s
    time.sleep(3.5)
    assert not (markers / "gone-at-once").exists()


def test_the_idle_limit_applies_before_the_first_byte_of_a_plain_stream(gw):
    started = time.monotonic()
    status, _, body = gw.request("GET", "/late")  # silent for 3 s, stream.idle 1 s
    assert status == 504 and "did not finish" in json.loads(body)["message"]
    assert time.monotonic() - started < 2.5


def test_the_timeout_covers_the_response_info_cell_too(gw):
    response, lines = timed_lines(gw, "/twohalves", {"Accept": "application/x-ndjson"})
    end = json.loads(lines[-1][1])
    assert end["event"] == "end" and end["data"]["status"] == 504  # as the buffered call: 0.8 + 0.8 s > 1 s


def test_a_client_that_stops_reading_is_cut_off_and_its_cell_interrupted(gw):
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", gw.port))
    sock.sendall(b"GET /solo/flood HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
    time.sleep(3)  # reading nothing while the cell prints 50 MB
    sock.settimeout(30)
    data = b""
    while not re.search(rb"event: end\ndata: [^\n]*\n\n", data):  # the whole end event, not its first bytes
        chunk = sock.recv(1 << 20)
        assert chunk, "the stream closed without an end event"
        data += chunk
    sock.close()
    assert b"event: dropped" in data and b'"ename": "SlowClient"' in data and b'"status": 502' in data
    assert gw.request("GET", "/solo/silent")[0] == 202  # the flood was interrupted: the kernel is free


def test_carriage_returns_reach_an_sse_client_as_line_breaks(gw):
    with (
        httpx.Client(base_url=f"http://127.0.0.1:{gw.port}", timeout=30) as client,
        connect_sse(client, "GET", "/progressbar") as source,
    ):
        text = "".join(e.data for e in source.iter_sse() if e.event == "stdout")
    assert text.split() == ["0%", "50%", "100%"]  # each "\r" a line break, nothing lost


def test_stream_types_in_any_case_and_head_requests(gw):
    response, lines = timed_lines(gw, "/fails", {"Accept": "TEXT/EVENT-STREAM"})
    assert response.getheader("Content-Type") == "text/event-stream; charset=utf-8"
    status, headers, body = gw.request("HEAD", "/progress")
    assert (status, body) == (200, b"") and headers["content-length"] == "40"  # the buffered answer's headers
