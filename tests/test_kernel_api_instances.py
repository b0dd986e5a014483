"""The kernel API across instances (issue 17): two gateway instances (two workers each) sharing a
real redis-server as their registry, behind a real round-robin balancer without stickiness
(haproxy). Any instance answers for any kernel: the one that does not run it relays."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
from gateway import Gateway, HttpPeer, call_json, children_of, free_port, gateway_env, running
from messages import execute_request, run_code, ws_url
from services import Haproxy
from test_jupyter_server import run_notebook_code, running_jupyter_server
from websockets.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus
from websockets.sync.client import connect

from fngw.kernel_api.redis_records import INSTANCE_TTL

MANIFEST = """\
version: 1
kernel_api:
  list_kernels: true
  max_kernels: 4
  registry: {url}
"""


@pytest.fixture(scope="module")
def deployment(redis_server, tmp_path_factory):
    folder = tmp_path_factory.mktemp("instances")
    manifest = folder / "fngw.yaml"
    manifest.write_text(MANIFEST.format(url=redis_server.url.replace("/0", "/5")))
    ports = [free_port(), free_port()]
    gateways = [
        Gateway(
            "--workers",
            "2",
            port=port,
            env=gateway_env(FNGW_MANIFEST=str(manifest), FNGW_INSTANCE_ADDRESS=f"http://127.0.0.1:{port}"),
        )
        for port in ports
    ]
    balancer = None
    try:
        for gateway in gateways:
            gateway.wait_ready("/_fngw/ready", timeout=120)
        balancer = Haproxy(ports)
        yield gateways, HttpPeer(balancer.port, balancer.proc)
    finally:
        if balancer is not None:
            balancer.close()
        for gateway in gateways:
            gateway.stop()


def start_kernel(peer) -> str:
    status, _, model = call_json(peer, "POST", "/api/kernels", {"name": "python3"})
    assert status == 201, model
    return model["id"]


def test_any_instance_answers_for_any_kernel(deployment):
    (a, b), balancer = deployment
    kernel_id = start_kernel(balancer)
    for peer in (a, b, balancer, balancer):
        status, _, model = call_json(peer, "GET", f"/api/kernels/{kernel_id}")
        assert (status, model["id"], model["name"]) == (200, kernel_id, "python3")
        status, _, listed = call_json(peer, "GET", "/api/kernels")
        assert kernel_id in [k["id"] for k in listed]
    # One kernel, whichever instance a websocket lands on: state set through one is seen through
    # the other (one of the two connections is relayed to the instance that runs it).
    with connect(ws_url(a, kernel_id)) as on_a, connect(ws_url(b, kernel_id, session="t")) as on_b:
        assert run_code(on_a, "shared = 41") == ("", "ok")
        assert run_code(on_b, "print(shared + 1)") == ("42\n", "ok")
    for _ in range(4):  # through the balancer: round robin, no stickiness
        with connect(ws_url(balancer, kernel_id)) as ws:
            assert run_code(ws, "print(shared)") == ("41\n", "ok")
    assert call_json(balancer, "DELETE", f"/api/kernels/{kernel_id}")[0] == 204
    for peer in (a, b):
        assert call_json(peer, "GET", f"/api/kernels/{kernel_id}")[0] == 404


def test_interrupt_and_restart_through_either_instance(deployment):
    (a, b), _ = deployment
    kernel_id = start_kernel(a)
    for other in (b, a):  # one of them does not run it
        with connect(ws_url(a, kernel_id)) as ws:
            msg_id, msg = execute_request("import time; time.sleep(60)")
            ws.send(json.dumps(msg))
            time.sleep(1.0)  # let the cell start sleeping
            assert call_json(other, "POST", f"/api/kernels/{kernel_id}/interrupt")[0] == 204
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                reply = json.loads(ws.recv(timeout=20))
                if reply["msg_type"] == "execute_reply" and reply["parent_header"]["msg_id"] == msg_id:
                    assert reply["content"]["status"] == "error"
                    assert reply["content"]["ename"] == "KeyboardInterrupt"
                    break
            else:
                raise AssertionError("the interrupted cell did not reply")
    with connect(ws_url(b, kernel_id)) as ws:
        assert run_code(ws, "before = 1") == ("", "ok")
    status, _, model = call_json(b, "POST", f"/api/kernels/{kernel_id}/restart")
    assert (status, model["id"]) == (200, kernel_id)
    with connect(ws_url(a, kernel_id)) as ws:
        assert run_code(ws, "print('before' in globals())") == ("False\n", "ok")
    assert call_json(b, "DELETE", f"/api/kernels/{kernel_id}")[0] == 204


def test_max_kernels_counts_the_whole_deployment(deployment):
    (a, b), balancer = deployment
    started = []
    results: list[int] = []

    def post() -> None:
        status, _, model = call_json(balancer, "POST", "/api/kernels", {"name": "python3"})
        results.append(status)
        if status == 201:
            started.append(model["id"])

    threads = [threading.Thread(target=post) for _ in range(6)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    try:
        assert sorted(results) == [201] * 4 + [403] * 2
    finally:
        for kernel_id in started:
            call_json(a, "DELETE", f"/api/kernels/{kernel_id}")
    assert call_json(b, "GET", "/api/kernels")[2] == []


def test_sessions_are_shared(deployment):
    (a, b), _ = deployment
    body = {"path": "shared.ipynb", "type": "notebook", "kernel": {"name": "python3"}}
    status, _, session = call_json(a, "POST", "/api/sessions", body)
    assert status == 201, session
    status, _, again = call_json(b, "POST", "/api/sessions", body)  # one session per path
    assert again["id"] == session["id"] and again["kernel"]["id"] == session["kernel"]["id"]
    assert call_json(b, "GET", f"/api/sessions/{session['id']}")[2]["path"] == "shared.ipynb"
    assert call_json(b, "DELETE", f"/api/sessions/{session['id']}")[0] == 204  # and its kernel, on a
    assert call_json(a, "GET", f"/api/kernels/{session['kernel']['id']}")[0] == 404


def test_one_session_per_path_when_asked_at_once_through_both_instances(deployment):
    (a, b), balancer = deployment
    body = {"path": "at-once.ipynb", "type": "notebook", "kernel": {"name": "python3"}}
    answers: list[tuple[int, dict]] = []

    def post(peer) -> None:
        status, _, session = call_json(peer, "POST", "/api/sessions", body)
        answers.append((status, session))

    threads = [threading.Thread(target=post, args=(peer,)) for peer in (a, b, balancer, balancer, a, b)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert {status for status, _ in answers} == {201}, answers
    assert len({session["id"] for _, session in answers}) == 1, answers
    assert len({session["kernel"]["id"] for _, session in answers}) == 1, answers
    kernels = call_json(a, "GET", "/api/kernels")[2]
    assert [k["id"] for k in kernels] == [answers[0][1]["kernel"]["id"]]
    assert call_json(b, "DELETE", f"/api/sessions/{answers[0][1]['id']}")[0] == 204


def test_a_browser_page_of_the_gateway_opens_websockets_on_either_instance(deployment):
    # A browser sends Origin with the websocket upgrade; the instance a relayed upgrade reaches
    # checks it against the Host the browser used, as the relaying one did.
    (a, b), balancer = deployment
    kernel_id = start_kernel(a)
    try:
        for peer in (a, b, balancer, balancer):
            with connect(ws_url(peer, kernel_id), origin=f"http://127.0.0.1:{peer.port}") as ws:
                assert run_code(ws, "print(1)") == ("1\n", "ok")
        with pytest.raises(InvalidStatus) as refused:  # and another site's page is still refused
            connect(ws_url(b, kernel_id), origin="http://elsewhere.example")
        assert refused.value.response.status_code == 403
    finally:
        call_json(a, "DELETE", f"/api/kernels/{kernel_id}")


def test_jupyter_server_runs_notebooks_through_the_balancer(deployment, tmp_path):
    (a, b), balancer = deployment
    with running_jupyter_server(tmp_path, balancer.port) as jupyter_server:
        for _ in range(2):  # its REST calls and its websocket land on both instances in turn
            assert run_notebook_code(jupyter_server, "print(6 * 7)") == "42\n"
    assert call_json(a, "GET", "/api/kernels")[2] == []


def test_redis_unreachable_is_503_running_kernels_keep_working_and_it_recovers(deployment, redis_server):
    (a, b), _ = deployment
    kernel_id = start_kernel(a)
    with connect(ws_url(a, kernel_id)) as ws:
        assert run_code(ws, "x = 1") == ("", "ok")
        redis_server.stop()
        try:
            status, headers, body = call_json(b, "GET", f"/api/kernels/{kernel_id}")
            assert status == 503 and "retry-after" in headers
            assert "the kernel registry (Redis at redis://127.0.0.1:" in body["message"]
            assert call_json(a, "POST", "/api/kernels", {"name": "python3"})[0] == 503
            assert run_code(ws, "print(x + 1)") == ("2\n", "ok")  # the open websocket keeps working
            # A new websocket to the instance that runs the kernel reaches the worker serving it,
            # which answers from what it knows; listing and creating need the registry.
            with connect(ws_url(a, kernel_id, session="meanwhile")) as again:
                assert run_code(again, "print(x + 2)") == ("3\n", "ok")
            assert call_json(a, "DELETE", f"/api/kernels/{kernel_id}")[0] == 503  # nothing changes
        finally:
            redis_server.start()  # without its data: the instances publish their kernels again
    deadline = time.monotonic() + 30
    while call_json(b, "GET", f"/api/kernels/{kernel_id}")[0] != 200:
        assert time.monotonic() < deadline, "the kernel was not published again"
        time.sleep(0.5)
    with connect(ws_url(b, kernel_id)) as ws:
        assert run_code(ws, "print(x)") == ("1\n", "ok")
    assert call_json(b, "DELETE", f"/api/kernels/{kernel_id}")[0] == 204


def test_a_kernel_outlives_its_killed_worker_and_a_reload(deployment):
    (a, b), _ = deployment
    kernel_id = start_kernel(a)
    with connect(ws_url(b, kernel_id)) as ws:
        assert run_code(ws, "survivor = 'yes'") == ("", "ok")
    [(pid, worker)] = [(k, w) for w in children_of(a.proc.pid) for k in children_of(w)]
    os.kill(worker, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while True:  # another worker of a takes it over; b relays to a meanwhile
        try:
            with connect(ws_url(b, kernel_id)) as ws:
                if run_code(ws, "print(survivor)") == ("yes\n", "ok"):
                    break
        except (OSError, InvalidMessage, ConnectionClosed):
            pass  # a connection the killed worker had already accepted is lost with it
        assert time.monotonic() < deadline, "the kernel did not survive its worker"
        time.sleep(0.5)
    before = set(children_of(a.proc.pid))
    a.proc.send_signal(signal.SIGHUP)
    while before & set(children_of(a.proc.pid)) or len(children_of(a.proc.pid)) != 2:
        assert time.monotonic() < deadline + 60, "the reload did not replace the workers"
        time.sleep(0.2)
    assert running(pid)
    for peer in (a, b):
        with connect(ws_url(peer, kernel_id)) as ws:
            assert run_code(ws, "print(survivor)") == ("yes\n", "ok")
    assert call_json(b, "DELETE", f"/api/kernels/{kernel_id}")[0] == 204


def test_a_lost_instances_kernels_are_reported_gone_within_the_heartbeat_ttl(deployment):
    """Last in this module: it kills instance a. Every process of it dies at once (a lost machine):
    nothing is left to tidy the records, so the heartbeat's expiry must."""
    (a, b), balancer = deployment
    body = {"path": "lost.ipynb", "type": "notebook", "kernel": {"name": "python3"}}
    status, _, session = call_json(a, "POST", "/api/sessions", body)
    assert status == 201, session
    kernel_id = session["kernel"]["id"]
    assert call_json(b, "GET", f"/api/kernels/{kernel_id}")[0] == 200
    workers = children_of(a.proc.pid)
    doomed = [a.proc.pid, *workers, *[k for w in workers for k in children_of(w)]]
    for pid in doomed:
        os.kill(pid, signal.SIGKILL)
    a.proc.wait()
    lost_at = time.monotonic()
    while call_json(b, "GET", f"/api/kernels/{kernel_id}")[0] != 404:
        assert time.monotonic() - lost_at < INSTANCE_TTL + 10, "the lost instance's kernel is still listed"
        time.sleep(1)
    assert call_json(b, "GET", "/api/kernels")[2] == []
    assert call_json(b, "GET", f"/api/sessions/{session['id']}")[0] == 404
    for pid in doomed:
        assert not running(pid)
