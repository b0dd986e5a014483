"""A corpus of hostile requests against a real gunicorn, each with the answer it must get.

Every case is raw bytes on a socket, so malformed requests reach the server as an attacker would send
them. Whatever the case, the gateway answers with a 4xx (or the documented 5xx) and a JSON body when
the request got past gunicorn's HTTP parser, never a traceback, never a hang; and after the whole
corpus the gateway, its kernels and its workers are still there and answer normally.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time

import pytest
from gateway import REPO, Gateway, children_of, gateway_env

OPS = "hostile-ops-secret"
SECRET_FILE_TEXT = "NOT FOR CLIENTS"


@pytest.fixture(scope="module")
def gw():
    env = gateway_env(FNGW_MANIFEST=str(REPO / "tests" / "hostile" / "fngw.yaml"), FNGWTEST_OPS_TOKEN=OPS)
    gateway = Gateway(env=env)
    try:
        gateway.wait_ready("/_fngw/ready", timeout=90)
        gateway.workers_at_start = children_of(gateway.proc.pid)
        yield gateway
    finally:
        gateway.stop()


def exchange(gw, raw: bytes, timeout: float = 15.0) -> tuple[int | None, dict[str, str], bytes]:
    """Send ``raw`` (the request should say Connection: close), read until the server closes.
    (None, {}, b"") when the server closed without a response."""
    with socket.create_connection(("127.0.0.1", gw.port), timeout=timeout) as sock:
        sock.sendall(raw)
        data = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
            if _complete(data):
                break
    if not data:
        return None, {}, b""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), value.strip())
    return status, headers, body


def _complete(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":", 1)[1])
    return False


def request(method: str, target: str, headers: dict | list | None = None, body: bytes = b"") -> bytes:
    items = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    names = {k.lower() for k, _ in items}
    if body and "content-length" not in names and "transfer-encoding" not in names:
        items.append(("Content-Length", str(len(body))))
    items += [("Host", "127.0.0.1"), ("Connection", "close")]
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in items) + "\r\n"
    return head.encode("latin-1") + body


JSON = {"Content-Type": "application/json"}


def is_json_error(body: bytes) -> bool:
    doc = json.loads(body)
    return set(doc) >= {"reason", "message"} and "Traceback" not in body.decode("utf-8", "replace")


# (id, raw request, expected status or set of statuses; None = the server may close without answering)
CASES = [
    # --- bodies -------------------------------------------------------------------------------
    ("body over max_body by Content-Length", request("POST", "/echo", JSON, b"x" * 70_000), 413),
    (
        "chunked body over max_body",
        request(
            "POST", "/echo", {**JSON, "Transfer-Encoding": "chunked"}, b"11170\r\n" + b"x" * 70_000 + b"\r\n0\r\n\r\n"
        ),
        413,
    ),
    ("truncated JSON", request("POST", "/echo", JSON, b'{"a":'), 400),
    ("JSON body with invalid UTF-8", request("POST", "/echo", JSON, b'{"a": "\xff\xfe"}'), 400),
    ("text body with invalid UTF-8", request("POST", "/echo", {"Content-Type": "text/plain"}, b"\xc3\x28"), 400),
    (
        "form body with invalid UTF-8",
        request("POST", "/echo", {"Content-Type": "application/x-www-form-urlencoded"}, b"a=\xff"),
        400,
    ),
    (
        "multipart without a boundary",
        request("POST", "/echo", {"Content-Type": "multipart/form-data"}, b"--x\r\n\r\n"),
        400,
    ),
    (
        "multipart with a broken part",
        request("POST", "/echo", {"Content-Type": "multipart/form-data; boundary=zz"}, b"--zz\r\ngarbage"),
        400,
    ),
    ("JSON nested 100000 deep", request("POST", "/echo", JSON, b"[" * 100_000 + b"]" * 100_000), {400, 413}),
    ("JSON nested 5000 deep", request("POST", "/echo", JSON, b"[" * 5000 + b"]" * 5000), 400),
    ("negative Content-Length", request("POST", "/echo", {**JSON, "Content-Length": "-1"}, b"{}"), 400),
    ("non-numeric Content-Length", request("POST", "/echo", {**JSON, "Content-Length": "abc"}, b"{}"), 400),
    (
        "two different Content-Lengths",
        request(
            "POST",
            "/echo",
            [("Content-Type", "application/json"), ("Content-Length", "2"), ("Content-Length", "3")],
            b"{}",
        ),
        400,
    ),
    (
        "Content-Length with Transfer-Encoding (smuggling)",
        request("POST", "/echo", [("Content-Length", "4"), ("Transfer-Encoding", "chunked")], b"0\r\n\r\n"),
        400,
    ),
    ("unknown Transfer-Encoding", request("POST", "/echo", {"Transfer-Encoding": "gzip"}, b"abc"), {400, 501}),
    ("bad chunk size", request("POST", "/echo", {"Transfer-Encoding": "chunked"}, b"zz\r\nabc\r\n0\r\n\r\n"), 400),
    # --- request line and headers --------------------------------------------------------------
    ("header without a colon", b"GET /alive HTTP/1.1\r\nHost: x\r\nNoColonHere\r\nConnection: close\r\n\r\n", 400),
    ("header name with a space", b"GET /alive HTTP/1.1\r\nHost: x\r\nBad Name: v\r\nConnection: close\r\n\r\n", 400),
    ("header value of 100 KB", request("GET", "/alive", {"X-Big": "a" * 100_000}), {400, 431}),
    ("200 headers", request("GET", "/alive", [(f"X-H{i}", "v") for i in range(200)]), {400, 431}),
    ("request line of 20 KB", request("GET", "/echo?q=" + "a" * 20_000), {400, 414}),
    (
        "obsolete line folding",
        b"GET /alive HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  folded\r\nConnection: close\r\n\r\n",
        400,
    ),
    ("NUL in a header value", b"GET /alive HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\nConnection: close\r\n\r\n", 400),
    ("invalid method token", b"G@T /alive HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 400),
    ("unknown method", request("BREW", "/alive"), {400, 405}),
    ("HTTP/0.9 request", b"GET /alive\r\n\r\n", {400, None}),
    ("unsupported HTTP version", b"GET /alive HTTP/3.0\r\nHost: x\r\nConnection: close\r\n\r\n", {400, 505}),
    ("absolute URI of another host", request("GET", "http://evil.example/alive"), {200, 400, 404}),
    ("Latin-1 header value", request("GET", "/echo", {"X-Name": "caf\xe9"}), 200),
    # --- paths ---------------------------------------------------------------------------------
    ("public: dot-dot", request("GET", "/public/../secret.txt"), 404),
    ("public: encoded dot-dot", request("GET", "/public/%2e%2e/secret.txt"), 404),
    ("public: encoded slash", request("GET", "/public/..%2fsecret.txt"), 404),
    ("public: double-encoded", request("GET", "/public/%252e%252e/secret.txt"), 404),
    ("public: absolute path", request("GET", "/public//etc/passwd"), 404),
    ("public: backslashes", request("GET", "/public/..\\secret.txt"), {400, 404}),
    ("public: NUL byte", request("GET", "/public/ok.txt%00.html"), {400, 404}),
    ("kernelspec file: dot-dot", request("GET", "/kernelspecs/python3/../../../../etc/passwd"), 404),
    ("kernelspec file: encoded dot-dot", request("GET", "/kernelspecs/python3/%2e%2e/%2e%2e/etc/passwd"), 404),
    ("kernelspec name: dot-dot", request("GET", "/kernelspecs/..%2f..%2f/kernel.json"), 404),
    ("kernelspec API: unknown name", request("GET", "/api/kernelspecs/..%2fpython3"), 404),
    ("invalid UTF-8 in a path parameter", request("GET", "/echo/%ff%fe"), {200, 400}),
    ("encoded slash in a path parameter", request("GET", "/echo/a%2Fb"), {200, 404}),
    ("invalid percent-encoding in the query", request("GET", "/echo?x=%zz&y=%"), 200),
    ("10000 query parameters", request("GET", "/echo?" + "&".join(f"p{i}=v" for i in range(2000))), {200, 400, 414}),
    ("unknown kernel id", request("GET", "/api/kernels/../../etc"), 404),
    ("kernel API body nested 5000 deep", request("POST", "/api/kernels", JSON, b"[" * 5000 + b"]" * 5000), 400),
    ("kernel API env value not a string", request("POST", "/api/kernels", JSON, b'{"env": {"KERNEL_X": 1}}'), 400),
    ("kernel API unknown kernel name", request("POST", "/api/kernels", JSON, b'{"name": "../../bin/sh"}'), 404),
    # --- ResponseInfo built from request data ----------------------------------------------------
    ("CRLF in a ResponseInfo header value", request("GET", "/header?value=x%0d%0aSet-Cookie:%20evil=1"), 500),
    ("LF in a ResponseInfo header value", request("GET", "/header?value=x%0aX-Evil:%201"), 500),
    ("CRLF in a ResponseInfo header name", request("GET", "/header?name=X-A%0d%0aX-Evil&value=1"), 500),
    ("ResponseInfo sets Content-Length", request("GET", "/header?name=Content-Length&value=0"), 500),
    ("ResponseInfo sets Transfer-Encoding", request("GET", "/header?name=Transfer-Encoding&value=chunked"), 500),
    ("ResponseInfo status 999", request("GET", "/status?code=999"), 500),
    ("ResponseInfo status as a string", request("GET", "/status?code=%22200%20OK%22"), 500),
    ("ResponseInfo status 99", request("GET", "/status?code=99"), 500),
    # --- request data is never code -------------------------------------------------------------
    ("triple quotes and backslashes", request("POST", "/echo", JSON, json.dumps({"s": "'''\"\"\"\\"}).encode()), 200),
    (
        "Python that would exit the kernel",
        request("POST", "/echo", JSON, b'{"s": "\\"); import os; os._exit(1) #"}'),
        200,
    ),
    ("f-string in a path parameter", request("GET", "/echo/%7B__import__('os').getpid()%7D"), 200),
    ("shell substitution in a header", request("GET", "/echo", {"X-Cmd": "$(touch /tmp/fngw-pwned) `id`"}), 200),
    # --- tokens --------------------------------------------------------------------------------
    ("no token on a secured route", request("GET", "/secure/alive"), 401),
    (
        "Basic scheme",
        request("GET", "/secure/alive", {"Authorization": "Basic " + base64.b64encode(b"a:b").decode()}),
        401,
    ),
    ("Bearer without a token", request("GET", "/secure/alive", {"Authorization": "Bearer "}), 401),
    ("wrong token in the query", request("GET", "/secure/alive?token=guess"), 401),
    ("token in a cookie only", request("GET", "/secure/alive", {"Cookie": f"token={OPS}"}), 401),
    ("token of 100 KB", request("GET", "/secure/alive", {"Authorization": "Bearer " + "t" * 100_000}), {400, 431}),
    (
        "token with a NUL",
        b"GET /secure/alive HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\x00b\r\nConnection: close\r\n\r\n",
        400,
    ),
    ("right token, lower-case scheme", request("GET", "/secure/alive", {"Authorization": f"bearer {OPS}"}), 200),
    ("right token in the query", request("GET", f"/secure/alive?token={OPS}"), 200),
    # --- websocket upgrades ----------------------------------------------------------------------
    (
        "upgrade without a key",
        request("GET", "/api/kernels/nope/channels", {"Upgrade": "websocket", "Connection": "Upgrade"}),
        404,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_hostile_request_gets_its_answer(gw, case):
    _, raw, expected = case
    status, headers, body = exchange(gw, raw)
    allowed = expected if isinstance(expected, set) else {expected}
    assert status in allowed, (status, body[:300])
    if status is not None and status >= 400 and headers.get("content-type", "").startswith("application/json"):
        assert is_json_error(body), body[:300]
    assert b"Traceback" not in body and SECRET_FILE_TEXT.encode() not in body
    assert OPS.encode() not in body and b"guess" not in body


def test_request_data_came_back_as_data_not_code(gw):
    _, _, body = exchange(gw, request("POST", "/echo", JSON, b'{"s": "\\"); import os; os._exit(1) #"}'))
    assert json.loads(body)["body"] == {"s": '"); import os; os._exit(1) #'}
    _, _, body = exchange(gw, request("GET", "/echo/%7B__import__('os').getpid()%7D"))
    assert body == b"{__import__('os').getpid()}\n"
    assert not os.path.exists("/tmp/fngw-pwned")


def test_a_header_injection_never_reaches_the_response(gw):
    status, headers, body = exchange(gw, request("GET", "/header?value=x%0d%0aSet-Cookie:%20evil=1"))
    assert status == 500 and "set-cookie" not in headers and "X-Echo" in json.loads(body)["message"]


def test_a_body_that_stops_early_is_dropped_and_the_gateway_goes_on(gw):
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
        )
        sock.shutdown(socket.SHUT_WR)
        sock.recv(65536)  # whatever the server says, or nothing
    assert gw.request("GET", "/alive")[2] == b"alive\n"


def test_slow_clients_do_not_hold_up_others(gw):
    """Slowloris: 200 connections trickling headers, and one dripping a body; a normal request is
    still answered at once."""
    slow = []
    try:
        for _ in range(200):
            s = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
            s.sendall(b"GET /alive HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            slow.append(s)
        dripping = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
        dripping.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
        )
        slow.append(dripping)
        for s in slow:
            s.sendall(b"a")
        started = time.monotonic()
        assert gw.request("GET", "/alive")[2] == b"alive\n"
        assert gw.request("GET", "/_fngw/health")[0] == 200
        assert time.monotonic() - started < 5
    finally:
        for s in slow:
            s.close()


# --- websocket frames ---------------------------------------------------------------------------


def ws_connect(gw, kernel_id: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", gw.port), timeout=15)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /api/kernels/{kernel_id}/channels?session_id=hostile HTTP/1.1\r\nHost: x\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def frame(opcode: int, payload: bytes, *, fin: bool = True, masked: bool = True) -> bytes:
    first = (0x80 if fin else 0) | opcode
    mask = os.urandom(4) if masked else b""
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", first, (0x80 if masked else 0) | size)
    elif size < 65536:
        head = struct.pack("!BBH", first, (0x80 if masked else 0) | 126, size)
    else:
        head = struct.pack("!BBQ", first, (0x80 if masked else 0) | 127, size)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload)) if masked else payload
    return head + mask + body


def close_code(sock: socket.socket) -> int | None:
    """Read frames until a close frame; its code, or None if the connection just ended."""
    data = b""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
        while len(data) >= 2:
            opcode, size = data[0] & 0x0F, data[1] & 0x7F
            offset = 2
            if size == 126:
                size, offset = struct.unpack("!H", data[2:4])[0], 4
            elif size == 127:
                size, offset = struct.unpack("!Q", data[2:10])[0], 10
            if len(data) < offset + size:
                break
            payload, data = data[offset : offset + size], data[offset + size :]
            if opcode == 0x8:
                return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
    return None


@pytest.fixture(scope="module")
def kernel_id(gw):
    status, _, body = gw.request("POST", "/api/kernels", body=b"{}", headers=JSON, timeout=60)
    assert status == 201
    kid = json.loads(body)["id"]
    yield kid
    gw.request("DELETE", f"/api/kernels/{kid}")


WS_CASES = [
    ("unmasked client frame", frame(0x1, b"{}", masked=False), 1002),
    ("reserved opcode", frame(0x3, b"x"), 1002),
    ("text frame with invalid UTF-8", frame(0x1, b"\xff\xfe"), 1007),
    ("fragmented ping", frame(0x9, b"x", fin=False), 1002),
    ("ping with 200-byte payload", frame(0x9, b"x" * 200), 1002),
    ("continuation without a start", frame(0x0, b"x"), 1002),
]


@pytest.mark.parametrize("case", WS_CASES, ids=[c[0] for c in WS_CASES])
def test_forged_websocket_frames_close_with_the_right_code(gw, kernel_id, case):
    _, data, code = case
    with ws_connect(gw, kernel_id) as sock:
        sock.sendall(data)
        assert close_code(sock) == code


def test_malformed_messages_keep_the_connection_and_the_kernel(gw, kernel_id):
    with ws_connect(gw, kernel_id) as sock:
        for junk in (b"not json", b"[1, 2]", b'{"channel": "iopub", "header": {}}', b'{"header": "x"}'):
            sock.sendall(frame(0x1, junk))
        request_id = "hostile-ok"
        msg = {
            "header": {"msg_id": request_id, "msg_type": "kernel_info_request", "username": "h", "session": "h",
                       "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "content": {}, "channel": "shell",
        }  # fmt: skip
        sock.sendall(frame(0x1, json.dumps(msg).encode()))
        data = b""
        deadline = time.monotonic() + 30
        while request_id.encode() not in data or b"kernel_info_reply" not in data:
            assert time.monotonic() < deadline, "no kernel_info_reply after the junk"
            data += sock.recv(65536)


def test_after_the_corpus_everything_still_runs(gw):
    assert gw.request("GET", "/alive")[2] == b"alive\n"
    assert gw.request("GET", "/_fngw/ready")[0] == 200
    assert children_of(gw.proc.pid) == gw.workers_at_start  # no worker crashed and was replaced
    assert "Traceback" not in gw.output
