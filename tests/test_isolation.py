"""Each response holds only its own request's output, and the inputs people really send work.

Through a real gunicorn with a real pool kernel, because only a real ipykernel shows what its
threads, tasks and subprocesses emit: a background thread's prints and displays, an asyncio task and
a subprocess left running by one request never reach another request's response. Beside them, the
other faults of issue 11 that only the whole server shows: charsets, encoded slashes, large forms,
case-insensitive kernel names, output floods, ``sys.exit``, and a clean SIGTERM.
"""

from __future__ import annotations

import http.client
import json
import time
import uuid

import pytest
from conftest import write_notebook
from gateway import Gateway, gateway_env

CELLS = [
    "import asyncio, json, subprocess, sys, threading, time\nfrom IPython.display import display",
    # Background work of every kind that keeps emitting after its request was answered.
    "# GET /spawn\n"
    "def chatter():\n"
    "    for i in range(40):\n"
    "        print(f'late line {i}')\n"
    "        print(f'late error {i}', file=sys.stderr)\n"
    "        display({'text/csv': f'late,{i}'}, raw=True)\n"
    "        time.sleep(0.05)\n"
    "threading.Thread(target=chatter, daemon=True).start()\n"
    "threading.Timer(0.3, lambda: print('timer fired')).start()\n"
    "async def task():\n"
    "    for i in range(40):\n"
    "        print(f'task line {i}')\n"
    "        await asyncio.sleep(0.05)\n"
    "asyncio.ensure_future(task())\n"
    "subprocess.Popen('sleep 0.3; for i in 1 2 3 4 5 6 7 8 9 10; do echo sub $i; sleep 0.2; done', shell=True)\n"
    "print('spawned')",
    "# GET /quiet\nprint('quiet')",
    "# GET /table\ndisplay({'text/csv': 'a,b\\n1,2\\n', 'text/plain': 'table'}, raw=True)",
    "# GET /unicode\nprint('naïve café — 你好 😀')",
    "# GET /files/:name\nprint(json.dumps({'route': 'name', 'name': json.loads(REQUEST)['path']['name']}))",
    "# GET /files/:name/meta\nprint(json.dumps({'route': 'meta', 'name': json.loads(REQUEST)['path']['name']}))",
    "# POST /upload\n"
    "body = json.loads(REQUEST)['body']\n"
    "print(json.dumps({k: [len(v['data']) if isinstance(v, dict) else len(v) for v in vs] for k, vs in body.items()}))",
    "# GET /exit\nsys.exit(3)",
    "# GET /exit/:how\nhow = json.loads(REQUEST)['path']['how']\n"
    "exit() if how == 'exit' else quit() if how == 'quit' else sys.exit(how)",
    "# GET /flood\nfor i in range(4000):\n    print('x' * 1000)",
]

MANIFEST = """\
version: 1
server:
  max_body: 20MB
  max_response: 1MiB
notebooks:
  iso:
    path: iso.ipynb
    kernel: Python3
    pool: {size: 1, max_queue: 50}
"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    folder = tmp_path_factory.mktemp("isolation")
    write_notebook(folder / "iso.ipynb", CELLS, kernelspec="Python3")
    (folder / "fngw.yaml").write_text(MANIFEST)
    gateway = Gateway(env=gateway_env(FNGW_MANIFEST=str(folder / "fngw.yaml")))
    try:
        gateway.wait_ready("/_fngw/ready", timeout=90)
        yield gateway
    finally:
        gateway.stop()


def test_background_output_never_reaches_another_response(gw):
    status, _, body = gw.request("GET", "/spawn")
    assert (status, body) == (200, b"spawned\n")
    deadline = time.monotonic() + 2.5  # the background work emits for about 2 s
    seen = 0
    while time.monotonic() < deadline:
        status, headers, body = gw.request("GET", "/quiet")
        assert (status, body) == (200, b"quiet\n")
        status, headers, body = gw.request("GET", "/table", headers={"Accept": "text/csv"})
        assert (status, body) == (200, b"a,b\n1,2\n")
        assert headers["content-type"] == "text/csv; charset=utf-8"
        seen += 1
    assert seen > 10


def test_text_bodies_declare_utf8(gw):
    status, headers, body = gw.request("GET", "/unicode")
    assert status == 200
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert body.decode("utf-8") == "naïve café — 你好 😀\n"


@pytest.mark.parametrize(
    ("path", "route", "name"),
    [
        ("/files/a%2Fb", "name", "a/b"),
        ("/files/a%2Fb/meta", "meta", "a/b"),
        ("/files/notes%2Fmeta", "name", "notes/meta"),
        ("/files/100%25", "name", "100%"),
        ("/files/caf%C3%A9", "name", "café"),
        ("/fil%65s/plain/meta", "meta", "plain"),
    ],
)
def test_encoded_slashes_stay_inside_their_parameter(gw, path, route, name):
    status, _, body = gw.request("GET", path)
    assert status == 200, body
    assert json.loads(body) == {"route": route, "name": name}


def multipart(fields: list[tuple[str, bytes, str | None]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, data, filename in fields:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        parts.append(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_uploads_and_long_forms_up_to_max_body_reach_the_cell(gw):
    data = bytes(range(256)) * (3 * 1024 * 4)  # 3 MiB
    body, content_type = multipart([("file", data, "big.bin"), *((f"f{i}", b"v" * i, None) for i in range(80))])
    status, _, answer = gw.request("POST", "/upload", body=body, headers={"Content-Type": content_type}, timeout=60)
    assert status == 200, answer
    sizes = json.loads(answer)
    assert sizes["file"] == [len(data) * 4 // 3 + (4 if len(data) % 3 else 0)]  # base64
    assert all(sizes[f"f{i}"] == [i] for i in range(80))


def test_a_form_over_its_part_limit_is_413_naming_it(gw):
    body, content_type = multipart([(f"f{i}", b"", None) for i in range(20_001)])
    status, _, answer = gw.request("POST", "/upload", body=body, headers={"Content-Type": content_type}, timeout=60)
    assert status == 413
    message = json.loads(answer)["message"]
    assert "more than 19531 parts" in message and "server.max_body" in message


def test_sys_exit_names_its_exit_code_and_the_kernel_keeps_serving(gw):
    status, _, body = gw.request("GET", "/exit")
    assert status == 500
    error = json.loads(body)
    assert error["ename"] == "SystemExit"
    assert "exit code 3" in error["message"]
    assert gw.request("GET", "/quiet")[2] == b"quiet\n"


@pytest.mark.parametrize(
    ("how", "named"), [("exit", "exit() or quit()"), ("quit", "exit() or quit()"), ("bye", "'bye'")]
)
def test_every_way_of_exiting_fails_the_request_and_names_it(gw, how, named):
    status, _, body = gw.request("GET", f"/exit/{how}")
    assert status == 500, body
    error = json.loads(body)
    assert error["ename"] == "SystemExit" and named in error["message"]
    assert gw.request("GET", "/quiet")[2] == b"quiet\n"


def test_output_past_max_response_is_502_and_the_kernel_recovers(gw):
    status, _, body = gw.request("GET", "/flood", timeout=60)
    assert status == 502
    assert "server.max_response" in json.loads(body)["message"]
    assert gw.request("GET", "/quiet", timeout=30)[:3:2] == (200, b"quiet\n")


def test_sigterm_with_idle_keep_alive_connections_logs_no_error(tmp_path):
    write_notebook(tmp_path / "iso.ipynb", ["# GET /quiet\nprint('quiet')"])
    (tmp_path / "fngw.yaml").write_text("version: 1\nnotebooks:\n  iso: {path: iso.ipynb}\n")
    gateway = Gateway(env=gateway_env(FNGW_MANIFEST=str(tmp_path / "fngw.yaml")))
    try:
        gateway.wait_ready("/_fngw/ready", timeout=90)
        idle = []
        for _ in range(3):
            conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
            conn.request("GET", "/quiet")
            conn.getresponse().read()
            idle.append(conn)  # kept open: keep-alive
        assert gateway.stop() == 0
    finally:
        gateway.stop()
    assert "ERROR" not in gateway.output and "Traceback" not in gateway.output, gateway.output
