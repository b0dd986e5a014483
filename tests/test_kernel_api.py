"""The Jupyter-compatible kernel API through a real gunicorn: REST, sessions and websocket channels."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time

import pytest
from conftest import REPO
from gateway import Gateway, gateway_env
from gateway import call_json as call
from messages import execute_request, run_code, ws_url
from websockets.sync.client import connect

HERE = REPO / "tests" / "kernel_api"
OPS = "ops-secret"
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


@pytest.fixture(scope="module")
def gw():
    gateway = Gateway(
        env=gateway_env(FNGW_MANIFEST=str(HERE / "fngw.yaml"), MY_VAR="whitelisted", OTHER_VAR="not passed on")
    )
    try:
        gateway.wait_ready()
        yield gateway
    finally:
        gateway.stop()


@pytest.fixture(scope="module")
def secured():
    gateway = Gateway(env=gateway_env(FNGW_MANIFEST=str(HERE / "secured.yaml"), FNGWTEST_OPS_TOKEN=OPS))
    try:
        gateway.wait_ready()
        yield gateway
    finally:
        gateway.stop()


@pytest.fixture
def kernel(gw):
    status, _, model = call(gw, "POST", "/api/kernels", {})
    assert status == 201
    yield model["id"]
    call(gw, "DELETE", f"/api/kernels/{model['id']}")


# --- REST ----------------------------------------------------------------------------------------


def test_api_root_names_the_gateway(gw):
    assert call(gw, "GET", "/api")[2] == {"version": "0.1.0", "gateway": "fngw"}


def test_kernelspecs_and_their_files(gw):
    status, _, body = call(gw, "GET", "/api/kernelspecs")
    assert status == 200 and body["default"] == "python3"
    spec = body["kernelspecs"]["python3"]
    assert spec["name"] == "python3" and spec["spec"]["language"] == "python"
    logo = spec["resources"]["logo-64x64"]
    assert logo == "/kernelspecs/python3/logo-64x64.png"
    status, headers, raw = gw.request("GET", logo)
    assert (status, headers["content-type"], raw[:4]) == (200, "image/png", b"\x89PNG")
    assert call(gw, "GET", "/api/kernelspecs/python3")[2]["name"] == "python3"
    assert call(gw, "GET", "/api/kernelspecs/nope")[0] == 404
    assert gw.request("GET", "/kernelspecs/python3/..%2F..%2F..%2Fetc%2Fpasswd")[0] == 404


def test_kernel_lifecycle(gw):
    status, headers, model = call(gw, "POST", "/api/kernels", {"name": "python3"})
    assert status == 201
    assert headers["location"] == f"/api/kernels/{model['id']}"
    assert set(model) == {"id", "name", "last_activity", "execution_state", "connections"}
    assert ISO.match(model["last_activity"])
    kid = model["id"]
    assert call(gw, "GET", f"/api/kernels/{kid}")[2]["id"] == kid
    assert kid in [k["id"] for k in call(gw, "GET", "/api/kernels")[2]]
    assert call(gw, "POST", f"/api/kernels/{kid}/interrupt")[0] == 204
    status, _, restarted = call(gw, "POST", f"/api/kernels/{kid}/restart")
    assert status == 200 and restarted["id"] == kid
    assert call(gw, "DELETE", f"/api/kernels/{kid}")[0] == 204
    assert call(gw, "GET", f"/api/kernels/{kid}")[0] == 404
    assert call(gw, "DELETE", f"/api/kernels/{kid}")[0] == 404


@pytest.mark.parametrize(
    ("body", "status", "phrase"),
    [
        ({"name": "no-such-kernel"}, 404, "not available"),
        (b"{not json", 400, "Invalid JSON"),
        ({"env": {"KERNEL_X": 5}}, 400, "must be strings"),
        ({"env": ["x"]}, 400, "JSON object"),
        ({"name": 3}, 400, "must be a string"),
    ],
)
def test_bad_kernel_requests(gw, body, status, phrase):
    got, _, error = call(gw, "POST", "/api/kernels", body)
    assert got == status and phrase in error["message"]


def test_prewarmed_kernel_is_handed_out_at_once(gw):
    deadline = time.monotonic() + 30
    while True:  # the prewarm slot refills in the background after earlier tests
        started = time.monotonic()
        status, _, model = call(gw, "POST", "/api/kernels", {})
        elapsed = time.monotonic() - started
        call(gw, "DELETE", f"/api/kernels/{model['id']}")
        if elapsed < 0.1 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert status == 201 and elapsed < 0.1


def test_max_kernels_holds_under_concurrent_posts(gw):
    results = []
    lock = threading.Lock()

    def post():
        got = call(gw, "POST", "/api/kernels", {"env": {"KERNEL_N": "1"}})
        with lock:
            results.append(got)

    threads = [threading.Thread(target=post) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    created = [r[2]["id"] for r in results if r[0] == 201]
    refused = [r for r in results if r[0] == 403]
    try:
        assert len(created) + len(refused) == 20
        assert len(created) <= 5 and len(created) >= 4  # one slot may hold the prewarmed kernel
        assert all(r[2] == {"reason": "Forbidden", "message": "Resource Limit"} for r in refused)
    finally:
        for kid in created:
            call(gw, "DELETE", f"/api/kernels/{kid}")


def test_kernel_environment(gw):
    status, _, model = call(
        gw,
        "POST",
        "/api/kernels",
        {
            "env": {
                "KERNEL_FOO": "foo",
                "NOT_KERNEL": "x",
                "KERNEL_GATEWAY": "overridden",
                "MY_VAR": "from client",
                "KERNEL_WORKING_DIR": "/tmp",
            }
        },
    )
    assert status == 201
    try:
        with connect(ws_url(gw, model["id"])) as ws:
            code = (
                "import os; print([os.environ.get(k) for k in ('KERNEL_FOO', 'NOT_KERNEL', 'KERNEL_GATEWAY',"
                " 'MY_VAR', 'OTHER_VAR', 'FNGW_MANIFEST')], os.getcwd())"
            )
            out, _ = run_code(ws, code)
        assert out == "['foo', None, '1', 'from client', 'not passed on', None] /tmp\n"
    finally:
        call(gw, "DELETE", f"/api/kernels/{model['id']}")


def test_seed_runs_on_start_and_after_restart(gw, kernel):
    with connect(ws_url(gw, kernel)) as ws:
        assert run_code(ws, "print(seeded); seeded = 'changed'")[0] == "yes\n"
    call(gw, "POST", f"/api/kernels/{kernel}/restart")
    with connect(ws_url(gw, kernel)) as ws:
        assert run_code(ws, "print(seeded)")[0] == "yes\n"


def test_sessions(gw):
    status, headers, session = call(
        gw, "POST", "/api/sessions", {"path": "a.ipynb", "type": "notebook", "name": "a", "kernel": {"name": "python3"}}
    )
    assert status == 201 and headers["location"] == f"/api/sessions/{session['id']}"
    sid, kid = session["id"], session["kernel"]["id"]
    assert session["path"] == "a.ipynb" and session["type"] == "notebook"
    assert call(gw, "GET", f"/api/sessions/{sid}")[2]["kernel"]["id"] == kid
    assert call(gw, "POST", "/api/sessions", {"path": "a.ipynb", "type": "notebook"})[2]["id"] == sid
    status, _, patched = call(gw, "PATCH", f"/api/sessions/{sid}", {"path": "b.ipynb"})
    assert status == 200 and patched["path"] == "b.ipynb"
    assert sid in [s["id"] for s in call(gw, "GET", "/api/sessions")[2]]
    assert call(gw, "POST", "/api/sessions", {"type": "notebook"})[0] == 400
    assert call(gw, "DELETE", f"/api/sessions/{sid}")[0] == 204
    assert call(gw, "GET", f"/api/sessions/{sid}")[0] == 404
    assert call(gw, "GET", f"/api/kernels/{kid}")[0] == 404


# --- websocket -------------------------------------------------------------------------------------


def test_execute_over_legacy_framing(gw, kernel):
    with connect(ws_url(gw, kernel)) as ws:
        assert run_code(ws, "print(6 * 7)") == ("42\n", "ok")
        assert run_code(ws, "1/0")[1] == "error"


def test_execute_over_v1_framing(gw, kernel):
    from fngw.kernel_api.framing import decode_v1, encode_v1

    with connect(ws_url(gw, kernel), subprotocols=["v1.kernel.websocket.jupyter.org"]) as ws:
        assert ws.subprotocol == "v1.kernel.websocket.jupyter.org"
        msg_id, msg = execute_request("print('v1')")
        ws.send(encode_v1(msg, "shell"))
        out, channels = [], set()
        while not {"shell", "idle"} <= channels:
            reply = decode_v1(ws.recv(timeout=30))
            if reply["parent_header"].get("msg_id") != msg_id:
                continue
            kind = reply["header"]["msg_type"]
            if kind == "stream":
                out.append(reply["content"]["text"])
            elif kind == "execute_reply":
                channels.add(reply["channel"])
            elif kind == "status" and reply["content"]["execution_state"] == "idle":
                channels.add("idle")
        assert "".join(out) == "v1\n"


def test_two_clients_share_iopub_and_get_their_own_replies(gw, kernel):
    with connect(ws_url(gw, kernel, "alice")) as alice, connect(ws_url(gw, kernel, "bob")) as bob:
        msg_id, msg = execute_request("print('from alice')", "alice")
        alice.send(json.dumps(msg))
        seen_by_bob = []
        while True:
            reply = json.loads(bob.recv(timeout=30))
            if reply["parent_header"].get("msg_id") == msg_id:
                seen_by_bob.append((reply["channel"], reply["msg_type"]))
                if reply["msg_type"] == "status" and reply["content"]["execution_state"] == "idle":
                    break
        assert ("iopub", "stream") in seen_by_bob
        assert ("shell", "execute_reply") not in seen_by_bob
        assert call(gw, "GET", f"/api/kernels/{kernel}")[2]["connections"] == 2


def test_reconnecting_session_receives_what_it_missed(gw, kernel):
    msg_id, msg = execute_request("import time; time.sleep(0.5); print('while you were away')", "flaky")
    with connect(ws_url(gw, kernel, "flaky")) as ws:
        ws.send(json.dumps(msg))
    states, deadline = [], time.monotonic() + 30
    while not ("busy" in states and states[-1] == "idle") and time.monotonic() < deadline:
        states.append(call(gw, "GET", f"/api/kernels/{kernel}")[2]["execution_state"])  # polled, bounded
    assert states[-1] == "idle"  # the output was produced while no connection of the session was open
    with connect(ws_url(gw, kernel, "flaky")) as again:
        kinds, idle = [], False
        # Shell and iopub are separate streams: the reply may come before the output, so wait
        # for both the reply and the idle status.
        while ("shell", "execute_reply") not in kinds or not idle:
            reply = json.loads(again.recv(timeout=30))
            if reply["parent_header"].get("msg_id") == msg_id:
                kinds.append((reply["channel"], reply["msg_type"]))
                if reply["msg_type"] == "stream":
                    assert reply["content"]["text"] == "while you were away\n"
                idle = idle or (reply["msg_type"] == "status" and reply["content"]["execution_state"] == "idle")
        assert ("iopub", "stream") in kinds


def test_malformed_messages_do_not_break_the_connection(gw, kernel):
    with connect(ws_url(gw, kernel)) as ws:
        ws.send("{not json")
        ws.send(json.dumps({"channel": "shell", "content": {}}))  # no header
        ws.send(json.dumps({"channel": "nowhere", "header": {"msg_id": "x", "msg_type": "y"}}))
        ws.send(b"\x00\x00\x00\x09garbage")
        assert run_code(ws, "print('still here')") == ("still here\n", "ok")


def test_websocket_to_unknown_kernel_or_without_upgrade(gw):
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus) as exc:
        connect(ws_url(gw, "no-such-kernel"))
    assert exc.value.response.status_code == 404
    status, _, body = call(gw, "GET", "/api/kernels/whatever/channels")
    assert status in (400, 404)


def test_dead_kernel_is_restarted_and_clients_are_told(gw, kernel):
    with connect(ws_url(gw, kernel)) as ws:
        pid = int(run_code(ws, "import os; print(os.getpid())")[0])
        os.kill(pid, signal.SIGKILL)
        states = []
        while "restarting" not in states:
            reply = json.loads(ws.recv(timeout=30))
            if reply["msg_type"] == "status":
                states.append(reply["content"]["execution_state"])
    deadline = time.monotonic() + 30
    while call(gw, "GET", f"/api/kernels/{kernel}")[2]["execution_state"] != "idle":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    with connect(ws_url(gw, kernel)) as ws:
        assert run_code(ws, "print(seeded)")[0] == "yes\n"


# --- auth, origin, culling ------------------------------------------------------------------------


def test_auth_on_rest_and_websocket(secured):
    from websockets.exceptions import InvalidStatus

    assert call(secured, "GET", "/api")[0] == 401
    assert call(secured, "GET", "/api", headers={"Authorization": "Bearer wrong"})[0] == 401
    token = {"Authorization": f"token {OPS}"}
    assert call(secured, "GET", "/api/kernels", headers=token)[0] == 403  # listing is off
    status, _, model = call(secured, "POST", "/api/kernels", {}, headers=token)
    assert status == 201
    with pytest.raises(InvalidStatus) as exc:
        connect(ws_url(secured, model["id"]))
    assert exc.value.response.status_code == 401
    with connect(ws_url(secured, model["id"], token=OPS)) as ws:
        assert run_code(ws, "print(1)")[0] == "1\n"
    call(secured, "DELETE", f"/api/kernels/{model['id']}", headers=token)


def test_origin_checks(secured):
    from websockets.exceptions import InvalidStatus

    token = {"Authorization": f"Bearer {OPS}"}
    evil = {**token, "Origin": "https://evil.example"}
    assert call(secured, "GET", "/api", headers=evil)[0] == 403
    assert call(secured, "GET", "/api", headers={**token, "Origin": "https://lab.example.com"})[0] == 200
    status, _, model = call(secured, "POST", "/api/kernels", {}, headers=token)
    with pytest.raises(InvalidStatus) as exc:
        connect(ws_url(secured, model["id"], token=OPS), origin="https://evil.example")
    assert exc.value.response.status_code == 403
    call(secured, "DELETE", f"/api/kernels/{model['id']}", headers=token)


def test_idle_kernels_are_culled(secured):
    token = {"Authorization": f"Bearer {OPS}"}
    status, _, model = call(secured, "POST", "/api/kernels", {}, headers=token)
    assert status == 201
    deadline = time.monotonic() + 15
    while call(secured, "GET", f"/api/kernels/{model['id']}", headers=token)[0] != 404:
        assert time.monotonic() < deadline, "the idle kernel was not culled"
        time.sleep(0.2)


def test_sigterm_closes_websockets_and_stops_promptly():
    from websockets.exceptions import ConnectionClosed

    gateway = Gateway(env=gateway_env(FNGW_MANIFEST=str(HERE / "fngw.yaml")))
    try:
        gateway.wait_ready()
        _, _, model = call(gateway, "POST", "/api/kernels", {})
        with connect(ws_url(gateway, model["id"])) as ws:
            assert run_code(ws, "print('up')")[0] == "up\n"
            started = time.monotonic()
            gateway.proc.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    ws.recv(timeout=10)
            assert closed.value.rcvd.code == 1001
        assert gateway.stop() == 0
        assert time.monotonic() - started < 5
    finally:
        gateway.stop()


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("tests/kernel_api/some-notebook.ipynb", REPO / "tests" / "kernel_api"),
        ("../../../../etc/passwd", REPO),
    ],
)
def test_path_sets_the_working_directory_inside_the_gateways(gw, path, expected):
    status, _, model = call(gw, "POST", "/api/kernels", {"path": path})
    assert status == 201
    try:
        with connect(ws_url(gw, model["id"])) as ws:
            assert run_code(ws, "import os; print(os.getcwd())")[0] == f"{expected}\n"
    finally:
        call(gw, "DELETE", f"/api/kernels/{model['id']}")
