"""The fast tier of issue 11's inputs: the pieces that decide charsets, path decoding, form limits,
kernelspec names, error messages, launch timeouts and bounded websocket queues, without a server."""

from __future__ import annotations

import json
from pathlib import Path

import falcon
import falcon.testing
import pytest
from conftest import write_notebook

from fngw.endpoints.errors import RequestTooLarge
from fngw.endpoints.execution import Outcome
from fngw.endpoints.request import form_part_limit, parse_body
from fngw.endpoints.response import describe_failure, render, with_charset
from fngw.http import errors
from fngw.http.paths import RawPathRouting, decode_parameter, routing_path
from fngw.kernel_api.hubs import WebSocket
from fngw.kernel_api.registry import Invalid, KernelRegistry
from fngw.kernel_api.replay import ReplayBuffer
from fngw.kernel_api.start_options import launch_timeout
from fngw.kernels import ExecutionResult, match_kernelspec, output_prelude
from fngw.manifest import KernelApiSettings, load_manifest
from fngw.server.app import create_app

# --- charsets -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mime", "declared"),
    [
        ("text/plain", "text/plain; charset=utf-8"),
        ("text/csv", "text/csv; charset=utf-8"),
        ("image/svg+xml", "image/svg+xml; charset=utf-8"),
        ("application/json", "application/json"),  # RFC 8259: always UTF-8, no parameter
        ("image/png", "image/png"),
    ],
)
def test_text_types_fngw_chooses_declare_utf8(mime, declared):
    assert with_charset(mime) == declared


def rendered(stdout: str = "", outputs=(), info: str | None = None, accept: str | None = None):
    req = falcon.testing.create_req(headers={"Accept": accept} if accept else {})
    resp = falcon.Response()
    cell = ExecutionResult(stdout=stdout, outputs=list(outputs))
    render(req, resp, Outcome(cell=cell, response_info_stdout=info, outputs=list(outputs)), tracebacks=False)
    return resp


def test_the_default_body_type_declares_utf8_and_a_responseinfo_type_is_sent_as_set():
    assert rendered("naïve").content_type == "text/plain; charset=utf-8"
    assert rendered("<b>", info=json.dumps({"headers": {"Content-Type": "text/html"}})).content_type == "text/html"
    csv = [{"type": "display_data", "data": {"text/csv": "a,b\n"}, "metadata": {}}]
    picked = rendered(outputs=csv, accept="text/csv")
    assert (picked.content_type, picked.data) == ("text/csv; charset=utf-8", b"a,b\n")


# --- path decoding --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "path"),
    [
        ("/files/a%2Fb", "/files/a%2Fb"),
        ("/files/a%2fb/meta?x=%2F", "/files/a%2Fb/meta"),
        ("/hell%6F", "/hello"),
        ("/a%25b", "/a%25b"),
        ("http://example.org/x%2Fy", "/x%2Fy"),
    ],
)
def test_routing_paths_keep_only_slashes_and_percents_encoded(target, path):
    assert routing_path(target) == path


@pytest.mark.parametrize("text", ["a/b", "100%", "%2F", "%/", "a%252F", "plain", "é/%25"])
def test_a_parameter_decodes_back_to_its_text(text):
    segment = routing_path("/" + text.replace("%", "%25").replace("/", "%2F"))[1:]
    assert decode_parameter(segment) == text


def test_falcon_routes_on_the_raw_path_and_decodes_parameters():
    class Echo:
        def __init__(self, route):
            self.route = route

        def on_get(self, req, resp, name):
            resp.media = {"route": self.route, "name": name}

    app = falcon.App(middleware=[RawPathRouting()])
    app.add_route("/files/{name}", Echo("name"))
    app.add_route("/files/{name}/meta", Echo("meta"))
    client = falcon.testing.TestClient(app)
    assert client.simulate_get("/files/a%2Fb").json == {"route": "name", "name": "a/b"}
    assert client.simulate_get("/files/a%2Fb/meta").json == {"route": "meta", "name": "a/b"}
    assert client.simulate_get("/files/notes%2Fmeta").json == {"route": "name", "name": "notes/meta"}


# --- forms ----------------------------------------------------------------------------------------


def form(parts: int, size: int = 1) -> tuple[falcon.Request, bytes]:
    body = b"".join(
        b'--B\r\nContent-Disposition: form-data; name="f%d"\r\n\r\n' % i + b"v" * size + b"\r\n" for i in range(parts)
    )
    body += b"--B--\r\n"
    req = falcon.testing.create_req(headers={"Content-Type": "multipart/form-data; boundary=B"}, body=body)
    return req, body


def test_form_limits_follow_max_body():
    assert form_part_limit(10_000_000) == 9765
    assert form_part_limit(100_000) == 1000
    req, body = form(80, 2 * 1024 * 1024 // 80)  # 80 fields, 2 MiB: past Falcon's 64 parts and 1 MiB
    fields = parse_body(req, body, 20_000_000)
    assert len(fields) == 80
    req, body = form(1001)
    with pytest.raises(RequestTooLarge, match="more than 1000 parts"):  # a 413 (fngw.server.error_map)
        parse_body(req, body, 100_000)


# --- kernelspec names -----------------------------------------------------------------------------


def test_kernelspec_names_match_ignoring_case():
    assert match_kernelspec("Python3", ["python3", "ir"]) == "python3"
    assert match_kernelspec("IR", ["python3", "ir"]) == "ir"
    assert match_kernelspec("julia", ["python3"]) is None


def test_a_notebook_naming_python3_in_any_case_validates(tmp_path):
    write_notebook(tmp_path / "nb.ipynb", ["# GET /x\nprint(1)"], kernelspec="Python3")
    (tmp_path / "fngw.yaml").write_text(
        "version: 1\nnotebooks:\n  nb: {path: nb.ipynb}\n"
        "kernel_api: {allowed_kernels: [Python3], default_kernel: PYTHON3}\n"
    )
    from fngw.deployment import check_deployment

    result = check_deployment(tmp_path / "fngw.yaml")
    assert [p for p in result.problems if p.severity == "error"] == []


def registry(tmp_path: Path, **settings) -> KernelRegistry:
    return KernelRegistry(KernelApiSettings(**settings), runtime_dir=tmp_path)


def test_the_kernel_api_resolves_names_ignoring_case_and_lists_them_when_unknown(tmp_path):
    api = registry(tmp_path, allowed_kernels=("Python3",))
    assert api.kernelspecs.names() == ["python3"]
    assert api.kernelspecs.installed_name("PYTHON3") == "python3"
    with pytest.raises(Exception, match=r"available: python3"):
        api.kernelspecs.installed_name("julia")


# --- launch timeouts ------------------------------------------------------------------------------


def test_the_clients_launch_timeout_is_capped_by_the_manifest():
    assert launch_timeout({}, 30.0)[0] == 30.0
    assert launch_timeout({"KERNEL_LAUNCH_TIMEOUT": "3"}, 30.0)[0] == 3.0
    assert launch_timeout({"KERNEL_LAUNCH_TIMEOUT": "300"}, 30.0)[0] == 30.0
    for bad in ("soon", "0", "-1", "nan", "inf"):
        with pytest.raises(Invalid):
            launch_timeout({"KERNEL_LAUNCH_TIMEOUT": bad}, 30.0)


# --- error messages -------------------------------------------------------------------------------


def test_failures_are_named_even_without_an_error_name():
    assert "exit code 3" in describe_failure("SystemExit", "3")
    assert "exit code 0" in describe_failure("SystemExit", "")
    assert describe_failure("", "127") == (
        "the cell failed: the kernel reported '127' (no error name; shell kernels report the exit status)"
    )
    assert describe_failure("ValueError", "bad") == "the cell raised ValueError: bad"


def test_create_app_refuses_colliding_routes(tmp_path):
    write_notebook(tmp_path / "a.ipynb", ["# GET /x/:id\nprint(1)", "# GET /x/:name\nprint(2)"])
    (tmp_path / "fngw.yaml").write_text("version: 1\nnotebooks:\n  a: {path: a.ipynb, mount: /}\n")
    with pytest.raises(ValueError, match="collides"):
        create_app(load_manifest(tmp_path / "fngw.yaml").manifest)


# --- bounded queues -------------------------------------------------------------------------------


def stream(text: str) -> dict:
    return {"header": {"msg_id": "m", "msg_type": "stream"}, "content": {"name": "stdout", "text": text}}


def test_a_replay_buffer_drops_the_oldest_past_its_size():
    buffer = ReplayBuffer(max_bytes=10_000)
    for i in range(10):
        buffer.append("iopub", stream(str(i) * 2000))
    kept = [msg["content"]["text"][0] for _, msg in buffer]
    assert kept == ["7", "8", "9"] and buffer.dropped == 7


class StalledSocket:
    def __init__(self):
        self.shut = False

    def setsockopt(self, *args):
        pass

    def shutdown(self, how):
        self.shut = True


def test_a_websocket_that_falls_behind_is_dropped_with_1008_and_forgets_its_queue():
    ws = WebSocket(StalledSocket(), "s", v1=False, max_queue=100_000)
    ws.send("iopub", stream("x" * 500_000))  # one message alone always fits
    assert ws.queued > 100_000 and not ws.closed
    ws.send("iopub", stream("y"))
    assert ws.closed and ws.queued == 0
    (close,) = [ws.outbox.get_nowait() for _ in range(ws.outbox.qsize())]
    assert close.code == 1008


# --- the kernel prelude ---------------------------------------------------------------------------


def test_python_kernels_get_a_prelude_and_other_languages_none():
    prelude = output_prelude("python", isolate=True)
    assert prelude is not None and "_fngw_output(isolate=True)" in prelude
    compile(prelude, "prelude", "exec")
    assert output_prelude("R", isolate=True) is None


@pytest.mark.parametrize(
    ("kernel_id", "path"), [("../../outside", None), (".hidden", None), ("a/b", None), ("k", "a\0b")]
)
def test_client_kernel_ids_and_paths_that_name_no_safe_file_are_400(tmp_path, kernel_id, path):
    with pytest.raises(Invalid):
        registry(tmp_path).start_kernel(kernel_id=kernel_id, path=path)
    assert list(tmp_path.iterdir()) == []  # nothing reserved, nothing started


def test_replay_keeps_replies_over_output():
    buffer = ReplayBuffer(max_bytes=10_000)
    reply = {"header": {"msg_id": "r", "msg_type": "execute_reply"}, "content": {"status": "ok"}}
    buffer.append("shell", reply)
    for i in range(10):
        buffer.append("iopub", stream(str(i) * 2000))
    assert ("shell", reply) in list(buffer)


def test_a_dropped_websocket_keeps_its_unsent_replies_for_the_replay():
    ws = WebSocket(StalledSocket(), "s", v1=False, max_queue=100_000)
    reply = {"header": {"msg_id": "r", "msg_type": "execute_reply"}, "parent_header": {}, "content": {}}
    ws.send("iopub", stream("x" * 50_000))
    ws.send("shell", reply)
    ws.send("iopub", stream("y" * 80_000))  # past max_queue: dropped
    assert ws.closed and ws.unsent_replies == [("shell", reply)]


def test_paths_that_are_not_utf8_are_400_and_empty_parameters_404():
    class Echo:
        def on_get(self, req, resp, name):
            resp.media = {"name": name}

    app = falcon.App(middleware=[RawPathRouting()])
    errors.install(app)
    app.add_route("/files/{name}", Echo())
    client = falcon.testing.TestClient(app)
    assert client.simulate_get("/files/%FF").status_code == 400
    assert client.simulate_get("/files/").status_code in (404, 405)  # no name: no route
    assert client.simulate_get("/files/caf%C3%A9").json == {"name": "café"}


def test_text_logs_escape_control_characters():
    import io
    import logging

    from fngw.telemetry.logs import configure

    out = io.StringIO()
    configure("text", out)
    try:
        logging.getLogger("fngw.access").info("GET %s", "/a\r\nX: forged\x00", extra={"fields": {"path": "/a\r\n"}})
    finally:
        configure("json")
    assert out.getvalue().count("\n") == 1 and "\\x0d\\x0aX: forged\\x00" in out.getvalue()
