"""Streamed responses under load: how soon output reaches clients, and what slow readers cost.

    .venv/bin/python bench/streaming.py [--streams 100] [--lines 20] [--read-seconds 10]

One gunicorn worker with a pool of ``--streams`` kernels. Latency: every client streams a cell
that prints ``--lines`` timestamps 50 ms apart (``print(time.time(), flush=True)``: the kernel
sends each as a stream message at once), all clients at the same time; for each line, the time
from the kernel's print to the client's read, and each client's time to its first byte. Memory:
every client asks for a cell printing 50 MB and reads 1 KiB every 100 ms for ``--read-seconds``;
the worker's resident memory before, at its peak and after. Clients are threads of this process
reading plain sockets; the machine (2 cores) runs kernels, gateway and clients at once.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import children, free_port, rss_mb, start_fngw, stop  # noqa: E402

CELLS = [
    "import sys, time",
    "# GET /ticks/:n/:ms\nimport json\np = json.loads(REQUEST)['path']\nfor _ in range(int(p['n'])):\n"
    "    print(f'{time.time():.6f}', flush=True)\n    time.sleep(int(p['ms']) / 1000)",
    "# GET /flood\nline = 'x' * 1023 + '\\n'\nfor _ in range(50 * 1024):\n    sys.stdout.write(line)\nprint('end')",
]


def service(folder: Path, streams: int) -> Path:
    meta = {"kernelspec": {"name": "python3", "display_name": "Python 3"}, "language_info": {"name": "python"}}
    nbformat.write(new_notebook(cells=[new_code_cell(c) for c in CELLS], metadata=meta), folder / "bench.ipynb")
    manifest = {
        "version": 1,
        "defaults": {"timeout": "120s", "pool": {"size": streams, "max_queue": streams, "queue_timeout": "60s"}},
        "notebooks": {
            "bench": {
                "path": "bench.ipynb",
                "endpoints": {"GET /ticks/:n/:ms": {"stream": True}, "GET /flood": {"stream": True}},
            }
        },
    }
    (folder / "fngw.yaml").write_text(json.dumps(manifest))
    return folder / "fngw.yaml"


def ticks(
    port: int, n: int, ms: int, latencies: list[float], first_bytes: list[float], barrier: threading.Barrier
) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        barrier.wait()
        started = time.time()
        sock.sendall(f"GET /ticks/{n}/{ms} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
        pending = b""
        first = True
        while chunk := sock.recv(65536):
            now = time.time()
            if first:
                first_bytes.append(now - started)
                first = False
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if b"." in line and line.strip().replace(b".", b"").isdigit():  # a timestamp, not a chunk size
                    latencies.append(now - float(line))


def slow_reader(port: int, seconds: float, done: threading.Event) -> None:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"GET /flood HTTP/1.1\r\nHost: bench\r\n\r\n")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not done.is_set():
        sock.recv(1024)
        time.sleep(0.1)
    sock.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:  # noqa: PLR0915 - one run, its phases in order
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--lines", type=int, default=20)
    parser.add_argument("--interval-ms", type=int, default=50, help="between a stream's lines")
    parser.add_argument("--no-memory", action="store_true", help="skip the slow readers")
    parser.add_argument("--read-seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        port = free_port()
        started = time.monotonic()
        proc = start_fngw(service(Path(folder), args.streams), port, ready_timeout=600)
        ready = time.monotonic() - started
        try:
            (worker,) = children(proc.pid)
            latencies: list[float] = []
            first_bytes: list[float] = []
            barrier = threading.Barrier(args.streams)
            threads = [
                threading.Thread(
                    target=ticks, args=(port, args.lines, args.interval_ms, latencies, first_bytes, barrier)
                )
                for _ in range(args.streams)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            before = rss_mb(worker)
            done = threading.Event()
            readers = [
                threading.Thread(target=slow_reader, args=(port, args.read_seconds, done))
                for _ in range(0 if args.no_memory else args.streams)
            ]
            for t in readers:
                t.start()
            peak = before
            while any(t.is_alive() for t in readers):
                peak = max(peak, rss_mb(worker))
                time.sleep(0.2)
            time.sleep(2)
            after = rss_mb(worker)
        finally:
            stop(proc)
    ms = 1000
    print(
        json.dumps(
            {
                "streams": args.streams,
                "interval_ms": args.interval_ms,
                "kernels_ready_s": round(ready, 1),
                "lines_read": len(latencies),
                "print_to_read_ms": {
                    "p50": round(ms * statistics.median(latencies), 2),
                    "p99": round(ms * percentile(latencies, 0.99), 2),
                    "max": round(ms * max(latencies), 2),
                },
                "first_byte_ms": {
                    "p50": round(ms * statistics.median(first_bytes), 2),
                    "p99": round(ms * percentile(first_bytes, 0.99), 2),
                },
                "slow_readers": None
                if args.no_memory
                else {
                    "output_each_mb": 50,
                    "worker_rss_mb_before": round(before, 1),
                    "worker_rss_mb_peak": round(peak, 1),
                    "worker_rss_mb_after": round(after, 1),
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
