"""Websocket clients for the kernel API benchmark: many idle connections, one busy one.

    python bench/wsclient.py PORT KERNEL_ID IDLE EXECUTES [SERVER_PID]   -> JSON summary on stdout

Opens IDLE connections to one kernel (gevent + wsproto, legacy framing) in a second process, then
measures EXECUTES round trips of `1` on one more connection, then how long after the last of them
50 of the idle connections saw its final status (the broadcast's lag), then checks that every idle
connection still answers a websocket ping and that a sample of 50 still get a kernel_info_reply (every kernel message is
broadcast to every connection, so asking all of them would cost IDLE squared messages), and closes
everything. 127.0.0.1 only; bounded by its arguments.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import base64  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

import gevent  # noqa: E402
import gevent.event  # noqa: E402
import gevent.pool  # noqa: E402
import gevent.queue  # noqa: E402
from common import shell_message  # noqa: E402
from wsproto.connection import Connection, ConnectionType  # noqa: E402
from wsproto.events import CloseConnection, Ping, Pong, TextMessage  # noqa: E402


class Client:
    """A websocket client whose reader greenlet answers pings, as a browser does, so an idle
    connection stays alive; kernel messages are queued for ``request``."""

    def __init__(self, port: int, path: str, keep_messages: bool):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during handshake")
            head += chunk
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(head.split(b"\r\n", 1)[0].decode())
        self.ws = Connection(ConnectionType.CLIENT)
        rest = head.split(b"\r\n\r\n", 1)[1]
        if rest:
            self.ws.receive_data(rest)
        self.keep_messages = keep_messages
        self.messages: gevent.queue.Queue = gevent.queue.Queue()
        self.pong = gevent.event.Event()
        self.idle_at: dict[str, float] = {}  # parent msg_id -> when its status idle arrived (sampled)
        self.arrived = gevent.event.Event()
        self.last_id = ""
        self.closed = False
        self.reader = gevent.spawn(self._read)

    def _read(self) -> None:
        while True:
            for event in self.ws.events():
                if isinstance(event, TextMessage):
                    if self.keep_messages:
                        self.messages.put(event.data)
                        if '"execution_state": "idle"' in event.data:
                            parent = json.loads(event.data)["parent_header"].get("msg_id", "")
                            self.idle_at[parent] = time.perf_counter()
                            self.arrived.set()
                elif isinstance(event, Ping):
                    self.sock.sendall(self.ws.send(event.response()))
                elif isinstance(event, Pong):
                    self.pong.set()
                elif isinstance(event, CloseConnection):
                    self.closed = True
                    return
            try:
                data = self.sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                self.closed = True
                return
            self.ws.receive_data(data)

    def request(self, msg_type: str, content: dict) -> float:
        msg_id = self.last_id = uuid.uuid4().hex
        t0 = time.perf_counter()
        self.sock.sendall(self.ws.send(TextMessage(data=shell_message(msg_type, content, msg_id))))
        while True:
            msg = json.loads(self.messages.get(timeout=60))
            if msg.get("channel") == "shell" and msg["parent_header"].get("msg_id") == msg_id:
                return time.perf_counter() - t0

    def ping(self) -> None:
        self.pong.clear()
        self.sock.sendall(self.ws.send(Ping(payload=b"bench")))
        if not self.pong.wait(30):
            raise ConnectionError("no pong")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.sock.sendall(self.ws.send(CloseConnection(code=1000)))
        self.reader.kill(block=False)
        self.sock.close()


EXECUTE = {"code": "1", "silent": False, "store_history": False, "user_expressions": {}, "allow_stdin": False}


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def idle_role(port: int, kernel_id: str, idle: int) -> None:
    """The idle connections, in a process of their own so that reading their broadcasts does not
    slow the measuring client down (real watchers are other machines). Prints ``ready``, waits for
    the active client's last msg_id on stdin, then reports lag and usability."""
    path = f"/api/kernels/{kernel_id}/channels"
    pool = gevent.pool.Pool(200)
    opened: list[Client] = []
    failed = 0

    def open_one(i: int) -> None:
        nonlocal failed
        try:
            opened.append(Client(port, f"{path}?session_id=idle-{i}", keep_messages=i < 50))
        except (OSError, ConnectionError):
            failed += 1

    for i in range(idle):
        pool.spawn(open_one, i)
    pool.join()
    print("ready", flush=True)
    line = gevent.get_hub().threadpool.apply(sys.stdin.readline).split()
    last_id, done = line[0], float(line[1])
    sampled = [c for c in opened if c.keep_messages]
    lags = []
    with gevent.Timeout(30, False):  # how far behind the watchers saw the last execute finish
        for client in sampled:
            while last_id not in client.idle_at:
                client.arrived.clear()
                client.arrived.wait()
            lags.append(client.idle_at[last_id] - done)
    lags.sort()
    answered = usable = 0

    def probe(client: Client) -> None:
        nonlocal answered, usable
        try:
            with gevent.Timeout(30):
                client.ping()
                answered += 1
                if client.keep_messages:
                    client.request("kernel_info_request", {})
                    usable += 1
        except (gevent.Timeout, OSError, ConnectionError):
            pass

    probe_pool = gevent.pool.Pool(100)
    for client in opened:
        probe_pool.spawn(probe, client)
    probe_pool.join()
    for client in opened:
        client.close()
    report = {
        "opened": len(opened),
        "failed": failed,
        "answer_pings": answered,
        "kernel_info_of_50": usable,
        "watchers_lag_ms_max": lags[-1] * 1000 if lags else None,
        "watchers_seen_last": len(lags),
    }
    print(json.dumps(report), flush=True)


def main() -> None:
    if sys.argv[1] == "idle":
        idle_role(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
        return
    port, kernel_id, idle, executes = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    server_pid = int(sys.argv[5]) if len(sys.argv) > 5 and sys.argv[5] != "0" else None
    watchers = None
    if idle:
        import subprocess

        watchers = subprocess.Popen(
            [sys.executable, __file__, "idle", str(port), kernel_id, str(idle)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        if watchers.stdout.readline().strip() != "ready":
            raise SystemExit("the idle connections did not open")
    rss_open = _rss_mb(server_pid) if server_pid else None
    active = Client(port, f"/api/kernels/{kernel_id}/channels?session_id=active", keep_messages=True)
    times = sorted(active.request("execute_request", EXECUTE) for _ in range(executes))
    done = time.perf_counter()
    active.close()
    result = {
        "server_rss_mb_open": rss_open,
        "p50_ms": times[len(times) // 2] * 1000,
        "p99_ms": times[int(0.99 * (len(times) - 1))] * 1000,
    }
    if watchers is not None:
        out, _ = watchers.communicate(f"{active.last_id} {done}\n", timeout=600)
        result.update(json.loads(out.strip().splitlines()[-1]))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
