"""Output floods: the gateway's memory and other requests' latency while a cell prints 300 MiB.

    python bench/flood.py [--mib 300]   -> a report on stdout, the figures for docs/benchmarks.md

One gunicorn worker serves a notebook endpoint pool and the kernel API. Two scenarios, each run
twice in this one process run: with fngw's bounds (`server.max_websocket_queue` and
`server.max_response` at 16 MiB) and with them lifted (4 GiB each), as the ratio:

- kernel API: a cell prints MIB x 1 MiB while one websocket client never reads (a raw socket with a
  4 KiB receive buffer) and a second client reads everything;
- notebook endpoint: `GET /flood` prints MIB x 1 MiB on a pool kernel.

Meanwhile a third connection measures other requests: `GET /quiet` (a notebook endpoint on its own
pool) and `GET /api/kernels/{id}`, one every 20 ms. Reported: the worker's RSS growth over its
level before the flood (sampled every 20 ms), p50/p99 of the other requests, and how each flood
ended. 127.0.0.1 only; bounded by its arguments (each flood stops at 120 s).
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import children, rss_mb, shell_message, start_fngw, stop
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request, TextMessage

NOTEBOOK_CELLS = [
    "import json",
    "# GET /quiet\nprint('quiet')",
    "# GET /flood\nimport sys\nfor i in range(int(json.loads(REQUEST)['args']['mib'][0])):\n    print('x' * (1 << 20))",
]


def write_setup(folder: Path, bound: str) -> Path:
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "python3", "language": "python"}})
    nb.cells = [new_code_cell(c) for c in NOTEBOOK_CELLS]
    nbformat.write(nb, str(folder / "flood.ipynb"))
    manifest = folder / "fngw.yaml"
    manifest.write_text(
        "version: 1\n"
        f"server: {{max_response: {bound}, max_websocket_queue: {bound}}}\n"
        "defaults: {timeout: 120s}\n"
        "notebooks:\n"
        "  flood:\n"
        "    path: flood.ipynb\n"
        "    endpoints:\n"
        "      'GET /quiet': {pool: {size: 1}}\n"
        "kernel_api: {}\n"
    )
    return manifest


def call(port: int, method: str, path: str, body: bytes | None = None, timeout: float = 120) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"} if body else {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def websocket(port: int, kernel_id: str, session: str, rcvbuf: int | None = None) -> tuple[socket.socket, WSConnection]:
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", port))
    ws = WSConnection(ConnectionType.CLIENT)
    sock.sendall(ws.send(Request(host="127.0.0.1", target=f"/api/kernels/{kernel_id}/channels?session_id={session}")))
    while not any(isinstance(e, AcceptConnection) for e in ws.events()):
        ws.receive_data(sock.recv(65536))
    return sock, ws


def reader(sock: socket.socket, ws: WSConnection, received: list[int], done: threading.Event) -> None:
    """Reads everything until the flood's idle status (or the connection's end)."""
    sock.settimeout(120)
    while not done.is_set():
        try:
            data = sock.recv(1 << 20)
        except OSError:
            return
        if not data:
            return
        received[0] += len(data)
        ws.receive_data(data)
        for event in ws.events():
            if isinstance(event, TextMessage) and '"execution_state": "idle"' in event.data and "flood" in event.data:
                done.set()


class Sampler:
    """The worker's RSS and other requests' latencies, every 20 ms, in a thread of its own."""

    def __init__(self, port: int, worker: int, kernel_id: str):
        self.port, self.worker, self.kernel_id = port, worker, kernel_id
        self.rss: list[float] = []
        self.latencies: list[float] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        i = 0
        while not self.stopping.is_set():
            self.rss.append(rss_mb(self.worker))
            path = "/quiet" if i % 2 else f"/api/kernels/{self.kernel_id}"
            started = time.perf_counter()
            try:
                status, _ = call(self.port, "GET", path, timeout=30)
                if status == 200:
                    self.latencies.append(time.perf_counter() - started)
            except OSError:
                pass
            i += 1
            time.sleep(0.02)

    def __enter__(self) -> Sampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def scenario(bound: str, mib: int) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="fngw-bench-flood-"))
    manifest = write_setup(folder, bound)
    from common import free_port

    port = free_port()
    proc = start_fngw(manifest, port)
    try:
        (worker,) = children(proc.pid)
        status, body = call(port, "POST", "/api/kernels", b"{}")
        kernel_id = json.loads(body)["id"]
        for _ in range(5):  # warm both paths
            call(port, "GET", "/quiet")
            call(port, "GET", f"/api/kernels/{kernel_id}")
        time.sleep(1)
        results: dict = {"bound": bound}

        # Kernel API: one stalled client, one reading client.
        stalled, stalled_ws = websocket(port, kernel_id, "stalled", rcvbuf=4096)
        live, live_ws = websocket(port, kernel_id, "live")
        received, done = [0], threading.Event()
        reading = threading.Thread(target=reader, args=(live, live_ws, received, done), daemon=True)
        reading.start()
        before = rss_mb(worker)
        code = f"for i in range({mib}):\n    print('y' * (1 << 20))"
        message = json.loads(shell_message("execute_request", {"code": code, "silent": False}, "flood", "stalled"))
        started = time.monotonic()
        with Sampler(port, worker, kernel_id) as sampler:
            stalled.sendall(stalled_ws.send(TextMessage(data=json.dumps(message))))
            done.wait(120)
        results["api"] = {
            "seconds": round(time.monotonic() - started, 1),
            "rss_growth_mb": round(max(sampler.rss) - before, 1),
            "live_client_received_mib": round(received[0] / 2**20, 1),
            "p50_ms": round(1000 * statistics.median(sampler.latencies), 1),
            "p99_ms": round(1000 * percentile(sampler.latencies, 0.99), 1),
            "requests": len(sampler.latencies),
        }
        stalled.close()
        live.close()
        time.sleep(1)

        # Notebook endpoint: the pool kernel prints; max_response decides.
        before = rss_mb(worker)
        started = time.monotonic()
        with Sampler(port, worker, kernel_id) as sampler:
            status, body = call(port, "GET", f"/flood?mib={mib}")
        results["endpoint"] = {
            "status": status,
            "body_mib": round(len(body) / 2**20, 1),
            "seconds": round(time.monotonic() - started, 1),
            "rss_growth_mb": round(max(sampler.rss) - before, 1),
            "p50_ms": round(1000 * statistics.median(sampler.latencies), 1),
            "p99_ms": round(1000 * percentile(sampler.latencies, 0.99), 1),
            "requests": len(sampler.latencies),
        }
        call(port, "DELETE", f"/api/kernels/{kernel_id}")
        return results
    finally:
        stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=300)
    args = parser.parse_args()
    rows = [scenario("16MiB", args.mib), scenario("4GiB", args.mib)]
    json.dump(rows, sys.stdout, indent=2)
    print()
    bounded, lifted = rows
    for part in ("api", "endpoint"):
        print(
            f"{part}: RSS growth {bounded[part]['rss_growth_mb']} MB bounded vs {lifted[part]['rss_growth_mb']} MB "
            f"lifted; other requests p99 {bounded[part]['p99_ms']} ms vs {lifted[part]['p99_ms']} ms"
        )


if __name__ == "__main__":
    main()
