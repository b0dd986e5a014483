"""Kernel API inputs from issue 11, through a real gunicorn: case-insensitive kernelspec names, the
client's launch timeout, kernel starts nobody waits for, a client that stops reading a flood of
output, and a worker attaching to a kernel another worker has just created."""

from __future__ import annotations

import json
import select
import socket
import time

import pytest
from conftest import write_notebook
from gateway import Gateway, call_json, children_of, gateway_env, running
from messages import execute_request, run_code, ws_url
from websockets.sync.client import connect
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request, TextMessage

SLOW_SEED = "import time\ntime.sleep(3)\nseeded = True"


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kernel-api-edges")
    write_notebook(folder / "slow_seed.ipynb", [SLOW_SEED])
    (folder / "fngw.yaml").write_text(
        "version: 1\n"
        "server: {max_websocket_queue: 1MiB}\n"
        "kernel_api:\n"
        "  list_kernels: true\n"
        "  max_kernels: 1\n"
        "  allowed_kernels: [Python3]\n"
        "  default_kernel: PYTHON3\n"
        "  launch_timeout: 20s\n"
        "  seed: slow_seed.ipynb\n"
    )
    gateway = Gateway(env=gateway_env(FNGW_MANIFEST=str(folder / "fngw.yaml")))
    try:
        gateway.wait_ready()
        yield gateway
    finally:
        gateway.stop()


def kernel_processes(gw) -> list[int]:
    return [pid for worker in children_of(gw.proc.pid) for pid in children_of(worker) if running(pid)]


def listed(gw) -> list[dict]:
    return call_json(gw, "GET", "/api/kernels")[2]


def test_kernel_names_are_case_insensitive_and_a_404_lists_the_names(gw):
    status, _, specs = call_json(gw, "GET", "/api/kernelspecs")
    assert status == 200 and specs["default"] == "python3" and list(specs["kernelspecs"]) == ["python3"]
    assert call_json(gw, "GET", "/api/kernelspecs/Python3")[2]["name"] == "python3"
    status, _, error = call_json(gw, "POST", "/api/kernels", {"name": "nope"})
    assert status == 404 and "available: python3" in error["message"]
    status, _, model = call_json(gw, "POST", "/api/kernels", {"name": "Python3"})
    assert status == 201 and model["name"] == "python3"
    try:
        with connect(ws_url(gw, model["id"])) as ws:
            assert run_code(ws, "print(seeded)") == ("True\n", "ok")
    finally:
        assert call_json(gw, "DELETE", f"/api/kernels/{model['id']}")[0] == 204


def test_the_clients_launch_timeout_is_honoured_and_leaves_nothing(gw):
    before = kernel_processes(gw)
    started = time.monotonic()
    status, _, error = call_json(gw, "POST", "/api/kernels", {"env": {"KERNEL_LAUNCH_TIMEOUT": "1"}})
    assert status == 504, error
    assert time.monotonic() - started < 3  # the 3 s seed was not waited for
    assert "KERNEL_LAUNCH_TIMEOUT=1" in error["message"] and "nothing was left running" in error["message"]
    assert listed(gw) == []
    assert kernel_processes(gw) == before
    status, _, error = call_json(gw, "POST", "/api/kernels", {"env": {"KERNEL_LAUNCH_TIMEOUT": "soon"}})
    assert status == 400 and "KERNEL_LAUNCH_TIMEOUT" in error["message"]


def test_a_start_abandoned_by_its_client_is_stopped_and_frees_its_slot(gw):
    def wait_for(condition, what):  # condition may act (start a kernel): called until it says yes
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.05)  # polling the gateway's state, not waiting a guessed time
        raise AssertionError(what)

    def start_then_hang_up() -> bool:
        """A start that the client leaves while its kernel's 3 s seed runs; False when the gateway
        answered at once (the previous abandoned start still held the one max_kernels slot)."""
        with socket.create_connection(("127.0.0.1", gw.port)) as sock:
            sock.sendall(b"POST /api/kernels HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if kernel_processes(gw):
                    return True  # the start is under way: hang up now
                if select.select([sock], [], [], 0.05)[0]:
                    return False  # answered (403) before any kernel started
        raise AssertionError("the start neither began nor was refused")

    for _ in range(2):  # two clients that give up before the seed is done
        wait_for(start_then_hang_up, "the first abandoned start never let go of its slot")
    wait_for(lambda: not listed(gw) and not kernel_processes(gw), "the abandoned starts left kernels")
    created: list[dict] = []

    def slot_free() -> bool:  # max_kernels is 1: a start succeeds once the abandoned ones let go
        status, _, model = call_json(gw, "POST", "/api/kernels", {})
        if status == 201:
            created.append(model)
        return status == 201

    wait_for(slot_free, "the abandoned starts kept their max_kernels slot")
    assert call_json(gw, "DELETE", f"/api/kernels/{created[0]['id']}")[0] == 204


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def stalled_websocket(gw, kernel_id: str, code: str) -> tuple[socket.socket, str]:
    """A websocket client that sends one execute_request and then never reads (a raw socket with a
    small receive buffer: websocket libraries read in the background)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", gw.port))
    client = WSConnection(ConnectionType.CLIENT)
    target = f"/api/kernels/{kernel_id}/channels?session_id=stalled"
    sock.sendall(client.send(Request(host="127.0.0.1", target=target)))
    while not any(isinstance(e, AcceptConnection) for e in client.events()):
        client.receive_data(sock.recv(4096))
    msg_id, msg = execute_request(code, "stalled")
    sock.sendall(client.send(TextMessage(data=json.dumps(msg))))
    return sock, msg_id


def test_a_client_that_stops_reading_a_flood_is_disconnected_and_memory_stays_bounded(gw):
    status, _, model = call_json(gw, "POST", "/api/kernels", {})
    assert status == 201
    kid = model["id"]
    (worker,) = children_of(gw.proc.pid)
    try:
        before = rss_kib(worker)
        stalled, stalled_msg_id = stalled_websocket(gw, kid, "for i in range(300):\n    print('y' * (1 << 20))")
        peak, states = before, []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            peak = max(peak, rss_kib(worker))
            status, _, model = call_json(gw, "GET", f"/api/kernels/{kid}")  # REST keeps answering meanwhile
            assert status == 200
            states.append(model["execution_state"])
            if "busy" in states and states[-1] == "idle":
                break
            time.sleep(0.05)
        assert states[-1] == "idle"
        assert (peak - before) < 64 * 1024, f"the worker grew {(peak - before) // 1024} MiB for 300 MiB of output"
        stalled.close()
        with connect(ws_url(gw, kid, "stalled"), max_size=None) as again:  # dropped with 1008, back:
            replayed = []  # its reply and the final idle status were kept for it
            while ("execute_reply" not in replayed) or ("idle" not in replayed):
                msg = json.loads(again.recv(timeout=20))
                if msg["parent_header"].get("msg_id") == stalled_msg_id:
                    replayed.append(msg["content"].get("execution_state") or msg["msg_type"])
        with connect(ws_url(gw, kid, "reader")) as ws:  # the kernel serves the next client
            assert run_code(ws, "print('after the flood')") == ("after the flood\n", "ok")
        assert "fell more than 1048576 bytes behind" in gw.output or "does not keep up" in gw.output
    finally:
        assert call_json(gw, "DELETE", f"/api/kernels/{kid}")[0] == 204


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    folder = tmp_path_factory.mktemp("attach")
    (folder / "fngw.yaml").write_text("version: 1\nkernel_api: {prewarm: 1}\n")
    gateway = Gateway("--workers", "2", env=gateway_env(FNGW_MANIFEST=str(folder / "fngw.yaml")))
    try:
        gateway.wait_ready()
        yield gateway
    finally:
        gateway.stop()


def test_the_first_execute_on_a_worker_that_attaches_completes(two_workers):
    for i in range(12):  # each round: a new kernel, then new connections that land on either worker
        status, _, model = call_json(two_workers, "POST", "/api/kernels", {})
        assert status == 201
        try:
            for j in range(2):
                with connect(ws_url(two_workers, model["id"], f"r{i}-{j}")) as ws:
                    assert run_code(ws, f"print({i} * {j})") == (f"{i * j}\n", "ok")
        finally:
            assert call_json(two_workers, "DELETE", f"/api/kernels/{model['id']}")[0] == 204


def test_sigterm_while_a_kernel_starts_answers_503_and_leaves_nothing(tmp_path):
    import threading

    write_notebook(tmp_path / "seed.ipynb", ["import time\ntime.sleep(30)"])
    (tmp_path / "fngw.yaml").write_text("version: 1\nkernel_api: {seed: seed.ipynb}\n")
    gateway = Gateway(env=gateway_env(FNGW_MANIFEST=str(tmp_path / "fngw.yaml")))
    answers = []
    try:
        gateway.wait_ready()
        (worker,) = children_of(gateway.proc.pid)
        post = threading.Thread(target=lambda: answers.append(call_json(gateway, "POST", "/api/kernels", {})))
        post.start()
        deadline = time.monotonic() + 20
        while not children_of(worker) and time.monotonic() < deadline:
            time.sleep(0.05)  # until its kernel process exists
        gateway.proc.send_signal(15)
        post.join(20)
        assert gateway.proc.wait(20) == 0
    finally:
        gateway.stop()
    ((status, headers, error),) = answers
    assert status == 503 and headers["retry-after"] == "1" and "shutting down" in error["message"]
