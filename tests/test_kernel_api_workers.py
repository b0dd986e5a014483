"""The kernel API with several gunicorn workers: any worker reaches any kernel of the instance.

Each request below opens a new connection, so the operating system hands it to any of the three
workers; the assertions hold whichever worker answers."""

from __future__ import annotations

import json
import threading
import time

import pytest
from conftest import REPO
from gateway import Gateway, call_json, children_of, gateway_env
from messages import execute_request, run_code, ws_url
from websockets.sync.client import connect

HERE = REPO / "tests" / "kernel_api"


@pytest.fixture(scope="module")
def gw():
    gateway = Gateway("--workers", "3", env=gateway_env(FNGW_MANIFEST=str(HERE / "workers.yaml")))
    try:
        gateway.wait_ready()
        assert len(children_of(gateway.proc.pid)) == 3
        yield gateway
    finally:
        gateway.stop()


def call(gw, method, path, body=None):
    status, _, parsed = call_json(gw, method, path, body)
    return status, parsed


def test_every_worker_serves_every_kernel(gw):
    status, model = call(gw, "POST", "/api/kernels", {})
    assert status == 201
    kid = model["id"]
    try:
        for _ in range(15):
            assert call(gw, "GET", f"/api/kernels/{kid}")[0] == 200
            assert kid in [k["id"] for k in call(gw, "GET", "/api/kernels")[1]]
        with connect(ws_url(gw, kid, "a")) as ws:
            assert run_code(ws, "shared_state = 41")[1] == "ok"
        for i in range(6):  # new connections, landing on any worker, see the same kernel
            with connect(ws_url(gw, kid, f"b{i}")) as ws:
                assert run_code(ws, "print(shared_state + 1)")[0] == "42\n"
        assert call(gw, "POST", f"/api/kernels/{kid}/interrupt")[0] == 204
        assert call(gw, "POST", f"/api/kernels/{kid}/restart")[0] == 200
        for i in range(4):
            with connect(ws_url(gw, kid, f"c{i}")) as ws:
                assert run_code(ws, "print('after restart')")[0] == "after restart\n"
    finally:
        assert call(gw, "DELETE", f"/api/kernels/{kid}")[0] == 204
    for _ in range(10):
        assert call(gw, "GET", f"/api/kernels/{kid}")[0] == 404


def test_max_kernels_holds_across_workers(gw):
    results = []
    lock = threading.Lock()

    def post():
        got = call(gw, "POST", "/api/kernels", {})
        with lock:
            results.append(got)

    threads = [threading.Thread(target=post) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    created = [body["id"] for status, body in results if status == 201]
    try:
        assert len(created) == 3
        assert sorted(status for status, _ in results) == [201] * 3 + [403] * 7
    finally:
        for kid in created:
            call(gw, "DELETE", f"/api/kernels/{kid}")


def test_sessions_are_the_same_through_every_worker(gw):
    status, session = call(
        gw, "POST", "/api/sessions", {"path": "w.ipynb", "type": "notebook", "kernel": {"name": "python3"}}
    )
    assert status == 201
    sid = session["id"]
    try:
        for _ in range(10):
            assert call(gw, "GET", f"/api/sessions/{sid}")[1]["kernel"]["id"] == session["kernel"]["id"]
            assert sid in [s["id"] for s in call(gw, "GET", "/api/sessions")[1]]
            assert call(gw, "POST", "/api/sessions", {"path": "w.ipynb", "type": "notebook"})[1]["id"] == sid
        assert call(gw, "PATCH", f"/api/sessions/{sid}", {"path": "moved.ipynb"})[1]["path"] == "moved.ipynb"
        for _ in range(5):
            assert call(gw, "GET", f"/api/sessions/{sid}")[1]["path"] == "moved.ipynb"
    finally:
        assert call(gw, "DELETE", f"/api/sessions/{sid}")[0] == 204
    for _ in range(5):
        assert call(gw, "GET", f"/api/sessions/{sid}")[0] == 404


def test_a_session_reconnecting_through_any_worker_gets_what_it_missed(gw):
    """One worker serves all of a kernel's websockets (the others splice theirs to it), so the
    replay of a disconnected session is there whichever worker its new connection reaches."""
    status, model = call(gw, "POST", "/api/kernels", {})
    assert status == 201
    kid = model["id"]
    try:
        for round_ in range(4):  # new connections: each lands on any of the three workers
            session = f"away{round_}"
            msg_id, msg = execute_request(f"import time; time.sleep(0.5); print('missed {round_}')", session)
            with connect(ws_url(gw, kid, session)) as ws:
                ws.send(json.dumps(msg))
            time.sleep(1.5)  # the output comes while no connection of the session is open
            with connect(ws_url(gw, kid, session)) as again:
                got, replied = [], False
                while not replied or not got:
                    reply = json.loads(again.recv(timeout=30))
                    if reply["parent_header"].get("msg_id") != msg_id:
                        continue
                    if reply["msg_type"] == "stream":
                        got.append(reply["content"]["text"])
                    replied = replied or reply["msg_type"] == "execute_reply"
                assert got == [f"missed {round_}\n"]
    finally:
        assert call(gw, "DELETE", f"/api/kernels/{kid}")[0] == 204
